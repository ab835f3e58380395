"""The pretraining mixture of the `t5_tiny_demo` backbone.

A multi-task text-to-text mixture with task prefixes, in the spirit of T5's
multi-task pretraining and of the LM-adapted T5 1.1 checkpoints the paper
prompt-tunes. Every example is generated from `keras_prompt.quickstart.world`
by a NumPy `Generator`; the same seed gives the same stream.

| name | weight | input | target |
| --- | --- | --- | --- |
| `prefix_lm` | 3 | the first part of a world sentence (story, review, chatter, filler) | the rest |
| `span_corruption` | 2 | a world sentence with ~15% of its words replaced by `<extra_id_N>` sentinels | `<extra_id_0> span <extra_id_1> span ...` |
| `sentiment` | 1 | `sentiment review: <review>` | `positive` / `negative` |
| `topic` | 1 | `topic: <story>` | the noun's category (`animal`, `food`, `vehicle`, `tool`, `plant`, `clothing`) |
| `color` | 1 | `color: <story with a color>` | the color word |

The held-out tasks (`keras_prompt.quickstart.tasks`) use other formats and
other label words; their label words occur in the mixture only as ordinary
text (chatter and filler), never as the target of a task.
"""

import numpy as np

from keras_prompt.quickstart import world

MIXTURE_WEIGHTS = {
    "prefix_lm": 3,
    "span_corruption": 2,
    "sentiment": 1,
    "topic": 1,
    "color": 1,
}
NUM_SENTINELS = 32
SENTINELS = [f"<extra_id_{i}>" for i in range(NUM_SENTINELS)]


def any_sentence(rng):
    """A sentence of any kind of world text."""
    kind = rng.random()
    if kind < 0.35:
        return world.story(rng)[0]
    if kind < 0.65:
        return world.review(rng, positive=rng.random() < 0.5)[0]
    if kind < 0.85:
        return world.chatter(rng)
    return world.filler(rng)


def _two_sentences(rng):
    text = any_sentence(rng)
    if rng.random() < 0.4:
        text = text + " . " + any_sentence(rng)
    return text


def prefix_lm(rng):
    words = _two_sentences(rng).split()
    if len(words) < 2:
        words = words + ["."]
    cut = int(rng.integers(1, len(words)))
    return " ".join(words[:cut]), " ".join(words[cut:])


def span_corruption(rng, noise_density=0.15, mean_span_length=3.0):
    """T5's span corruption at word level."""
    words = _two_sentences(rng).split()
    n = len(words)
    num_noise = max(1, int(round(n * noise_density)))
    num_spans = max(1, min(int(round(num_noise / mean_span_length)), num_noise, n - num_noise))
    # Random split of num_noise noise words and n - num_noise kept words into
    # num_spans runs each, interleaved kept/noise (as T5's random_spans_noise_mask).
    def split(total, parts):
        cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False)) if parts > 1 else np.array([], int)
        return np.diff(np.concatenate([[0], cuts, [total]])).tolist()

    noise_lengths = split(num_noise, num_spans)
    keep_lengths = split(n - num_noise, num_spans) if n - num_noise >= num_spans else [n - num_noise] + [0] * (num_spans - 1)
    inputs, targets, position = [], [], 0
    for i, (keep, noise) in enumerate(zip(keep_lengths, noise_lengths)):
        inputs.extend(words[position:position + keep])
        position += keep
        inputs.append(SENTINELS[i])
        targets.append(SENTINELS[i])
        targets.extend(words[position:position + noise])
        position += noise
    inputs.extend(words[position:])
    return " ".join(inputs), " ".join(targets)


def sentiment(rng):
    positive = rng.random() < 0.5
    text, _ = world.review(rng, positive)
    return f"sentiment review: {text}", "positive" if positive else "negative"


def topic(rng):
    category = world.choice(rng, list(world.CATEGORIES))
    text, noun, _ = world.story(rng, world.choice(rng, world.CATEGORIES[category]))
    return f"topic: {text}", category


def color(rng):
    while True:
        text, _, col = world.story(rng)
        if col:
            return f"color: {text}", col


GENERATORS = {
    "prefix_lm": prefix_lm,
    "span_corruption": span_corruption,
    "sentiment": sentiment,
    "topic": topic,
    "color": color,
}


def mixture_examples(rng, count):
    """`count` `(task, input, target)` triples drawn from the mixture."""
    names = list(MIXTURE_WEIGHTS)
    weights = np.array([MIXTURE_WEIGHTS[n] for n in names], dtype=float)
    picks = rng.choice(len(names), size=count, p=weights / weights.sum())
    return [(names[i],) + GENERATORS[names[i]](rng) for i in picks]


def tokenizer_corpus(rng, count=30000):
    """Sentences for training the SentencePiece vocabulary."""
    texts = world.vocabulary_sentences()
    for _, source, target in mixture_examples(rng, count):
        texts.append(source.replace("<extra_id_", " <extra_id_"))
        texts.append(target)
    return texts
