"""The one detokenization rule on a vocabulary padded past its
SentencePiece model (T5's layout: pieces, 100 sentinels, padding rows)."""

import keras_hub
import numpy as np
import pytest

from keras_prompt.models.t5_detokenizer import T5Detokenizer
from tests.conftest import train_tiny_sentencepiece

PIECES = 128


@pytest.fixture(scope="module")
def tokenizer():
    return keras_hub.models.T5Tokenizer(proto=train_tiny_sentencepiece(PIECES))


def test_sentinels_render_as_t5_renders_them(tokenizer):
    detokenizer = T5Detokenizer(tokenizer, vocabulary_size=PIECES + 128)
    word = [int(i) for i in np.asarray(tokenizer("the cat"))]
    extra_0, extra_99 = PIECES + 99, PIECES
    first = [0] + word + [extra_0] + word + [1, 5, 6]
    texts = detokenizer.decode([
        first,
        [0, extra_99, 1] + [0] * (len(first) - 3),
        [0, 1, extra_0] + [0] * (len(first) - 3),
    ])
    assert texts[0] == "the cat <extra_id_0> the cat"
    assert texts[1] == "<extra_id_99>"
    assert texts[2] == ""  # everything after </s> is padding


def test_ids_without_a_piece_render_as_nothing(tokenizer):
    detokenizer = T5Detokenizer(tokenizer, vocabulary_size=PIECES + 128)
    word = [int(i) for i in np.asarray(tokenizer("the cat"))]
    plain = detokenizer.decode([[0] + word])[0]
    assert plain == "the cat"
    for bad in (PIECES + 100, PIECES + 127, -1, 10_000):
        assert detokenizer.decode([[0, bad] + word + [bad]])[0] == plain


def test_no_sentinels_without_room_for_them(tokenizer):
    """A vocabulary as large as the SentencePiece model has no sentinels;
    ids past it render as nothing."""
    detokenizer = T5Detokenizer(tokenizer, vocabulary_size=PIECES)
    assert detokenizer.num_text_ids == PIECES
    assert detokenizer.decode([[0, PIECES + 5, 1]]) == [""]


def test_metadata_is_what_clients_need(tokenizer):
    detokenizer = T5Detokenizer(tokenizer, vocabulary_size=PIECES + 128)
    assert detokenizer.metadata() == {
        "end_token_id": 1,
        "pad_token_id": 0,
        "strip_token_ids": [0, 1],
        "num_text_ids": PIECES + 100,
    }
