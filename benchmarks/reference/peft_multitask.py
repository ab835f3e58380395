#!/usr/bin/env python3
"""PEFT's way of serving several prompt-tuned tasks: one adapter per task.

Runs in the reference virtual environment only (torch, transformers, peft;
see ../shared/reference/README.md), never inside keras-prompt:

    ~/.venvs/ref/bin/python benchmarks/reference/peft_multitask.py \
        --requests 32 --tasks 8 --threads 2

A t5-small-shaped `T5ForConditionalGeneration` (random weights, float32,
eval mode) carries `--tasks` prompt-tuning adapters (`PromptTuningConfig`,
`SEQ_2_SEQ_LM`, `--prompt-len` virtual tokens). `--requests` requests of
`--src-len` tokens, spread evenly over the tasks, are served as PEFT serves
prompt tuning: for each task, `set_adapter(task)` and one greedy `generate`
of that task's requests (`--gen-tokens` new tokens, KV cache), since a
prompt-tuning PeftModel runs one adapter per call. `--single-task` serves
all requests with one adapter in one call, for comparison.

The last stdout line is one JSON object: `examples_per_s_median` (requests
per second, median over `--steps` timed rounds after `--warmup`), the round
times and `peak_rss_mb`.
"""

import argparse
import json
import statistics
import sys

from reference_environment import environment
from reference_environment import timed_calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=20)
    parser.add_argument("--src-len", type=int, default=128)
    parser.add_argument("--gen-tokens", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--single-task", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch
    from peft import PromptTuningConfig
    from peft import TaskType
    from peft import get_peft_model
    from transformers import T5Config
    from transformers import T5ForConditionalGeneration

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = T5Config(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
        num_decoder_layers=6, num_heads=8, feed_forward_proj="relu",
        tie_word_embeddings=True, decoder_start_token_id=0, pad_token_id=0,
        eos_token_id=1,
    )
    model = T5ForConditionalGeneration(config).eval()
    adapter = PromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=args.prompt_len
    )
    names = [f"task{number}" for number in range(args.tasks)]
    served = get_peft_model(model, adapter, adapter_name=names[0])
    for name in names[1:]:
        served.add_adapter(name, adapter)
    served.eval()

    generator = torch.Generator().manual_seed(args.seed + 1)
    input_ids = torch.randint(
        3, 32128 - 100, (args.requests, args.src_len), generator=generator
    )
    input_ids[:, -1] = 1
    attention_mask = torch.ones_like(input_ids)
    order = torch.randperm(args.requests, generator=generator)
    task_of = [names[int(i) % args.tasks] for i in order]
    groups = (
        [(names[0], list(range(args.requests)))]
        if args.single_task
        else [(name, [i for i, t in enumerate(task_of) if t == name])
              for name in names]
    )

    def serve():
        outputs = {}
        with torch.inference_mode():
            for name, rows in groups:
                served.set_adapter(name)
                index = torch.tensor(rows)
                tokens = served.generate(
                    input_ids=input_ids[index],
                    attention_mask=attention_mask[index],
                    max_new_tokens=args.gen_tokens,
                    min_new_tokens=args.gen_tokens,
                    do_sample=False, num_beams=1,
                )
                for row, output in zip(rows, tokens):
                    outputs[row] = output
        assert len(outputs) == args.requests
        return outputs

    times = timed_calls(serve, args.warmup, args.steps)
    median = statistics.median(times)
    print(json.dumps({
        "benchmark": "peft_multitask_serving",
        "requests": args.requests, "tasks": args.tasks,
        "calls_per_round": len(groups), "single_task": args.single_task,
        "prompt_len": args.prompt_len, "src_len": args.src_len,
        "gen_tokens": args.gen_tokens, "warmup": args.warmup,
        "round_times": [round(t, 4) for t in times],
        "sec_per_round_median": median,
        "examples_per_s_median": args.requests / median,
        **environment(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
