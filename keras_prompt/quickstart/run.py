"""`keras-prompt quickstart`: the whole job on the built-in demo backbone.

1. load the pretrained `t5_tiny_demo` backbone (shipped in the package);
2. prompt design: the frozen model with the best hand-written text prompt;
3. prompt tuning on two held-out tasks (`demo_animal`, `demo_mood`) with
   `keras_prompt.train()` (the paper's Adafactor 0.3, class-label init,
   batch 32, best prompt on validation);
4. test accuracy with `keras_prompt.evaluate()` (rank classification and
   greedy exact match);
5. export a SavedModel with a bank of the two prompts and an ONNX model;
6. run one mixed-task batch through Keras, the SavedModel and ONNX Runtime
   and check they agree; check the backbone's weights did not change.

Everything is written under `output`; `summary.json` holds the numbers.
"""

import hashlib
import json
import os
import time

import numpy as np

from keras_prompt.quickstart import baselines
from keras_prompt.quickstart import tasks as demo_tasks

DEFAULT_TASKS = ("demo_animal", "demo_mood")
MAX_DECODE_LENGTH = 4


def weights_sha256(backbone):
    """SHA-256 over every backbone weight (shape and bytes, in order)."""
    digest = hashlib.sha256()
    for weight in backbone.weights:
        digest.update(str(tuple(weight.shape)).encode())
        digest.update(np.ascontiguousarray(np.asarray(weight.numpy())).tobytes())
    return digest.hexdigest()


def _say(text=""):
    print(text, flush=True)


