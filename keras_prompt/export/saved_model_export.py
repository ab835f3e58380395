"""SavedModel export in the TF Serving layout `<out>/<model_name>/<version>/`."""

import logging
import os

import numpy as np
import tensorflow as tf

from keras_prompt.export import metadata as metadata_lib
from keras_prompt.export.atomic import atomic_directory
from keras_prompt.export.export_error import ExportError
from keras_prompt.export.export_prompts import ExportPrompts
from keras_prompt.export.input_checks import assert_one_row_each
from keras_prompt.export.input_checks import assert_valid
from keras_prompt.export.warmup_requests import write_warmup_requests

logger = logging.getLogger(__name__)

SIGNATURE_NAMES = ("serving_default", "generate_ids", "logits")


def task_ids_from_strings(task, task_names):
    """Maps task strings (a name, or a decimal id) to int32 ids in-graph.

    Any unknown name or out-of-range id fails the whole request with an
    `InvalidArgument` error that lists the offending values and the known
    tasks; no example ever falls back to another task's prompt.
    """
    num_tasks = len(task_names)
    names = tf.constant(task_names, tf.string)
    matches = tf.equal(tf.expand_dims(task, 1), tf.expand_dims(names, 0))
    is_name = tf.reduce_any(matches, axis=1)
    name_ids = tf.argmax(
        tf.cast(matches, tf.int32), axis=1, output_type=tf.int32
    )
    is_number = tf.strings.regex_full_match(task, "[0-9]{1,9}")
    numbers = tf.strings.to_number(
        tf.where(is_number, task, tf.fill(tf.shape(task), "0")), tf.int32
    )
    invalid_id = tf.fill(tf.shape(task), -1)
    ids = tf.where(is_name, name_ids, tf.where(is_number, numbers, invalid_id))
    valid = tf.logical_and(ids >= 0, ids < num_tasks)
    known = ", ".join(f"{i}={name}" for i, name in enumerate(task_names))
    check = tf.debugging.Assert(
        tf.reduce_all(valid),
        [
            f"Unknown task name or out-of-range task id (known tasks, id=name: "
            f"{known}; ids must be in [0, {num_tasks})). Invalid task values:",
            tf.boolean_mask(task, tf.logical_not(valid)),
        ],
        summarize=16,
        name="check_task",
    )
    with tf.control_dependencies([check]):
        return tf.identity(ids)


