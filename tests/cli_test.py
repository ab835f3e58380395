"""`keras-prompt` end to end on a tiny offline preset and CSV/JSONL files."""

import json
import os

import numpy as np
import pytest

from keras_prompt import cli
from keras_prompt.prompts.prompt_file import read_prompt_file
from tests.training.fixtures import TEMPLATE
from tests.training.fixtures import file_task
from tests.training.fixtures import make_rows
from tests.training.fixtures import make_tiny_preset
from tests.training.fixtures import write_csv
from tests.training.fixtures import write_jsonl


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def keras_prompt_model(preset):
    import keras_prompt

    return keras_prompt.PromptedT5Seq2SeqLM.from_preset(preset, prompt_length=4)


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return make_tiny_preset(tmp_path_factory.mktemp("cli") / "preset")


def _train_args(preset, output, train_file, validation_file, *extra):
    return ["train", "--backbone", preset, "--output", str(output),
            "--train-file", train_file, "--validation-file", validation_file,
            "--template", TEMPLATE, "--label-column", "label",
            "--labels", "positive,negative", "--prompt-length", "4",
            "--steps", "4", "--batch-size", "4", "--max-input-length", "24",
            "--eval-every", "2", "--checkpoint-every", "2", "--no-xla",
            "--verbose", "0", *extra]


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in ("train", "evaluate", "predict", "inspect"):
        assert name in out
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--backbone", "--task", "--train-file", "--template",
                 "--label-column", "--labels", "--prompt-length", "--steps",
                 "--batch-size", "--output", "--strategy", "--dtype"):
        assert flag in out


def test_help_needs_no_tensorflow_and_is_fast():
    """`keras-prompt --help` and every subcommand's `--help`, in a fresh
    process: no TensorFlow (or Keras) import, well under a second."""
    import subprocess
    import sys
    import time

    script = (
        "import sys, time\n"
        "start = time.perf_counter()\n"
        "from keras_prompt.cli import main\n"
        "for argv in (['--help'], *[[c, '--help'] for c in sys.argv[1:]]):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'keras_hub', 'numpy')"
        " if m in sys.modules)\n"
        "print('RESULT', time.perf_counter() - start, heavy)\n"
    )
    commands = ["quickstart", "train", "evaluate", "predict", "inspect", "export"]
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script, *commands],
                            capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    line = [l for l in result.stdout.splitlines() if l.startswith("RESULT")][0]
    _, seconds, heavy = line.split(" ", 2)
    assert heavy == "[]", heavy
    assert float(seconds) < 1.0 and wall < 5.0, (seconds, wall)
    for command in commands:
        assert command in result.stdout


