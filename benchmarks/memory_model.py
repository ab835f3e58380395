"""Memory model of prompt tuning T5 1.1 on TPUs, on paper.

Prints the README's table: for T5 1.1 small to XXL (the LM-adapted
checkpoints the paper tunes), the bytes a training step holds per chip
when the backbone is frozen:

- weights in bfloat16, no gradients and no optimizer state for them (today
  `--dtype bfloat16` is Keras's mixed_bfloat16 policy, which keeps float32
  variables: twice these weight bytes; the last note line gives that case);
- the prompt in float32 with Adafactor's factored second moments (a row
  and a column vector; the paper uses no momentum), and its gradient;
- activations: what the backward pass needs to carry the gradient back to
  the prompt through every frozen layer. Under XLA (always on TPUs) the
  weight-gradient computations are dead code, so a matmul's input is not
  kept; kept are the norm inputs, attention's queries, keys, values and
  probabilities, the feed-forward's pre-activations, dropout masks (one byte
  per element) and the float32 logits of the targets. Estimates: XLA's
  fusion and rematerialization choices move the real figure by tens of
  percent either way;
- with per-layer rematerialization (`jax.checkpoint` / recompute), only each
  layer's input stays live, plus one layer's activations while it runs.

Under `TPUStrategy` data parallelism every chip holds the whole backbone and
`batch / chips` examples. TPU v4 chips have 32 GiB of HBM, v5e chips 16 GiB;
10% is left to XLA's workspace.

    python benchmarks/memory_model.py [--input-length 512] [--prompt-length 100]
"""

import argparse

GIB = 2**30
# T5 1.1 (gated GELU, untied head, vocabulary 32128): d_model, d_ff,
# layers per stack, heads (d_kv = 64 everywhere).
MODELS = {
    "small": (512, 1024, 8, 6),
    "base": (768, 2048, 12, 12),
    "large": (1024, 2816, 24, 16),
    "xl": (2048, 5120, 24, 32),
    "xxl": (4096, 10240, 24, 64),
}
VOCABULARY = 32128
HEAD_DIM = 64
CHIPS = {"TPU v4": 32 * GIB, "TPU v5e": 16 * GIB}
USABLE = 0.9


def parameters(hidden, ff, layers, heads):
    inner = heads * HEAD_DIM
    attention = 4 * hidden * inner
    feed_forward = 3 * hidden * ff  # gated: two input projections, one output
    encoder = layers * (attention + feed_forward + 2 * hidden)
    decoder = layers * (2 * attention + feed_forward + 3 * hidden)
    return 2 * VOCABULARY * hidden + encoder + decoder + 2 * 32 * heads


def activation_bytes(hidden, ff, layers, heads, source, target):
    """Bytes one example keeps for the backward pass (bfloat16 activations,
    one-byte dropout masks, float32 target logits)."""
    inner = heads * HEAD_DIM

    def attention(queries, keys):
        # Q (per query), K and V (per key), probabilities and their mask.
        return (2 * (queries * inner + 2 * keys * inner + heads * queries * keys)
                + heads * queries * keys)

    def feed_forward(tokens):
        # Norm input, the two gated pre-activations, residual dropout masks.
        return 2 * tokens * (hidden + 2 * ff) + 2 * tokens * hidden

    encoder_layer = 2 * source * hidden + attention(source, source) + feed_forward(source)
    decoder_layer = (4 * target * hidden + attention(target, target)
                     + attention(target, source) + feed_forward(target))
    logits = 4 * target * VOCABULARY
    return layers * (encoder_layer + decoder_layer) + logits, (
        encoder_layer, decoder_layer, logits)


def rematerialized_bytes(hidden, ff, layers, heads, source, target):
    """Each layer's input kept, one layer's activations live at a time."""
    _, (encoder_layer, decoder_layer, logits) = activation_bytes(
        hidden, ff, layers, heads, source, target)
    inputs = 2 * hidden * layers * (source + target)
    return inputs + max(encoder_layer, decoder_layer) + logits


def prompt_bytes(prompt_length, hidden):
    values_and_gradient = 2 * 4 * prompt_length * hidden
    factored_moments = 4 * (prompt_length + hidden)
    return values_and_gradient + factored_moments


def fits(budget, fixed, per_example):
    """Examples per chip that fit in `budget` bytes (0: not even one)."""
    room = budget * USABLE - fixed
    return max(0, int(room // per_example))


def table(input_length, prompt_length, target_length, batch):
    source = input_length + prompt_length
    lines = [
        f"T5 1.1, prompt {prompt_length} + input {input_length} = {source} "
        f"encoder positions, {target_length} target tokens, global batch "
        f"{batch}; GB = 10^9 bytes; examples per chip = what fits in 90% of "
        "the chip's HBM beside the bfloat16 weights.",
        "",
        "| model | parameters | weights (bf16) | prompt + Adafactor | activations / example | with remat / example | examples per chip, v4 (32 GiB): plain / remat | v5e (16 GiB): plain / remat |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    notes = []
    float32 = []
    for name, shape in MODELS.items():
        hidden = shape[0]
        count = parameters(*shape)
        weights = 2 * count
        prompt = prompt_bytes(prompt_length, hidden)
        plain, _ = activation_bytes(*shape, source, target_length)
        remat = rematerialized_bytes(*shape, source, target_length)
        cells = []
        float32.append(f"{name} " + ", ".join(
            f"{chip} {fits(budget, 2 * weights + prompt, plain)} / "
            f"{fits(budget, 2 * weights + prompt, remat)}"
            for chip, budget in CHIPS.items()))
        for chip, budget in CHIPS.items():
            per_chip = [fits(budget, weights + prompt, plain),
                        fits(budget, weights + prompt, remat)]
            cells.append(" / ".join(str(n) for n in per_chip))
            chips_needed = [-(-batch // n) if n else None for n in per_chip]
            if per_chip[1] == 0:
                notes.append(f"{name} on {chip}: the weights alone leave no "
                             "room: model parallelism needed")
            elif chips_needed[0] is None or chips_needed[0] > batch:
                notes.append(f"{name} on {chip}: only with rematerialization "
                             f"({per_chip[1]} per chip, batch {batch} on "
                             f"{chips_needed[1]} chips)")
        lines.append(
            f"| {name} | {count / 1e6:,.0f}M | {weights / 1e9:.2f} GB | "
            f"{prompt / 1e6:.2f} MB | {plain / 1e9:.2f} GB | "
            f"{remat / 1e9:.3f} GB | {cells[0]} | {cells[1]} |")
    notes.append("with float32 variables (today's `--dtype bfloat16`, Keras's "
                 "mixed_bfloat16 policy), examples per chip plain / remat: "
                 + "; ".join(float32))
    return "\n".join(lines), notes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input-length", type=int, default=512)
    parser.add_argument("--prompt-length", type=int, default=100)
    parser.add_argument("--target-length", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    text, notes = table(args.input_length, args.prompt_length,
                        args.target_length, args.batch_size)
    print(text)
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
