"""SavedModel export in the TF Serving layout `<out>/<model_name>/<version>/`."""

import logging
import os

import numpy as np
import tensorflow as tf

from keras_prompt.export import metadata as metadata_lib
from keras_prompt.export.atomic import atomic_directory
from keras_prompt.export.export_error import ExportError
from keras_prompt.export.export_module import _with_a_row
from keras_prompt.export.export_prompts import ExportPrompts
from keras_prompt.export.input_checks import assert_one_row_each
from keras_prompt.export.input_checks import assert_valid
from keras_prompt.export.warmup_requests import write_warmup_requests
from keras_prompt.models.rank_classification import choice_log_likelihoods

logger = logging.getLogger(__name__)

SIGNATURE_NAMES = ("serving_default", "generate_ids", "logits")
# Exported when the bank holds a task with several prompts (an ensemble).
ENSEMBLE_SIGNATURE_NAMES = ("ensemble_text", "ensemble_ids")


def task_ids_from_strings(task, task_names, num_ids=None):
    """Maps task strings (a name, or a decimal id) to int32 ids in-graph.

    A name gives its task id; a decimal id is taken as it is and must be
    below `num_ids` (default: the number of tasks; a bank with ensembles
    accepts every prompt id). Any unknown name or out-of-range id fails the
    whole request with an `InvalidArgument` error that lists the offending
    values and the known tasks; no example ever falls back to another
    task's prompt.
    """
    num_tasks = len(task_names) if num_ids is None else int(num_ids)
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


class EnsembleTables:
    """The constants the ensemble signatures index by task: each task's
    prompt ids and label words, padded to rectangles.

    Args:
        task_names: the bank's tasks in id order.
        task_prompt_ids: dict task -> prompt ids (`ExportPrompts`).
        label_targets: dict task -> `{"words", "token_ids",
            "max_target_length"}` (`ExportPrompts.label_targets`); tasks
            without label words are absent (an ensemble request for them is
            refused).
    """

    def __init__(self, task_names, task_prompt_ids, label_targets):
        self.task_names = list(task_names)
        self.labelled = [name for name in task_names if name in label_targets]
        most_prompts = max(len(task_prompt_ids[name]) for name in task_names)
        most_labels = max(len(label_targets[n]["words"]) for n in self.labelled)
        longest = max(
            len(ids)
            for name in self.labelled
            for ids in label_targets[name]["token_ids"]
        )
        size = len(task_names)
        self.prompt_ids = np.zeros((size, most_prompts), np.int32)
        self.num_prompts = np.zeros(size, np.int32)
        self.words = np.full((size, most_labels), "", object)
        self.num_labels = np.zeros(size, np.int32)
        self.label_length = np.ones(size, np.int32)
        self.target_length = np.ones(size, np.int32)
        shape = (size, most_labels, longest)
        self.decoder_ids = np.zeros(shape, np.int32)
        self.target_ids = np.zeros(shape, np.int32)
        self.target_mask = np.zeros(shape, np.int32)
        for task, name in enumerate(task_names):
            ids = task_prompt_ids[name]
            self.prompt_ids[task, : len(ids)] = ids
            self.num_prompts[task] = len(ids)
            if name not in label_targets:
                continue
            target = label_targets[name]
            self.words[task, : len(target["words"])] = target["words"]
            self.num_labels[task] = len(target["words"])
            self.label_length[task] = max(map(len, target["token_ids"]))
            self.target_length[task] = target["max_target_length"]
            for label, tokens in enumerate(target["token_ids"]):
                # Decoder inputs: the targets shifted right behind the start
                # token 0 (as `choice_tensors`).
                self.target_ids[task, label, : len(tokens)] = tokens
                self.target_mask[task, label, : len(tokens)] = 1
                self.decoder_ids[task, label, 1 : len(tokens)] = tokens[:-1]
        # Greedy outputs are decoded once to the longest task's length and
        # cut to each task's own (greedy decoding is causal, so a prefix of
        # a longer decode is the shorter decode).
        self.decode_length = int(self.target_length.max()) + 1