def _table(rows, headers):
    widths = [
        max(len(str(row[i])) for row in rows + [headers])
        for i in range(len(headers))
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def mixed_batch(task_names, per_task=4, split="test"):
    """Interleaved `(task, text, label word)` examples of several tasks."""
    columns = []
    for name in task_names:
        texts, labels = demo_tasks.split_texts(name, split)
        words = demo_tasks.TASKS[name]["labels"]
        columns.append(
            [(name, t, words[l]) for t, l in zip(texts[:per_task], labels[:per_task])]
        )
    return [row for group in zip(*columns) for row in group]


def training_config(steps=300, prompt_length=20, batch_size=32,
                    learning_rate=0.3, prompt_initializer="class_labels",
                    seed=0):
    """The quickstart's `TrainConfig` for a held-out demo task: validation
    by rank classification six times per run, one checkpoint, quiet, and
    the run's output directory replaced on a re-run.

    Example:
    ```python
    keras_prompt.train("t5_tiny_demo", "demo_mood", output_dir="runs/mood",
                       config=training_config(steps=300))
    ```
    """
    import keras_prompt

    return keras_prompt.TrainConfig(
        prompt_length=prompt_length,
        prompt_initializer=prompt_initializer,
        learning_rate=learning_rate,
        steps=steps,
        batch_size=batch_size,
        max_input_length=baselines.ENCODER_LENGTH,
        eval_every=max(1, steps // 6),
        eval_batch_size=baselines.EVAL_BATCH_SIZE,
        rank_classification=True,
        checkpoint_every=steps,
        tensorboard=False,
        verbose=0,
        # The quickstart owns its output directory: a re-run replaces it.
        overwrite=True,
        seed=seed,
    )


def run_quickstart(
    output,
    preset=baselines.DEMO_PRESET,
    task_names=DEFAULT_TASKS,
    steps=300,
    prompt_length=20,
    batch_size=32,
    learning_rate=0.3,
    prompt_initializer="class_labels",
    seed=0,
    export=True,
):
    """Runs the quickstart; returns the summary dict (also in
    `output/summary.json`)."""
    import keras_prompt

    started = time.time()
    os.makedirs(output, exist_ok=True)
    _say(f"[1/6] Loading the demo backbone '{preset}' (frozen) ...")
    backbone, preprocessor = baselines.load_demo(preset)
    before = weights_sha256(backbone)
    _say(
        f"      {backbone.count_params():,} parameters, hidden "
        f"{backbone.hidden_dim}, {backbone.num_layers}+{backbone.num_layers} "
        f"layers, vocabulary {backbone.vocabulary_size}; weights sha256 "
        f"{before[:16]}..."
    )
    config = training_config(
        steps=steps, prompt_length=prompt_length, batch_size=batch_size,
        learning_rate=learning_rate, prompt_initializer=prompt_initializer,
    )
    results = {}
    prompt_files = {}
    design_model = baselines.design_model(backbone, preprocessor)
    for number, name in enumerate(task_names):
        words = demo_tasks.TASKS[name]["labels"]
        _say(
            f"\n[2/6] Prompt design on held-out task '{name}' (labels "
            f"{words}): frozen model, hand-written text prompts, test split"
        )
        design, design_details = baselines.prompt_design(
            backbone, preprocessor, name, split="test", log=_say,
            model=design_model,
        )

        _say(
            f"\n[3/6] Prompt tuning on '{name}' with keras_prompt.train(): "
            f"{steps} steps, batch {batch_size}, prompt {prompt_length} x "
            f"{backbone.hidden_dim}, {prompt_initializer} init, Adafactor "
            f"{learning_rate}"
        )
        run_dir = os.path.join(output, "runs", name)
        trained = keras_prompt.train(
            backbone,
            name,
            output_dir=run_dir,
            config=config.replace(seed=seed + number),
            preprocessor=preprocessor,
        )
        model = trained["model"]
        best = trained["metrics"]["best"]
        _say(
            f"      best validation accuracy {best['accuracy']:.1f} at step "
            f"{best['step']} ({trained['prompt_path']})"
        )
        prompt_files[name] = trained["prompt_path"]

        _say(f"\n[4/6] Test accuracy of the tuned prompt on '{name}' (keras_prompt.evaluate())")
        evaluated = {
            mode: keras_prompt.evaluate(
                model,
                None,
                name,
                split="test",
                batch_size=baselines.EVAL_BATCH_SIZE,
                max_input_length=baselines.ENCODER_LENGTH,
                rank_classification=mode == "rank",
            )
            for mode in ("rank", "greedy")
        }
        rank = evaluated["rank"]["accuracy"]
        greedy = evaluated["greedy"]["accuracy"]
        results[name] = {
            "labels": words,
            "prompt_design_accuracy": round(design, 2),
            "prompt_design_best_template": max(
                design_details, key=lambda e: e["best"]
            )["template"],
            "prompt_tuning_accuracy": round(rank, 2),
            "prompt_tuning_greedy_accuracy": round(greedy, 2),
            "prompt_file": trained["prompt_path"],
            "training": trained["metrics"]["validation"],
        }
        _say(
            f"      prompt design {design:.1f}%  ->  prompt tuning {rank:.1f}% "
            f"(rank classification; greedy exact match {greedy:.1f}%)"
        )

    exports, agreement, table = {}, None, []
    if export:
        agreement, table, exports = _export_and_check(
            backbone, preprocessor, prompt_length, prompt_files, output
        )
    after = weights_sha256(backbone)
    if after != before:
        raise RuntimeError("The backbone's weights changed during the quickstart.")

    main_task = task_names[0]
    summary = {
        "task": main_task,
        "prompt_design_accuracy": results[main_task]["prompt_design_accuracy"],
        "prompt_tuning_accuracy": results[main_task]["prompt_tuning_accuracy"],
        "seconds": round(time.time() - started, 1),
        "tasks": results,
        "preset": preset,
        "config": config.to_json(),
        "seed": seed,
        "backbone_sha256_before": before,
        "backbone_sha256_after": after,
        "backbone_unchanged": after == before,
        "exports": exports,
        "exports_agree_with_keras": agreement,
        "mixed_batch": [
            dict(zip(("task", "input", "keras", "saved_model", "onnx", "label"), r))
            for r in table
        ],
    }
    with open(os.path.join(output, "summary.json"), "w") as file:
        json.dump(summary, file, indent=2)

    rows = [
        (
            name,
            f"{r['prompt_design_accuracy']:.1f}",
            f"{r['prompt_tuning_accuracy']:.1f}",
            f"{r['prompt_tuning_greedy_accuracy']:.1f}",
        )
        for name, r in results.items()
    ]
    _say(
        "\n"
        + _table(rows, ("task", "prompt design %", "prompt tuning %", "(greedy) %"))
    )
    _say(
        f"\nBackbone weights unchanged (sha256 {after[:16]}...). Done in "
        f"{summary['seconds']:.0f} s; everything is in {output}/"
    )
    first = prompt_files[main_task]
    _say(
        "\nNext:\n"
        f"  keras-prompt inspect {first} --backbone {preset}\n"
        f"  keras-prompt predict --backbone {preset} --prompt {first} "
        '--text "does it mention an animal? sentence: the brown dog slept"\n'
        f"  keras-prompt train --backbone {preset} --task demo_mood "
        "--prompt-length 100 --steps 1000 --output runs/mood\n"
        "  Real models: --backbone t5_small_multi (KerasHub preset) or a "
        "Hugging Face T5 checkpoint directory, e.g. google/t5-base-lm-adapt.\n"
        "  This demo backbone only knows its synthetic world (see README)."
    )
    return summary


def _export_and_check(backbone, preprocessor, prompt_length, prompt_files, output):
    """Bank SavedModel + ONNX export; one mixed batch through all three."""
    import onnxruntime
    import tensorflow as tf

    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_saved_model
    from keras_prompt.models.prompted_t5_seq2seq_lm import PromptedT5Seq2SeqLM

    model = PromptedT5Seq2SeqLM(backbone, preprocessor, prompt_length=prompt_length)
    for name, path in prompt_files.items():
        model.prompt_bank.add(name, path)
    names = model.prompt_bank.names
    _say(
        f"\n[5/6] Exporting a SavedModel with a bank of {len(names)} prompts "
        f"{names} and an ONNX model"
    )
    saved = export_saved_model(
        model,
        os.path.join(output, "saved_model"),
        mode="bank",
        model_name="demo",
        max_decode_length=MAX_DECODE_LENGTH,
        overwrite=True,
    )
    onnx_path = export_onnx(
        model,
        os.path.join(output, "demo_bank_generate.onnx"),
        mode="bank",
        graph="generate",
        max_decode_length=MAX_DECODE_LENGTH,
    )
    _say(f"      {saved}\n      {onnx_path}")

    _say("\n[6/6] One mixed-task batch through Keras, the SavedModel and ONNX Runtime")
    rows = mixed_batch(names)
    texts = [row[1] for row in rows]
    tasks = [row[0] for row in rows]
    keras_texts = model.generate(texts, tasks=tasks, max_length=MAX_DECODE_LENGTH)

    loaded = tf.saved_model.load(saved)
    served = loaded.signatures["serving_default"](
        inputs=tf.constant(texts), task=tf.constant(tasks)
    )["outputs"].numpy()
    served = [text.decode("utf-8") for text in served]

    encoded = preprocessor.generate_preprocess(texts)
    session = onnxruntime.InferenceSession(
        onnx_path, providers=["CPUExecutionProvider"]
    )
    onnx_ids = session.run(
        ["token_ids"],
        {
            "encoder_token_ids": np.asarray(encoded["encoder_token_ids"], np.int32),
            "encoder_padding_mask": np.asarray(
                encoded["encoder_padding_mask"], np.int32
            ),
            "task": model.prompt_bank.task_ids(tasks),
        },
    )[0]
    onnx_texts = model.detokenize(onnx_ids)
    table = [
        (row[0], row[1], k, s, o, row[2])
        for row, k, s, o in zip(rows, keras_texts, served, onnx_texts)
    ]
    agree = keras_texts == served == onnx_texts
    _say(
        _table(
            [
                (t, (x if len(x) <= 60 else x[:57] + "..."), k, s, o, y)
                for t, x, k, s, o, y in table
            ],
            ("task", "input", "keras", "saved_model", "onnx", "label"),
        )
    )
    _say("      exported models agree with Keras: " + ("yes" if agree else "NO"))
    if not agree:
        raise RuntimeError(f"Exported models disagree with the Keras model: {table}")
    return agree, table, {"saved_model": saved, "onnx": onnx_path}
