"""`keras-prompt train` / `evaluate` on a tiny decoder-only LM (the Hugging
Face GPT-2 fixture) and CSV files."""

import csv
import json
import os
import random

import numpy as np

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


def test_csv_task_trains_and_evaluates_on_a_causal_lm(tmp_path, capsys):
    import keras_prompt
    from keras_prompt.data import file_task

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
