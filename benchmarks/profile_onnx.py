"""ONNX Runtime profile of the exported t5-small-sized forward graph.

    python -m benchmarks.profile_onnx [--calls 4]

Exports a random t5-small-sized `PromptedT5Seq2SeqLM` (prompt 20, prompt
baked in) as the ONNX forward graph and runs it on a batch of 8 x (128 + 8)
tokens with 2 threads, once with all of ONNX Runtime's graph optimizations
and once with none. Prints JSON lines: the export time, wall and process CPU
seconds per call of each setting, the kernel time by op type (share of the
total, node count) from ONNX Runtime's profiler, and the op types of the
optimized graph. Run it alone on the machine.
"""

import argparse
import collections
import json
import os
import tempfile
import time

from benchmarks import common, configs


def kernel_time_by_op(profile_path, top=12):
    """(op type, share of kernel time, node count) of an ONNX Runtime
    profile, largest first."""
    with open(profile_path) as file:
        events = json.load(file)
    durations = collections.Counter()
    counts = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"].get("op_name")
            durations[op] += event["dur"]
            counts[op] += 1
    total = sum(durations.values())
    return [(op, round(duration / total, 3), counts[op])
            for op, duration in durations.most_common(top)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4)
    args = parser.parse_args(argv)

    common.setup_tensorflow(2)
    import onnx
    import onnxruntime as ort

    from keras_prompt import export

    model = configs.build_model("t5_small", 20)
    directory = tempfile.mkdtemp(prefix="keras_prompt_profile_onnx_")
    path = os.path.join(directory, "forward.onnx")
    start = time.perf_counter()
    export.export_onnx(model, path, mode="baked", graph="forward")
    print(json.dumps({"export_seconds": round(time.perf_counter() - start, 1)}))
    inputs, _ = configs.training_batch(8, 128, 8, configs.vocabulary_size("t5_small"))
    levels = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }
    for name, level in levels.items():
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        options.graph_optimization_level = level
        if name == "all":
            options.enable_profiling = True
            options.profile_file_prefix = os.path.join(directory, "profile")
            options.optimized_model_filepath = os.path.join(directory, "optimized.onnx")
        session = ort.InferenceSession(
            path, sess_options=options, providers=["CPUExecutionProvider"]
        )
        cpu_times = []
        _, times = common.time_steps(
            lambda session=session: session.run(None, inputs), 2, args.calls,
            cpu_times=cpu_times,
        )
        record = {
            "optimizations": name,
            "wall_seconds": [round(value, 3) for value in times],
            "cpu_seconds": [round(value, 3) for value in cpu_times],
            "load_average_1m": common.load_average(),
        }
        if name == "all":
            record["kernel_time_by_op"] = kernel_time_by_op(session.end_profiling())
            graph = onnx.load(options.optimized_model_filepath).graph
            record["optimized_node_types"] = collections.Counter(
                node.op_type for node in graph.node
            ).most_common(15)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
