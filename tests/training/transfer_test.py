"""Runs that start from a prompt file: `prompt_initializer="from_file"`
(SPoT transfer) and `resume_from` (a new run continuing a saved prompt),
what they refuse before training, what they record, and their CLI flags."""

import argparse
import hashlib
import importlib
import json
import os

import keras
import numpy as np
import pytest

from keras_prompt.cli import train_command
from keras_prompt.data import resolve_task
from keras_prompt.prompts import PromptFileError
from keras_prompt.prompts import backbone_fingerprint
from keras_prompt.prompts import read_prompt_file
from keras_prompt.prompts import save_prompt_file
from keras_prompt.training import TrainingError
from keras_prompt.training import train
from keras_prompt.training.train_config import resolve_initial_prompt
from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.training.fixtures import TEMPLATE
from tests.training.fixtures import file_task
from tests.training.fixtures import make_rows
from tests.training.fixtures import write_csv

SOURCE_LENGTH = 3
HIDDEN_DIM = 16
SETTINGS = dict(steps=2, batch_size=4, max_input_length=24, eval_every=2,
                checkpoint_every=2, jit_compile=False, tensorboard=False,
                verbose=0, seed=1)


class FirstPrompt(keras.callbacks.Callback):
    """The model's prompt before its first step."""

    prompt = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.prompt is None:
            self.prompt = self.model.get_prompt()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny backbone and preprocessor (objects: `train()` then loads no
    preset), a prompt file of that backbone (3 vectors, task "mnli", 7
    steps; in a training-output-like directory) and one of another
    backbone."""
    root = tmp_path_factory.mktemp("transfer")
    backbone = make_tiny_backbone()
    values = np.random.default_rng(0).normal(
        size=(SOURCE_LENGTH, HIDDEN_DIM)).astype("float32")
    os.makedirs(root / "source")
    source = save_prompt_file(
        str(root / "source" / "prompt.safetensors"), values,
        {"backbone_fingerprint": backbone_fingerprint(backbone),
         "task": "mnli", "labels": ["positive", "negative"],
         "training_steps": 7})
    with open(source, "rb") as file:
        sha256 = hashlib.sha256(file.read()).hexdigest()
    other = save_prompt_file(str(root / "other.safetensors"), values,
                             {"backbone_fingerprint": "0" * 64})
    return {
        "root": root, "values": values, "backbone": backbone,
        "preprocessor": make_tiny_preprocessor(16, 4),
        "source_dir": str(root / "source"), "source": source,
        "sha256": sha256, "other": other,
        "task": file_task(write_csv(root / "train.csv", make_rows(16))),
    }


def _source_metadata(data):
    """What a prompt trained from the source file records about it."""
    return {"init_file": data["source"], "init_file_sha256": data["sha256"],
            "init_task": "mnli", "init_training_steps": 7}


def test_from_file_starts_from_the_file_and_records_it(data, tmp_path):
    first, output = FirstPrompt(), tmp_path / "spot"
    result = train(data["backbone"], data["task"], output_dir=str(output),
                   preprocessor=data["preprocessor"],
                   prompt_initializer="from_file",
                   init_file=data["source_dir"], callbacks=[first],
                   **SETTINGS)
    np.testing.assert_array_equal(first.prompt, data["values"])
    assert not np.array_equal(result["final_prompt"], data["values"])
    config = result["metrics"]["config"]
    # The length is the file's (prompt_length left unset).
    assert (config["prompt_length"], config["init_file"]) == (
        SOURCE_LENGTH, data["source_dir"])
    _, metadata = read_prompt_file(output / "prompt.safetensors")
    assert metadata["initializer"] == "from_file"
    expected = _source_metadata(data)
    assert {key: metadata[key] for key in expected} == expected
    run_config = json.loads((output / "run_config.json").read_text())
    assert run_config["initial_prompt"] == {"setting": "init_file", **expected}


def test_resume_from_starts_a_new_run_in_a_new_directory_from_the_file(
        data, tmp_path):
    """With a residual reparameterization, too, the run starts from the
    file's values exactly; the source directory is left as it was."""
    before = open(data["source"], "rb").read()
    first, output = FirstPrompt(), tmp_path / "continued"
    result = train(data["backbone"], data["task"], output_dir=str(output),
                   preprocessor=data["preprocessor"],
                   resume_from=data["source_dir"],
                   reparameterization="residual", bottleneck_size=8,
                   callbacks=[first], **SETTINGS)
    np.testing.assert_array_equal(first.prompt, data["values"])
    metrics = result["metrics"]
    assert metrics["resumed_from_step"] == 0  # no backup: a new run
    assert metrics["config"]["resume_from"] == data["source_dir"]
    assert metrics["config"]["prompt_length"] == SOURCE_LENGTH
    _, metadata = read_prompt_file(output / "prompt.safetensors")
    expected = _source_metadata(data)
    assert {key: metadata[key] for key in expected} == expected
    assert (metadata["training_steps"], metadata["reparameterization"]) == (
        2, "residual")
    run_config = json.loads((output / "run_config.json").read_text())
    assert run_config["initial_prompt"] == {"setting": "resume_from",
                                            **expected}
    assert open(data["source"], "rb").read() == before
    assert sorted(os.listdir(data["source_dir"])) == ["prompt.safetensors"]


