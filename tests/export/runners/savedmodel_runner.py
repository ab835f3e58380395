"""Loads keras-prompt SavedModels in a fresh process with only TensorFlow and
tensorflow-text, runs the signatures, and writes the results as JSON.

Usage: python savedmodel_runner.py REQUEST.json
"""

import json
import sys

import bad_inputs
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)
from runner_reply import write_reply


def error_text(function, **kwargs):
    try:
        function(**kwargs)
    except Exception as error:  # noqa: BLE001 - report any failure
        return f"{type(error).__name__}: {error}"
    return None


def strings(tensor):
    return [value.decode("utf-8") for value in tensor.numpy().tolist()]


def main(request_path):
    with open(request_path) as file:
        request = json.load(file)
    batch = {
        key: tf.constant(value, tf.int32)
        for key, value in request["batch"].items()
    }
    encoder = {
        key: batch[key] for key in ("encoder_token_ids", "encoder_padding_mask")
    }
    texts = tf.constant(request["texts"])
    tasks = tf.constant(request["tasks"])
    prompts = tf.constant(request["prompts"], tf.float32)
    size = len(request["texts"])
    reply = {}

    for key, entry in request["models"].items():
        mode = entry["mode"]
        loaded = tf.saved_model.load(entry["path"])
        signatures = loaded.signatures
        result = {"signatures": sorted(signatures)}
        extra, alone_extra = {}, []
        if mode == "bank":
            extra = {"task": tasks}
            alone_extra = [{"task": tasks[i : i + 1]} for i in range(size)]
        elif mode == "runtime":
            extra = {"prompts": prompts}
            alone_extra = [{"prompts": prompts[i : i + 1]} for i in range(size)]
        result["logits"] = (
            signatures["logits"](**batch, **extra)["logits"].numpy().tolist()
        )
        result["ids"] = (
            signatures["generate_ids"](**encoder, **extra)["token_ids"]
            .numpy()
            .tolist()
        )
        result["texts"] = strings(
            signatures["serving_default"](inputs=texts, **extra)["outputs"]
        )
        if alone_extra:
            (
                result["alone_logits"],
                result["alone_ids"],
                result["alone_texts"],
            ) = ([], [], [])
            for i, one in enumerate(alone_extra):
                row = {key: value[i : i + 1] for key, value in batch.items()}
                result["alone_logits"].append(
                    signatures["logits"](**row, **one)["logits"]
                    .numpy()[0]
                    .tolist()
                )
                row = {key: value[i : i + 1] for key, value in encoder.items()}
                result["alone_ids"].append(
                    signatures["generate_ids"](**row, **one)["token_ids"]
                    .numpy()[0]
                    .tolist()
                )
                result["alone_texts"].append(
                    strings(
                        signatures["serving_default"](
                            inputs=texts[i : i + 1], **one
                        )["outputs"]
                    )[0]
                )
        # A batch of 0 rows.
        empty_extra = {key: value[:0] for key, value in extra.items()}
        result["empty"] = {
            "texts": list(
                signatures["serving_default"](inputs=texts[:0], **empty_extra)[
                    "outputs"
                ].shape
            ),
            "ids": list(
                signatures["generate_ids"](
                    **{k: v[:0] for k, v in encoder.items()}, **empty_extra
                )["token_ids"].shape
            ),
            "logits": list(
                signatures["logits"](
                    **{k: v[:0] for k, v in batch.items()}, **empty_extra
                )["logits"].shape
            ),
        }
        if mode == "bank":
            result["id_string_texts"] = strings(
                signatures["serving_default"](
                    inputs=texts,
                    task=tf.constant(request["task_ids_as_strings"]),
                )["outputs"]
            )
            errors = {}
            for name, bad in request["bad_tasks"].items():
                bad_tasks = tf.constant(bad)
                errors[name] = {
                    "serving_default": error_text(
                        signatures["serving_default"],
                        inputs=texts,
                        task=bad_tasks,
                    ),
                    "generate_ids": error_text(
                        signatures["generate_ids"], **encoder, task=bad_tasks
                    ),
                    "logits": error_text(
                        signatures["logits"], **batch, task=bad_tasks
                    ),
                }
            result["errors"] = errors
            result["no_task_rows_error"] = error_text(
                signatures["generate_ids"], **encoder, task=tasks[:0]
            )
            # Imported here, not at the top: loading and running the
            # SavedModels needs only tensorflow and tensorflow_text.
            from tensorflow_serving.apis import predict_pb2

            with open(request["predict_request"], "rb") as file:
                predict = predict_pb2.PredictRequest.FromString(file.read())
            inputs = {
                name: tf.make_ndarray(proto)
                for name, proto in predict.inputs.items()
            }
            signature = signatures[predict.model_spec.signature_name]
            reply["predict_request_texts"] = strings(
                signature(**{k: tf.constant(v) for k, v in inputs.items()})[
                    "outputs"
                ]
            )
        # Token ids, masks and runtime prompts (bad task strings are
        # `bad_tasks` above): each case fails the request, naming the input.
        result["bad_inputs"] = {}
        for signature_name, inputs in (("generate_ids", encoder), ("logits", batch)):
            feed = {k: v.numpy() for k, v in inputs.items()}
            if mode == "runtime":
                feed["prompts"] = prompts.numpy()
            for name, (broken, _, broken_input, shown) in bad_inputs.cases(
                feed, request["vocabulary_size"], request["num_tasks"]
            ).items():
                if mode == "bank":
                    broken["task"] = tasks
                result["bad_inputs"][f"{signature_name}:{name}"] = {
                    "error": error_text(signatures[signature_name], **broken),
                    "input": broken_input,
                    "value": shown,
                }
        if mode == "runtime":
            wrong = tf.zeros([size, prompts.shape[1] + 1, prompts.shape[2]])
            result["wrong_shape_error"] = error_text(
                signatures["generate_ids"], **encoder, prompts=wrong
            )
            result["batch_mismatch_error"] = error_text(
                signatures["generate_ids"], **encoder, prompts=prompts[:1]
            )
        reply[key] = result

    write_reply(request, reply)


if __name__ == "__main__":
    main(sys.argv[1])
