import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from keras_prompt import PromptedT5Seq2SeqLM
from keras_prompt.optimizers import Adafactor
from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.conftest import make_token_batch

PROMPT_LENGTH = 4


def make_model(tied=True, preprocessor=None, **kwargs):
    backbone = make_tiny_backbone(tied=tied)
    kwargs.setdefault("prompt_length", PROMPT_LENGTH)
    kwargs.setdefault("seed", 0)
    return PromptedT5Seq2SeqLM(backbone, preprocessor, **kwargs)


def reference_logits(backbone, prompt, inputs):
    """Prompt tuning written out by hand on the backbone's own sublayers:
    embed -> concat prompt -> extend mask -> encoder -> decoder -> head."""
    embedded = backbone.token_embedding(inputs["encoder_token_ids"])
    batch = embedded.shape[0]
    x = ops.concatenate([np.broadcast_to(prompt, (batch,) + prompt.shape), embedded], 1)
    mask = np.concatenate(
        [np.ones((batch, prompt.shape[0]), "int32"), inputs["encoder_padding_mask"]], 1
    )
    bias = None
    for layer in backbone.encoder_transformer_layers:
        x, bias = layer(x, attention_mask=mask[:, None, :], position_bias=bias)
    encoder_output = backbone.encoder_layer_norm(x)
    y = backbone.token_embedding(inputs["decoder_token_ids"])
    bias = None
    for layer in backbone.decoder_transformer_layers:
        y, bias = layer(
            y,
            attention_mask=inputs["decoder_padding_mask"][:, None, :],
            position_bias=bias,
            encoder_hidden_states=encoder_output,
            encoder_attention_mask=mask[:, None, :],
            use_causal_mask=True,
        )
    y = backbone.decoder_layer_norm(y)
    if backbone.tie_embedding_weights:
        y = y * backbone.hidden_dim**-0.5
    return backbone.token_embedding(y, reverse=True).numpy()


def make_eager_compiled_model(**kwargs):
    """XLA compilation costs seconds per new shape; most tests here compare
    numbers across many shapes, so they run without it."""
    model = make_model(compile=False, **kwargs)
    model.compile(jit_compile=False)
    return model


@pytest.fixture(scope="module")
def tied_model():
    return make_eager_compiled_model(tied=True)


@pytest.fixture(scope="module")
def untied_model():
    return make_eager_compiled_model(tied=False)


def test_only_the_prompt_trains(tied_model):
    assert [w.path for w in tied_model.trainable_weights] == ["prompt/prompt"]
    assert tied_model.count_params() - tied_model.backbone.count_params() == (
        PROMPT_LENGTH * 16
    )
    trainable = sum(int(np.prod(w.shape)) for w in tied_model.trainable_weights)
    assert trainable == PROMPT_LENGTH * tied_model.hidden_dim
    assert all(not w.trainable for w in tied_model.backbone.weights)


@pytest.mark.parametrize("tied", [True, False])
def test_logits_match_hand_written_forward(tied, tied_model, untied_model):
    model = tied_model if tied else untied_model
    inputs = make_token_batch()
    logits = model(inputs).numpy()
    expected = reference_logits(model.backbone, model.get_prompt(), inputs)
    assert logits.shape == (3, 5, 128)
    np.testing.assert_allclose(logits, expected, atol=1e-5)


