"""Length bucketing: training speed against padding to the maximum and
against PEFT's pad-to-longest batches, and accuracy on the demo backbone.

    # speed: ours with buckets, ours padded to max_input_length, and
    # PEFT, each in its own process, alternating, `--rounds` times
    python benchmarks/bucketing.py speed \\
        --reference-python ~/.venvs/ref/bin/python --rounds 3 \\
        > bucketing_speed.jsonl
    # accuracy: keras_prompt.train() on t5_tiny_demo with buckets and padded
    # to the maximum, same seed and steps; validation and test accuracy
    python benchmarks/bucketing.py accuracy > bucketing_accuracy.jsonl

The length distribution (`sst2_like_lengths`) imitates SST-2's GLUE train
split (67,349 sentences, about 9-10 words and 13 T5 tokens on average, a
long tail up to about 52 words): a sentence's T5 tokens are drawn from a
log-normal with mu = 2.335 and sigma = 0.678 (median 10.3, mean 13, 99th
percentile 50 tokens), rounded and clipped to [1, 66]; an input adds the 5
tokens of T5's `sst2 sentence:` prefix and `</s>`. So inputs have 7 to 72
tokens, 19 on average, 16 at the median; `max_input_length` is 256, as by
default.

Speed. Every input is a sequence of random single-piece words of the demo
backbone's SentencePiece vocabulary (`t5_tiny_demo`), as many as its
drawn length minus `</s>`; the target is one of two single-piece words
and `</s>`, as SST-2's `positive` / `negative` are in T5's vocabulary.
Ours: `keras_prompt.train()` itself (a CSV `file_task` of the texts, the
library's pipeline, `model.fit`) on a t5-small-sized
random backbone (`benchmarks/configs.py`, `--config t5_small`: original T5
layout, dropout 0.1) whose preprocessor is the demo's tokenizer (token ids
below 512 of the 32,128-row vocabulary: the cost of a step does not depend
on the ids), prompt length 20, random-uniform init, Adafactor 0.3, batch
32, `jit_compile` as a user gets it (`"auto"` unless `--jit-compile`),
with `length_buckets="auto"` and with `None` (padding to 256). PEFT:
`benchmarks/reference/peft_pad_to_longest.py` in its own virtual
environment on the same token ids (the parent writes them; our child checks
that the library's tokenization gives the same lengths), the same model
shape, prompt length, batch, dropout, optimizer, warm-up and timed steps,
shuffled batches padded to their longest example as
`DataCollatorForSeq2Seq` pads them. Each process runs `--warmup` steps,
then `--steps` timed ones (`--max-steps` for padding to the maximum, whose
steps all cost the same); throughput is batch x timed steps / their total
time. Under XLA the first batch of each bucket compiles: ours also reports
the throughput without the timed steps that were the first of their shape
(`examples_per_second_warm`). The summary line has the medians over the
rounds and the ratios (`buckets_over_peft`, `buckets_over_max`). Run it
alone on the machine.

Accuracy. A `demo_mood`-like task (`message: <text> how does the writer
feel?` -> `happy` / `sad`) whose messages hold one review of the demo world
(`keras_prompt.quickstart.world.review`, the adjectives carry the label)
among neutral story sentences (`world.story`, before or after it), added
until the input reaches a length drawn from the same SST-2-like
distribution (the shortest inputs are a review alone, about 12 tokens, so
the short end is longer than SST-2's); train 2,000, validation 200, test
500 examples. For each of `--seeds` (default 0, 1, 2: single runs of this
task differ by a few points from seed to seed), `keras_prompt.train()` runs
twice with that seed and the same steps (the quickstart's settings: prompt
length 20, class-label init, Adafactor 0.3, batch 32, 300 steps,
rank-classification validation every 50 steps), with buckets and padded to
the maximum; each run's best prompt is scored on the test split
(`keras_prompt.evaluate()`, rank classification and greedy). The last line
has the means over the seeds and their differences.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from benchmarks import common  # noqa: E402
from benchmarks import configs  # noqa: E402

SST2_TRAIN_EXAMPLES = 67_349
SENTENCE_MU, SENTENCE_SIGMA = 2.335, 0.678
SENTENCE_TOKENS = (1, 66)
PREFIX_TOKENS = 5  # "sst2 sentence:" in T5's vocabulary
MAX_INPUT_LENGTH = 256
PROMPT_LENGTH = 20
MOOD_LABELS = ("happy", "sad")
DEMO_PRESET = "t5_tiny_demo"
REFERENCE_SCRIPT = os.path.join(REPO_ROOT, "benchmarks", "reference",
                                "peft_pad_to_longest.py")
MOOD_TEMPLATE = "message: {message} how does the writer feel?"
ACCURACY_SPLITS = {"train": 2000, "validation": 200, "test": 500}


def sst2_like_lengths(count, seed):
    """Encoder input lengths (prefix, sentence and `</s>`), SST-2-like."""
    rng = np.random.default_rng(seed)
    sentence = np.round(rng.lognormal(SENTENCE_MU, SENTENCE_SIGMA, count))
    sentence = np.clip(sentence, *SENTENCE_TOKENS).astype(np.int64)
    return sentence + PREFIX_TOKENS + 1


def _length_summary(lengths):
    lengths = np.asarray(lengths)
    return {"mean": float(lengths.mean()),
            "median": float(np.median(lengths)),
            "p90": float(np.percentile(lengths, 90)),
            "p99": float(np.percentile(lengths, 99)),
            "min": int(lengths.min()), "max": int(lengths.max())}


def _demo_sentencepiece():
    import sentencepiece

    from keras_prompt.models.presets import builtin_preset_path

    path = os.path.join(builtin_preset_path(DEMO_PRESET), "assets",
                        "tokenizer", "vocabulary.spm")
    with open(path, "rb") as file:
        proto = file.read()
    return proto, sentencepiece.SentencePieceProcessor(model_proto=proto)


def _single_piece_words(processor, below):
    """The words that are one piece of id < `below`."""
    words = []
    for index in range(3, min(below, processor.get_piece_size())):
        piece = processor.id_to_piece(index)
        word = piece[1:]
        if piece.startswith("\u2581") and word.isalpha() and \
                processor.encode(word) == [index]:
            words.append(word)
    return words


def write_speed_data(workdir, count, seed, vocabulary_size):
    """The texts (CSV for ours) and their token ids (npz for PEFT), and
    the two label words (the first two single-piece words; the others make
    the texts)."""
    _, processor = _demo_sentencepiece()
    words = _single_piece_words(processor, vocabulary_size)
    if len(words) < 20:
        raise SystemExit(f"The vocabulary of {vocabulary_size} rows holds "
                         "too few single-piece words of the demo tokenizer.")
    labels_words, words = words[:2], words[2:]
    label_ids = [processor.encode(word)[0] for word in labels_words]
    lengths = sst2_like_lengths(count, seed)
    rng = np.random.default_rng(seed + 1)
    labels = rng.integers(2, size=count)
    ids, offsets = [], [0]
    csv_path = os.path.join(workdir, "train.csv")
    with open(csv_path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text", "label"])
        for length, label in zip(lengths, labels):
            text = " ".join(rng.choice(words, int(length) - 1))
            tokens = processor.encode(text) + [1]
            assert len(tokens) == length, (text, tokens)
            ids.extend(tokens)
            offsets.append(len(ids))
            writer.writerow([text, labels_words[label]])
    targets = np.array([label_ids[label] for label in labels])
    npz_path = os.path.join(workdir, "tokens.npz")
    np.savez(npz_path, ids=np.array(ids, np.int32),
             offsets=np.array(offsets, np.int64),
             targets=np.stack([targets, np.ones_like(targets)], 1))
    return {"csv": csv_path, "npz": npz_path, "labels": labels_words,
            "lengths": _length_summary(lengths)}


# ------------------------------------------------------------------ #
# Ours, in a child process.
# ------------------------------------------------------------------ #
def run_ours(spec):
    """One `keras_prompt.train()` run, timed per step (a child process)."""
    common.setup_tensorflow(spec["threads"])
    import keras
    import keras_hub

    import keras_prompt
    from benchmarks.worker import _tracing_count
    from keras_prompt.data import TextToTextPipeline
    from keras_prompt.data import resolve_task

    proto, _ = _demo_sentencepiece()
    tokenizer = keras_hub.models.T5Tokenizer(proto=proto)
    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=tokenizer, encoder_sequence_length=spec["max_input_length"],
        decoder_sequence_length=2)
    task = resolve_task(train_file=spec["csv"], template="{text}",
                        label_column="label", labels=",".join(spec["labels"]))
    warmup, steps = spec["warmup"], spec["steps"]
    total = warmup + steps
    config = keras_prompt.TrainConfig(
        prompt_length=PROMPT_LENGTH, prompt_initializer="random_uniform",
        steps=total, batch_size=spec["batch_size"],
        max_input_length=spec["max_input_length"],
        length_buckets=spec["length_buckets"], eval_every=total,
        checkpoint_every=total, tensorboard=False, verbose=0,
        seed=spec["seed"], jit_compile=spec["jit_compile"])

    # The batches train() will see (its pipeline and seed): their lengths,
    # and a check that they tokenize to the lengths PEFT gets.
    examples = task.load("train")
    pipeline = TextToTextPipeline(tokenizer, config.max_input_length,
                                  task.default_target_length(tokenizer))
    buckets = pipeline.use_length_buckets(config.length_buckets, examples)
    data = np.load(spec["npz"])
    expected = np.bincount(np.diff(data["offsets"]),
                           minlength=config.max_input_length + 1)
    if not np.array_equal(pipeline.length_histogram(examples), expected):
        raise SystemExit("The pipeline's input lengths differ from PEFT's.")
    widths = [int(x["encoder_token_ids"].shape[1]) for x, _, _ in
              pipeline.training_dataset(
                  examples, config.batch_size, seed=config.seed,
                  shuffle_buffer=config.shuffle_buffer).take(total)]

    stamps = []

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            stamps.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    backbone = configs.build_backbone(spec["config"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as output:
        result = keras_prompt.train(
            backbone, task, output_dir=output, config=config,
            preprocessor=preprocessor, callbacks=[Timer()])
    seconds = np.diff(stamps)
    timed, timed_widths = seconds[warmup:], widths[warmup:]
    first = {width: widths.index(width) for width in set(widths)}
    warm = [t for i, t in enumerate(timed, warmup)
            if first[widths[i]] != i] or list(timed)
    batch = config.batch_size
    return {
        "benchmark": "bucketing_train",
        "side": "buckets" if buckets else "max",
        "config": spec["config"],
        "settings": {key: spec[key] for key in (
            "batch_size", "max_input_length", "warmup", "steps", "seed",
            "threads", "length_buckets", "jit_compile")},
        "length_buckets": list(buckets) if buckets else None,
        "jit_compile": result["metrics"]["config"]["jit_compile"],
        "examples_per_second": batch * len(timed) / float(timed.sum()),
        "examples_per_second_warm": batch * len(warm) / float(sum(warm)),
        "mean_padded_length": float(np.mean(timed_widths)),
        "step_times": [round(float(t), 4) for t in timed],
        "step_widths": timed_widths,
        "first_steps_seconds": float(seconds[:warmup].sum()),
        "train_seconds": time.perf_counter() - started,
        "train_function_tracings": _tracing_count(
            result["model"].train_function),
        "final_loss": result["metrics"]["train_loss"][-1],
        "peak_rss_mb": common.peak_rss_mb(),
        "load_average_1m": common.load_average(),
    }


# ------------------------------------------------------------------ #
# The speed comparison (parent).
# ------------------------------------------------------------------ #
def _last_json(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def _child(command, timeout, env=None):
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=timeout, env=env, cwd=REPO_ROOT)
    record = _last_json(result.stdout)
    if result.returncode or record is None:
        return {"benchmark": "error", "command": command[:4],
                "error": result.stderr[-3000:]}
    record["process_seconds"] = time.perf_counter() - start
    return record


def _reference_arguments(config_name):
    """The model shape flags of `peft_pad_to_longest.py` for a
    `benchmarks/configs.py` configuration."""
    config = configs.MODEL_CONFIGS[config_name]
    arguments = [
        "--vocab", str(config["vocabulary_size"]),
        "--d-model", str(config["hidden_dim"]),
        "--d-kv", str(config["hidden_dim"] // config["num_heads"]),
        "--d-ff", str(config["intermediate_dim"]),
        "--layers", str(config["num_layers"]),
        "--heads", str(config["num_heads"]),
        "--dropout", str(config["dropout"]),
    ]
    return arguments + ([] if config["tied"] else ["--gated-gelu"])


def speed(args):
    from benchmarks.run import _child_env

    workdir = args.workdir or tempfile.mkdtemp(prefix="bucketing_")
    os.makedirs(workdir, exist_ok=True)
    vocabulary = configs.vocabulary_size(args.config)
    data = write_speed_data(workdir, args.examples, args.seed, vocabulary)
    base = dict(config=args.config, csv=data["csv"], npz=data["npz"],
                labels=data["labels"],
                batch_size=args.batch_size, warmup=args.warmup,
                seed=args.seed, threads=args.threads,
                max_input_length=args.max_input_length,
                jit_compile=args.jit_compile)
    sides = {
        "buckets": dict(base, length_buckets="auto", steps=args.steps),
        "max": dict(base, length_buckets=None,
                    steps=args.max_steps or args.steps),
    }
    reference = [
        args.reference_python, REFERENCE_SCRIPT, "--data", data["npz"],
        "--batch", str(args.batch_size), "--warmup", str(args.warmup),
        "--steps", str(args.steps), "--prompt-len", str(PROMPT_LENGTH),
        "--threads", str(args.threads), "--seed", str(args.seed),
        *_reference_arguments(args.config),
    ]
    common.emit({"benchmark": "bucketing_data", "examples": args.examples,
                 "input_lengths": data["lengths"], "workdir": workdir})
    rates = {"buckets": [], "max": [], "peft": []}
    order = ["buckets", "peft", "max"]
    for round_index in range(args.rounds):
        for side in (order if round_index % 2 == 0 else order[::-1]):
            load = common.load_average()
            if side == "peft":
                record = _child(reference, args.timeout,
                                env=dict(os.environ, OMP_NUM_THREADS=str(
                                    args.threads)))
            else:
                spec = sides[side]
                record = _child([sys.executable, os.path.abspath(__file__),
                                 "ours", json.dumps(spec)], args.timeout,
                                env=_child_env(spec))
            record.update(side=side, round=round_index,
                          load_average_start=load)
            common.emit(common.round_floats(record))
            if record["benchmark"] != "error":
                rate = record.get("examples_per_s",
                                  record.get("examples_per_second"))
                rates[side].append(rate)
    medians = {side: statistics.median(values) if values else None
               for side, values in rates.items()}

    def ratio(a, b):
        return medians[a] / medians[b] if medians[a] and medians[b] else None

    common.emit(common.round_floats({
        "benchmark": "bucketing_speed",
        "config": args.config, "batch_size": args.batch_size,
        "prompt_length": PROMPT_LENGTH, "rounds": args.rounds,
        "examples_per_second": medians, "per_round": rates,
        "buckets_over_peft": ratio("buckets", "peft"),
        "buckets_over_max": ratio("buckets", "max"),
        "max_over_peft": ratio("max", "peft"),
        "input_lengths": data["lengths"],
        "machine": common.machine_info(), "versions": common.versions(),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }))
    return 0


# ------------------------------------------------------------------ #
# Accuracy on the demo backbone.
# ------------------------------------------------------------------ #
def mood_rows(count, seed, processor):
    """`demo_mood`-like rows whose inputs follow `sst2_like_lengths`."""
    from keras_prompt.quickstart import world

    rng = np.random.default_rng(seed)
    template_tokens = len(processor.encode(MOOD_TEMPLATE.format(message="")))
    rows, lengths = [], []
    for index, length in enumerate(sst2_like_lengths(count, seed + 100)):
        label = index % 2
        parts = [world.review(rng, positive=label == 0)[0]]
        budget = int(length) - template_tokens - 1
        while len(processor.encode(" , ".join(parts))) < budget:
            story = world.story(rng)[0]
            parts.insert(0 if rng.random() < 0.5 else len(parts), story)
        message = " , ".join(parts)
        rows.append({"message": message, "label": MOOD_LABELS[label]})
        lengths.append(len(processor.encode(
            MOOD_TEMPLATE.format(message=message))) + 1)
    order = rng.permutation(count)
    return [rows[i] for i in order], [lengths[i] for i in order]


def accuracy(args):
    import logging

    common.setup_tensorflow(args.threads)
    import keras_prompt
    from keras_prompt.data import resolve_task
    from keras_prompt.models.presets import load_backbone_and_preprocessor

    # absl's handler on the root logger would make basicConfig a no-op.
    logging.basicConfig(level=logging.INFO, format="%(message)s",
                        stream=sys.stderr, force=True)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bucketing_accuracy_")
    os.makedirs(workdir, exist_ok=True)
    _, processor = _demo_sentencepiece()
    files, lengths = {}, {}
    for number, (split, count) in enumerate(ACCURACY_SPLITS.items()):
        rows, split_lengths = mood_rows(count, args.data_seed + number,
                                        processor)
        files[split] = os.path.join(workdir, f"{split}.csv")
        with open(files[split], "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=["message", "label"])
            writer.writeheader()
            writer.writerows(rows)
        lengths[split] = _length_summary(split_lengths)
    task = resolve_task(train_file=files["train"],
                        validation_file=files["validation"],
                        test_file=files["test"], template=MOOD_TEMPLATE,
                        label_column="label", labels=",".join(MOOD_LABELS),
                        name="demo_mood_sst2_lengths")
    backbone, preprocessor = load_backbone_and_preprocessor(
        DEMO_PRESET, encoder_sequence_length=args.max_input_length,
        decoder_sequence_length=4)
    runs = {"buckets": [], "max": []}
    for seed in args.seeds:
        for name, buckets in (("buckets", "auto"), ("max", None)):
            started = time.perf_counter()
            trained = keras_prompt.train(
                backbone, task, output_dir=os.path.join(
                    workdir, f"{name}_seed{seed}"),
                preprocessor=preprocessor, prompt_length=PROMPT_LENGTH,
                steps=args.steps, batch_size=32,
                max_input_length=args.max_input_length,
                length_buckets=buckets, eval_every=args.eval_every,
                checkpoint_every=args.steps, rank_classification=True,
                tensorboard=False, verbose=0, seed=seed, overwrite=True)
            seconds = time.perf_counter() - started
            metrics = trained["metrics"]
            test = {mode: keras_prompt.evaluate(
                trained["model"], None, task, split="test", batch_size=100,
                max_input_length=args.max_input_length,
                length_buckets=buckets,
                rank_classification=mode == "rank")["accuracy"]
                for mode in ("rank", "greedy")}
            run = {
                "side": name, "seed": seed,
                "length_buckets": metrics["config"]["length_buckets"],
                "validation_accuracy": metrics["best"]["accuracy"],
                "best_step": metrics["best"]["step"],
                "validation_curve": [v["accuracy"]
                                     for v in metrics["validation"]],
                "test_accuracy_rank": test["rank"],
                "test_accuracy_greedy": test["greedy"],
                "train_seconds": seconds,
            }
            runs[name].append(run)
            common.emit(common.round_floats(
                {"benchmark": "bucketing_accuracy_run", **run}))

    def mean(name, key):
        return statistics.mean(run[key] for run in runs[name])

    keys = ("validation_accuracy", "test_accuracy_rank",
            "test_accuracy_greedy")
    common.emit(common.round_floats({
        "benchmark": "bucketing_accuracy",
        "steps": args.steps, "seeds": args.seeds,
        "data_seed": args.data_seed,
        "max_input_length": args.max_input_length, "input_lengths": lengths,
        "mean": {name: {key: mean(name, key) for key in keys}
                 for name in runs},
        "mean_difference": {key: mean("buckets", key) - mean("max", key)
                            for key in keys},
        "per_seed_difference": {key: [b[key] - m[key] for b, m in zip(
            runs["buckets"], runs["max"])] for key in keys},
        "machine": common.machine_info(), "versions": common.versions(),
    }))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    speed_parser = commands.add_parser("speed", help="training examples/s")
    speed_parser.add_argument("--reference-python", required=True,
                              help="python of the venv with torch and peft")
    speed_parser.add_argument("--config", default="t5_small",
                              choices=sorted(configs.MODEL_CONFIGS))
    speed_parser.add_argument("--examples", type=int,
                              default=SST2_TRAIN_EXAMPLES)
    speed_parser.add_argument("--batch-size", type=int, default=32)
    speed_parser.add_argument("--max-input-length", type=int,
                              default=MAX_INPUT_LENGTH)
    speed_parser.add_argument("--warmup", type=int, default=5)
    speed_parser.add_argument("--steps", type=int, default=40)
    speed_parser.add_argument("--max-steps", type=int, default=10,
                              help="timed steps padded to the maximum")
    speed_parser.add_argument("--rounds", type=int, default=3)
    speed_parser.add_argument("--jit-compile", default="auto",
                              type=lambda text: {"true": True,
                                                 "false": False}.get(text,
                                                                     text))
    speed_parser.add_argument("--threads", type=int,
                              default=common.DEFAULT_THREADS)
    speed_parser.add_argument("--seed", type=int, default=0)
    speed_parser.add_argument("--timeout", type=float, default=3600)
    speed_parser.add_argument("--workdir")
    accuracy_parser = commands.add_parser("accuracy",
                                          help="demo backbone accuracy")
    accuracy_parser.add_argument("--steps", type=int, default=300)
    accuracy_parser.add_argument("--eval-every", type=int, default=50)
    accuracy_parser.add_argument("--max-input-length", type=int,
                                 default=MAX_INPUT_LENGTH)
    accuracy_parser.add_argument(
        "--seeds", default="0,1,2",
        type=lambda text: [int(seed) for seed in text.split(",")],
        help="training seeds; each trains with buckets and padded to the "
        "maximum (default: 0,1,2)")
    accuracy_parser.add_argument("--data-seed", type=int, default=0)
    accuracy_parser.add_argument("--threads", type=int,
                                 default=common.DEFAULT_THREADS)
    accuracy_parser.add_argument("--workdir")
    ours_parser = commands.add_parser("ours", help=argparse.SUPPRESS)
    ours_parser.add_argument("spec")
    args = parser.parse_args(argv)
    if args.command == "ours":
        common.emit(common.round_floats(run_ours(json.loads(args.spec))))
        return 0
    return speed(args) if args.command == "speed" else accuracy(args)


if __name__ == "__main__":
    sys.exit(main())
