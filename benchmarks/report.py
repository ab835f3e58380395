"""Markdown performance tables from the JSON lines of `benchmarks.run`.

    python -m benchmarks.run --suite full > full.jsonl
    python -m benchmarks.report full.jsonl [more.jsonl ...] > perf.md

When a configuration was measured more than once (`--repeat`, or several
files), the run with the best median is shown by default (`--aggregate
best`): on a shared machine the slowest runs measure the other processes.
`--aggregate latest` shows the last one instead. Every row says the 1-minute
load average while it was measured.
"""

import argparse
import json
import statistics
import sys

# PyTorch + PEFT reference on this kind of machine (issue 7; t5-small size,
# batch 8 x 128 input tokens, 8 target tokens, prompt 20, 2 threads).
REFERENCE = {
    "train": 7.5,
    "train_rss_mb": 1.2 * 1000,
    "forward_8": 21.0,
    "generate_8": 12.6,
    "generate_32": 16.6,
}
TARGETS = {
    "train": 1.5 * REFERENCE["train"],  # 11.25, rounded to 11 in the issue
    "generate_8": 2 * REFERENCE["generate_8"],
    "generate_32": 2 * REFERENCE["generate_32"],
    "mixed": 0.95,
    "onnx_over_savedmodel": 1.2,
}
MAIN_CONFIG = "t5_small"


def load_records(paths):
    records = []
    for path in paths:
        stream = sys.stdin if path == "-" else open(path)
        for line in stream:
            line = line.strip()
            if line.startswith("{"):
                records.append(json.loads(line))
    return records


def _median(record, field="examples_per_second"):
    value = record.get(field) or {}
    return value.get("median")


def _load(record):
    load = record.get("load_average_1m") or {}
    values = [v for v in (load.get("start"), load.get("now")) if v is not None]
    if not values:
        return "?"
    if len(values) == 2 and values[0] != values[1]:
        return f"{min(values):.1f}–{max(values):.1f}"
    return f"{values[0]:.1f}"


def _throughput(record, field="examples_per_second"):
    value = record.get(field)
    if not value:
        return "–"
    return f"{value['median']:.3g} ({value['min']:.3g}–{value['max']:.3g})"


def _kind(record):
    return (record.get("spec") or {}).get("kind", record.get("benchmark"))


def _pick(records, aggregate, key=_median):
    if not records:
        return None
    if aggregate == "latest":
        return records[-1]
    return max(records, key=lambda r: key(r) or 0)


def _group(records, keyfn):
    groups = {}
    for record in records:
        groups.setdefault(keyfn(record), []).append(record)
    return groups


def _s(record, name, default=None):
    return (record.get("settings") or {}).get(name, default)


def _ratio(value, reference):
    if value is None or not reference:
        return "–"
    return f"{value / reference:.2f}×"


def _cpu(record):
    value = (record.get("cpu_seconds_per_call") or {}).get("median")
    return "–" if value is None else f"{value:.3g}"


def _estimate(record):
    """Batch / (CPU seconds / threads): the throughput if the process had
    had its threads' cores to itself with perfect scaling (an optimistic
    bound, for rows measured under load)."""
    value = (record.get("cpu_seconds_per_call") or {}).get("median")
    batch = _s(record, "batch_size")
    threads = _s(record, "threads") or 2
    if not value or not batch:
        return "–"
    return f"{batch / (value / threads):.3g}"


def _retraced(record):
    after = record.get("train_function_tracings_after_warmup")
    end = record.get("train_function_tracings")
    if after is None or end is None:
        return "?"
    return "no" if after == end else f"yes ({after} -> {end})"


def _config_sort(config):
    order = {"t5_small": 0, "t5_small_v11": 1, "tiny": 2}
    return order.get(config, 9)


