"""Prompt design, prompt tuning and model tuning on the held-out demo tasks.

Shared by `keras-prompt quickstart`, `examples/paper_claims.py` and the
tests. Data are tokenized once in NumPy; each training step is one
XLA-compiled function; no global seeds are set (sampling uses NumPy
generators, the prompt initializer its own seed).
"""

import time

import numpy as np

from keras_prompt.quickstart import tasks as demo_tasks

DEMO_PRESET = "t5_tiny_demo"
ENCODER_LENGTH = 48
DECODER_LENGTH = 4


def load_demo(preset=DEMO_PRESET, encoder_sequence_length=ENCODER_LENGTH,
              decoder_sequence_length=8):
    """`(backbone, preprocessor)` of the demo preset (or any T5 preset)."""
    from keras_prompt.models.presets import load_backbone_and_preprocessor

    return load_backbone_and_preprocessor(
        preset, encoder_sequence_length=encoder_sequence_length,
        decoder_sequence_length=decoder_sequence_length)


def tokenize(tokenizer, texts, length):
    """`(ids, mask)` int32 `[len(texts), length]`, `</s>`-terminated."""
    ids = np.zeros((len(texts), length), np.int32)
    pieces = tokenizer(list(texts))
    pieces = pieces.to_list() if hasattr(pieces, "to_list") else [list(p) for p in pieces]
    end = tokenizer.end_token_id
    for row, p in enumerate(pieces):
        p = [int(i) for i in p][: length - 1] + [end]
        ids[row, : len(p)] = p
    return ids, (ids != 0).astype(np.int32)


def label_token_ids(tokenizer, labels):
    """Each label word's target ids (with `</s>`)."""
    return [[int(i) for i in np.asarray(tokenizer(word))] + [tokenizer.end_token_id]
            for word in labels]


class Split:
    """A tokenized split of a held-out task."""

    def __init__(self, tokenizer, task, split, template=None,
                 encoder_length=ENCODER_LENGTH, decoder_length=DECODER_LENGTH):
        self.texts, self.labels = demo_tasks.split_texts(task, split, template)
        self.label_words = demo_tasks.TASKS[task]["labels"]
        self.encoder_ids, self.encoder_mask = tokenize(tokenizer, self.texts, encoder_length)
        self.choices = label_token_ids(tokenizer, self.label_words)
        targets = np.zeros((len(self.labels), decoder_length), np.int32)
        for row, label in enumerate(self.labels):
            t = self.choices[label][:decoder_length]
            targets[row, : len(t)] = t
        self.targets = targets
        self.decoder_ids = np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], 1)

    def __len__(self):
        return len(self.labels)


