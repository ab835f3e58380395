"""`keras-prompt quickstart` on the shipped demo backbone, as a user runs it
(a fresh process; what CI runs; a few minutes).

Prompt tuning on a held-out task must beat the best hand-written text prompt
(prompt design) by at least 20 points of test accuracy, with the numbers
coming from `keras_prompt.train()` and `keras_prompt.evaluate()`; the
backbone must be bit-identical afterwards; the exported SavedModel (bank of
two prompts) and ONNX model must give the Keras model's predictions on a
mixed-task batch; and nothing but keras-prompt may print.
"""

import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# What TensorFlow, absl, XLA, CUDA probing, Keras and tf2onnx print.
FOREIGN = re.compile(
    r"^[IWEF]\d{4} |absl::|cuda|cuInit|oneDNN|cpu_feature_guard|Warning:|"
    r"warnings\.warn|^WARNING|^INFO|tf2onnx|Traceback|Compiled cluster|"
    r"^\s*\d+/\d+ "
)


def test_quickstart_command(tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    process = subprocess.run(
        [sys.executable, "-m", "keras_prompt.cli", "quickstart", "--steps",
         "150", "--output", str(tmp_path)],
        capture_output=True, text=True, env=env, cwd=str(tmp_path),
        timeout=1200,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    lines = (process.stdout + process.stderr).splitlines()
    foreign = [line for line in lines if FOREIGN.search(line)]
    assert foreign == [], foreign[:20]
    assert "prompt design" in process.stdout

    with open(tmp_path / "summary.json") as file:
        summary = json.load(file)
    assert summary["task"] == "demo_animal"
    assert (summary["prompt_tuning_accuracy"]
            >= summary["prompt_design_accuracy"] + 20), summary["tasks"]
    for name, result in summary["tasks"].items():
        # The reported accuracy is `evaluate()`'s on the test split of the
        # prompt that `train()` kept (its best validation step).
        metrics = json.loads(
            (tmp_path / "runs" / name / "metrics.json").read_text())
        # CPU: TensorFlow's kernels ("auto"), not XLA.
        assert metrics["config"]["jit_compile"] is False
        assert result["prompt_file"] == metrics["prompt_path"]
        assert result["training"] == metrics["validation"]
    assert summary["backbone_unchanged"]
    assert summary["backbone_sha256_before"] == summary["backbone_sha256_after"]
    assert summary["exports_agree_with_keras"] is True
    rows = summary["mixed_batch"]
    assert {r["task"] for r in rows} == {"demo_animal", "demo_mood"}
    assert all(r["keras"] == r["saved_model"] == r["onnx"] for r in rows)
