"""Hidden temporary paths next to a destination, owned by a live process.

An atomic write builds its result in a hidden sibling of the destination and
renames it into place. A writer killed part way (SIGKILL, the OOM killer, a
preempted job) leaves that sibling behind. So every temporary path comes with
a lock file that its process holds (`fcntl.flock`) for the path's lifetime.
The kernel drops the lock when the process dies, however it dies, so a later
write into the same directory tells a dead writer's leftovers from a running
writer's (in any process) and removes only the former; a recycled pid cannot
fool it. The pid in the names only tells a person who the owner was.

Names in the destination's directory (`<owner>` is `<pid>-<8 hex digits>`):

- `.tmp-<name>-<owner>`: a directory being built for `<name>`;
- `.old-<name>-<owner>`: the previous `<name>` while a directory replaces it;
- `.<name>.<owner>.tmp`: a file being written for `<name>`;
- `.tmp-<name>-<owner>.lock`, `.<name>.<owner>.tmp.lock`: their owners'
  locks.

TF Serving loads only version directories named by integers, so it never
picks any of these up.
"""

import os
import re
import secrets
import shutil
import stat

try:
    import fcntl
except ImportError:  # Windows: no `flock`, so leftovers are never judged.
    fcntl = None

_OWNER = r"(?P<owner>[0-9]+-[0-9a-f]{8})"
_DIRECTORY = re.compile(r"\.(?:tmp|old)-(?P<name>.+)-" + _OWNER)
_FILE = re.compile(r"\.(?P<name>.+)\." + _OWNER + r"\.tmp")
_LOCK_SUFFIX = ".lock"
# Lock files this process holds. On NFS, where `flock` is emulated by POSIX
# locks, a process does not see its own threads' locks; it skips these
# instead.
_HELD = set()


class OwnedTempPath:
    """A hidden temporary file or directory next to `destination`, locked by
    this process until `release()`.

    Creating one first removes, from `destination`'s directory, the
    leftovers of writers that died (see the module docstring): their
    temporary paths and lock files, and the replaced version of a directory
    whose replacement never arrived is put back in place rather than
    deleted. Leftovers of live writers, in this or another process, are
    never touched, so concurrent writes into one directory are safe.

    The path is created empty with the permissions the process umask gives
    any new file (`0o666` less the umask, e.g. `0o644` under umask 022) or
    directory (`0o777` less the umask), not `tempfile`'s `0o600`/`0o700`
    that a server running as another user could not read.

    Args:
        destination: the final path the temporary one will be renamed to.
            Missing parent directories are created.
        directory: create a directory rather than a file.

    Attributes:
        path: the temporary path.
        swap_path: for a directory, where the previous `destination` goes
            while it is replaced (`None` for a file); `release()` removes it,
            or puts it back if `destination` is missing.
        mode: the permission bits `path` was created with.

    Example:
    ```python
    owned = OwnedTempPath("serving/model/1", directory=True)
    try:
        tf.saved_model.save(module, owned.path)
        os.rename(owned.path, "serving/model/1")
    finally:
        owned.release()
    ```
    """

    def __init__(self, destination, directory=False):
        self.destination = os.path.abspath(os.fspath(destination))
        parent, name = os.path.split(self.destination)
        os.makedirs(parent, exist_ok=True)
        _remove_dead_leftovers(parent)
        self._lock = None
        while self._lock is None:
            owner = f"{os.getpid()}-{secrets.token_hex(4)}"
            if directory:
                self.path = os.path.join(parent, f".tmp-{name}-{owner}")
                self.swap_path = os.path.join(parent, f".old-{name}-{owner}")
            else:
                self.path = os.path.join(parent, f".{name}.{owner}.tmp")
                self.swap_path = None
            self._lock_path = self.path + _LOCK_SUFFIX
            self._lock = _acquire_lock(self._lock_path)
        _HELD.add(self._lock_path)
        try:
            if directory:
                os.mkdir(self.path, 0o777)
            else:
                os.close(
                    os.open(
                        self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666
                    )
                )
            self.mode = stat.S_IMODE(os.stat(self.path).st_mode)
        except BaseException:
            self.release()
            raise

    def release(self):
        """Removes what is left of the temporary path (nothing after a
        successful rename), settles `swap_path`, and drops the lock."""
        if self._lock is None:
            return
        _settle(self.path, self.swap_path, self.destination)
        os.close(self._lock)
        self._lock = None
        _remove(self._lock_path)
        _HELD.discard(self._lock_path)


def _remove_dead_leftovers(directory):
    """Removes the temporary paths of dead writers from `directory`.

    A leftover is dead when its lock file is missing (a lock file is created
    before its temporary path and removed after it) or no process holds it.
    A lock that cannot be tried (an unreadable file, a filesystem without
    locks) keeps its leftovers.
    """
    if fcntl is None:
        return
    try:
        names = os.listdir(directory)
    except OSError:
        return
    # Temporary path name -> (swap path or None, destination or None).
    leftovers = {}
    for name in names:
        temp = name
        if name.endswith(_LOCK_SUFFIX):
            temp = name[: -len(_LOCK_SUFFIX)]
        match = _DIRECTORY.fullmatch(temp)
        if match:
            # The build directory, the replaced version and the lock of one
            # directory write are settled together.
            suffix = f"{match['name']}-{match['owner']}"
            leftovers[".tmp-" + suffix] = (
                os.path.join(directory, ".old-" + suffix),
                os.path.join(directory, match["name"]),
            )
            continue
        if _FILE.fullmatch(temp):
            leftovers[temp] = (None, None)
    for temp, (swap, destination) in leftovers.items():
        path = os.path.join(directory, temp)
        lock_path = path + _LOCK_SUFFIX
        if lock_path in _HELD:
            continue
        try:
            lock = os.open(lock_path, os.O_RDONLY)
        except FileNotFoundError:
            _settle(path, swap, destination)
            continue
        except OSError:
            continue  # Unreadable (another user's?): keep it.
        try:
            # A shared lock (it needs only read access) is refused while the
            # owner holds its exclusive one.
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            continue
        try:
            _settle(path, swap, destination)
            _remove(lock_path)
        finally:
            os.close(lock)


def _acquire_lock(path):
    """An open, exclusively locked new lock file at `path`, or `None` if the
    name is taken or the file vanished before it was locked."""
    try:
        lock = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return None
    try:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)
            except OSError:
                # A filesystem without locks: cleanups cannot try this lock
                # either, so they keep this writer's paths.
                pass
        # Between creating and locking the file, a cleanup in another
        # process may have judged it dead and unlinked it: then this lock
        # guards nothing and the caller takes a new name.
        try:
            unlinked = not os.path.samestat(os.fstat(lock), os.stat(path))
        except FileNotFoundError:
            unlinked = True
        if unlinked:
            os.close(lock)
            return None
        os.write(lock, f"{os.getpid()}\n".encode("ascii"))
    except BaseException:
        os.close(lock)
        raise
    return lock


def _settle(path, swap_path, destination):
    """Removes an unfinished temporary path; puts a replaced directory back
    where its replacement never arrived, or removes it."""
    _remove(path)
    if swap_path is None or not os.path.lexists(swap_path):
        return
    if not os.path.lexists(destination):
        try:
            os.rename(swap_path, destination)
            return
        except OSError:
            pass  # Restored or replaced concurrently: the swap is stale.
    _remove(swap_path)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
