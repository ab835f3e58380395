"""The quickstart on the shipped demo backbone (what CI runs; a few minutes).

Prompt tuning on a held-out task must beat the best hand-written text prompt
(prompt design) by at least 20 points of test accuracy; the backbone must be
bit-identical afterwards; the exported SavedModel (bank of two prompts) and
ONNX model must give the Keras model's predictions on a mixed-task batch.
"""

import json

from keras_prompt.quickstart.run import run_quickstart


def test_quickstart_prompt_tuning_beats_prompt_design(tmp_path):
    summary = run_quickstart(str(tmp_path), steps=150, verbose=0)
    with open(tmp_path / "summary.json") as f:
        written = json.load(f)
    for key in ("task", "prompt_design_accuracy", "prompt_tuning_accuracy", "seconds"):
        assert key in written
    assert written["task"] == "demo_animal"
    assert (summary["prompt_tuning_accuracy"]
            >= summary["prompt_design_accuracy"] + 20), summary["tasks"]
    assert summary["backbone_unchanged"]
    assert summary["backbone_sha256_before"] == summary["backbone_sha256_after"]
    assert summary["exports_agree_with_keras"] is True
    rows = summary["mixed_batch"]
    assert {r["task"] for r in rows} == {"demo_animal", "demo_mood"}
    assert all(r["keras"] == r["saved_model"] == r["onnx"] for r in rows)
    assert (tmp_path / "prompts" / "demo_animal.safetensors").exists()
