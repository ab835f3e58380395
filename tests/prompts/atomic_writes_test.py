"""The atomic writes behind prompt files, metrics, backups and exports
(`keras_prompt.utils.atomic_file`, `keras_prompt.export.atomic`): what they
place follows the umask, and what killed writers leave behind is removed by
the next write into the same directory, never what a running writer owns."""

import json
import os
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

from keras_prompt.export.atomic import atomic_directory
from keras_prompt.prompts.prompt_file import save_prompt_file
from keras_prompt.prompts.prompt_file import write_file_atomically
from keras_prompt.utils.atomic_file import atomic_file

REPO_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)

# A writer in another process: it starts a directory write ("1") and a file
# write ("model.onnx") in `parent`, prints its temporary paths and waits to
# be killed. With `swap` it replaces an existing "1" and stops right after
# its `swap` rename ("old": the previous version moved aside; "new": the new
# one in place, the previous one not yet removed).
_WRITER = """
import os
import sys
import time

from keras_prompt.export.atomic import atomic_directory
from keras_prompt.utils.atomic_file import atomic_file

parent, swap = sys.argv[1], sys.argv[2]
rename = os.rename


def rename_and_wait(source, target):
    rename(source, target)
    moved = os.path.basename(target if swap == "old" else source)
    if moved.startswith(".old-" if swap == "old" else ".tmp-"):
        print("renamed", flush=True)
        time.sleep(600)


if swap != "none":
    os.rename = rename_and_wait
with atomic_directory(
    os.path.join(parent, "1"), overwrite=swap != "none"
) as temp_dir, atomic_file(os.path.join(parent, "model.onnx")) as temp_file:
    with open(os.path.join(temp_dir, "saved_model.pb"), "wb") as file:
        file.write(b"new")
    with open(temp_file, "wb") as file:
        file.write(b"partial")
    if swap == "none":
        print(temp_dir, temp_file, flush=True)
        time.sleep(600)
"""


