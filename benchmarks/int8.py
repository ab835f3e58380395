"""Opt-in int8 for CPU serving: the speed-up and the accuracy change of
dynamically quantized ONNX and LiteRT exports against float32, in one run.

    python benchmarks/int8.py --parts speed,accuracy --output int8.jsonl
    python benchmarks/int8.py --parts accuracy --prompt-dir runs/int8_prompts
    python -m benchmarks.report int8.jsonl              # the tables

Speed (`--parts speed`): a randomly initialised backbone (`--config`,
default `t5_small`: google-t5/t5-small's shape, original layout, tied head;
`benchmarks/configs.py`) with a 20-token baked prompt, exported by
`keras_prompt.export.export_onnx` / `export_tflite` in float32 and with
`quantize="int8"`; batch 8 of 128 input tokens, teacher-forced logits of 8
target tokens (`forward`) and greedy decoding of 8 new tokens (`generate`,
no early stop). ONNX Runtime runs with 2 intra-op threads and every graph
optimization, LiteRT with 2 threads. For each runtime and graph the float
and int8 models are loaded together and timed alternately, ABBA over
`--rounds` (float first in even rounds), so that drift in the machine hits
both; the summary line has the examples/s of each (median over rounds),
the ratio int8 / float, the file sizes and how far the int8 outputs are from
the float ones. Run it on an otherwise idle machine.

Accuracy (`--parts accuracy`): prompts for the demo's held-out tasks
(`demo_animal`, `demo_mood`) trained on the built-in `t5_tiny_demo` backbone
with the public `keras_prompt.train()` as `keras-prompt quickstart` trains
them (300 steps, prompt length 20, class-label init, Adafactor 0.3, batch
32, seed 0 and 1; or the runs already in `--prompt-dir`), exported as one
bank in float32 and int8 to ONNX and LiteRT greedy-decoding graphs, and the
500 test examples of each task run through the deployment kit's clients
(`export/onnx_client.py`, `export/litert_client.py`): exact-match accuracy
of the generated label word in float32 and int8, the change in points and
the share of examples whose prediction did not change. Not a speed
measurement: it may run beside other work.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from benchmarks import common  # noqa: E402
from benchmarks import configs  # noqa: E402

PARTS = ("speed", "accuracy")
RUNTIMES = ("onnxruntime", "tflite")
GRAPHS = ("forward", "generate")
QUANTIZATIONS = (None, "int8")
PROMPT_LENGTH = 20
DEMO_TASKS = ("demo_animal", "demo_mood")
# The held-out tasks' test inputs, run through the LiteRT graph's fixed
# batch in chunks.
LITERT_BATCH = 100


def _megabytes(path):
    return os.path.getsize(path) / 2**20


def _name(quantize):
    return quantize or "float32"


class _Emitter:
    """JSON lines to stdout and, with `--output`, appended to a file."""

    def __init__(self, output):
        self.output = open(output, "a") if output else None
        self.load_at_start = common.load_average()
        self.base = {
            "machine": common.machine_info(),
            "versions": common.versions(),
        }

    def __call__(self, record):
        record = common.round_floats(
            dict(
                record,
                load_average_1m={
                    "start": self.load_at_start,
                    "now": common.load_average(),
                },
                time_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **self.base,
            )
        )
        common.emit(record)
        if self.output:
            common.emit(record, self.output)


# --------------------------------------------------------------------- #
# Speed.
# --------------------------------------------------------------------- #
def _export(model, runtime, graph, quantize, path, settings):
    """Exports one graph; returns `(step, export seconds)` where `step()`
    runs it once on the benchmark's batch."""
    from benchmarks.worker import _tflite_runner
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_tflite

    vocab = configs.vocabulary_size(settings["config"])
    x, _ = configs.training_batch(
        settings["batch_size"],
        settings["encoder_length"],
        settings["decoder_length"],
        vocab,
    )
    if graph == "generate":
        x = {k: x[k] for k in ("encoder_token_ids", "encoder_padding_mask")}
    output = "logits" if graph == "forward" else "token_ids"
    max_decode_length = settings["new_tokens"] + 1
    start = time.perf_counter()
    if runtime == "onnxruntime":
        export_onnx(
            model,
            path,
            mode="baked",
            graph=graph,
            max_decode_length=max_decode_length,
            quantize=quantize,
        )
        seconds = time.perf_counter() - start
        session = common.ort_session(path, settings["threads"])
        return (lambda: session.run([output], x)[0]), seconds
    export_tflite(
        model,
        path,
        mode="baked",
        graph=graph,
        batch_size=settings["batch_size"],
        encoder_sequence_length=settings["encoder_length"],
        decoder_sequence_length=settings["decoder_length"],
        max_decode_length=max_decode_length,
        quantize=quantize,
    )
    seconds = time.perf_counter() - start
    runner = _tflite_runner(path, settings["threads"])
    return (lambda: runner(**x)[output]), seconds


