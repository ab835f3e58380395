"""PEFT prompt-tuning adapters <-> keras-prompt prompt files."""

import json
import os

import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy
from keras import ops
from safetensors import safe_open

from keras_prompt.convert import export_peft
from keras_prompt.convert import import_peft
from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM
from keras_prompt.prompts.prompt_file import PromptFileError
from keras_prompt.prompts.prompt_file import backbone_fingerprint
from keras_prompt.prompts.prompt_file import read_prompt_file
from keras_prompt.prompts.prompt_file import save_prompt_file
from tests.convert.conftest import PROMPT_LENGTH
from tests.convert.conftest import load_example

# The dataclass fields of PEFT's PromptTuningConfig and its bases
# (PromptLearningConfig, PeftConfig, PeftConfigMixin) in peft 0.21, minus
# `peft_version`, which PEFT fills in itself when it is absent.
PROMPT_TUNING_CONFIG_KEYS = {
    "auto_mapping",
    "base_model_name_or_path",
    "inference_mode",
    "modules_to_save",
    "num_attention_heads",
    "num_layers",
    "num_transformer_submodules",
    "num_virtual_tokens",
    "peft_type",
    "prompt_tuning_init",
    "prompt_tuning_init_text",
    "revision",
    "task_type",
    "token_dim",
    "tokenizer_kwargs",
    "tokenizer_name_or_path",
}


@pytest.fixture()
def prompt_file(converted, tmp_path):
    backbone, _ = converted("t5v11")
    prompt = load_example("t5v11")["prompt"]
    path = tmp_path / "demo.safetensors"
    save_prompt_file(
        path,
        prompt,
        {
            "backbone_fingerprint": backbone_fingerprint(backbone),
            "task": "demo",
            "labels": ["yes", "no"],
            "initializer": "random_uniform",
            "training_steps": 12,
        },
    )
    return str(path)


def _write_peft_adapter(directory, rows, **config_changes):
    """An adapter directory laid out as PEFT 0.21's save_pretrained does."""
    os.makedirs(directory, exist_ok=True)
    config = {
        "auto_mapping": None,
        "base_model_name_or_path": "tiny-t5v11",
        "inference_mode": True,
        "modules_to_save": None,
        "num_attention_heads": 4,
        "num_layers": 2,
        "num_transformer_submodules": 2,
        "num_virtual_tokens": PROMPT_LENGTH,
        "peft_type": "PROMPT_TUNING",
        "peft_version": "0.21.2",
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "revision": None,
        "task_type": "SEQ_2_SEQ_LM",
        "token_dim": 64,
        "tokenizer_kwargs": None,
        "tokenizer_name_or_path": None,
    }
    config.update(config_changes)
    with open(os.path.join(directory, "adapter_config.json"), "w") as file:
        json.dump(config, file, indent=2, sort_keys=True)
    safetensors.numpy.save_file(
        {"prompt_embeddings": rows},
        os.path.join(directory, "adapter_model.safetensors"),
        metadata={"format": "pt"},
    )
    return str(directory)


def test_export_layout(converted, prompt_file, tmp_path):
    backbone, _ = converted("t5v11")
    prompt, _ = read_prompt_file(prompt_file)
    out = export_peft(
        prompt_file, tmp_path / "adapter", backbone=backbone,
        base_model_name_or_path="google/t5-base-lm-adapt",
    )
    with open(os.path.join(out, "adapter_config.json")) as file:
        config = json.load(file)
    assert set(config) == PROMPT_TUNING_CONFIG_KEYS
    assert config["peft_type"] == "PROMPT_TUNING"
    assert config["task_type"] == "SEQ_2_SEQ_LM"
    assert config["prompt_tuning_init"] == "RANDOM"
    assert config["inference_mode"] is True
    assert config["num_virtual_tokens"] == PROMPT_LENGTH
    assert config["token_dim"] == 64
    assert config["num_transformer_submodules"] == 2
    assert (config["num_layers"], config["num_attention_heads"]) == (2, 4)
    assert config["base_model_name_or_path"] == "google/t5-base-lm-adapt"
    with safe_open(os.path.join(out, "adapter_model.safetensors"), "np") as file:
        assert list(file.keys()) == ["prompt_embeddings"]
        assert file.metadata()["format"] == "pt"
        rows = file.get_tensor("prompt_embeddings")
    assert rows.dtype == np.float32
    assert rows.shape == (2 * PROMPT_LENGTH, 64)
    np.testing.assert_array_equal(rows[:PROMPT_LENGTH], prompt)
    np.testing.assert_array_equal(rows[PROMPT_LENGTH:], 0.0)


