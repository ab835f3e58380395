import numpy as np
import pytest

from keras_prompt import PromptedT5Seq2SeqLM
from keras_prompt import nearest_tokens
from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor


def test_rows_copied_from_tokens_find_those_tokens():
    preprocessor = make_tiny_preprocessor()
    model = PromptedT5Seq2SeqLM(
        make_tiny_backbone(), preprocessor, prompt_length=3
    )
    embeddings = model.backbone.token_embedding.embeddings.numpy()
    # Scaling does not change cosine similarity.
    model.set_prompt(embeddings[[17, 42, 99]] * np.array([[2.0], [0.5], [3.0]]))

    neighbours = nearest_tokens(model, k=4)

    assert len(neighbours) == 3 and all(len(row) == 4 for row in neighbours)
    for row, token_id in enumerate([17, 42, 99]):
        top_id, top_token, top_similarity = neighbours[row][0]
        assert top_id == token_id
        assert top_token == preprocessor.tokenizer.id_to_token(token_id)
        assert top_similarity == pytest.approx(1.0, abs=1e-5)
        similarities = [s for _, _, s in neighbours[row]]
        assert similarities == sorted(similarities, reverse=True)
        unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        expected = unit[neighbours[row][1][0]] @ unit[token_id]
        assert neighbours[row][1][2] == pytest.approx(expected, abs=1e-5)


def test_explicit_prompt_and_bad_k():
    model = PromptedT5Seq2SeqLM(make_tiny_backbone(), prompt_length=2)
    embeddings = model.backbone.token_embedding.embeddings.numpy()
    neighbours = nearest_tokens(model, k=1, prompt=-embeddings[[5]])
    assert neighbours[0][0][1] is None  # no tokenizer
    assert neighbours[0][0][0] != 5
    with pytest.raises(ValueError, match="`k`"):
        nearest_tokens(model, k=0)
    with pytest.raises(ValueError, match=r"\[prompt_length, 16\]"):
        nearest_tokens(model, prompt=np.zeros((2, 3)))
