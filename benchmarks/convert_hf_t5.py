"""Time and memory of `keras_prompt.convert.load_hf_t5` on a t5-small-sized
checkpoint.

Writes a random checkpoint in the Hugging Face T5 layout to a temporary
directory with NumPy + safetensors (no torch, no network): `config.json`,
`model.safetensors` (optionally sharded with an index) and a small
`spiece.model`. Then converts it in a fresh child process and reports the
wall time and peak resident memory (RSS) of that process, next to the size of
the weights, so you can check the "at most two copies" budget:

    peak RSS - RSS after imports  <=  2 x weight bytes

Usage:
    python benchmarks/convert_hf_t5.py                    # t5-small (60M, tied ReLU)
    python benchmarks/convert_hf_t5.py --variant t5v11    # t5-v1_1-small (77M, gated GELU)
    python benchmarks/convert_hf_t5.py --shards 3 --preset-dir /tmp/t5_small_preset
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {
    # google-t5/t5-small
    "t5": dict(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
        num_decoder_layers=6, num_heads=8, feed_forward_proj="relu",
        tie_word_embeddings=True,
    ),
    # google/t5-v1_1-small (and t5-small-lm-adapt)
    "t5v11": dict(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=1024, num_layers=8,
        num_decoder_layers=8, num_heads=6, feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    ),
}


def hf_weight_shapes(config):
    """Hugging Face T5ForConditionalGeneration parameter names and shapes."""
    v, d = config["vocab_size"], config["d_model"]
    inner = config["num_heads"] * config["d_kv"]
    ff, heads = config["d_ff"], config["num_heads"]
    gated = config["feed_forward_proj"].startswith("gated")
    shapes = {"shared.weight": (v, d)}
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (v, d)
    for stack in ("encoder", "decoder"):
        for i in range(config["num_layers"]):
            attention_blocks = [("0", "SelfAttention")]
            if stack == "decoder":
                attention_blocks.append(("1", "EncDecAttention"))
            for index, name in attention_blocks:
                prefix = f"{stack}.block.{i}.layer.{index}"
                for proj in "qkv":
                    shapes[f"{prefix}.{name}.{proj}.weight"] = (inner, d)
                shapes[f"{prefix}.{name}.o.weight"] = (d, inner)
                shapes[f"{prefix}.layer_norm.weight"] = (d,)
            if i == 0:
                shapes[f"{stack}.block.0.layer.0.SelfAttention."
                       "relative_attention_bias.weight"] = (32, heads)
            prefix = f"{stack}.block.{i}.layer.{2 if stack == 'decoder' else 1}"
            if gated:
                shapes[f"{prefix}.DenseReluDense.wi_0.weight"] = (ff, d)
                shapes[f"{prefix}.DenseReluDense.wi_1.weight"] = (ff, d)
            else:
                shapes[f"{prefix}.DenseReluDense.wi.weight"] = (ff, d)
            shapes[f"{prefix}.DenseReluDense.wo.weight"] = (d, ff)
            shapes[f"{prefix}.layer_norm.weight"] = (d,)
        shapes[f"{stack}.final_layer_norm.weight"] = (d,)
    return shapes


def write_spiece(path):
    import sentencepiece as spm

    words = ("the a of to and in is it that for on with as was by at be this "
             "from or an are not have but had they his her she he you").split()
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(words, 12)) for _ in range(300)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=64,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        hard_vocab_limit=False, minloglevel=2,
    )
    with open(path, "wb") as file:
        file.write(model.getvalue())


def write_checkpoint(directory, variant, shards):
    """Writes the checkpoint one shard at a time; returns total weight bytes."""
    import safetensors.numpy

    config = dict(
        CONFIGS[variant], model_type="t5", is_encoder_decoder=True,
        architectures=["T5ForConditionalGeneration"],
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        layer_norm_epsilon=1e-6, dropout_rate=0.1, decoder_start_token_id=0,
        eos_token_id=1, pad_token_id=0,
    )
    with open(os.path.join(directory, "config.json"), "w") as file:
        json.dump(config, file, indent=2)
    write_spiece(os.path.join(directory, "spiece.model"))
    shapes = hf_weight_shapes(config)
    names = sorted(shapes)
    rng = np.random.default_rng(0)
    total = 0
    weight_map = {}
    for shard in range(shards):
        shard_names = names[shard::shards]
        tensors = {
            name: rng.standard_normal(shapes[name], dtype=np.float32) * 0.05
            for name in shard_names
        }
        total += sum(t.nbytes for t in tensors.values())
        filename = (
            "model.safetensors" if shards == 1
            else f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
        )
        safetensors.numpy.save_file(
            tensors, os.path.join(directory, filename), metadata={"format": "pt"}
        )
        weight_map.update({name: filename for name in shard_names})
        del tensors
    if shards > 1:
        with open(os.path.join(directory, "model.safetensors.index.json"), "w") as file:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, file)
    return total, sum(int(np.prod(s)) for s in shapes.values())


_CHILD = r"""
import json, os, resource, sys, time
def rss_mb():
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
from keras_prompt.convert import load_hf_t5, save_keras_preset
import keras_hub
base = rss_mb()
start = time.perf_counter()
backbone, preprocessor = load_hf_t5(sys.argv[1])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result = dict(seconds=seconds, rss_after_imports_mb=base, peak_rss_mb=peak,
              rss_after_load_mb=rss_mb(), params=int(backbone.count_params()))
if len(sys.argv) > 2:
    start = time.perf_counter()
    save_keras_preset(backbone, preprocessor, sys.argv[2])
    result["save_preset_seconds"] = time.perf_counter() - start
print("RESULT " + json.dumps(result))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", choices=sorted(CONFIGS), default="t5")
    parser.add_argument("--shards", type=int, default=1)
    parser.add_argument("--preset-dir", default=None,
                        help="also save the converted model as a KerasHub preset here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        weight_bytes, params = write_checkpoint(directory, args.variant, args.shards)
        print(f"wrote random {args.variant} checkpoint: {params / 1e6:.1f}M params, "
              f"{weight_bytes / 2**20:.0f} MiB float32, {args.shards} shard(s) "
              f"in {time.perf_counter() - start:.1f} s")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                   PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        command = [sys.executable, "-c", _CHILD, directory]
        if args.preset_dir:
            command.append(args.preset_dir)
        output = subprocess.run(command, capture_output=True, text=True, env=env)
        if output.returncode != 0:
            sys.exit(output.stderr)
        line = [l for l in output.stdout.splitlines() if l.startswith("RESULT ")][-1]
        result = json.loads(line[len("RESULT "):])

    weights_mb = weight_bytes / 2**20
    growth = result["peak_rss_mb"] - result["rss_after_imports_mb"]
    print(f"load_hf_t5: {result['seconds']:.1f} s")
    print(f"RSS after imports: {result['rss_after_imports_mb']:.0f} MiB; "
          f"peak RSS: {result['peak_rss_mb']:.0f} MiB; "
          f"after load: {result['rss_after_load_mb']:.0f} MiB")
    print(f"peak growth over imports: {growth:.0f} MiB = "
          f"{growth / weights_mb:.2f} x the {weights_mb:.0f} MiB of weights")
    if "save_preset_seconds" in result:
        print(f"save_keras_preset: {result['save_preset_seconds']:.1f} s")
    assert result["params"] == params, (result["params"], params)


if __name__ == "__main__":
    main()