@pytest.mark.parametrize("tied", [True, False])
def test_prompt_equal_to_token_embeddings_equals_keras_hub_on_those_tokens(
    tied, tied_model, untied_model
):
    """If the prompt is the embedding of tokens t, the prompted model on x
    must equal KerasHub's own T5Seq2SeqLM on concat(t, x)."""
    model = tied_model if tied else untied_model
    prompt_ids = np.array([11, 12, 13, 14])
    original = model.get_prompt()
    model.set_prompt(model.backbone.token_embedding.embeddings.numpy()[prompt_ids])
    try:
        inputs = make_token_batch()
        logits = model(inputs).numpy()
    finally:
        model.set_prompt(original)
    batch = inputs["encoder_token_ids"].shape[0]
    keras_hub_inputs = dict(inputs)
    keras_hub_inputs["encoder_token_ids"] = np.concatenate(
        [np.tile(prompt_ids, (batch, 1)), inputs["encoder_token_ids"]], 1
    ).astype("int32")
    keras_hub_inputs["encoder_padding_mask"] = np.concatenate(
        [np.ones((batch, 4), "int32"), inputs["encoder_padding_mask"]], 1
    )
    reference = keras_hub.models.T5Seq2SeqLM(model.backbone)
    np.testing.assert_allclose(
        logits, reference(keras_hub_inputs).numpy(), atol=1e-5
    )


def test_per_example_prompts_match_each_example_alone(tied_model):
    inputs = make_token_batch()
    rng = np.random.default_rng(1)
    prompts = rng.uniform(-0.5, 0.5, (3, PROMPT_LENGTH, 16)).astype("float32")
    mixed = tied_model.forward(inputs, prompts=prompts).numpy()
    original = tied_model.get_prompt()
    try:
        for row in range(3):
            tied_model.set_prompt(prompts[row])
            alone = tied_model({k: v[row : row + 1] for k, v in inputs.items()})
            np.testing.assert_allclose(mixed[row : row + 1], alone, atol=1e-5)
    finally:
        tied_model.set_prompt(original)


def test_fit_trains_prompt_and_leaves_backbone_bit_identical():
    model = make_model(tied=False, compile=False)
    model.compile(jit_compile=False)
    assert isinstance(model.optimizer, Adafactor)
    before = [w.numpy().copy() for w in model.backbone.weights]
    prompt_before = model.get_prompt()
    inputs = make_token_batch(batch_size=4, seed=3)
    x = dict(inputs)
    x["decoder_token_ids"] = inputs["decoder_token_ids"][:, :-1]
    x["decoder_padding_mask"] = inputs["decoder_padding_mask"][:, :-1]
    y = inputs["decoder_token_ids"][:, 1:]

    history = model.fit(x, y, batch_size=4, epochs=30, verbose=0)

    losses = history.history["loss"]
    assert losses[-1] < 0.9 * losses[0], losses
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    for weight, value in zip(model.backbone.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value, err_msg=weight.path)
    assert not np.allclose(model.get_prompt(), prompt_before)


def test_loss_ignores_padding_targets():
    model = make_model(compile=False)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    inputs = make_token_batch(batch_size=2, seed=4)
    y = inputs["decoder_token_ids"].copy()
    y[:, -2:] = 0
    logits = model(inputs).numpy()
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
    expected = -picked[y != 0].mean()
    loss = model.evaluate(inputs, y, verbose=0, return_dict=True)["loss"]
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def greedy_by_full_forward(model, inputs, steps, prompts=None):
    """Greedy decoding by argmax of the full (uncached) forward pass."""
    batch = inputs["encoder_token_ids"].shape[0]
    tokens = np.zeros((batch, 1), "int32")
    for _ in range(steps):
        step_inputs = {
            "encoder_token_ids": inputs["encoder_token_ids"],
            "encoder_padding_mask": inputs["encoder_padding_mask"],
            "decoder_token_ids": tokens,
            "decoder_padding_mask": np.ones_like(tokens),
        }
        logits = np.asarray(model.forward(step_inputs, prompts=prompts))
        tokens = np.concatenate([tokens, logits[:, -1:].argmax(-1)], 1)
    return tokens.astype("int32")


def generation_inputs(inputs, length):
    batch = inputs["encoder_token_ids"].shape[0]
    return {
        "encoder_token_ids": inputs["encoder_token_ids"],
        "encoder_padding_mask": inputs["encoder_padding_mask"],
        "decoder_token_ids": np.zeros((batch, length), "int32"),
        "decoder_padding_mask": np.eye(1, length, dtype="int32").repeat(batch, 0),
    }