def _start_writer(parent, swap="none"):
    """Starts `_WRITER` and returns `(process, first line it printed)`."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    process = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(parent), swap],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = process.stdout.readline().split()
    if not line:
        process.kill()
        process.wait()
        raise AssertionError("the writer exited before it was ready")
    return process, line


def _kill(process):
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stdout.close()


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o002], ids=lambda m: f"umask{m:03o}")
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def test_files_follow_the_umask(umask, tmp_path):
    from keras_prompt.training.train import write_json_atomically

    expected = 0o666 & ~umask
    path = write_file_atomically(tmp_path / "new" / "data.bin", b"data")
    assert _mode(path) == expected
    assert _mode(tmp_path / "new") == 0o777 & ~umask
    # Replacing a file gives it the new file's mode, not the old one's.
    os.chmod(path, 0o600)
    write_file_atomically(path, b"again")
    assert _mode(path) == expected

    prompt = save_prompt_file(
        tmp_path / "rte.safetensors",
        np.zeros((2, 4), "float32"),
        {"backbone_fingerprint": "0" * 64},
    )
    assert _mode(prompt) == expected
    metrics = write_json_atomically(tmp_path / "metrics.json", {"accuracy": 1})
    assert _mode(metrics) == expected
    with open(metrics) as file:
        assert json.load(file) == {"accuracy": 1}
    with atomic_file(tmp_path / "model.onnx") as temp_path:
        with open(temp_path, "wb") as file:
            file.write(b"onnx")
    assert _mode(tmp_path / "model.onnx") == expected
    assert sorted(os.listdir(tmp_path)) == [
        "metrics.json",
        "model.onnx",
        "new",
        "rte.safetensors",
    ]


def test_directories_follow_the_umask(umask, tmp_path):
    destination = tmp_path / "model" / "1"
    with atomic_directory(destination) as temp_dir:
        # As TensorFlow creates a SavedModel's `variables/`: a fixed 0o755.
        os.mkdir(os.path.join(temp_dir, "variables"), 0o755)
        with open(os.path.join(temp_dir, "variables", "data"), "wb") as file:
            file.write(b"weights")
    assert _mode(destination) == 0o777 & ~umask
    assert _mode(destination / "variables") == 0o777 & ~umask
    assert _mode(destination / "variables" / "data") == 0o666 & ~umask
    assert os.listdir(tmp_path / "model") == ["1"]


def test_failed_writes_leave_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_file(tmp_path / "model.onnx") as temp_path:
            with open(temp_path, "wb") as file:
                file.write(b"partial")
            raise RuntimeError("conversion failed")
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "1") as temp_dir:
            os.mkdir(os.path.join(temp_dir, "variables"))
            raise RuntimeError("disk full")
    assert os.listdir(tmp_path) == []
    (tmp_path / "1").mkdir()
    with pytest.raises(FileExistsError, match="new version"):
        with atomic_directory(tmp_path / "1"):
            pass
    assert os.listdir(tmp_path) == ["1"]


def test_next_write_removes_a_killed_writers_leftovers_only(tmp_path):
    # The live writer starts first: starting a writer cleans up too.
    live, live_paths = _start_writer(tmp_path)
    try:
        dead, dead_paths = _start_writer(tmp_path)
        _kill(dead)
        leftovers = set(os.listdir(tmp_path))
        # Each temporary path has its owner's lock file next to it.
        assert len(leftovers) == 8
        assert {
            os.path.basename(path) + suffix
            for path in dead_paths + live_paths
            for suffix in ("", ".lock")
        } == leftovers

        write_file_atomically(tmp_path / "prompt.safetensors", b"prompt")

        names = set(os.listdir(tmp_path))
        for path in dead_paths:
            assert os.path.basename(path) not in names
            assert os.path.basename(path) + ".lock" not in names
        # The running writer's files are untouched and it can finish.
        for path in live_paths:
            assert os.path.exists(path) and os.path.exists(path + ".lock")
        assert live.poll() is None
    finally:
        _kill(live)
    with atomic_directory(tmp_path / "2"):
        pass
    assert sorted(os.listdir(tmp_path)) == ["2", "prompt.safetensors"]


def test_writes_in_one_process_keep_each_others_paths(tmp_path):
    with atomic_file(tmp_path / "a.onnx") as outer:
        with open(outer, "wb") as file:
            file.write(b"a")
        with atomic_directory(tmp_path / "1"):
            assert os.path.exists(outer)
        assert os.path.exists(outer)
    assert sorted(os.listdir(tmp_path)) == ["1", "a.onnx"]


@pytest.mark.parametrize(
    "swap, expected",
    [
        # Killed with the previous version moved aside and the new one not
        # yet in place: the previous version is put back.
        ("old", b"old"),
        # Killed with the new version in place: the previous one goes.
        ("new", b"new"),
    ],
)
def test_killed_replacement_is_settled(tmp_path, swap, expected):
    version = tmp_path / "1"
    version.mkdir()
    (version / "saved_model.pb").write_bytes(b"old")
    process, _ = _start_writer(tmp_path, swap)
    _kill(process)
    assert any(name.startswith(".old-1-") for name in os.listdir(tmp_path))
    assert version.exists() == (swap == "new")

    write_file_atomically(tmp_path / "other.json", b"{}")

    # (The writer's file write had finished before the directory's renames.)
    assert sorted(os.listdir(tmp_path)) == ["1", "model.onnx", "other.json"]
    assert (version / "saved_model.pb").read_bytes() == expected


def test_other_hidden_files_are_kept(tmp_path):
    names = [".tmp-notes", ".tmp-1-abcdefgh", ".model.onnx.tmp", ".lock"]
    for name in names:
        (tmp_path / name).write_bytes(b"mine")
    write_file_atomically(tmp_path / "prompt.safetensors", b"prompt")
    assert sorted(os.listdir(tmp_path)) == sorted(
        names + ["prompt.safetensors"]
    )


def test_lock_file_removed_before_it_was_locked_is_not_used(
    tmp_path, monkeypatch
):
    """A cleanup in another process may take a lock file that was just
    created, and not yet locked, for a dead writer's and remove it: the
    writer must then not work under a lock that guards nothing."""
    import fcntl

    from keras_prompt.utils.owned_temp_path import OwnedTempPath

    real_flock = fcntl.flock
    removed = []

    def flock_after_a_cleanup(handle, operation):
        if not removed:
            removed.extend(tmp_path.glob("*.lock"))
            for path in removed:
                path.unlink()
        return real_flock(handle, operation)

    monkeypatch.setattr(fcntl, "flock", flock_after_a_cleanup)
    owned = OwnedTempPath(tmp_path / "model.onnx")
    try:
        assert len(removed) == 1
        assert os.path.exists(owned.path + ".lock")
        assert str(removed[0]) != owned.path + ".lock"
    finally:
        owned.release()
    assert os.listdir(tmp_path) == []
