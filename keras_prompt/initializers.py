"""Prompt initializers from the paper, in increasing order of quality:
random uniform, sampled vocabulary, class labels; plus text, arrays and
prompt files (SPoT transfer).

The vocabulary-based initializers copy rows of the frozen backbone's token
embedding matrix, so they are built from that matrix (and, for strings, a
tokenizer). `get()` resolves a name to an initializer for a given backbone.
"""

import hashlib
import os

import keras
import numpy as np

from keras_prompt.prompts import prompt_file

# T5's SentencePiece vocabularies reserve ids 0 (<pad>), 1 (</s>), 2 (<unk>).
NUM_SPECIAL_TOKENS = 3
# The paper samples from the 5,000 most common tokens. SentencePiece orders
# pieces by frequency, so those are the lowest ids after the specials.
NUM_COMMON_TOKENS = 5000

NAMES = (
    "random_uniform",
    "sampled_vocab",
    "class_labels",
    "text",
    "from_array",
    "from_file",
)


class ArrayInitializer(keras.initializers.Initializer):
    """Base for initializers whose value is computed once as a NumPy array by
    the subclass's `value(shape)`."""

    def __call__(self, shape, dtype=None):
        array = np.asarray(self.value(tuple(shape)), dtype="float32")
        if array.shape != tuple(shape):
            raise ValueError(
                f"{type(self).__name__} produced shape {array.shape}, "
                f"expected {tuple(shape)}."
            )
        return keras.ops.convert_to_tensor(array, dtype=dtype or "float32")


@keras.saving.register_keras_serializable(package="keras_prompt")
class FromArray(ArrayInitializer):
    """Initializes the prompt with a given `[prompt_length, hidden_dim]` array.

    Args:
        array: the initial prompt.

    Example:
    ```python
    init = keras_prompt.initializers.FromArray(np.zeros((20, 512)))
    ```
    """

    def __init__(self, array):
        self.array = np.asarray(array, dtype="float32")
        if not np.all(np.isfinite(self.array)):
            raise ValueError("The initial prompt has NaN or infinite values.")

    def value(self, shape):
        if self.array.shape != shape:
            raise ValueError(
                f"The initial prompt has shape {self.array.shape}, but the "
                f"prompt is [prompt_length, hidden_dim] = {list(shape)}."
            )
        return self.array

    def get_config(self):
        return {"array": self.array.tolist()}


@keras.saving.register_keras_serializable(package="keras_prompt")
class FromFile(FromArray):
    """Initializes the prompt with the values of a prompt file, e.g. a prompt
    trained on a source task to start a target task's prompt (SPoT; Vu et
    al., ACL 2022).

    The file is read and validated when the initializer is created.
    `PromptedT5Seq2SeqLM` then calls `check()`: a file of another backbone
    (fingerprint), prompt length or hidden size is refused before anything
    is built on it. Like any array, the file's values are the prompt the
    model starts with, also under a reparameterization (see
    `PromptedT5Seq2SeqLM`).

    Args:
        path: a prompt file written by `save_prompt` / `keras-prompt train`,
            or a training output directory (its `prompt.safetensors`).

    Example:
    ```python
    init = keras_prompt.initializers.FromFile("runs/mnli/prompt.safetensors")
    init.metadata["task"]  # "mnli"
    ```
    """

    def __init__(self, path):
        self.path = prompt_file.prompt_file_path(path)
        prompt, self.metadata = prompt_file.read_prompt_file(self.path)
        with open(self.path, "rb") as file:
            self.sha256 = hashlib.sha256(file.read()).hexdigest()
        super().__init__(prompt)

    def check(self, *, fingerprint, prompt_length, hidden_dim):
        """Raises `PromptFileError` naming the file and what differs unless
        it was trained on the backbone of `fingerprint` and is
        `[prompt_length, hidden_dim]`."""
        try:
            prompt_file.check_prompt_compatible(
                self.metadata,
                self.array,
                fingerprint=fingerprint,
                prompt_length=prompt_length,
                hidden_dim=hidden_dim,
                source=f"The initial prompt file '{self.path}'",
            )
        except prompt_file.PromptFileError as error:
            length_only = self.array.shape[1] == hidden_dim
            if length_only and self.array.shape[0] != prompt_length:
                raise  # The length differs; the message says the fix.
            raise prompt_file.PromptFileError(
                f"{error} Start from a prompt file trained on this backbone, "
                "or use another prompt initializer."
            ) from None

    def source_metadata(self):
        """Where the initial prompt came from, as prompt-file metadata:
        `init_file` (absolute path), `init_file_sha256`, and the file's
        `task` and `training_steps` as `init_task` and `init_training_steps`
        (when it records them)."""
        return {
            "init_file": os.path.abspath(self.path),
            "init_file_sha256": self.sha256,
            "init_task": self.metadata.get("task"),
            "init_training_steps": self.metadata.get("training_steps"),
        }

    def get_config(self):
        return {"path": self.path}


