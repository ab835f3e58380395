"""Shared benchmark helpers: threads, machine/version info, timing, records.

Everything here is cheap to import except `setup_tensorflow()`, which imports
TensorFlow and pins it to the requested number of CPU threads (it must run
before TensorFlow executes anything).
"""

import json
import os
import platform
import resource
import statistics
import sys
import time

DEFAULT_THREADS = 2
VECTOR_FLAGS = {
    "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
    "amx_tile", "amx_bf16",
}


def load_average():
    """The 1-minute load average (None where unavailable)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def current_rss_mb():
    """Current resident set size of this process in MiB (Linux)."""
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def memory_status_mb():
    """This process's memory now, in MiB (Linux `/proc/self/status`):
    `peak` (`VmHWM`), `resident` (`VmRSS`), `anonymous` (`RssAnon`: memory
    the process allocated) and `file_backed` (`RssFile`: pages of mapped
    files, mostly shared libraries, which other processes share and the
    kernel can drop and re-read). `peak_anonymous` estimates the peak of
    the process's own memory as `peak` minus the file-backed pages now,
    since those stay nearly constant once the libraries are loaded."""
    fields = {"VmHWM": "peak", "VmRSS": "resident", "RssAnon": "anonymous",
              "RssFile": "file_backed"}
    status = {}
    try:
        with open("/proc/self/status") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key in fields:
                    status[fields[key]] = int(value.split()[0]) / 1024
    except OSError:
        return None
    if "peak" in status and "file_backed" in status:
        status["peak_anonymous"] = status["peak"] - status["file_backed"]
    return status


def peak_rss_mb():
    """Peak resident set size of this process so far, in MiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss():
    """Resets the kernel's peak-RSS mark (`VmHWM`) of this process, so that
    `phase_peak_rss_mb()` measures one phase. Returns False if unsupported.
    (`ru_maxrss` of `peak_rss_mb()` is not reset.)"""
    try:
        with open("/proc/self/clear_refs", "w") as file:
            file.write("5")
        return True
    except OSError:
        return False


def phase_peak_rss_mb():
    """`VmHWM`: the peak RSS since the last `reset_peak_rss()` (Linux)."""
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def machine_info():
    """CPU model, core count, memory and OS, without importing TensorFlow."""
    info = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
    try:
        info["cpus_available"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    # The vector units the kernels choose between.
                    info["cpu_flags"] = sorted(flags & VECTOR_FLAGS)
                    break
    except OSError:
        pass
    # TensorFlow's kernel choice (None: its own default for the CPU).
    info["TF_ENABLE_ONEDNN_OPTS"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    info["memory_gb"] = round(int(line.split()[1]) / 2**20, 1)
                    break
    except OSError:
        pass
    return info


def versions():
    """Versions of the libraries that matter for the numbers."""
    import importlib.metadata as metadata

    result = {}
    for name in (
        "tensorflow",
        "keras",
        "keras-hub",
        "tensorflow-text",
        "onnxruntime",
        "tf2onnx",
        "onnx",
        "numpy",
    ):
        try:
            result[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            result[name] = None
    try:
        from keras_prompt.version import __version__

        result["keras-prompt"] = __version__
    except Exception:  # pragma: no cover - version file missing
        result["keras-prompt"] = None
    return result


def setup_tensorflow(threads=DEFAULT_THREADS):
    """Imports TensorFlow, pins it to `threads` CPU threads and returns it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # keras_prompt first: its CPU defaults (oneDNN) act before TensorFlow
    # starts, as for a user who imports keras_prompt.
    import keras_prompt  # noqa: F401
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    try:
        tf.get_logger().setLevel("ERROR")
    except Exception:
        pass
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    return tf


def summarize(seconds_per_step):
    """Median, min and max of a list of per-step times (seconds)."""
    return {
        "median": statistics.median(seconds_per_step),
        "min": min(seconds_per_step),
        "max": max(seconds_per_step),
        "n": len(seconds_per_step),
    }


def time_steps(step, warmup, steps, sync=None, cpu_times=None):
    """Runs `step()` `warmup` times untimed, then `steps` times timed.

    Args:
        step: zero-argument callable doing one unit of work.
        warmup: untimed calls first (tracing, XLA compilation, caches).
        steps: timed calls.
        sync: optional callable applied to `step()`'s result inside the
            timed region (e.g. `.numpy()`), so asynchronous work finishes
            before the clock stops.
        cpu_times: optional list; receives the process CPU seconds (all
            threads, user + system) of each timed call. Unlike wall time it
            barely grows when other processes compete for the cores.

    Returns:
        `(first_call_seconds, [wall seconds per timed call])`; the first
        call includes tracing and compilation.
    """
    first = None
    for index in range(warmup):
        start = time.perf_counter()
        result = step()
        if sync is not None:
            sync(result)
        if index == 0:
            first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        cpu_start = time.process_time()
        result = step()
        if sync is not None:
            sync(result)
        times.append(time.perf_counter() - start)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu_start)
    return first, times


def throughput(times, items_per_call):
    """Per-second throughput statistics from per-call times.

    `median` is items / median(time); `min` comes from the slowest call and
    `max` from the fastest.
    """
    stats = summarize(times)
    return {
        "median": items_per_call / stats["median"],
        "min": items_per_call / stats["max"],
        "max": items_per_call / stats["min"],
    }


def emit(record, stream=None):
    """Writes one JSON line (flushing, so a parent process sees it now)."""
    stream = stream or sys.stdout
    stream.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")
    stream.flush()


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def round_floats(value, digits=4):
    """Rounds floats in nested dicts/lists to `digits` significant digits."""
    if isinstance(value, float):
        if value == 0 or value != value:
            return value
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {key: round_floats(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_floats(item, digits) for item in value]
    return value


def ort_session(path, threads=DEFAULT_THREADS):
    """An ONNX Runtime CPU session as the references use it: `threads`
    intra-op threads, one inter-op thread, all graph optimizations."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        path, sess_options=options, providers=["CPUExecutionProvider"]
    )


def matmul_gflops(tf, size=2048, calls=20):
    """float32 matmul GFLOP/s of this process's TensorFlow (`size` x
    `size`): the machine's state when a benchmark ran (a shared host's
    speed drifts by tens of percent over an hour)."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    matmul = tf.function(tf.matmul)
    for _ in range(3):
        matmul(a, b).numpy()
    start = time.perf_counter()
    for _ in range(calls):
        result = matmul(a, b)
    result.numpy()
    return 2 * size**3 / ((time.perf_counter() - start) / calls) / 1e9
