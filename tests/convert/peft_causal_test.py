"""PEFT CAUSAL_LM prompt-tuning adapters <-> prompt files of PromptedCausalLM
backbones, against adapters written by PEFT itself (`fixtures/peft_causal/`,
see its README) and the tiny GPT-2 / Llama / Gemma checkpoints of
`tests/models/fixtures/` with their PEFT logits."""

import json
import os
import subprocess
import textwrap

import keras_hub
import numpy as np
import pytest
import safetensors.numpy
from safetensors import safe_open

from keras_prompt import PromptedCausalLM
from keras_prompt.convert import export_peft
from keras_prompt.convert import import_peft
from keras_prompt.prompts.prompt_file import PromptFileError
from keras_prompt.prompts.prompt_file import backbone_fingerprint
from keras_prompt.prompts.prompt_file import read_prompt_file
from keras_prompt.prompts.prompt_file import save_prompt_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
ADAPTERS = os.path.join(HERE, "fixtures", "peft_causal")
# Relative to REPO: what PEFT recorded as `base_model_name_or_path`.
CHECKPOINTS = os.path.join("tests", "models", "fixtures")
FAMILIES = ("gpt2", "llama", "gemma")
PEFT_MADE = ("gpt2", "llama")  # Families with an adapter saved by PEFT.
PROMPT_LENGTH = 5
HIDDEN = 64
# The reference environment (torch, transformers 5.24, peft 0.21.2). Where it
# is missing (CI) the checks on the exported files still run in-process.
REFERENCE_PYTHON = os.path.expanduser("~/.venvs/ref/bin/python")

_TASKS = {}


def load_task(family):
    """The fixture checkpoint as a KerasHub CausalLM, converted once per
    family (KerasHub's converter takes seconds)."""
    if family not in _TASKS:
        _TASKS[family] = keras_hub.models.CausalLM.from_preset(
            os.path.join(REPO, CHECKPOINTS, family)
        )
    return _TASKS[family]


def load_example(family):
    example = os.path.join(REPO, CHECKPOINTS, family, "example")
    data = dict(np.load(os.path.join(example, "batch.npz")))
    data["prompt"] = np.load(os.path.join(example, "prompt.npy"))
    data["logits"] = np.load(os.path.join(example, "peft_logits.npy"))
    return data


def peft_config(family):
    """`adapter_config.json` as PEFT 0.21.2 wrote it for `family`."""
    with open(os.path.join(ADAPTERS, family, "adapter_config.json")) as file:
        return json.load(file)


def prompted_logits(family, prompt_path):
    """Our model's logits on the example batch with a prompt file."""
    task = load_task(family)
    model = PromptedCausalLM(
        task.backbone, task.preprocessor, prompt_length=PROMPT_LENGTH
    )
    model.load_prompt(prompt_path)
    example = load_example(family)
    return np.asarray(
        model.forward(
            {
                "token_ids": example["token_ids"],
                "padding_mask": example["padding_mask"],
            }
        )
    )


def write_adapter(directory, rows, **config_changes):
    """An adapter laid out as PEFT 0.21's save_pretrained writes it, from
    the GPT-2 adapter PEFT saved (same model sizes for all three
    families), with `config_changes` applied."""
    os.makedirs(directory, exist_ok=True)
    config = peft_config("gpt2")
    config.update(config_changes)
    with open(os.path.join(directory, "adapter_config.json"), "w") as file:
        json.dump(config, file, indent=2, sort_keys=True)
    safetensors.numpy.save_file(
        {"prompt_embeddings": np.asarray(rows)},
        os.path.join(directory, "adapter_model.safetensors"),
        metadata={"format": "pt"},
    )
    return str(directory)


def read_adapter(directory):
    with open(os.path.join(directory, "adapter_config.json")) as file:
        config = json.load(file)
    weights = os.path.join(directory, "adapter_model.safetensors")
    with safe_open(weights, "np") as file:
        names = list(file.keys())
        metadata = file.metadata()
        rows = file.get_tensor("prompt_embeddings")
    return config, names, metadata, rows


def valid(family):
    return load_example(family)["padding_mask"].astype(bool)


# === Import: adapters PEFT saved ===