def _common_token_ids(vocabulary_size, num_candidates, excluded_ids=()):
    stop = min(vocabulary_size, NUM_SPECIAL_TOKENS + num_candidates)
    excluded = set(int(i) for i in excluded_ids)
    ids = [i for i in range(NUM_SPECIAL_TOKENS, stop) if i not in excluded]
    if not ids:
        raise ValueError(
            f"No ordinary tokens to sample from a vocabulary of "
            f"{vocabulary_size} (ids 0-{NUM_SPECIAL_TOKENS - 1} are special)."
        )
    return np.asarray(ids)


@keras.saving.register_keras_serializable(package="keras_prompt")
class SampledVocab(ArrayInitializer):
    """Rows copied from the embeddings of randomly drawn common tokens.

    Tokens are drawn from the `num_candidates` most frequent pieces (in a T5
    SentencePiece vocabulary, the lowest ids after the 3 special ids),
    without replacement while enough candidates remain.

    Args:
        embeddings: the backbone's token embedding matrix `[vocab, hidden]`.
        num_candidates: how many of the most common tokens to draw from.
        excluded_ids: ids never drawn (e.g. sentinel tokens).
        seed: int seed for the draw.

    Example:
    ```python
    init = keras_prompt.initializers.SampledVocab(
        backbone.token_embedding.embeddings.numpy(), seed=0
    )
    ```
    """

    def __init__(
        self, embeddings, num_candidates=NUM_COMMON_TOKENS, excluded_ids=(), seed=None
    ):
        self.embeddings = np.asarray(embeddings, dtype="float32")
        self.num_candidates = num_candidates
        self.excluded_ids = tuple(int(i) for i in excluded_ids)
        self.seed = seed

    def sample_rows(self, count):
        candidates = _common_token_ids(
            self.embeddings.shape[0], self.num_candidates, self.excluded_ids
        )
        rng = np.random.default_rng(self.seed)
        ids = rng.choice(
            candidates, size=count, replace=count > len(candidates)
        )
        return self.embeddings[ids]

    def value(self, shape):
        _check_hidden(shape, self.embeddings)
        return self.sample_rows(shape[0])

    def get_config(self):
        return {
            "embeddings": self.embeddings.tolist(),
            "num_candidates": self.num_candidates,
            "excluded_ids": list(self.excluded_ids),
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="keras_prompt")
class ClassLabels(SampledVocab):
    """Row i is the mean embedding of the tokens of class label i.

    The paper's best initialization: the prompt starts out "spelling" the
    verbalized labels. Rows beyond the number of labels are sampled as in
    `SampledVocab`.

    Args:
        embeddings: the backbone's token embedding matrix `[vocab, hidden]`.
        label_token_ids: list with the token ids of each label word.
        num_candidates, excluded_ids, seed: as in `SampledVocab`.

    Example:
    ```python
    init = keras_prompt.initializers.ClassLabels(
        embeddings, label_token_ids=[[1465], [2841]], seed=0
    )
    ```
    """

    def __init__(
        self,
        embeddings,
        label_token_ids,
        num_candidates=NUM_COMMON_TOKENS,
        excluded_ids=(),
        seed=None,
    ):
        super().__init__(embeddings, num_candidates, excluded_ids, seed)
        self.label_token_ids = [list(map(int, ids)) for ids in label_token_ids]
        for index, ids in enumerate(self.label_token_ids):
            if not ids:
                raise ValueError(f"Class label {index} has no tokens.")
            _check_ids(ids, self.embeddings.shape[0], f"class label {index}")

    def value(self, shape):
        _check_hidden(shape, self.embeddings)
        rows = [
            self.embeddings[ids].mean(axis=0)
            for ids in self.label_token_ids[: shape[0]]
        ]
        remaining = shape[0] - len(rows)
        if remaining > 0:
            rows.extend(self.sample_rows(remaining))
        return np.stack(rows)

    def get_config(self):
        config = super().get_config()
        config["label_token_ids"] = self.label_token_ids
        return config