def test_export_without_backbone_leaves_model_fields_to_peft(prompt_file, tmp_path):
    out = export_peft(prompt_file, tmp_path / "adapter")
    with open(os.path.join(out, "adapter_config.json")) as file:
        config = json.load(file)
    # PEFT fills these from the model config when they are null.
    assert config["num_layers"] is None
    assert config["num_attention_heads"] is None
    assert config["base_model_name_or_path"] is None


@pytest.mark.parametrize("submodules", [2, 1])
def test_round_trip_is_exact(converted, prompt_file, tmp_path, submodules):
    backbone, _ = converted("t5v11")
    adapter = export_peft(
        prompt_file, tmp_path / "adapter", num_transformer_submodules=submodules
    )
    with safe_open(os.path.join(adapter, "adapter_model.safetensors"), "np") as file:
        assert file.get_slice("prompt_embeddings").get_shape() == [
            submodules * PROMPT_LENGTH, 64
        ]
    output = import_peft(adapter, tmp_path / "back.safetensors", backbone=backbone)
    original_prompt, original_metadata = read_prompt_file(prompt_file)
    prompt, metadata = read_prompt_file(output)
    assert prompt.tobytes() == original_prompt.tobytes()
    assert metadata == original_metadata


def test_import_peft_seq2seq_layout_matches_reference(converted, tmp_path):
    """A PEFT adapter (2N rows, decoder half unused) imported and run
    through PromptedT5Seq2SeqLM reproduces PEFT's logits."""
    backbone, _ = converted("t5v11")
    example = load_example("t5v11")
    unused = np.random.default_rng(0).standard_normal((PROMPT_LENGTH, 64))
    rows = np.concatenate([example["prompt"], unused.astype("float32")])
    adapter = _write_peft_adapter(tmp_path / "adapter", rows)
    output = import_peft(
        adapter, tmp_path / "imported.safetensors", backbone=backbone, task="demo"
    )
    prompt, metadata = read_prompt_file(output)
    np.testing.assert_array_equal(prompt, example["prompt"])
    assert metadata["task"] == "demo"
    assert metadata["source"] == "peft"
    assert metadata["base_model_name_or_path"] == "tiny-t5v11"
    assert metadata["backbone_fingerprint"] == backbone_fingerprint(backbone)

    model = PromptedT5Seq2SeqLM(backbone, prompt_length=PROMPT_LENGTH, compile=False)
    model.load_prompt(output)
    logits = model(
        {
            "encoder_token_ids": example["encoder_ids"],
            "encoder_padding_mask": example["encoder_mask"],
            "decoder_token_ids": example["decoder_input_ids"],
            "decoder_padding_mask": example["decoder_mask"],
        },
        training=False,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(logits), example["logits"], atol=1e-4
    )


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_import_half_precision_adapter(converted, tmp_path, dtype):
    backbone, _ = converted("t5v11")
    rows = np.random.default_rng(1).standard_normal((PROMPT_LENGTH, 64))
    adapter = _write_peft_adapter(
        tmp_path / "adapter", rows.astype(dtype), num_transformer_submodules=1
    )
    prompt, _ = read_prompt_file(
        import_peft(adapter, tmp_path / "p.safetensors", backbone=backbone)
    )
    assert prompt.dtype == np.float32
    np.testing.assert_array_equal(prompt, rows.astype(dtype).astype("float32"))


