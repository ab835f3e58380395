"""Text out of keras-prompt exports in a fresh process: the SavedModel's
`serving_default` (TensorFlow and tensorflow-text only), the deployment
kit's ONNX Runtime client and its LiteRT client.

Usage: python text_runner.py REQUEST.json
"""

import json
import sys
from runner_reply import write_reply


def main(request_path):
    with open(request_path) as file:
        request = json.load(file)
    sys.path.insert(0, request["client_dir"])
    texts, tasks = request["texts"], request["tasks"]
    reply = {}

    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the SentencePiece ops)

    loaded = tf.saved_model.load(request["saved_model"])
    outputs = loaded.signatures["serving_default"](
        inputs=tf.constant(texts), task=tf.constant(tasks)
    )["outputs"]
    reply["saved_model"] = [t.decode("utf-8") for t in outputs.numpy().tolist()]

    from onnx_client import OnnxPromptClient

    reply["onnx"] = OnnxPromptClient(request["onnx"]).generate(texts, tasks=tasks)

    from litert_client import LiteRTPromptClient

    reply["litert"] = LiteRTPromptClient(request["tflite"]).generate(
        texts, tasks=tasks
    )
    write_reply(request, reply)


if __name__ == "__main__":
    main(sys.argv[1])