@keras.saving.register_keras_serializable(package="keras_prompt")
class Text(ArrayInitializer):
    """Rows are the embeddings of a text's tokens, tiled or truncated to the
    prompt length (e.g. a hand-written instruction as the starting point).

    Args:
        embeddings: the backbone's token embedding matrix `[vocab, hidden]`.
        token_ids: the text's token ids.

    Example:
    ```python
    ids = tokenizer("Classify the sentiment:").numpy()
    init = keras_prompt.initializers.Text(embeddings, ids)
    ```
    """

    def __init__(self, embeddings, token_ids):
        self.embeddings = np.asarray(embeddings, dtype="float32")
        self.token_ids = [int(i) for i in np.asarray(token_ids).reshape(-1)]
        if not self.token_ids:
            raise ValueError("The initialization text has no tokens.")
        _check_ids(self.token_ids, self.embeddings.shape[0], "the text")

    def value(self, shape):
        _check_hidden(shape, self.embeddings)
        ids = np.resize(np.asarray(self.token_ids), shape[0])
        return self.embeddings[ids]

    def get_config(self):
        return {"embeddings": self.embeddings.tolist(), "token_ids": self.token_ids}


def _check_hidden(shape, embeddings):
    if shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"The prompt's hidden size {shape[1]} differs from the embedding "
            f"matrix's {embeddings.shape[1]}."
        )


def _check_ids(ids, vocabulary_size, what):
    bad = [i for i in ids if not 0 <= i < vocabulary_size]
    if bad:
        raise ValueError(
            f"Token ids {bad} of {what} are outside the vocabulary "
            f"(size {vocabulary_size}): was it tokenized with another "
            "tokenizer?"
        )


def _tokenize(tokenizer, text, what):
    if tokenizer is None:
        raise ValueError(
            f"Initializing from {what} needs a tokenizer: attach a "
            "preprocessor to the model (or load it with `from_preset`), or "
            "pass a `keras_prompt.initializers` object built from token ids."
        )
    return [int(i) for i in np.asarray(tokenizer(text)).reshape(-1)]


def sentinel_ids(tokenizer):
    """Ids of T5's `<extra_id_N>` sentinel pieces, which a prompt should not
    start from (they only ever appeared in span-corruption targets)."""
    if tokenizer is None:
        return ()
    return tuple(
        i
        for i in range(tokenizer.vocabulary_size())
        if tokenizer.id_to_token(i).startswith("<extra_id_")
    )


def get(
    identifier,
    *,
    embeddings=None,
    tokenizer=None,
    labels=None,
    text=None,
    path=None,
    seed=None,
):
    """Resolves an initializer name (or object, or array) for a backbone.

    Args:
        identifier: one of `"random_uniform"`, `"sampled_vocab"`,
            `"class_labels"` (needs `labels`), `"text"` (needs `text`),
            `"from_file"` (needs `path`), a `[prompt_length, hidden_dim]`
            array (`"from_array"`), or any Keras initializer.
        embeddings: the backbone's token embedding matrix, for vocabulary
            based initializers.
        tokenizer: a KerasHub tokenizer, for `labels` and `text`.
        labels: list of label words, for `"class_labels"`.
        text: string, for `"text"`.
        path: a prompt file (or training output directory), for
            `"from_file"`.
        seed: int seed.

    Returns:
        A Keras initializer.

    Example:
    ```python
    init = keras_prompt.initializers.get(
        "class_labels",
        embeddings=backbone.token_embedding.embeddings.numpy(),
        tokenizer=preprocessor.tokenizer,
        labels=["positive", "negative"],
    )
    ```
    """
    if isinstance(identifier, keras.initializers.Initializer):
        return identifier
    if isinstance(identifier, (np.ndarray, list)) or keras.ops.is_tensor(
        identifier
    ):
        return FromArray(keras.ops.convert_to_numpy(identifier))
    if identifier == "random_uniform":
        return keras.initializers.RandomUniform(-0.5, 0.5, seed=seed)
    if identifier not in NAMES:
        raise ValueError(
            f"Unknown prompt initializer {identifier!r}. Use one of {NAMES}, "
            "an array, or a Keras initializer."
        )
    if identifier == "from_array":
        raise ValueError(
            "For 'from_array', pass the array itself as the initializer."
        )
    if identifier == "from_file":
        if not path:
            raise ValueError(
                "The 'from_file' initializer needs the prompt file: pass "
                "`init_file=...` (a .safetensors prompt or a training output "
                "directory)."
            )
        return FromFile(path)
    if embeddings is None:
        raise ValueError(f"The {identifier!r} initializer needs embeddings.")
    excluded = sentinel_ids(tokenizer)
    if identifier == "sampled_vocab":
        return SampledVocab(embeddings, excluded_ids=excluded, seed=seed)
    if identifier == "class_labels":
        if not labels:
            raise ValueError(
                "The 'class_labels' initializer needs the label words: pass "
                "`labels=[...]`."
            )
        label_ids = [_tokenize(tokenizer, label, "class labels") for label in labels]
        return ClassLabels(
            embeddings, label_ids, excluded_ids=excluded, seed=seed
        )
    if not text:
        raise ValueError("The 'text' initializer needs `init_text=...`.")
    return Text(embeddings, _tokenize(tokenizer, text, "text"))