@pytest.mark.parametrize("tied", [True, False])
def test_generate_equals_greedy_argmax_of_forward(tied, tied_model, untied_model):
    model = tied_model if tied else untied_model
    inputs = make_token_batch()
    generated = model.generate(generation_inputs(inputs, 7), stop_token_ids=None)
    expected = greedy_by_full_forward(model, inputs, steps=6)
    np.testing.assert_array_equal(generated["decoder_token_ids"], expected)


def test_default_compilation_generates_the_same_ids(untied_model):
    """On CPU the default ("auto") is TensorFlow's kernels with the decoding
    loop under XLA."""
    model = make_model(tied=False)
    assert model.jit_compile is False and model.compile_decoding_loop
    inputs = generation_inputs(make_token_batch(), 7)
    np.testing.assert_array_equal(
        model.generate(inputs, stop_token_ids=None)["decoder_token_ids"],
        untied_model.generate(inputs, stop_token_ids=None)["decoder_token_ids"],
    )


def test_mixed_batch_generation_matches_each_row_alone(untied_model):
    inputs = make_token_batch()
    rng = np.random.default_rng(5)
    prompts = rng.normal(0, 1, (3, PROMPT_LENGTH, 16)).astype("float32")
    mixed = untied_model.generate(
        generation_inputs(inputs, 7), stop_token_ids=None, prompts=prompts
    )["decoder_token_ids"]
    for row in range(3):
        alone_inputs = {k: v[row : row + 1] for k, v in inputs.items()}
        alone = untied_model.generate(
            generation_inputs(alone_inputs, 7),
            stop_token_ids=None,
            prompts=prompts[row : row + 1],
        )["decoder_token_ids"]
        np.testing.assert_array_equal(mixed[row : row + 1], alone)
        np.testing.assert_array_equal(
            alone, greedy_by_full_forward(untied_model, alone_inputs, 6, prompts[row : row + 1])
        )
    # Different prompts must actually lead to different outputs here, or the
    # comparison above proves nothing.
    assert len({tuple(r) for r in mixed}) > 1


@pytest.fixture(scope="module")
def text_model():
    preprocessor = make_tiny_preprocessor(
        encoder_sequence_length=12, decoder_sequence_length=6
    )
    return make_eager_compiled_model(tied=False, preprocessor=preprocessor)


def test_generate_strings_and_stop_at_end_token():
    """The head is set so that `</s>` wins at the third generated position
    of the first text: that row stops there (pad after it, the text is what
    came before), the other runs to the end."""
    preprocessor = make_tiny_preprocessor(
        encoder_sequence_length=12, decoder_sequence_length=6
    )
    model = make_eager_compiled_model(tied=False, preprocessor=preprocessor)
    texts = ["the cat likes the movie", "a dog sees"]
    encoded = preprocessor.generate_preprocess(texts)
    free = model.generate(encoded, stop_token_ids=None)["decoder_token_ids"]
    assert 1 not in free[:, 1:]
    head = np.array(model.backbone.token_embedding.reverse_embeddings.numpy())
    head[:, 1] = head[:, free[0, 3]] * 1.5
    model.backbone.token_embedding.reverse_embeddings.assign(head)
    out = model.generate(encoded)
    ids, mask = out["decoder_token_ids"], out["decoder_padding_mask"]
    stops = [np.flatnonzero(row[1:] == 1) for row in ids]
    assert len(stops[0]) == 1 and stops[0][0] + 1 <= 3
    stop = stops[0][0] + 1
    np.testing.assert_array_equal(ids[0, stop + 1 :], 0)
    assert mask[0, : stop + 1].all() and not mask[0, stop + 1 :].any()
    outputs = model.generate(texts)
    assert outputs[0] == model.detokenize(ids[:1, :stop])[0]
    if not len(stops[1]):
        assert mask[1].all()
    assert model.generate(texts[0]) == outputs[0]


