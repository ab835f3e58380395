"""One benchmark measurement, run in its own process.

`python -m benchmarks.worker '<json spec>'` prints one JSON line per
measurement. `benchmarks.run` starts one worker per configuration, so that
peak RSS is per configuration and no measurement inherits another's caches,
compiled functions or memory.

A spec is a dict with `kind` (one of `KINDS`), `config` (a key of
`benchmarks.configs.MODEL_CONFIGS`) and the settings of that kind; missing
settings take `benchmarks.configs.DEFAULTS`.
"""

import json
import os
import sys
import tempfile
import time

from benchmarks import common
from benchmarks import configs
from keras_prompt.utils.cpu_defaults import resolve_jit_compile


class _Context:
    """Spec + common record fields for one worker process."""

    def __init__(self, spec):
        self.spec = dict(configs.DEFAULTS, **spec)
        self.threads = int(self.spec.get("threads", common.DEFAULT_THREADS))
        self.load_at_start = common.load_average()
        self.tf = common.setup_tensorflow(self.threads)
        self.rss_after_imports_mb = None

    def record(self, name, settings, **fields):
        spec = self.spec
        record = {
            "benchmark": name,
            "suite": spec.get("suite"),
            "config": spec["config"],
            "layout": configs.layout_name(spec["config"]),
            "model": {
                key: value
                for key, value in configs.MODEL_CONFIGS[spec["config"]].items()
            },
            "settings": dict(
                dtype=spec["dtype"], threads=self.threads, **settings
            ),
            "load_average_1m": {
                "start": self.load_at_start,
                "now": common.load_average(),
            },
            "machine": common.machine_info(),
            "versions": common.versions(),
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        record.update(fields)
        return common.round_floats(record)


def _timing_fields(
    first, times, examples_per_call, tokens_per_example=None, cpu_times=None
):
    fields = {
        "seconds_per_call": common.summarize(times),
        "first_call_seconds": first,
        "examples_per_second": common.throughput(times, examples_per_call),
    }
    if tokens_per_example:
        fields["tokens_per_second"] = common.throughput(
            times, examples_per_call * tokens_per_example
        )
    if cpu_times:
        # Process CPU seconds (all threads) per call: a load-robust view of
        # the work; with perfect scaling on `threads` cores the uncontended
        # wall time would be cpu / threads.
        fields["cpu_seconds_per_call"] = common.summarize(cpu_times)
    return fields


def _tracing_count(function):
    """How many times a `tf.function` was traced (1 = no retracing). For a
    plain Python wrapper (Keras's `train_function`), the traced functions it
    closes over are reported as a dict."""
    try:
        return int(function.experimental_get_tracing_count())
    except Exception:
        pass
    try:
        import inspect

        nonlocals = inspect.getclosurevars(function).nonlocals
    except Exception:
        return None
    counts = {}
    for name, value in nonlocals.items():
        if hasattr(value, "experimental_get_tracing_count"):
            counts[name] = int(value.experimental_get_tracing_count())
        elif callable(value) and hasattr(value, "__closure__"):
            inner = _tracing_count(value)
            if isinstance(inner, dict):
                counts.update({f"{name}.{k}": v for k, v in inner.items()})
            elif inner is not None:
                counts[name] = inner
    return counts or None


# --------------------------------------------------------------------- #
# Training.
# --------------------------------------------------------------------- #
def _train_dataset(tf, spec, vocab, batch_size=None, prompt_length=None):
    """An in-memory `tf.data` pipeline with static shapes: no Python per
    step, no host round trip (prefetched, `drop_remainder=True`)."""
    batch_size = batch_size or spec["batch_size"]
    x, y = configs.training_batch(
        batch_size * 4, spec["encoder_length"], spec["decoder_length"], vocab
    )
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    return (
        dataset.repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def _fit_timed(ctx, model, dataset, warmup, steps):
    """Runs `model.fit` and times each execution (`steps_per_execution`
    steps) from one `on_train_batch_end` to the next."""
    import keras

    stamps = []
    cpu_stamps = []
    tracings_after_warmup = []

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            stamps.append(time.perf_counter())
            cpu_stamps.append(time.process_time())

        def on_train_batch_end(self, batch, logs=None):
            if logs and "loss" in logs:
                float(logs["loss"])  # forces the step to finish
            stamps.append(time.perf_counter())
            cpu_stamps.append(time.process_time())
            if len(stamps) == warmup + 1:
                tracings_after_warmup.append(_tracing_count(model.train_function))

    spe = int(ctx.spec.get("steps_per_execution", 1))
    executions = warmup + steps
    history = model.fit(
        dataset,
        epochs=1,
        steps_per_epoch=executions * spe,
        verbose=0,
        callbacks=[Timer()],
    )
    deltas = [b - a for a, b in zip(stamps, stamps[1:])]
    cpu_deltas = [b - a for a, b in zip(cpu_stamps, cpu_stamps[1:])]
    first = deltas[0]
    times = [delta / spe for delta in deltas[warmup:]]
    cpu_times = [delta / spe for delta in cpu_deltas[warmup:]]
    ctx.tracings_after_warmup = (tracings_after_warmup or [None])[0]
    return first, times, cpu_times


def measure_train(ctx):
    """Training examples/s and tokens/s with `model.fit`, and peak RSS."""
    tf = ctx.tf
    spec = ctx.spec
    model = configs.build_model(
        spec["config"], spec["prompt_length"], dropout=spec.get("dropout")
    )
    spe = int(spec.get("steps_per_execution", 1))
    # Without "xla" in the spec: compile()'s default.
    model.compile(jit_compile=spec.get("xla", "auto"), steps_per_execution=spe)
    xla = bool(model.jit_compile)
    vocab = configs.vocabulary_size(spec["config"])
    dataset = _train_dataset(tf, spec, vocab)
    rss_before = common.current_rss_mb()
    peak_before_training = common.peak_rss_mb()
    common.reset_peak_rss()
    backbone_before = [w.numpy().sum() for w in model.backbone.weights[:3]]
    first, times, cpu_times = _fit_timed(
        ctx, model, dataset, int(spec.get("warmup", 2)), int(spec.get("steps", 10))
    )
    frozen = all(
        float(a) == float(w.numpy().sum())
        for a, w in zip(backbone_before, model.backbone.weights[:3])
    )
    tokens = spec["encoder_length"] + spec["decoder_length"]
    settings = {
        key: spec[key]
        for key in ("batch_size", "encoder_length", "decoder_length", "prompt_length")
    }
    settings.update(
        xla=xla,
        steps_per_execution=spe,
        optimizer="Adafactor(0.3)",
        dropout=model.backbone.dropout,
    )
    common.emit(
        ctx.record(
            "train",
            settings,
            **_timing_fields(
                first, times, spec["batch_size"], tokens, cpu_times=cpu_times
            ),
            seconds_per_step=common.summarize(times),
            tokens_counted="encoder + decoder tokens (prompt excluded)",
            trainable_parameters=int(
                sum(int(w.numpy().size) for w in model.trainable_weights)
            ),
            backbone_unchanged=frozen,
            train_function_tracings=_tracing_count(model.train_function),
            train_function_tracings_after_warmup=ctx.tracings_after_warmup,
            rss_before_training_mb=rss_before,
            peak_rss_before_training_mb=peak_before_training,
            peak_rss_during_training_mb=common.phase_peak_rss_mb(),
            peak_rss_mb=common.peak_rss_mb(),
            memory_at_end_mb=common.memory_status_mb(),
        )
    )


# --------------------------------------------------------------------- #
# Forward and generation (in-process Keras).
# --------------------------------------------------------------------- #
def _forward_function(tf, model, xla):
    return tf.function(
        lambda inputs: model(inputs, training=False), jit_compile=xla
    )


def _to_tensors(tf, batch):
    return {key: tf.constant(value) for key, value in batch.items()}


def measure_forward(ctx):
    """Teacher-forced forward pass (logits) examples/s."""
    tf = ctx.tf
    spec = ctx.spec
    model = configs.build_model(spec["config"], spec["prompt_length"])
    xla = resolve_jit_compile(spec.get("xla", "auto"))
    vocab = configs.vocabulary_size(spec["config"])
    x, _ = configs.training_batch(
        spec["batch_size"], spec["encoder_length"], spec["decoder_length"], vocab
    )
    inputs = _to_tensors(tf, x)
    forward = _forward_function(tf, model, xla)
    cpu_times = []
    first, times = common.time_steps(
        lambda: forward(inputs),
        int(spec.get("warmup", 2)),
        int(spec.get("steps", 10)),
        sync=lambda logits: logits.numpy(),
        cpu_times=cpu_times,
    )
    settings = {
        key: spec[key]
        for key in ("batch_size", "encoder_length", "decoder_length", "prompt_length")
    }
    settings.update(xla=xla)
    common.emit(
        ctx.record(
            "forward",
            settings,
            **_timing_fields(first, times, spec["batch_size"], cpu_times=cpu_times),
            tracings=_tracing_count(forward),
            peak_rss_mb=common.peak_rss_mb(),
        )
    )


def _generate_timed(ctx, model, batch, prompts=None):
    spec = ctx.spec

    def step():
        return model.generate(batch, stop_token_ids=None, prompts=prompts)

    cpu_times = []
    first, times = common.time_steps(
        step, int(spec.get("warmup", 2)), int(spec.get("steps", 10)),
        cpu_times=cpu_times,
    )
    return first, times, cpu_times, step()


def measure_generate(ctx):
    """Greedy generation of `new_tokens` tokens (the model's one cached
    decoding loop) examples/s, through the public `model.generate()`."""
    spec = ctx.spec
    model = configs.build_model(spec["config"], spec["prompt_length"])
    model.compile(jit_compile=spec.get("xla", "auto"))
    xla = bool(model.jit_compile)
    new_tokens = int(spec.get("new_tokens", 8))
    vocab = configs.vocabulary_size(spec["config"])
    batch = configs.generation_batch(
        spec["batch_size"], spec["encoder_length"], new_tokens, vocab
    )
    first, times, cpu_times, output = _generate_timed(ctx, model, batch)
    settings = {
        key: spec[key] for key in ("batch_size", "encoder_length", "prompt_length")
    }
    settings.update(xla=xla, new_tokens=new_tokens, sampler="greedy", cached=True)
    common.emit(
        ctx.record(
            "generate",
            settings,
            **_timing_fields(first, times, spec["batch_size"], cpu_times=cpu_times),
            generated_shape=list(output["decoder_token_ids"].shape),
            tracings=_tracing_count(model.generate_function),
            peak_rss_mb=common.peak_rss_mb(),
        )
    )


def measure_mixed(ctx):
    """Mixed-task batch (each example's prompt gathered from a bank of
    `num_tasks` prompts) vs a single-task batch of the same size: forward
    and greedy generation."""
    import numpy as np

    tf = ctx.tf
    spec = ctx.spec
    model = configs.build_model(spec["config"], spec["prompt_length"])
    model.compile(jit_compile=spec.get("xla", "auto"))
    xla = bool(model.jit_compile)
    num_tasks = int(spec.get("num_tasks", 8))
    batch_size = spec["batch_size"]
    new_tokens = int(spec.get("new_tokens", 8))
    vocab = configs.vocabulary_size(spec["config"])
    rng = np.random.default_rng(0)
    bank = rng.uniform(
        -0.5, 0.5, (num_tasks, spec["prompt_length"], model.hidden_dim)
    ).astype("float32")
    task_ids = np.arange(batch_size) % num_tasks
    rng.shuffle(task_ids)
    warmup, steps = int(spec.get("warmup", 2)), int(spec.get("steps", 10))
    settings = {
        key: spec[key]
        for key in ("batch_size", "encoder_length", "decoder_length", "prompt_length")
    }
    settings.update(xla=xla, num_tasks=num_tasks, new_tokens=new_tokens)

    # Forward: the bank lives in the graph; the task ids are the input.
    x, _ = configs.training_batch(
        batch_size, spec["encoder_length"], spec["decoder_length"], vocab
    )
    inputs = _to_tensors(tf, x)
    bank_tensor = tf.constant(bank)

    single = tf.function(lambda i: model(i, training=False), jit_compile=xla)

    def mixed_fn(i, ids):
        prompts = tf.gather(bank_tensor, ids)
        return model.forward(i, prompts=prompts, training=False)

    mixed = tf.function(mixed_fn, jit_compile=xla)
    ids = tf.constant(task_ids, tf.int32)
    rounds = int(spec.get("rounds", 2))
    _compare_single_and_mixed(
        ctx, "mixed_forward", settings, batch_size, rounds, warmup, steps,
        single=lambda: single(inputs), mixed=lambda: mixed(inputs, ids),
        sync=lambda logits: logits.numpy(),
    )

    # Generation through model.generate(prompts=...).
    batch = configs.generation_batch(
        batch_size, spec["encoder_length"], new_tokens, vocab
    )
    prompts = bank[task_ids]
    _compare_single_and_mixed(
        ctx, "mixed_generate", settings, batch_size, rounds, warmup, steps,
        single=lambda: model.generate(batch, stop_token_ids=None),
        mixed=lambda: model.generate(batch, stop_token_ids=None, prompts=prompts),
    )


def _compare_single_and_mixed(ctx, kind, settings, batch_size, rounds, warmup,
                              steps, single, mixed, sync=None):
    """Times `single` and `mixed` interleaved (ABBA...) so that load changes
    hit both alike; emits one record each and their throughput ratio."""
    results = {}
    for round_index in range(rounds):
        pair = (("single", single), ("mixed", mixed))
        for name, step in pair if round_index % 2 == 0 else pair[::-1]:
            cpu_times = []
            first, times = common.time_steps(
                step, warmup if round_index == 0 else 1, steps, sync=sync,
                cpu_times=cpu_times,
            )
            results.setdefault(name, {"times": [], "cpu": [], "first": first})
            results[name]["times"] += times
            results[name]["cpu"] += cpu_times
    for name in ("single", "mixed"):
        common.emit(
            ctx.record(
                kind,
                dict(settings, batch=name),
                **_timing_fields(
                    results[name]["first"], results[name]["times"], batch_size,
                    cpu_times=results[name]["cpu"],
                ),
            )
        )
    ratio = common.summarize(results["single"]["times"])["median"] / common.summarize(
        results["mixed"]["times"]
    )["median"]
    common.emit(
        ctx.record(
            f"{kind}_ratio",
            settings,
            mixed_over_single_throughput=ratio,
            target=">= 0.95",
            met=ratio >= 0.95,
            peak_rss_mb=common.peak_rss_mb(),
        )
    )


# --------------------------------------------------------------------- #
# Keras vs SavedModel vs ONNX Runtime vs TFLite.
# --------------------------------------------------------------------- #
def _tflite_runner(path, threads):
    import warnings

    tf = __import__("tensorflow")
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=path, num_threads=threads)
    return interpreter.get_signature_runner()


def measure_runtimes(ctx):
    """The same work (teacher-forced logits; greedy generation of
    `new_tokens` tokens) in-process in Keras and through the exported
    SavedModel, ONNX Runtime and TFLite (baked prompt)."""
    import numpy as np

    import keras_prompt.export as export

    tf = ctx.tf
    spec = ctx.spec
    model = configs.build_model(spec["config"], spec["prompt_length"])
    model.compile()  # as a user gets it (jit_compile="auto")
    xla = bool(model.jit_compile)
    new_tokens = int(spec.get("new_tokens", 8))
    max_decode_length = new_tokens + 1
    batch_size = spec["batch_size"]
    vocab = configs.vocabulary_size(spec["config"])
    warmup, steps = int(spec.get("warmup", 2)), int(spec.get("steps", 10))
    runtimes = spec.get("runtimes", ["keras", "savedmodel", "onnxruntime", "tflite"])
    graphs = spec.get("graphs", ["forward", "generate"])
    x, _ = configs.training_batch(
        batch_size, spec["encoder_length"], spec["decoder_length"], vocab
    )
    gen = configs.generation_batch(
        batch_size, spec["encoder_length"], new_tokens, vocab
    )
    encoder_feed = {
        "encoder_token_ids": x["encoder_token_ids"],
        "encoder_padding_mask": x["encoder_padding_mask"],
    }
    settings = {
        key: spec[key]
        for key in ("batch_size", "encoder_length", "decoder_length", "prompt_length")
    }
    settings.update(prompt_mode="baked", new_tokens=new_tokens)
    workdir = tempfile.mkdtemp(prefix="keras_prompt_bench_")
    reference = {}

    def run(runtime, graph, step, sync, extra_settings, **fields):
        cpu_times = []
        first, times = common.time_steps(
            step, warmup, steps, sync=sync, cpu_times=cpu_times
        )
        output = step()
        common.emit(
            ctx.record(
                f"runtime_{graph}",
                dict(settings, runtime=runtime, **extra_settings),
                **_timing_fields(first, times, batch_size, cpu_times=cpu_times),
                **fields,
                **_agreement(graph, output),
            )
        )

    def _agreement(graph, output):
        output = np.asarray(output)
        if graph not in reference:
            reference[graph] = output
            return {}
        if graph == "forward":
            return {"max_abs_diff_vs_keras": float(np.max(np.abs(output - reference[graph])))}
        return {"token_agreement_vs_keras": float(np.mean(output == reference[graph]))}

    for runtime in runtimes:
        start = time.perf_counter()
        try:
            if runtime == "keras":
                if "forward" in graphs:
                    inputs = _to_tensors(tf, x)
                    forward = _forward_function(tf, model, xla)
                    run("keras", "forward", lambda: forward(inputs),
                        lambda r: r.numpy(), {"xla": xla})
                if "generate" in graphs:
                    run("keras", "generate",
                        lambda: model.generate(gen, stop_token_ids=None)["decoder_token_ids"],
                        None, {"xla": xla,
                               "compile_decoding_loop": model.compile_decoding_loop,
                               "decoding": "cached (one loop)"})
            elif runtime == "savedmodel":
                path = export.export_saved_model(
                    model, workdir, mode="baked", model_name="bench",
                    max_decode_length=max_decode_length, text_signature=False,
                )
                export_seconds = time.perf_counter() - start
                loaded = tf.saved_model.load(path)
                if "forward" in graphs:
                    logits_fn = loaded.signatures["logits"]
                    inputs = _to_tensors(tf, x)
                    run("savedmodel", "forward",
                        lambda: logits_fn(**inputs)["logits"],
                        lambda r: r.numpy(), {}, export_seconds=export_seconds)
                if "generate" in graphs:
                    generate_fn = loaded.signatures["generate_ids"]
                    inputs = _to_tensors(tf, encoder_feed)
                    run("savedmodel", "generate",
                        lambda: generate_fn(**inputs)["token_ids"].numpy(),
                        None, {"decoding": "cached (one loop)"},
                        export_seconds=export_seconds)
            elif runtime == "onnxruntime":
                for graph in graphs:
                    path = os.path.join(workdir, f"{graph}.onnx")
                    start = time.perf_counter()
                    export.export_onnx(
                        model, path, mode="baked", graph=graph,
                        max_decode_length=max_decode_length,
                    )
                    export_seconds = time.perf_counter() - start
                    session = common.ort_session(path, ctx.threads)
                    feed = dict(x) if graph == "forward" else dict(encoder_feed)
                    output_name = "logits" if graph == "forward" else "token_ids"
                    run("onnxruntime", graph,
                        lambda: session.run([output_name], feed)[0], None,
                        {"decoding": "cached (one loop)"} if graph == "generate" else {},
                        export_seconds=export_seconds,
                        file_mb=os.path.getsize(path) / 2**20)
                    del session
            elif runtime == "tflite":
                for graph in graphs:
                    path = os.path.join(workdir, f"{graph}.tflite")
                    start = time.perf_counter()
                    export.export_tflite(
                        model, path, mode="baked", graph=graph,
                        batch_size=batch_size,
                        encoder_sequence_length=spec["encoder_length"],
                        decoder_sequence_length=spec["decoder_length"],
                        max_decode_length=max_decode_length,
                    )
                    export_seconds = time.perf_counter() - start
                    runner = _tflite_runner(path, ctx.threads)
                    feed = dict(x) if graph == "forward" else dict(encoder_feed)
                    output_name = "logits" if graph == "forward" else "token_ids"
                    run("tflite", graph,
                        lambda: runner(**feed)[output_name], None,
                        {"decoding": "cached (one loop)"} if graph == "generate" else {},
                        export_seconds=export_seconds,
                        file_mb=os.path.getsize(path) / 2**20)
                    del runner
            else:
                raise ValueError(f"unknown runtime {runtime!r}")
        except Exception as error:  # report and go on with the others
            common.emit(
                ctx.record(
                    "runtime_error",
                    dict(settings, runtime=runtime),
                    error=f"{type(error).__name__}: {error}"[:2000],
                )
            )


# --------------------------------------------------------------------- #
# Prompt length.
# --------------------------------------------------------------------- #
def measure_prompt_length(ctx):
    """Training step and forward cost at each of `prompt_lengths` (one
    process; a fresh model per length). The report divides by
    `encoder_length + prompt_length` to check that cost grows with the
    encoder sequence, no more."""
    base = dict(ctx.spec)
    for prompt_length in base.get("prompt_lengths", [base["prompt_length"]]):
        ctx.spec = dict(base, prompt_length=int(prompt_length))
        measure_train(ctx)
        measure_forward(ctx)
    ctx.spec = base


# --------------------------------------------------------------------- #
# No weight gradients for the frozen backbone.
# --------------------------------------------------------------------- #
def measure_gradient_ops(ctx):
    """Counts matrix multiplications of the loss, of the prompt-tuning
    gradient and of a full fine-tuning gradient: in the traced TF graph
    (before pruning) and in XLA's optimized HLO (what runs). Prompt tuning
    should cost about 2x the forward dots (activations' gradients only),
    full fine-tuning about 3x (plus every weight's gradient)."""
    import collections
    import re

    import keras

    tf = ctx.tf
    spec = ctx.spec
    model = configs.build_model(spec["config"], spec["prompt_length"])
    vocab = configs.vocabulary_size(spec["config"])
    x, y = configs.training_batch(
        spec["batch_size"], spec["encoder_length"], spec["decoder_length"], vocab
    )
    inputs = _to_tensors(tf, x)
    targets = tf.constant(y)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, ignore_class=0
    )

    def loss_only(i, t):
        return loss_fn(t, model(i, training=True))

    def prompt_gradient(i, t):
        with tf.GradientTape() as tape:
            loss = loss_fn(t, model(i, training=True))
        return tape.gradient(loss, model.trainable_weights)

    def full_gradient(i, t):
        weights = [w.value for w in model.backbone.weights] + [
            model.prompt_layer.prompt.value
        ]
        with tf.GradientTape() as tape:
            tape.watch(weights)
            loss = loss_fn(t, model(i, training=True))
        return tape.gradient(loss, weights)

    def hlo_dot_flops(hlo):
        """Sum over `dot` ops of 2 * output elements * contracted size."""
        shapes = {
            name: [int(d) for d in dims.split(",") if d]
            for name, dims in re.findall(r"%([\w.\-]+) = f32\[([0-9,]*)\]", hlo)
        }
        total = 0
        for out, lhs, contracting in re.findall(
            r"= f32\[([0-9,]*)\]\S* dot\(%([\w.\-]+), [^)]*\),.*?"
            r"lhs_contracting_dims=\{([0-9,]*)\}",
            hlo,
        ):
            count = 1
            for dim in out.split(","):
                count *= int(dim) if dim else 1
            size = 1
            for dim in contracting.split(","):
                if dim and lhs in shapes:
                    size *= shapes[lhs][int(dim)]
            total += 2 * count * size
        return total

    results = {}
    for name, fn in (
        ("forward_loss", loss_only),
        ("prompt_tuning_gradient", prompt_gradient),
        ("full_finetuning_gradient", full_gradient),
    ):
        graph = tf.function(fn).get_concrete_function(inputs, targets).graph
        counts = collections.Counter(op.type for op in graph.get_operations())
        hlo = tf.function(fn, jit_compile=True).experimental_get_compiler_ir(
            inputs, targets
        )(stage="optimized_hlo")
        results[name] = {
            "traced_graph_matmuls": counts["MatMul"] + counts["BatchMatMulV2"]
            + counts["Einsum"],
            "xla_hlo_dots": len(re.findall(r" dot\(", hlo)),
            "xla_hlo_dot_gflops": hlo_dot_flops(hlo) / 1e9,
        }
    forward = results["forward_loss"]["xla_hlo_dots"]
    settings = {
        key: spec[key]
        for key in ("batch_size", "encoder_length", "decoder_length", "prompt_length")
    }
    common.emit(
        ctx.record(
            "gradient_ops",
            settings,
            ops=results,
            prompt_over_forward_dots=results["prompt_tuning_gradient"]["xla_hlo_dots"]
            / forward,
            full_over_forward_dots=results["full_finetuning_gradient"]["xla_hlo_dots"]
            / forward,
            backbone_tf_variables_trainable=bool(
                getattr(model.backbone.weights[0].value, "trainable", None)
            ),
        )
    )


