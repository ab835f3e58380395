"""Runs keras-prompt TFLite exports with a LiteRT interpreter (ai_edge_litert
if installed, else tf.lite) and writes the results as JSON.

Usage: python tflite_runner.py REQUEST.json
"""

import json
import sys
import warnings

import bad_inputs
import numpy as np
from runner_reply import write_reply

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:
    import tensorflow as tf

    Interpreter = tf.lite.Interpreter


def error_text(function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - report any failure
        return f"{type(error).__name__}: {error}"
    return None


def main(request_path):
    with open(request_path) as file:
        request = json.load(file)
    batch = {
        key: np.asarray(value, np.int32)
        for key, value in request["batch"].items()
    }
    task_ids = np.asarray(request["task_ids"], np.int32)
    prompts = np.asarray(request["prompts"], np.float32)
    reply = {}
    for key, entry in request["models"].items():
        mode, graph = entry["mode"], entry["graph"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interpreter = Interpreter(model_path=entry["path"])
        runner = interpreter.get_signature_runner()
        details = runner.get_input_details()
        output = "logits" if graph == "forward" else "token_ids"
        feed = {name: batch[name] for name in details if name in batch}
        if mode == "bank":
            feed["task"] = task_ids
        elif mode == "runtime":
            feed["prompts"] = prompts
        result = {
            "inputs": sorted(details),
            "shapes": {
                name: [int(d) for d in value["shape"]]
                for name, value in details.items()
            },
        }
        if entry.get("batch_size") == 1:
            # One example at a time, each with its own task.
            result["alone"] = [
                runner(**{k: v[i : i + 1] for k, v in feed.items()})[output][
                    0
                ].tolist()
                for i in range(len(task_ids))
            ]
            reply[key] = result
            continue
        result["out"] = runner(**feed)[output].tolist()
        result["bad_inputs"] = {}
        for name, (broken, expected, _, _) in bad_inputs.cases(
            feed,
            request["vocabulary_size"],
            request["num_tasks"],
            fixed_batch=True,
        ).items():
            outputs = runner(**broken)
            result["bad_inputs"][name] = {
                "out": outputs[output].tolist(),
                "invalid_inputs": outputs["invalid_inputs"].tolist(),
                "expected": expected,
            }
        if mode == "bank":
            # The same examples with the tasks permuted: rows must follow
            # their own task, whatever the batch mixes.
            order = np.roll(np.arange(len(task_ids)), 1)
            permuted = {k: v[order] for k, v in feed.items()}
            result["permuted_order"] = order.tolist()
            result["permuted"] = runner(**permuted)[output].tolist()
        if mode == "runtime":
            wrong = np.zeros(
                (len(task_ids), prompts.shape[1] + 1, prompts.shape[2]),
                np.float32,
            )
            result["wrong_shape_error"] = error_text(
                runner, **{**feed, "prompts": wrong}
            )
        reply[key] = result
    write_reply(request, reply)


if __name__ == "__main__":
    main(sys.argv[1])
