"""The one cached decoding loop and the T5 step it drives."""

import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from keras_prompt import PromptedT5Seq2SeqLM
from keras_prompt.models.decoding_loop import decode_tokens
from keras_prompt.models.decoding_loop import greedy_next_token
from keras_prompt.models.decoding_loop import sampler_next_token
from keras_prompt.models.t5_cached_decoder import T5CachedDecoder
from tests.conftest import make_tiny_backbone
from tests.conftest import make_token_batch

VOCABULARY = 6


def scripted_step(script):
    """A step whose logits at position `index + 1` pick `script[:, index+1]`
    and that counts its calls in the cache."""
    script = tf.constant(script, tf.int32)

    def step(token_ids, index, cache):
        logits = tf.one_hot(script[:, index + 1], VOCABULARY) * 5.0
        return logits, (cache[0] + 1,)

    return step


def run(script, fixed=None, stop_token_ids=(1,)):
    script = np.asarray(script, "int32")
    fixed = np.zeros_like(script, bool) if fixed is None else np.asarray(fixed)
    fixed[:, 0] = True
    tokens = np.where(fixed, script, 0)
    step = scripted_step(script)
    ids, mask = decode_tokens(
        step, (tf.zeros([], tf.int32),), tokens, fixed,
        stop_token_ids=stop_token_ids, next_token=greedy_next_token,
    )
    return np.asarray(ids), np.asarray(mask)


def test_rows_stop_at_their_first_stop_token_and_pad_after():
    ids, mask = run([[0, 3, 1, 4, 5], [0, 4, 4, 5, 1], [0, 2, 3, 2, 3]])
    np.testing.assert_array_equal(
        ids, [[0, 3, 1, 0, 0], [0, 4, 4, 5, 1], [0, 2, 3, 2, 3]])
    np.testing.assert_array_equal(
        mask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])


def test_decoder_prefix_is_kept_and_its_stop_ids_do_not_count():
    script = [[0, 1, 3, 1, 4], [0, 2, 2, 2, 2]]
    fixed = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], bool)
    ids, mask = run(script, fixed)
    np.testing.assert_array_equal(ids, [[0, 1, 3, 1, 0], [0, 2, 2, 2, 2]])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])


def test_loop_ends_when_every_row_has_stopped():
    script = np.array([[0, 1, 3, 3, 3, 3, 3, 3], [0, 2, 1, 3, 3, 3, 3, 3]])
    fixed = np.zeros_like(script, bool)
    fixed[:, 0] = True
    ids, _ = decode_tokens(
        scripted_step(script), (tf.zeros([], tf.int32),),
        np.where(fixed, script, 0), fixed, stop_token_ids=(1,),
        next_token=greedy_next_token,
    )
    calls = []

    def counting(token_ids, index, cache):
        calls.append(1)
        return scripted_step(script)(token_ids, index, cache)

    # Eagerly the body runs once per decoded position: 2, not 7.
    decode_tokens(counting, (tf.zeros([], tf.int32),), np.where(fixed, script, 0),
                  fixed, stop_token_ids=(1,), next_token=greedy_next_token)
    assert len(calls) == 2
    np.testing.assert_array_equal(ids[:, 3:], 0)


def test_without_stop_ids_every_position_is_generated():
    ids, mask = run([[0, 1, 1, 2]], stop_token_ids=None)
    np.testing.assert_array_equal(ids, [[0, 1, 1, 2]])
    assert mask.all()


def test_portable_greedy_choice_equals_keras_argmax():
    """`tf.argmax` on the probabilities (what exports use) picks what Keras's
    argmax does, ties included (first maximum)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(64, 50)).astype("float32")
    logits[:8, 3] = logits[:8, 7] = 40.0  # exact ties
    logits[8:16] = 0.0
    logits[16, :] = -0.0
    np.testing.assert_array_equal(
        greedy_next_token(logits, portable=True), greedy_next_token(logits)
    )
    assert (np.asarray(greedy_next_token(logits))[:8] == 3).all()


def test_beam_search_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="BeamSampler"):
        sampler_next_token(keras_hub.samplers.BeamSampler())


@pytest.fixture(scope="module")
def model():
    return PromptedT5Seq2SeqLM(make_tiny_backbone(tied=True), prompt_length=3,
                               seed=0, compile=False)


def test_step_logits_equal_the_full_decoder(model):
    """Feeding a sequence through the cached step gives, position by
    position, the logits of the model's own full `decode()`."""
    batch = make_token_batch(batch_size=2, decoder_length=6)
    encoder_outputs, encoder_mask = model.encode(
        batch["encoder_token_ids"], batch["encoder_padding_mask"])
    tokens = batch["decoder_token_ids"].copy()
    tokens[:] = np.random.default_rng(1).integers(3, 100, tokens.shape)
    tokens[:, 0] = 0
    full = np.asarray(model.decode(encoder_outputs, encoder_mask, tokens,
                                   np.ones_like(tokens)))
    for portable in (False, True):
        decoder = T5CachedDecoder(model.backbone, model.logits_from_hidden,
                                  portable=portable)
        context, cache = decoder.init_cache(encoder_outputs, encoder_mask, 6)
        for index in range(5):
            logits, cache = decoder.step(tokens[:, index], index, cache,
                                         context)
            np.testing.assert_allclose(logits, full[:, index], atol=2e-5)


