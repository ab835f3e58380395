"""A training run owns its output directory: preflight checks before anything
is loaded, refusing a finished or different run, `overwrite=True`, and
writes that fail part way (a full disk) leaving one run's files, resumable.
"""

import errno
import importlib
import json
import os
import pathlib
import shutil
import tempfile

import numpy as np
import pytest

from keras_prompt.prompts import prompt_file
from keras_prompt.prompts.prompt_file import read_prompt_file
from keras_prompt.training import TrainingError
from keras_prompt.training import train
from tests.training.fixtures import file_task
from tests.training.fixtures import make_rows
from tests.training.fixtures import make_tiny_preset
from tests.training.fixtures import write_csv

SETTINGS = dict(prompt_length=4, prompt_initializer="random_uniform", steps=6,
                batch_size=4, max_input_length=24, eval_every=3,
                checkpoint_every=3, jit_compile=False, tensorboard=False,
                verbose=0, seed=5)
HIDDEN_DIM = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("run_directory")
    return {
        "preset": make_tiny_preset(root / "preset"),
        "task": file_task(write_csv(root / "train.csv", make_rows(16)),
                          write_csv(root / "dev.csv", make_rows(8, 40))),
        "root": root,
    }


@pytest.fixture(scope="module")
def finished(data):
    """A finished run of `SETTINGS` (never modified by the tests)."""
    output = data["root"] / "finished"
    result = train(data["preset"], data["task"],
                   output_dir=str(output), **SETTINGS)
    return {"dir": output, "final_prompt": result["final_prompt"]}


@pytest.fixture
def nothing_is_built(monkeypatch):
    """Fails the test if `train()` gets as far as a strategy or a model."""

    def fail(*args, **kwargs):
        raise AssertionError("train() went past its preflight checks")

    # The module, which `keras_prompt.training.train` (the function) hides.
    module = importlib.import_module("keras_prompt.training.train")
    monkeypatch.setattr(module, "resolve_strategy", fail)
    monkeypatch.setattr(module, "build_prompted_model", fail)


