"""PromptedCausalLM on the tiny Hugging Face GPT-2, Llama and Gemma
checkpoints in `fixtures/` (see `fixtures/README.md`), against PEFT."""

import os
import subprocess
import sys
import textwrap

import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_prompt import PromptedCausalLM
from keras_prompt import nearest_tokens
from keras_prompt.prompts import PromptFileError
from keras_prompt.prompts.prompt_file import read_prompt_file

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
FAMILIES = ("gpt2", "llama", "gemma")
PROMPT_LENGTH = 5


def load_example(family):
    example = os.path.join(FIXTURES, family, "example")
    data = dict(np.load(os.path.join(example, "batch.npz")))
    generation = np.load(os.path.join(example, "gen_batch.npz"))
    data["gen_token_ids"] = generation["token_ids"]
    data["prompt"] = np.load(os.path.join(example, "prompt.npy"))
    data["logits"] = np.load(os.path.join(example, "peft_logits.npy"))
    data["greedy_ids"] = np.load(
        os.path.join(example, "peft_uncached_greedy_ids.npy")
    )
    return data


_LOADED = {}


def load_model(family, jit_compile=False, **kwargs):
    """The fixture's model with its PEFT prompt (loaded once per family:
    KerasHub's converter takes seconds), compiled without XLA unless asked:
    most tests here compare numbers across many shapes, and each new shape
    is an XLA compile."""
    if family not in _LOADED:
        _LOADED[family] = keras_hub.models.CausalLM.from_preset(
            os.path.join(FIXTURES, family)
        )
    task = _LOADED[family]
    kwargs.setdefault("prompt_length", PROMPT_LENGTH)
    kwargs.setdefault("prompt_initializer", load_example(family)["prompt"])
    model = PromptedCausalLM(task.backbone, task.preprocessor, **kwargs)
    model.compile(jit_compile=jit_compile)
    return model


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_and_greedy_ids_match_peft(family):
    example = load_example(family)
    model = load_model(family)
    logits = model.forward(
        {
            "token_ids": example["token_ids"],
            "padding_mask": example["padding_mask"],
        }
    )
    valid = example["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        np.asarray(logits)[valid], example["logits"][valid], atol=1e-4
    )
    # The functional call is the same computation.
    called = model(
        {
            "token_ids": example["token_ids"],
            "padding_mask": example["padding_mask"],
        }
    )
    np.testing.assert_allclose(np.asarray(called), np.asarray(logits), atol=1e-6)

    new = example["greedy_ids"].shape[1]
    ids = example["gen_token_ids"]
    # The XLA-compiled loop (`generate()`'s default) and the plain one.
    for model in (load_model(family, jit_compile=True), model):
        outputs = model.generate(
            {"token_ids": ids, "padding_mask": np.ones_like(ids)},
            max_length=ids.shape[1] + new,
            stop_token_ids=None,
        )
        np.testing.assert_array_equal(
            outputs["token_ids"][:, : ids.shape[1]], ids
        )
        np.testing.assert_array_equal(
            outputs["token_ids"][:, ids.shape[1] :], example["greedy_ids"]
        )
        assert outputs["padding_mask"].all()


def test_families_and_placement():
    assert load_model("gpt2").family.family == "GPT2Backbone"
    assert load_model("llama").family.family == "Llama3Backbone"
    assert load_model("gemma").family.family == "GemmaBackbone"
    with pytest.raises(TypeError, match="not a decoder-only backbone"):
        PromptedCausalLM(keras_hub.models.BertBackbone(
            vocabulary_size=10, num_layers=1, num_heads=1, hidden_dim=4,
            intermediate_dim=4, max_sequence_length=8,
        ))
    # A prompt of length 0 is the frozen model: KerasHub's own logits.
    model = load_model("gemma", prompt_length=0, prompt_initializer="zeros")
    example = load_example("gemma")
    inputs = {
        "token_ids": example["token_ids"],
        "padding_mask": example["padding_mask"],
    }
    expected = _LOADED["gemma"](inputs)
    valid = example["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        np.asarray(model.forward(inputs))[valid],
        np.asarray(expected)[valid],
        atol=1e-5,
    )


