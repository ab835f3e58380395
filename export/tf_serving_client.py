"""Client for a keras-prompt SavedModel served by TF Serving (gRPC and REST).

gRPC uses the `tensorflow-serving-api` protos (`PredictRequest` with the
text and task tensors as `TensorProto`s); REST posts the same request as
JSON to `/v1/models/<name>[/versions/<n>]:predict`.

Usage:
    # gRPC (port 8500), a prompt-bank model: one task per input
    python tf_serving_client.py --server localhost:8500 --model keras_prompt \
        --task rte --task sst2 "rte sentence1: ..." "sst2 sentence: ..."
    # REST (port 8501)
    python tf_serving_client.py --protocol rest --server localhost:8501 \
        --model keras_prompt --task rte "rte sentence1: ..."
    # the vote of all of rte's prompts (`ensemble_text`, a bank holding an
    # ensemble)
    python tf_serving_client.py --server localhost:8500 --model keras_prompt \
        --ensemble --task rte "rte sentence1: ..." "rte sentence1: ..."

Example (Python):
    client = TFServingClient("localhost:8500", "keras_prompt")
    client.generate(["rte sentence1: ..."], tasks=["rte"])
    client.ensemble(["rte sentence1: ..."], "rte")["outputs"]
    rest = TFServingClient("localhost:8501", "keras_prompt", protocol="rest")
    rest.generate(["rte sentence1: ..."], tasks=["rte"])
"""

import argparse
import json
import sys
import urllib.error
import urllib.request

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2


def make_predict_request(
    model_name,
    texts,
    tasks=None,
    prompts=None,
    signature_name="serving_default",
    version=None,
):
    """A `PredictRequest` for the text signature (`serving_default`).

    Args:
        model_name: TF Serving model name.
        texts: list of input strings.
        tasks: bank mode: list of task names (or decimal ids), one per text.
        prompts: runtime mode: float32 `[batch, P, H]`.
        signature_name: signature to call.
        version: optional model version.
    """
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    texts = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
    request.inputs["inputs"].CopyFrom(
        tf.make_tensor_proto(np.array(texts, dtype=object), dtype=tf.string)
    )
    _add_prompt_inputs(request, len(texts), tasks, prompts)
    return request


def make_generate_ids_request(
    model_name,
    encoder_token_ids,
    encoder_padding_mask,
    tasks=None,
    prompts=None,
    version=None,
):
    """A `PredictRequest` for the `generate_ids` signature."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "generate_ids"
    if version is not None:
        request.model_spec.version.value = int(version)
    request.inputs["encoder_token_ids"].CopyFrom(
        tf.make_tensor_proto(np.asarray(encoder_token_ids, np.int32))
    )
    request.inputs["encoder_padding_mask"].CopyFrom(
        tf.make_tensor_proto(np.asarray(encoder_padding_mask, np.int32))
    )
    _add_prompt_inputs(request, len(encoder_token_ids), tasks, prompts)
    return request


def make_ensemble_request(model_name, texts, task, version=None):
    """A `PredictRequest` for the `ensemble_text` signature: every text
    with each of `task`'s prompts, voted (one task for the request)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "ensemble_text"
    if version is not None:
        request.model_spec.version.value = int(version)
    texts = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
    request.inputs["inputs"].CopyFrom(
        tf.make_tensor_proto(np.array(texts, dtype=object), dtype=tf.string)
    )
    request.inputs["task"].CopyFrom(
        tf.make_tensor_proto(str(task).encode("utf-8"), dtype=tf.string)
    )
    return request


def _task_list(tasks, batch_size):
    if isinstance(tasks, (str, int)):
        tasks = [tasks] * batch_size
    tasks = [str(task) for task in tasks]
    if len(tasks) != batch_size:
        raise ValueError(f"Got {len(tasks)} tasks for {batch_size} inputs.")
    return tasks


def _add_prompt_inputs(request, batch_size, tasks, prompts):
    if tasks is not None:
        tasks = [t.encode("utf-8") for t in _task_list(tasks, batch_size)]
        request.inputs["task"].CopyFrom(
            tf.make_tensor_proto(np.array(tasks, dtype=object), dtype=tf.string)
        )
    if prompts is not None:
        request.inputs["prompts"].CopyFrom(
            tf.make_tensor_proto(np.asarray(prompts, np.float32))
        )


def request_to_json(request):
    """The REST (columnar "inputs") JSON body equivalent to `request`."""
    inputs = {}
    for name, proto in request.inputs.items():
        value = tf.make_ndarray(proto)
        if value.dtype == object:
            value = (
                np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(
                    value
                )
                if value.size
                else value
            )
        inputs[name] = value.tolist()
    return {
        "signature_name": request.model_spec.signature_name,
        "inputs": inputs,
    }


