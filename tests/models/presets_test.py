"""Resolving a preset argument to a backbone and preprocessor."""

import logging

import keras_hub
import numpy as np

from keras_prompt.models.presets import builtin_preset_path
from keras_prompt.models.presets import load_backbone_and_preprocessor
from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.convert.conftest import checkpoint_dir


def test_builtin_presets_by_name():
    path = builtin_preset_path("t5_tiny_demo")
    assert path is not None and path.endswith("t5_tiny_demo")
    assert builtin_preset_path("no_such_preset") is None
    backbone, preprocessor = load_backbone_and_preprocessor(
        "t5_tiny_demo", encoder_sequence_length=32, decoder_sequence_length=5)
    assert isinstance(backbone, keras_hub.models.T5Backbone)
    assert preprocessor.encoder_sequence_length == 32
    assert preprocessor.decoder_sequence_length == 5


def test_keras_hub_preset_directory(tmp_path):
    backbone = make_tiny_backbone()
    make_tiny_preprocessor().save_to_preset(str(tmp_path))
    backbone.save_to_preset(str(tmp_path))
    loaded, preprocessor = load_backbone_and_preprocessor(str(tmp_path))
    np.testing.assert_array_equal(loaded.token_embedding.embeddings.numpy(),
                                  backbone.token_embedding.embeddings.numpy())
    assert isinstance(preprocessor, keras_hub.models.T5Seq2SeqLMPreprocessor)


def test_preset_without_tokenizer_warns_and_has_no_preprocessor(tmp_path, caplog):
    make_tiny_backbone().save_to_preset(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="keras_prompt"):
        backbone, preprocessor = load_backbone_and_preprocessor(str(tmp_path))
    assert preprocessor is None and backbone.hidden_dim == 16
    assert "no usable tokenizer" in caplog.text


def test_hugging_face_checkpoint_directory_is_converted():
    backbone, preprocessor = load_backbone_and_preprocessor(
        checkpoint_dir("t5v11"), encoder_sequence_length=12)
    assert backbone.hidden_dim == 64 and not backbone.tie_embedding_weights
    assert preprocessor.encoder_sequence_length == 12