def _output_change(graph, reference, quantized):
    """How far the int8 outputs are from the float32 ones."""
    if graph == "forward":
        difference = np.abs(quantized - reference)
        return {
            "max_abs_logit_diff": float(difference.max()),
            "mean_abs_logit_diff": float(difference.mean()),
            "argmax_agreement": float(
                np.mean(quantized.argmax(-1) == reference.argmax(-1))
            ),
        }
    return {
        "token_agreement": float(np.mean(quantized == reference)),
        "rows_equal": float(np.mean((quantized == reference).all(axis=1))),
    }


def run_speed(args, emit):
    common.setup_tensorflow(args.threads)
    settings = {
        "config": args.config,
        "batch_size": args.batch_size,
        "encoder_length": args.encoder_length,
        "decoder_length": args.new_tokens,
        "new_tokens": args.new_tokens,
        "prompt_length": PROMPT_LENGTH,
        "prompt_mode": "baked",
        "threads": args.threads,
        "warmup": args.warmup,
        "steps": args.steps,
        "rounds": args.rounds,
    }
    model = configs.build_model(args.config, PROMPT_LENGTH)
    workdir = args.workdir or tempfile.mkdtemp(prefix="keras_prompt_int8_")
    for runtime in RUNTIMES:
        for graph in GRAPHS:
            extension = "onnx" if runtime == "onnxruntime" else "tflite"
            steps, export_seconds, sizes = {}, {}, {}
            for quantize in QUANTIZATIONS:
                path = os.path.join(
                    workdir, f"{graph}_{_name(quantize)}.{extension}"
                )
                steps[quantize], export_seconds[quantize] = _export(
                    model, runtime, graph, quantize, path, settings
                )
                sizes[quantize] = _megabytes(path)
            samples = {quantize: [] for quantize in QUANTIZATIONS}
            for round_index in range(args.rounds):
                order = list(QUANTIZATIONS)
                if round_index % 2:
                    order.reverse()
                for quantize in order:
                    cpu_times = []
                    _, times = common.time_steps(
                        steps[quantize], args.warmup, args.steps,
                        cpu_times=cpu_times,
                    )
                    throughput = common.throughput(times, args.batch_size)
                    samples[quantize].append(throughput["median"])
                    emit(dict(
                        benchmark="int8_speed", runtime=runtime, graph=graph,
                        quantization=quantize, round=round_index,
                        examples_per_second=throughput,
                        seconds_per_call=common.summarize(times),
                        cpu_seconds_per_call=common.summarize(cpu_times),
                        settings=settings,
                    ))
            medians = {q: statistics.median(samples[q]) for q in QUANTIZATIONS}
            reference = np.asarray(steps[None]())
            quantized = np.asarray(steps["int8"]())
            emit(dict(
                benchmark="int8_speed", summary=True, runtime=runtime,
                graph=graph, settings=settings,
                float_examples_per_second=medians[None],
                int8_examples_per_second=medians["int8"],
                ratio=medians["int8"] / medians[None],
                float_file_mb=sizes[None], int8_file_mb=sizes["int8"],
                size_ratio=sizes["int8"] / sizes[None],
                export_seconds={_name(q): s for q, s in export_seconds.items()},
                **_output_change(graph, reference, quantized),
            ))


# --------------------------------------------------------------------- #
# Accuracy on the demo's held-out tasks.
# --------------------------------------------------------------------- #
def _prompt_files(prompt_dir, steps, seed):
    """Each demo task's prompt file in `prompt_dir/<task>/`, trained there
    with `keras_prompt.train()` as the quickstart does unless it exists."""
    import keras_prompt
    from keras_prompt.quickstart import baselines
    from keras_prompt.quickstart.run import training_config

    files, trained = {}, {}
    backbone = preprocessor = None
    for number, task in enumerate(DEMO_TASKS):
        run_dir = os.path.join(prompt_dir, task)
        path = os.path.join(run_dir, "prompt.safetensors")
        if not os.path.isfile(path):
            if backbone is None:
                backbone, preprocessor = baselines.load_demo()
            config = training_config(
                steps=steps, prompt_length=PROMPT_LENGTH, seed=seed + number)
            start = time.perf_counter()
            result = keras_prompt.train(
                backbone, task, output_dir=run_dir, config=config,
                preprocessor=preprocessor,
            )
            trained[task] = {
                "seconds": time.perf_counter() - start,
                "best_validation": result["metrics"]["best"],
            }
        files[task] = path
    return files, trained


