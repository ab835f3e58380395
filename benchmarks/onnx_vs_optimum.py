"""keras-prompt's ONNX greedy decoding vs Hugging Face Optimum's KV-cached ONNX
graphs, side by side in one run.

    python benchmarks/onnx_vs_optimum.py --optimum-python ~/.venvs/ort/bin/python \\
        --reference-dir ../shared/reference --rounds 3 > onnx_vs_optimum.jsonl

Ours: a t5-small-sized original T5 (random weights, `benchmarks/configs.py`)
with a 20-token baked prompt, exported by `keras_prompt.export.export_onnx(
graph="generate")` (the model's own layers and the one cached decoding loop
in an ONNX `Loop`), run in ONNX Runtime on 128 input tokens. The reference:
`ort_optimum_bench.py --benches ort_raw_generate`, a plain Python greedy loop
over Optimum's encoder / decoder / decoder_with_past graphs of a same-shaped
Hugging Face T5 (`hf_t5_make.py --variant t5 --size small`) on 148 input
tokens (128 + the prompt's 20), in its own virtual environment (Optimum is
never a dependency). Both: 2 intra-op threads, 1 inter-op thread, all ORT
graph optimizations, batch 8 and 32, 8 and 32 new tokens, no early stop.

The two alternate ABBA-style in each round (ours then the reference, then
the reverse), so drift in the machine hits both; the summary line has the
ratio of medians over rounds. Run it on an otherwise idle machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from benchmarks import common  # noqa: E402
from benchmarks import configs  # noqa: E402

ENCODER_LENGTH = 128
PROMPT_LENGTH = 20


def _ours(tf_threads, tokens_list, batches, workdir):
    """`{(batch, tokens): step}` over our exported generate graphs."""
    common.setup_tensorflow(tf_threads)
    from keras_prompt.export import export_onnx

    model = configs.build_model("t5_small", PROMPT_LENGTH)
    vocab = configs.vocabulary_size("t5_small")
    steps, export_seconds = {}, {}
    for tokens in tokens_list:
        path = os.path.join(workdir, f"generate_{tokens}.onnx")
        start = time.perf_counter()
        export_onnx(model, path, mode="baked", graph="generate",
                    max_decode_length=tokens + 1)
        export_seconds[tokens] = time.perf_counter() - start
        session = common.ort_session(path, tf_threads)
        for batch in batches:
            feed = configs.encoder_batch(batch, ENCODER_LENGTH, vocab)

            def step(session=session, feed=feed):
                return session.run(["token_ids"], feed)[0]

            steps[(batch, tokens)] = step
    return steps, export_seconds


def _reference(python, reference_dir, checkpoint, onnx_dir, batch, tokens,
               warmup, timed, threads):
    command = [
        python, os.path.join(reference_dir, "ort_optimum_bench.py"),
        "--ckpt", checkpoint, "--onnx-dir", onnx_dir,
        "--benches", "ort_raw_generate", "--src-len",
        str(ENCODER_LENGTH + PROMPT_LENGTH), "--batch", str(batch),
        "--gen-tokens", str(tokens), "--warmup", str(warmup),
        "--steps", str(timed), "--threads", str(threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    key = f"ort_raw_generate/S{ENCODER_LENGTH + PROMPT_LENGTH}/B{batch}"
    return report["examples_per_s"][key], report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--optimum-python", required=True,
                        help="python of the venv with optimum-onnx")
    parser.add_argument("--reference-dir", required=True,
                        help="the directory of ort_optimum_bench.py")
    parser.add_argument("--workdir", help="cache for the checkpoint and graphs")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--tokens", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=common.DEFAULT_THREADS)
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="onnx_vs_optimum_")
    checkpoint = os.path.join(workdir, "hf_t5_small")
    onnx_dir = os.path.join(workdir, "optimum_onnx")
    if not os.path.isfile(os.path.join(checkpoint, "config.json")):
        subprocess.run(
            [args.optimum_python, os.path.join(args.reference_dir, "hf_t5_make.py"),
             "--variant", "t5", "--size", "small", "--out", checkpoint],
            check=True, capture_output=True)
    ours, export_seconds = _ours(args.threads, args.tokens, args.batches, workdir)
    base = {
        "benchmark": "onnx_vs_optimum",
        "machine": common.machine_info(),
        "versions": common.versions(),
        "threads": args.threads,
        "encoder_length": ENCODER_LENGTH,
        "prompt_length": PROMPT_LENGTH,
        "reference_src_len": ENCODER_LENGTH + PROMPT_LENGTH,
    }
    samples = {key: {"ours": [], "optimum": []} for key in ours}
    for round_index in range(args.rounds):
        for key, step in ours.items():
            batch, tokens = key

            def measure_ours():
                _, times = common.time_steps(step, args.warmup, args.steps)
                return batch / statistics.median(times)

            def measure_optimum():
                value, _ = _reference(
                    args.optimum_python, args.reference_dir, checkpoint,
                    onnx_dir, batch, tokens, args.warmup, args.steps,
                    args.threads)
                return value

            order = [("ours", measure_ours), ("optimum", measure_optimum)]
            if round_index % 2:
                order.reverse()
            for name, measure in order:
                samples[key][name].append(measure())
                common.emit(common.round_floats(dict(
                    base, round=round_index, batch=batch, new_tokens=tokens,
                    side=name, examples_per_second=samples[key][name][-1],
                    load_average_1m=common.load_average())))
    for (batch, tokens), values in samples.items():
        ours_median = statistics.median(values["ours"])
        optimum_median = statistics.median(values["optimum"])
        generated = ours[(batch, tokens)]()
        common.emit(common.round_floats(dict(
            base, summary=True, batch=batch, new_tokens=tokens,
            ours_examples_per_second=ours_median,
            optimum_examples_per_second=optimum_median,
            ratio=ours_median / optimum_median,
            met=ours_median >= optimum_median,
            rows_stopped_early=int((generated[:, 1:] == configs.END_TOKEN_ID)
                                   .any(axis=1).sum()),
            export_seconds=export_seconds[tokens],
            load_average_1m=common.load_average())))


if __name__ == "__main__":
    main()
