"""keras-prompt vs Hugging Face PEFT prompt tuning, side by side in one run.

    python -m benchmarks.vs_peft --reference-python ~/.venvs/ref/bin/python \
        --reference-dir ../shared/reference --rounds 3 --output vs_peft.jsonl

Each measurement is one child process, ours (`benchmarks.worker`, with the
defaults a user gets: `compile()`'s `jit_compile="auto"`, oneDNN requested
by `import keras_prompt`) or the reference (PEFT in its own virtual
environment: `hf_peft_bench.py` from `--reference-dir`, and
`benchmarks/reference/peft_multitask.py`), alternating which goes first
(ABBA) over `--rounds` rounds, so that drifts in the machine's speed hit
both. Both run the same shapes on a t5-small-sized model with random
weights (`--variant t5`: ReLU, tied head; `t5v11`: gated GELU, untied), 2
threads, float32:

| part | ours | PEFT |
| --- | --- | --- |
| `train` | `model.fit`, batch 8, 128 + 8 tokens, prompt 20, dropout 0.1, Adafactor 0.3 | the same with `transformers` Adafactor 0.3 |
| `forward` | teacher-forced logits, batch 8 | the same under `inference_mode` |
| `generate` | `model.generate()`, greedy, 8 new tokens, batch 8 and 32 | `generate(min_new_tokens=max_new_tokens=8)` |
| `multitask` | 32 requests of 8 tasks in one batch: `generate(tasks=...)` (`multitask_keras`) and the exported bank graph in ONNX Runtime (`multitask_onnxruntime`) | one `set_adapter` + `generate` per task |

Prints one JSON line per process and one `vs_peft` line per part with the
medians of both sides over the rounds and their ratio (ours / PEFT:
above 1 means keras-prompt is faster), peak RSS of both with its
breakdown (`*_memory_mb`: anonymous memory vs the file-backed pages of
shared libraries; the reference runs under
`benchmarks/reference/with_memory_status.py` for it), for `multitask_keras`
the bound no decoding loop can pass (`ratio_bound`: our requests/s with zero
decoding steps, i.e. the encoder and the cross-attention keys and values
alone, over PEFT's requests/s), the machine, and
the 2-thread matmul rate of TensorFlow and PyTorch before and after the
part (`matmul_gflops`): a shared host's speed drifts, and the two libraries
do not slow down alike.
Run it alone on the machine: anything else running measures contention.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks import common
from benchmarks.run import REPO_ROOT
from benchmarks.run import _child_env

REFERENCE_SCRIPT = "hf_peft_bench.py"
MULTITASK_SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "reference",
                                "peft_multitask.py")
MEMORY_WRAPPER = os.path.join(REPO_ROOT, "benchmarks", "reference",
                              "with_memory_status.py")
CONFIGS = {"t5": "t5_small", "t5v11": "t5_small_v11"}


def parts(variant, batch_sizes):
    """(name, our worker spec, reference command arguments) per part."""
    config = CONFIGS[variant]
    shapes = ["--size", "small", "--variant", variant, "--src-len", "128",
              "--prompt-len", "20", "--threads", "2"]
    result = [(
        "train",
        dict(kind="train", config=config, warmup=2, steps=8),
        [REFERENCE_SCRIPT, "--mode", "train", "--batch", "8", "--tgt-len",
         "8", "--warmup", "3", "--steps", "10", *shapes],
    ), (
        "forward",
        dict(kind="forward", config=config, batch_size=8, warmup=2, steps=8),
        [REFERENCE_SCRIPT, "--mode", "forward", "--batch", "8", "--tgt-len",
         "8", "--warmup", "3", "--steps", "8", *shapes],
    )]
    for batch in batch_sizes:
        result.append((
            f"generate_b{batch}",
            dict(kind="generate", config=config, batch_size=batch, warmup=2,
                 steps=6),
            [REFERENCE_SCRIPT, "--mode", "generate", "--batch", str(batch),
             "--gen-tokens", "8", "--warmup", "2", "--steps", "6", *shapes],
        ))
    if variant == "t5":
        for runtime in ("keras", "onnxruntime"):
            result.append((
                f"multitask_{runtime}",
                dict(kind="multitask_serving", config=config, requests=32,
                     num_tasks=8, warmup=2, steps=5, runtime=runtime),
                [MULTITASK_SCRIPT, "--requests", "32", "--tasks", "8",
                 "--prompt-len", "20", "--src-len", "128", "--gen-tokens",
                 "8", "--warmup", "2", "--steps", "5", "--threads", "2"],
            ))
    return result


def _last_json(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def run_ours(spec, timeout):
    command = [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=timeout, cwd=REPO_ROOT,
                            env=_child_env(spec))
    record = _last_json(result.stdout)
    if result.returncode or record is None:
        return {"benchmark": "error", "side": "keras-prompt", "spec": spec,
                "error": result.stderr[-3000:]}
    return record


def run_reference(python, reference_dir, arguments, timeout):
    script = arguments[0]
    if not os.path.isabs(script):
        script = os.path.join(reference_dir, script)
    env = dict(os.environ, OMP_NUM_THREADS="2")
    result = subprocess.run([python, MEMORY_WRAPPER, script, *arguments[1:]],
                            capture_output=True, text=True, timeout=timeout,
                            env=env)
    record = _last_json(result.stdout)
    if result.returncode or record is None:
        return {"benchmark": "error", "side": "peft", "command": arguments,
                "error": result.stderr[-3000:]}
    return record


TORCH_RATE_SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "reference",
                                 "torch_matmul_rate.py")
TF_RATE = ("from benchmarks import common; import json; "
           "tf = common.setup_tensorflow(2); "
           "print(json.dumps({'gflops': common.matmul_gflops(tf)}))")


def calibrate(reference_python, timeout=600):
    """2-thread float32 matmul GFLOP/s of TensorFlow (ours, oneDNN as the
    library sets it) and PyTorch now: how fast the shared host is."""
    rates = {}
    for side, command in (
        ("tensorflow", [sys.executable, "-c", TF_RATE]),
        ("torch", [reference_python, TORCH_RATE_SCRIPT]),
    ):
        result = subprocess.run(command, capture_output=True, text=True,
                                timeout=timeout, cwd=REPO_ROOT,
                                env=_child_env({}))
        record = _last_json(result.stdout)
        rates[side] = record["gflops"] if record else None
    return rates


def _ours_rate(record):
    return record["examples_per_second"]["median"]


def _reference_rate(record):
    return record.get("examples_per_s_median_step",
                      record.get("examples_per_s_median"))


def _memory(records):
    """The memory breakdown (`memory_at_end_mb`) of the process with the
    highest peak RSS."""
    return max(records, key=lambda r: r["peak_rss_mb"]).get("memory_at_end_mb")


def _encode_only_rate(record):
    """Requests/s of the work before the first decoding step (encoder and
    cross-attention keys/values), if the record measured it."""
    encode_only = record.get("encode_only_seconds_per_call")
    return record["settings"]["requests"] / encode_only["median"] if encode_only else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-python", required=True,
                        help="python of the venv with torch/transformers/peft")
    parser.add_argument("--reference-dir", required=True,
                        help="the directory holding hf_peft_bench.py")
    parser.add_argument("--parts", default="train,forward,generate,multitask")
    parser.add_argument("--variants", default="t5")
    parser.add_argument("--batch-sizes", default="8,32",
                        help="generation batch sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--output", help="also append the lines to this file")
    args = parser.parse_args(argv)

    wanted = set(args.parts.split(","))
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    output = open(args.output, "a") if args.output else None

    def emit(record):
        line = json.dumps(common.round_floats(record), sort_keys=True)
        print(line, flush=True)
        if output:
            output.write(line + "\n")
            output.flush()

    for variant in args.variants.split(","):
        for name, spec, reference in parts(variant, batch_sizes):
            if name.split("_")[0] not in wanted:
                continue
            sides = {"keras-prompt": [], "peft": []}
            load = []
            rates_before = calibrate(args.reference_python)
            for round_index in range(args.rounds):
                order = ["keras-prompt", "peft"]
                if round_index % 2:
                    order.reverse()
                for side in order:
                    load.append(common.load_average())
                    start = time.perf_counter()
                    if side == "keras-prompt":
                        record = run_ours(dict(spec, suite="vs_peft"),
                                          args.timeout)
                    else:
                        record = run_reference(
                            args.reference_python, args.reference_dir,
                            reference, args.timeout)
                    record.update(side=side, part=name, variant=variant,
                                  round=round_index,
                                  process_seconds=time.perf_counter() - start)
                    emit(record)
                    if record.get("benchmark") != "error":
                        sides[side].append(record)
            if not all(sides.values()):
                continue
            ours = statistics.median(_ours_rate(r) for r in sides["keras-prompt"])
            peft = statistics.median(_reference_rate(r) for r in sides["peft"])
            encode_only = [_encode_only_rate(r) for r in sides["keras-prompt"]]
            bound = (
                {"keras_prompt_encode_only_examples_per_second":
                     statistics.median(encode_only),
                 "ratio_bound": statistics.median(encode_only) / peft}
                if all(encode_only) else {}
            )
            emit({
                "benchmark": "vs_peft",
                **bound,
                "part": name,
                "variant": variant,
                "rounds": args.rounds,
                "keras_prompt_examples_per_second": ours,
                "peft_examples_per_second": peft,
                "ratio": ours / peft,
                "keras_prompt_per_round": [_ours_rate(r) for r in sides["keras-prompt"]],
                "peft_per_round": [_reference_rate(r) for r in sides["peft"]],
                "keras_prompt_peak_rss_mb": max(
                    r["peak_rss_mb"] for r in sides["keras-prompt"]),
                "peft_peak_rss_mb": max(r["peak_rss_mb"] for r in sides["peft"]),
                "keras_prompt_memory_mb": _memory(sides["keras-prompt"]),
                "peft_memory_mb": _memory(sides["peft"]),
                "keras_prompt_settings": sides["keras-prompt"][0]["settings"],
                "load_average_1m": {"min": min(load), "max": max(load)},
                "matmul_gflops": {"before": rates_before,
                                  "after": calibrate(args.reference_python)},
                "machine": common.machine_info(),
                "versions": common.versions(),
                "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })
    return 0


if __name__ == "__main__":
    sys.exit(main())
