"""The SavedModel object of a decoder-only model's export."""

import logging

import numpy as np
import tensorflow as tf

from keras_prompt.export.input_checks import assert_valid
from keras_prompt.export.input_checks import right_padded
from keras_prompt.export.saved_model_export import _ServingModule
from keras_prompt.models.causal_texts import causal_texts

logger = logging.getLogger(__name__)


class CausalServingModule(_ServingModule):
    """What a `PromptedCausalLM`'s SavedModel holds: the inference module
    (`CausalExportModule`), the model's KerasHub tokenizer (its
    tensorflow-text ops and lookup tables, saved as plain TensorFlow
    objects) and the signatures.

    Text is formatted as `CausalTextToTextPipeline` formats generation
    inputs: the start token, the input's tokens (truncated to leave room
    for the separator) and the separator's tokens, in `max_input_length`
    tokens; the output is the continuation's text by the model's own rule
    (`causal_texts`).

    Args:
        core: a `CausalExportModule`.
        task_names: the bank's task names (id order), or `[]`.
        pipeline: a `CausalTextToTextPipeline` on the model's tokenizer
            (its `max_input_length` and `separator` format the text), or
            `None` (no text signature).
        max_new_tokens: tokens generated per example.
    """

    def __init__(self, core, task_names, pipeline, max_new_tokens):
        tf.Module.__init__(self, name="keras_prompt_serving")
        self.core = core
        self._task_names = list(task_names)
        self._ensembles = None
        self._max_new_tokens = int(max_new_tokens)
        self._pipeline = pipeline
        # Tracked here so that the SavedModel holds its tables.
        self.tokenizer = None if pipeline is None else pipeline.tokenizer

    def _input_checks(self, named, new_tokens):
        """The asserts over `token_ids` / `padding_mask`: same shape, ids in
        the vocabulary, right-padded masks with a token per row, and room
        for the prompt, the inputs and `new_tokens` in the backbone's
        positions (GPT-2)."""
        ids, mask = named["token_ids"], named["padding_mask"]
        checks = [
            tf.debugging.assert_equal(
                tf.shape(ids),
                tf.shape(mask),
                message="token_ids and padding_mask must have the same shape",
            )
        ]
        checks += assert_valid(named, self.core.vocabulary_size)
        with tf.control_dependencies(checks):
            valid = right_padded(mask)
        checks.append(
            tf.debugging.Assert(
                tf.reduce_all(valid),
                [
                    "`padding_mask` rows must be ones (the row's tokens, at "
                    "least its start token) then zeros (right padding). Rows:",
                    tf.reshape(tf.where(~valid), [-1]),
                ],
                name="check_right_padding",
            )
        )
        limit = self.core.max_sequence_length
        if limit is not None:
            needed = self.core.prompt_length + tf.shape(ids)[1] + new_tokens
            checks.append(
                tf.debugging.Assert(
                    needed <= limit,
                    [
                        tf.strings.format(
                            "A prompt of {} positions, {} input columns and "
                            "{} generated tokens need {} positions; the "
                            "backbone has {}: send at most {} columns.",
                            (
                                self.core.prompt_length,
                                tf.shape(ids)[1],
                                new_tokens,
                                needed,
                                limit,
                                limit - self.core.prompt_length - new_tokens,
                            ),
                        )
                    ],
                    name="check_positions",
                )
            )
        return checks

    def _checked_inputs(self, token_ids, padding_mask, extra, new_tokens):
        named = {"token_ids": token_ids, "padding_mask": padding_mask}
        with tf.control_dependencies(self._input_checks(named, new_tokens)):
            named = {key: tf.identity(value) for key, value in named.items()}
            prompts = self._prompts(tf.shape(token_ids)[0], extra)
        return named, prompts

    def _texts(self, new_ids):
        """The continuation's text: ids up to the first end token."""
        is_end = tf.equal(new_ids, self.core.end_token_id)
        before_end = tf.equal(
            tf.cumsum(tf.cast(is_end, tf.int32), axis=1, exclusive=True), 0
        )
        return causal_texts(self.tokenizer, new_ids, before_end)

    def warmup_requests(self, signature_names):
        """One small request per signature, for TF Serving's warm-up."""
        core = self.core
        extra = self._warmup_extra()
        ids = {
            "token_ids": np.array([[core.end_token_id]], np.int32),
            "padding_mask": np.ones((1, 1), np.int32),
        }
        inputs = {
            "serving_default": {"inputs": np.array(["warm up"], dtype=object)},
            "generate_ids": ids,
            "logits": ids,
        }
        return [(name, {**inputs[name], **extra}) for name in signature_names]

    def signatures(self):
        core = self.core
        concrete = self._concrete
        ids_spec = [
            tf.TensorSpec([None, None], tf.int32, name="token_ids"),
            tf.TensorSpec([None, None], tf.int32, name="padding_mask"),
        ]
        new_tokens = self._max_new_tokens
        # One trace of the decoding loop for both signatures: they call it.
        # Traced now, so within the caller's `scatter_cache_writes()`.
        generate = self._shared_generate(ids_spec, new_tokens)

        def logits_fn(token_ids, padding_mask, extra=None):
            named, prompts = self._checked_inputs(
                token_ids, padding_mask, extra, 0
            )
            logits = core.forward(
                named["token_ids"], named["padding_mask"], prompts
            )
            return {"logits": logits}

        def generate_fn(token_ids, padding_mask, extra=None):
            named, prompts = self._checked_inputs(
                token_ids, padding_mask, extra, new_tokens
            )
            new_ids = generate(
                named["token_ids"], named["padding_mask"], prompts
            )
            return {"new_token_ids": new_ids}

        def text_fn(inputs, extra=None):
            token_ids, padding_mask = self._pipeline.generation_inputs(inputs)
            prompts = self._prompts(tf.shape(inputs)[0], extra)
            new_ids = generate(token_ids, padding_mask, prompts)
            return {"outputs": self._texts(new_ids)}

        signatures = {
            "generate_ids": concrete(generate_fn, ids_spec),
            "logits": concrete(logits_fn, ids_spec),
        }
        if self.tokenizer is not None:
            signatures["serving_default"] = concrete(
                text_fn, [tf.TensorSpec([None], tf.string, name="inputs")]
            )
        return signatures


