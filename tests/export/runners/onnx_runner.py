"""Runs keras-prompt ONNX exports with onnxruntime only (no TensorFlow), plus
the deployment kit's ONNX Runtime client, and writes the results as JSON.

Usage: python onnx_runner.py REQUEST.json
"""

import json
import sys

import bad_inputs
import numpy as np
import onnxruntime
from runner_reply import write_reply


def error_text(function, *args, **kwargs):
    try:
        function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - report any failure
        return f"{type(error).__name__}: {error}"
    return None


def main(request_path):
    with open(request_path) as file:
        request = json.load(file)
    sys.path.insert(0, request["client_dir"])
    from onnx_client import OnnxPromptClient

    batch = {
        key: np.asarray(value, np.int32)
        for key, value in request["batch"].items()
    }
    task_ids = np.asarray(request["task_ids"], np.int32)
    prompts = np.asarray(request["prompts"], np.float32)
    size = len(task_ids)
    reply = {}
    for key, entry in request["models"].items():
        mode, graph = entry["mode"], entry["graph"]
        session = onnxruntime.InferenceSession(
            entry["path"], providers=["CPUExecutionProvider"]
        )
        names = [i.name for i in session.get_inputs()]
        output = "logits" if graph == "forward" else "token_ids"
        feed = {name: batch[name] for name in names if name in batch}
        if mode == "bank":
            feed["task"] = task_ids
        elif mode == "runtime":
            feed["prompts"] = prompts
        result = {
            "inputs": names,
            "outputs": [o.name for o in session.get_outputs()],
            "out": session.run([output], feed)[0].tolist(),
        }
        if mode != "baked":
            result["alone"] = [
                session.run(
                    [output], {k: v[i : i + 1] for k, v in feed.items()}
                )[0][0].tolist()
                for i in range(size)
            ]
        result["empty_shape"] = list(
            session.run([output], {k: v[:0] for k, v in feed.items()})[0].shape
        )
        result["bad_inputs"] = {}
        for name, (broken, expected, _, _) in bad_inputs.cases(
            feed, request["vocabulary_size"], request["num_tasks"]
        ).items():
            out, invalid = session.run([output, "invalid_inputs"], broken)
            result["bad_inputs"][name] = {
                "out": out.tolist(),
                "invalid_inputs": invalid.tolist(),
                "expected": expected,
            }
        result["good_invalid_inputs"] = session.run(
            ["invalid_inputs"], feed
        )[0].tolist()
        if mode == "runtime":
            wrong = np.zeros(
                (size, prompts.shape[1] + 1, prompts.shape[2]), np.float32
            )
            result["wrong_shape_error"] = error_text(
                session.run, [output], {**feed, "prompts": wrong}
            )
        if graph == "generate":
            client = OnnxPromptClient(entry["path"])
            kwargs = {}
            if mode == "bank":
                kwargs["tasks"] = request["tasks"]
            elif mode == "runtime":
                kwargs["prompts"] = np.asarray(
                    request["text_prompts"], np.float32
                )
            result["client_texts"] = client.generate(request["texts"], **kwargs)
            result["client_ids"] = client.generate_ids(
                request["texts"], **kwargs
            ).tolist()
            if mode == "bank":
                result["client_id_texts"] = client.generate(
                    request["texts"], tasks=[int(i) for i in task_ids]
                )
                result["client_errors"] = {
                    "unknown": error_text(
                        client.generate,
                        request["texts"],
                        tasks=["rte", "no_such_task", "rte", "rte"],
                    ),
                    "out_of_range": error_text(
                        client.generate, request["texts"], tasks=[0, 1, 7, 0]
                    ),
                }
            if mode == "runtime":
                nan_prompts = np.asarray(request["text_prompts"], np.float32)
                nan_prompts[2, 0, 0] = np.nan
                result["client_nan_prompt_error"] = error_text(
                    client.generate, request["texts"], prompts=nan_prompts
                )
        reply[key] = result
    reply["imported_tensorflow"] = "tensorflow" in sys.modules
    write_reply(request, reply)


if __name__ == "__main__":
    main(sys.argv[1])