def measure_multitask_serving(ctx):
    """Requests of several tasks served together: `requests` examples spread
    evenly over `num_tasks` task prompts (a bank), greedy generation of
    `new_tokens` tokens for all of them in ONE `model.generate(...,
    tasks=...)` call (the public path; each row gathers its task's prompt).
    `benchmarks/reference/peft_multitask.py` serves the same requests with
    PEFT, one `set_adapter` + `generate` per task. In Keras it also times
    the same call with no decoding step (`encode_only_seconds_per_call`):
    the encoder and the cross-attention keys and values, the floor under
    any decoding loop."""
    import numpy as np

    spec = ctx.spec
    model = configs.build_model(spec["config"], spec["prompt_length"])
    model.compile(jit_compile=spec.get("xla", "auto"))
    requests = int(spec.get("requests", 32))
    num_tasks = int(spec.get("num_tasks", 8))
    new_tokens = int(spec.get("new_tokens", 8))
    runtime = spec.get("runtime", "keras")
    rng = np.random.default_rng(0)
    bank = {
        f"task{task}": rng.uniform(
            -0.5, 0.5, (spec["prompt_length"], model.hidden_dim)
        ).astype("float32")
        for task in range(num_tasks)
    }
    task_ids = np.arange(requests, dtype="int32") % num_tasks
    rng.shuffle(task_ids)
    batch = configs.generation_batch(
        requests, spec["encoder_length"], new_tokens,
        configs.vocabulary_size(spec["config"]))
    settings = {key: spec[key] for key in ("encoder_length", "prompt_length")}
    settings.update(runtime=runtime, requests=requests, num_tasks=num_tasks,
                    new_tokens=new_tokens, calls_per_round=1)
    if runtime == "keras":
        for name, prompt in bank.items():
            model.prompt_bank.add(name, prompt)
        tasks = [f"task{number}" for number in task_ids]
        settings.update(xla=bool(model.jit_compile))

        def serve():
            return model.generate(
                batch, stop_token_ids=None, tasks=tasks)["decoder_token_ids"]

        # The same requests with no decoding step: the encoder and the
        # cross-attention keys and values, which bound any decoding loop.
        encode_batch = configs.generation_batch(
            requests, spec["encoder_length"], 0,
            configs.vocabulary_size(spec["config"]))
        _, encode_times = common.time_steps(
            lambda: model.generate(encode_batch, stop_token_ids=None, tasks=tasks),
            int(spec.get("warmup", 2)), int(spec.get("steps", 5)))
        extra_fields = {"encode_only_seconds_per_call": common.summarize(encode_times)}
    elif runtime == "onnxruntime":
        # The bank exported as ONNX Runtime serves it: the same loop, the
        # task id an input.
        import keras_prompt.export as export

        path = os.path.join(tempfile.mkdtemp(prefix="keras_prompt_bench_"),
                            "bank_generate.onnx")
        export.export_onnx(model, path, mode="bank", prompts=bank,
                           graph="generate", max_decode_length=new_tokens + 1)
        session = common.ort_session(path, ctx.threads)
        feed = {
            "encoder_token_ids": batch["encoder_token_ids"],
            "encoder_padding_mask": batch["encoder_padding_mask"],
            "task": task_ids,
        }

        def serve():
            return session.run(["token_ids"], feed)[0]

        extra_fields = {}
    else:
        raise ValueError(f"unknown runtime {runtime!r}")

    cpu_times = []
    first, times = common.time_steps(
        serve, int(spec.get("warmup", 2)), int(spec.get("steps", 5)),
        cpu_times=cpu_times)
    common.emit(
        ctx.record(
            "multitask_serving",
            settings,
            **_timing_fields(first, times, requests, cpu_times=cpu_times),
            generated_shape=list(np.shape(serve())),
            peak_rss_mb=common.peak_rss_mb(),
            **extra_fields,
        )
    )


KINDS = {
    "train": measure_train,
    "forward": measure_forward,
    "generate": measure_generate,
    "mixed": measure_mixed,
    "runtimes": measure_runtimes,
    "prompt_length": measure_prompt_length,
    "gradient_ops": measure_gradient_ops,
    "multitask_serving": measure_multitask_serving,
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m benchmarks.worker '<json spec>'")
    spec = json.loads(argv[0])
    kind = spec.get("kind")
    if kind not in KINDS:
        sys.exit(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    ctx = _Context(spec)
    KINDS[kind](ctx)


if __name__ == "__main__":
    main()