def causal_serving_module(
    model,
    core,
    resolved,
    tokenizer,
    max_decode_length,
    *,
    max_new_tokens=None,
    max_input_length=None,
    separator=None,
):
    """The `CausalServingModule` of an export, its traced signatures and
    the lengths the export description records.

    Signatures are traced with KerasHub's cache writes as scatters
    (`scatter_cache_writes`): TF Serving runs no on-demand XLA.

    Raises:
        ValueError: a length below 1, or (GPT-2) a prompt, input and
            continuation longer than the backbone's positions.
    """
    from keras_prompt.data.causal_text_to_text_pipeline import (
        DEFAULT_SEPARATOR,
    )
    from keras_prompt.data.causal_text_to_text_pipeline import (
        CausalTextToTextPipeline,
    )
    from keras_prompt.export.graph_functions import generation_lengths
    from keras_prompt.export.scatter_cache_writes import scatter_cache_writes

    if max_input_length is None:
        max_input_length = getattr(model.preprocessor, "sequence_length", None)
    if tokenizer is not None and max_input_length is None:
        raise ValueError(
            "`max_input_length` is needed for the text signature of a "
            "model whose preprocessor has no `sequence_length`."
        )
    new_tokens, lengths = generation_lengths(
        core, "generate", max_decode_length, max_new_tokens,
        sequence_length=max_input_length if tokenizer is not None else None,
        length_name="max_input_length",
    )
    separator = DEFAULT_SEPARATOR if separator is None else str(separator)
    pipeline = None
    if tokenizer is not None:
        pipeline = CausalTextToTextPipeline(
            tokenizer,
            int(max_input_length),
            new_tokens,
            separator=separator,
        )
        lengths.update(max_input_length=int(max_input_length),
                       separator=separator)
    if resolved.ensemble_tasks:
        logger.warning(
            "Tasks %s hold several prompts; the ensemble signatures are "
            "T5-only, so each task's name runs its first prompt (every "
            "prompt runs by its id, listed in `task_prompt_ids`).",
            resolved.ensemble_tasks,
        )
    module = CausalServingModule(core, resolved.task_names, pipeline, new_tokens)
    with scatter_cache_writes():
        signatures = module.signatures()
    return module, signatures, lengths
