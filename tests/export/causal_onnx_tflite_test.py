"""ONNX and LiteRT exports of decoder-only models (`PromptedCausalLM`) on the
tiny Hugging Face fixtures, against the Keras model: forward logits, greedy
continuations in the three prompt modes, mixed-task batches, bad rows.

Fast by design: each model is loaded once, each graph exported once, and
the graphs run in this process (the T5 tests check the TensorFlow-free
runners and clients)."""

import json
import os
import sys

import keras_hub
import numpy as np
import pytest

from keras_prompt import PromptedCausalLM
from tests.conftest import make_tiny_backbone
from tests.export.conftest import REPO_ROOT
from tests.export.conftest import assert_bad_rows_answered
from tests.export.runners import bad_inputs
from tests.export.tflite_export_test import _operator_codes
from tests.models.prompted_causal_lm_test import FIXTURES
from tests.models.prompted_causal_lm_test import PROMPT_LENGTH
from tests.models.prompted_causal_lm_test import load_example

NEW_TOKENS = 4
NUM_TASKS = 3
# A mixed-task, mixed-length batch (right-padded).
LENGTHS = (6, 2, 4, 3)
TASKS = (2, 0, 1, 0)


def _model(family):
    """The fixture's model (its own copy: a test may change its weights)
    with its PEFT prompt, without XLA (each new shape would compile)."""
    task = keras_hub.models.CausalLM.from_preset(os.path.join(FIXTURES, family))
    model = PromptedCausalLM(
        task.backbone,
        task.preprocessor,
        prompt_length=PROMPT_LENGTH,
        prompt_initializer=load_example(family)["prompt"],
    )
    model.compile(jit_compile=False)
    return model


def _batch(vocabulary_size, lengths=LENGTHS, seed=0):
    """Random right-padded `token_ids` / `padding_mask` (pad id 0)."""
    rng = np.random.default_rng(seed)
    mask = np.arange(max(lengths))[None, :] < np.array(lengths)[:, None]
    # Ids 3+: no special token inside the inputs.
    ids = rng.integers(3, vocabulary_size, mask.shape) * mask
    return {
        "token_ids": ids.astype(np.int32),
        "padding_mask": mask.astype(np.int32),
    }


def keras_continuations(model, batch, prompts=None):
    """`model.generate`'s new tokens of each row (after its own input)."""
    out = model.generate(
        dict(batch), max_new_tokens=NEW_TOKENS, prompts=prompts
    )
    lengths = batch["padding_mask"].sum(axis=1)
    return np.stack(
        [
            out["token_ids"][row, length : length + NEW_TOKENS]
            for row, length in enumerate(lengths)
        ]
    )


def _stop_after_first_token(model, batch):
    """Points the end token's head column at the token row 0 generates
    second, so that row ends early (the stop and pad convention is then
    exercised); needs an untied head (Llama)."""
    second = int(keras_continuations(model, batch)[0, 1])
    embedding = model.backbone.token_embedding
    head = np.array(embedding.reverse_embeddings.numpy())
    end = model.preprocessor.tokenizer.end_token_id
    head[:, end] = head[:, second] * 1.01
    embedding.reverse_embeddings.assign(head)


@pytest.fixture(scope="module")
def gpt2():
    model = _model("gpt2")
    rng = np.random.default_rng(1)
    bank = rng.uniform(
        -0.5, 0.5, (NUM_TASKS, PROMPT_LENGTH, model.hidden_dim)
    ).astype(np.float32)
    return model, bank, _batch(model.backbone.vocabulary_size)


def _bank_generate(bank):
    """The export arguments of a bank of `NUM_TASKS` prompts' generate
    graph."""
    return {
        "mode": "bank",
        "prompts": {f"task{i}": prompt for i, prompt in enumerate(bank)},
        "graph": "generate",
        "max_new_tokens": NEW_TOKENS,
    }


@pytest.fixture(scope="module")
def onnx_files(gpt2, tmp_path_factory):
    from keras_prompt.export import export_onnx

    model, bank, _ = gpt2
    out = tmp_path_factory.mktemp("causal_onnx")
    return {
        "bank_generate": export_onnx(
            model,
            out / "bank_generate.onnx",
            **_bank_generate(bank),
        ),
        "runtime_forward": export_onnx(
            model, out / "runtime_forward.onnx", mode="runtime"
        ),
    }


def _session(path):
    import onnxruntime

    return onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )


def _description(path):
    import onnx

    from keras_prompt.export.onnx_export import METADATA_KEY

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(props[METADATA_KEY])


def _bad_rows_reply(run, feed, vocabulary_size, fixed_batch=False):
    """`run(feed) -> (result, invalid_inputs)` on the good feed and on each
    of `bad_inputs`' broken copies, as `assert_bad_rows_answered` reads
    them."""
    reply = {"out": run(feed)[0], "bad_inputs": {}}
    cases = bad_inputs.cases(feed, vocabulary_size, NUM_TASKS, fixed_batch)
    for name, (broken, expected, _, _) in cases.items():
        out, invalid = run(broken)
        reply["bad_inputs"][name] = {
            "out": out,
            "invalid_inputs": invalid.tolist(),
            "expected": expected,
        }
    assert "left_padding" in reply["bad_inputs"]
    return reply