def test_string_generation_with_per_example_prompts(text_model):
    texts = ["the cat likes the movie", "a dog sees"]
    prompts = np.stack([text_model.get_prompt(), text_model.get_prompt() * -1])
    mixed = text_model.generate(texts, prompts=prompts)
    assert mixed[0] == text_model.generate(texts[0])
    original = text_model.get_prompt()
    try:
        text_model.set_prompt(prompts[1])
        assert mixed[1] == text_model.generate(texts[1])
    finally:
        text_model.set_prompt(original)


def test_score_agrees_with_exact_match_decoding(untied_model):
    """Candidates that share the greedy prefix and differ only in the last
    token: greedy decoding's choice must also score highest."""
    inputs = make_token_batch(batch_size=1)
    generated = untied_model.generate(
        generation_inputs(inputs, 5), stop_token_ids=None
    )["decoder_token_ids"][0, 1:]
    greedy = [int(i) for i in generated]
    others = [greedy[:-1] + [t] for t in (7, 8, 9) if t != greedy[-1]]
    encoder_inputs = {k: inputs[k] for k in ("encoder_token_ids", "encoder_padding_mask")}

    scores = untied_model.score(encoder_inputs, others[:1] + [greedy] + others[1:])

    assert scores.shape == (1, 1 + len(others))
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)
    assert int(np.argmax(scores[0])) == 1


def test_score_equals_sum_of_token_log_probs(text_model):
    tokenizer = text_model.preprocessor.tokenizer
    text = "a dog sees"
    target = [int(i) for i in tokenizer("positive")] + [1]
    encoder = text_model.preprocessor.generate_preprocess([text])
    inputs = {
        "encoder_token_ids": encoder["encoder_token_ids"].numpy(),
        "encoder_padding_mask": encoder["encoder_padding_mask"].numpy(),
        "decoder_token_ids": np.array([[0] + target[:-1]], "int32"),
        "decoder_padding_mask": np.ones((1, len(target)), "int32"),
    }
    logits = text_model(inputs).numpy()[0]
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = sum(log_probs[i, t] for i, t in enumerate(target))
    np.testing.assert_allclose(
        text_model.score(text, ["positive"])[0, 0], expected, rtol=1e-5
    )


def test_set_prompt_validates():
    model = make_model()
    with pytest.raises(ValueError, match=r"\(4, 16\)"):
        model.set_prompt(np.zeros((5, 16)))
    with pytest.raises(ValueError, match="NaN"):
        model.set_prompt(np.full((4, 16), np.nan))


@pytest.mark.parametrize("as_tensor", [False, True])
def test_per_example_prompts_refuse_non_finite_rows(tied_model, as_tensor):
    batch = make_token_batch(batch_size=3, encoder_length=5, decoder_length=4)
    prompts = np.zeros((3, PROMPT_LENGTH, 16), "float32")
    prompts[1, 0, 0] = np.nan
    prompts[2, 3, 5] = np.inf
    if as_tensor:
        prompts = ops.convert_to_tensor(prompts)
    for call in (
        lambda: tied_model.forward(batch, prompts=prompts),
        lambda: tied_model.generate(batch, prompts=prompts),
    ):
        with pytest.raises(ValueError, match=r"`prompts` has NaN or infinite "
                           r"values in rows \[1, 2\]"):
            call()


def test_rejects_non_t5_backbone():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=10, num_layers=1, num_heads=1, hidden_dim=4,
        intermediate_dim=4, max_sequence_length=8,
    )
    with pytest.raises(TypeError, match="T5Backbone"):
        PromptedT5Seq2SeqLM(backbone)


def test_missing_input_key_is_named(tied_model):
    inputs = make_token_batch()
    del inputs["decoder_padding_mask"]
    with pytest.raises(ValueError, match="decoder_padding_mask"):
        tied_model(inputs)