@pytest.mark.parametrize("family", PEFT_MADE)
def test_import_peft_saved_adapter_reproduces_peft_logits(family, tmp_path):
    backbone = load_task(family).backbone
    example = load_example(family)
    output = import_peft(
        os.path.join(ADAPTERS, family),
        tmp_path / "imported.safetensors",
        backbone=backbone,
        task="demo",
    )
    prompt, metadata = read_prompt_file(output)
    assert prompt.tobytes() == example["prompt"].tobytes()
    assert metadata["backbone_fingerprint"] == backbone_fingerprint(backbone)
    assert metadata["task"] == "demo"
    assert metadata["source"] == "peft"
    assert metadata["initializer"] == "peft:RANDOM"
    assert metadata["base_model_name_or_path"] == f"{CHECKPOINTS}/{family}"
    logits = prompted_logits(family, output)
    np.testing.assert_allclose(
        logits[valid(family)], example["logits"][valid(family)], atol=1e-4
    )


def test_import_gemma_adapter_in_both_conventions(tmp_path):
    """A transformers 5 Gemma adapter holds the prompt itself; one trained
    with transformers < 5 holds prompt / sqrt(hidden) (that version scaled
    inputs_embeds, prompt included): `gemma_scaled_prompt=True` restores
    the prompt the model saw."""
    backbone = load_task("gemma").backbone
    example = load_example("gemma")
    plain = write_adapter(tmp_path / "v5", example["prompt"])
    output = import_peft(plain, tmp_path / "v5.safetensors", backbone=backbone)
    prompt, _ = read_prompt_file(output)
    assert prompt.tobytes() == example["prompt"].tobytes()
    np.testing.assert_allclose(
        prompted_logits("gemma", output)[valid("gemma")],
        example["logits"][valid("gemma")],
        atol=1e-4,
    )

    # sqrt(64) = 8 is a power of two: the scaling is exact both ways.
    scaled = write_adapter(tmp_path / "v4", example["prompt"] / np.float32(8))
    output = import_peft(
        scaled,
        tmp_path / "v4.safetensors",
        backbone=backbone,
        gemma_scaled_prompt=True,
    )
    prompt, _ = read_prompt_file(output)
    assert prompt.tobytes() == example["prompt"].tobytes()
    # Without the option the rows are taken as they are.
    prompt, _ = read_prompt_file(
        import_peft(scaled, tmp_path / "as_is.safetensors", backbone=backbone)
    )
    np.testing.assert_array_equal(prompt, example["prompt"] / 8)


def test_adapter_without_task_type_or_submodules_reads_like_peft(tmp_path):
    # PEFT's defaults: task_type None, num_transformer_submodules 1 unless
    # SEQ_2_SEQ_LM.
    backbone = load_task("gpt2").backbone
    rows = load_example("gpt2")["prompt"]
    adapter = write_adapter(
        tmp_path / "adapter",
        rows,
        task_type=None,
        num_transformer_submodules=None,
        num_layers=None,
        num_attention_heads=None,
    )
    prompt, _ = read_prompt_file(
        import_peft(adapter, tmp_path / "p.safetensors", backbone=backbone)
    )
    assert prompt.tobytes() == rows.tobytes()


# === Export ===

