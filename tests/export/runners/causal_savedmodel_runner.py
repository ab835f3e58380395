"""Runs a decoder-only model's SavedModel in a fresh process with only
TensorFlow and tensorflow-text: every signature on a batch and on each row
alone, and requests that must be refused. Writes the results as JSON.

Usage: python causal_savedmodel_runner.py REQUEST.json
"""

import json
import sys

import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the tokenizer's ops)
from runner_reply import write_reply


def error_text(function, **kwargs):
    try:
        function(**kwargs)
    except tf.errors.InvalidArgumentError as error:
        return error.message
    return None


def main(request_path):
    with open(request_path) as file:
        request = json.load(file)
    loaded = tf.saved_model.load(request["path"])
    signatures = loaded.signatures
    texts = request["texts"]
    ids = np.array(request["token_ids"], np.int32)
    mask = np.array(request["padding_mask"], np.int32)
    extra = {}
    if request["mode"] == "bank":
        extra = {"task": np.array(request["tasks"], object)}
    elif request["mode"] == "runtime":
        extra = {"prompts": np.array(request["prompts"], np.float32)}

    def rows(values, row):
        return {key: value[row : row + 1] for key, value in values.items()}

    def run(name, inputs):
        outputs = signatures[name](
            **{key: tf.constant(value) for key, value in inputs.items()}
        )
        return {key: value.numpy() for key, value in outputs.items()}

    token_inputs = {"token_ids": ids, "padding_mask": mask}
    text_inputs = {"inputs": np.array(texts, object)}
    reply = {"signatures": sorted(signatures), "alone": []}
    has_text = "serving_default" in signatures
    if has_text:
        reply["outputs"] = [
            text.decode("utf-8")
            for text in run("serving_default", {**text_inputs, **extra})["outputs"]
        ]
    reply["token_ids"] = run(
        "generate_ids", {**token_inputs, **extra})["new_token_ids"].tolist()
    reply["logits"] = run(
        "logits", {**token_inputs, **extra})["logits"].tolist()
    for row in range(len(texts)):
        alone_extra = rows(extra, row)
        alone = {}
        if has_text:
            alone["outputs"] = run(
                "serving_default", {**rows(text_inputs, row), **alone_extra}
            )["outputs"][0].decode("utf-8")
        reply["alone"].append({
            **alone,
            "token_ids": run(
                "generate_ids", {**rows(token_inputs, row), **alone_extra}
            )["new_token_ids"][0].tolist(),
            "logits": run(
                "logits", {**rows(token_inputs, row), **alone_extra}
            )["logits"][0].tolist(),
        })

    left_padded = mask.copy()
    shortest = int(mask.sum(axis=1).argmin())
    left_padded[shortest] = left_padded[shortest][::-1]
    out_of_range = ids.copy()
    out_of_range[1, 0] = request["vocabulary_size"]
    bad = {
        "left_padded": {"token_ids": ids, "padding_mask": left_padded},
        "out_of_range": {"token_ids": out_of_range, "padding_mask": mask},
    }
    if request.get("too_long_columns"):
        columns = request["too_long_columns"]
        bad["too_long"] = {
            "token_ids": np.zeros((len(texts), columns), np.int32),
            "padding_mask": np.ones((len(texts), columns), np.int32),
        }
    if request["mode"] == "bank":
        bad["unknown_task"] = {
            **token_inputs,
            "task": np.array(["no such task"] * len(texts), object),
        }
    reply["errors"] = {
        name: error_text(
            signatures["generate_ids"],
            **{key: tf.constant(value) for key, value in {**extra, **inputs}.items()},
        )
        for name, inputs in bad.items()
    }
    write_reply(request, reply)


if __name__ == "__main__":
    main(sys.argv[1])