def test_onnx_bank_generate_mixed_batch_equals_keras_and_rows_alone(
    gpt2, onnx_files
):
    import onnx

    model, bank, batch = gpt2
    path = onnx_files["bank_generate"]
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    # KerasHub's cache writes (XlaDynamicUpdateSlice) became scatters in
    # the decoding loop's body.
    (loop,) = [node for node in proto.graph.node if node.op_type == "Loop"]
    body = next(a.g for a in loop.attribute if a.name == "body")
    assert "ScatterND" in {node.op_type for node in body.node}
    session = _session(path)
    assert [i.name for i in session.get_inputs()] == [
        "token_ids",
        "padding_mask",
        "task",
    ]
    feed = {**batch, "task": np.array(TASKS, np.int32)}
    new_ids, invalid = session.run(["new_token_ids", "invalid_inputs"], feed)
    np.testing.assert_array_equal(
        new_ids, keras_continuations(model, batch, bank[list(TASKS)])
    )
    assert invalid.tolist() == [0] * len(TASKS)
    for row in range(len(TASKS)):
        # Alone, trimmed to its own length: no trace of the other rows.
        alone = {
            key: value[row : row + 1, : LENGTHS[row]]
            for key, value in batch.items()
        }
        alone["task"] = feed["task"][row : row + 1]
        (row_ids,) = session.run(["new_token_ids"], alone)
        np.testing.assert_array_equal(row_ids[0], new_ids[row], f"row {row}")
    empty = {key: value[:0] for key, value in feed.items()}
    assert session.run(["new_token_ids"], empty)[0].shape == (0, NEW_TOKENS)
    description = _description(path)
    assert description["model_type"] == "causal_lm"
    assert description["max_new_tokens"] == NEW_TOKENS
    # GPT-2's learned positions bound the inputs of a dynamic-length graph.
    assert description["max_token_columns"] == 128 - PROMPT_LENGTH - NEW_TOKENS