def test_portable_cache_write_equals_slice_update(model):
    decoder = T5CachedDecoder(model.backbone, model.logits_from_hidden)
    portable = T5CachedDecoder(model.backbone, model.logits_from_hidden,
                               portable=True)
    rng = np.random.default_rng(2)
    encoder_outputs = rng.normal(size=(3, 5, 16)).astype("float32")
    (_, _, grid), (cache, *_) = portable.init_cache(
        encoder_outputs, np.ones((3, 5), "int32"), 7)
    cache = rng.normal(size=cache.shape).astype("float32")
    update = rng.normal(size=(3, 2, 1, 8)).astype("float32")
    for index in (0, 3, 6):
        expected = cache.copy()
        expected[:, :, index : index + 1] = update
        np.testing.assert_array_equal(
            decoder._write(cache, update, index, None), expected)
        np.testing.assert_array_equal(
            portable._write(cache, update, index, portable._rows(grid, index)),
            expected)


def test_decoding_follows_the_dtype_policy():
    """Under mixed bfloat16 the loop runs in bfloat16 (no float32 bias added
    to bfloat16 scores) and returns float32 logits."""
    backbone = keras_hub.models.T5Backbone.from_config(
        {**make_tiny_backbone(tied=False).get_config(), "dtype": "mixed_bfloat16"})
    model = PromptedT5Seq2SeqLM(backbone, prompt_length=3, seed=0, compile=False)
    batch = make_token_batch(batch_size=2)
    encoder = {k: batch[k] for k in ("encoder_token_ids", "encoder_padding_mask")}
    out = model.generate(encoder, max_length=5, stop_token_ids=None)
    assert out["decoder_token_ids"].shape == (2, 5)
    encoder_outputs, mask = model.encode(**{
        "encoder_token_ids": batch["encoder_token_ids"],
        "encoder_padding_mask": batch["encoder_padding_mask"]})
    assert encoder_outputs.dtype == "bfloat16"
    decoder = T5CachedDecoder(model.backbone, model.logits_from_hidden)
    context, cache = decoder.init_cache(encoder_outputs, mask, 5)
    logits, cache = decoder.step(ops.zeros((2,), "int32"), 0, cache, context)
    assert logits.dtype == "float32" and cache[0].dtype == "bfloat16"


def _compiled(function_def):
    attr = function_def.attr
    return "_XlaMustCompile" in attr and attr["_XlaMustCompile"].b


def _xla_calls(concrete_function):
    """Names of the functions a traced graph calls with XLA (at any depth)."""
    return [function.name
            for function in concrete_function.graph._functions.values()
            if _compiled(function.cached_definition)]


def test_on_cpu_auto_runs_only_the_loop_under_xla():
    """`compile()`'s "auto" leaves the model on TensorFlow's kernels on this
    CPU machine and compiles the decoding loop with XLA; `jit_compile=False`
    compiles nothing; the ids are the same."""
    backbone = make_tiny_backbone()
    batch = make_token_batch(batch_size=3, decoder_length=6)
    batch["decoder_padding_mask"][:, 1:] = 0
    outputs, graphs = {}, {}
    for mode in ("xla", "loop", "none"):
        model = PromptedT5Seq2SeqLM(backbone, prompt_length=2, seed=0)
        model.compile(jit_compile={"xla": True, "loop": "auto", "none": False}[mode])
        outputs[mode] = model.generate(batch, stop_token_ids=None)
        inputs = {k: tf.constant(v, tf.int32) for k, v in batch.items()}
        graphs[mode] = model.generate_function.get_concrete_function(
            inputs, stop_token_ids=None)
    assert not _compiled(graphs["loop"].function_def)
    assert _compiled(graphs["xla"].function_def)
    assert model.compile_decoding_loop is False  # the last: "none"
    assert len(_xla_calls(graphs["loop"])) == 1
    assert _xla_calls(graphs["none"]) == []
    for mode in ("loop", "none"):
        np.testing.assert_array_equal(outputs[mode]["decoder_token_ids"],
                                      outputs["xla"]["decoder_token_ids"])
