"""Runs a keras-prompt SavedModel's ensemble signatures in a fresh process
with only TensorFlow and tensorflow-text, and writes the results as JSON.

Usage: python ensemble_runner.py REQUEST.json
"""

import importlib
import json
import os
import sys

import tensorflow as tf
from runner_reply import write_reply
from savedmodel_runner import error_text

# Registers the SentencePiece ops.
importlib.import_module("tensorflow_text")


def plain(outputs):
    reply = {}
    for name, value in outputs.items():
        value = value.numpy()
        if value.dtype == object:
            value = [v.decode("utf-8") for v in value.tolist()]
        else:
            value = value.tolist()
        reply[name] = value
    return reply


def replay_warmup(path, signatures):
    """The ensemble signatures' TF Serving warm-up requests, replayed:
    `{signature: output shapes}`."""
    # Imported here: loading and running the SavedModel needs only
    # tensorflow and tensorflow_text.
    from tensorflow_serving.apis import prediction_log_pb2

    replayed = {}
    records = tf.data.TFRecordDataset(
        os.path.join(path, "assets.extra", "tf_serving_warmup_requests")
    )
    for record in records:
        request = prediction_log_pb2.PredictionLog.FromString(
            record.numpy()
        ).predict_log.request
        name = request.model_spec.signature_name
        if name.startswith("ensemble_"):
            inputs = {
                key: tf.constant(tf.make_ndarray(proto))
                for key, proto in request.inputs.items()
            }
            replayed[name] = {
                key: value.shape.as_list()
                for key, value in signatures[name](**inputs).items()
            }
    return replayed


def main(request_path):
    with open(request_path) as file:
        request = json.load(file)
    signatures = tf.saved_model.load(request["path"]).signatures
    texts = tf.constant(request["texts"])
    encoder = {
        key: tf.constant(value, tf.int32)
        for key, value in request["encoder"].items()
    }
    task = tf.constant(request["task"])
    reply = {
        "signatures": sorted(signatures),
        "text": plain(signatures["ensemble_text"](inputs=texts, task=task)),
        "ids": plain(signatures["ensemble_ids"](**encoder, task=task)),
        "by_task_id": plain(
            signatures["ensemble_text"](
                inputs=texts, task=tf.constant(request["task_id"])
            )
        ),
        "empty_shapes": {
            name: value.shape.as_list()
            for name, value in signatures["ensemble_text"](
                inputs=texts[:0], task=task
            ).items()
        },
        "errors": {
            name: error_text(
                signatures["ensemble_text"], inputs=texts, task=tf.constant(value)
            )
            for name, value in request["bad_tasks"].items()
        },
        # Each prompt of the ensemble alone, by its prompt id.
        "prompt_texts": [
            plain(
                signatures["serving_default"](
                    inputs=texts,
                    task=tf.constant([str(prompt_id)] * len(request["texts"])),
                )
            )["outputs"]
            for prompt_id in request["prompt_ids"]
        ],
    }
    reply["warmup"] = replay_warmup(request["path"], signatures)
    write_reply(request, reply)


if __name__ == "__main__":
    main(sys.argv[1])
