"""Residual reparameterization (Razdaibiedina et al., 2023): what trains, the
folded prompt in every file and export (a plain model, and a SavedModel in a
fresh process, give the reparameterized model's logits), and the backup that
restores a preempted residual run exactly."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_prompt import PromptedT5Seq2SeqLM
from keras_prompt.prompts import read_prompt_file
from keras_prompt.training import PromptBackupAndRestore
from keras_prompt.training import train
from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.conftest import make_token_batch
from tests.training.fixtures import file_task
from tests.training.fixtures import make_rows
from tests.training.fixtures import write_csv

PROMPT_LENGTH = 4
HIDDEN_DIM = 16
BOTTLENECK = 8
# No validation split: the run saves its last prompt, which the tests
# compare with the model as training left it.
SETTINGS = dict(prompt_length=PROMPT_LENGTH,
                prompt_initializer="random_uniform",
                reparameterization="residual", bottleneck_size=BOTTLENECK,
                steps=4, batch_size=4, max_input_length=24, eval_every=2,
                checkpoint_every=2, jit_compile=False, tensorboard=False,
                verbose=0, seed=3)
MLP_VARIABLES = [
    "prompt/reparameterization/down/kernel",
    "prompt/reparameterization/down/bias",
    "prompt/reparameterization/up/kernel",
    "prompt/reparameterization/up/bias",
    "prompt/reparameterization/layer_norm/gamma",
    "prompt/reparameterization/layer_norm/beta",
]


def residual_model(backbone, **kwargs):
    kwargs.setdefault("seed", 0)
    return PromptedT5Seq2SeqLM(
        backbone, prompt_length=PROMPT_LENGTH, reparameterization="residual",
        bottleneck_size=BOTTLENECK, compile=False, **kwargs)


class CaptureAtEnd(keras.callbacks.Callback):
    """The reparameterized model as training leaves it: its logits on a
    batch and its prompt layer's weights (prompt and MLP)."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_train_end(self, logs=None):
        self.logits = np.asarray(self.model.forward(self.batch))
        self.weights = self.model.prompt_layer.get_weights()


