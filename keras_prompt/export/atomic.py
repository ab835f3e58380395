"""Atomic placement of export artifacts (directories and files).

Everything is built in a hidden temporary path next to its destination and
moved into place with a single `os.rename`/`os.replace`, so a reader (TF
Serving polling a model directory, a client opening a file) sees either
nothing or the complete artifact. TF Serving only loads version directories
whose names are integers, so the hidden `.tmp-...` build directory is never
picked up. The temporary paths belong to their process for as long as it
runs; each new export removes those that a killed export left behind in the
same directory (see `keras_prompt.utils.owned_temp_path`). What is placed
has the permissions the process umask gives any new file or directory.
"""

import contextlib
import os
import stat

# The exporters' file writes are the library's one atomic file write.
from keras_prompt.utils.atomic_file import atomic_file  # noqa: F401
from keras_prompt.utils.owned_temp_path import OwnedTempPath


@contextlib.contextmanager
def atomic_directory(destination, overwrite=False):
    """Yields a temporary directory that becomes `destination` on success.

    The directory and every directory created in it get the permissions of
    any new directory under the process umask (`0o755` under umask 022), so
    a TF Serving process running as another user can read the export. On
    any exception the temporary directory is deleted and `destination` is
    left untouched (an interrupted replacement puts the previous version
    back).

    Args:
        destination: final directory path (must not exist unless
            `overwrite`).
        overwrite: replace an existing `destination`.

    Example:
    ```python
    with atomic_directory("serving/t5_prompts/2") as temp_dir:
        tf.saved_model.save(module, temp_dir)
    ```
    """
    destination = os.path.abspath(os.fspath(destination))
    # The leftovers of a killed export are settled first: a killed
    # replacement may have left the previous version only in its swap path.
    owned = OwnedTempPath(destination, directory=True)
    try:
        if os.path.exists(destination) and not overwrite:
            raise FileExistsError(
                f"'{destination}' already exists. Export to a new version "
                "number (TF Serving picks up the highest), or pass "
                "overwrite=True."
            )
        yield owned.path
        _set_directory_modes(owned.path, owned.mode)
        if overwrite and os.path.exists(destination):
            os.rename(destination, owned.swap_path)
        os.rename(owned.path, destination)
    finally:
        # Removes the replaced version, or whatever is left of a failed
        # build.
        owned.release()


def _set_directory_modes(root, mode):
    """Gives the directories under `root` the permission bits `mode`.

    TensorFlow creates a SavedModel's subdirectories (`variables/`,
    `assets/`) with a fixed `0o755` less the umask rather than the `0o777`
    less the umask of any new directory (under umask 002 they would lack
    the group write bit).
    """
    for current, directories, _ in os.walk(root):
        for name in directories:
            path = os.path.join(current, name)
            if os.path.islink(path):
                continue
            bits = stat.S_IMODE(os.lstat(path).st_mode)
            os.chmod(path, (bits & ~0o777) | (mode & 0o777))