class _ServingModule(tf.Module):
    """The object that is saved: the inference module, the tokenizer and the
    signatures. It references no Keras object."""

    def __init__(
        self,
        core,
        task_names,
        tokenizer_proto,
        detokenizer,
        encoder_sequence_length,
        max_decode_length,
        ensembles=None,
    ):
        super().__init__(name="keras_prompt_serving")
        self.core = core
        self._task_names = list(task_names)
        self._ensembles = ensembles
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
    def _prompt_spec(self):
        """The examples' prompts, float32 `[B, P, H]`."""
        return tf.TensorSpec(
            [None, self.core.prompt_length, self.core.hidden_dim],
            tf.float32,
            name="prompts",
        )

    def _extra_spec(self):
        core = self.core
        if core.mode == "bank":
            return tf.TensorSpec([None], tf.string, name="task")
        if core.mode == "runtime":
            return self._prompt_spec()
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
                ids = task_ids_from_strings(
                    extra, self._task_names, core.num_tasks
                )
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

    def _concrete(self, fn, specs):
        """`fn` traced over `specs` and the mode's `task` / `prompts` input
        (passed as `fn`'s last argument)."""
        extra_spec = self._extra_spec()
        if extra_spec is None:
            function = tf.function(
                lambda *args: fn(*args), input_signature=specs, autograph=False
            )
        else:
            function = tf.function(
                fn, input_signature=specs + [extra_spec], autograph=False
            )
        return function.get_concrete_function()

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
    def _warmup_extra(self):
        """The `task` or `prompts` input of a one-example warm-up request."""
        core = self.core
        if core.mode == "bank":
            return {"task": np.array([self._task_names[0]], dtype=object)}
        if core.mode == "runtime":
            return {
                "prompts": np.zeros(
                    (1, core.prompt_length, core.hidden_dim), np.float32
                )
            }
        return {}

    def warmup_requests(self, signature_names):
        """One small request per signature, for TF Serving's warm-up."""
        core = self.core
        extra = self._warmup_extra()
        ids = np.array([[core.end_token_id]], np.int32)
        ones = np.ones((1, 1), np.int32)
        ensemble_task = {}
        if self._ensembles is not None:
            task = np.array(self._ensembles.labelled[0], dtype=object)
            ensemble_task = {"task": task}
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
            "ensemble_text": {
                "inputs": np.array(["warm up"], dtype=object),
                **ensemble_task,
            },
            "ensemble_ids": {
                "encoder_token_ids": ids,
                "encoder_padding_mask": ones,
                **ensemble_task,
            },
        }
        return [
            (
                name,
                inputs[name]
                if name in ENSEMBLE_SIGNATURE_NAMES
                else {**inputs[name], **extra},
            )
            for name in signature_names
        ]

    # ---- signatures ------------------------------------------------- #
    def _checked(self, named, extra):
        """The token inputs `named` and the examples' prompts, as read after
        every check of the request passed (shapes, ids, masks, `task` /
        `prompts`), so that no layer sees an input before it is checked."""
        with tf.control_dependencies(self._token_checks(named)):
            checked = {name: tf.identity(value) for name, value in named.items()}
            batch_size = tf.shape(named["encoder_token_ids"])[0]
            return checked, self._prompts(batch_size, extra)

    def _token_checks(self, named):
        """The asserts over the token inputs `named` (shapes, ids, masks)."""
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
        return checks + assert_valid(named, self.core.vocabulary_size)

    # ---- ensembles -------------------------------------------------- #
    def _ensemble_task(self, task):
        """The scalar `task` string -> its task id, asserting that it is a
        known task with label words."""
        tables = self._ensembles
        task_id = task_ids_from_strings(
            tf.reshape(task, [1]), self._task_names
        )[0]
        labelled = ", ".join(repr(name) for name in tables.labelled)
        check = tf.debugging.Assert(
            tf.gather(tf.constant(tables.num_labels), task_id) > 0,
            [
                "An ensemble votes over the task's label words, and this "
                "task has none (its prompt files record no `labels`; save "
                "them with `save_prompt(labels=...)`). Tasks with label "
                f"words: {labelled}. Task:",
                task,
            ],
            name="check_ensemble_task",
        )
        with tf.control_dependencies([check]):
            return tf.identity(task_id)

    def _ensemble(self, token_ids, padding_mask, task):
        """Every prompt of `task` on every example, in one batch of
        `num_prompts * B` rows (row `k * B + b`: prompt `k`, example `b`),
        then the vote of `keras_prompt.ensemble(method="vote")`: each
        prompt's greedy output (cut to the task's `max_target_length`
        tokens) is matched against the label words; the label with the most
        votes wins, a tie goes to the tied label with the highest mean
        (over the prompts) label log-likelihood, and no vote at all gives
        label -1 and the output ""."""
        core, tables = self.core, self._ensembles
        task_id = self._ensemble_task(task)
        count = tf.gather(tf.constant(tables.num_prompts), task_id)
        prompt_ids = tf.gather(tf.constant(tables.prompt_ids), task_id)[:count]
        num_labels = tf.gather(tf.constant(tables.num_labels), task_id)
        label_length = tf.gather(tf.constant(tables.label_length), task_id)
        target_length = tf.gather(tf.constant(tables.target_length), task_id)
        words = tf.gather(tf.constant(tables.words, tf.string), task_id)
        words = words[:num_labels]

        batch_size = tf.shape(token_ids)[0]
        row_ids = tf.tile(token_ids, [count, 1])
        row_mask = tf.tile(padding_mask, [count, 1])
        prompts = core.bank_prompts(tf.repeat(prompt_ids, batch_size))
        generated = core.greedy_generate(
            row_ids, row_mask, prompts, tables.decode_length
        )[:, : target_length + 1]
        texts = tf.strings.strip(self._detokenize(generated))
        matches = tf.equal(texts[:, None], words[None, :])
        row_labels = tf.where(
            tf.reduce_any(matches, axis=1),
            tf.argmax(tf.cast(matches, tf.int32), axis=1, output_type=tf.int32),
            -1,
        )
        prompt_labels = tf.transpose(tf.reshape(row_labels, [count, -1]))

        def choices(table):
            return tf.gather(tf.constant(table), task_id)[
                :num_labels, :label_length
            ]

        # The model's own rank classification (`model.score()`), with a
        # dummy row for an empty batch (KerasHub's attention reshapes by -1).
        rows, num_rows = _with_a_row([row_ids, row_mask, prompts])
        scores = choice_log_likelihoods(
            core.model,
            rows[0],
            rows[1],
            choices(tables.decoder_ids),
            choices(tables.target_ids),
            choices(tables.target_mask),
            rows[2],
        )[:num_rows]
        label_scores = tf.transpose(
            tf.reshape(scores, [count, batch_size, num_labels]), [1, 0, 2]
        )

        votes = tf.reduce_sum(
            tf.one_hot(prompt_labels, num_labels, dtype=tf.int32), axis=1
        )
        most = tf.reduce_max(votes, axis=1, keepdims=True)
        mean = tf.reduce_mean(label_scores, axis=1)
        winner = tf.argmax(
            tf.where(tf.equal(votes, most), mean, float("-inf")),
            axis=1,
            output_type=tf.int32,
        )
        label = tf.where(most[:, 0] > 0, winner, -1)
        outputs = tf.where(
            label >= 0, tf.gather(words, tf.maximum(label, 0)), ""
        )
        return {
            "outputs": outputs,
            "label": label,
            "prompt_labels": prompt_labels,
            "label_scores": label_scores,
        }

    def _shared_generate(self, ids_spec, length):
        """`core.greedy_generate` (of `length`) as one `tf.function` over
        ids, mask and prompts, traced here: the signatures that generate
        (`generate_ids`, `serving_default`) all call this one trace of the
        decoding loop instead of tracing it each."""
        core = self.core
        function = tf.function(
            lambda ids, mask, prompts: core.greedy_generate(
                ids, mask, prompts, length
            ),
            input_signature=list(ids_spec) + [self._prompt_spec()],
            autograph=False,
        )
        function.get_concrete_function()
        return function

    def signatures(self):
        core = self.core
        concrete = self._concrete
        ids_spec = [
            tf.TensorSpec([None, None], tf.int32, name="encoder_token_ids"),
            tf.TensorSpec([None, None], tf.int32, name="encoder_padding_mask"),
        ]
        # One trace of the decoding loop for both signatures: they call it.
        generate = self._shared_generate(ids_spec, self._max_decode_length)
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
            token_ids = generate(
                named["encoder_token_ids"],
                named["encoder_padding_mask"],
                prompts,
            )
            return {"token_ids": token_ids}

        def text_fn(inputs, extra=None):
            token_ids, padding_mask = self._tokenize(inputs)
            prompts = self._prompts(tf.shape(inputs)[0], extra)
            generated = generate(token_ids, padding_mask, prompts)
            return {"outputs": self._detokenize(generated)}

        signatures = {
            "generate_ids": concrete(generate_fn, ids_spec),
            "logits": concrete(logits_fn, ids_spec + decoder_spec),
        }
        if self.tokenizer is not None:
            signatures["serving_default"] = concrete(
                text_fn, [tf.TensorSpec([None], tf.string, name="inputs")]
            )
        if self._ensembles is not None:
            signatures.update(self._ensemble_signatures(ids_spec))
        return signatures

    def _ensemble_signatures(self, ids_spec):
        task_spec = tf.TensorSpec([], tf.string, name="task")
        # One trace of the model for both signatures: they call it.
        ensemble = tf.function(
            self._ensemble, input_signature=ids_spec + [task_spec],
            autograph=False,
        )

        def ensemble_text(inputs, task):
            token_ids, padding_mask = self._tokenize(inputs)
            return ensemble(token_ids, padding_mask, task)

        def ensemble_ids(encoder_token_ids, encoder_padding_mask, task):
            named = {
                "encoder_token_ids": encoder_token_ids,
                "encoder_padding_mask": encoder_padding_mask,
            }
            with tf.control_dependencies(self._token_checks(named)):
                return ensemble(
                    tf.identity(encoder_token_ids),
                    tf.identity(encoder_padding_mask),
                    task,
                )

        specs = {
            "ensemble_text": (
                ensemble_text,
                [tf.TensorSpec([None], tf.string, name="inputs"), task_spec],
            ),
            "ensemble_ids": (ensemble_ids, ids_spec + [task_spec]),
        }
        return {
            name: tf.function(
                fn, input_signature=spec, autograph=False
            ).get_concrete_function()
            for name, (fn, spec) in specs.items()
        }


