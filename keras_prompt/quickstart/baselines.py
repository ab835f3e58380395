"""The demo's baselines next to prompt tuning: prompt design and model tuning.

Only the quickstart and `examples/paper_claims.py` need them. Both run on
the library's pieces: the model (`prompt_length=0` is the frozen model
without a prompt), the text-to-text pipeline, `TaskEvaluator` (greedy
decoding with the one detokenization rule, rank classification through
`score()`), `compile()`'s loss and `model.fit`.
"""

import string

import numpy as np

from keras_prompt.quickstart import tasks as demo_tasks

DEMO_PRESET = "t5_tiny_demo"
# Held-out inputs are at most ~40 tokens.
ENCODER_LENGTH = 48
EVAL_BATCH_SIZE = 100


def load_demo(preset=DEMO_PRESET):
    """`(backbone, preprocessor)` of the demo preset (or any T5 preset),
    packed to the held-out tasks' lengths."""
    from keras_prompt.models.presets import load_backbone_and_preprocessor

    return load_backbone_and_preprocessor(
        preset, encoder_sequence_length=ENCODER_LENGTH, decoder_sequence_length=4
    )


def _evaluator(model, task, rank_classification):
    from keras_prompt.data import TextToTextPipeline
    from keras_prompt.training.task_evaluator import TaskEvaluator

    tokenizer = model.preprocessor.tokenizer
    pipeline = TextToTextPipeline(
        tokenizer, ENCODER_LENGTH, task.default_target_length(tokenizer)
    )
    return TaskEvaluator(
        model,
        task,
        pipeline,
        batch_size=EVAL_BATCH_SIZE,
        rank_classification=rank_classification,
    )


def first_word(text):
    """A lenient readout: the first word, lower-cased, without punctuation."""
    words = text.strip().lower().split()
    return words[0].strip(string.punctuation) if words else ""


def design_model(backbone, preprocessor):
    """The frozen model without a prompt, which `prompt_design` reads out.
    Share one between tasks: its generation and scoring functions compile
    once."""
    from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM

    return PromptedT5Seq2SeqLM(backbone, preprocessor, prompt_length=0)


def prompt_design(
    backbone, preprocessor, task_name, split="test", log=print, model=None
):
    """The frozen model with hand-written text prompts instead of a soft one.

    Each template of `PROMPT_DESIGNS[task_name]` formats the inputs; it is
    read out three ways (strict greedy match, first-word greedy match, rank
    classification of the label words) and the best of all is returned.
    Choosing on the evaluated split itself favours the baseline.

    Args:
        backbone, preprocessor: the frozen T5 and its preprocessor.
        task_name: a demo task with `PROMPT_DESIGNS`.
        split: the split evaluated.
        log: where each template's result goes.
        model: a `design_model(backbone, preprocessor)` to reuse (built
            when `None`).

    Returns:
        `(best accuracy in percent, per-template details)`.
    """
    if model is None:
        model = design_model(backbone, preprocessor)
    results = []
    for template in demo_tasks.PROMPT_DESIGNS[task_name]:
        task = demo_tasks.make_task(task_name, template=template)
        examples = task.load(split)
        greedy = _evaluator(model, task, False).predict(examples)
        words = task.label_words
        labels = greedy["labels"]
        entry = {
            "template": template,
            "strict": 100.0 * float(np.mean(greedy["predictions"] == labels)),
            "first_word": 100.0
            * float(
                np.mean(
                    [
                        first_word(text) == words[label]
                        for text, label in zip(greedy["texts"], labels)
                    ]
                )
            ),
            "rank": _evaluator(model, task, True).evaluate(examples)["accuracy"],
            "example_output": greedy["texts"][0],
        }
        entry["best"] = max(entry["strict"], entry["first_word"], entry["rank"])
        log(f"  prompt design {entry['best']:5.1f}  {template!r}")
        results.append(entry)
    return max(entry["best"] for entry in results), results


def model_tune(
    preset,
    task_name,
    *,
    steps,
    batch_size,
    learning_rate=1e-3,
    seed=0,
):
    """Model tuning: every backbone weight trained (no prompt), with
    Adafactor at T5's fine-tuning rate, on the same pipeline and loss as
    prompt tuning, then test accuracy by rank classification.

    Loads its own copy of `preset` (the weights change).

    Returns:
        Test accuracy in percent.
    """
    import keras

    from keras_prompt.data import TextToTextPipeline
    from keras_prompt.data import get_task
    from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM
    from keras_prompt.optimizers import Adafactor
    from keras_prompt.training.seeding import seed_random_layers

    backbone, preprocessor = load_demo(preset)
    task = get_task(task_name)
    model = PromptedT5Seq2SeqLM(backbone, preprocessor, prompt_length=0)
    backbone.trainable = True
    model.prompt_layer.trainable = False
    seed_random_layers(model, seed)
    model.compile(optimizer=Adafactor(learning_rate=learning_rate))
    tokenizer = preprocessor.tokenizer
    pipeline = TextToTextPipeline(
        tokenizer, ENCODER_LENGTH, task.default_target_length(tokenizer)
    )
    data = pipeline.training_dataset(task.load("train"), batch_size, seed=seed)
    keras.Model.fit(model, data, epochs=1, steps_per_epoch=steps, verbose=0)
    return _evaluator(model, task, True).evaluate(task.load("test"))["accuracy"]
