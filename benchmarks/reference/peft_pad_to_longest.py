#!/usr/bin/env python3
"""PEFT prompt-tuning training as Hugging Face users run it: shuffled
batches padded to their longest example.

Runs in the reference virtual environment only (torch, transformers, peft;
see ../shared/reference/README.md), never inside keras-prompt. The
bucketing benchmark (`benchmarks/bucketing.py`) writes the token sequences
and calls it:

    ~/.venvs/ref/bin/python benchmarks/reference/peft_pad_to_longest.py \
        --data tokens.npz --batch 32 --warmup 5 --steps 30 --threads 2

Data: `--data`, an `.npz` with `ids` (every example's encoder token ids,
`</s>` included, concatenated), `offsets` (where each example starts; one
more entry than examples) and `targets` (each example's target ids, `</s>`
included, `[examples, target_length]`). Batches are drawn as a
`torch.utils.data.RandomSampler` draws them (a new permutation of the
examples each epoch, from `--seed`) and padded as
`transformers.DataCollatorForSeq2Seq(padding=True)` pads: input ids with
the pad id 0 and the attention mask with 0 up to the longest example of
the batch, labels with -100 up to the longest target.

Model: a `T5ForConditionalGeneration` of the shape given by the flags
(default: google-t5/t5-small's, original T5: ReLU, tied head), random
weights, float32, dropout `--dropout` (T5's 0.1), in train mode; PEFT
`PromptTuningConfig(task_type="SEQ_2_SEQ_LM",
num_virtual_tokens=--prompt-len)`; only the prompt trains, with
`transformers` Adafactor at a constant 0.3 (`scale_parameter=False,
relative_step=False, warmup_init=False`), as `hf_peft_bench.py` does.

Timing: each step is collation, forward, backward, optimizer step and
`zero_grad`, timed with `time.perf_counter`; `--warmup` steps, then
`--steps` timed ones. The last stdout line is one JSON object:
`examples_per_s` (batch x timed steps / their total time), the step times,
the mean padded encoder length and `peak_rss_mb`.
"""

import argparse
import json
import sys

from reference_environment import environment
from reference_environment import timed_calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--prompt-len", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--vocab", type=int, default=32128)
    parser.add_argument("--d-model", type=int, default=512)
    parser.add_argument("--d-kv", type=int, default=64)
    parser.add_argument("--d-ff", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--gated-gelu", action="store_true",
                        help="T5 1.1 layout (gated GELU, untied head)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from peft import PromptTuningConfig
    from peft import TaskType
    from peft import get_peft_model
    from transformers import T5Config
    from transformers import T5ForConditionalGeneration
    from transformers.optimization import Adafactor

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = np.load(args.data)
    ids, offsets, targets = data["ids"], data["offsets"], data["targets"]
    lengths = np.diff(offsets)
    count = len(lengths)

    config = T5Config(
        vocab_size=args.vocab, d_model=args.d_model, d_kv=args.d_kv,
        d_ff=args.d_ff, num_layers=args.layers,
        num_decoder_layers=args.layers, num_heads=args.heads,
        dropout_rate=args.dropout,
        feed_forward_proj="gated-gelu" if args.gated_gelu else "relu",
        tie_word_embeddings=not args.gated_gelu, decoder_start_token_id=0,
        pad_token_id=0, eos_token_id=1,
    )
    model = T5ForConditionalGeneration(config)
    model = get_peft_model(model, PromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=args.prompt_len))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = Adafactor(params, lr=args.lr, scale_parameter=False,
                          relative_step=False, warmup_init=False)

    generator = torch.Generator().manual_seed(args.seed)

    def batches():
        while True:  # one permutation per epoch, as RandomSampler draws
            order = torch.randperm(count, generator=generator).tolist()
            for start in range(0, count - args.batch + 1, args.batch):
                yield order[start:start + args.batch]

    def collate(rows):
        longest = int(lengths[rows].max())
        input_ids = torch.zeros((len(rows), longest), dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        for row, index in enumerate(rows):
            tokens = ids[offsets[index]:offsets[index + 1]]
            input_ids[row, :len(tokens)] = torch.from_numpy(
                tokens.astype(np.int64))
            attention_mask[row, :len(tokens)] = 1
        labels = torch.from_numpy(targets[rows].astype(np.int64))
        labels[labels == 0] = -100  # padded targets, as the collator pads
        return input_ids, attention_mask, labels, longest

    stream = batches()
    losses, padded = [], []

    def step():
        input_ids, attention_mask, labels, longest = collate(next(stream))
        out = model(input_ids=input_ids, attention_mask=attention_mask,
                    labels=labels)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(out.loss.detach()))
        padded.append(longest)

    times = timed_calls(step, args.warmup, args.steps)
    timed = padded[args.warmup:]
    print(json.dumps({
        "benchmark": "peft_pad_to_longest_train",
        "batch": args.batch, "warmup": args.warmup, "steps": args.steps,
        "prompt_len": args.prompt_len, "examples": count,
        "mean_example_length": float(lengths.mean()),
        "mean_padded_length": float(np.mean(timed)),
        "step_times": [round(t, 4) for t in times],
        "examples_per_s": args.batch * args.steps / sum(times),
        "first_loss": losses[0], "last_loss": losses[-1],
        **environment(),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