def _per_token_table(emit, runtimes, aggregate):
    """Generation time by number of new tokens: with a cached decoder the
    cost of one more token does not grow with the tokens already made."""
    generation = [r for r in runtimes if r["benchmark"] == "runtime_generate"]
    counts = sorted({_s(r, "new_tokens", 8) for r in generation})
    if len(counts) < 2:
        return
    emit("### Cost per generated token (batch 8, greedy, no early stop)")
    emit("")
    emit("Seconds per call for " + " / ".join(map(str, counts)) + " new tokens, "
         "and the marginal milliseconds per token between them "
         "((t(n₂) − t(n₁)) / (n₂ − n₁)): flat when each step costs the same.")
    emit("")
    spans = list(zip(counts, counts[1:]))
    emit("| model | runtime | " + " | ".join(f"s / call, {n} tokens" for n in counts)
         + " | " + " | ".join(f"ms / token, {a}→{b}" for a, b in spans) + " |")
    emit("|---|---|" + "---|" * (len(counts) + len(spans)))
    order = {"keras": 0, "savedmodel": 1, "onnxruntime": 2, "tflite": 3}
    groups = _group(generation, lambda r: (r["config"], _s(r, "runtime")))
    for key in sorted(groups, key=lambda k: (_config_sort(k[0]), order.get(k[1], 9))):
        seconds = {}
        for count in counts:
            best = _pick([r for r in groups[key] if _s(r, "new_tokens", 8) == count],
                         aggregate)
            if best:
                seconds[count] = best["seconds_per_call"]["median"]
        cells = [f"{seconds[n]:.3f}" if n in seconds else "–" for n in counts]
        marginal = [
            f"{1000 * (seconds[b] - seconds[a]) / (b - a):.1f}"
            if a in seconds and b in seconds else "–"
            for a, b in spans
        ]
        emit(f"| {key[0]} | {key[1]} | " + " | ".join(cells + marginal) + " |")
    emit("")


def _baseline_table(emit, measured):
    """`run.py --baseline DIR`: this checkout against another, alternating."""
    paired = [r for r in measured if r.get("checkout") in ("current", "baseline")]
    if not any(r["checkout"] == "baseline" for r in paired):
        return
    emit("### This checkout vs the baseline checkout (`run.py --baseline`)")
    emit("")
    emit("Both checkouts ran every configuration in turn (ABBA over repeats); "
         "medians over repeats of each run's median.")
    emit("")
    emit("| model | work | batch | XLA | current examples/s (runs) | "
         "baseline examples/s (runs) | current / baseline |")
    emit("|---|---|---|---|---|---|---|")
    groups = _group(paired, lambda r: (r["config"], r["benchmark"],
                                       _s(r, "batch_size"), _s(r, "xla")))
    for key in sorted(groups, key=lambda k: (_config_sort(k[0]), k[1], k[2], not k[3])):
        values = {}
        for side in ("current", "baseline"):
            values[side] = [_median(r) for r in groups[key]
                            if r["checkout"] == side and _median(r)]
        if not values["current"] or not values["baseline"]:
            continue
        current = statistics.median(values["current"])
        baseline = statistics.median(values["baseline"])
        runs = {side: ", ".join(f"{v:.3g}" for v in values[side]) for side in values}
        emit(f"| {key[0]} | {key[1]} | {key[2]} | {'on' if key[3] else 'off'} "
             f"| {current:.3g} ({runs['current']}) | {baseline:.3g} ({runs['baseline']}) "
             f"| {current / baseline:.2f}× |")
    emit("")


def _optimum_table(emit, records):
    """`benchmarks/onnx_vs_optimum.py` summary lines."""
    summaries = [r for r in records
                 if r.get("benchmark") == "onnx_vs_optimum" and r.get("summary")]
    if not summaries:
        return
    emit("### ONNX greedy decoding vs Hugging Face Optimum (`onnx_vs_optimum.py`)")
    emit("")
    emit("Ours: the exported `generate` graph (128 tokens + a 20-token prompt). "
         "Optimum: a Python greedy loop over its KV-cached encoder / decoder / "
         "decoder-with-past graphs (148 tokens), in its own venv. Median "
         "examples/s over alternating rounds.")
    emit("")
    emit("| batch | new tokens | ours | Optimum | ours / Optimum | rows stopped early "
         "| export s | load |")
    emit("|---|---|---|---|---|---|---|---|")
    for r in sorted(summaries, key=lambda r: (r["new_tokens"], r["batch"])):
        emit(f"| {r['batch']} | {r['new_tokens']} | {r['ours_examples_per_second']:.3g} "
             f"| {r['optimum_examples_per_second']:.3g} | {r['ratio']:.2f}× "
             f"| {r.get('rows_stopped_early', '?')} | {r.get('export_seconds', 0):.3g} "
             f"| {r.get('load_average_1m', '?')} |")
    emit("")


