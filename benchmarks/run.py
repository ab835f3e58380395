"""Runs the keras-prompt benchmarks and prints one JSON line per measurement.

    python -m benchmarks.run --suite quick            # tiny model, < 5 min on 2 cores
    python -m benchmarks.run --suite full > full.jsonl
    python -m benchmarks.report full.jsonl            # the README tables

Each configuration runs in its own child process (`benchmarks.worker`), so
peak RSS is per configuration and no measurement inherits compiled functions
or memory from another. TensorFlow is pinned to `--threads` CPU threads
(intra- and inter-op), ONNX Runtime and TFLite likewise.

Every record carries the machine, library versions, settings, the 1-minute
load average at the start and end of its process, and timing statistics
(median, min, max over the timed steps after warm-up). The machine's load
matters: numbers taken while other processes compete for the cores are
slower; check `load_average_1m` (and `uptime` before starting).
"""

import argparse
import json
import os
import subprocess
import sys
import time

from benchmarks import common

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Timed steps after warm-up; the first warm-up call traces and compiles.
QUICK_STEPS = dict(warmup=2, steps=5)
FULL_STEPS = dict(warmup=2, steps=6)


def quick_suite():
    """Every measurement kind on the tiny backbone (smoke-sized)."""
    base = dict(config="tiny", **QUICK_STEPS)
    return [
        dict(base, kind="train", xla=True, steps=10),
        dict(base, kind="train", xla=False, steps=10),
        dict(base, kind="forward", batch_size=8),
        dict(base, kind="generate", batch_size=8),
        dict(base, kind="mixed", batch_size=32, num_tasks=8),
        dict(base, kind="runtimes", batch_size=8),
        dict(base, kind="prompt_length", prompt_lengths=[1, 20, 100], steps=5),
        dict(base, kind="gradient_ops"),
    ]


def full_suite():
    """Everything the benchmark covers, on the t5-small-sized backbones
    (both layouts) and the tiny one."""
    t5 = dict(config="t5_small", **FULL_STEPS)
    v11 = dict(config="t5_small_v11", **FULL_STEPS)
    specs = [
        # Training: XLA on/off, with T5's dropout 0.1 and without.
        dict(t5, kind="train", xla=True),
        dict(t5, kind="train", xla=False),
        dict(t5, kind="train", xla=True, dropout=0.0),
        dict(t5, kind="train", xla=False, dropout=0.0),
        dict(t5, kind="train", xla=True, dropout=0.0, steps_per_execution=4, steps=3),
        # Forward and cached greedy generation, batch 8 and 32.
        dict(t5, kind="forward", batch_size=8),
        dict(t5, kind="forward", batch_size=32),
        dict(t5, kind="forward", batch_size=8, xla=False),
        dict(t5, kind="generate", batch_size=8),
        dict(t5, kind="generate", batch_size=32),
        dict(t5, kind="generate", batch_size=8, xla=False, steps=3),
        # Serving.
        dict(t5, kind="mixed", batch_size=32, num_tasks=8, steps=4),
        dict(t5, kind="runtimes", batch_size=8, steps=4),
        # Per-token cost of the one cached decoding loop in every runtime:
        # 8, 32 and 64 new tokens (it must not grow with the tokens so far).
        *[dict(t5, kind="runtimes", batch_size=8, steps=3, new_tokens=n,
               graphs=["generate"]) for n in (8, 32, 64)],
        # Prompt length (20 is the default of the rows above).
        dict(t5, kind="prompt_length", prompt_lengths=[1, 20, 100], dropout=0.0,
             steps=4),
        dict(t5, kind="gradient_ops"),
        # The T5 1.1 layout (gated GELU, untied head).
        dict(v11, kind="train", xla=True),
        dict(v11, kind="train", xla=False),
        dict(v11, kind="forward", batch_size=8),
        dict(v11, kind="generate", batch_size=8),
        dict(v11, kind="generate", batch_size=32),
        dict(kind="convert_hf_t5", config="t5_small"),
    ]
    return specs + quick_suite()


SUITES = {"quick": quick_suite, "full": full_suite}


def _convert_hf_t5_record(spec, timeout):
    """Runs `benchmarks/convert_hf_t5.py` (its own child process) and wraps
    its report in a JSON record."""
    command = [sys.executable, os.path.join(REPO_ROOT, "benchmarks", "convert_hf_t5.py")]
    start = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT,
        env=_child_env(spec),
    )
    record = {
        "benchmark": "convert_hf_t5",
        "config": spec["config"],
        "suite": spec.get("suite"),
        "settings": {"variant": "t5", "threads": spec.get("threads", common.DEFAULT_THREADS)},
        "seconds": time.perf_counter() - start,
        "returncode": result.returncode,
        "report": result.stdout.strip().splitlines(),
        "machine": common.machine_info(),
        "versions": common.versions(),
        "load_average_1m": {"now": common.load_average()},
    }
    if result.returncode != 0:
        record["error"] = result.stderr[-2000:]
    return [json.dumps(common.round_floats(record), sort_keys=True)]


def _child_env(spec, repo=REPO_ROOT):
    env = dict(os.environ)
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("KERAS_BACKEND", "tensorflow")
    # Native thread pools that do not read TensorFlow's settings.
    threads = str(spec.get("threads", common.DEFAULT_THREADS))
    env.setdefault("OMP_NUM_THREADS", threads)
    return env


def run_spec(spec, timeout, repo=REPO_ROOT):
    """Runs one spec in a child process on the checkout `repo` (its
    keras_prompt and its benchmarks.worker); returns its JSON lines."""
    if spec["kind"] == "convert_hf_t5":
        return _convert_hf_t5_record(spec, timeout)
    command = [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=repo,
            env=_child_env(spec, repo),
        )
    except subprocess.TimeoutExpired:
        return [json.dumps({"benchmark": "error", "spec": spec,
                            "error": f"timed out after {timeout} s"})]
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0:
        lines.append(
            json.dumps(
                {
                    "benchmark": "error",
                    "spec": spec,
                    "returncode": result.returncode,
                    "error": result.stderr[-3000:],
                }
            )
        )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="keras-prompt benchmarks: JSON lines on stdout."
    )
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument(
        "--only", default=None,
        help="comma-separated kinds to run (train, forward, generate, mixed, "
        "runtimes, prompt_length, gradient_ops, convert_hf_t5)",
    )
    parser.add_argument(
        "--config", default=None,
        help="comma-separated model configs to run (tiny, t5_small, t5_small_v11)",
    )
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every configuration this many times")
    parser.add_argument("--threads", type=int, default=common.DEFAULT_THREADS)
    parser.add_argument("--output", default=None,
                        help="also append the JSON lines to this file")
    parser.add_argument("--timeout", type=float, default=1800,
                        help="seconds per configuration")
    parser.add_argument("--list", action="store_true",
                        help="print the configurations and exit")
    parser.add_argument(
        "--baseline", default=None, metavar="DIR",
        help="another checkout (e.g. `git worktree add DIR main`) to measure "
        "side by side: every configuration runs on both, alternating which "
        "goes first; records carry `checkout`",
    )
    args = parser.parse_args(argv)

    specs = SUITES[args.suite]()
    if args.only:
        kinds = set(args.only.split(","))
        specs = [spec for spec in specs if spec["kind"] in kinds]
    if args.config:
        names = set(args.config.split(","))
        specs = [spec for spec in specs if spec["config"] in names]
    specs = [
        dict({"suite": args.suite}, **spec, threads=args.threads) for spec in specs
    ]
    if args.list:
        for spec in specs:
            print(json.dumps(spec, sort_keys=True))
        return 0

    output = open(args.output, "a") if args.output else None
    start = time.perf_counter()
    failures = 0
    total = len(specs) * args.repeat
    done = 0
    checkouts = [("current", REPO_ROOT)]
    if args.baseline:
        checkouts.append(("baseline", os.path.abspath(args.baseline)))
        total *= 2
    for repeat in range(args.repeat):
        for spec in specs:
            # ABBA: the order of the checkouts alternates between repeats.
            order = checkouts if repeat % 2 == 0 else checkouts[::-1]
            for checkout, repo in order:
                done += 1
                spec_start = time.perf_counter()
                print(
                    f"[{done}/{total}] {spec['kind']} {spec['config']} "
                    f"{checkout} (load {common.load_average()})",
                    file=sys.stderr, flush=True,
                )
                for line in run_spec(dict(spec, repeat=repeat), args.timeout, repo):
                    record = json.loads(line)
                    record.setdefault("spec", spec)
                    record["checkout"] = checkout
                    record["process_seconds"] = round(
                        time.perf_counter() - spec_start, 1)
                    if record.get("benchmark") == "error":
                        failures += 1
                        print(f"  FAILED: {record.get('error', '')[-500:]}",
                              file=sys.stderr, flush=True)
                    common.emit(record)
                    if output:
                        common.emit(record, output)
    summary = {
        "benchmark": "suite",
        "suite": args.suite,
        "configurations": total,
        "failures": failures,
        "seconds": round(time.perf_counter() - start, 1),
        "load_average_1m": {"end": common.load_average()},
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    common.emit(summary)
    if output:
        common.emit(summary, output)
        output.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