def test_missing_submodules_defaults_like_peft(converted, tmp_path):
    backbone, _ = converted("t5v11")
    rows = np.ones((2 * PROMPT_LENGTH, 64), "float32")
    adapter = _write_peft_adapter(
        tmp_path / "adapter", rows, num_transformer_submodules=None
    )
    prompt, _ = read_prompt_file(
        import_peft(adapter, tmp_path / "p.safetensors", backbone=backbone)
    )
    assert prompt.shape == (PROMPT_LENGTH, 64)


@pytest.mark.parametrize(
    "rows_shape, changes, message",
    [
        ((10, 32), {"token_dim": 32}, "token_dim 32 does not match the backbone's hidden_dim 64"),
        ((10, 64), {"num_layers": 12}, "num_layers 12 does not match"),
        ((10, 64), {"num_attention_heads": 8}, "num_attention_heads 8 does not match"),
        ((10, 64), {"peft_type": "PREFIX_TUNING"}, "peft_type is 'PREFIX_TUNING'"),
        ((10, 64), {"task_type": "CAUSAL_LM"}, "task_type is 'CAUSAL_LM'"),
        ((8, 64), {}, r"prompt_embeddings has shape \[8, 64\].*\[10, 64\]"),
        ((10, 64), {"num_virtual_tokens": 0}, "num_virtual_tokens must be a positive integer"),
    ],
)
def test_bad_adapters(converted, tmp_path, rows_shape, changes, message):
    backbone, _ = converted("t5v11")
    adapter = _write_peft_adapter(
        tmp_path / "adapter", np.zeros(rows_shape, "float32"), **changes
    )
    with pytest.raises(PromptFileError, match=message):
        import_peft(adapter, tmp_path / "p.safetensors", backbone=backbone)
    assert not os.path.exists(tmp_path / "p.safetensors")


def test_adapter_file_problems(converted, tmp_path):
    backbone, _ = converted("t5v11")
    adapter = _write_peft_adapter(
        tmp_path / "adapter", np.zeros((10, 64), "float32")
    )
    weights = os.path.join(adapter, "adapter_model.safetensors")
    safetensors.numpy.save_file({"embedding.weight": np.zeros((10, 64), "float32")}, weights)
    with pytest.raises(PromptFileError, match="no tensor 'prompt_embeddings'"):
        import_peft(adapter, tmp_path / "p.safetensors", backbone=backbone)
    os.remove(weights)
    open(os.path.join(adapter, "adapter_model.bin"), "wb").close()
    with pytest.raises(PromptFileError, match="adapter_model.bin"):
        import_peft(adapter, tmp_path / "p.safetensors", backbone=backbone)
    os.remove(os.path.join(adapter, "adapter_config.json"))
    with pytest.raises(PromptFileError, match="adapter_config.json"):
        import_peft(adapter, tmp_path / "p.safetensors", backbone=backbone)


def test_export_checks_backbone(converted, prompt_file, tmp_path):
    other, _ = converted("t5")  # Same shapes, different weights.
    with pytest.raises(PromptFileError, match="fingerprint"):
        export_peft(prompt_file, tmp_path / "adapter", backbone=other)
    with pytest.raises(ValueError, match="num_transformer_submodules"):
        export_peft(prompt_file, tmp_path / "adapter", num_transformer_submodules=3)


def _replace_carried_metadata(adapter, carried_text):
    """Rewrites the `keras_prompt.metadata` entry `export_peft` stored in an
    adapter's weights file; returns that file's path."""
    weights = os.path.join(adapter, "adapter_model.safetensors")
    with safe_open(weights, "np") as file:
        rows = file.get_tensor("prompt_embeddings")
        metadata = file.metadata()
    metadata["keras_prompt.metadata"] = carried_text
    safetensors.numpy.save_file(
        {"prompt_embeddings": rows}, weights, metadata=metadata
    )
    return weights


def _carried_metadata(adapter):
    weights = os.path.join(adapter, "adapter_model.safetensors")
    with safe_open(weights, "np") as file:
        return json.loads(file.metadata()["keras_prompt.metadata"])