def _disk_full_for(monkeypatch, should_fail):
    """Makes every atomic write of a path `should_fail` accepts raise ENOSPC
    (as a full disk does), before the file is touched."""
    write = prompt_file.write_file_atomically

    def write_or_fail(path, data):
        if should_fail(os.fspath(path)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(path, data)

    monkeypatch.setattr(prompt_file, "write_file_atomically", write_or_fail)


def _snapshot(directory):
    """`{relative path: bytes}` of every file under `directory`."""
    files = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                files[os.path.relpath(path, directory)] = file.read()
    return files


def _checkpoints(directory):
    return sorted(os.listdir(os.path.join(directory, "checkpoints")))


def _temporary_files(directory):
    return [name for _, _, names in os.walk(directory) for name in names
            if name.endswith(".tmp")]


@pytest.mark.parametrize("case", ["prompt_length", "file", "under_a_file"])
def test_preflight_errors_come_before_anything_is_loaded(
        tmp_path, nothing_is_built, case):
    regular_file = tmp_path / "notes.txt"
    regular_file.write_text("not a directory")
    output_dir, settings = str(tmp_path / "out"), {}
    if case == "prompt_length":
        settings, message = {"prompt_length": 100000}, (
            "prompt_length must be an integer from 1 to 4096, got 100000 ("
            "each prompt vector adds an encoder position to every example")
    elif case == "file":
        output_dir, message = str(regular_file), (
            f"output_dir '{regular_file}' is an existing file, not a "
            "directory. Pass the path of a directory")
    else:
        output_dir = str(regular_file / "run")
        message = (f"output_dir '{output_dir}' cannot be created: "
                   f"'{regular_file}' is a file, not a directory.")
    with pytest.raises(TrainingError) as error:
        # The backbone does not even exist: nothing is loaded first.
        train("no-such-preset", file_task("missing.csv"),
              output_dir=output_dir, **settings)
    assert message in str(error.value)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def _refuses_new_files(directory):
    try:
        handle, path = tempfile.mkstemp(dir=directory)
    except OSError:
        return True
    os.close(handle)
    os.remove(path)
    return False


def test_an_unwritable_output_dir_is_refused_before_anything_is_loaded(
        tmp_path, nothing_is_built):
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        if not _refuses_new_files(read_only):
            # Root writes despite permission bits, but not into sysfs.
            read_only = pathlib.Path("/sys")
        if not _refuses_new_files(read_only):
            pytest.skip("this user can write despite chmod 0o500, and /sys "
                        "is writable or absent")
        for output_dir in (read_only, read_only / "keras-prompt-run"):
            with pytest.raises(TrainingError) as error:
                train("no-such-preset", file_task("missing.csv"),
                      output_dir=str(output_dir))
            assert (f"output_dir '{output_dir}' is not writable: creating a "
                    f"file in '{read_only}' failed (Permission denied). Fix "
                    "the permissions or pass another output_dir.") == \
                str(error.value)
    finally:
        (tmp_path / "read_only").chmod(0o700)


def test_a_finished_or_other_run_is_refused_before_anything_is_loaded(
        data, finished, tmp_path, nothing_is_built):
    before = _snapshot(finished["dir"])
    with pytest.raises(TrainingError) as error:
        train(data["preset"], data["task"],
              output_dir=str(finished["dir"]), **SETTINGS)
    assert str(error.value) == (
        f"output_dir '{finished['dir']}' holds a finished run of these "
        "settings (metrics.json is written when a run ends); its best prompt "
        f"is '{finished['dir'] / 'prompt.safetensors'}'. Pass overwrite=True "
        "(keras-prompt train --overwrite) to delete its files and start this "
        "run, or choose another output_dir.")

    with pytest.raises(TrainingError) as error:
        train(data["preset"], data["task"],
              output_dir=str(finished["dir"]),
              **{**SETTINGS, "prompt_length": 6, "steps": 3})
    assert (f"output_dir '{finished['dir']}' holds another, finished "
            "training run: its run_config.json differs in "
            "config.prompt_length (4 there, 6 here), config.steps (6 there, "
            "3 here). Pass overwrite=True") in str(error.value)
    assert _snapshot(finished["dir"]) == before

    # Files of a run that recorded no run_config.json are nobody's to resume.
    unknown = tmp_path / "unknown"
    shutil.copytree(finished["dir"], unknown)
    os.remove(unknown / "run_config.json")
    with pytest.raises(TrainingError) as error:
        train(data["preset"], data["task"],
              output_dir=str(unknown), **SETTINGS)
    assert (f"output_dir '{unknown}' holds files of a training run "
            "(metrics.json, prompt.safetensors, checkpoints/) without a "
            "readable run_config.json") in str(error.value)


def test_overwrite_replaces_a_run_and_a_full_disk_leaves_the_new_one_resumable(
        data, finished, tmp_path, monkeypatch):
    output = tmp_path / "run"
    shutil.copytree(finished["dir"], output)
    other = {**SETTINGS, "prompt_length": 6, "steps": 3}
    metrics_path = str(output / "metrics.json")
    _disk_full_for(monkeypatch, lambda path: path == metrics_path)
    with pytest.raises(OSError) as error:
        train(data["preset"], data["task"],
              output_dir=str(output), overwrite=True, **other)
    assert error.value.errno == errno.ENOSPC
    assert str(error.value).startswith(
        f"[Errno 28] Could not write the metrics '{metrics_path}': No space "
        "left on device. The files written before are intact")

    # Every file is the new run's (its prompts have 6 rows, the old run's 4);
    # the old run's step-6 checkpoint did not outlive it.
    assert not os.path.exists(metrics_path)
    assert not _temporary_files(output)
    run_config = json.loads((output / "run_config.json").read_text())
    assert run_config["config"]["prompt_length"] == 6
    assert _checkpoints(output) == ["prompt-step00000003.safetensors"]
    for path in (output / "prompt.safetensors",
                 output / "checkpoints" / "prompt-step00000003.safetensors"):
        assert read_prompt_file(path)[0].shape == (6, HIDDEN_DIM)
    assert os.path.exists(output / "backup" / "backup.safetensors")

    # The same call resumes from the backup (overwrite=True does not discard
    # an unfinished run of the same settings) and finishes it.
    monkeypatch.undo()
    result = train(data["preset"], data["task"],
                   output_dir=str(output), overwrite=True,
                   **other)
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["resumed_from_step"] == 3 and metrics["steps"] == 3
    assert metrics["config"]["prompt_length"] == 6
    assert result["final_prompt"].shape == (6, HIDDEN_DIM)
    assert not os.path.exists(output / "backup")


def test_a_full_disk_at_a_checkpoint_names_it_and_the_run_resumes(
        data, finished, tmp_path, monkeypatch):
    output = tmp_path / "run"
    failing = str(output / "checkpoints" / "prompt-step00000006.safetensors")
    _disk_full_for(monkeypatch, lambda path: path == failing)
    with pytest.raises(OSError) as error:
        train(data["preset"], data["task"],
              output_dir=str(output), **SETTINGS)
    assert f"Could not write the prompt checkpoint '{failing}': No space " \
        "left on device." in str(error.value)
    # What the run had written before, whole: not finished, resumable.
    assert not os.path.exists(output / "metrics.json")
    assert not _temporary_files(output)
    assert _checkpoints(output) == ["prompt-step00000003.safetensors"]
    assert read_prompt_file(output / "prompt.safetensors")[1][
        "training_steps"] == 3
    from keras_prompt.training import PromptBackupAndRestore

    assert PromptBackupAndRestore.read_state(str(output / "backup"))[
        "step"] == 3

    # A checkpoint past the backup's step (written before a kill) is not
    # this run's future: the resumed run deletes it.
    shutil.copy(output / "checkpoints" / "prompt-step00000003.safetensors",
                output / "checkpoints" / "prompt-step00000009.safetensors")
    monkeypatch.undo()
    result = train(data["preset"], data["task"],
                   output_dir=str(output), **SETTINGS)
    assert result["metrics"]["resumed_from_step"] == 3
    assert _checkpoints(output) == ["prompt-step00000003.safetensors",
                                    "prompt-step00000006.safetensors"]
    np.testing.assert_allclose(result["final_prompt"],
                               finished["final_prompt"], atol=1e-5)
    assert not os.path.exists(output / "backup")


def test_run_identity_tells_backbone_weights_apart(data):
    """A backbone given as an object is identified by its weights' fingerprint
    (also inside a `PromptedT5Seq2SeqLM`), a preset by its name or path; only
    settings that change what is trained count."""
    from keras_prompt import PromptedT5Seq2SeqLM
    from keras_prompt.training import TrainConfig
    from keras_prompt.training.train import run_identity
    from tests.conftest import make_tiny_backbone

    config = TrainConfig(**SETTINGS).validate()
    backbone = make_tiny_backbone(seed=1)
    identity = run_identity(backbone, data["task"], config)
    assert identity["backbone"]["class"] == "T5Backbone"
    wrapped = PromptedT5Seq2SeqLM(backbone, prompt_length=4)
    assert run_identity(wrapped, data["task"], config) == identity
    assert run_identity(make_tiny_backbone(seed=2), data["task"],
                        config) != identity
    assert run_identity(backbone, data["task"],
                        config.replace(verbose=2, overwrite=True)) == identity
    assert run_identity(backbone, data["task"],
                        config.replace(seed=6)) != identity
    assert run_identity(data["preset"], data["task"], config)["backbone"] == \
        data["preset"]


def test_a_run_recorded_before_length_buckets_resumes_without_them(tmp_path):
    """An unfinished run whose run_config.json predates `length_buckets`
    padded every batch to the maximum: it resumes with
    `length_buckets=None`, and the default ("auto") says so."""
    from keras_prompt.training import TrainConfig
    from keras_prompt.training.run_directory import check_run_ownership
    from keras_prompt.training.run_directory import run_identity

    task = file_task(str(tmp_path / "train.csv"))
    config = TrainConfig(**SETTINGS).validate()
    old = run_identity("preset", task, config.replace(length_buckets=None))
    del old["config"]["length_buckets"]
    (tmp_path / "run_config.json").write_text(json.dumps(old))
    (tmp_path / "backup").mkdir()
    resumed = run_identity("preset", task, config.replace(length_buckets=None))
    assert check_run_ownership(str(tmp_path), resumed, False) == "resume"
    with pytest.raises(TrainingError) as error:
        check_run_ownership(str(tmp_path), run_identity("preset", task, config),
                            False)
    assert ("differs in config.length_buckets (None there, 'auto' here). It "
            "was recorded before length_buckets existed and ran with "
            "length_buckets=None: pass that to resume it.") in str(error.value)
    # Its own other settings still count.
    with pytest.raises(TrainingError, match="config.steps"):
        check_run_ownership(str(tmp_path), run_identity(
            "preset", task, config.replace(length_buckets=None, steps=7)),
            False)
