"""`keras-prompt quickstart`: the whole job on the built-in demo backbone.

1. load the pretrained `t5_tiny_demo` backbone (shipped in the package);
2. prompt design: the frozen model with the best hand-written text prompt;
3. prompt tuning on two held-out tasks (`demo_animal`, `demo_mood`) with
   the paper's optimizer (Adafactor 0.3), class-label init, batch 32;
4. test accuracy (rank classification and greedy exact match);
5. export a SavedModel with a bank of the two prompts and an ONNX model;
6. run one mixed-task batch through Keras, the SavedModel and ONNX Runtime
   and check they agree; check the backbone's weights did not change.

Everything is written under `--output`; `summary.json` holds the numbers.
"""

import json
import logging
import os
import time

import numpy as np

from keras_prompt.quickstart import tasks as demo_tasks

DEFAULT_TASKS = ("demo_animal", "demo_mood")


def weights_sha256(backbone):
    """SHA-256 over every backbone weight (shape and bytes, in order)."""
    import hashlib

    digest = hashlib.sha256()
    for weight in backbone.weights:
        digest.update(str(tuple(weight.shape)).encode())
        digest.update(np.ascontiguousarray(np.asarray(weight.numpy())).tobytes())
    return digest.hexdigest()


def _say(text=""):
    print(text, flush=True)


def _table(rows, headers):
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def mixed_batch(task_names, per_task=4, split="test"):
    """Interleaved `(task, text, label word)` examples of several tasks."""
    columns = []
    for name in task_names:
        texts, labels = demo_tasks.split_texts(name, split)
        words = demo_tasks.TASKS[name]["labels"]
        columns.append([(name, t, words[l]) for t, l in zip(texts[:per_task], labels[:per_task])])
    return [row for group in zip(*columns) for row in group]


