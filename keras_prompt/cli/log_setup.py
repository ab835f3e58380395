"""Quiet by default: our progress and results, not the stack's chatter.

TensorFlow's C++ logs, absl, tf2onnx INFO lines, CUDA probing and known
harmless Keras warnings are silenced where they come from (log levels,
warning filters, and the lines TensorFlow's shared libraries write to stderr
while they load); `--log-level debug` leaves all of them on.
"""

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings

# What TensorFlow's libraries print while loading, on every CPU-only
# machine: absl's pre-initialization notice, CUDA probing, CPU features.
HARMLESS_LOAD_LINES = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|"
    r"cuda_platform\.cc|cuda_executor\.cc|cpu_feature_guard\.cc|"
    r"To enable the following instructions|rebuild TensorFlow with|"
    r"oneDNN custom operations|Unable to register cu|computation placer|"
    r"TF-TRT Warning"
)
# Keras warnings that KerasHub's T5 layers trigger on every call and that
# change nothing here.
HARMLESS_WARNINGS = (
    r".*does not support masking.*",
    r".*softmax over axis -1.*",
    r".*`compile\(\)` was not called as part of model loading.*",
)


QUIETED_LOGGERS = ("tensorflow", "absl", "tf2onnx", "h5py")


@contextlib.contextmanager
def configured(level_name):
    """Within the block: keras-prompt logs at `level_name` (message only, to
    stderr) and the stack is quiet unless the level is `debug`. Loggers and
    warning filters are restored afterwards (the CLI also runs in-process,
    e.g. in tests)."""
    level = getattr(logging, level_name.upper())
    debug = level <= logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    names = ("keras_prompt",) + QUIETED_LOGGERS + ("",)
    saved = {
        name: (
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
        )
        for name in names
    }
    ours = logging.getLogger("keras_prompt")
    ours.handlers[:] = [handler]
    ours.setLevel(level)
    ours.propagate = False
    with warnings.catch_warnings():
        if debug:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
            logging.getLogger().setLevel(logging.DEBUG)
            if not logging.getLogger().handlers:
                logging.getLogger().addHandler(logging.StreamHandler())
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
            for pattern in HARMLESS_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            for name in QUIETED_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for name, (handlers, saved_level, propagate) in saved.items():
                logger = logging.getLogger(name)
                logger.handlers[:] = handlers
                logger.setLevel(saved_level)
                logger.propagate = propagate


def import_tensorflow_quietly():
    """Imports TensorFlow (and the libraries keras-prompt uses with it)
    with the load-time lines of its shared libraries dropped; any other
    line they print is passed on."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
            import keras_hub  # noqa: F401
            import tensorflow_text  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
    for line in text.splitlines():
        if line.strip() and not HARMLESS_LOAD_LINES.search(line):
            sys.stderr.write(line + "\n")
