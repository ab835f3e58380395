"""The one atomic file write of keras-prompt (prompt files, metrics, backups,
PEFT adapters, ONNX and TFLite models)."""

import contextlib
import os

from keras_prompt.utils.owned_temp_path import OwnedTempPath


@contextlib.contextmanager
def atomic_file(destination):
    """Yields a temporary file path that replaces `destination` on success.

    The temporary file is a hidden sibling of `destination` (see
    `OwnedTempPath`), created empty with the permissions of any new file
    under the process umask (`0o644` under umask 022), so a server running
    as another user can read the result. Write it by path: opening it for
    writing keeps those permissions. On success it is flushed to disk and
    renamed over `destination` in one step, so readers see the old file or
    the complete new one, never a partial write; on any exception it is
    deleted and `destination` is left untouched. Leftovers of killed writers
    in the same directory are removed first.

    Args:
        destination: the final file path; missing parent directories are
            created.

    Example:
    ```python
    with atomic_file("onnx/model.onnx") as temp_path:
        onnx.save(model_proto, temp_path)
    ```
    """
    destination = os.path.abspath(os.fspath(destination))
    owned = OwnedTempPath(destination)
    try:
        yield owned.path
        # Without the flush a crash soon after the rename can leave an empty
        # `destination` on filesystems that delay allocation (ext4).
        handle = os.open(owned.path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(owned.path, destination)
    finally:
        owned.release()