def _int8_tables(emit, records):
    """`benchmarks/int8.py`: summary lines of the speed part, records of the
    accuracy part (the latest of each)."""
    speed = {(r["settings"]["config"], r["runtime"], r["graph"]): r
             for r in records
             if r.get("benchmark") == "int8_speed" and r.get("summary")}
    accuracy = {(r["task"], r["runtime"]): r
                for r in records if r.get("benchmark") == "int8_accuracy"}
    order = {"onnxruntime": 0, "tflite": 1}
    if speed:
        emit("### int8 vs float32 exports: speed (`int8.py`)")
        emit("")
        emit("The same baked-prompt graph exported in float32 and with "
             "`quantize=\"int8\"`, run alternately (ABBA) in one process; "
             "batch, lengths and threads as listed in the records' settings "
             "(defaults: batch 8 × 128 input tokens, prompt 20, 8 target / "
             "new tokens, 2 threads). Median examples/s over the rounds.")
        emit("")
        emit("| model | runtime | work | float32 examples/s | int8 examples/s "
             "| int8 / float32 | file MB float32 → int8 | int8 vs float32 "
             "outputs | load |")
        emit("|---|---|---|---|---|---|---|---|---|")
        for key in sorted(speed, key=lambda k: (_config_sort(k[0]),
                                                order.get(k[1], 9), k[2])):
            r = speed[key]
            if key[2] == "forward":
                change = (f"logits max {r['max_abs_logit_diff']:.2g}, mean "
                          f"{r['mean_abs_logit_diff']:.2g}; argmax "
                          f"{r['argmax_agreement']:.1%} equal")
                work = "forward"
            else:
                change = (f"tokens {r['token_agreement']:.1%} equal, rows "
                          f"{r['rows_equal']:.0%}")
                work = f"greedy {_s(r, 'new_tokens')} tokens"
            emit(f"| {key[0]} | {key[1]} | {work} "
                 f"| {r['float_examples_per_second']:.3g} "
                 f"| {r['int8_examples_per_second']:.3g} | {r['ratio']:.2f}× "
                 f"| {r['float_file_mb']:.3g} → {r['int8_file_mb']:.3g} "
                 f"| {change} | {_load(r)} |")
        emit("")
    if accuracy:
        emit("### int8 vs float32 exports: accuracy on the demo's held-out "
             "tasks (`int8.py`)")
        emit("")
        emit("Prompts trained with `keras_prompt.train()` on `t5_tiny_demo` "
             "as the quickstart trains them, exported as one bank; greedy "
             "exact match on each task's 500 test examples through the "
             "deployment kit's clients.")
        emit("")
        emit("| task | runtime | float32 accuracy % | int8 accuracy % "
             "| change (points) | predictions unchanged | file MB float32 → "
             "int8 |")
        emit("|---|---|---|---|---|---|---|")
        for key in sorted(accuracy, key=lambda k: (k[0], order.get(k[1], 9))):
            r = accuracy[key]
            emit(f"| {key[0]} | {key[1]} | {r['float_accuracy']:.1f} "
                 f"| {r['int8_accuracy']:.1f} | {r['change_points']:+.1f} "
                 f"| {r['prediction_agreement']:.1%} "
                 f"| {r['float_file_mb']:.3g} → {r['int8_file_mb']:.3g} |")
        emit("")


VS_PEFT_WORK = {
    "train": "training step, batch 8 × (128 + 8) tokens, dropout 0.1",
    "forward": "forward logits, batch 8",
    "generate_b8": "greedy 8 new tokens, batch 8",
    "generate_b32": "greedy 8 new tokens, batch 32",
    "multitask": "32 requests of 8 tasks: one `generate(tasks=...)` (earlier run)",
    "multitask_keras": "32 requests of 8 tasks: one `generate(tasks=...)`",
    "multitask_onnxruntime": "32 requests of 8 tasks: the ONNX bank graph",
}


