"""How keras-prompt runs TensorFlow on CPUs: oneDNN kernels, XLA only for
the decoding loop.

Both choices come from measurements on 2-core machines
(`benchmarks/results/`): TensorFlow's oneDNN kernels train a t5-small-sized
prompt 17% faster than its Eigen kernels (AMD EPYC, AVX-512). XLA:CPU
trains no faster than those kernels at any size measured (the demo
backbone: 98 ms per step without XLA, 106 with; t5-small: within the
run-to-run noise) and holds 500 MB more memory, while it speeds up the
decoding loop, whose steps are hundreds of small ops, by about 10%.
"""

import logging
import os
import sys

logger = logging.getLogger(__name__)

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"



def request_onednn():
    """Asks TensorFlow for its oneDNN kernels, if it has not started yet.

    TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported, and
    leaves oneDNN off by default on CPUs without AVX-512 VNNI (e.g. AMD EPYC
    with AVX2). An explicit value in the environment wins.

    Returns:
        True if oneDNN will be on or was already requested, False if
        TensorFlow already runs (then `onednn_enabled()` tells the state).
    """
    if "tensorflow" in sys.modules:
        return os.environ.get(ONEDNN_VARIABLE) == "1"
    os.environ.setdefault(ONEDNN_VARIABLE, "1")
    return os.environ[ONEDNN_VARIABLE] == "1"


def onednn_enabled():
    """Whether this process's TensorFlow runs its oneDNN kernels."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def has_accelerator():
    """Whether TensorFlow sees a GPU or TPU."""
    import tensorflow as tf

    return bool(
        tf.config.list_logical_devices("GPU")
        or tf.config.list_logical_devices("TPU")
    )


def warn_if_onednn_off():
    """Logs a warning (with the fix) when TensorFlow runs on CPU without
    oneDNN; returns whether oneDNN is on."""
    if onednn_enabled() or has_accelerator():
        return True
    logger.warning(
        "TensorFlow started with %s=%s: its oneDNN kernels are off, and CPU "
        "training runs about 15%% slower. Set %s=1 before TensorFlow is "
        "imported (the keras-prompt command and `import keras_prompt` "
        "before TensorFlow do), or 0 to keep them off and silence this.",
        ONEDNN_VARIABLE, os.environ.get(ONEDNN_VARIABLE, "unset"),
        ONEDNN_VARIABLE,
    )
    return False


def xla_by_default():
    """The `jit_compile` that `"auto"` means: XLA on GPUs and TPUs, not on
    CPUs (where `compile()` still runs the decoding loop under XLA).

    Example:
    ```python
    model.compile(jit_compile=xla_by_default())
    ```
    """
    return has_accelerator()


def resolve_jit_compile(jit_compile):
    """`jit_compile` as a bool: `"auto"` by `xla_by_default()`, booleans as
    given; anything else raises `ValueError` naming it."""
    if jit_compile == "auto":
        return xla_by_default()
    if isinstance(jit_compile, bool):
        return jit_compile
    raise ValueError(
        f"jit_compile must be True, False or 'auto', got {jit_compile!r}."
    )
