"""A tiny model whose prompts disagree, for the prompt-ensemble tests.

The random one-layer backbone's LM-head column of `</s>` is pointed at the token the
prompts generate most often (as `tests/export/conftest.py` does), so that
outputs stop early and repeat; the label words are the outputs the prompts
give most often. Of a few random prompts, the ensemble takes the first
three that disagree on some example with a majority and tie on another.
"""

import collections
import itertools

import numpy as np
import pytest

from tests.conftest import TINY_CORPUS
from tests.conftest import make_tiny_backbone
from tests.conftest import make_tiny_preprocessor
from tests.training.fixtures import write_csv

PROMPT_LENGTH = 4
HIDDEN_DIM = 16
ENCODER_SEQUENCE_LENGTH = 16
NUM_PROMPTS = 3
NUM_CANDIDATES = 8
BATCH_SIZE = 4
TASK = "mood"
TEXTS = TINY_CORPUS[::37][:12]
TEMPLATE = "{text}"


def _generated_ids(model, prompt, length):
    batch = model.preprocessor.generate_preprocess(TEXTS, sequence_length=length)
    preprocessor, model.preprocessor = model.preprocessor, None
    try:
        out = model.generate(
            {key: np.asarray(batch[key]) for key in ("encoder_token_ids",
                                                     "encoder_padding_mask")},
            max_length=length,
            prompts=np.broadcast_to(prompt, (len(TEXTS),) + prompt.shape),
        )
    finally:
        model.preprocessor = preprocessor
    return out["decoder_token_ids"]


def _calibrate_end_token(model, prompts):
    counts = collections.Counter()
    for prompt in prompts:
        counts.update(_generated_ids(model, prompt, 6)[:, 2:].ravel().tolist())
    for token in (0, 1, 2):
        counts.pop(token, None)
    token = counts.most_common(1)[0][0]
    embedding = model.backbone.token_embedding
    head = np.array(embedding.reverse_embeddings.numpy())
    head[:, 1] = head[:, token] * 1.01
    embedding.reverse_embeddings.assign(head)


def _frequent_outputs(model, prompts, count=3):
    texts = collections.Counter()
    for prompt in prompts:
        outputs = model.generate(
            TEXTS, max_length=6,
            prompts=np.broadcast_to(prompt, (len(TEXTS),) + prompt.shape))
        texts.update(text.strip() for text in outputs if text.strip())
    return [text for text, _ in texts.most_common(count)]


def greedy_labels(model, prompt, labels):
    """A prompt's label index of each of `TEXTS` by greedy decoding to the
    default target length (-1: no label word), computed example by example
    from `model.generate`."""
    tokenizer = model.preprocessor.tokenizer
    length = max(2, max(len(np.asarray(tokenizer(w))) for w in labels) + 1)
    outputs = model.generate(
        TEXTS, max_length=length + 1,
        prompts=np.broadcast_to(prompt, (len(TEXTS),) + prompt.shape))
    return [labels.index(o.strip()) if o.strip() in labels else -1
            for o in outputs]


def vote_kinds(votes):
    """`(majority over a dissent, tie)` flags of one example's votes."""
    counts = collections.Counter(v for v in votes if v >= 0).most_common()
    tie = len(counts) > 1 and counts[0][1] == counts[1][1]
    return (len(counts) > 1 and not tie, tie)


def _disagreeing_prompts(model, candidates, labels):
    table = [greedy_labels(model, prompt, labels) for prompt in candidates]
    for chosen in itertools.combinations(range(len(candidates)), NUM_PROMPTS):
        kinds = [vote_kinds(votes) for votes in zip(*(table[i] for i in chosen))]
        if any(k[0] for k in kinds) and any(k[1] for k in kinds):
            return list(chosen)
    raise AssertionError(f"No {NUM_PROMPTS} of the prompts disagree: {table}")


def build_ensemble_setup(root):
    """The model, its prompt files and a file task."""
    import keras_prompt
    from keras_prompt.data import resolve_task

    model = keras_prompt.PromptedT5Seq2SeqLM(
        make_tiny_backbone(tied=False, num_layers=1),
        preprocessor=make_tiny_preprocessor(ENCODER_SEQUENCE_LENGTH, 8),
        prompt_length=PROMPT_LENGTH, seed=0)
    model.compile(jit_compile=False)
    rng = np.random.default_rng(5)
    candidates = rng.uniform(-0.5, 0.5, (NUM_CANDIDATES, PROMPT_LENGTH,
                                         HIDDEN_DIM)).astype("float32")
    _calibrate_end_token(model, candidates[:4])
    labels = _frequent_outputs(model, candidates[:3])
    chosen = _disagreeing_prompts(model, candidates, labels)
    prompts = candidates[chosen]
    files = []
    for index, prompt in enumerate(prompts):
        model.set_prompt(prompt)
        files.append(model.save_prompt(
            str(root / f"{TASK}_{index}.safetensors"), task=TASK,
            labels=labels))
    model.set_prompt(candidates[min(set(range(NUM_CANDIDATES)) - set(chosen))])
    other = model.save_prompt(str(root / "other.safetensors"), task="other")
    model.set_prompt(prompts[0])
    data = write_csv(root / "dev.csv", [
        {"text": text, "label": labels[i % len(labels)]}
        for i, text in enumerate(TEXTS)
    ])
    task = resolve_task(validation_file=data, template=TEMPLATE,
                        label_column="label", labels=",".join(labels))
    return {
        "model": model, "prompts": prompts, "files": files,
        "other": other, "labels": labels, "data": data,
        "task": task, "root": root,
    }


@pytest.fixture(scope="session")
def ensemble_setup(tmp_path_factory):
    return build_ensemble_setup(tmp_path_factory.mktemp("ensemble"))


@pytest.fixture(scope="session")
def ensemble_vote(ensemble_setup):
    """`keras_prompt.ensemble()` of the three prompts with predictions
    (`result`), and each call it made of the model's `generate` and `score`
    (`calls`: name, rows, the rows' prompts)."""
    import keras_prompt

    setup = ensemble_setup
    model = setup["model"]
    calls = []

    def recording(name):
        method = getattr(model, name)

        def record(inputs, *args, **kwargs):
            calls.append((name, len(inputs["encoder_token_ids"]),
                          np.asarray(kwargs["prompts"])))
            return method(inputs, *args, **kwargs)
        return record

    model.generate, model.score = recording("generate"), recording("score")
    try:
        result = keras_prompt.ensemble(
            model, setup["files"], setup["task"], batch_size=BATCH_SIZE,
            max_input_length=16, return_predictions=True)
    finally:
        del model.generate, model.score
    return {"result": result, "calls": calls}


@pytest.fixture(scope="session")
def prompt_outputs(ensemble_setup):
    """Each prompt alone, example by example from `model.generate` and
    `model.score`: `greedy` labels `[N, B]`, label `scores` `[N, B, C]`,
    and the `gold` labels of the task's data."""
    setup = ensemble_setup
    model, labels = setup["model"], setup["labels"]
    greedy, scores = [], []
    for prompt in setup["prompts"]:
        greedy.append(greedy_labels(model, prompt, labels))
        scores.append(model.score(
            list(TEXTS), labels,
            prompts=np.broadcast_to(prompt, (len(TEXTS),) + prompt.shape)))
    gold = np.arange(len(TEXTS)) % len(labels)
    return {"greedy": np.array(greedy), "scores": np.array(scores),
            "gold": gold}
