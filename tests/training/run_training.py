"""Runs `keras_prompt.training.train` in a fresh process for the
distributed and preemption tests.

    python -m tests.training.run_training CONFIG.json RESULT.npy [--mirrored]
        [--sleep-per-step SECONDS]

CONFIG.json holds `train()` keyword arguments (including `backbone`, and
`task` as the keyword arguments of `keras_prompt.data.resolve_task`); the
final prompt is saved to RESULT.npy.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("result")
    parser.add_argument("--logical-cpus", type=int, default=0)
    parser.add_argument("--sleep-per-step", type=float, default=0.0)
    parser.add_argument("--op-determinism", action="store_true")
    args = parser.parse_args()

    import tensorflow as tf

    if args.op_determinism:
        tf.config.experimental.enable_op_determinism()

    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

    import keras
    import numpy as np

    from keras_prompt.data import resolve_task
    from keras_prompt.training.train import train

    class Sleep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(args.sleep_per_step)

    with open(args.config) as f:
        config = json.load(f)
    callbacks = [Sleep()] if args.sleep_per_step else None
    config["task"] = resolve_task(**config["task"])
    result = train(callbacks=callbacks, **config)
    np.save(args.result, result["final_prompt"])
    print("steps", result["metrics"]["steps"], "replicas",
          result["metrics"]["config"]["num_replicas"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