def _clients():
    """The deployment kit's ONNX Runtime and LiteRT client classes."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "export"))
    from litert_client import LiteRTPromptClient
    from onnx_client import OnnxPromptClient

    return {"onnxruntime": OnnxPromptClient, "tflite": LiteRTPromptClient}


def run_accuracy(args, emit):
    common.setup_tensorflow(args.threads)
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_tflite
    from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM
    from keras_prompt.quickstart import baselines
    from keras_prompt.quickstart import tasks as demo_tasks
    from keras_prompt.quickstart.run import MAX_DECODE_LENGTH

    workdir = args.workdir or tempfile.mkdtemp(prefix="keras_prompt_int8_")
    prompt_dir = args.prompt_dir or os.path.join(workdir, "prompts")
    files, trained = _prompt_files(prompt_dir, args.train_steps, args.seed)
    backbone, preprocessor = baselines.load_demo()
    model = PromptedT5Seq2SeqLM(
        backbone, preprocessor, prompt_length=PROMPT_LENGTH
    )
    clients = _clients()
    texts = {task: demo_tasks.split_texts(task, "test") for task in DEMO_TASKS}
    for runtime in RUNTIMES:
        predictions, sizes = {}, {}
        for quantize in QUANTIZATIONS:
            extension = "onnx" if runtime == "onnxruntime" else "tflite"
            path = os.path.join(
                workdir, f"demo_bank_generate_{_name(quantize)}.{extension}"
            )
            common_arguments = dict(
                mode="bank", prompts=files, graph="generate",
                max_decode_length=MAX_DECODE_LENGTH, quantize=quantize,
            )
            if runtime == "onnxruntime":
                export_onnx(model, path, **common_arguments)
            else:
                export_tflite(
                    model, path, batch_size=LITERT_BATCH, **common_arguments
                )
            sizes[quantize] = _megabytes(path)
            client = clients[runtime](path)
            predictions[quantize] = {
                task: client.generate(inputs, tasks=task)
                for task, (inputs, _) in texts.items()
            }
        for task, (_, labels) in texts.items():
            words = np.asarray(demo_tasks.TASKS[task]["labels"])[labels]
            # `keras_prompt.evaluate()`'s rule: the stripped text is the
            # label word.
            accuracy = {
                q: 100 * float(np.mean([
                    text.strip() == word
                    for text, word in zip(predictions[q][task], words)
                ]))
                for q in QUANTIZATIONS
            }
            emit(dict(
                benchmark="int8_accuracy", runtime=runtime, task=task,
                examples=len(words),
                float_accuracy=accuracy[None], int8_accuracy=accuracy["int8"],
                change_points=accuracy["int8"] - accuracy[None],
                prediction_agreement=float(np.mean([
                    a == b for a, b in zip(
                        predictions[None][task], predictions["int8"][task])
                ])),
                float_file_mb=sizes[None], int8_file_mb=sizes["int8"],
                prompt_file=files[task], training=trained.get(task),
                settings={
                    "backbone": baselines.DEMO_PRESET,
                    "prompt_length": PROMPT_LENGTH,
                    "train_steps": args.train_steps,
                    "seed": args.seed,
                    "mode": "bank",
                    "max_decode_length": MAX_DECODE_LENGTH,
                    "litert_batch_size": LITERT_BATCH,
                },
            ))


def parse_parts(text):
    parts = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f"--parts takes a comma-separated list of {', '.join(PARTS)}; "
            f"got {text!r}."
        )
    return parts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=parse_parts, default=list(PARTS),
                        help="speed,accuracy (default both)")
    parser.add_argument("--output", metavar="FILE.jsonl",
                        help="also append the records there")
    parser.add_argument("--workdir", help="where the exports are written "
                        "(default: a new temporary directory)")
    parser.add_argument("--threads", type=int, default=common.DEFAULT_THREADS)
    speed = parser.add_argument_group("speed")
    speed.add_argument("--config", default="t5_small",
                       choices=sorted(configs.MODEL_CONFIGS))
    speed.add_argument("--batch-size", type=int,
                       default=configs.DEFAULTS["batch_size"])
    speed.add_argument("--encoder-length", type=int,
                       default=configs.DEFAULTS["encoder_length"])
    speed.add_argument("--new-tokens", type=int,
                       default=configs.DEFAULTS["decoder_length"])
    speed.add_argument("--rounds", type=int, default=4,
                       help="float/int8 alternations (ABBA)")
    speed.add_argument("--warmup", type=int, default=2)
    speed.add_argument("--steps", type=int, default=5,
                       help="timed calls per measurement")
    accuracy = parser.add_argument_group("accuracy")
    accuracy.add_argument("--prompt-dir", help="DIR/<task>/prompt.safetensors "
                          "of already trained runs; missing ones are trained "
                          "there")
    accuracy.add_argument("--train-steps", type=int, default=300)
    accuracy.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    emit = _Emitter(args.output)
    if "speed" in args.parts:
        run_speed(args, emit)
    if "accuracy" in args.parts:
        run_accuracy(args, emit)


if __name__ == "__main__":
    main()