def _vs_peft_table(emit, records):
    """`benchmarks/vs_peft.py` summary lines (the latest per part)."""
    parts = {(r["variant"], r["part"]): r for r in records
             if r.get("benchmark") == "vs_peft"}
    if not parts:
        return
    emit("### keras-prompt vs PyTorch + PEFT (`vs_peft.py`)")
    emit("")
    emit("Each side in its own processes, alternating (ABBA), median "
         "examples/s over the rounds; t5-small size, random weights, 128 "
         "input tokens, prompt 20, float32, 2 threads. Ours with the "
         "defaults a user gets. PEFT serves several tasks one adapter per "
         "`generate` call. Matmul GFLOP/s: 2-thread 2048² before → after the "
         "part, TensorFlow / PyTorch (the shared host's speed).")
    emit("")
    emit("| work | keras-prompt | PEFT | ratio | per round (ours; PEFT) "
         "| peak RSS MB (ours; PEFT) | matmul GFLOP/s TF; torch |")
    emit("|---|---|---|---|---|---|---|")
    order = list(VS_PEFT_WORK)
    for key in sorted(parts, key=lambda k: (k[0], order.index(k[1])
                                            if k[1] in order else 99)):
        r = parts[key]
        rates = r.get("matmul_gflops") or {}
        before, after = rates.get("before") or {}, rates.get("after") or {}

        def rate(side):
            values = [before.get(side), after.get(side)]
            return " → ".join(f"{v:.0f}" if v else "?" for v in values)

        work = VS_PEFT_WORK.get(key[1], key[1])
        if key[0] != "t5":
            work += f" ({key[0]})"
        emit(f"| {work} | {r['keras_prompt_examples_per_second']:.3g} "
             f"| {r['peft_examples_per_second']:.3g} | {r['ratio']:.2f}× "
             f"| {', '.join(f'{v:.3g}' for v in r['keras_prompt_per_round'])}; "
             f"{', '.join(f'{v:.3g}' for v in r['peft_per_round'])} "
             f"| {r['keras_prompt_peak_rss_mb']:.0f}; {r['peft_peak_rss_mb']:.0f} "
             f"| {rate('tensorflow')}; {rate('torch')} |")
    emit("")
    for key in sorted(parts):
        r = parts[key]
        ours, peft = r.get("keras_prompt_memory_mb"), r.get("peft_memory_mb")
        if ours and peft:
            emit(f"Memory of the `{key[1]}` processes ({key[0]}), MB: peak RSS "
                 f"{ours['peak']:.0f} (ours) vs {peft['peak']:.0f} (PEFT); of "
                 f"it the file-backed pages of shared libraries "
                 f"{ours['file_backed']:.0f} vs {peft['file_backed']:.0f}, "
                 f"anonymous memory at the peak ≈ "
                 f"{ours['peak_anonymous']:.0f} vs {peft['peak_anonymous']:.0f}.")
            emit("")
        if r.get("ratio_bound"):
            emit(f"`{key[1]}` bound: our requests/s with no decoding step "
                 f"(encoder and cross-attention keys/values only) are "
                 f"{r['keras_prompt_encode_only_examples_per_second']:.3g}, "
                 f"{r['ratio_bound']:.2f}× PEFT's full requests: no decoding "
                 f"loop can take the ratio past that.")
            emit("")


def _bucketing_table(emit, records):
    """`benchmarks/bucketing.py speed` summary lines (the latest)."""
    summaries = [r for r in records if r.get("benchmark") == "bucketing_speed"]
    if not summaries:
        return
    r = summaries[-1]
    lengths = r.get("input_lengths") or {}
    emit("### Length buckets vs padding to the maximum vs PEFT's "
         "pad-to-longest (`bucketing.py speed`)")
    emit("")
    emit(f"`keras_prompt.train()` end to end on an SST-2-like length "
         f"distribution ({r['config']}, batch {r['batch_size']}, prompt "
         f"{r['prompt_length']}, max_input_length 256; input lengths "
         + ", ".join(f"{k} {v}" for k, v in lengths.items()
                     if not isinstance(v, (list, dict)))
         + "), and PEFT with `DataCollatorForSeq2Seq`-style padding to the "
         f"longest input of each batch; separate processes, alternating, "
         f"median over {r['rounds']} rounds.")
    emit("")
    emit("| run | examples/s | per round |")
    emit("|---|---|---|")
    names = {"buckets": "keras-prompt, length buckets (default)",
             "max": "keras-prompt, padded to max_input_length",
             "peft": "PEFT, padded to the longest in each batch"}
    for side in ("buckets", "max", "peft"):
        emit(f"| {names[side]} | {r['examples_per_second'][side]:.3g} "
             f"| {', '.join(f'{v:.3g}' for v in r['per_round'][side])} |")
    emit("")
    emit(f"Buckets / PEFT {r['buckets_over_peft']:.2f}×, buckets / max "
         f"{r['buckets_over_max']:.2f}×, max / PEFT {r['max_over_peft']:.2f}×.")
    emit("")


# Issue 13's acceptance, as ratios against the reference measured in the
# same run: vs_peft part -> the least ours / PEFT.
RATIO_TARGETS = {
    "train": 1.3,
    "generate_b8": 1.4,
    "generate_b32": 1.2,
    "multitask_keras": 3.0,
    "multitask_onnxruntime": 3.0,
}


def _ratio_targets(emit, records):
    """Issue 13's targets against PEFT, from `vs_peft.py` and
    `bucketing.py` summary lines (the latest of each)."""
    parts = {r["part"]: r for r in records
             if r.get("benchmark") == "vs_peft" and r.get("variant") == "t5"}
    buckets = [r for r in records if r.get("benchmark") == "bucketing_speed"]
    if not parts and not buckets:
        return
    emit("### Targets against PEFT, measured in the same run")
    emit("")
    emit("| target | measured | met |")
    emit("|---|---|---|")
    for part, target in RATIO_TARGETS.items():
        if part in parts:
            ratio = parts[part]["ratio"]
            bound = parts[part].get("ratio_bound")
            limit = f" (bound {bound:.2f}×)" if bound else ""
            emit(f"| {VS_PEFT_WORK[part]} ≥ {target}× PEFT | {ratio:.2f}×{limit} "
                 f"| {'yes' if ratio >= target else 'no'} |")
    if "train" in parts:
        r = parts["train"]
        ours, peft = r["keras_prompt_peak_rss_mb"], r["peft_peak_rss_mb"]
        anonymous = ""
        if r.get("keras_prompt_memory_mb") and r.get("peft_memory_mb"):
            anonymous = (
                f" (anonymous ≈ {r['keras_prompt_memory_mb']['peak_anonymous']:.0f}"
                f" vs {r['peft_memory_mb']['peak_anonymous']:.0f})")
        emit(f"| training peak RSS ≤ PEFT's | {ours:.0f} vs {peft:.0f} MB"
             f"{anonymous} | {'yes' if ours <= peft else 'no'} |")
    if buckets:
        ratio = buckets[-1]["buckets_over_peft"]
        emit(f"| SST-2-like lengths, length buckets ≥ 2× PEFT pad-to-longest "
             f"| {ratio:.2f}× | {'yes' if ratio >= 2 else 'no'} |")
    emit("")


def _load_values(load):
    """A record's load averages: a dict of them, or one number."""
    if isinstance(load, dict):
        return list(load.values())
    return [] if load is None else [load]


