"""The plain-TF prompted T5 used by every exporter equals the Keras model."""

import keras_hub
import numpy as np
import pytest

from tests.conftest import make_tiny_backbone
from tests.conftest import make_token_batch


def _backbone(kind):
    if kind == "tied_relu":
        return make_tiny_backbone(tied=True, seed=1)
    if kind == "untied_gelu":
        return make_tiny_backbone(tied=False, seed=2)
    from keras_prompt.convert.activations import gelu_tanh

    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=128,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        dropout=0.0,
        activation=gelu_tanh,
        use_gated_activation=True,
        tie_embedding_weights=False,
    )
    rng = np.random.default_rng(4)
    backbone.token_embedding.embeddings.assign(
        rng.standard_normal((128, 16)).astype("float32")
    )
    return backbone


@pytest.mark.parametrize(
    "kind", ["tied_relu", "untied_gelu", "untied_gelu_tanh"]
)
def test_forward_matches_keras(kind):
    import keras_prompt
    from keras_prompt.export.t5_inference_module import T5InferenceModule
    from keras_prompt.export.t5_inference_module import extract_t5_weights

    model = keras_prompt.PromptedT5Seq2SeqLM(
        _backbone(kind), prompt_length=3, seed=0
    )
    # Long enough (for one kind) that relative positions pass max_distance
    # (128) and the bucket tables saturate.
    long = kind == "untied_gelu_tanh"
    batch = make_token_batch(
        batch_size=2,
        encoder_length=150 if long else 12,
        decoder_length=140 if long else 6,
    )
    prompts = (
        np.random.default_rng(0)
        .uniform(-0.5, 0.5, (2, 3, 16))
        .astype("float32")
    )
    expected = np.asarray(model({**batch, "prompts": prompts}))
    config, weights = extract_t5_weights(model.backbone)
    for portable in (False, True):  # portable: the ONNX variant (erf GELU)
        module = T5InferenceModule(
            config, weights, "runtime", prompt_length=3, portable=portable
        )
        got = module.forward(
            batch["encoder_token_ids"],
            batch["encoder_padding_mask"],
            batch["decoder_token_ids"],
            batch["decoder_padding_mask"],
            prompts,
        ).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_bank_rejects_bad_shapes():
    from keras_prompt.export.t5_inference_module import T5InferenceModule
    from keras_prompt.export.t5_inference_module import extract_t5_weights

    config, weights = extract_t5_weights(make_tiny_backbone(tied=True))
    with pytest.raises(ValueError, match="num_tasks"):
        T5InferenceModule(config, weights, "bank", prompts=np.zeros((3, 16)))
    with pytest.raises(ValueError, match="hidden_dim"):
        T5InferenceModule(config, weights, "baked", prompts=np.zeros((3, 8)))
    with pytest.raises(ValueError, match="mode"):
        T5InferenceModule(config, weights, "other")
