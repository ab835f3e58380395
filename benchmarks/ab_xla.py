"""XLA on vs off, interleaved in one process on one t5-small-sized backbone
(dropout 0): forward b8, `generate()` b8 (8 tokens), `train_on_batch` b8.

Usage: python -m benchmarks.ab_xla   (prints RES lines; 4 ABBA rounds x 2 calls)
"""
import json, sys
import numpy as np
from benchmarks import common, configs
tf = common.setup_tensorflow(2)
from keras_prompt import PromptedT5Seq2SeqLM
bb = configs.build_backbone("t5_small", dropout=0.0)
models = {}
for xla in (True, False):
    m = PromptedT5Seq2SeqLM(bb, prompt_length=20, seed=1)
    m.compile(jit_compile=xla)
    models[xla] = m
x, y = configs.training_batch(8, 128, 8, 32128)
xt = {k: tf.constant(v) for k, v in x.items()}
g = configs.generation_batch(8, 128, 8, 32128)
fwd = {xla: tf.function(lambda i, m=models[xla]: m(i, training=False), jit_compile=xla) for xla in (True, False)}
work = {
    "forward": lambda xla: (lambda: fwd[xla](xt).numpy()),
    "generate": lambda xla: (lambda: models[xla].generate(g, stop_token_ids=None)),
    "train": lambda xla: (lambda: models[xla].train_on_batch(x, y)),
}
res = {}
for name, make in work.items():
    for xla in (True, False):
        make(xla)(); make(xla)()  # compile + warm
    for r in range(4):
        for xla in ((True, False) if r % 2 == 0 else (False, True)):
            cpu = []
            _, t = common.time_steps(make(xla), 0, 2, cpu_times=cpu)
            res.setdefault((name, xla), {"wall": [], "cpu": []})
            res[(name, xla)]["wall"] += t; res[(name, xla)]["cpu"] += cpu
    for xla in (True, False):
        v = res[(name, xla)]
        print("RES", name, "xla" if xla else "noxla", "wall median", round(float(np.median(v["wall"])), 3), "min", round(min(v["wall"]), 3), "cpu median", round(float(np.median(v["cpu"])), 3), "load", common.load_average(), flush=True)