def test_round_trip_keeps_sequence_lengths(converted, tmp_path):
    backbone, _ = converted("t5v11")
    path = save_prompt_file(
        tmp_path / "lengths.safetensors",
        load_example("t5v11")["prompt"],
        {
            "backbone_fingerprint": backbone_fingerprint(backbone),
            "encoder_sequence_length": 16,
            "decoder_sequence_length": 9,
        },
    )
    adapter = export_peft(path, tmp_path / "adapter")
    _, metadata = read_prompt_file(
        import_peft(adapter, tmp_path / "back.safetensors", backbone=backbone)
    )
    assert metadata["encoder_sequence_length"] == 16
    assert metadata["decoder_sequence_length"] == 9


@pytest.mark.parametrize(
    "key, value, shown, requirement",
    [
        ("labels", "yes", '"yes"', "a JSON list of strings"),
        ("labels", 5, "5", "a JSON list of strings"),
        ("labels", [1, 2], "[1, 2]", "a JSON list of strings"),
        ("training_steps", -3, "-3", "an integer >= 0"),
        ("training_steps", "12", '"12"', "an integer >= 0"),
        ("training_steps", 12.5, "12.5", "an integer >= 0"),
        ("training_steps", True, "true", "an integer >= 0"),
        ("encoder_sequence_length", 0, "0", "an integer >= 1"),
        ("decoder_sequence_length", [9], "[9]", "an integer >= 1"),
    ],
)
def test_import_refuses_bad_carried_metadata(
    converted, prompt_file, tmp_path, key, value, shown, requirement
):
    backbone, _ = converted("t5v11")
    adapter = export_peft(prompt_file, tmp_path / "adapter")
    carried = _carried_metadata(adapter)
    carried[key] = value
    weights = _replace_carried_metadata(adapter, json.dumps(carried))
    output = tmp_path / "p.safetensors"
    with pytest.raises(PromptFileError) as error:
        import_peft(adapter, output, backbone=backbone)
    message = str(error.value)
    assert message.startswith(
        f"'{weights}' (metadata entry 'keras_prompt.metadata'): metadata "
        f"'{key}' is {shown}; it must be {requirement}"
    )
    assert message.endswith(
        "Correct the value in that entry, delete the entry to import the "
        "adapter without keras-prompt metadata, or export the adapter again "
        "with `keras_prompt.convert.export_peft`."
    )
    assert not os.path.exists(output)


@pytest.mark.parametrize(
    "carried_text, problem",
    [
        ('{"labels": ["yes"', "is not JSON"),
        ('["yes", "no"]', "must be a JSON object of prompt metadata"),
    ],
)
def test_import_refuses_a_damaged_metadata_entry(
    converted, prompt_file, tmp_path, carried_text, problem
):
    backbone, _ = converted("t5v11")
    adapter = export_peft(prompt_file, tmp_path / "adapter")
    weights = _replace_carried_metadata(adapter, carried_text)
    output = tmp_path / "p.safetensors"
    with pytest.raises(PromptFileError) as error:
        import_peft(adapter, output, backbone=backbone)
    message = str(error.value)
    assert f"'{weights}' (metadata entry 'keras_prompt.metadata')" in message
    assert problem in message and repr(carried_text) in message
    assert not os.path.exists(output)


def test_import_ignores_bad_values_of_recomputed_keys(
    converted, prompt_file, tmp_path
):
    # prompt_length, hidden_dim, ... are recomputed on import, so their
    # carried values never reach the written file.
    backbone, _ = converted("t5v11")
    adapter = export_peft(prompt_file, tmp_path / "adapter")
    carried = _carried_metadata(adapter)
    carried.update(prompt_length=-1, hidden_dim="wide", format="other")
    _replace_carried_metadata(adapter, json.dumps(carried))
    prompt, metadata = read_prompt_file(
        import_peft(adapter, tmp_path / "p.safetensors", backbone=backbone)
    )
    assert (metadata["prompt_length"], metadata["hidden_dim"]) == prompt.shape
    assert metadata["labels"] == ["yes", "no"]