class _ServingModule(tf.Module):
    """The object that is saved: the inference module, the tokenizer and the
    three signatures. It references no Keras object."""

    def __init__(
        self,
        core,
        task_names,
        tokenizer_proto,
        detokenizer,
        encoder_sequence_length,
        max_decode_length,
    ):
        super().__init__(name="keras_prompt_serving")
        self.core = core
        self._task_names = list(task_names)
        self._encoder_sequence_length = int(encoder_sequence_length)
        self._max_decode_length = int(max_decode_length)
        self._detokenizer = detokenizer
        self.tokenizer = None
        if tokenizer_proto is not None:
            import tensorflow_text as tf_text

            self.tokenizer = tf_text.SentencepieceTokenizer(
                model=tokenizer_proto,
                out_type=tf.int32,
                name="keras_prompt_tokenizer",
            )
            # Tracked here so that the SavedModel holds its resource.
            self.detokenizer = detokenizer.graph_detokenizer()

    # ---- prompts ---------------------------------------------------- #
    def _extra_spec(self):
        core = self.core
        if core.mode == "bank":
            return tf.TensorSpec([None], tf.string, name="task")
        if core.mode == "runtime":
            return tf.TensorSpec(
                [None, core.prompt_length, core.hidden_dim],
                tf.float32,
                name="prompts",
            )
        return None

    def _prompts(self, batch_size, extra):
        core = self.core
        if core.mode == "baked":
            return core.baked_prompts(batch_size)
        if core.mode == "bank":
            check = assert_one_row_each(
                extra, batch_size, "`task` must have one task per example"
            )
            with tf.control_dependencies([check]):
                ids = task_ids_from_strings(extra, self._task_names)
            return core.bank_prompts(ids)
        checks = [
            assert_one_row_each(
                extra,
                batch_size,
                "`prompts` must have one [prompt_length, hidden_dim] prompt "
                "per example",
            )
        ]
        checks += assert_valid({"prompts": extra}, core.vocabulary_size)
        with tf.control_dependencies(checks):
            return tf.identity(extra)

    # ---- text ------------------------------------------------------- #
    def _tokenize(self, inputs):
        """Strings -> KerasHub-packed encoder ids and mask (tokens truncated
        to `length - 1`, then `</s>`, then 0 padding)."""
        length = self._encoder_sequence_length
        ragged = self.tokenizer.tokenize(inputs)
        lengths = tf.cast(
            tf.minimum(ragged.row_lengths(), length - 1), tf.int32
        )
        dense = ragged.to_tensor(default_value=0, shape=[None, length])
        dense = tf.cast(dense, tf.int32)
        positions = tf.expand_dims(tf.range(length), 0)
        lengths = tf.expand_dims(lengths, 1)
        dense = tf.where(positions < lengths, dense, tf.zeros_like(dense))
        dense = tf.where(
            tf.equal(positions, lengths),
            tf.fill(tf.shape(dense), self.core.end_token_id),
            dense,
        )
        mask = tf.cast(positions <= lengths, tf.int32)
        return dense, mask

    def _detokenize(self, token_ids):
        """The one detokenization rule (`T5Detokenizer`)."""
        return self._detokenizer.detokenize(token_ids)

    # ---- warm-up ---------------------------------------------------- #
    def warmup_requests(self, signature_names):
        """One small request per signature, for TF Serving's warm-up."""
        core = self.core
        extra = {}
        if core.mode == "bank":
            extra = {"task": np.array([self._task_names[0]], dtype=object)}
        elif core.mode == "runtime":
            extra = {
                "prompts": np.zeros(
                    (1, core.prompt_length, core.hidden_dim), np.float32
                )
            }
        ids = np.array([[core.end_token_id]], np.int32)
        ones = np.ones((1, 1), np.int32)
        inputs = {
            "serving_default": {"inputs": np.array(["warm up"], dtype=object)},
            "generate_ids": {
                "encoder_token_ids": ids,
                "encoder_padding_mask": ones,
            },
            "logits": {
                "encoder_token_ids": ids,
                "encoder_padding_mask": ones,
                "decoder_token_ids": np.zeros((1, 1), np.int32),
                "decoder_padding_mask": ones,
            },
        }
        return [(name, {**inputs[name], **extra}) for name in signature_names]

    # ---- signatures ------------------------------------------------- #
    def _checked(self, named, extra):
        """The token inputs `named` and the examples' prompts, as read after
        every check of the request passed (shapes, ids, masks, `task` /
        `prompts`), so that no layer sees an input before it is checked."""
        checks = []
        for side in ("encoder", "decoder"):
            if f"{side}_token_ids" in named:
                checks.append(
                    tf.debugging.assert_equal(
                        tf.shape(named[f"{side}_token_ids"]),
                        tf.shape(named[f"{side}_padding_mask"]),
                        message=f"{side}_token_ids and {side}_padding_mask "
                        "must have the same shape",
                    )
                )
        batch_size = tf.shape(named["encoder_token_ids"])[0]
        if "decoder_token_ids" in named:
            checks.append(
                tf.debugging.assert_equal(
                    batch_size,
                    tf.shape(named["decoder_token_ids"])[0],
                    message="encoder and decoder inputs need the same batch size",
                )
            )
        checks += assert_valid(named, self.core.vocabulary_size)
        with tf.control_dependencies(checks):
            checked = {name: tf.identity(value) for name, value in named.items()}
            return checked, self._prompts(batch_size, extra)

    def signatures(self):
        core = self.core
        extra_spec = self._extra_spec()
        extra_specs = [] if extra_spec is None else [extra_spec]
        ids_spec = [
            tf.TensorSpec([None, None], tf.int32, name="encoder_token_ids"),
            tf.TensorSpec([None, None], tf.int32, name="encoder_padding_mask"),
        ]
        decoder_spec = [
            tf.TensorSpec([None, None], tf.int32, name="decoder_token_ids"),
            tf.TensorSpec([None, None], tf.int32, name="decoder_padding_mask"),
        ]

        def logits_fn(
            encoder_token_ids,
            encoder_padding_mask,
            decoder_token_ids,
            decoder_padding_mask,
            extra=None,
        ):
            named, prompts = self._checked(
                {
                    "encoder_token_ids": encoder_token_ids,
                    "encoder_padding_mask": encoder_padding_mask,
                    "decoder_token_ids": decoder_token_ids,
                    "decoder_padding_mask": decoder_padding_mask,
                },
                extra,
            )
            logits = core.forward(
                named["encoder_token_ids"],
                named["encoder_padding_mask"],
                named["decoder_token_ids"],
                named["decoder_padding_mask"],
                prompts,
            )
            return {"logits": logits}

        def generate_fn(encoder_token_ids, encoder_padding_mask, extra=None):
            named, prompts = self._checked(
                {
                    "encoder_token_ids": encoder_token_ids,
                    "encoder_padding_mask": encoder_padding_mask,
                },
                extra,
            )
            token_ids = core.greedy_generate(
                named["encoder_token_ids"],
                named["encoder_padding_mask"],
                prompts,
                self._max_decode_length,
            )
            return {"token_ids": token_ids}

        def text_fn(inputs, extra=None):
            token_ids, padding_mask = self._tokenize(inputs)
            prompts = self._prompts(tf.shape(inputs)[0], extra)
            generated = core.greedy_generate(
                token_ids, padding_mask, prompts, self._max_decode_length
            )
            return {"outputs": self._detokenize(generated)}

        def concrete(fn, specs):
            if extra_spec is None:
                function = tf.function(
                    lambda *args: fn(*args), input_signature=specs, autograph=False
                )
            else:
                function = tf.function(
                    fn, input_signature=specs + extra_specs, autograph=False
                )
            return function.get_concrete_function()

        signatures = {
            "generate_ids": concrete(generate_fn, ids_spec),
            "logits": concrete(logits_fn, ids_spec + decoder_spec),
        }
        if self.tokenizer is not None:
            signatures["serving_default"] = concrete(
                text_fn, [tf.TensorSpec([None], tf.string, name="inputs")]
            )
        return signatures


