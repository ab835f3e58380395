"""The pretraining script is deterministic and the shipped preset is sound."""

import json
import os

import numpy as np

from keras_prompt.models.presets import builtin_preset_path
from keras_prompt.quickstart import pretrain


def test_same_seed_same_weights(tmp_path, monkeypatch):
    # One layer a side instead of four: every random source, op and shape of
    # the shipped script still runs (through the XLA step), with a fraction
    # of the XLA compile, which is most of each run.
    monkeypatch.setitem(pretrain.ARCHITECTURE, "num_layers", 1)
    hashes = []
    for run in range(2):
        info = pretrain.pretrain(str(tmp_path / f"run{run}"), seed=3, steps=4,
                                 batch_size=4, warmup_steps=2, log_every=2)
        hashes.append(info["weights_sha256"])
    assert hashes[0] == hashes[1]
    other = pretrain.pretrain(str(tmp_path / "other"), seed=4, steps=4,
                              batch_size=4, warmup_steps=2, log_every=2)
    assert other["weights_sha256"] != hashes[0]


def test_shipped_preset():
    path = builtin_preset_path("t5_tiny_demo")
    assert path is not None
    assert os.path.getsize(os.path.join(path, "model.weights.h5")) <= 8 * 1024 * 1024
    with open(os.path.join(path, "pretraining.json")) as f:
        info = json.load(f)
    assert info["seed"] == 0
    from keras_prompt import PromptedT5Seq2SeqLM

    model = PromptedT5Seq2SeqLM.from_preset("t5_tiny_demo", prompt_length=5)
    assert model.backbone.hidden_dim == pretrain.ARCHITECTURE["hidden_dim"]
    assert pretrain.weights_sha256(model.backbone) == info["weights_sha256"]
    # The backbone learned its pretraining tasks: it names the topic of
    # fresh mixture examples (held-out draws) far above chance.
    from keras_prompt.quickstart import mixture
    from keras_prompt.quickstart import world

    rng = np.random.default_rng(12345)
    examples = [mixture.topic(rng) for _ in range(60)]
    categories = sorted(world.CATEGORIES)
    scores = model.score([text for text, _ in examples], categories)
    predicted = [categories[i] for i in np.argmax(scores, axis=1)]
    accuracy = np.mean([p == c for p, (_, c) in zip(predicted, examples)])
    assert accuracy >= 0.8, accuracy  # chance is 1/6