def test_initializers_by_name():
    preprocessor = make_tiny_preprocessor()
    tokenizer = preprocessor.tokenizer
    model = make_model(
        preprocessor=preprocessor,
        prompt_initializer="class_labels",
        labels=["positive", "negative"],
    )
    embeddings = model.backbone.token_embedding.embeddings.numpy()
    prompt = model.get_prompt()
    for row, label in enumerate(["positive", "negative"]):
        ids = np.asarray(tokenizer(label))
        np.testing.assert_allclose(prompt[row], embeddings[ids].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        make_model(preprocessor=preprocessor, prompt_initializer="class_labels")
    with pytest.raises(ValueError, match="tokenizer"):
        make_model(prompt_initializer="class_labels", labels=["positive"])


def test_config_round_trip_keeps_prompt_settings(tmp_path):
    model = make_model(prompt_initializer="sampled_vocab", labels=["a", "b"])
    restored = PromptedT5Seq2SeqLM.from_config(model.get_config())
    assert restored.prompt_length == PROMPT_LENGTH
    assert restored.labels == ["a", "b"]
    assert restored.prompt_initializer == "sampled_vocab"
    assert restored.get_config() == model.get_config()
    # from_config re-creates the backbone (new random weights); the seeded
    # sampled-vocab initializer still copies rows of *its* embedding table.
    embeddings = restored.backbone.token_embedding.embeddings.numpy()
    for row in restored.get_prompt():
        assert np.isclose(embeddings, row, atol=0).all(axis=1).any()


def test_whole_model_saves_and_loads(tmp_path):
    model = make_model(tied=False)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, PromptedT5Seq2SeqLM)
    inputs = make_token_batch()
    np.testing.assert_allclose(restored(inputs), model(inputs), atol=1e-6)
    assert [w.path for w in restored.trainable_weights] == ["prompt/prompt"]


def test_from_preset_directory(tmp_path):
    backbone = make_tiny_backbone(tied=False)
    preprocessor = make_tiny_preprocessor()
    preset = str(tmp_path / "preset")
    backbone.save_to_preset(preset)
    preprocessor.save_to_preset(preset)

    model = PromptedT5Seq2SeqLM.from_preset(
        preset, prompt_length=3, encoder_sequence_length=10
    )

    assert model.prompt_length == 3
    assert model.preprocessor.encoder_sequence_length == 10
    np.testing.assert_array_equal(
        model.backbone.token_embedding.embeddings.numpy(),
        backbone.token_embedding.embeddings.numpy(),
    )
    assert model.backbone_fingerprint() == PromptedT5Seq2SeqLM(
        backbone, prompt_length=3
    ).backbone_fingerprint()


def test_saved_prompt_records_its_sequence_lengths(text_model, tmp_path):
    from keras_prompt.prompts import read_prompt_file

    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=text_model.preprocessor.tokenizer,
        encoder_sequence_length=64,
        decoder_sequence_length=8,
    )
    model = PromptedT5Seq2SeqLM(
        text_model.backbone, preprocessor, prompt_length=PROMPT_LENGTH
    )
    _, metadata = read_prompt_file(model.save_prompt(tmp_path / "a.safetensors"))
    assert metadata["encoder_sequence_length"] == 64
    assert metadata["decoder_sequence_length"] == 8

    # A training run that fed other lengths than the preprocessor's says so.
    path = model.save_prompt(
        tmp_path / "b.safetensors",
        encoder_sequence_length=48,
        decoder_sequence_length=3,
    )
    _, metadata = read_prompt_file(path)
    assert metadata["encoder_sequence_length"] == 48
    assert metadata["decoder_sequence_length"] == 3

    # Without a preprocessor there is nothing to record; the file loads.
    bare = PromptedT5Seq2SeqLM(text_model.backbone, prompt_length=PROMPT_LENGTH)
    path = bare.save_prompt(tmp_path / "c.safetensors")
    _, metadata = read_prompt_file(path)
    assert "encoder_sequence_length" not in metadata
    assert "decoder_sequence_length" not in metadata
    assert model.load_prompt(path)["backbone_fingerprint"]