def test_generate_from_text_right_padded_rows_and_cache_agree():
    model = load_model("gpt2")
    texts = ["the cat sat on the mat", "a dog"]
    full = model.generate(texts, max_new_tokens=4, stop_token_ids=None)
    completions = model.generate(
        texts, max_new_tokens=4, stop_token_ids=None, strip_prompt=True
    )
    for text, whole, completion in zip(texts, full, completions):
        assert whole == text + completion
        assert completion
    # KerasHub's `max_length` is a total: the shorter row gets more tokens.
    total = model.generate(texts, max_length=12, stop_token_ids=None)
    assert [len(model.preprocessor.tokenizer(t)) for t in total] == [11, 11]
    # Each right-padded row continues after its own last token, as alone;
    # and the cached loop equals a greedy loop over whole forward passes.
    tokenizer = model.preprocessor.tokenizer
    for row, text in enumerate(texts):
        alone = model.generate(
            [text], max_new_tokens=4, stop_token_ids=None, strip_prompt=True
        )
        assert alone == [completions[row]]
        ids = [tokenizer.start_token_id] + list(np.asarray(tokenizer(text)))
        for _ in range(4):
            batch = np.array([ids], "int32")
            logits = model.forward(
                {"token_ids": batch, "padding_mask": np.ones_like(batch)}
            )
            ids.append(int(np.argmax(np.asarray(logits)[0, -1])))
        assert model.detokenize(np.array([ids[-4:]])) == [completions[row]]


def test_stop_token_ends_a_row_and_bad_token_inputs_are_refused():
    model = load_model("llama")
    ids = load_example("llama")["gen_token_ids"]
    free = model.generate(
        {"token_ids": ids, "padding_mask": np.ones_like(ids)},
        max_length=ids.shape[1] + 5,
        stop_token_ids=None,
    )
    first = int(free["token_ids"][0, ids.shape[1]])
    stopped = model.generate(
        {"token_ids": ids, "padding_mask": np.ones_like(ids)},
        max_length=ids.shape[1] + 5,
        stop_token_ids=(first,),
    )
    row = stopped["token_ids"][0]
    assert row[ids.shape[1]] == first
    assert (row[ids.shape[1] + 1 :] == model.pad_id()).all()
    assert stopped["padding_mask"][0].sum() == ids.shape[1] + 1
    with pytest.raises(ValueError, match=r"Rows \[1\] have no given token"):
        model.generate(
            {"token_ids": ids[:2], "padding_mask": np.stack([
                np.ones(ids.shape[1]), np.zeros(ids.shape[1])
            ])},
            max_length=ids.shape[1] + 2,
        )
    with pytest.raises(ValueError, match="unknown keys"):
        model({"token_ids": ids, "padding_mask": ids, "prompts": ids})
    # GPT-2's learned positions bound prompt + sequence.
    gpt2 = load_model("gpt2")
    with pytest.raises(ValueError, match="needs 133 positions"):
        gpt2.generate(["a"], max_length=128)


def test_mixed_task_batch_rows_equal_each_example_alone():
    model = load_model("gpt2", prompt_initializer="random_uniform", seed=1)
    rng = np.random.default_rng(0)
    prompts = rng.uniform(-0.5, 0.5, (3, PROMPT_LENGTH, 64)).astype("float32")
    for task, prompt in zip("abc", prompts):
        model.prompt_bank.add(task, prompt)
    texts = ["the cat sat", "a dog runs over the red mat", "the tree"]
    tasks = ["b", "a", "c"]
    mixed = model.generate(
        texts, max_new_tokens=3, stop_token_ids=None, tasks=tasks,
        strip_prompt=True,
    )
    scores = model.score(texts, [" mat", " river house"], tasks=tasks)
    example = load_example("gpt2")
    inputs = {
        "token_ids": example["token_ids"],
        "padding_mask": example["padding_mask"],
    }
    logits = np.asarray(model.forward(inputs, tasks=tasks))
    for row, (text, task) in enumerate(zip(texts, tasks)):
        alone = model.generate(
            [text], max_new_tokens=3, stop_token_ids=None, tasks=[task],
            strip_prompt=True,
        )
        assert alone == [mixed[row]]
        np.testing.assert_allclose(
            model.score([text], [" mat", " river house"], tasks=[task])[0],
            scores[row],
            atol=1e-5,
        )
        length = int(example["padding_mask"][row].sum())
        one = {key: value[row : row + 1, :length] for key, value in inputs.items()}
        np.testing.assert_allclose(
            np.asarray(model.forward(one, tasks=[task]))[0],
            logits[row, :length],
            atol=1e-5,
        )


