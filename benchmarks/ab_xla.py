"""XLA on vs off, interleaved in one process on one t5-small-sized backbone.

    python -m benchmarks.ab_xla [--rounds 4] [--calls 2]

Two `PromptedT5Seq2SeqLM` share one random backbone (dropout 0), one
compiled with `jit_compile=True`, one with `False`. For each kind of work
(forward logits at batch 8, `generate()` of 8 tokens at batch 8,
`train_on_batch` at batch 8) both are warmed up, then timed in `--rounds`
rounds that alternate which goes first (ABBA), `--calls` calls each. Prints
one JSON line per work and setting: median and minimum wall seconds, median
process CPU seconds, the load average. Run it alone on the machine.
"""

import argparse
import json
import statistics

from benchmarks import common, configs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=2)
    args = parser.parse_args(argv)

    tf = common.setup_tensorflow(2)
    from keras_prompt import PromptedT5Seq2SeqLM

    backbone = configs.build_backbone("t5_small", dropout=0.0)
    vocab = configs.vocabulary_size("t5_small")
    models = {}
    for xla in (True, False):
        model = PromptedT5Seq2SeqLM(backbone, prompt_length=20, seed=1)
        model.compile(jit_compile=xla)
        models[xla] = model
    x, y = configs.training_batch(8, 128, 8, vocab)
    x_tensors = {key: tf.constant(value) for key, value in x.items()}
    generation_inputs = configs.generation_batch(8, 128, 8, vocab)
    forward = {
        xla: tf.function(
            lambda inputs, model=models[xla]: model(inputs, training=False),
            jit_compile=xla,
        )
        for xla in (True, False)
    }
    work = {
        "forward": lambda xla: forward[xla](x_tensors).numpy(),
        "generate": lambda xla: models[xla].generate(
            generation_inputs, stop_token_ids=None
        ),
        "train": lambda xla: models[xla].train_on_batch(x, y),
    }
    for name, call in work.items():
        wall = {True: [], False: []}
        cpu = {True: [], False: []}
        for xla in (True, False):
            common.time_steps(lambda call=call, xla=xla: call(xla), 2, 0)
        for round_index in range(args.rounds):
            order = (True, False) if round_index % 2 == 0 else (False, True)
            for xla in order:
                cpu_times = []
                _, times = common.time_steps(
                    lambda call=call, xla=xla: call(xla), 0, args.calls,
                    cpu_times=cpu_times,
                )
                wall[xla] += times
                cpu[xla] += cpu_times
        for xla in (True, False):
            print(json.dumps({
                "benchmark": "ab_xla",
                "work": name,
                "xla": xla,
                "wall_seconds_median": round(statistics.median(wall[xla]), 4),
                "wall_seconds_min": round(min(wall[xla]), 4),
                "cpu_seconds_median": round(statistics.median(cpu[xla]), 4),
                "load_average_1m": common.load_average(),
            }), flush=True)


if __name__ == "__main__":
    main()