_REFERENCE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    for job in json.loads(sys.argv[1]):
        base = AutoModelForCausalLM.from_pretrained(job["base"]).eval()
        model = PeftModel.from_pretrained(base, job["adapter"]).eval()
        assert type(model).__name__ == "PeftModelForCausalLM", type(model)
        config = model.peft_config["default"]
        batch = np.load(job["batch"])
        with torch.no_grad():
            weight = model.prompt_encoder["default"].embedding.weight
            logits = model(
                input_ids=torch.from_numpy(batch["token_ids"].astype("int64")),
                attention_mask=torch.from_numpy(
                    batch["padding_mask"].astype("int64")
                ),
            ).logits[:, config.num_virtual_tokens:]
        np.savez(
            job["out"],
            prompt=weight.detach().numpy(),
            logits=logits.numpy(),
            task_type=str(config.task_type),
            submodules=config.num_transformer_submodules,
        )
    """
)


def run_reference(jobs):
    """Loads each adapter with `PeftModel.from_pretrained` in the reference
    venv; returns its prompt weight and logits on the example batch."""
    completed = subprocess.run(
        [REFERENCE_PYTHON, "-c", _REFERENCE_SCRIPT, json.dumps(jobs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [dict(np.load(job["out"])) for job in jobs]


def saved_prompt(family, path, seed):
    """A random prompt saved by PromptedCausalLM itself (the file a
    training run writes)."""
    task = load_task(family)
    model = PromptedCausalLM(
        task.backbone, task.preprocessor, prompt_length=PROMPT_LENGTH, seed=seed
    )
    model.save_prompt(path, task="demo", labels=["yes", "no"])
    return str(path)


def test_export_is_what_peft_writes_and_loads(tmp_path):
    jobs, expected = [], []
    for seed, family in enumerate(FAMILIES):
        backbone = load_task(family).backbone
        path = saved_prompt(family, tmp_path / f"{family}.safetensors", seed)
        prompt, _ = read_prompt_file(path)
        base = f"{CHECKPOINTS}/{family}"
        adapter = export_peft(
            path,
            tmp_path / f"{family}_adapter",
            backbone=backbone,
            base_model_name_or_path=base,
        )
        config, names, metadata, rows = read_adapter(adapter)
        # Every field PEFT writes for this model, minus `peft_version`
        # (which PEFT fills in on load).
        if family in PEFT_MADE:
            reference = peft_config(family)
        else:  # Same sizes as GPT-2 (hidden 64, 2 layers, 4 query heads).
            reference = dict(peft_config("gpt2"), base_model_name_or_path=base)
        del reference["peft_version"]
        assert config == reference
        assert config["task_type"] == "CAUSAL_LM"
        assert config["num_transformer_submodules"] == 1
        assert names == ["prompt_embeddings"]
        assert metadata["format"] == "pt"
        assert rows.dtype == np.float32 and rows.shape == (PROMPT_LENGTH, HIDDEN)
        assert rows.tobytes() == prompt.tobytes()
        if family in PEFT_MADE:
            _, peft_names, peft_metadata, peft_rows = read_adapter(
                os.path.join(ADAPTERS, family)
            )
            assert names == peft_names
            assert metadata["format"] == peft_metadata["format"]
            assert (rows.dtype, rows.shape) == (peft_rows.dtype, peft_rows.shape)
        jobs.append(
            {
                "base": base,
                "adapter": str(adapter),
                "batch": os.path.join(
                    CHECKPOINTS, family, "example", "batch.npz"
                ),
                "out": str(tmp_path / f"{family}_peft.npz"),
            }
        )
        expected.append((family, prompt, prompted_logits(family, path)))

    if not os.path.exists(REFERENCE_PYTHON):
        return  # The checks above are the whole test without the venv.
    for result, (family, prompt, logits) in zip(run_reference(jobs), expected):
        assert str(result["task_type"]) == "CAUSAL_LM"
        assert int(result["submodules"]) == 1
        assert result["prompt"].tobytes() == prompt.tobytes(), family
        np.testing.assert_allclose(
            result["logits"][valid(family)],
            logits[valid(family)],
            atol=1e-4,
            err_msg=family,
        )


def test_causal_round_trip_is_exact(tmp_path):
    backbone = load_task("llama").backbone
    path = saved_prompt("llama", tmp_path / "llama.safetensors", seed=3)
    adapter = export_peft(path, tmp_path / "adapter", backbone=backbone)
    back = import_peft(adapter, tmp_path / "back.safetensors", backbone=backbone)
    original_prompt, original_metadata = read_prompt_file(path)
    prompt, metadata = read_prompt_file(back)
    assert prompt.tobytes() == original_prompt.tobytes()
    assert metadata == original_metadata
    assert metadata["sequence_length"] > 0  # Recorded by save_prompt.


def test_export_task_type_without_backbone(tmp_path):
    backbone = load_task("gpt2").backbone
    prompt = load_example("gpt2")["prompt"]
    fingerprint = backbone_fingerprint(backbone)
    # `sequence_length` is what PromptedCausalLM records: a causal prompt.
    recorded = save_prompt_file(
        tmp_path / "recorded.safetensors",
        prompt,
        {"backbone_fingerprint": fingerprint, "sequence_length": 32},
    )
    config, _, _, rows = read_adapter(export_peft(recorded, tmp_path / "a"))
    assert (config["task_type"], config["num_transformer_submodules"]) == (
        "CAUSAL_LM",
        1,
    )
    assert config["num_layers"] is None  # PEFT fills it from the model.
    assert rows.shape == (PROMPT_LENGTH, HIDDEN)
    # A file that records no lengths is a T5 prompt unless told otherwise.
    bare = save_prompt_file(
        tmp_path / "bare.safetensors", prompt, {"backbone_fingerprint": fingerprint}
    )
    config, _, _, _ = read_adapter(export_peft(bare, tmp_path / "b"))
    assert config["task_type"] == "SEQ_2_SEQ_LM"
    config, _, _, rows = read_adapter(
        export_peft(bare, tmp_path / "c", task_type="CAUSAL_LM")
    )
    assert (config["task_type"], config["num_transformer_submodules"]) == (
        "CAUSAL_LM",
        1,
    )
    assert rows.tobytes() == prompt.tobytes()


def test_gemma_scaled_prompt_export_and_round_trip(tmp_path):
    backbone = load_task("gemma").backbone
    path = saved_prompt("gemma", tmp_path / "gemma.safetensors", seed=5)
    prompt, original_metadata = read_prompt_file(path)
    adapter = export_peft(
        path, tmp_path / "v4", backbone=backbone, gemma_scaled_prompt=True
    )
    config, _, metadata, rows = read_adapter(adapter)
    assert config["task_type"] == "CAUSAL_LM"
    # transformers < 5 multiplies these rows by sqrt(64) = 8 (exactly).
    assert rows.tobytes() == (prompt / np.float32(8)).tobytes()
    assert metadata["keras_prompt.gemma_scaled_prompt"] == "true"
    back = import_peft(
        adapter,
        tmp_path / "back.safetensors",
        backbone=backbone,
        gemma_scaled_prompt=True,
    )
    restored, restored_metadata = read_prompt_file(back)
    assert restored.tobytes() == prompt.tobytes()
    assert restored_metadata == original_metadata

    # Importing with the other convention would scale the prompt wrongly.
    weights = os.path.join(adapter, "adapter_model.safetensors")
    output = tmp_path / "wrong.safetensors"
    with pytest.raises(PromptFileError) as error:
        import_peft(adapter, output, backbone=backbone)
    message = str(error.value)
    assert message.startswith(f"'{weights}' was written by")
    assert "gemma_scaled_prompt=True" in message
    assert "Import it with gemma_scaled_prompt=True" in message
    plain = export_peft(path, tmp_path / "v5", backbone=backbone)
    with pytest.raises(PromptFileError, match="with gemma_scaled_prompt=False"):
        import_peft(plain, output, backbone=backbone, gemma_scaled_prompt=True)
    assert not os.path.exists(output)


# === Refusals ===


def test_gemma_scaled_prompt_is_refused_off_gemma(converted, tmp_path):
    example = load_example("gpt2")
    adapter = write_adapter(tmp_path / "adapter", example["prompt"])
    output = tmp_path / "p.safetensors"
    gpt2 = load_task("gpt2").backbone
    t5, _ = converted("t5v11")
    for backbone, name in ((gpt2, "GPT2Backbone"), (t5, "T5Backbone")):
        with pytest.raises(ValueError, match=f"the backbone is a {name}"):
            import_peft(
                adapter, output, backbone=backbone, gemma_scaled_prompt=True
            )
    with pytest.raises(ValueError, match="Leave gemma_scaled_prompt out"):
        import_peft(adapter, output, backbone=gpt2, gemma_scaled_prompt=True)
    assert not os.path.exists(output)

    path = saved_prompt("gpt2", tmp_path / "gpt2.safetensors", seed=0)
    with pytest.raises(ValueError, match="the backbone is a GPT2Backbone"):
        export_peft(path, tmp_path / "out", backbone=gpt2, gemma_scaled_prompt=True)
    with pytest.raises(ValueError, match="needs backbone="):
        export_peft(path, tmp_path / "out", gemma_scaled_prompt=True)
    with pytest.raises(ValueError, match="must be True or False; got 'yes'"):
        export_peft(path, tmp_path / "out", gemma_scaled_prompt="yes")
    assert not os.path.exists(tmp_path / "out")


def test_seq2seq_adapter_refused_for_causal_backbone(converted, tmp_path):
    # A real T5 adapter layout (2N rows) offered to GPT-2.
    rows = np.zeros((2 * PROMPT_LENGTH, HIDDEN), "float32")
    adapter = write_adapter(
        tmp_path / "adapter",
        rows,
        task_type="SEQ_2_SEQ_LM",
        num_transformer_submodules=2,
    )
    output = tmp_path / "p.safetensors"
    with pytest.raises(PromptFileError) as error:
        import_peft(adapter, output, backbone=load_task("gpt2").backbone)
    message = str(error.value)
    config_path = os.path.join(adapter, "adapter_config.json")
    assert message.startswith(
        f"'{config_path}': task_type is 'SEQ_2_SEQ_LM'; a prompt for the "
        "GPT2Backbone (a decoder-only model, `PromptedCausalLM`) needs "
        "'CAUSAL_LM'."
    )
    assert "`keras_prompt.convert.load_hf_t5`" in message
    assert not os.path.exists(output)


def test_causal_adapter_refused_for_t5_backbone(converted, tmp_path):
    backbone, _ = converted("t5v11")  # Hidden 64, 2 layers, 4 heads too.
    adapter = os.path.join(ADAPTERS, "gpt2")
    output = tmp_path / "p.safetensors"
    with pytest.raises(PromptFileError) as error:
        import_peft(adapter, output, backbone=backbone)
    message = str(error.value)
    config_path = os.path.join(adapter, "adapter_config.json")
    assert message.startswith(
        f"'{config_path}': task_type is 'CAUSAL_LM'; a T5 prompt needs "
        "'SEQ_2_SEQ_LM'."
    )
    assert "use it in `PromptedCausalLM`" in message
    assert not os.path.exists(output)


@pytest.mark.parametrize(
    "rows_shape, changes, message",
    [
        (
            (5, 32),
            {"token_dim": 32},
            "token_dim 32 does not match the backbone's hidden_dim 64; the "
            "adapter was trained on a different model. Import it with the "
            "backbone of the model it was trained on.",
        ),
        (
            (10, 64),
            {"num_transformer_submodules": 2},
            "num_transformer_submodules is 2; a CAUSAL_LM adapter has "
            "exactly one prompt",
        ),
        (
            (5, 64),
            {"task_type": "SEQ_CLS"},
            "task_type is 'SEQ_CLS'; a prompt for the Llama3Backbone",
        ),
        ((5, 64), {"num_layers": 12}, "num_layers 12 does not match"),
        (
            (5, 64),
            {"num_attention_heads": 2},  # Llama's kv heads, not its query heads.
            "num_attention_heads 2 does not match the backbone's 4",
        ),
        (
            (4, 64),
            {},
            r"prompt_embeddings has shape [4, 64], but adapter_config.json "
            r"implies [5, 64]",
        ),
    ],
)
def test_bad_causal_adapters(tmp_path, rows_shape, changes, message):
    adapter = write_adapter(
        tmp_path / "adapter", np.zeros(rows_shape, "float32"), **changes
    )
    output = tmp_path / "p.safetensors"
    with pytest.raises(PromptFileError) as error:
        import_peft(adapter, output, backbone=load_task("llama").backbone)
    assert message in str(error.value)
    assert f"'{adapter}{os.sep}adapter_" in str(error.value)  # The file.
    assert not os.path.exists(output)


def test_export_refusals(tmp_path):
    gpt2 = load_task("gpt2").backbone
    path = saved_prompt("gpt2", tmp_path / "gpt2.safetensors", seed=0)
    out = tmp_path / "out"
    with pytest.raises(PromptFileError, match="fingerprint"):
        export_peft(path, out, backbone=load_task("llama").backbone)
    with pytest.raises(
        ValueError,
        match="task_type='SEQ_2_SEQ_LM' contradicts the backbone, a "
        "GPT2Backbone, whose prompts are 'CAUSAL_LM' adapters. Leave "
        "task_type out.",
    ):
        export_peft(path, out, backbone=gpt2, task_type="SEQ_2_SEQ_LM")
    with pytest.raises(PromptFileError) as error:
        export_peft(path, out, task_type="SEQ_2_SEQ_LM")
    assert str(error.value).startswith(
        f"{path}: the file records 'sequence_length' (a CAUSAL_LM prompt's "
        "sequence length), but task_type='SEQ_2_SEQ_LM' was given."
    )
    with pytest.raises(ValueError, match="got 'SEQ_CLS'"):
        export_peft(path, out, task_type="SEQ_CLS")
    with pytest.raises(
        ValueError, match="num_transformer_submodules=2 is for SEQ_2_SEQ_LM"
    ):
        export_peft(path, out, backbone=gpt2, num_transformer_submodules=2)
    assert not os.path.exists(out)
    with pytest.raises(TypeError, match="backbone is a BertBackbone"):
        export_peft(
            path,
            out,
            backbone=keras_hub.models.BertBackbone(
                vocabulary_size=10,
                num_layers=1,
                num_heads=1,
                hidden_dim=4,
                intermediate_dim=4,
                max_sequence_length=8,
            ),
        )
