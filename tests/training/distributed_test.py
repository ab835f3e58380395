"""Equality of prompts across strategies, XLA, and preemption + resume.

All runs share one configuration (tiny T5, dropout 0, 12 steps of a global
batch of 4 in two length buckets, no validation so prompt.safetensors is the
final prompt) and are compared with one in-process single-device reference
run.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_prompt.prompts.prompt_file import read_prompt_file
from tests.training.fixtures import TEMPLATE
from tests.training.fixtures import make_rows
from tests.training.fixtures import make_tiny_preset
from tests.training.fixtures import write_csv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
STEPS = 8
# Float32 reductions happen in a different order across replicas / XLA.
ATOL = 1e-5
RTOL = 1e-5
# XLA fuses and reorders float32 math; after 8-12 Adafactor steps at lr 0.3
# prompts (values ~0.5) differ by ~1e-5, so XLA is compared at 1e-4.
XLA_ATOL = 1e-4


def _config(workspace, output, **overrides):
    config = dict(
        backbone=workspace["preset"], output_dir=str(output),
        task=dict(train_file=workspace["train"], template=TEMPLATE,
                  label_column="label", labels="positive,negative"),
        prompt_length=4,
        prompt_initializer="random_uniform", steps=STEPS, batch_size=4,
        # Inputs of 21 to 27 tokens: batches of 24 and of 32 positions, in
        # the same order in every process and after a resume.
        max_input_length=32, length_buckets=[24], eval_every=4,
        checkpoint_every=2,
        jit_compile=False, tensorboard=False, strategy="auto", verbose=0,
        seed=3)
    config.update(overrides)
    return config


def _train(config):
    """`train()` in this process on a `_config`."""
    from keras_prompt.data import resolve_task
    from keras_prompt.training import train

    return train(**{**config, "task": resolve_task(**config["task"])})


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _launch(tmp_path, name, config, *flags, env=None):
    config_path = tmp_path / f"{name}.json"
    config_path.write_text(json.dumps(config))
    result = tmp_path / f"{name}.npy"
    log = open(tmp_path / f"{name}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.training.run_training",
         str(config_path), str(result), *flags],
        cwd=REPO, env=env or _env(), stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = tmp_path / f"{name}.log"
    proc.result_path = result
    return proc


def _wait(proc, timeout=180):
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, proc.log_path.read_text()[-3000:]
    return np.load(proc.result_path)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    return {
        "root": root,
        "preset": make_tiny_preset(root / "preset"),
        "train": write_csv(root / "train.csv", make_rows(24)),
    }


@pytest.fixture(scope="module")
def reference(workspace):
    result = _train(_config(workspace, workspace["root"] / "reference"))
    prompt = result["final_prompt"]
    assert result["metrics"]["steps"] == STEPS
    assert result["metrics"]["config"]["length_buckets"] == [24, 32]
    # Training moved the prompt far beyond the tolerances used below.
    saved = result["model"].get_prompt()
    np.testing.assert_array_equal(saved, prompt)
    checkpoint, _ = read_prompt_file(os.path.join(
        workspace["root"], "reference", "checkpoints",
        "prompt-step00000004.safetensors"))
    assert np.abs(checkpoint - prompt).max() > 100 * ATOL
    assert np.isfinite(prompt).all()
    return prompt


def test_xla_really_compiles_the_step_and_matches(workspace, reference,
                                                  tmp_path):
    """XLA compiles the training step (XLA dumps the modules it compiles),
    metrics.json says so, and the prompt matches the non-XLA run."""
    dump = tmp_path / "xla_modules"
    output = tmp_path / "xla"
    prompt = _wait(_launch(
        tmp_path, "xla", _config(workspace, output, jit_compile=True),
        env=_env(XLA_FLAGS=f"--xla_dump_to={dump}")))
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["config"]["jit_compile"] is True
    compiled = [name for name in os.listdir(dump)
                if "one_step_on_data" in name]
    assert compiled, sorted(os.listdir(dump))[:20]
    np.testing.assert_allclose(prompt, reference, atol=XLA_ATOL, rtol=0)


def test_xla_off_under_op_determinism_is_reported(workspace, reference,
                                                  tmp_path):
    """Keras cannot compile with XLA while op determinism is on: the run
    warns, records `jit_compile: false` and compiles nothing."""
    dump = tmp_path / "xla_modules"
    output = tmp_path / "deterministic"
    proc = _launch(
        tmp_path, "deterministic", _config(workspace, output, jit_compile=True),
        "--op-determinism", env=_env(XLA_FLAGS=f"--xla_dump_to={dump}"))
    prompt = _wait(proc)
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["config"]["jit_compile"] is False
    assert "jit_compile=True was requested" in proc.log_path.read_text()
    assert not any("one_step_on_data" in name
                   for name in (os.listdir(dump) if dump.exists() else []))
    np.testing.assert_allclose(prompt, reference, atol=ATOL, rtol=RTOL)


def test_multi_worker_and_mirrored_match_single_process(
        workspace, reference, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    output = tmp_path / "multi_worker"
    workers = []
    for index in range(2):
        tf_config = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(_launch(
            tmp_path, f"worker{index}",
            _config(workspace, output, strategy="multi_worker"),
            env=_env(TF_CONFIG=tf_config)))
    mirrored = _launch(
        tmp_path, "mirrored",
        _config(workspace, tmp_path / "mirrored", strategy="mirrored"),
        "--logical-cpus", "2")
    prompts = [_wait(w) for w in workers]
    mirrored_prompt = _wait(mirrored)
    assert "replicas 2" in workers[0].log_path.read_text()
    assert "replicas 2" in mirrored.log_path.read_text()
    # Both workers hold the same prompt, equal to the single-process run.
    np.testing.assert_allclose(prompts[0], prompts[1], atol=1e-7)
    np.testing.assert_allclose(prompts[0], reference, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(mirrored_prompt, reference, atol=ATOL,
                               rtol=RTOL)
    # Only the chief (worker 0) wrote files.
    saved, _ = read_prompt_file(output / "prompt.safetensors")
    np.testing.assert_allclose(saved, prompts[0], atol=0)


def _all_files_are_whole(directory):
    from safetensors.numpy import load_file

    checked = 0
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if name.endswith(".tmp"):
                continue  # an unfinished temporary file, never read
            if name.startswith("prompt") and name.endswith(".safetensors"):
                read_prompt_file(path)
            elif name.endswith(".safetensors"):
                load_file(path)
            elif name.endswith(".json"):
                json.loads(open(path).read())
            checked += 1
    return checked


def test_sigkill_preemption_resumes_and_matches(workspace, reference,
                                                tmp_path):
    output = tmp_path / "preempted"
    config = _config(workspace, output)
    backup = output / "backup" / "backup.safetensors"
    proc = _launch(tmp_path, "preempted", config, "--sleep-per-step", "0.3")
    from keras_prompt.training import PromptBackupAndRestore

    deadline = time.time() + 150
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if backup.exists():
            state = PromptBackupAndRestore.read_state(str(output / "backup"))
            if state and 0 < state["step"] < STEPS:
                proc.send_signal(signal.SIGKILL)
                killed_at = state["step"]
                break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert killed_at is not None, proc.log_path.read_text()[-3000:]
    assert proc.returncode == -signal.SIGKILL
    assert not (output / "metrics.json").exists()  # it really died mid-run
    assert _all_files_are_whole(output) >= 2

    # The same command again: resumes from the backup and finishes.
    resumed = _wait(_launch(tmp_path, "resumed", config))
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["resumed_from_step"] >= killed_at
    assert metrics["steps"] == STEPS
    np.testing.assert_allclose(resumed, reference, atol=ATOL)
    saved, metadata = read_prompt_file(output / "prompt.safetensors")
    np.testing.assert_allclose(saved, reference, atol=ATOL)
    assert int(metadata["training_steps"]) == STEPS
    assert not backup.exists()  # removed once training finished
    _all_files_are_whole(output)


def test_bfloat16_with_steps_per_execution(workspace, reference, tmp_path):
    """Mixed bfloat16 compute with a float32 prompt, two steps per execution:
    training runs, the prompt stays float32 and finite. (It does not land
    near the float32 run: Adafactor's normalised updates at lr 0.3 amplify
    bfloat16 gradient differences.)"""

    result = _train(_config(workspace, tmp_path / "bf16", dtype="bfloat16",
                             steps_per_execution=2))
    prompt = result["final_prompt"]
    assert prompt.dtype == np.float32
    assert np.all(np.isfinite(prompt))
    assert result["metrics"]["config"]["dtype"] in ("bfloat16", "mixed_bfloat16")
    assert not np.array_equal(prompt, reference)  # bfloat16 compute did run
    assert np.abs(prompt).max() < 10