def test_score_is_the_summed_log_likelihood_of_each_continuation():
    model = load_model("llama")
    tokenizer = model.preprocessor.tokenizer
    texts = ["the cat sat on", "a dog"]
    choices = [" the mat", " river"]
    scores = model.score(texts, choices)
    assert scores.shape == (2, 2)
    for row, text in enumerate(texts):
        for column, choice in enumerate(choices):
            context = [tokenizer.start_token_id] + list(np.asarray(tokenizer(text)))
            target = list(np.asarray(tokenizer(choice))) + [tokenizer.end_token_id]
            ids = np.array([context + target], "int32")
            logits = np.asarray(
                model.forward({"token_ids": ids, "padding_mask": np.ones_like(ids)})
            )[0]
            log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) - logits.max(-1, keepdims=True)
            expected = sum(
                log_probs[len(context) - 1 + k, token]
                for k, token in enumerate(target)
            )
            np.testing.assert_allclose(scores[row, column], expected, atol=1e-4)


def test_fit_trains_only_the_prompt_and_keeps_the_backbone_bit_identical():
    model = load_model("llama", prompt_initializer="sampled_vocab", seed=0)
    assert [w.path for w in model.trainable_weights] == [
        model.prompt_layer.trainable_weights[0].path
    ]
    before = [np.array(w) for w in model.backbone.weights]
    prompt_before = model.get_prompt()
    model.preprocessor.sequence_length = 16
    texts = ["the cat sat on the mat", "a dog runs quickly"] * 4
    model.compile(jit_compile=False)
    history = model.fit(texts, epochs=3, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(model.get_prompt(), prompt_before)
    for weight, value in zip(model.backbone.weights, before):
        np.testing.assert_array_equal(np.array(weight), value)
    # Without a preprocessor, token batches with target weights.
    tokens = PromptedCausalLM(model.backbone, None, prompt_length=PROMPT_LENGTH)
    x, y, sample_weight = model.preprocessor(texts)
    tokens.compile(jit_compile=False)
    tokens.fit(x, y, sample_weight=sample_weight, epochs=1, batch_size=4, verbose=0)
    for weight, value in zip(model.backbone.weights, before):
        np.testing.assert_array_equal(np.array(weight), value)


def test_prompt_files_fingerprint_config_and_nearest_tokens(tmp_path):
    model = load_model("gpt2", labels=["yes", "no"])
    path = model.save_prompt(tmp_path / "p.safetensors", task="demo", training_steps=3)
    other = load_model("gpt2", prompt_initializer="random_uniform")
    metadata = other.load_prompt(path)
    np.testing.assert_array_equal(other.get_prompt(), model.get_prompt())
    assert metadata["labels"] == ["yes", "no"]
    assert metadata["sequence_length"] == model.preprocessor.sequence_length
    with pytest.raises(PromptFileError, match="fingerprint"):
        load_model("llama").load_prompt(path)
    with pytest.raises(TypeError, match="Unknown prompt file fields"):
        model.save_prompt(tmp_path / "q.safetensors", encoder_sequence_length=4)
    # The training format is recorded as given (exports default to it).
    fields = {"max_input_length": 9, "separator": "\nA:", "target_prefix": " "}
    _, recorded = read_prompt_file(
        model.save_prompt(tmp_path / "f.safetensors", **fields))
    assert {key: recorded[key] for key in fields} == fields
    assert model.backbone_fingerprint() != load_model("llama").backbone_fingerprint()

    restored = PromptedCausalLM.from_config(model.get_config())
    np.testing.assert_array_equal(restored.get_prompt(), model.get_prompt())
    assert restored.prompt_length == PROMPT_LENGTH
    assert isinstance(restored.backbone, keras_hub.models.GPT2Backbone)

    neighbours = nearest_tokens(model, k=2)
    assert len(neighbours) == PROMPT_LENGTH
    assert all(len(row) == 2 for row in neighbours)


@pytest.mark.parametrize(
    "initializer, kwargs",
    [
        ("sampled_vocab", {}),
        ("class_labels", {"labels": [" yes", " no"]}),
        ("text", {"init_text": "the cat sat"}),
        ("random_uniform", {}),
    ],
)
def test_initializers(initializer, kwargs):
    model = load_model("llama", prompt_initializer=initializer, seed=0, **kwargs)
    prompt = model.get_prompt()
    assert prompt.shape == (PROMPT_LENGTH, 64)
    embeddings = np.asarray(model.backbone.token_embedding.embeddings)
    tokenizer = model.preprocessor.tokenizer
    if initializer == "class_labels":
        first = np.asarray(tokenizer(" yes")).reshape(-1)
        np.testing.assert_allclose(prompt[0], embeddings[first].mean(0), atol=1e-6)
    if initializer == "text":
        ids = np.asarray(tokenizer("the cat sat")).reshape(-1)
        np.testing.assert_allclose(
            prompt, embeddings[np.resize(ids, PROMPT_LENGTH)], atol=1e-6
        )
    if initializer == "sampled_vocab":
        assert all(
            np.isclose(embeddings, row, atol=1e-7).all(axis=1).any() for row in prompt
        )


def _random_backbone(name):
    common = dict(
        vocabulary_size=50, num_layers=2, num_query_heads=4,
        num_key_value_heads=2, hidden_dim=16, intermediate_dim=32,
    )
    if name == "mistral":
        return keras_hub.models.MistralBackbone(**common)
    if name == "qwen":
        return keras_hub.models.QwenBackbone(**common)
    return keras_hub.models.Qwen3Backbone(head_dim=4, **common)


@pytest.mark.parametrize("name", ["mistral", "qwen", "qwen3"])
def test_other_llama_like_families_run_their_own_layers(name):
    """Families without a PEFT fixture: with no prompt the model is
    KerasHub's own backbone, and with one the cached decoding loop equals a
    greedy loop over whole forward passes."""
    backbone = _random_backbone(name)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, (2, 6)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, 4:] = 0
    plain = PromptedCausalLM(backbone, prompt_length=0)
    hidden = backbone({"token_ids": ids, "padding_mask": mask})
    expected = backbone.token_embedding(hidden, reverse=True)
    valid = mask.astype(bool)
    np.testing.assert_allclose(
        np.asarray(plain.forward({"token_ids": ids, "padding_mask": mask}))[valid],
        np.asarray(expected)[valid],
        atol=1e-5,
    )
    model = PromptedCausalLM(backbone, prompt_length=3, seed=0)
    model.compile(jit_compile=False)
    out = model.generate(
        {"token_ids": ids, "padding_mask": mask},
        max_new_tokens=3,
        stop_token_ids=None,
    )
    for row in range(2):
        sequence = list(ids[row, : mask[row].sum()])
        for _ in range(3):
            batch = np.array([sequence], "int32")
            logits = model.forward(
                {"token_ids": batch, "padding_mask": np.ones_like(batch)}
            )
            sequence.append(int(np.argmax(np.asarray(logits)[0, -1])))
        length = len(sequence)
        np.testing.assert_array_equal(out["token_ids"][row, :length], sequence)
        assert out["padding_mask"][row].sum() == length