def render(records, aggregate="best"):
    out = []
    emit = out.append
    # `vs_peft.py`'s processes are summarized by its own table.
    measured = [r for r in records if "settings" in r
                and r.get("benchmark") != "error" and r.get("suite") != "vs_peft"]
    errors = [r for r in records if r.get("benchmark") in ("error", "runtime_error")]
    suites = [r for r in records if r.get("benchmark") == "suite"]

    # ---- header ---------------------------------------------------- #
    machine = next((r["machine"] for r in records if r.get("machine")), {})
    versions = next((r["versions"] for r in records if r.get("versions")), {})
    loads = [
        v
        for r in measured
        for v in _load_values(r.get("load_average_1m"))
        if isinstance(v, (int, float))
    ]
    for suite in suites:
        emit(f"Command: `{suite.get('command')}` ({suite.get('configurations')} "
             f"configurations, {suite.get('seconds')} s, "
             f"{suite.get('failures')} failures).")
    emit("")
    emit(
        f"Machine: {machine.get('cpu_model', '?')} "
        f"({' '.join(machine.get('cpu_flags') or []) or 'flags not recorded'}), "
        f"{machine.get('cpu_count', '?')} cores, {machine.get('memory_gb', '?')} "
        f"GB; TF_ENABLE_ONEDNN_OPTS={machine.get('TF_ENABLE_ONEDNN_OPTS')}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items() if v)
        + "."
    )
    emit("")
    if loads:
        emit(
            f"1-minute load average while measuring: {min(loads):.1f}–{max(loads):.1f} "
            "(each row gives its own). Throughput is the median over the timed "
            "steps after warm-up, with min–max in parentheses; "
            + ("the best of repeated runs is shown." if aggregate == "best"
               else "the latest run is shown.")
            + " CPU s = process CPU seconds (all threads) per step/call; the "
            "CPU-bound estimate = batch ÷ (CPU s ÷ threads) is what the row "
            "would give with its 2 cores to itself and perfect scaling — an "
            "optimistic bound, useful only for rows measured under load."
        )
        emit("")

    # ---- training -------------------------------------------------- #
    train = [r for r in measured if r["benchmark"] == "train" and _kind(r) == "train"]
    if train:
        emit("### Training (prompt tuning, `model.fit`)")
        emit("")
        emit("Batch 8 × 128 input tokens, 8 target tokens, prompt length 20, "
             "float32, Adafactor(0.3). Tokens/s counts input + target tokens. "
             "Peak RSS is the whole process (imports, model, training).")
        emit("")
        emit("| model | layout | dropout | XLA | steps/execution | examples/s | tokens/s | "
             "CPU s/step | CPU-bound estimate examples/s | first step s "
             "| retraced after warm-up | peak RSS MiB | vs reference | load |")
        emit("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        groups = _group(
            train,
            lambda r: (r["config"], -(_s(r, "dropout") or 0), _s(r, "xla"),
                       _s(r, "steps_per_execution"),
                       _s(r, "batch_size"), _s(r, "prompt_length")),
        )
        for key in sorted(groups, key=lambda k: (_config_sort(k[0]), k[1], not k[2], k[3])):
            r = _pick(groups[key], aggregate)
            cpu = (r.get("cpu_seconds_per_call") or {}).get("median")
            reference = REFERENCE["train"] if r["config"] == MAIN_CONFIG else None
            emit(
                f"| {r['config']} | {r['layout']} | {_s(r, 'dropout')} "
                f"| {'on' if _s(r, 'xla') else 'off'} "
                f"| {_s(r, 'steps_per_execution')} | {_throughput(r)} "
                f"| {_median(r, 'tokens_per_second') or 0:.4g} "
                f"| {cpu if cpu is not None else '–'} | {_estimate(r)} "
                f"| {r.get('first_call_seconds', 0):.3g} | {_retraced(r)} "
                f"| {r.get('peak_rss_mb', 0):.0f} "
                f"| {_ratio(_median(r), reference)} | {_load(r)} |"
            )
        emit("")

    # ---- forward and generation ------------------------------------ #
    fwd = [r for r in measured if r["benchmark"] == "forward" and _kind(r) == "forward"]
    gen = [r for r in measured if r["benchmark"] == "generate"]
    if fwd or gen:
        emit("### Forward pass and greedy generation (in-process Keras)")
        emit("")
        emit("Input 128 tokens, prompt 20. Forward: teacher-forced logits for 8 "
             "target tokens. Generation: `model.generate()` of 8 new tokens "
             "(greedy, the model's cached decoding loop, no early stop).")
        emit("")
        emit("| model | work | batch | XLA | examples/s | vs reference | CPU s/call "
             "| CPU-bound estimate examples/s | load |")
        emit("|---|---|---|---|---|---|---|---|---|")
        groups = _group(
            fwd + gen,
            lambda r: (r["config"], r["benchmark"], _s(r, "batch_size"), _s(r, "xla")),
        )
        for key in sorted(
            groups, key=lambda k: (_config_sort(k[0]), k[1], k[2], not k[3])
        ):
            r = _pick(groups[key], aggregate)
            reference = None
            if r["config"] == MAIN_CONFIG:
                reference = REFERENCE.get(f"{r['benchmark']}_{_s(r, 'batch_size')}")
            work = "forward" if r["benchmark"] == "forward" else "greedy 8 tokens"
            emit(
                f"| {r['config']} | {work} | {_s(r, 'batch_size')} "
                f"| {'on' if _s(r, 'xla') else 'off'} | {_throughput(r)} "
                f"| {_ratio(_median(r), reference)} | {_cpu(r)} | {_estimate(r)} "
                f"| {_load(r)} |"
            )
        emit("")

    # ---- mixed tasks ----------------------------------------------- #
    mixed = [r for r in measured if r["benchmark"] in ("mixed_forward", "mixed_generate")]
    rows = {}
    if mixed:
        emit("### Mixed-task batches")
        emit("")
        emit("Batch 32; mixed = every example carries its own prompt, drawn from "
             "a bank of 8 (forward: gathered in the graph by task id; "
             "generation: `generate(prompts=...)`); single = the model's own "
             "prompt.")
        emit("")
        emit("| model | work | single examples/s | mixed examples/s | mixed / single "
             "(wall) | mixed / single (CPU s) | timed calls each | load |")
        emit("|---|---|---|---|---|---|---|---|")
        groups = _group(mixed, lambda r: (r["config"], r["benchmark"], r.get("repeat_id")))
        pairs = _group(mixed, lambda r: (r["config"], r["benchmark"],
                                         r.get("time_utc", "")[:16]))
        for (config, bench, _), items in pairs.items():
            single = [r for r in items if _s(r, "batch") == "single"]
            mix = [r for r in items if _s(r, "batch") == "mixed"]
            if single and mix:
                ratio = _median(mix[-1]) / _median(single[-1])
                rows.setdefault((config, bench), []).append((ratio, single[-1], mix[-1]))
        for (config, bench) in sorted(rows, key=lambda k: (_config_sort(k[0]), k[1])):
            # Every measurement is a row: the ratio is noisy under load.
            for ratio, single, mix in rows[(config, bench)]:
                work = "forward" if bench == "mixed_forward" else "greedy 8 tokens"
                cpu_single = (single.get("cpu_seconds_per_call") or {}).get("median")
                cpu_mix = (mix.get("cpu_seconds_per_call") or {}).get("median")
                cpu_ratio = (
                    f"{cpu_single / cpu_mix:.3f}" if cpu_single and cpu_mix else "–"
                )
                emit(f"| {config} | {work} | {_throughput(single)} "
                     f"| {_throughput(mix)} | {ratio:.3f} | {cpu_ratio} "
                     f"| {single['seconds_per_call']['n']} | {_load(mix)} |")
        emit("")

    # ---- runtimes -------------------------------------------------- #
    runtimes = [r for r in measured if r["benchmark"] in ("runtime_forward", "runtime_generate")]
    if runtimes:
        emit("### Keras vs exported runtimes (same work, batch 8, baked prompt)")
        emit("")
        emit("Forward = logits for 8 target tokens; generation = greedy 8 new "
             "tokens. Every runtime runs the model's own layers and its one "
             "cached decoding loop (Keras: `generate()` under XLA; the exports: "
             "the same loop traced in its portable form).")
        emit("")
        emit("| model | runtime | forward examples/s | generation examples/s | "
             "forward max abs diff vs Keras | generated tokens equal to Keras | load |")
        emit("|---|---|---|---|---|---|---|")
        order = {"keras": 0, "savedmodel": 1, "onnxruntime": 2, "tflite": 3}
        groups = _group(runtimes, lambda r: (r["config"], _s(r, "runtime")))
        for key in sorted(groups, key=lambda k: (_config_sort(k[0]), order.get(k[1], 9))):
            items = groups[key]
            f = _pick([r for r in items if r["benchmark"] == "runtime_forward"], aggregate)
            g = _pick([r for r in items if r["benchmark"] == "runtime_generate"
                       and _s(r, "new_tokens", 8) == 8], aggregate)
            diff = f.get("max_abs_diff_vs_keras") if f else None
            agree = g.get("token_agreement_vs_keras") if g else None
            emit(
                f"| {key[0]} | {key[1]} | {_throughput(f) if f else '–'} "
                f"| {_throughput(g) if g else '–'} "
                f"| {'reference' if key[1] == 'keras' else (f'{diff:.1e}' if diff is not None else '–')} "
                f"| {'reference' if key[1] == 'keras' else (f'{agree:.0%}' if agree is not None else '–')} "
                f"| {_load(f or g)} |"
            )
        emit("")

        _per_token_table(emit, runtimes, aggregate)

    _baseline_table(emit, measured)
    _optimum_table(emit, records)
    _int8_tables(emit, records)
    _vs_peft_table(emit, records)
    _bucketing_table(emit, records)

    # ---- prompt length --------------------------------------------- #
    plen = [r for r in measured if _kind(r) == "prompt_length"]
    lengths = {_s(r, "prompt_length") for r in plen}
    if len(lengths) > 1:
        emit("### Prompt length")
        emit("")
        emit("Batch 8, 128 input tokens, XLA, dropout as listed in the spec. "
             "Cost per 1,000 encoder positions "
             "(input + prompt) should stay flat if the prompt costs only its "
             "length.")
        emit("")
        emit("| model | prompt length | train examples/s | train ms per 1k positions "
             "| forward examples/s | forward ms per 1k positions | load |")
        emit("|---|---|---|---|---|---|---|")
        groups = _group(plen, lambda r: (r["config"], _s(r, "prompt_length")))
        for key in sorted(groups, key=lambda k: (_config_sort(k[0]), k[1])):
            items = groups[key]
            t = _pick([r for r in items if r["benchmark"] == "train"], aggregate)
            f = _pick([r for r in items if r["benchmark"] == "forward"], aggregate)
            positions = (_s(t or f, "encoder_length") + key[1]) * _s(t or f, "batch_size")

            def per_k(r):
                if not r:
                    return "–"
                seconds = r["seconds_per_call"]["median"]
                return f"{1000 * seconds / positions * 1000:.2f}"

            emit(f"| {key[0]} | {key[1]} | {_throughput(t) if t else '–'} | {per_k(t)} "
                 f"| {_throughput(f) if f else '–'} | {per_k(f)} | {_load(t or f)} |")
        emit("")

    # ---- gradient ops ---------------------------------------------- #
    grads = [r for r in measured if r["benchmark"] == "gradient_ops"]
    if grads:
        emit("### No weight gradients for the frozen backbone")
        emit("")
        emit("Matrix multiplications of one step (batch 8 × 128, prompt 20): "
             "in the traced TensorFlow graph and in the XLA-optimized HLO that "
             "actually runs (dead code removed).")
        emit("")
        emit("| model | computation | traced-graph matmuls | XLA HLO dots | "
             "XLA dot GFLOP |")
        emit("|---|---|---|---|---|")
        for r in sorted(_group(grads, lambda r: r["config"]).items(),
                        key=lambda kv: _config_sort(kv[0])):
            r = r[1][-1]
            for name, values in r["ops"].items():
                emit(f"| {r['config']} | {name.replace('_', ' ')} "
                     f"| {values['traced_graph_matmuls']} | {values['xla_hlo_dots']} "
                     f"| {values['xla_hlo_dot_gflops']:.3g} |")
        emit("")

    # ---- targets --------------------------------------------------- #
    _ratio_targets(emit, records)
    target_rows = []
    outer_emit = emit
    emit = target_rows.append

    def best(items):
        return _pick(items, "best")

    main_trains = [r for r in train if r["config"] == MAIN_CONFIG]
    for dropout in sorted({_s(r, "dropout") for r in main_trains}, reverse=True):
        main_train = best([r for r in main_trains if _s(r, "dropout") == dropout])
        value = _median(main_train)
        emit(f"| training ≥ {TARGETS['train']:.2f} examples/s (1.5× {REFERENCE['train']}), "
             f"dropout {dropout} | {value:.3g} (best: XLA "
             f"{'on' if _s(main_train, 'xla') else 'off'}, steps/execution "
             f"{_s(main_train, 'steps_per_execution')}; load {_load(main_train)}) "
             f"| {'yes' if value >= TARGETS['train'] else 'no'} |")
    if main_trains:
        low = min(main_trains, key=lambda r: r.get("peak_rss_mb") or 1e9)
        rss = low.get("peak_rss_mb")
        emit(f"| training peak RSS ≤ 1.2 GB | {rss:.0f} MiB (lowest: dropout "
             f"{_s(low, 'dropout')}, XLA {'on' if _s(low, 'xla') else 'off'}) "
             f"| {'yes' if rss <= 1200 else 'no'} |")
    for batch in (8, 32):
        items = [r for r in gen if r["config"] == MAIN_CONFIG and _s(r, "batch_size") == batch]
        if items:
            value = _median(best(items))
            target = TARGETS[f"generate_{batch}"]
            emit(f"| greedy generation batch {batch} ≥ {target:.1f} examples/s "
                 f"(2× {REFERENCE[f'generate_{batch}']}) | {value:.3g} "
                 f"| {'yes' if value >= target else 'no'} |")
    for bench, label in (("mixed_forward", "forward"), ("mixed_generate", "generation")):
        pairs = rows.get((MAIN_CONFIG, bench), []) if mixed else []
        if pairs:
            # The measurement with the most interleaved timed calls.
            ratio, single, _ = max(
                pairs, key=lambda p: (p[1]["seconds_per_call"]["n"], p[1].get("time_utc", ""))
            )
            emit(f"| mixed-task batch ≥ 0.95× single ({label}, batch 32) | {ratio:.3f}× "
                 f"({single['seconds_per_call']['n']} interleaved calls each; load "
                 f"{_load(single)}) | {'yes' if ratio >= TARGETS['mixed'] else 'no'} |")
    ort = best([r for r in runtimes if r["config"] == MAIN_CONFIG
                and r["benchmark"] == "runtime_forward" and _s(r, "runtime") == "onnxruntime"])
    saved = best([r for r in runtimes if r["config"] == MAIN_CONFIG
                  and r["benchmark"] == "runtime_forward" and _s(r, "runtime") == "savedmodel"])
    if ort and saved:
        value = _median(ort) / _median(saved)
        emit(f"| ONNX Runtime forward ≥ 1.2× SavedModel forward | {value:.2f}× "
             f"({_median(ort):.3g} vs {_median(saved):.3g} examples/s) "
             f"| {'yes' if value >= TARGETS['onnx_over_savedmodel'] else 'no'} |")
    emit("")
    emit = outer_emit
    if any(row.startswith("|") for row in target_rows):
        emit("### Targets (t5-small-sized, original layout)")
        emit("")
        emit("| target | measured | met |")
        emit("|---|---|---|")
        out.extend(row for row in target_rows if row)
        emit("")
    if errors:
        emit("Errors:")
        for r in errors:
            emit(f"- {r.get('benchmark')} {r.get('spec') or r.get('settings')}: "
                 f"{str(r.get('error'))[-300:]}")
        emit("")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="*", default=["-"],
                        help="JSON-lines files from benchmarks.run ('-' = stdin)")
    parser.add_argument("--aggregate", choices=("best", "latest"), default="best")
    args = parser.parse_args(argv)
    print(render(load_records(args.paths), aggregate=args.aggregate))


if __name__ == "__main__":
    main()
