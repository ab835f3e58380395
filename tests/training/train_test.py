"""`keras_prompt.train()`: explicit seeds, its config object, mixed
precision with greedy validation, what it writes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_prompt.training import TrainConfig
from keras_prompt.training import TrainingError
from tests.training.fixtures import TEMPLATE
from tests.training.fixtures import file_task
from tests.training.fixtures import make_rows
from tests.training.fixtures import make_tiny_preset
from tests.training.fixtures import write_csv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return {
        "root": root,
        # Dropout 0.1 as in T5: the seeds of the dropout layers matter.
        "preset": make_tiny_preset(root / "preset", tied=False, dropout=0.1),
        "train": write_csv(root / "train.csv", make_rows(16)),
        "validation": write_csv(root / "dev.csv", make_rows(8, 40)),
    }


def _settings(**overrides):
    settings = dict(prompt_length=4, prompt_initializer="random_uniform",
                    steps=6, batch_size=4, max_input_length=24, eval_every=3,
                    checkpoint_every=3, tensorboard=False, verbose=0, seed=11)
    settings.update(overrides)
    return settings


@pytest.fixture(scope="module")
def seeded(data, tmp_path_factory):
    """Seed 12, then seed 11, in this process (after a SentencePiece
    pipeline ran in tf.data), and seed 11 in a fresh process, which runs
    meanwhile. Without XLA: the seeding is the same, and three runs skip
    three compiles. The in-process seed-11 run is also the run whose files
    `test_outputs_are_written` checks."""
    import keras_hub

    import keras_prompt
    from keras_prompt.data import TextToTextPipeline

    root = tmp_path_factory.mktemp("seeded")
    settings = _settings(jit_compile=False)
    config = {"backbone": data["preset"], "output_dir": str(root / "fresh"),
              "task": {"train_file": data["train"],
                       "validation_file": data["validation"],
                       "template": TEMPLATE, "label_column": "label",
                       "labels": "positive,negative"},
              **settings}
    (root / "fresh.json").write_text(json.dumps(config))
    fresh_process = subprocess.Popen(
        [sys.executable, "-m", "tests.training.run_training",
         str(root / "fresh.json"), str(root / "fresh.npy")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": REPO})
    try:
        task = file_task(data["train"], data["validation"])
        tokenizer = keras_hub.models.T5Tokenizer.from_preset(data["preset"])
        pipeline = TextToTextPipeline(tokenizer, 24, 4)
        batch = next(iter(pipeline.training_dataset(task.load("train"), 4)))
        # The other seed runs first: whatever a run leaves in this process
        # (random state, layer counters, caches) is there when seed 11 runs,
        # so one in-process run of seed 11 shows what two did.
        other = keras_prompt.train(data["preset"], task,
                                   output_dir=str(root / "other"),
                                   **dict(settings, seed=12))
        run = keras_prompt.train(data["preset"], task,
                                 output_dir=str(root / "run"), **settings)
        log, _ = fresh_process.communicate(timeout=600)
    finally:
        if fresh_process.poll() is None:
            fresh_process.kill()
            fresh_process.wait()
    assert fresh_process.returncode == 0, log.decode()[-3000:]
    return {"batch_shape": tuple(batch[0]["encoder_token_ids"].shape),
            "other": other, "run": run, "output": root / "run",
            "fresh": np.load(root / "fresh.npy")}


def test_seeded_runs_repeat_in_one_process_and_in_a_fresh_one(seeded):
    """After a SentencePiece pipeline ran in tf.data and `train()` ran with
    another seed in this process, `train()` gives the bit-equal prompt of a
    run in a fresh process: seeds are explicit, no global random state is
    set or needed."""
    assert seeded["batch_shape"] == (4, 24)
    fresh = seeded["fresh"]
    np.testing.assert_array_equal(seeded["run"]["final_prompt"], fresh)
    # Another seed gives another prompt.
    assert not np.array_equal(seeded["other"]["final_prompt"], fresh)
    assert seeded["run"]["metrics"]["config"]["seed"] == 11


def test_dropout_seeds_are_explicit():
    """The same seed gives the same dropout masks, another seed others;
    nothing global is involved."""
    from keras_prompt import PromptedT5Seq2SeqLM
    from keras_prompt.training import seed_random_layers
    from tests.conftest import make_tiny_backbone
    from tests.conftest import make_token_batch

    model = PromptedT5Seq2SeqLM(make_tiny_backbone(dropout=0.1), prompt_length=2,
                                seed=0)
    batch = make_token_batch()

    def training_logits(seed):
        assert seed_random_layers(model, seed) > 0
        return np.asarray(model.forward(batch, training=True))

    first, again, other = training_logits(1), training_logits(1), training_logits(2)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3
    assert np.abs(first - np.asarray(model.forward(batch))).max() > 1e-3


def test_bfloat16_with_greedy_validation_score_and_float32_export(data, tmp_path):
    """Mixed precision trains with greedy validation (the cached decoding
    loop in bfloat16), scores, and exports a float32 SavedModel."""
    import tensorflow as tf

    import keras_prompt
    from keras_prompt.export import export_saved_model

    task = file_task(data["train"], data["validation"])
    result = keras_prompt.train(data["preset"], task,
                                output_dir=str(tmp_path / "bf16"),
                                **_settings(dtype="bfloat16"))
    model = result["model"]
    assert model.compute_dtype == "bfloat16"
    assert result["final_prompt"].dtype == np.float32
    assert [v["step"] for v in result["metrics"]["validation"]] == [3, 6]
    assert result["metrics"]["config"]["dtype"] == "mixed_bfloat16"
    texts = ["subject: the cat sentence: likes the movie"]
    scores = model.score(texts, ["positive", "negative"])
    assert scores.shape == (1, 2) and np.isfinite(scores).all()
    path = export_saved_model(model, str(tmp_path / "serving"), mode="baked",
                              max_decode_length=4)
    loaded = tf.saved_model.load(path)
    logits = loaded.signatures["logits"](
        encoder_token_ids=tf.constant([[5, 6, 1]]),
        encoder_padding_mask=tf.constant([[1, 1, 1]]),
        decoder_token_ids=tf.constant([[0, 7]]),
        decoder_padding_mask=tf.constant([[1, 1]]))["logits"]
    assert logits.dtype == tf.float32
    served = loaded.signatures["serving_default"](inputs=tf.constant(texts))
    assert served["outputs"].shape == (1,)


def test_config_errors_name_the_setting():
    for changes, message in [
        ({"batch_size": 0}, "batch_size must be an integer >= 1, got 0. Use a "
         "whole number in that range (default: 32)."),
        ({"steps": 0}, "steps must be an integer >= 1, got 0."),
        ({"steps": 2.5}, "steps must be an integer"),
        ({"prompt_length": 100000}, "prompt_length must be an integer from 1 "
         "to 4096, got 100000 (each prompt vector"),
        ({"prompt_length": 0}, "prompt_length must be an integer from 1 to "
         "4096, got 0"),
        ({"eval_batch_size": 0}, "eval_batch_size must be an integer >= 1, "
         "got 0. Use a whole number in that range, or None (the default)."),
        ({"learning_rate": -1}, "learning_rate must be a positive number, got "
         "-1. Use a number > 0"),
        ({"overwrite": "yes"}, "overwrite must be True or False, got 'yes'."),
        ({"dtype": "float16"}, "dtype must be"),
        ({"prompt_initializer": "text"}, "needs init_text"),
        ({"strategy": "gpu"}, "strategy must be one of"),
        ({"eval_every": 10, "steps_per_execution": 3}, "must divide"),
        ({"length_buckets": "short"}, "length_buckets must be 'auto', None "
         "(pad to max_input_length) or a list of lengths, got 'short'."),
        ({"length_buckets": [64, 512]}, "length_buckets=[64, 512] is not a "
         "list of increasing lengths from 1 to max_input_length=256. Use "
         "increasing whole numbers"),
        ({"max_input_length": 32, "length_buckets": [16, 48]},
         "from 1 to max_input_length=32"),
    ]:
        with pytest.raises(TrainingError) as error:
            TrainConfig().replace(**changes).validate()
        assert message in str(error.value)
    with pytest.raises(TrainingError, match="Unknown training settings"):
        TrainConfig().replace(step=3)
    config = TrainConfig(steps=5).validate()
    assert config.to_json()["steps"] == 5
    assert config.length_buckets == "auto"
    assert TrainConfig(length_buckets=(64, 128)).validate().to_json()[
        "length_buckets"] == (64, 128)
    assert json.dumps(config.to_json())


def test_outputs_are_written(data, seeded):
    """The files of the in-process seed-11 run of `_settings(jit_compile=
    False)`."""
    from keras_prompt.prompts import read_prompt_file

    result, output = seeded["run"], seeded["output"]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result["metrics"]))
    assert metrics["config"]["jit_compile"] is False
    # The automatic length buckets of inputs of 21 to 24 tokens.
    assert metrics["config"]["length_buckets"] == [24]
    assert metrics["best"]["step"] in (3, 6)
    prompt, metadata = read_prompt_file(output / "prompt.safetensors")
    assert metadata["task"] == "custom" and int(metadata["training_steps"]) == \
        metrics["best"]["step"]
    # The lengths it was trained at, which exports then default to.
    assert metadata["encoder_sequence_length"] == 24
    # `max_target_length=None`: the longest label word plus `</s>`.
    assert metadata["decoder_sequence_length"] >= 2
    np.testing.assert_array_equal(result["model"].get_prompt(), prompt)
    assert sorted(os.listdir(output / "checkpoints")) == [
        "prompt-step00000003.safetensors", "prompt-step00000006.safetensors"]
    assert not (output / "backup").exists()  # removed once training finished
    run_config = json.loads((output / "run_config.json").read_text())
    assert run_config["backbone"] == data["preset"]
    assert run_config["task"]["label_words"] == ["positive", "negative"]
    assert run_config["config"]["steps"] == 6
    assert "verbose" not in run_config["config"]