class TFServingClient:
    """Calls a keras-prompt model on TF Serving over gRPC or REST.

    Args:
        server: `host:port` (gRPC default port 8500, REST 8501).
        model_name: TF Serving model name.
        protocol: `"grpc"` or `"rest"`.
        version: optional model version (default: the served latest).
        timeout: seconds per request.
    """

    def __init__(
        self, server, model_name, protocol="grpc", version=None, timeout=30.0
    ):
        if protocol not in ("grpc", "rest"):
            raise ValueError(
                f"protocol must be 'grpc' or 'rest'; got {protocol!r}."
            )
        self.server = server
        self.model_name = model_name
        self.protocol = protocol
        self.version = version
        self.timeout = timeout
        self._stub = None

    def _grpc_stub(self):
        if self._stub is None:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc

            channel = grpc.insecure_channel(self.server)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(
                channel
            )
        return self._stub

    def predict(self, request):
        """Sends a `PredictRequest`; returns a dict name -> numpy array."""
        if self.protocol == "grpc":
            response = self._grpc_stub().Predict(request, timeout=self.timeout)
            return {
                name: tf.make_ndarray(proto)
                for name, proto in response.outputs.items()
            }
        url = f"http://{self.server}/v1/models/{self.model_name}"
        if self.version is not None:
            url += f"/versions/{int(self.version)}"
        body = json.dumps(request_to_json(request)).encode("utf-8")
        http_request = urllib.request.Request(
            url + ":predict",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(
                http_request, timeout=self.timeout
            ) as reply:
                payload = json.loads(reply.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")
            raise RuntimeError(
                f"TF Serving returned HTTP {error.code}: {detail}"
            ) from error
        outputs = payload["outputs"]
        if not isinstance(outputs, dict):
            name = (
                "outputs"
                if request.model_spec.signature_name == "serving_default"
                else "token_ids"
            )
            outputs = {name: outputs}
        return {name: np.asarray(value) for name, value in outputs.items()}

    def generate(self, texts, tasks=None, prompts=None):
        """Strings -> strings through `serving_default`."""
        request = make_predict_request(
            self.model_name,
            texts,
            tasks=tasks,
            prompts=prompts,
            version=self.version,
        )
        outputs = self.predict(request)["outputs"]
        return [
            o.decode("utf-8") if isinstance(o, bytes) else str(o)
            for o in outputs
        ]

    def generate_ids(
        self, encoder_token_ids, encoder_padding_mask, tasks=None, prompts=None
    ):
        """Token ids -> generated ids through `generate_ids`."""
        request = make_generate_ids_request(
            self.model_name,
            encoder_token_ids,
            encoder_padding_mask,
            tasks=tasks,
            prompts=prompts,
            version=self.version,
        )
        return self.predict(request)["token_ids"]

    def ensemble(self, texts, task):
        """The vote of all of `task`'s prompts on each text, through
        `ensemble_text`: a dict with `outputs` (the voted label words, ""
        for no vote), `label` (`[B]`, -1 for no vote), `prompt_labels`
        (`[B, N]`) and `label_scores` (`[B, N, C]`)."""
        request = make_ensemble_request(
            self.model_name, texts, task, version=self.version
        )
        outputs = self.predict(request)
        outputs["outputs"] = [
            o.decode("utf-8") if isinstance(o, bytes) else str(o)
            for o in outputs["outputs"]
        ]
        return outputs


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="keras-prompt TF Serving client"
    )
    parser.add_argument("texts", nargs="+", help="input strings")
    parser.add_argument("--server", default="localhost:8500", help="host:port")
    parser.add_argument("--protocol", choices=("grpc", "rest"), default="grpc")
    parser.add_argument("--model", default="keras_prompt", help="model name")
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument(
        "--task",
        action="append",
        help="task name or id (bank mode); once, " "or once per input",
    )
    parser.add_argument(
        "--prompt", help="runtime mode: .npy file with a [P, H] prompt"
    )
    parser.add_argument(
        "--ensemble",
        action="store_true",
        help="print the vote of all of the --task's prompts (one --task)",
    )
    args = parser.parse_args(argv)
    client = TFServingClient(
        args.server, args.model, protocol=args.protocol, version=args.version
    )
    tasks = None
    if args.task:
        tasks = args.task[0] if len(args.task) == 1 else args.task
    if args.ensemble:
        if not isinstance(tasks, str):
            parser.error("--ensemble takes exactly one --task.")
        for text in client.ensemble(args.texts, tasks)["outputs"]:
            sys.stdout.write(text + "\n")
        return 0
    prompts = None
    if args.prompt:
        prompt = np.load(args.prompt).astype(np.float32)
        prompts = np.broadcast_to(prompt, (len(args.texts),) + prompt.shape)
    for text in client.generate(args.texts, tasks=tasks, prompts=prompts):
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
