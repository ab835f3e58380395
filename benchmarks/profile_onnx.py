"""ONNX Runtime profile of the exported t5-small-sized forward graph: kernel
time by op type, optimized-graph node types, ORT_ENABLE_ALL vs ORT_DISABLE_ALL.

Usage: python -m benchmarks.profile_onnx   (prints RES lines)
"""
import json, os, time, collections, tempfile
import numpy as np
from benchmarks import common, configs
tf = common.setup_tensorflow(2)
import onnxruntime as ort
import keras_prompt.export as export
m = configs.build_model("t5_small", 20)
d = tempfile.mkdtemp()
path = os.path.join(d, "f.onnx")
t = time.time(); export.export_onnx(m, path, mode="baked", graph="forward"); print("RES export s", round(time.time()-t,1))
x, _ = configs.training_batch(8, 128, 8, 32128)
for opt in ("all", "disable"):
    so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL if opt == "all" else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if opt == "all":
        so.enable_profiling = True; so.profile_file_prefix = os.path.join(d, "prof")
        so.optimized_model_filepath = os.path.join(d, "opt.onnx")
    s = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    s.run(None, x); cpu = []
    _, tt = common.time_steps(lambda: s.run(None, x), 1, 4, cpu_times=cpu)
    print("RES", opt, "wall", [round(v,3) for v in tt], "cpu", [round(v,3) for v in cpu], "load", common.load_average())
    if opt == "all":
        prof = s.end_profiling()
        ev = json.load(open(prof))
        by = collections.Counter(); cnt = collections.Counter()
        for e in ev:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                op = e["args"].get("op_name"); by[op] += e["dur"]; cnt[op] += 1
        tot = sum(by.values())
        print("RES kernel time by op (share):", [(k, round(v/tot,3), cnt[k]) for k, v in by.most_common(12)])
        import onnx
        g = onnx.load(os.path.join(d, "opt.onnx")).graph
        print("RES optimized node types", collections.Counter(n.op_type for n in g.node).most_common(15))