def export_saved_model(
    model,
    export_dir,
    *,
    mode,
    prompts=None,
    model_name="keras_prompt",
    version=1,
    max_decode_length=32,
    overwrite=False,
    text_signature=True,
):
    """Exports a prompted T5 as a SavedModel for TF Serving.

    The result loads in a process that imports only `tensorflow` and
    `tensorflow_text` (for the SentencePiece ops of `serving_default`); no
    Keras, KerasHub or keras-prompt class is needed. It is written to a
    hidden temporary directory next to the version directory and renamed
    into place, so a failed export leaves no half-written version that TF
    Serving would load.

    Signatures (`B` batch, `S` encoder length, `T` decoder length, `P`
    prompt length, `H` hidden size, `V` vocabulary, `L` =
    `max_decode_length`):

    - `serving_default(inputs: string[B] [, task: string[B] | prompts:
      float32[B, P, H]])` -> `{"outputs": string[B]}`: in-graph
      SentencePiece tokenization (packed like the model's preprocessor:
      `encoder_sequence_length` tokens with `</s>`), greedy decoding,
      detokenization.
    - `generate_ids(encoder_token_ids: int32[B, S], encoder_padding_mask:
      int32[B, S] [, task | prompts])` -> `{"token_ids": int32[B, L]}`.
      Column 0 is the decoder start token 0, as in KerasHub's `generate()`;
      each row stops at its first `</s>` (kept) and later positions are 0.
    - `logits(encoder_token_ids, encoder_padding_mask, decoder_token_ids,
      decoder_padding_mask [, task | prompts])` -> `{"logits":
      float32[B, T, V]}`.

    `task` (mode `"bank"`) is a task name or a decimal task id (`"0"`,
    `"1"`, ...). `prompts` exists in mode `"runtime"` only. A request with
    any bad example fails as a whole, before any work, with
    `InvalidArgument` naming the input, the rows and the values: an unknown
    task name or out-of-range id, a `task` or `prompts` count other than
    the batch's, a NaN or infinite prompt value, a token id outside
    `[0, V)`, a padding-mask value other than 0 and 1, or token ids and
    mask of different shapes.

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM`. Its preprocessor's
            tokenizer provides the SentencePiece model for
            `serving_default`; without a preprocessor only `generate_ids`
            and `logits` are exported.
        export_dir: the TF Serving model base directory's parent.
        mode: `"baked"`, `"runtime"` or `"bank"`.
        prompts: `baked`: a prompt file, a `[P, H]` array, or `None` for the
            model's current prompt; `bank`: dict task name -> prompt file
            (or array); `runtime`: `None`. Prompt files are validated
            against the backbone first.
        model_name: TF Serving model name (directory under `export_dir`).
        version: integer version directory.
        max_decode_length: decoder length `L` of generated sequences
            (including the start token), as `model.generate(max_length=L)`.
        overwrite: replace an existing version directory.
        text_signature: export `serving_default` (text -> text). Its
            SentencePiece ops need a server with matching tensorflow-text
            ops; with `False` the SavedModel has only `generate_ids` and
            `logits` and uses core TensorFlow ops only.

    Returns:
        The version directory path `<export_dir>/<model_name>/<version>`.

    Example:
    ```python
    path = keras_prompt.export.export_saved_model(
        model, "serving", mode="bank",
        prompts={"rte": "rte.safetensors", "sst2": "sst2.safetensors"},
        model_name="t5_prompts", version=1, max_decode_length=8,
    )
    loaded = tf.saved_model.load(path)  # needs `import tensorflow_text`
    loaded.signatures["serving_default"](
        inputs=tf.constant(["rte sentence1: ..."]), task=tf.constant(["rte"]))
    ```
    """
    if not isinstance(version, (int, np.integer)) or int(version) < 0:
        raise ValueError(
            f"`version` must be a non-negative integer (TF Serving only loads "
            f"integer version directories); got {version!r}."
        )
    if int(max_decode_length) < 2:
        raise ValueError(
            f"`max_decode_length` must be >= 2 (the start token plus at least "
            f"one generated token); got {max_decode_length}."
        )
    if not model_name or os.sep in model_name:
        raise ValueError(f"Invalid `model_name` {model_name!r}.")
    resolved = ExportPrompts.from_model(model, mode, prompts)
    tokenizer = metadata_lib.tokenizer_of(model) if text_signature else None
    detokenizer = model.detokenizer if tokenizer is not None else None
    if text_signature and tokenizer is None:
        logger.warning(
            "The model has no preprocessor: exporting without the text "
            "signature `serving_default` (only `generate_ids` and `logits`). "
            "Attach a T5Seq2SeqLMPreprocessor to export text -> text."
        )
    version_dir = os.path.join(
        os.path.abspath(os.fspath(export_dir)), model_name, str(int(version))
    )
    if os.path.exists(version_dir) and not overwrite:
        raise FileExistsError(
            f"'{version_dir}' already exists. Export to a new version number "
            "(TF Serving serves the highest), or pass overwrite=True."
        )
    core = resolved.build_module(model)
    module = _ServingModule(
        core,
        resolved.task_names,
        None if tokenizer is None else tokenizer.proto,
        detokenizer,
        metadata_lib.encoder_sequence_length(model),
        max_decode_length,
    )
    signatures = module.signatures()
    description = metadata_lib.export_metadata(
        model,
        resolved,
        "savedmodel",
        max_decode_length=int(max_decode_length),
        signatures=sorted(signatures),
    )
    with atomic_directory(version_dir, overwrite=overwrite) as temp_dir:
        try:
            tf.saved_model.save(module, temp_dir, signatures=signatures)
        except Exception as error:
            raise ExportError(
                f"Writing the SavedModel for '{version_dir}' failed: {error}"
            ) from error
        extra_dir = os.path.join(temp_dir, "assets.extra")
        os.makedirs(extra_dir, exist_ok=True)
        with open(
            os.path.join(extra_dir, metadata_lib.METADATA_FILENAME), "w"
        ) as file:
            file.write(metadata_lib.dumps(description))
        write_warmup_requests(
            temp_dir, model_name, module.warmup_requests(sorted(signatures))
        )
    logger.info(
        "Exported %s-mode SavedModel (signatures %s) to %s.",
        mode,
        ", ".join(sorted(signatures)),
        version_dir,
    )
    return version_dir
