import os
import subprocess
import sys

import pytest

from keras_prompt.cli.main import build_parser
from keras_prompt.training.train_config import TrainConfig
from keras_prompt.training.training_error import TrainingError
from keras_prompt.utils import cpu_defaults

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_auto_compiles_on_accelerators_only(monkeypatch):
    assert not cpu_defaults.resolve_jit_compile("auto")  # this CPU machine
    monkeypatch.setattr(cpu_defaults, "has_accelerator", lambda: True)
    assert cpu_defaults.resolve_jit_compile("auto")
    assert not cpu_defaults.resolve_jit_compile(False)
    monkeypatch.setattr(cpu_defaults, "has_accelerator", lambda: False)
    assert cpu_defaults.resolve_jit_compile(True)
    with pytest.raises(ValueError, match="jit_compile must be True, False or 'auto', got 'yes'"):
        cpu_defaults.resolve_jit_compile("yes")


def test_train_config_and_cli_take_auto_on_and_off():
    assert TrainConfig().validate().jit_compile == "auto"
    with pytest.raises(TrainingError, match="jit_compile must be True, False or 'auto', got 1"):
        TrainConfig(jit_compile=1).validate()
    parser = build_parser()
    base = ["train", "--backbone", "b", "--task", "t", "--output", "o"]
    assert parser.parse_args(base).jit_compile == "auto"
    assert parser.parse_args(base + ["--xla"]).jit_compile is True
    assert parser.parse_args(base + ["--no-xla"]).jit_compile is False
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--xla", "--no-xla"])


def _fresh(code, **env):
    environment = {key: value for key, value in os.environ.items()
                   if key != cpu_defaults.ONEDNN_VARIABLE}
    environment.update(env, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", code], env=environment,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


ONEDNN_STATE = (
    "import os; from keras_prompt.utils import cpu_defaults; "
    "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), "
    "cpu_defaults.onednn_enabled())"
)


def test_importing_keras_prompt_first_turns_onednn_on():
    out = _fresh("import keras_prompt, tensorflow; " + ONEDNN_STATE).stdout
    assert out.split() == ["1", "True"]


def test_an_explicit_choice_and_a_started_tensorflow_are_kept():
    out = _fresh("import keras_prompt, tensorflow; " + ONEDNN_STATE,
                 TF_ENABLE_ONEDNN_OPTS="0").stdout
    assert out.split() == ["0", "False"]
    out = _fresh(
        "import tensorflow; from keras_prompt.utils import cpu_defaults; "
        "print(cpu_defaults.request_onednn()); " + ONEDNN_STATE).stdout
    assert out.split()[:2] == ["False", "None"]


def test_training_without_onednn_says_how_to_turn_it_on():
    result = _fresh(
        "import logging, keras_prompt, tensorflow; logging.basicConfig(); "
        "from keras_prompt.utils import cpu_defaults; "
        "print(cpu_defaults.warn_if_onednn_off())",
        TF_ENABLE_ONEDNN_OPTS="0")
    assert result.stdout.split() == ["False"]
    assert "TF_ENABLE_ONEDNN_OPTS=0" in result.stderr
    assert "Set TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow is imported" in result.stderr
