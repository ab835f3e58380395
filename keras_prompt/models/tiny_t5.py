"""Small T5 building blocks for pretraining from scratch, demos and tests:
a random backbone with usable token embeddings and a SentencePiece
vocabulary trained in memory with T5's special ids."""

import io

import keras_hub
import numpy as np
import sentencepiece


def initialize_t5_weights(backbone, seed=0):
    """Deterministically re-draws every weight of a `T5Backbone` as Hugging
    Face T5 initialises it, from a NumPy generator (no global seeds).

    Why: `T5Backbone` initialises its token embedding with
    `TruncatedNormal(1.0)`, i.e. mean 1.0 and stddev 0.05, so every row is
    nearly the same vector and a model trained from scratch cannot tell
    tokens apart (pretrained presets overwrite it, so they are unaffected).
    Seeding Keras globally instead (`keras.utils.set_random_seed`) would
    also reset TensorFlow's kernel caches, which destroys the SentencePiece
    resources of any tokenizer already used in a `tf.data` pipeline.

    Token embeddings ~ N(0, 1); an untied head ~ N(0, hidden_dim^-1/2);
    attention queries ~ N(0, (hidden_dim * key_value_dim)^-1/2); other
    kernels and relative attention biases ~ N(0, fan_in^-1/2); layer norm
    scales = 1.

    Args:
        backbone: a `keras_hub.models.T5Backbone`, modified in place.
        seed: int seed.

    Returns:
        The backbone.

    Example:
    ```python
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=128, num_layers=2, num_heads=2, hidden_dim=16,
        intermediate_dim=32,
    )
    initialize_t5_weights(backbone, seed=0)
    ```
    """
    rng = np.random.default_rng(seed)
    hidden_dim = backbone.hidden_dim
    key_value_dim = backbone.key_value_dim or hidden_dim // backbone.num_heads
    for weight in backbone.weights:
        path, shape = weight.path, tuple(weight.shape)
        if path.endswith("/weight") and len(shape) == 1:
            value = np.ones(shape)
        elif path == "token_embedding/embeddings":
            value = rng.normal(0.0, 1.0, shape)
        elif path.endswith("query_projector/kernel"):
            value = rng.normal(0.0, (hidden_dim * key_value_dim) ** -0.5, shape)
        else:
            value = rng.normal(0.0, shape[0] ** -0.5, shape)
        weight.assign(value.astype("float32"))
    return backbone


def tiny_t5_backbone(
    vocabulary_size,
    tied=True,
    hidden_dim=16,
    num_layers=2,
    num_heads=2,
    intermediate_dim=32,
    dropout=0.0,
    seed=0,
):
    """A random `T5Backbone` with distinct token embeddings.

    `tied=True` gives the original T5 layout (ReLU, tied head, output
    scaling); `tied=False` the T5 1.1 layout (gated GELU, separate head).

    Args:
        vocabulary_size: int.
        tied: bool, the layout (see above).
        hidden_dim, num_layers, num_heads, intermediate_dim, dropout: the
            `T5Backbone` arguments.
        seed: int seed for all weights.

    Example:
    ```python
    backbone = tiny_t5_backbone(vocabulary_size=128, tied=False)
    ```
    """
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=dropout,
        activation="relu" if tied else "gelu",
        use_gated_activation=not tied,
        tie_embedding_weights=tied,
    )
    return initialize_t5_weights(backbone, seed=seed)


def train_sentencepiece_proto(sentences, vocabulary_size, model_type="unigram"):
    """Trains a SentencePiece model in memory with T5's special ids
    (0 `<pad>`, 1 `</s>`, 2 `<unk>`, no `<s>`).

    Args:
        sentences: iterable of strings.
        vocabulary_size: exact number of pieces.
        model_type: `"unigram"` (T5's) or `"bpe"`, `"word"`, `"char"`.

    Returns:
        The serialized model proto (bytes), ready for
        `keras_hub.models.T5Tokenizer(proto=...)`.

    Example:
    ```python
    proto = train_sentencepiece_proto(["a small corpus", "of sentences"], 20)
    ```
    """
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocabulary_size,
        model_type=model_type,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        minloglevel=2,
    )
    return model.getvalue()