def test_log_level_debug_shows_the_stack_and_info_does_not(preset, tmp_path):
    """`--log-level` works: the default keeps TensorFlow's and Keras's lines
    out, debug lets them through."""
    import subprocess
    import sys

    model = keras_prompt_model(preset)
    prompt = model.save_prompt(str(tmp_path / "p.safetensors"))
    # Both processes at once (each is mostly single-threaded start-up).
    processes = {
        level: subprocess.Popen(
            [sys.executable, "-m", "keras_prompt.cli", "--log-level", level,
             "predict", "--backbone", preset, "--prompt", prompt, "--text",
             "subject: the cat sentence: likes the movie", "--max-length", "3",
             "--max-input-length", "24"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": REPO},
        )
        for level in ("info", "debug")
    }
    outputs = {}
    try:
        for level, process in processes.items():
            stdout, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, stderr[-3000:]
            outputs[level] = subprocess.CompletedProcess(
                process.args, process.returncode, stdout, stderr)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    assert outputs["info"].stderr == ""
    assert outputs["info"].stdout.count("\t") == 1
    assert "cudart_stub" in outputs["debug"].stderr or \
        "tensorflow" in outputs["debug"].stderr.lower()
    assert outputs["debug"].stdout == outputs["info"].stdout


def test_plugins_can_register_subcommands(capsys):
    cli.register_subcommand(
        "hello", help="say hello", add_arguments=lambda p: p.add_argument(
            "--name", default="world"),
        run=lambda args: print(f"hello {args.name}") or 0)
    try:
        assert cli.main(["hello", "--name", "tpu"]) == 0
        assert capsys.readouterr().out.strip() == "hello tpu"
    finally:
        cli.unregister_subcommand("hello")


def test_csv_task_trains_evaluates_predicts_and_inspects(
        preset, tmp_path, capsys):
    train_file = write_csv(tmp_path / "train.csv", make_rows(16))
    val_file = write_csv(tmp_path / "dev.csv", make_rows(6, 50))
    output = tmp_path / "run"
    assert cli.main(_train_args(preset, output, train_file, val_file,
                                "--prompt-init", "class_labels")) == 0
    out = capsys.readouterr().out
    assert "prompt:" in out and "best accuracy" in out
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["steps"] == 4
    assert [v["step"] for v in metrics["validation"]] == [2, 4]
    assert metrics["best"]["step"] in (2, 4)
    assert metrics["truncation"]["train"]["num_examples"] == 16
    assert metrics["config"]["prompt_length"] == 4
    prompt, metadata = read_prompt_file(output / "prompt.safetensors")
    assert prompt.shape == (4, 16)
    assert metadata["labels"] == ["positive", "negative"]
    assert int(metadata["training_steps"]) == metrics["best"]["step"]
    assert os.listdir(output / "checkpoints")
    assert os.path.isdir(output / "logs")

    # evaluate: greedy reproduces the validation metric of the best prompt.
    eval_json = tmp_path / "eval.json"
    assert cli.main([
        "evaluate", "--backbone", preset, "--prompt", str(output),
        "--validation-file", val_file, "--template", TEMPLATE,
        "--max-input-length", "24", "--batch-size", "4", "--no-xla",
        "--output", str(eval_json)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(eval_json.read_text())
    assert printed == saved
    assert saved["num_examples"] == 6 and saved["mode"] == "greedy"
    assert saved["accuracy"] == pytest.approx(metrics["best"]["accuracy"])

    # rank classification always picks a label word.
    assert cli.main([
        "evaluate", "--backbone", preset, "--prompt", str(output),
        "--validation-file", val_file, "--template", TEMPLATE,
        "--max-input-length", "24", "--batch-size", "4", "--no-xla",
        "--rank-classification"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert ranked["invalid"] == 0 and ranked["mode"] == "rank_classification"
    assert 0.0 <= ranked["accuracy"] <= 100.0

    # predict on ad-hoc text, with label scores.
    assert cli.main([
        "predict", "--backbone", preset, "--prompt", str(output),
        "--text", "subject: the cat sentence: likes the movie",
        "--text", "subject: a dog sentence: hates green apples",
        "--rank-classification", "--json", "--max-input-length", "24"]) == 0
    lines = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert line["output"] in ("positive", "negative")
        scores = line["scores"]
        assert max(scores, key=scores.get) == line["output"]
        assert all(s < 0 for s in scores.values())  # log-likelihoods
    assert cli.main([
        "predict", "--backbone", preset, "--prompt", str(output),
        "--text", "subject: the cat sentence: likes the movie",
        "--max-length", "4"]) == 0
    assert capsys.readouterr().out.count("\t") == 1

    # inspect: metadata and nearest tokens.
    assert cli.main(["inspect", str(output / "prompt.safetensors"),
                     "--backbone", preset, "--top-k", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shape"] == [4, 16]
    assert report["metadata"]["task"] == "custom"
    assert len(report["nearest_tokens"]) == 4
    assert all(len(row) == 3 for row in report["nearest_tokens"])
    assert cli.main(["inspect", str(output)]) == 0
    text = capsys.readouterr().out
    assert "prompt_length" in text and "--backbone" in text


@pytest.fixture(scope="module")
def jsonl_run(preset, tmp_path_factory):
    """One finished `keras-prompt train` run on JSONL files; what the JSONL
    test checks is read here, so the rerun test may change the directory."""
    root = tmp_path_factory.mktemp("jsonl")
    train_file = write_jsonl(root / "train.jsonl", make_rows(12))
    val_file = write_jsonl(root / "dev.jsonl", make_rows(4, 50))
    output = root / "jsonl_run"
    args = _train_args(preset, output, train_file, val_file,
                       "--prompt-init", "random_uniform", "--steps", "2",
                       "--no-tensorboard")
    assert cli.main(args) == 0
    return {"args": args, "output": output,
            "metrics": json.loads((output / "metrics.json").read_text()),
            "prompt": read_prompt_file(output / "prompt.safetensors")[0]}


def test_jsonl_task_trains_end_to_end(jsonl_run):
    metrics = jsonl_run["metrics"]
    assert metrics["steps"] == 2
    assert metrics["truncation"]["train"]["num_examples"] == 12
    assert metrics["truncation"]["validation"]["num_examples"] == 4
    assert jsonl_run["prompt"].shape == (4, 16)
    assert np.isfinite(jsonl_run["prompt"]).all()


@pytest.mark.parametrize("flag,value,message", [
    ("--batch-size", "0", "must be a positive integer"),
    ("--prompt-length", "0", "must be a positive integer"),
    ("--prompt-length", "-3", "must be a positive integer"),
])
def test_bad_numbers_are_rejected_before_training(
        preset, tmp_path, capsys, flag, value, message):
    args = _train_args(preset, tmp_path / "out", "t.csv", "d.csv")
    args[args.index(flag) + 1] = value
    with pytest.raises(SystemExit) as e:
        cli.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err
    assert not (tmp_path / "out").exists()


def test_bad_data_errors_before_training(preset, tmp_path, capsys):
    train_file = tmp_path / "train.csv"
    train_file.write_text("subject,sentence,label\n")
    val_file = write_csv(tmp_path / "dev.csv", make_rows(4))
    code = cli.main(_train_args(preset, tmp_path / "out", str(train_file),
                                val_file))
    assert code == 2
    assert "train split is empty" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

    rows = make_rows(6)
    rows[3]["label"] = "meh"
    bad = write_csv(tmp_path / "bad.csv", rows)
    assert cli.main(_train_args(preset, tmp_path / "out", bad, val_file)) == 2
    err = capsys.readouterr().err
    assert "Line 5" in err and "'meh'" in err and "bad.csv" in err


def test_library_rejects_bad_sizes_before_loading_anything(tmp_path):
    from keras_prompt.training import TrainingError
    from keras_prompt.training import train

    task = file_task("missing.csv")
    for kwargs, message in [({"batch_size": 0}, "batch_size"),
                            ({"prompt_length": 0}, "prompt_length"),
                            ({"steps": -1}, "steps"),
                            ({"stepz": 3}, "Unknown training settings")]:
        with pytest.raises(TrainingError, match=message):
            # The backbone does not even exist: nothing is loaded first.
            train("no-such-preset", task, output_dir=str(tmp_path / "x"),
                  **kwargs)
    assert not (tmp_path / "x").exists()


def test_rerun_into_a_finished_output_needs_overwrite(
        jsonl_run, capsys, monkeypatch):
    """A finished run is refused with the fix; `--overwrite` replaces it; a
    full disk ends with an error naming the file (no traceback) and the same
    command resumes."""
    import errno

    from keras_prompt.prompts import prompt_file

    # The finished run of the same command (2 steps), which this test may
    # change: the JSONL test reads nothing from its directory.
    args, output = jsonl_run["args"], jsonl_run["output"]
    capsys.readouterr()
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"output_dir '{output}' holds a finished run of these settings" \
        in err and "--overwrite" in err

    metrics_path = str(output / "metrics.json")
    write = prompt_file.write_file_atomically

    def disk_full_for_metrics(path, data):
        if os.fspath(path) == metrics_path:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(path, data)

    monkeypatch.setattr(prompt_file, "write_file_atomically",
                        disk_full_for_metrics)
    longer = [*args, "--prompt-length", "6", "--overwrite"]
    assert cli.main(longer) == 2
    err = capsys.readouterr().err
    assert (f"keras-prompt train: error: [Errno 28] Could not write the "
            f"metrics '{metrics_path}': No space left on device.") in err
    assert "Traceback" not in err
    assert not os.path.exists(metrics_path)
    prompt, _ = read_prompt_file(output / "prompt.safetensors")
    assert prompt.shape == (6, 16)  # the new run's, not the old one's

    monkeypatch.undo()
    assert cli.main(longer) == 0
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["config"]["prompt_length"] == 6
    assert metrics["resumed_from_step"] == 2


def test_bad_output_or_prompt_length_is_refused_before_loading(
        tmp_path, capsys):
    regular_file = tmp_path / "notes.txt"
    regular_file.write_text("")
    args = _train_args("no-such-preset", regular_file, "t.csv", "d.csv")
    assert cli.main(args) == 2
    assert (f"keras-prompt train: error: output_dir '{regular_file}' is an "
            "existing file, not a directory.") in capsys.readouterr().err

    args = _train_args("no-such-preset", tmp_path / "out", "t.csv", "d.csv")
    args[args.index("--prompt-length") + 1] = "100000"
    assert cli.main(args) == 2
    assert ("keras-prompt train: error: prompt_length must be an integer "
            "from 1 to 4096, got 100000") in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.parametrize("content", ["text\n", "\n\n"])
def test_predict_input_file_without_inputs_names_it(tmp_path, content):
    import argparse

    from keras_prompt.cli.predict_command import read_inputs
    from keras_prompt.data import DataError

    suffix = ".csv" if content.startswith("text") else ".txt"
    path = tmp_path / f"inputs{suffix}"
    path.write_text(content)
    args = argparse.Namespace(text=[], input_file=str(path), template="{text}")
    with pytest.raises(DataError, match="holds no inputs") as info:
        read_inputs(args)
    assert str(path) in str(info.value)


def test_length_buckets_flag(tmp_path, capsys):
    """`--length-buckets auto|none|N,N,...` on train and evaluate; bad values
    are refused before anything is loaded."""
    from keras_prompt.cli.train_command import config_from_arguments

    parser = cli.build_parser()
    args = _train_args("no-such-preset", tmp_path / "out", "t.csv", "d.csv")
    assert config_from_arguments(parser.parse_args(args)).length_buckets == \
        "auto"
    for value, expected in [("none", None), ("16,24", (16, 24))]:
        parsed = parser.parse_args(args + ["--length-buckets", value])
        assert config_from_arguments(parsed).length_buckets == expected
    evaluate = parser.parse_args([
        "evaluate", "--backbone", "b", "--prompt", "p", "--task", "rte",
        "--length-buckets", "none"])
    assert evaluate.length_buckets is None

    with pytest.raises(SystemExit) as error:
        cli.main(args + ["--length-buckets", "16,x"])
    assert error.value.code == 2
    assert ("--length-buckets: expected auto, none or comma-separated "
            "lengths such as 64,128,256, got '16,x'") in capsys.readouterr().err
    assert cli.main(args + ["--length-buckets", "16,64"]) == 2
    assert ("keras-prompt train: error: length_buckets=[16, 64] is not a list "
            "of increasing lengths from 1 to max_input_length=24.") in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()