def test_a_file_of_another_backbone_is_refused_before_training(data, tmp_path):
    output = tmp_path / "refused"
    with pytest.raises(PromptFileError) as error:
        train(data["backbone"], data["task"], output_dir=str(output),
              preprocessor=data["preprocessor"],
              prompt_initializer="from_file", init_file=data["other"],
              **SETTINGS)
    message = str(error.value)
    assert message.startswith(
        f"The initial prompt file '{data['other']}': backbone fingerprint "
        "000000000000… does not match this backbone's")
    assert message.endswith("Start from a prompt file trained on this "
                            "backbone, or use another prompt initializer.")
    assert not output.exists()  # nothing written


@pytest.fixture
def nothing_is_built(monkeypatch):
    """Fails the test if `train()` gets as far as a strategy or a model."""

    def fail(*args, **kwargs):
        raise AssertionError("train() went past its preflight checks")

    module = importlib.import_module("keras_prompt.training.train")
    monkeypatch.setattr(module, "resolve_strategy", fail)
    monkeypatch.setattr(module, "build_prompted_model", fail)


@pytest.mark.parametrize("case", [
    "length", "labels", "missing", "own_directory", "both", "init_file_alone",
    "bottleneck_alone", "unknown_reparameterization"])
def test_preflight_refusals(data, tmp_path, nothing_is_built, case):
    task, output = data["task"], str(tmp_path / "out")
    source = data["source"]
    settings = {"resume_from": data["source_dir"]}
    if case == "length":
        settings = {"prompt_initializer": "from_file",
                    "init_file": data["source_dir"], "prompt_length": 5}
        message = (f"prompt_length=5 differs from the 3 vectors of init_file "
                   f"'{source}'. Leave prompt_length unset (keras-prompt "
                   "train: no --prompt-length) to take the file's length, or "
                   "pass prompt_length=3.")
    elif case == "labels":
        task = resolve_task(train_file=str(data["root"] / "train.csv"),
                            template=TEMPLATE, label_column="label",
                            labels="negative,positive")
        message = (f"resume_from '{source}' is a prompt for the label words "
                   "['positive', 'negative'], but this task's are "
                   "['negative', 'positive']: resume_from continues training "
                   "a prompt on its own task. To start another task from it "
                   "(transfer), pass prompt_initializer='from_file'")
    elif case == "missing":
        missing = str(tmp_path / "nope.safetensors")
        settings = {"resume_from": missing}
        message = (f"resume_from='{missing}' cannot be used: No prompt file "
                   f"at '{missing}'. Pass a prompt file written by "
                   "keras-prompt")
    elif case == "own_directory":
        output = data["source_dir"]
        message = (f"resume_from '{source}' is a file of the run in output_dir "
                   f"'{output}', which this run would replace: a run started "
                   "from a prompt file is a new run. Pass another output_dir")
    elif case == "both":
        settings.update(prompt_initializer="from_file", init_file=source)
        message = ("resume_from and prompt_initializer='from_file' both give "
                   "the initial prompt")
    elif case == "init_file_alone":
        settings = {"init_file": source}
        message = (f"init_file='{source}' is read by "
                   "prompt_initializer='from_file' only, but "
                   "prompt_initializer is 'class_labels'")
    elif case == "bottleneck_alone":
        settings = {"bottleneck_size": 8}
        message = ("bottleneck_size=8 is a setting of the residual "
                   "reparameterization: also pass reparameterization="
                   "'residual' (--reparameterization residual)")
    else:
        settings = {"reparameterization": "lstm"}
        message = ("reparameterization must be None (plain prompt tuning) or "
                   "one of ['residual'], got 'lstm'.")
    with pytest.raises(TrainingError) as error:
        train(data["backbone"], task, output_dir=output,
              preprocessor=data["preprocessor"], **{**SETTINGS, **settings})
    assert message in str(error.value)


def _parse(*flags):
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    return parser.parse_args(["--backbone", "b", "--output", "o", *flags])


def test_cli_flags(data, capsys):
    config = train_command.config_from_arguments(_parse())
    assert (config.prompt_initializer, config.prompt_length) == (
        "class_labels", None)
    # Without a prompt file, the paper's length.
    assert resolve_initial_prompt(config.validate(), ["yes"]) == (
        config.replace(prompt_length=100), None)
    config = train_command.config_from_arguments(
        _parse("--prompt-init", data["source"]))
    assert (config.prompt_initializer, config.init_file,
            config.prompt_length) == ("from_file", data["source"], None)
    config = train_command.config_from_arguments(_parse(
        "--resume-from", data["source_dir"], "--reparameterization",
        "residual", "--bottleneck-size", "8", "--prompt-length", "3"))
    assert (config.resume_from, config.reparameterization,
            config.bottleneck_size, config.prompt_length,
            config.prompt_initializer, config.init_file) == (
        data["source_dir"], "residual", 8, 3, "class_labels", None)
    assert config.validate() is config
    for flags, message in [
        (("--prompt-init", "class_label"), "'class_label' is neither an "
         "initializer (class_labels, sampled_vocab, random_uniform, text) nor "
         "an existing prompt file or training output directory"),
        (("--resume-from", "no/such/run"), "no prompt file or training "
         "output directory at 'no/such/run'"),
        (("--reparameterization", "lstm"), "invalid choice: 'lstm'"),
    ]:
        with pytest.raises(SystemExit):
            _parse(*flags)
        assert message in capsys.readouterr().err