def run_quickstart(output, preset="t5_tiny_demo", task_names=DEFAULT_TASKS,
                   steps=300, prompt_length=20, batch_size=32,
                   learning_rate=0.3, prompt_initializer="class_labels",
                   seed=0, export=True, verbose=1):
    """Runs the quickstart; returns the summary dict (also in
    `output/summary.json`)."""
    started = time.time()
    os.makedirs(output, exist_ok=True)
    logging.getLogger("keras_prompt").setLevel(logging.WARNING)
    demo_tasks.register_tasks()

    import keras_prompt
    from keras_prompt.quickstart import experiments

    _say(f"[1/6] Loading the demo backbone '{preset}' (frozen) ...")
    backbone, preprocessor = experiments.load_demo(preset)
    before = weights_sha256(backbone)
    _say(f"      {backbone.count_params():,} parameters, hidden {backbone.hidden_dim}, "
         f"{backbone.num_layers}+{backbone.num_layers} layers, vocabulary "
         f"{backbone.vocabulary_size}; weights sha256 {before[:16]}...")

    results = {}
    prompt_files = {}
    for number, name in enumerate(task_names):
        words = demo_tasks.TASKS[name]["labels"]
        _say(f"\n[2/6] Prompt design on held-out task '{name}' "
             f"(labels {words}): frozen model, hand-written text prompts, test split")
        design, design_details = experiments.prompt_design(
            backbone, preprocessor, name, split="test", log=_say)

        _say(f"\n[3/6] Prompt tuning on '{name}': {steps} steps, batch {batch_size}, "
             f"prompt {prompt_length} x {backbone.hidden_dim}, {prompt_initializer} init, "
             f"Adafactor {learning_rate}")
        # The quickstart trains with its own loop on pre-tokenized NumPy data
        # (`experiments.prompt_tune`: the same model, Adafactor and loss as
        # `keras_prompt.train`, which it cannot call twice in one process
        # because train() reseeds TensorFlow globally, which destroys the
        # SentencePiece resource of a tokenizer already used).
        model, history = experiments.prompt_tune(
            backbone, preprocessor, name, steps=steps, batch_size=batch_size,
            prompt_length=prompt_length, initializer=prompt_initializer,
            learning_rate=learning_rate, seed=seed + number,
            eval_every=max(1, steps // 6), progress=verbose, log=_say)
        os.makedirs(os.path.join(output, "prompts"), exist_ok=True)
        prompt_path = model.save_prompt(
            os.path.join(output, "prompts", f"{name}.safetensors"), task=name,
            labels=words, training_steps=steps)
        prompt_files[name] = prompt_path

        _say(f"\n[4/6] Test accuracy of the tuned prompt on '{name}'")
        test = experiments.Split(preprocessor.tokenizer, name, "test")
        rank = experiments.Scorer(experiments.prompted_logits_fn(model)).rank_accuracy(test)
        greedy, _ = experiments.generated_label_accuracy(model, test, mode="strict")
        results[name] = {
            "labels": words,
            "prompt_design_accuracy": round(design, 2),
            "prompt_design_best_template": max(
                design_details, key=lambda e: e["best"])["template"],
            "prompt_tuning_accuracy": round(rank, 2),
            "prompt_tuning_greedy_accuracy": round(greedy, 2),
            "prompt_file": prompt_path,
            "training_history": history,
        }
        _say(f"      prompt design {design:.1f}%  ->  prompt tuning {rank:.1f}% "
             f"(rank classification; greedy exact match {greedy:.1f}%)")

    summary_rows = [(n, f"{r['prompt_design_accuracy']:.1f}", f"{r['prompt_tuning_accuracy']:.1f}",
                     f"{r['prompt_tuning_greedy_accuracy']:.1f}") for n, r in results.items()]
    exports = {}
    agreement = None
    table = []
    if export:
        agreement, table, exports = _export_and_check(model, prompt_files, output)
    after = weights_sha256(backbone)
    if after != before:
        raise RuntimeError("The backbone's weights changed during the quickstart.")

    main = task_names[0]
    summary = {
        "task": main,
        "prompt_design_accuracy": results[main]["prompt_design_accuracy"],
        "prompt_tuning_accuracy": results[main]["prompt_tuning_accuracy"],
        "seconds": round(time.time() - started, 1),
        "tasks": results,
        "preset": preset,
        "steps": steps,
        "prompt_length": prompt_length,
        "prompt_initializer": prompt_initializer,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "backbone_sha256_before": before,
        "backbone_sha256_after": after,
        "backbone_unchanged": after == before,
        "exports": exports,
        "exports_agree_with_keras": agreement,
        "mixed_batch": [dict(zip(("task", "input", "keras", "saved_model", "onnx", "label"), r))
                        for r in table],
    }
    with open(os.path.join(output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)

    _say("\n" + _table(summary_rows, ("task", "prompt design %", "prompt tuning %",
                                      "(greedy) %")))
    _say(f"\nBackbone weights unchanged (sha256 {after[:16]}...). "
         f"Done in {summary['seconds']:.0f} s; everything is in {output}/")
    first = prompt_files[main]
    _say("\nNext:\n"
         f"  keras-prompt inspect {first} --backbone {preset}\n"
         f"  keras-prompt predict --backbone {preset} --prompt {first} "
         f"--text \"does it mention an animal? sentence: the brown dog slept\"\n"
         f"  keras-prompt train --backbone {preset} --task demo_mood --prompt-length 100 "
         f"--steps 1000 --output runs/mood\n"
         "  Real models: --backbone t5_small_multi (KerasHub preset) or a Hugging Face "
         "T5 checkpoint directory, e.g. google/t5-base-lm-adapt.\n"
         "  This demo backbone only knows its synthetic world (see README).")
    return summary


def _export_and_check(model, prompt_files, output):
    """Bank SavedModel + ONNX export; one mixed batch through all three."""
    import tensorflow as tf

    import keras_prompt
    from keras_prompt.export import export_onnx
    from keras_prompt.export import export_saved_model
    from keras_prompt.quickstart import experiments

    names = list(prompt_files)
    _say(f"\n[5/6] Exporting a SavedModel with a bank of {len(names)} prompts {names} "
         "and an ONNX model")
    max_decode_length = 4
    saved = export_saved_model(model, os.path.join(output, "saved_model"), mode="bank",
                               prompts=prompt_files, model_name="demo",
                               max_decode_length=max_decode_length, overwrite=True)
    onnx_path = export_onnx(model, os.path.join(output, "demo_bank_generate.onnx"),
                            mode="bank", prompts=prompt_files, graph="generate",
                            max_decode_length=max_decode_length)
    _say(f"      {saved}\n      {onnx_path}")

    _say("\n[6/6] One mixed-task batch through Keras, the SavedModel and ONNX Runtime")
    rows = mixed_batch(names)
    texts = [r[1] for r in rows]
    task_ids = np.array([names.index(r[0]) for r in rows], np.int32)
    prompts = []
    for name in names:
        prompt, _ = keras_prompt.read_prompt_file(prompt_files[name])
        prompts.append(prompt)
    per_example = np.stack([prompts[i] for i in task_ids])
    tokenizer = model.preprocessor.tokenizer
    ids, mask = experiments.tokenize(tokenizer, texts, experiments.ENCODER_LENGTH)

    keras_ids = model.generate({"encoder_token_ids": ids, "encoder_padding_mask": mask},
                               max_length=max_decode_length, prompts=per_example)
    keras_ids = np.asarray(keras_ids["decoder_token_ids"] if isinstance(keras_ids, dict)
                           else keras_ids)

    loaded = tf.saved_model.load(saved)
    sm_text = loaded.signatures["serving_default"](
        inputs=tf.constant(texts), task=tf.constant([r[0] for r in rows]))["outputs"].numpy()
    sm_ids = loaded.signatures["generate_ids"](
        encoder_token_ids=tf.constant(ids), encoder_padding_mask=tf.constant(mask),
        task=tf.constant([r[0] for r in rows]))["token_ids"].numpy()

    import onnxruntime

    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    onnx_ids = session.run(None, {"encoder_token_ids": ids, "encoder_padding_mask": mask,
                                  "task": task_ids})[0]

    def words(token_ids):
        out = []
        for row in token_ids:
            tokens = []
            for i in row[1:]:
                if int(i) in (0, tokenizer.end_token_id):
                    break
                tokens.append(int(i))
            out.append(experiments._to_str(tokenizer.detokenize(np.asarray(tokens, np.int32)))
                       if tokens else "")
        return out

    keras_words = words(keras_ids)
    sm_ids_words = words(sm_ids)
    onnx_words = words(onnx_ids)
    sm_words = [experiments._to_str(t) for t in sm_text]
    table = [(r[0], r[1], k, s, o, r[2]) for r, k, s, o in
             zip(rows, keras_words, sm_words, onnx_words)]
    agree = keras_words == sm_words == onnx_words == sm_ids_words
    _say(_table([(t, (x if len(x) <= 60 else x[:57] + "..."), k, s, o, y)
                 for t, x, k, s, o, y in table],
                ("task", "input", "keras", "saved_model", "onnx", "label")))
    _say("      exported models agree with Keras: " + ("yes" if agree else "NO"))
    if not agree:
        raise RuntimeError("Exported models disagree with the Keras model: "
                           f"{table}")
    return agree, table, {"saved_model": saved, "onnx": onnx_path}