def _ce(logits, targets):
    import tensorflow as tf

    mask = tf.cast(targets != 0, tf.float32)
    losses = tf.keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
    return tf.reduce_sum(losses * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


class Scorer:
    """Rank classification and greedy label decoding for any logits function
    `fn(encoder_ids, encoder_mask, decoder_ids, decoder_mask) -> logits`."""

    def __init__(self, logits_fn, batch_size=100, compiled=False):
        import tensorflow as tf

        self.batch_size = batch_size
        self._fn = logits_fn if compiled else tf.function(logits_fn, jit_compile=True)

    def scores(self, split):
        """Summed log-likelihood of each label word, `[N, num_labels]`."""
        import tensorflow as tf

        out = np.zeros((len(split), len(split.choices)), np.float32)
        for start in range(0, len(split), self.batch_size):
            ids = split.encoder_ids[start:start + self.batch_size]
            mask = split.encoder_mask[start:start + self.batch_size]
            n = len(ids)
            if n < self.batch_size:  # static shapes: pad the last batch
                pad = self.batch_size - n
                ids = np.concatenate([ids, np.repeat(ids[:1], pad, 0)])
                mask = np.concatenate([mask, np.repeat(mask[:1], pad, 0)])
            for c, choice in enumerate(split.choices):
                target = np.asarray([choice], np.int32).repeat(len(ids), 0)
                decoder = np.concatenate([np.zeros_like(target[:, :1]), target[:, :-1]], 1)
                logits = self._fn(ids, mask, decoder, np.ones_like(decoder))
                logp = tf.nn.log_softmax(logits, -1).numpy()
                picked = np.take_along_axis(logp, target[..., None], -1)[..., 0].sum(-1)
                out[start:start + n, c] = picked[:n]
        return out

    def rank_accuracy(self, split):
        return float(100.0 * np.mean(self.scores(split).argmax(-1) == split.labels))


def prompted_logits_fn(model):
    def fn(ids, mask, decoder, decoder_mask):
        return model({"encoder_token_ids": ids, "encoder_padding_mask": mask,
                      "decoder_token_ids": decoder, "decoder_padding_mask": decoder_mask},
                     training=False)
    return fn


def backbone_logits_fn(backbone, training=False):
    scale = float(backbone.hidden_dim) ** -0.5
    tied = backbone.tie_embedding_weights

    def fn(ids, mask, decoder, decoder_mask):
        out = backbone({"encoder_token_ids": ids, "encoder_padding_mask": mask,
                        "decoder_token_ids": decoder, "decoder_padding_mask": decoder_mask},
                       training=training)
        hidden = out["decoder_sequence_output"]
        if tied:
            hidden = hidden * scale
        return backbone.token_embedding(hidden, reverse=True)
    return fn


def generated_label_accuracy(model, split, mode="strict", batch_size=100):
    """Greedy decoding compared with the label words: `"strict"` (exact
    text) or `"first_word"` (first word, lower-cased, punctuation stripped)."""
    predictions = []
    for start in range(0, len(split), batch_size):
        texts = split.texts[start:start + batch_size]
        predictions.extend(model.generate(texts))
    return _match_accuracy(predictions, split, mode), predictions


def _to_str(value):
    if hasattr(value, "numpy"):
        value = value.numpy()
    return value.decode() if isinstance(value, bytes) else str(value)


def _match_accuracy(predictions, split, mode):
    import string

    hits = 0
    for text, label in zip(predictions, split.labels):
        text = text.strip().lower()
        if mode == "first_word":
            text = text.split()[0].strip(string.punctuation) if text.split() else ""
        hits += text == split.label_words[label]
    return 100.0 * hits / len(split)


def prompt_design(backbone, preprocessor, task, split="test", templates=None,
                  generate=True, log=print):
    """Frozen model, hand-written text prompts: the best accuracy over the
    templates and over three readouts (strict greedy match, first-word
    greedy match, rank classification of the label words). Choosing the best
    on the evaluated split favours the baseline (conservative)."""
    import tensorflow as tf

    templates = templates or demo_tasks.PROMPT_DESIGNS[task]
    fn = tf.function(backbone_logits_fn(backbone), jit_compile=True)
    scorer = Scorer(fn, compiled=True)
    results = []
    for template in templates:
        data = Split(preprocessor.tokenizer, task, split, template)
        entry = {"template": template, "rank": scorer.rank_accuracy(data)}
        if generate:
            predictions = greedy_backbone_decode(backbone, preprocessor.tokenizer, data, fn=fn)
            entry["strict"] = _match_accuracy(predictions, data, "strict")
            entry["first_word"] = _match_accuracy(predictions, data, "first_word")
            entry["example_output"] = predictions[0]
        entry["best"] = max(v for k, v in entry.items() if k in ("rank", "strict", "first_word"))
        log(f"  prompt design {entry['best']:5.1f}  {template!r}")
        results.append(entry)
    best = max(results, key=lambda e: e["best"])
    return best["best"], results


def greedy_backbone_decode(backbone, tokenizer, split, max_length=DECODER_LENGTH,
                           batch_size=100, fn=None):
    """Greedy decoding of the frozen backbone without any prompt (uncached;
    targets are a few tokens)."""
    import tensorflow as tf

    fn = fn or tf.function(backbone_logits_fn(backbone), jit_compile=True)
    outputs = []
    for start in range(0, len(split), batch_size):
        ids = split.encoder_ids[start:start + batch_size]
        mask = split.encoder_mask[start:start + batch_size]
        n = len(ids)
        if n < batch_size:
            pad = batch_size - n
            ids = np.concatenate([ids, np.repeat(ids[:1], pad, 0)])
            mask = np.concatenate([mask, np.repeat(mask[:1], pad, 0)])
        decoder = np.zeros((batch_size, max_length), np.int32)
        done = np.zeros(batch_size, bool)
        for t in range(max_length - 1):
            logits = fn(ids, mask, decoder, np.ones_like(decoder)).numpy()
            nxt = logits[:, t].argmax(-1)
            nxt[done] = 0
            decoder[:, t + 1] = nxt
            done |= nxt == tokenizer.end_token_id
        for row in range(n):
            tokens = []
            for i in decoder[row, 1:]:
                if i in (0, tokenizer.end_token_id):
                    break
                tokens.append(int(i))
            outputs.append(_to_str(tokenizer.detokenize(np.asarray(tokens, np.int32)))
                           if tokens else "")
    return outputs


def prompt_tune(backbone, preprocessor, task, *, steps=600, batch_size=32,
                prompt_length=20, initializer="class_labels", learning_rate=0.3,
                seed=0, eval_every=None, progress=0, log=print):
    """Prompt-tune a `PromptedT5Seq2SeqLM` on a held-out task.

    Returns `(model, history)` where history lists `(step, loss,
    validation rank accuracy)`.
    """
    import tensorflow as tf

    from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM
    from keras_prompt.optimizers import Adafactor

    labels = demo_tasks.TASKS[task]["labels"]
    model = PromptedT5Seq2SeqLM(backbone, preprocessor, prompt_length=prompt_length,
                                prompt_initializer=initializer, labels=labels, seed=seed)
    optimizer = Adafactor(learning_rate=learning_rate)
    variables = model.trainable_weights
    optimizer.build(variables)
    train = Split(preprocessor.tokenizer, task, "train")
    validation = Split(preprocessor.tokenizer, task, "validation")

    @tf.function(jit_compile=True)
    def step_fn(ids, mask, decoder, targets):
        with tf.GradientTape() as tape:
            logits = model({"encoder_token_ids": ids, "encoder_padding_mask": mask,
                            "decoder_token_ids": decoder,
                            "decoder_padding_mask": tf.ones_like(decoder)}, training=True)
            loss = _ce(logits, targets)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    scorer = Scorer(prompted_logits_fn(model))
    history = _loop(step_fn, train, steps, batch_size, seed, eval_every,
                    lambda: scorer.rank_accuracy(validation), log, progress,
                    snapshot=model.get_prompt, restore=model.set_prompt)
    return model, history


def model_tune(backbone, preprocessor, task, *, steps=600, batch_size=32,
               learning_rate=1e-3, seed=0, eval_every=None, progress=0, log=print):
    """Fine-tune every backbone weight (no prompt) with Adafactor at T5's
    fine-tuning rate. Modifies `backbone` in place: pass a fresh copy."""
    import tensorflow as tf

    from keras_prompt.optimizers import Adafactor

    backbone.trainable = True
    fn = backbone_logits_fn(backbone, training=True)
    optimizer = Adafactor(learning_rate=learning_rate)
    variables = backbone.trainable_variables
    optimizer.build(variables)
    train = Split(preprocessor.tokenizer, task, "train")
    validation = Split(preprocessor.tokenizer, task, "validation")

    @tf.function(jit_compile=True)
    def step_fn(ids, mask, decoder, targets):
        with tf.GradientTape() as tape:
            loss = _ce(fn(ids, mask, decoder, tf.ones_like(decoder)), targets)
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    scorer = Scorer(backbone_logits_fn(backbone))

    def restore(values):
        for variable, value in zip(variables, values):
            variable.assign(value)

    history = _loop(step_fn, train, steps, batch_size, seed, eval_every,
                    lambda: scorer.rank_accuracy(validation), log, progress,
                    snapshot=lambda: [v.numpy().copy() for v in variables],
                    restore=restore)
    return backbone, history


def _loop(step_fn, train, steps, batch_size, seed, eval_every, validate, log, progress=0,
          snapshot=None, restore=None):
    """Trains for `steps`; with `eval_every`, validates periodically and
    keeps the weights of the best validation accuracy (the paper's early
    stopping), restoring them at the end."""
    rng = np.random.default_rng([seed, 7])
    best = (-1.0, None, 0)
    bar = None
    if progress:
        import keras

        bar = keras.utils.Progbar(steps, stateful_metrics=["loss"])
    history, losses, start = [], [], time.time()
    order = np.array([], int)
    for step in range(1, steps + 1):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(len(train))])
        idx, order = order[:batch_size], order[batch_size:]
        loss = step_fn(train.encoder_ids[idx], train.encoder_mask[idx],
                       train.decoder_ids[idx], train.targets[idx])
        losses.append(float(loss))
        if bar is not None:
            bar.update(step, [("loss", float(np.mean(losses[-20:])))])
        if (eval_every and step % eval_every == 0) or step == steps:
            accuracy = validate() if eval_every else None
            history.append({"step": step, "loss": float(np.mean(losses[-50:])),
                            "validation_accuracy": accuracy,
                            "seconds": round(time.time() - start, 1)})
            log(f"  step {step}: loss {history[-1]['loss']:.4f}"
                + (f", validation {accuracy:.1f}" if accuracy is not None else ""))
            if accuracy is not None and snapshot is not None and accuracy > best[0]:
                best = (accuracy, snapshot(), step)
    if best[1] is not None and restore is not None:
        restore(best[1])
        history.append({"best_step": best[2], "best_validation_accuracy": best[0]})
        log(f"  kept the prompt/weights of step {best[2]} (validation {best[0]:.1f})")
    return history
