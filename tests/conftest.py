"""Shared test helpers: tiny random T5 backbones and on-the-fly tokenizers.

Everything here is built offline in a few seconds so that tests never need a
pretrained preset.
"""

import itertools
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_prompt.models.tiny_t5 import tiny_t5_backbone  # noqa: E402
from keras_prompt.models.tiny_t5 import train_sentencepiece_proto  # noqa: E402

TINY_VOCABULARY_SIZE = 128
# The longest test files (minutes each) go first, longest first, so that
# with two xdist workers (`--dist loadfile`) they run beside the others, not
# after them.
LONG_TEST_FILES = (
    "tests/quickstart/run_test.py",
    "tests/training/train_test.py",
    "tests/export/saved_model_export_test.py",
    "tests/export/onnx_export_test.py",
    "tests/export/tflite_export_test.py",
    "tests/quickstart/pretrain_test.py",
    "tests/models/prompted_causal_lm_test.py",
    "tests/export/causal_saved_model_test.py",
    "tests/training/causal_train_test.py",
    "tests/export/causal_onnx_tflite_test.py",
)


def pytest_configure(config):
    # pytest-xdist (>= 3.6) otherwise schedules the files with the most tests
    # first, whatever the collection order: the one-test quickstart file
    # would start among the last and run alone at the end.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    def start_rank(item):
        path = item.nodeid.split("::")[0]
        if path in LONG_TEST_FILES:
            return LONG_TEST_FILES.index(path)
        return len(LONG_TEST_FILES)

    items.sort(key=start_rank)  # stable: every other order is kept


_SUBJECTS = ["the cat", "a dog", "my friend", "the teacher", "our team"]
_VERBS = ["likes", "sees", "finds", "paints", "follows", "hates"]
_OBJECTS = ["the movie", "a red ball", "green apples", "the old house"]
_ADVERBS = ["today", "quickly", "again", "at night", "very much"]
TINY_CORPUS = [
    " ".join(words)
    for words in itertools.product(_SUBJECTS, _VERBS, _OBJECTS, _ADVERBS)
] + [
    "positive negative neutral entailment contradiction",
    "sentiment: great terrible fine yes no maybe",
    "sst2 sentence: rte sentence1: sentence2: question: answer: premise:",
    "one two three four five six seven eight nine ten eleven twelve",
    "monday tuesday wednesday thursday friday saturday sunday",
    "january february march april may june july august september",
    "apple banana cherry grape lemon mango orange peach pear plum",
    "river mountain forest desert ocean island valley canyon meadow",
    "quick brown fox jumps over lazy dog while birds sing loudly",
    "violin guitar piano trumpet drums flute cello harp organ banjo",
    "doctor lawyer farmer baker pilot nurse singer writer sailor",
    "elephant giraffe zebra monkey tiger lion rabbit turtle parrot",
    "kitchen bedroom garden window ceiling carpet stairs balcony",
]


def make_tiny_backbone(**kwargs):
    """A random `T5Backbone` with distinct token embeddings, vocabulary
    `TINY_VOCABULARY_SIZE` unless given (keyword arguments of
    `keras_prompt.models.tiny_t5.tiny_t5_backbone`)."""
    kwargs.setdefault("vocabulary_size", TINY_VOCABULARY_SIZE)
    return tiny_t5_backbone(**kwargs)


def train_tiny_sentencepiece(vocabulary_size=TINY_VOCABULARY_SIZE):
    """SentencePiece proto with T5's special ids trained on `TINY_CORPUS`."""
    return train_sentencepiece_proto(TINY_CORPUS, vocabulary_size)


def make_tiny_preprocessor(
    encoder_sequence_length=16, decoder_sequence_length=8, proto=None
):
    """A `T5Seq2SeqLMPreprocessor` over a SentencePiece model trained on the
    fly; its vocabulary fits `make_tiny_backbone()`."""
    tokenizer = keras_hub.models.T5Tokenizer(
        proto=proto if proto is not None else train_tiny_sentencepiece()
    )
    return keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=tokenizer,
        encoder_sequence_length=encoder_sequence_length,
        decoder_sequence_length=decoder_sequence_length,
    )


def make_token_batch(
    batch_size=3,
    encoder_length=7,
    decoder_length=5,
    vocabulary_size=TINY_VOCABULARY_SIZE,
    seed=0,
):
    """Random token inputs with ragged padding, in KerasHub's input format."""
    rng = np.random.default_rng(seed)
    encoder_ids = rng.integers(3, vocabulary_size, (batch_size, encoder_length))
    decoder_ids = rng.integers(3, vocabulary_size, (batch_size, decoder_length))
    encoder_mask = np.ones((batch_size, encoder_length), "int32")
    decoder_mask = np.ones((batch_size, decoder_length), "int32")
    for row in range(1, batch_size):
        encoder_mask[row, encoder_length - row :] = 0
        decoder_mask[row, decoder_length - row :] = 0
    decoder_ids[:, 0] = 0
    return {
        "encoder_token_ids": (encoder_ids * encoder_mask).astype("int32"),
        "encoder_padding_mask": encoder_mask,
        "decoder_token_ids": (decoder_ids * decoder_mask).astype("int32"),
        "decoder_padding_mask": decoder_mask,
    }


@pytest.fixture(scope="session")
def sentencepiece_proto():
    return train_tiny_sentencepiece()