class PreemptAfterStep(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.step:
            raise RuntimeError("preempted")


@pytest.fixture(scope="module")
def backbone():
    # Building a backbone takes seconds: the tests share one (and pass it
    # to `train()` as an object, which then loads no preset).
    return make_tiny_backbone(tied=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("residual")
    return {
        "root": root,
        "task": file_task(write_csv(root / "train.csv", make_rows(16))),
        "batch": make_token_batch(),
    }


@pytest.fixture(scope="module")
def reference(backbone, data):
    """A residual run, and the model as training left it."""
    capture = CaptureAtEnd(data["batch"])
    output = data["root"] / "reference"
    result = train(backbone, data["task"], output_dir=str(output),
                   preprocessor=make_tiny_preprocessor(16, 4),
                   callbacks=[capture], **SETTINGS)
    return {"dir": output, "result": result, "capture": capture}


def test_the_prompt_and_the_mlp_train_and_the_config_keeps_them(
        backbone, tmp_path):
    model = residual_model(backbone)
    assert [w.path for w in model.trainable_weights] == [
        "prompt/prompt", *MLP_VARIABLES]
    mlp = (HIDDEN_DIM * BOTTLENECK + BOTTLENECK) + (
        BOTTLENECK * HIDDEN_DIM + HIDDEN_DIM) + 2 * HIDDEN_DIM
    assert model.count_params() - backbone.count_params() == (
        PROMPT_LENGTH * HIDDEN_DIM + mlp)
    assert all(not w.trainable for w in model.backbone.weights)
    for kwargs, message in [
        ({"bottleneck_size": 8}, "`bottleneck_size=8` is a setting of the "
         "residual reparameterization: pass `reparameterization='residual'`"),
        ({"reparameterization": "lstm"}, "Unknown `reparameterization='lstm'`"),
        ({"reparameterization": "residual", "prompt_length": 0},
         "needs a prompt to reparameterize; got `prompt_length=0`"),
    ]:
        kwargs.setdefault("prompt_length", 2)
        with pytest.raises(ValueError, match=message):
            PromptedT5Seq2SeqLM(backbone, compile=False, **kwargs)

    config = model.get_config()
    assert (config["reparameterization"], config["bottleneck_size"]) == (
        "residual", BOTTLENECK)
    path = str(tmp_path / "residual.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)  # from_config, then the weights
    assert loaded.get_config() == config
    assert [w.path for w in loaded.trainable_weights][1:] == MLP_VARIABLES
    batch = make_token_batch()
    np.testing.assert_array_equal(loaded.get_prompt(), model.get_prompt())
    np.testing.assert_allclose(loaded(batch), model(batch), atol=1e-6)


def test_given_prompts_are_effective_prompts(backbone, tmp_path):
    """`set_prompt`, `load_prompt`, a file or an array initializer: the
    residual model then computes exactly what a plain model with that prompt
    does; per-example prompts skip the MLP."""
    batch = make_token_batch()
    values = np.random.default_rng(5).normal(
        size=(PROMPT_LENGTH, HIDDEN_DIM)).astype("float32")
    plain = PromptedT5Seq2SeqLM(backbone, prompt_length=PROMPT_LENGTH,
                                compile=False)
    assert [w.path for w in plain.trainable_weights] == ["prompt/prompt"]
    assert (plain.get_config()["reparameterization"],
            plain.get_config()["bottleneck_size"]) == (None, None)
    plain.set_prompt(values)
    expected = np.asarray(plain.forward(batch))
    path = plain.save_prompt(tmp_path / "plain.safetensors")

    model = residual_model(backbone)
    assert not np.allclose(model.get_prompt(),
                           keras.ops.convert_to_numpy(model.prompt_layer.prompt))
    broadcast = np.broadcast_to(values, (3, PROMPT_LENGTH, HIDDEN_DIM))
    np.testing.assert_array_equal(
        model.forward(batch, prompts=broadcast), expected)
    model.load_prompt(path)
    np.testing.assert_array_equal(model.get_prompt(), values)
    np.testing.assert_array_equal(model.forward(batch), expected)
    model.set_prompt(-values)
    np.testing.assert_array_equal(model.get_prompt(), -values)
    # The file initializer (an array initializer, its base, alike).
    other = residual_model(backbone, prompt_initializer="from_file",
                           init_file=path)
    np.testing.assert_array_equal(other.get_prompt(), values)
    np.testing.assert_array_equal(other.forward(batch), expected)


def test_files_and_a_fresh_process_savedmodel_give_the_trained_logits(
        backbone, data, reference, tmp_path):
    """The acceptance test: the prompt a residual run saved, loaded into a
    plain model, and the SavedModel of the reparameterized model as
    training left it, run in a process with only TensorFlow, give the
    logits of the reparameterized model that trained it."""
    from keras_prompt.export import export_saved_model

    capture, output = reference["capture"], reference["dir"]
    result = reference["result"]
    raw, *mlp = capture.weights
    gamma = mlp[-2]
    assert not np.allclose(gamma, 1.0) and not np.allclose(gamma, 0.0)

    prompt, metadata = read_prompt_file(output / "prompt.safetensors")
    assert metadata["reparameterization"] == "residual"
    assert metadata["training_steps"] == 4
    np.testing.assert_array_equal(prompt, result["final_prompt"])
    assert np.abs(prompt - raw).max() > 0.1  # folded, not the raw weight
    checkpoint, _ = read_prompt_file(
        output / "checkpoints" / "prompt-step00000004.safetensors")
    np.testing.assert_array_equal(checkpoint, prompt)
    run_config = json.loads((output / "run_config.json").read_text())
    assert run_config["config"]["reparameterization"] == "residual"
    assert run_config["config"]["bottleneck_size"] == BOTTLENECK

    plain = PromptedT5Seq2SeqLM(backbone, prompt_length=PROMPT_LENGTH,
                                compile=False)
    plain.load_prompt(output / "prompt.safetensors")
    np.testing.assert_allclose(plain.forward(data["batch"]), capture.logits,
                               atol=1e-5, rtol=0)

    trained = residual_model(backbone)
    trained.prompt_layer.set_weights(capture.weights)
    np.testing.assert_allclose(trained.forward(data["batch"]), capture.logits,
                               atol=1e-6, rtol=0)
    path = export_saved_model(trained, str(tmp_path / "serving"),
                              mode="baked", text_signature=False,
                              max_decode_length=4)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({
        "path": path,
        "batch": {k: v.tolist() for k, v in data["batch"].items()}}))
    script = (
        "import json, sys\n"
        "import tensorflow as tf\n"
        "request = json.load(open(sys.argv[1]))\n"
        "loaded = tf.saved_model.load(request['path'])\n"
        "batch = {k: tf.constant(v, tf.int32)"
        " for k, v in request['batch'].items()}\n"
        "logits = loaded.signatures['logits'](**batch)['logits']\n"
        "print(json.dumps({'logits': logits.numpy().tolist(), 'modules':"
        " [m for m in ('keras_prompt', 'keras_hub') if m in sys.modules]}))"
        "\n")
    completed = subprocess.run(
        [sys.executable, "-c", script, str(request)], capture_output=True,
        text=True, check=True, cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"})
    reply = json.loads(completed.stdout.strip().splitlines()[-1])
    assert reply["modules"] == []
    np.testing.assert_allclose(reply["logits"], capture.logits, atol=1e-5,
                               rtol=0)


class Snapshot(keras.callbacks.Callback):
    """The trainable and optimizer variables when training begins (after a
    backup was restored) or at the end of the first epoch (when the first
    backup is written)."""

    def __init__(self, when):
        super().__init__()
        self.when = when

    def _take(self):
        self.values = [np.array(v) for v in self.model.trainable_variables
                       + self.model.optimizer.variables]

    def on_train_begin(self, logs=None):
        if self.when == "begin":
            self._take()

    def on_epoch_end(self, epoch, logs=None):
        if self.when == "first_epoch" and epoch == 0:
            self._take()


def test_the_backup_holds_the_mlp_and_restores_a_preempted_fit(
        backbone, tmp_path):
    """`PromptBackupAndRestore` saves every trainable variable: a residual
    fit stopped after its first backup, its weights moved on since, gets
    back exactly the prompt, MLP and optimizer state of that backup."""
    batch = make_token_batch()
    model = residual_model(backbone)
    model.compile(jit_compile=False)
    backup_dir = str(tmp_path / "backup")

    def fit(*callbacks):
        keras.Model.fit(model, batch, batch["decoder_token_ids"],
                        batch_size=3, epochs=2, shuffle=False, verbose=0,
                        callbacks=[PromptBackupAndRestore(backup_dir),
                                   *callbacks])

    backed_up = Snapshot("first_epoch")
    with pytest.raises(RuntimeError, match="preempted"):
        fit(backed_up, PreemptAfterStep(2))
    state = PromptBackupAndRestore.read_state(backup_dir)
    assert state["step"] == 1
    # The MLP is in the backup: no prompt file holds it.
    assert [p for p in state["paths"] if p.startswith("prompt/")] == [
        "prompt/prompt", *MLP_VARIABLES]
    moved = [np.array(v) for v in model.trainable_variables]
    restored = Snapshot("begin")
    fit(restored)
    assert state["paths"] == [v.path for v in model.trainable_variables
                              + model.optimizer.variables]
    assert len(restored.values) == len(backed_up.values) == len(state["paths"])
    for name, got, want in zip(state["paths"], restored.values,
                               backed_up.values):
        np.testing.assert_array_equal(got, want, err_msg=name)
    for name, later, want in zip(state["paths"], moved, backed_up.values):
        assert not np.array_equal(later, want), name  # step 2 moved it
