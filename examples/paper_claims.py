"""The paper's claims in miniature, on the built-in demo backbone.

On the two held-out tasks (`demo_animal`, `demo_mood`) of `t5_tiny_demo`:
  1. prompt design (frozen model, best hand-written text prompt) vs. prompt
     tuning vs. model tuning (every weight trained; same data, batch and
     number of steps);
  2. prompt tuning by prompt length (1, 5, 20, 100; class-label init);
  3. prompt tuning by initializer (random uniform, sampled vocab, class
     labels; length 20).
Prompt tuning runs through `keras_prompt.train()` (best prompt on the
validation split) and is scored by `keras_prompt.evaluate()`: test accuracy
by rank classification over the label words. Prompt design takes the best of
strict greedy match, first-word greedy match and rank classification, chosen
on the test split itself, which favours it.

    python examples/paper_claims.py --output examples/paper_claims_results

writes `<output>.json` and `<output>.md` (the README table). Offline; about
15-30 minutes on 2 CPU cores.
"""

import argparse
import json
import os
import tempfile
import time

import keras_prompt
from keras_prompt.quickstart import baselines
from keras_prompt.quickstart import tasks as demo_tasks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="examples/paper_claims_results")
    parser.add_argument("--preset", default=baselines.DEMO_PRESET)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=",".join(demo_tasks.TASKS))
    args = parser.parse_args()
    started = time.time()
    backbone, preprocessor = baselines.load_demo(args.preset)
    runs = tempfile.mkdtemp(prefix="paper_claims_")
    config = keras_prompt.TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        max_input_length=baselines.ENCODER_LENGTH,
        eval_every=max(1, args.steps // 6),
        eval_batch_size=baselines.EVAL_BATCH_SIZE,
        rank_classification=True,
        checkpoint_every=args.steps,
        tensorboard=False,
        verbose=0,
        seed=args.seed,
    )
    results = {"preset": args.preset, "config": config.to_json(), "tasks": {}}

    def save():
        results["seconds"] = round(time.time() - started, 1)
        with open(args.output + ".json", "w") as file:
            json.dump(results, file, indent=1)

    for task in args.tasks.split(","):
        row = results["tasks"][task] = {}
        design, details = baselines.prompt_design(backbone, preprocessor, task)
        row["prompt_design"] = design
        row["prompt_design_details"] = details
        save()

        def tune(length, init):
            begun = time.time()
            trained = keras_prompt.train(
                backbone, task, preprocessor=preprocessor,
                output_dir=os.path.join(runs, f"{task}-{length}-{init}"),
                config=config.replace(prompt_length=length,
                                      prompt_initializer=init),
            )
            accuracy = keras_prompt.evaluate(
                trained["model"], None, task, split="test",
                batch_size=baselines.EVAL_BATCH_SIZE,
                max_input_length=baselines.ENCODER_LENGTH,
                rank_classification=True,
            )["accuracy"]
            print(f"{task} prompt tuning length {length} {init}: {accuracy:.1f} "
                  f"({time.time() - begun:.0f} s)", flush=True)
            return {"accuracy": accuracy,
                    "validation": trained["metrics"]["validation"]}

        row["prompt_length"] = {}
        for length in (1, 5, 20, 100):
            row["prompt_length"][str(length)] = tune(length, "class_labels")
            save()
        row["initializer"] = {"class_labels": row["prompt_length"]["20"]}
        for init in ("random_uniform", "sampled_vocab"):
            row["initializer"][init] = tune(20, init)
            save()
        row["prompt_tuning"] = row["prompt_length"]["20"]["accuracy"]

        begun = time.time()
        row["model_tuning"] = baselines.model_tune(
            args.preset, task, steps=args.steps, batch_size=args.batch_size,
            seed=args.seed)
        print(f"{task} model tuning: {row['model_tuning']:.1f} "
              f"({time.time() - begun:.0f} s)", flush=True)
        save()

    names = list(results["tasks"])
    lines = [
        f"Test accuracy (%) on the held-out tasks of `{args.preset}`; "
        f"{args.steps} steps, batch {args.batch_size}, seed {args.seed}; prompt "
        "tuning = `keras_prompt.train()` (Adafactor 0.3, length 20, class-label "
        "init unless stated, best prompt on validation), scored by "
        "`keras_prompt.evaluate()`; model tuning = all weights, Adafactor 1e-3, "
        "same data and steps, last step.",
        "",
        "| method | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]

    def line(label, get):
        lines.append(f"| {label} | " + " | ".join(
            f"{get(results['tasks'][n]):.1f}" for n in names) + " |")

    line("prompt design (best hand-written prompt)", lambda r: r["prompt_design"])
    line("prompt tuning", lambda r: r["prompt_tuning"])
    line("model tuning", lambda r: r["model_tuning"])
    for length in ("1", "5", "20", "100"):
        line(f"prompt tuning, length {length}",
             lambda r, k=length: r["prompt_length"][k]["accuracy"])
    for init in ("random_uniform", "sampled_vocab", "class_labels"):
        line(f"prompt tuning, {init} init",
             lambda r, k=init: r["initializer"][k]["accuracy"])
    table = "\n".join(lines)
    save()
    with open(args.output + ".md", "w") as file:
        file.write(table + "\n")
    print(table)
    print(f"{time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