def _ensemble_tables(model, resolved, tokenizer):
    """The `EnsembleTables` of a bank with an ensemble task, or `None` (and
    why, in the log)."""
    ensemble_tasks = resolved.ensemble_tasks
    if not ensemble_tasks:
        return None
    if tokenizer is None:
        logger.warning(
            "Tasks %s hold several prompts, but the ensemble signatures "
            "(%s) match greedy outputs against label words as text and need "
            "the model's tokenizer and the text signature: not exported.",
            ensemble_tasks,
            ", ".join(ENSEMBLE_SIGNATURE_NAMES),
        )
        return None
    targets = resolved.label_targets(model)
    unlabelled = [name for name in ensemble_tasks if name not in targets]
    if unlabelled:
        logger.warning(
            "Tasks %s hold several prompts but no label words (their prompt "
            "files record no `labels`); the ensemble signatures refuse them. "
            "Save the prompts with `save_prompt(labels=...)`.",
            unlabelled,
        )
    if len(unlabelled) == len(ensemble_tasks):
        return None
    return EnsembleTables(
        resolved.task_names, resolved.task_prompt_ids, targets
    )


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
    max_new_tokens=None,
    max_input_length=None,
    separator=None,
):
    """Exports a prompted T5 or decoder-only model as a SavedModel for TF
    Serving.

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

    A bank whose task holds several prompts (a prompt ensemble: `prompts=
    {"rte": ["rte_a.safetensors", "rte_b.safetensors", ...], ...}`) also
    gets, when the model has a tokenizer and `text_signature` is on:

    - `ensemble_text(inputs: string[B], task: string[])` -> `{"outputs":
      string[B], "label": int32[B], "prompt_labels": int32[B, N],
      "label_scores": float32[B, N, C]}` and
    - `ensemble_ids(encoder_token_ids, encoder_padding_mask, task:
      string[])` -> the same,

    with `N` the task's prompts and `C` its label words. `task` is one task
    (a name or decimal task id) for the whole request. Every example runs
    with each of the task's prompts in one batch of `N * B` rows, and the
    prompts vote as in `keras_prompt.ensemble(method="vote")`: a prompt's
    vote is its greedy output, decoded to the task's `max_target_length`
    tokens (the longest label word plus `</s>`, at least 2) and matched,
    stripped, against the label words (`prompt_labels`, -1 for no label
    word); the most votes win; a tie goes to the tied label with the
    highest mean over the prompts of its log-likelihood (`label_scores`,
    the rank-classification scores, from which a client can also take
    `mean-logprob`); no vote at all gives `label` -1 and `outputs` "". The
    label words are those the task's prompt files record (`labels`
    metadata, from `save_prompt(labels=...)`; prompts of one task must
    agree); a task without them is refused by the ensemble signatures.
    `serving_default`, `generate_ids` and `logits` run a task's first
    prompt for its name; a decimal `task` there is a prompt id (rows of
    the bank, listed per task in the export description's
    `task_prompt_ids`), so each prompt can also be run alone.

    `task` (mode `"bank"`) is a task name or a decimal task id (`"0"`,
    `"1"`, ...). `prompts` exists in mode `"runtime"` only. A request with
    any bad example fails as a whole, before any work, with
    `InvalidArgument` naming the input, the rows and the values: an unknown
    task name or out-of-range id, a `task` or `prompts` count other than
    the batch's, a NaN or infinite prompt value, a token id outside
    `[0, V)`, a padding-mask value other than 0 and 1, or token ids and
    mask of different shapes.

    A decoder-only model (`keras_prompt.PromptedCausalLM`) exports the same
    three signatures over its own inputs (`N` = `max_new_tokens`, `S`
    input columns):

    - `serving_default(inputs: string[B] [, task | prompts])` ->
      `{"outputs": string[B]}`: the model's KerasHub tokenizer in the graph
      (byte-level BPE or SentencePiece, saved as TensorFlow ops and
      tables), the text formatted as `CausalTextToTextPipeline` formats
      generation inputs (start token, input truncated to
      `max_input_length` tokens with the `separator`), greedy decoding of
      `N` tokens, and the continuation's text (up to the end token,
      without special tokens, as `model.generated_texts()`).
    - `generate_ids(token_ids: int32[B, S], padding_mask: int32[B, S]
      [, task | prompts])` -> `{"new_token_ids": int32[B, N]}` (named
      apart from the input, as in the ONNX and LiteRT graphs): each row's
      continuation after its last given token (rows right-padded), ending
      at its first end token (kept), then the pad id.
    - `logits(token_ids, padding_mask [, task | prompts])` -> `{"logits":
      float32[B, S, V]}`.

    Requests are also refused when a mask is not right-padded or has no
    token, or when prompt + `S` + `N` positions exceed a GPT-2 backbone's.
    The ensemble signatures are T5-only (a bank of a decoder-only model
    runs a task's first prompt for its name, every prompt by its id).

    Args:
        model: a `keras_prompt.PromptedT5Seq2SeqLM` or
            `keras_prompt.PromptedCausalLM`. Its preprocessor's
            tokenizer provides the SentencePiece model for
            `serving_default`; without a preprocessor only `generate_ids`
            and `logits` are exported.
        export_dir: the TF Serving model base directory's parent.
        mode: `"baked"`, `"runtime"` or `"bank"`.
        prompts: `baked`: a prompt file, a `[P, H]` array, or `None` for the
            model's current prompt; `bank`: dict task name -> prompt file
            (or array), or a list of them for an ensemble; `runtime`:
            `None`. Prompt files are validated against the backbone first.
        model_name: TF Serving model name (directory under `export_dir`).
        version: integer version directory.
        max_decode_length: decoder length `L` of generated sequences
            (including the start token), as `model.generate(max_length=L)`.
        overwrite: replace an existing version directory.
        text_signature: export `serving_default` (text -> text). Its
            SentencePiece ops need a server with matching tensorflow-text
            ops; with `False` the SavedModel has only `generate_ids` and
            `logits` and uses core TensorFlow ops only.
        max_new_tokens: decoder-only models: tokens generated per example
            (default `max_decode_length - 1`, the new tokens of T5's
            `max_decode_length`).
        max_input_length: decoder-only models: tokens of start token +
            input + separator that `serving_default` formats text to
            (default: the preprocessor's `sequence_length`; `keras-prompt
            export` passes what the prompt files were trained with).
        separator: decoder-only models: the text between input and target
            (default `CausalTextToTextPipeline`'s `"\nAnswer:"`).

    Returns:
        The version directory path `<export_dir>/<model_name>/<version>`.

    Raises:
        ValueError: bad arguments or prompts (see `ExportPrompts`), or
            prompts of one ensemble task recording different label words.

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
    causal = metadata_lib.is_causal(model)
    causal_options = {
        "max_new_tokens": max_new_tokens,
        "max_input_length": max_input_length,
        "separator": separator,
    }
    given = [name for name, value in causal_options.items() if value is not None]
    if given and not causal:
        raise ValueError(
            f"{', '.join(given)} apply to decoder-only models "
            "(PromptedCausalLM); a T5 export generates `max_decode_length` "
            "decoder positions from its preprocessor's encoder length."
        )
    resolved = ExportPrompts.from_model(model, mode, prompts)
    tokenizer = metadata_lib.tokenizer_of(model) if text_signature else None
    if text_signature and tokenizer is None:
        logger.warning(
            "The model has no preprocessor: exporting without the text "
            "signature `serving_default` (only `generate_ids` and `logits`). "
            "Attach the model's preprocessor to export text -> text."
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
    if causal:
        from keras_prompt.export.causal_serving_module import (
            causal_serving_module,
        )

        module, signatures, lengths = causal_serving_module(
            model, core, resolved, tokenizer, max_decode_length,
            **causal_options,
        )
    else:
        module = _ServingModule(
            core,
            resolved.task_names,
            None if tokenizer is None else tokenizer.proto,
            None if tokenizer is None else model.detokenizer,
            metadata_lib.encoder_sequence_length(model),
            max_decode_length,
            ensembles=_ensemble_tables(model, resolved, tokenizer),
        )
        signatures = module.signatures()
        lengths = {"max_decode_length": int(max_decode_length)}
    description = metadata_lib.export_metadata(
        model,
        resolved,
        "savedmodel",
        signatures=sorted(signatures),
        **lengths,
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
