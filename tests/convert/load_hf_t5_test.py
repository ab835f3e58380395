"""`load_hf_t5` against PEFT/transformers reference outputs (tiny checkpoints)."""

import json
import os
import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pytest
import safetensors.numpy
import sentencepiece as spm
from keras import ops
from safetensors import safe_open

from keras_prompt.convert import HFCheckpointError
from keras_prompt.convert import gelu_tanh
from keras_prompt.convert import is_hf_t5_checkpoint
from keras_prompt.convert import load_hf_t5
from keras_prompt.convert import save_keras_preset
from keras_prompt.convert.hf_t5_tokenizer import load_hf_t5_sentencepiece
from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM
from tests.convert.conftest import FIXTURES
from tests.convert.conftest import PROMPT_LENGTH
from tests.convert.conftest import VARIANTS
from tests.convert.conftest import checkpoint_dir
from tests.convert.conftest import copy_checkpoint
from tests.convert.conftest import load_example

ATOL = 1e-4
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(FIXTURES)))


def _token_inputs(example):
    return {
        "encoder_token_ids": example["encoder_ids"].astype("int32"),
        "encoder_padding_mask": example["encoder_mask"].astype("int32"),
        "decoder_token_ids": example["decoder_input_ids"].astype("int32"),
        "decoder_padding_mask": example["decoder_mask"].astype("int32"),
    }


def _prompted_model(backbone, prompt):
    model = PromptedT5Seq2SeqLM(backbone, prompt_length=PROMPT_LENGTH)
    model.set_prompt(prompt)
    return model


# --- Architecture and weight mapping -------------------------------------


def test_config_mapping(converted):
    t5, _ = converted("t5")
    assert t5.tie_embedding_weights is True
    assert t5.use_gated_activation is False
    assert t5.get_config()["activation"] == "relu"
    v11, _ = converted("t5v11")
    assert v11.tie_embedding_weights is False
    assert v11.use_gated_activation is True
    assert v11.activation is gelu_tanh
    for backbone in (t5, v11):
        assert (backbone.vocabulary_size, backbone.hidden_dim) == (512, 64)
        assert (backbone.num_layers, backbone.num_heads) == (2, 4)
        assert (backbone.intermediate_dim, backbone.key_value_dim) == (128, 16)
        assert backbone.dropout == pytest.approx(0.1)


def test_gelu_tanh_is_hf_gelu_new():
    x = np.linspace(-6, 6, 101).astype("float32")
    gelu_new = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(ops.convert_to_numpy(gelu_tanh(x)), gelu_new, atol=1e-6)
    assert keras.activations.get(keras.activations.serialize(gelu_tanh)) is gelu_tanh


