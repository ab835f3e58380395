"""No text path ever fails on a token id.

T5 vocabularies are larger than their SentencePiece model: after the pieces
come 100 sentinels (`<extra_id_0>` is the last) and padding rows. The model
here has 128 pieces and 256 embedding rows, and its head is set so that it
really emits the sentinel `<extra_id_0>` (id 227) and a padding id (250).
Every path must return the same text, by one rule: sentinels render as
`<extra_id_N>`, ids without a piece as nothing, text ends at `</s>`.
"""

import json
import os
import sys

import numpy as np
import pytest
import sentencepiece

from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.conftest import train_tiny_sentencepiece
from tests.export.conftest import REPO_ROOT
from tests.export.conftest import run_runner
from tests.export.conftest import serve_saved_model

PIECES = 128
VOCABULARY = PIECES + 100 + 28
SENTINEL_0 = PIECES + 100 - 1  # <extra_id_0>
NO_PIECE = 250
MAX_LENGTH = 8
TEXTS = [
    "the cat likes the movie today",
    "a dog sees green apples",
    "my friend paints the old house at night",
    "our team follows a red ball quickly",
    "the teacher finds the movie again",
    "",
]
TASKS = ["alpha", "beta", "alpha", "beta", "alpha", "beta"]

sys.path.insert(0, os.path.join(REPO_ROOT, "export"))


def reference_text(row, processor):
    """The rule written out independently: pieces decoded by SentencePiece,
    sentinels as `<extra_id_N>`, ids past the sentinels dropped, the end at
    `</s>`. Compared without spaces (SentencePiece decides the spacing)."""
    parts, piece_ids = [], []
    for token in row[1:]:
        token = int(token)
        if token == 1:
            break
        if PIECES <= token < PIECES + 100:
            parts.append(processor.decode(piece_ids))
            parts.append(f"<extra_id_{PIECES + 99 - token}>")
            piece_ids = []
        elif 0 < token < PIECES:
            piece_ids.append(token)
    parts.append(processor.decode(piece_ids))
    return "".join("".join(parts).split())


def without_spaces(text):
    return "".join(text.split())


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    import keras_prompt

    root = tmp_path_factory.mktemp("padded_vocabulary")
    proto = train_tiny_sentencepiece(PIECES)
    preprocessor = make_tiny_preprocessor(
        encoder_sequence_length=16, decoder_sequence_length=MAX_LENGTH,
        proto=proto,
    )
    model = keras_prompt.PromptedT5Seq2SeqLM(
        make_tiny_backbone(vocabulary_size=VOCABULARY, tied=False),
        preprocessor, prompt_length=4, seed=0,
    )
    # The token ids, not XLA, are the subject: Keras-side generation runs
    # without XLA (each batch shape here would be another XLA compile).
    model.compile(jit_compile=False)
    rng = np.random.default_rng(3)
    for task in ("alpha", "beta"):
        model.prompt_bank.add(task, rng.uniform(-0.5, 0.5, (4, 16)))
    model.set_prompt(model.prompt_bank.prompts()[0])

    # The head column of the two tokens the model generates most is copied,
    # slightly scaled, to <extra_id_0> and to a row without a piece, which
    # then win where those tokens would.
    def generated_ids():
        return model.generate(
            preprocessor.generate_preprocess(TEXTS), tasks=TASKS,
            max_length=MAX_LENGTH, stop_token_ids=None,
        )["decoder_token_ids"]

    counts = np.bincount(generated_ids()[:, 1:].ravel(), minlength=VOCABULARY)
    counts[:3] = 0
    first, second = np.argsort(counts)[::-1][:2]
    head = np.array(model.backbone.token_embedding.reverse_embeddings.numpy())
    head[:, SENTINEL_0] = head[:, first] * 1.05
    head[:, NO_PIECE] = head[:, second] * 1.05
    model.backbone.token_embedding.reverse_embeddings.assign(head)
    ids = model.generate(
        preprocessor.generate_preprocess(TEXTS), tasks=TASKS,
        max_length=MAX_LENGTH,
    )["decoder_token_ids"]
    # The premise of every test here: the model really emits both kinds.
    assert (ids == SENTINEL_0).any() and (ids == NO_PIECE).any(), ids
    processor = sentencepiece.SentencePieceProcessor(model_proto=proto)
    return {
        "root": root,
        "model": model,
        "ids": ids,
        "reference": [reference_text(row, processor) for row in ids],
        "texts": model.generate(TEXTS, tasks=TASKS, max_length=MAX_LENGTH),
    }


def test_keras_generate_follows_the_rule(padded):
    texts = padded["texts"]
    assert [without_spaces(t) for t in texts] == padded["reference"]
    assert any("<extra_id_0>" in text for text in texts)
    assert padded["model"].detokenize(padded["ids"]) == texts
    # Each row alone gives the same text as in the batch.
    for row, (text, task) in enumerate(zip(TEXTS, TASKS)):
        alone = padded["model"].generate(text, tasks=task, max_length=MAX_LENGTH)
        assert alone == texts[row]


def test_evaluation_training_and_predict_return_text(padded, tmp_path, capsys):
    """Greedy evaluation, the validation inside `train()` and
    `keras-prompt predict` all get text from the same rule."""
    import keras_prompt
    from keras_prompt import cli
    from keras_prompt.data import TextToTextPipeline
    from keras_prompt.data import resolve_task
    from keras_prompt.training import TaskEvaluator
    from tests.training.fixtures import write_csv

    model = padded["model"]
    own = model.generate(TEXTS, max_length=MAX_LENGTH)
    rows = [{"text": text, "label": "yes"} for text in TEXTS * 2]
    data = write_csv(tmp_path / "data.csv", rows)
    task = resolve_task(train_file=data, validation_file=data, template="{text}",
                        label_column="label", labels="yes,no")
    pipeline = TextToTextPipeline(model.preprocessor.tokenizer, 16, MAX_LENGTH - 1)
    predicted = TaskEvaluator(model, task, pipeline, batch_size=4).predict(
        task.load("validation"))
    assert predicted["texts"][: len(TEXTS)] == own

    result = keras_prompt.train(
        model, task, output_dir=str(tmp_path / "run"), prompt_length=4,
        steps=2, batch_size=4, eval_every=1, max_input_length=16,
        max_target_length=MAX_LENGTH - 1, prompt_initializer="random_uniform",
        jit_compile=False, tensorboard=False, verbose=0)
    assert [entry["step"] for entry in result["metrics"]["validation"]] == [1, 2]
    assert os.path.exists(result["prompt_path"])

    preset = str(tmp_path / "preset")
    model.backbone.save_to_preset(preset)
    model.preprocessor.save_to_preset(preset)
    prompt = model.save_prompt(str(tmp_path / "prompt.safetensors"))
    argv = ["predict", "--backbone", preset, "--prompt", prompt,
            "--max-length", str(MAX_LENGTH - 1), "--max-input-length", "16",
            "--json", "--batch-size", str(len(TEXTS))]
    for text in TEXTS:
        argv += ["--text", text]
    assert cli.main(argv) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["output"] for line in printed] == own


def test_exports_and_clients_return_the_same_text(padded, tmp_path):
    """A bank SavedModel in a fresh process, the ONNX Runtime and LiteRT
    clients (no keras-prompt there) and the TF Serving client."""
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_saved_model
    from keras_prompt.export import export_tflite
    from tf_serving_client import TFServingClient

    model = padded["model"]
    saved = export_saved_model(model, str(tmp_path), mode="bank",
                               max_decode_length=MAX_LENGTH)
    onnx_path = export_onnx(model, str(tmp_path / "bank.onnx"), mode="bank",
                            graph="generate", max_decode_length=MAX_LENGTH)
    tflite_path = export_tflite(model, str(tmp_path / "bank.tflite"),
                                mode="bank", graph="generate", batch_size=4,
                                max_decode_length=MAX_LENGTH)
    reply = run_runner("text_runner.py", {
        "output": str(tmp_path / "text"),
        "client_dir": os.path.join(REPO_ROOT, "export"),
        "saved_model": saved, "onnx": onnx_path, "tflite": tflite_path,
        "texts": TEXTS, "tasks": TASKS,
    })
    expected = padded["texts"]
    assert reply["saved_model"] == expected
    assert reply["onnx"] == expected
    assert reply["litert"] == expected
    with serve_saved_model(saved) as servers:
        for protocol in ("grpc", "rest"):
            client = TFServingClient(servers[protocol], "keras_prompt",
                                     protocol=protocol)
            assert client.generate(TEXTS, tasks=TASKS) == expected
