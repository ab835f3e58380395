"""TF Serving warm-up requests (`assets.extra/tf_serving_warmup_requests`).

TF Serving replays these `PredictionLog` records when it loads a model
version, so the first real request does not pay for kernel and memory
set-up. The records are a TFRecord file; each record is a serialized
`tensorflow.serving.PredictionLog` holding a `PredictRequest`. They are
written with the protobuf wire format directly (the field numbers of
`prediction_log.proto`, `predict.proto` and `model.proto`), so exporting
needs no `tensorflow-serving-api`.
"""

import os

WARMUP_FILENAME = "tf_serving_warmup_requests"

# Field numbers of the TF Serving protos.
_PREDICTION_LOG_PREDICT_LOG = 6
_PREDICT_LOG_REQUEST = 1
_REQUEST_MODEL_SPEC = 1
_REQUEST_INPUTS = 2
_MODEL_SPEC_NAME = 1
_MODEL_SPEC_SIGNATURE_NAME = 3
_MAP_KEY = 1
_MAP_VALUE = 2


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number, payload):
    """A length-delimited field (wire type 2)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def prediction_log(model_name, signature_name, inputs):
    """A serialized `PredictionLog` with one `PredictRequest`.

    Args:
        model_name: the TF Serving model name.
        signature_name: the signature to call.
        inputs: dict input name -> array (or anything `tf.make_tensor_proto`
            takes).

    Returns:
        bytes.
    """
    import tensorflow as tf

    model_spec = _field(_MODEL_SPEC_NAME, model_name) + _field(
        _MODEL_SPEC_SIGNATURE_NAME, signature_name
    )
    request = _field(_REQUEST_MODEL_SPEC, model_spec)
    for name in sorted(inputs):
        tensor = tf.make_tensor_proto(inputs[name]).SerializeToString()
        entry = _field(_MAP_KEY, name) + _field(_MAP_VALUE, tensor)
        request += _field(_REQUEST_INPUTS, entry)
    predict_log = _field(_PREDICT_LOG_REQUEST, request)
    return _field(_PREDICTION_LOG_PREDICT_LOG, predict_log)


def write_warmup_requests(saved_model_dir, model_name, requests):
    """Writes `assets.extra/tf_serving_warmup_requests` into a SavedModel
    directory.

    Args:
        saved_model_dir: the SavedModel (version) directory.
        model_name: the TF Serving model name.
        requests: list of `(signature_name, inputs dict)`.

    Returns:
        The file's path.
    """
    import tensorflow as tf

    directory = os.path.join(saved_model_dir, "assets.extra")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, WARMUP_FILENAME)
    with tf.io.TFRecordWriter(path) as writer:
        for signature_name, inputs in requests:
            writer.write(prediction_log(model_name, signature_name, inputs))
    return path
