"""Atomic placement of export artifacts (directories and files).

Everything is built in a hidden temporary path next to its destination and
moved into place with a single `os.rename`/`os.replace`, so a reader (TF
Serving polling a model directory, a client opening a file) sees either
nothing or the complete artifact. TF Serving only loads version directories
whose names are integers, so the hidden `.tmp-...` build directory is never
picked up.
"""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_directory(destination, overwrite=False):
    """Yields a temporary directory that becomes `destination` on success.

    On any exception the temporary directory is deleted and `destination`
    is left untouched.

    Args:
        destination: final directory path (must not exist unless
            `overwrite`).
        overwrite: replace an existing `destination`.
    """
    destination = os.path.abspath(os.fspath(destination))
    parent = os.path.dirname(destination)
    if os.path.exists(destination) and not overwrite:
        raise FileExistsError(
            f"'{destination}' already exists. Export to a new version number "
            "(TF Serving picks up the highest), or pass overwrite=True."
        )
    os.makedirs(parent, exist_ok=True)
    temp = tempfile.mkdtemp(
        prefix=".tmp-" + os.path.basename(destination) + "-", dir=parent
    )
    try:
        yield temp
        old = None
        if os.path.exists(destination):
            old = tempfile.mkdtemp(
                prefix=".old-" + os.path.basename(destination) + "-", dir=parent
            )
            os.rmdir(old)
            os.rename(destination, old)
        os.rename(temp, destination)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


@contextlib.contextmanager
def atomic_file(destination):
    """Yields a temporary file path that replaces `destination` on success."""
    destination = os.path.abspath(os.fspath(destination))
    parent = os.path.dirname(destination)
    os.makedirs(parent, exist_ok=True)
    handle, temp = tempfile.mkstemp(
        prefix="." + os.path.basename(destination) + ".",
        suffix=".tmp",
        dir=parent,
    )
    os.close(handle)
    try:
        yield temp
        os.replace(temp, destination)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise
