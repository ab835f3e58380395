"""`keras-prompt train` / `evaluate` on a tiny decoder-only LM (the Hugging
Face GPT-2 fixture) and CSV files."""

import csv
import json
import os
import random

import subprocess
import sys

import numpy as np
import pytest

from keras_prompt import cli
from keras_prompt.prompts.prompt_file import read_prompt_file

FIXTURES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "models",
    "fixtures",
)
BACKBONE = os.path.join(FIXTURES, "gpt2")
TEMPLATE = "text: {text}"
WORDS = "the a cat dog sat on mat red blue big small runs house tree".split()


def write_rows(path, count, seed):
    rng = random.Random(seed)
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, ["text", "label"])
        writer.writeheader()
        for _ in range(count):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
            label = "cat" if "cat" in words else "dog"
            writer.writerow({"text": " ".join(words), "label": label})
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One CLI training run on the tiny GPT-2: its output and files."""
    tmp_path = tmp_path_factory.mktemp("causal_train")
    train_file = write_rows(tmp_path / "train.csv", 16, 0)
    val_file = write_rows(tmp_path / "dev.csv", 6, 1)
    output = tmp_path / "run"
    assert cli.main([
        "train", "--backbone", BACKBONE, "--output", str(output),
        "--train-file", train_file, "--validation-file", val_file,
        "--template", TEMPLATE, "--label-column", "label",
        "--labels", "cat,dog", "--prompt-length", "4", "--steps", "4",
        "--batch-size", "4", "--max-input-length", "24", "--eval-every", "2",
        "--rank-classification", "--no-xla", "--verbose", "0",
    ]) == 0
    return {"output": output, "val_file": val_file, "tmp_path": tmp_path}


def test_csv_task_trains_and_evaluates_on_a_causal_lm(trained):
    import keras_prompt
    from keras_prompt.data import file_task

    output, val_file = trained["output"], trained["val_file"]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["steps"] == 4
    assert [v["step"] for v in metrics["validation"]] == [2, 4]
    prompt, metadata = read_prompt_file(output / "prompt.safetensors")
    assert prompt.shape == (4, 64)
    assert metadata["labels"] == ["cat", "dog"]
    # start + input + separator (24) and " cat"/" dog" + end (2).
    assert metadata["sequence_length"] == 26
    assert metrics["config"]["max_target_length"] == 2

    # The evaluator's rank classification is `score()` of each label's
    # continuation after `input + separator`.
    task = file_task(TEMPLATE, "label", "cat,dog", validation_file=val_file)
    result = keras_prompt.evaluate(
        BACKBONE, output, task, max_input_length=24, rank_classification=True,
        jit_compile=False)
    model = keras_prompt.PromptedCausalLM.from_preset(BACKBONE, prompt_length=4)
    model.load_prompt(output / "prompt.safetensors")
    with open(val_file) as file:
        rows = list(csv.DictReader(file))
    texts = [TEMPLATE.format(text=row["text"]) + "\nAnswer:" for row in rows]
    scores = model.score(texts, [" cat", " dog"])
    expected = np.mean(
        np.array(["cat", "dog"])[scores.argmax(1)]
        == np.array([row["label"] for row in rows])
    )
    assert result["accuracy"] == 100.0 * expected
    assert result["num_examples"] == 6

    # Greedy evaluation runs the cached decoding loop on the same inputs.
    greedy = keras_prompt.evaluate(
        BACKBONE, output, task, max_input_length=24, jit_compile=False)
    completions = model.generate(
        texts, max_new_tokens=2, stop_token_ids=(0,), strip_prompt=True)
    hits = [text.strip() == row["label"] for text, row in zip(completions, rows)]
    assert greedy["accuracy"] == 100.0 * np.mean(hits)
    assert greedy["invalid"] == sum(
        text.strip() not in ("cat", "dog") for text in completions)


SERVE = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
request = json.loads(sys.argv[1])
serve = tf.saved_model.load(request["path"]).signatures["serving_default"]
outputs = serve(inputs=tf.constant(request["texts"]),
                task=tf.constant(request["tasks"]))["outputs"]
print(json.dumps({
    "outputs": [text.decode("utf-8") for text in outputs.numpy().tolist()],
    "imported": sorted(m for m in ("keras_prompt", "keras_hub")
                       if m in sys.modules),
}))
"""


def test_cli_trained_prompt_serves_from_a_bank_savedmodel(trained, capsys):
    """The issue's acceptance path: train through the CLI, export a bank
    through the CLI, serve a mixed-task batch in a fresh process that
    imports only TensorFlow and tensorflow-text."""
    import keras_prompt
    from keras_prompt.data import CausalTextToTextPipeline

    output, tmp_path = trained["output"], trained["tmp_path"]
    model = keras_prompt.PromptedCausalLM.from_preset(BACKBONE, prompt_length=4)
    # A second task's prompt, saved as training saves them.
    model.load_prompt(output / "prompt.safetensors")
    trained_prompt = model.get_prompt()
    model.set_prompt(trained_prompt[::-1] * 2.0)
    pipeline = CausalTextToTextPipeline(model.preprocessor.tokenizer, 24, 2)
    other = model.save_prompt(
        tmp_path / "other.safetensors", task="other",
        **pipeline.prompt_file_fields())
    serving = tmp_path / "serving"
    # T5's length flags are refused for a decoder-only backbone, naming
    # its own.
    assert cli.main([
        "export", "--backbone", BACKBONE, "--prompt", str(output),
        "--output", str(serving), "--encoder-sequence-length", "8",
    ]) == 2
    assert "--encoder-sequence-length: T5 only; a decoder-only export " \
        "takes --max-input-length" in capsys.readouterr().err
    assert not serving.exists()
    assert cli.main([
        "export", "--backbone", BACKBONE, "--prompt", f"mood={output}",
        "--prompt", f"other={other}", "--output", str(serving),
    ]) == 0
    printed = capsys.readouterr().out
    assert "tasks: 0=mood, 1=other" in printed
    path = printed.strip().splitlines()[-1]
    with open(os.path.join(path, "assets.extra",
                           "keras_prompt_export.json")) as file:
        description = json.load(file)
    # The lengths and separator the prompt files recorded.
    assert description["max_input_length"] == 24
    assert description["max_new_tokens"] == 2
    assert description["separator"] == "\nAnswer:"

    texts = ["text: the cat sat", "text: a dog runs on the mat", "text: cat"]
    tasks = ["mood", "other", "other"]
    env = dict(os.environ, PYTHONPATH="")
    reply = subprocess.run(
        [sys.executable, "-c", SERVE,
         json.dumps({"path": path, "texts": texts, "tasks": tasks})],
        capture_output=True, text=True, timeout=300, env=env,
        cwd=str(tmp_path),
    )
    assert reply.returncode == 0, reply.stderr[-3000:]
    served = json.loads(reply.stdout.strip().splitlines()[-1])
    assert served["imported"] == []
    prompts = np.stack([
        trained_prompt if task == "mood" else trained_prompt[::-1] * 2.0
        for task in tasks])
    ids, mask = pipeline.encode_texts(texts)
    expected = model.generated_texts(
        {"token_ids": ids, "padding_mask": mask}, 2, prompts=prompts)
    assert served["outputs"] == expected

    # The same two prompts as an ensemble: each prompt's metrics are its
    # own rank classification (`score()` by hand), the ensemble's is their
    # mean-logprob vote.
    from keras_prompt.data import file_task

    task = file_task(TEMPLATE, "label", "cat,dog",
                     validation_file=trained["val_file"])
    result = keras_prompt.ensemble(
        model, [output, other], task, method="mean-logprob",
        max_input_length=24, jit_compile=False)
    with open(trained["val_file"]) as file:
        rows = list(csv.DictReader(file))
    inputs = [TEMPLATE.format(text=row["text"]) + "\nAnswer:" for row in rows]
    gold = np.array([["cat", "dog"].index(row["label"]) for row in rows])
    scores = [model.score(inputs, [" cat", " dog"], prompts=np.stack(
        [prompt] * len(rows))) for prompt in (prompts[0], prompts[1])]
    for metrics, score in zip(result["prompt_metrics"], scores):
        assert metrics["accuracy"] == 100.0 * np.mean(score.argmax(1) == gold)
    mean = (scores[0] + scores[1]) / 2
    assert result["accuracy"] == 100.0 * np.mean(mean.argmax(1) == gold)
