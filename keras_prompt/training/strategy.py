"""Resolve `--strategy auto|tpu|multi_worker|mirrored|cpu` to a
`tf.distribute.Strategy`."""

import glob
import json
import logging
import os

import tensorflow as tf

from keras_prompt.training.training_error import TrainingError

logger = logging.getLogger(__name__)

STRATEGIES = ("auto", "tpu", "multi_worker", "mirrored", "cpu")
TPU_ENV_VARS = ("TPU_NAME", "TPU_ADDRESS")


def tpu_address_from_env():
    """The TPU name/address from `TPU_NAME` or `TPU_ADDRESS`, or `None`."""
    for name in TPU_ENV_VARS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def _on_tpu_vm():
    return bool(glob.glob("/dev/accel*")) or bool(glob.glob("/dev/vfio/[0-9]*"))


def _tf_config_workers():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return 0
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise TrainingError(f"TF_CONFIG is not valid JSON: {e}.") from e
    cluster = config.get("cluster", {})
    return sum(len(cluster.get(k, [])) for k in ("chief", "worker"))


def connect_tpu(tpu=None):
    """Connect to a TPU and return a `TPUStrategy`.

    Args:
        tpu: the TPU name or `grpc://` address; `"local"` on a TPU VM. When
            `None`, `TPU_NAME`/`TPU_ADDRESS` are used, then the TPU
            resolver's own discovery.

    Raises:
        TrainingError: when no TPU can be found or reached.
    """
    address = tpu or tpu_address_from_env()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu=address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    except Exception as e:  # ValueError, NotFoundError, ...
        where = f"'{address}'" if address else (
            "(no address given; pass tpu= or set TPU_NAME)")
        raise TrainingError(
            f"strategy='tpu' was requested but no TPU could be reached at "
            f"{where}: {e}. Pass tpu=NAME_OR_GRPC_ADDRESS (or 'local' on a "
            "TPU VM) or set TPU_NAME, or use strategy='auto' to fall back to "
            "GPUs/CPU."
        ) from e
    logger.info("Connected to TPU %s with %d replicas.", address or "(auto)",
                strategy.num_replicas_in_sync)
    return strategy


def resolve_strategy(strategy="auto", tpu=None, devices=None):
    """Return the `tf.distribute.Strategy` for a strategy name.

    - `"tpu"`: `TPUStrategy` via `TPUClusterResolver` (address from `tpu`,
      else `TPU_NAME`/`TPU_ADDRESS`); a clear `TrainingError` when there is
      no TPU.
    - `"multi_worker"`: `MultiWorkerMirroredStrategy` configured from the
      `TF_CONFIG` environment variable (required).
    - `"mirrored"`: `MirroredStrategy` over `devices`, else all GPUs, else all
      logical CPU devices.
    - `"cpu"`: one CPU device.
    - `"auto"`: TPU if an address is given or found in the environment (or
      this is a TPU VM), falling back with a warning when it cannot connect;
      then multi-worker if `TF_CONFIG` lists several workers; then mirrored
      over several GPUs; else the default (single-device) strategy.

    Args:
        strategy: one of `"auto"`, `"tpu"`, `"multi_worker"`, `"mirrored"`,
            `"cpu"`, or a `tf.distribute.Strategy` (returned as is).
        tpu: optional TPU name or address.
        devices: optional device list for `"mirrored"`.

    Example:

    ```python
    strategy = resolve_strategy("auto")
    with strategy.scope():
        model = PromptedT5Seq2SeqLM.from_preset("t5_small_multi")
    ```
    """
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    if strategy not in STRATEGIES:
        raise TrainingError(
            f"Unknown strategy '{strategy}'; use one of {', '.join(STRATEGIES)}."
        )
    if strategy == "tpu":
        return connect_tpu(tpu)
    if strategy == "multi_worker":
        if _tf_config_workers() == 0:
            raise TrainingError(
                "strategy='multi_worker' needs the TF_CONFIG environment "
                "variable describing the cluster, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if strategy == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            cpus = tf.config.list_logical_devices("CPU")
            devices = [d.name for d in (gpus or cpus)]
        return tf.distribute.MirroredStrategy(devices=devices)
    if strategy == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    # auto
    address = tpu or tpu_address_from_env()
    if address or _on_tpu_vm():
        try:
            return connect_tpu(address or "local")
        except TrainingError as e:
            logger.warning("No TPU (%s); falling back.", e)
    if _tf_config_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def strategy_name(strategy):
    """A short name for logs and metrics.json."""
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        return "one_device"
    return "default"


def is_chief(strategy):
    """Whether this process should write files (the chief, or worker 0)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief
