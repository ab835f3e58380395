"""Pretrain the `t5_tiny_demo` backbone from scratch, reproducibly.

    python -m keras_prompt.quickstart.pretrain --output keras_prompt/presets/t5_tiny_demo

Seeded end to end with NumPy generators (data, SentencePiece sampling,
weights via `initialize_t5_weights`); dropout is 0, so no TensorFlow random
op runs, and the training step is one XLA computation, whose CPU kernels
are deterministic. The same seed and step count on the same software give
the same weights. Nothing process-wide (global seeds, op determinism) is
changed, so the script can run inside other programs and tests.

The result is a KerasHub preset directory (config.json, model.weights.h5,
tokenizer.json, preprocessor.json, assets/tokenizer/vocabulary.spm) that
`PromptedT5Seq2SeqLM.from_preset` loads.
"""

import argparse
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time

import numpy as np

# Architecture of the shipped preset: T5 with gated GELU and a tied head.
ARCHITECTURE = dict(
    num_layers=4,
    num_heads=4,
    hidden_dim=128,
    intermediate_dim=256,
    key_value_dim=32,
    dropout=0.0,
    activation="gelu",
    use_gated_activation=True,
    tie_embedding_weights=True,
)
VOCABULARY_SIZE = 512
ENCODER_LENGTH = 40
DECODER_LENGTH = 16

logger = logging.getLogger(__name__)


def train_tokenizer(seed, vocabulary_size=VOCABULARY_SIZE):
    """SentencePiece unigram model over a sample of the mixture (bytes)."""
    import sentencepiece

    from keras_prompt.quickstart import mixture

    rng = np.random.default_rng([seed, 1])
    corpus = mixture.tokenizer_corpus(rng)
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=model,
        vocab_size=vocabulary_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        user_defined_symbols=mixture.SENTINELS,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


class Batcher:
    """Tokenized, padded mixture batches from a NumPy generator."""

    def __init__(self, proto, seed, batch_size):
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
        self.rng = np.random.default_rng([seed, 2])
        self.batch_size = batch_size

    def encode(self, texts, length):
        ids = np.zeros((len(texts), length), np.int32)
        for row, text in enumerate(texts):
            pieces = self.sp.encode(text)[: length - 1] + [1]
            ids[row, : len(pieces)] = pieces
        return ids

    def __call__(self):
        from keras_prompt.quickstart import mixture

        examples = mixture.mixture_examples(self.rng, self.batch_size)
        encoder = self.encode([e[1] for e in examples], ENCODER_LENGTH)
        targets = self.encode([e[2] for e in examples], DECODER_LENGTH)
        decoder = np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], axis=1)
        return encoder, decoder, targets


def build_backbone(vocabulary_size, seed):
    import keras_hub

    from keras_prompt.models.tiny_t5 import initialize_t5_weights

    backbone = keras_hub.models.T5Backbone(vocabulary_size=vocabulary_size, **ARCHITECTURE)
    return initialize_t5_weights(backbone, seed=seed)


def weights_sha256(backbone):
    digest = hashlib.sha256()
    for weight in backbone.weights:
        digest.update(str(tuple(weight.shape)).encode())
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def pretrain(output, seed=0, steps=600, batch_size=32, learning_rate=2e-3,
             warmup_steps=300, log_every=200, threads=2, snapshot_dir=None,
             snapshot_every=1000):
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        # TensorFlow already started in this process (e.g. in a test run):
        # its thread pools are fixed; results do not depend on them.
        logger.info("TensorFlow already initialised; keeping its threads.")
    import keras
    import keras_hub

    start = time.time()
    proto = train_tokenizer(seed)
    tokenizer = keras_hub.models.T5Tokenizer(proto=proto)
    vocabulary_size = tokenizer.vocabulary_size()
    backbone = build_backbone(vocabulary_size, seed)
    batches = Batcher(proto, seed, batch_size)
    scale = float(backbone.hidden_dim) ** -0.5

    def schedule(step):
        step = tf.cast(step, tf.float32)
        warm = step / warmup_steps
        decay = tf.maximum(0.0, (steps - step) / max(1, steps - warmup_steps))
        return learning_rate * tf.minimum(warm, decay)

    optimizer = keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0)
    optimizer.build(backbone.trainable_variables)
    variables = backbone.trainable_variables

    @tf.function(jit_compile=True)
    def train_step(encoder, decoder, targets, step):
        optimizer.learning_rate.assign(schedule(step))
        with tf.GradientTape() as tape:
            outputs = backbone({
                "encoder_token_ids": encoder,
                "encoder_padding_mask": encoder != 0,
                "decoder_token_ids": decoder,
                "decoder_padding_mask": tf.concat(
                    [tf.ones_like(decoder[:, :1], tf.bool), decoder[:, 1:] != 0], axis=1),
            })
            hidden = outputs["decoder_sequence_output"] * scale
            logits = backbone.token_embedding(hidden, reverse=True)
            mask = tf.cast(targets != 0, tf.float32)
            losses = tf.keras.losses.sparse_categorical_crossentropy(
                targets, logits, from_logits=True)
            loss = tf.reduce_sum(losses * mask) / tf.reduce_sum(mask)
            correct = tf.cast(tf.argmax(logits, -1, output_type=tf.int32) == targets, tf.float32)
            accuracy = tf.reduce_sum(correct * mask) / tf.reduce_sum(mask)
        gradients = tape.gradient(loss, variables)
        optimizer.apply(gradients, variables)
        return loss, accuracy

    preprocessor = keras_hub.models.T5Seq2SeqLMPreprocessor(
        tokenizer=tokenizer, encoder_sequence_length=64, decoder_sequence_length=8)
    if snapshot_dir:
        # A loadable preset that is refreshed during training (for watching
        # progress; the final preset is written to `output` at the end).
        os.makedirs(snapshot_dir, exist_ok=True)
        backbone.save_to_preset(snapshot_dir)
        preprocessor.save_to_preset(snapshot_dir)

    log = []
    window = []
    for step in range(steps):
        encoder, decoder, targets = batches()
        loss, accuracy = train_step(encoder, decoder, targets, tf.constant(step + 1))
        window.append((float(loss), float(accuracy)))
        if (step + 1) % log_every == 0 or step + 1 == steps:
            mean = np.mean(window, axis=0)
            window = []
            entry = {"step": step + 1, "loss": round(float(mean[0]), 4),
                     "token_accuracy": round(float(mean[1]), 4),
                     "seconds": round(time.time() - start, 1)}
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if snapshot_dir and snapshot_every and (step + 1) % snapshot_every == 0:
            path = os.path.join(snapshot_dir, "model.weights.h5")
            backbone.save_weights(path + ".tmp.weights.h5")
            os.replace(path + ".tmp.weights.h5", path)
            with open(os.path.join(snapshot_dir, "step.txt"), "w") as f:
                f.write(str(step + 1))

    parent = os.path.dirname(os.path.abspath(output))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(dir=parent, prefix=".pretrain-")
    backbone.save_to_preset(staging)
    preprocessor.save_to_preset(staging)
    info = {
        "seed": seed, "steps": steps, "batch_size": batch_size,
        "learning_rate": learning_rate, "warmup_steps": warmup_steps,
        "architecture": ARCHITECTURE, "vocabulary_size": vocabulary_size,
        "encoder_length": ENCODER_LENGTH, "decoder_length": DECODER_LENGTH,
        "parameters": int(backbone.count_params()),
        "weights_sha256": weights_sha256(backbone),
        "seconds": round(time.time() - start, 1),
        "log": log,
    }
    with open(os.path.join(staging, "pretraining.json"), "w") as f:
        json.dump(info, f, indent=1)
    if os.path.isdir(output):
        shutil.rmtree(output)
    os.replace(staging, output)
    return info


def main(argv=None):  # noqa: D103
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", required=True, help="preset directory to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--snapshot-dir", help="refresh a preset here during training")
    parser.add_argument("--snapshot-every", type=int, default=1000)
    args = parser.parse_args(argv)
    info = pretrain(args.output, seed=args.seed, steps=args.steps,
                    batch_size=args.batch_size, learning_rate=args.learning_rate,
                    threads=args.threads, snapshot_dir=args.snapshot_dir,
                    snapshot_every=args.snapshot_every)
    print(json.dumps({k: v for k, v in info.items() if k != "log"}, indent=1))


if __name__ == "__main__":
    main()