def test_weight_placement(converted):
    """Spot-check the name mapping and transposes against the raw file."""
    backbone, _ = converted("t5v11")
    path = os.path.join(checkpoint_dir("t5v11"), "model.safetensors")
    with safe_open(path, framework="np") as file:
        hf = {key: file.get_tensor(key) for key in file.keys()}
    enc0 = backbone.encoder_transformer_layers[0]
    dec1 = backbone.decoder_transformer_layers[1]
    pairs = [
        (backbone.token_embedding.embeddings, hf["shared.weight"]),
        (backbone.token_embedding.reverse_embeddings, hf["lm_head.weight"].T),
        (enc0.self_attention.query_projector.kernel,
         hf["encoder.block.0.layer.0.SelfAttention.q.weight"].T),
        (enc0.self_attention.relative_attention_bias,
         hf["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]),
        (enc0.input_projector.kernel,
         hf["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"].T),
        (enc0.gate_projector.kernel,
         hf["encoder.block.0.layer.1.DenseReluDense.wi_1.weight"].T),
        (dec1.cross_attention.output_projector.kernel,
         hf["decoder.block.1.layer.1.EncDecAttention.o.weight"].T),
        (dec1.cross_attention_layer_norm.weight,
         hf["decoder.block.1.layer.1.layer_norm.weight"]),
        (dec1.layer_norm.weight, hf["decoder.block.1.layer.2.layer_norm.weight"]),
        (backbone.decoder_transformer_layers[0].self_attention.relative_attention_bias,
         hf["decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]),
        (backbone.decoder_layer_norm.weight, hf["decoder.final_layer_norm.weight"]),
    ]
    for variable, expected in pairs:
        np.testing.assert_array_equal(ops.convert_to_numpy(variable), expected)


# --- Reference outputs (PEFT prompt tuning on the HF model) -----------------


def _hand_written_prompted_forward(backbone, example):
    """Prompted forward pass with the backbone's sublayers only (independent
    of PromptedT5Seq2SeqLM)."""
    prompt = example["prompt"]
    ids, mask = example["encoder_ids"], example["encoder_mask"]
    batch = ids.shape[0]
    x = backbone.token_embedding(ids)
    x = ops.concatenate([np.broadcast_to(prompt, (batch,) + prompt.shape), x], 1)
    mask = np.concatenate([np.ones((batch, len(prompt)), "int32"), mask], 1)
    attention_mask = mask[:, None, :].astype("int32")
    bias = None
    for layer in backbone.encoder_transformer_layers:
        x, bias = layer(x, attention_mask=attention_mask, position_bias=bias,
                        use_causal_mask=False, training=False)
    encoder_output = backbone.encoder_layer_norm(x)
    y = backbone.token_embedding(example["decoder_input_ids"])
    bias = None
    for layer in backbone.decoder_transformer_layers:
        y, bias = layer(
            y, attention_mask=example["decoder_mask"][:, None, :].astype("int32"),
            position_bias=bias, encoder_hidden_states=encoder_output,
            encoder_attention_mask=attention_mask, use_causal_mask=True,
            training=False)
    y = backbone.decoder_layer_norm(y)
    if backbone.tie_embedding_weights:
        y = y * backbone.hidden_dim**-0.5
    logits = backbone.token_embedding(y, reverse=True)
    return ops.convert_to_numpy(encoder_output), ops.convert_to_numpy(logits)


@pytest.mark.parametrize("variant", VARIANTS)
def test_hand_written_forward_matches_peft(converted, variant):
    backbone, _ = converted(variant)
    example = load_example(variant)
    encoder_output, logits = _hand_written_prompted_forward(backbone, example)
    np.testing.assert_allclose(encoder_output, example["encoder_output"], atol=ATOL)
    np.testing.assert_allclose(logits, example["logits"], atol=ATOL)


@pytest.mark.parametrize("variant", VARIANTS)
def test_prompted_model_matches_peft(converted, variant):
    backbone, _ = converted(variant)
    example = load_example(variant)
    model = _prompted_model(backbone, example["prompt"])
    inputs = _token_inputs(example)
    encoder_output, mask = model.encode(
        inputs["encoder_token_ids"], inputs["encoder_padding_mask"], training=False
    )
    assert tuple(encoder_output.shape) == example["encoder_output"].shape
    np.testing.assert_array_equal(
        ops.convert_to_numpy(mask)[:, :PROMPT_LENGTH], 1
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(encoder_output), example["encoder_output"], atol=ATOL
    )
    logits = ops.convert_to_numpy(model(inputs, training=False))
    np.testing.assert_allclose(logits, example["logits"], atol=ATOL)
    # Every position of every row (padding included) matches; the label
    # argmax agrees where labels are defined.
    labels = example["labels"]
    defined = labels != -100
    assert np.all(
        logits.argmax(-1)[defined] == example["logits"].argmax(-1)[defined]
    )


def test_prompted_greedy_ids_match_peft(converted):
    backbone, _ = converted("t5v11")
    example = load_example("t5v11")
    expected = example["greedy_ids"]  # [3, 9]: start id 0 + 8 new tokens.
    model = _prompted_model(backbone, example["prompt"])
    batch, length = expected.shape
    decoder_ids = np.zeros((batch, length), "int32")
    decoder_mask = np.zeros((batch, length), "int32")
    decoder_mask[:, 0] = 1
    out = model.generate(
        {
            "encoder_token_ids": example["encoder_ids"].astype("int32"),
            "encoder_padding_mask": example["encoder_mask"].astype("int32"),
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": decoder_mask,
        },
        stop_token_ids=None,
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(out["decoder_token_ids"]), expected
    )


# --- Presets ----------------------------------------------------------------


def test_preset_round_trip(converted, tmp_path):
    """T5 1.1 (the custom activation and untied head) through a KerasHub
    preset: PromptedT5Seq2SeqLM.from_preset(dir) gives identical logits."""
    backbone, preprocessor = converted("t5v11")
    preset = save_keras_preset(backbone, preprocessor, tmp_path / "preset")
    assert not is_hf_t5_checkpoint(preset)
    example = load_example("t5v11")
    inputs = _token_inputs(example)
    model = PromptedT5Seq2SeqLM.from_preset(
        str(preset), prompt_length=PROMPT_LENGTH, compile=False
    )
    reloaded = model.backbone
    assert reloaded.get_config() == backbone.get_config()
    assert reloaded.activation is gelu_tanh
    for original, loaded in zip(backbone.weights, reloaded.weights):
        np.testing.assert_array_equal(
            ops.convert_to_numpy(original), ops.convert_to_numpy(loaded)
        )
    model.set_prompt(example["prompt"])
    np.testing.assert_array_equal(
        ops.convert_to_numpy(model(inputs, training=False)),
        ops.convert_to_numpy(
            _prompted_model(backbone, example["prompt"])(inputs, training=False)
        ),
    )
    text = "The <extra_id_0> fox jumps."
    np.testing.assert_array_equal(
        np.asarray(model.preprocessor.tokenizer(text)),
        np.asarray(preprocessor.tokenizer(text)),
    )


def test_preset_loads_in_fresh_process(converted, tmp_path):
    """Plain `keras_hub.models.T5Backbone.from_preset(dir)` in a fresh
    process that imports keras_prompt (which registers the tanh-GELU) gives
    bit-identical logits."""
    backbone, preprocessor = converted("t5v11")
    preset = save_keras_preset(backbone, preprocessor, tmp_path / "preset")
    inputs = _token_inputs(load_example("t5v11"))
    np.savez(tmp_path / "inputs.npz", **inputs)
    outputs = backbone(inputs, training=False)
    expected = backbone.token_embedding(outputs["decoder_sequence_output"], reverse=True)
    np.save(tmp_path / "expected.npy", ops.convert_to_numpy(expected))
    code = f"""
import keras_prompt.convert, keras_hub, numpy as np
backbone = keras_hub.models.T5Backbone.from_preset({str(preset)!r})
inputs = dict(np.load({str(tmp_path / "inputs.npz")!r}))
outputs = backbone(inputs, training=False)
logits = backbone.token_embedding(outputs["decoder_sequence_output"], reverse=True)
np.testing.assert_array_equal(np.asarray(logits), np.load({str(tmp_path / "expected.npy")!r}))
print(backbone.get_config()["activation"]["config"])
"""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env=env, timeout=180, cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "keras_prompt>gelu_tanh"


# --- Tokenizer ----------------------------------------------------------------


def test_tokenizer_ids_equal_sentencepiece(converted):
    _, preprocessor = converted("t5")
    tokenizer = preprocessor.tokenizer
    proto = load_hf_t5_sentencepiece(checkpoint_dir("t5"), 512)
    reference = spm.SentencePieceProcessor(model_proto=proto)
    with open(os.path.join(FIXTURES, "hf_tokenizer_ids.json"), encoding="utf-8") as file:
        cases = json.load(file)["cases"]
    texts = [case["text"] for case in cases] + ["fox<extra_id_1>jumps", "<extra_id_7>"]
    for text in texts:
        ours = np.asarray(tokenizer(text)).tolist()
        assert ours == reference.encode(text), text
    # Hugging Face's fast tokenizer agrees wherever seqio semantics do.
    for case in cases:
        ours = np.asarray(tokenizer(case["text"])).tolist()
        if case["hf_equal"]:
            assert ours == case["ids"], case["text"]
    # Sentinels: seqio / HF numbering, <extra_id_0> last.
    assert tokenizer.vocabulary_size() == 484
    for index, expected in ((0, 483), (1, 482), (99, 384)):
        assert np.asarray(tokenizer(f"<extra_id_{index}>")).tolist() == [expected]
    assert tokenizer.detokenize([3, 374, 50, 483, 3, 378, 156]) == "The <extra_id_0> fox"
    # The plain SentencePiece model (no sentinels) tokenizes ordinary text
    # exactly the same.
    plain = spm.SentencePieceProcessor(
        model_file=os.path.join(checkpoint_dir("t5"), "spiece.model")
    )
    assert np.asarray(tokenizer(cases[0]["text"])).tolist() == plain.encode(cases[0]["text"])
    assert (tokenizer.pad_token_id, tokenizer.end_token_id) == (0, 1)


def test_preprocessor_packs_like_t5(converted):
    _, preprocessor = converted("t5v11")
    packed = preprocessor.generate_preprocess(["The <extra_id_0> fox"])
    ids = np.asarray(packed["encoder_token_ids"])[0].tolist()
    assert ids[:8] == [3, 374, 50, 483, 3, 378, 156, 1]
    assert ids[8:] == [0] * 8  # encoder_sequence_length=16


# --- is_hf_t5_checkpoint --------------------------------------------------------


def test_is_hf_t5_checkpoint(tmp_path):
    assert is_hf_t5_checkpoint(checkpoint_dir("t5"))
    assert is_hf_t5_checkpoint(checkpoint_dir("t5v11"))
    assert not is_hf_t5_checkpoint("t5_small_multi")
    assert not is_hf_t5_checkpoint(tmp_path)
    assert not is_hf_t5_checkpoint(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{not json")
    assert not is_hf_t5_checkpoint(tmp_path)


# --- Checkpoint layouts and errors ------------------------------------------------


def _edit_config(directory, **changes):
    path = os.path.join(directory, "config.json")
    with open(path) as file:
        config = json.load(file)
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    with open(path, "w") as file:
        json.dump(config, file)


def _rewrite_weights(directory, edit):
    path = os.path.join(directory, "model.safetensors")
    tensors = safetensors.numpy.load_file(path)
    edit(tensors)
    safetensors.numpy.save_file(tensors, path, metadata={"format": "pt"})


def test_sharded_bfloat16_checkpoint(converted, tmp_path, monkeypatch):
    """Sharded safetensors with an index, stored in bfloat16, plus the
    redundant embed_tokens copies some exports carry; large tensors copied
    in row blocks (forced here with a tiny block size)."""
    import ml_dtypes

    from keras_prompt.convert import hf_t5

    monkeypatch.setattr(hf_t5, "_CHUNK_BYTES", 3000)

    directory = copy_checkpoint("t5v11", tmp_path / "ckpt")
    tensors = safetensors.numpy.load_file(os.path.join(directory, "model.safetensors"))
    os.remove(os.path.join(directory, "model.safetensors"))
    tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"]
    keys = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    weight_map = {}
    for name, shard_keys in shards.items():
        safetensors.numpy.save_file(
            {k: tensors[k].astype(ml_dtypes.bfloat16) for k in shard_keys},
            os.path.join(directory, name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard_keys})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as file:
        json.dump({"metadata": {}, "weight_map": weight_map}, file)
    backbone, _ = load_hf_t5(directory)
    reference, _ = converted("t5v11")
    for ours, theirs in zip(backbone.weights, reference.weights):
        expected = ops.convert_to_numpy(theirs).astype(ml_dtypes.bfloat16).astype("float32")
        np.testing.assert_array_equal(ops.convert_to_numpy(ours), expected)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"is_encoder_decoder": False}, "is_encoder_decoder"),
        ({"architectures": ["T5EncoderModel"]}, "architectures"),
        ({"model_type": "bert"}, "model_type 'bert'"),
        ({"num_decoder_layers": 3}, "num_decoder_layers=3"),
        ({"relative_attention_num_buckets": 64}, "relative_attention_num_buckets=64"),
        ({"relative_attention_max_distance": 256}, "relative_attention_max_distance=256"),
        ({"feed_forward_proj": "tanh", "dense_act_fn": None}, "dense_act_fn 'tanh'"),
        ({"is_gated_act": True}, "is_gated_act=True contradicts"),
        ({"d_model": 0}, "d_model"),
    ],
)
def test_unsupported_configs(tmp_path, changes, field):
    directory = copy_checkpoint("t5", tmp_path / "ckpt")
    _edit_config(directory, **changes)
    with pytest.raises(HFCheckpointError, match=field):
        load_hf_t5(directory)


def test_missing_weight(tmp_path):
    directory = copy_checkpoint("t5v11", tmp_path / "ckpt")
    key = "decoder.block.1.layer.2.DenseReluDense.wi_1.weight"
    _rewrite_weights(directory, lambda tensors: tensors.pop(key))
    with pytest.raises(HFCheckpointError, match=key.replace(".", r"\.")):
        load_hf_t5(directory)


def test_missing_lm_head_of_untied_model(tmp_path):
    directory = copy_checkpoint("t5v11", tmp_path / "ckpt")
    _rewrite_weights(directory, lambda tensors: tensors.pop("lm_head.weight"))
    with pytest.raises(HFCheckpointError, match=r"lm_head\.weight"):
        load_hf_t5(directory)


def test_wrong_shape(tmp_path):
    directory = copy_checkpoint("t5", tmp_path / "ckpt")
    key = "encoder.block.1.layer.0.SelfAttention.k.weight"
    _rewrite_weights(
        directory, lambda tensors: tensors.update({key: np.zeros((64, 32), "float32")})
    )
    with pytest.raises(HFCheckpointError, match=key.replace(".", r"\.") + r".*\[64, 32\].*\[64, 64\]"):
        load_hf_t5(directory)


def test_config_disagrees_with_weights(tmp_path):
    directory = copy_checkpoint("t5", tmp_path / "ckpt")
    _edit_config(directory, d_ff=256)
    with pytest.raises(HFCheckpointError, match=r"DenseReluDense\.wi\.weight.*\[128, 64\].*\[256, 64\]"):
        load_hf_t5(directory)
    _edit_config(directory, d_ff=128, num_layers=1, num_decoder_layers=1)
    with pytest.raises(HFCheckpointError, match=r"Unexpected weight 'decoder\.block\.1\."):
        load_hf_t5(directory)


def test_missing_files(tmp_path):
    directory = copy_checkpoint("t5", tmp_path / "ckpt")
    os.remove(os.path.join(directory, "spiece.model"))
    with pytest.raises(HFCheckpointError, match="spiece.model"):
        load_hf_t5(directory)
    directory = copy_checkpoint("t5", tmp_path / "ckpt2")
    os.rename(os.path.join(directory, "model.safetensors"),
              os.path.join(directory, "pytorch_model.bin"))
    with pytest.raises(HFCheckpointError, match="pytorch_model.bin"):
        load_hf_t5(directory)
    with pytest.raises(HFCheckpointError, match="not a directory"):
        load_hf_t5(tmp_path / "nothing")