def test_onnx_runtime_forward_matches_keras(gpt2, onnx_files):
    model, bank, batch = gpt2
    prompts = bank[list(TASKS)]
    session = _session(onnx_files["runtime_forward"])
    (logits,) = session.run(["logits"], {**batch, "prompts": prompts})
    expected = np.asarray(model.forward(batch, prompts=prompts))
    valid = batch["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        logits[valid], expected[valid], atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("key", ("bank_generate", "runtime_forward"))
def test_onnx_bad_rows_are_flagged_and_leave_the_others(gpt2, onnx_files, key):
    model, bank, batch = gpt2
    session = _session(onnx_files[key])
    mode, graph = key.split("_")
    output = "logits" if graph == "forward" else "new_token_ids"
    extra = (
        {"task": np.array(TASKS, np.int32)}
        if mode == "bank"
        else {"prompts": bank[list(TASKS)]}
    )
    reply = _bad_rows_reply(
        lambda feed: session.run([output, "invalid_inputs"], feed),
        {**batch, **extra},
        model.backbone.vocabulary_size,
    )
    # GPT-2's pad id is 0, what `assert_bad_rows_answered` expects.
    assert model.pad_id() == 0
    assert_bad_rows_answered(reply, graph)


def test_onnx_baked_llama_generate_equals_keras(tmp_path):
    from keras_prompt.export import export_onnx

    model = _model("llama")
    batch = _batch(model.backbone.vocabulary_size, seed=2)
    _stop_after_first_token(model, batch)
    expected = keras_continuations(model, batch)
    end = model.preprocessor.tokenizer.end_token_id
    # Row 0 ends at its second token; the rest of it is padding.
    assert expected[0, 1] == end and not expected[0, 2:].any(), expected
    path = export_onnx(
        model,
        tmp_path / "baked_generate.onnx",
        mode="baked",
        graph="generate",
        max_new_tokens=NEW_TOKENS,
    )
    session = _session(path)
    inputs = [i.name for i in session.get_inputs()]
    assert inputs == ["token_ids", "padding_mask"]
    (new_ids,) = session.run(["new_token_ids"], batch)
    np.testing.assert_array_equal(new_ids, expected)


@pytest.fixture(scope="module")
def tflite_files(gpt2, tmp_path_factory):
    from keras_prompt.export import export_tflite

    model, bank, batch = gpt2
    out = tmp_path_factory.mktemp("causal_tflite")
    shapes = {
        "batch_size": len(TASKS),
        "sequence_length": batch["token_ids"].shape[1],
    }
    return {
        "bank_generate": export_tflite(
            model,
            out / "bank_generate.tflite",
            **_bank_generate(bank),
            **shapes,
        ),
        "baked_forward": export_tflite(
            model, out / "baked_forward.tflite", mode="baked", **shapes
        ),
    }


def _tflite_runner(path):
    from keras_prompt.export.tflite_export import load_interpreter

    return load_interpreter(model_path=str(path)).get_signature_runner()


def test_tflite_bank_generate_equals_keras(gpt2, tflite_files):
    model, bank, batch = gpt2
    path = tflite_files["bank_generate"]
    runner = _tflite_runner(path)
    shape = list(batch["token_ids"].shape)
    details = runner.get_input_details()
    assert {name: list(d["shape"]) for name, d in details.items()} == {
        "token_ids": shape,
        "padding_mask": shape,
        "task": shape[:1],
    }
    feed = {**batch, "task": np.array(TASKS, np.int32)}

    def run(feed):
        outputs = runner(**feed)
        return outputs["new_token_ids"], outputs["invalid_inputs"]

    mixed = run(feed)[0]
    np.testing.assert_array_equal(
        mixed, keras_continuations(model, batch, bank[list(TASKS)])
    )
    # Each row alone (the fixed batch filled with copies of it) gets what
    # it gets in the mixed batch.
    for row in range(shape[0]):
        alone = {key: np.repeat(value[row : row + 1], shape[0], axis=0)
                 for key, value in feed.items()}
        np.testing.assert_array_equal(
            run(alone)[0], np.repeat(mixed[row : row + 1], shape[0], axis=0),
            err_msg=f"row {row}")
    reply = _bad_rows_reply(
        run, feed, model.backbone.vocabulary_size, fixed_batch=True
    )
    assert_bad_rows_answered(reply, "generate")
    # The cache writes are LiteRT builtins; nothing custom or flex.
    from tensorflow.lite.python import schema_py_generated as schema

    custom, builtin = _operator_codes(path)
    assert custom == []
    assert schema.BuiltinOperator.DYNAMIC_UPDATE_SLICE in builtin
    with open(path + ".json") as file:
        description = json.load(file)
    assert description["sequence_length"] == shape[1]
    assert description["max_new_tokens"] == NEW_TOKENS
    assert description["outputs"] == ["new_token_ids", "invalid_inputs"]


def test_tflite_baked_forward_matches_keras(gpt2, tflite_files):
    model, _, batch = gpt2
    outputs = _tflite_runner(tflite_files["baked_forward"])(**batch)
    expected = np.asarray(model.forward(batch))
    valid = batch["padding_mask"].astype(bool)
    np.testing.assert_allclose(
        outputs["logits"][valid], expected[valid], atol=1e-4, rtol=0
    )
    assert not outputs["invalid_inputs"].any()


def test_arguments_of_the_other_model_kind_are_refused(gpt2, tmp_path):
    import keras_prompt
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_tflite

    model = gpt2[0]
    # Any T5 model: the arguments are refused before it is traced.
    t5 = keras_prompt.PromptedT5Seq2SeqLM(
        make_tiny_backbone(num_layers=1), prompt_length=4
    )
    refused = (
        (export_onnx, t5, {"max_new_tokens": 3}, "max_new_tokens apply to"),
        (
            export_tflite,
            t5,
            {"sequence_length": 8, "max_new_tokens": 3},
            "sequence_length, max_new_tokens apply to decoder-only",
        ),
        (
            export_tflite,
            model,
            {"decoder_sequence_length": 4},
            "decoder_sequence_length apply to T5",
        ),
    )
    for export, kind, kwargs, match in refused:
        with pytest.raises(ValueError, match=match):
            export(kind, tmp_path / "refused", mode="baked", **kwargs)
    assert os.listdir(tmp_path) == []


def test_gpt2_positions_bound_the_fixed_lengths(gpt2, tmp_path):
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_tflite

    model = gpt2[0]
    # 5 + 120 + 4 = 129 positions; GPT-2 (the fixture) has 128.
    positions = r"need 129 positions.*has 128"
    with pytest.raises(ValueError, match=positions) as info:
        export_tflite(
            model,
            tmp_path / "long.tflite",
            mode="baked",
            graph="generate",
            sequence_length=120,
            max_new_tokens=4,
        )
    assert "sequence_length <= 119 or max_new_tokens <= 3" in str(info.value)
    with pytest.raises(ValueError, match="max_new_tokens <= 122"):
        export_onnx(
            model,
            tmp_path / "long.onnx",
            mode="baked",
            graph="generate",
            max_new_tokens=123,
        )
    assert os.listdir(tmp_path) == []


def test_text_clients_refuse_a_decoder_only_export(onnx_files):
    sys.path.insert(0, os.path.join(REPO_ROOT, "export"))
    from onnx_client import OnnxPromptClient

    with pytest.raises(ValueError, match="decoder-only model's export"):
        OnnxPromptClient(str(onnx_files["bank_generate"]))
