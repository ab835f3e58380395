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

The paper's successors, on a short budget (`--short-steps`, 60 by default,
where single prompts still differ from seed to seed), several seeds each:
  4. prompt ensembling (§7): 3 and 5 prompts of one task in one batch
     (`keras_prompt.ensemble()`), majority vote and mean log-likelihood, vs.
     the mean and the best single prompt;
  5. prompt transfer (SPoT): `demo_mood` started from a prompt trained on
     the related source task `demo_review` (`prompt_initializer=
     "from_file"`) vs. random and class-label init: validation accuracy by
     step and test accuracy;
  6. residual reparameterization (`reparameterization="residual"`) vs.
     plain prompt tuning at the same steps.

    python examples/paper_claims.py --output examples/paper_claims_results
    python examples/paper_claims.py --parts ensemble,transfer,residual

writes `<output>.json` and `<output>.md` (the README tables); `--parts`
re-runs only those parts and keeps the others' results from `<output>.json`.
Offline; on 2 CPU cores about 30-50 minutes for `claims`, 20-30 for the rest.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import keras_prompt
from keras_prompt.quickstart import baselines

HELD_OUT_TASKS = ("demo_animal", "demo_mood")
PARTS = ("claims", "ensemble", "transfer", "residual")
SEEDS = (0, 1, 2, 3, 4)
TRANSFER = {"source": "demo_review", "target": "demo_mood"}
# The validation accuracy whose first step the transfer table reports.
REACH = 90.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="examples/paper_claims_results")
    parser.add_argument("--preset", default=baselines.DEMO_PRESET)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--short-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=",".join(HELD_OUT_TASKS))
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="comma-separated, of " + ", ".join(PARTS))
    args = parser.parse_args()
    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown --parts {unknown}; use some of {list(PARTS)}")
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
    results = {}
    if os.path.exists(args.output + ".json"):
        with open(args.output + ".json") as file:
            results = json.load(file)
    results["preset"] = args.preset

    def save():
        results.setdefault("seconds", {})
        if not isinstance(results["seconds"], dict):
            results["seconds"] = {"claims": results["seconds"]}
        for part in parts:
            results["seconds"][part] = round(time.time() - started, 1)
        with open(args.output + ".json", "w") as file:
            json.dump(results, file, indent=1)

    if "claims" in parts:
        results["config"] = config.to_json()
        results["tasks"] = {}
        claims(args, backbone, preprocessor, runs, config, results, save)
    successors(args, parts, backbone, preprocessor, runs, config, results, save)
    table = "\n\n".join(tables(results))
    save()
    with open(args.output + ".md", "w") as file:
        file.write(table + "\n")
    print(table)
    print(f"{time.time() - started:.0f} s")


def claims(args, backbone, preprocessor, runs, config, results, save):
    """Parts 1-3: prompt design, prompt and model tuning, length, init."""
    design_model = baselines.design_model(backbone, preprocessor)
    for task in args.tasks.split(","):
        row = results["tasks"][task] = {}
        design, details = baselines.prompt_design(
            backbone, preprocessor, task, model=design_model)
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


def successors(args, parts, backbone, preprocessor, runs, config, results,
               save):
    """Parts 4-6 on the short budget: ensembling, transfer, residual."""
    short = config.replace(steps=args.short_steps, eval_every=10,
                           checkpoint_every=args.short_steps, prompt_length=20)
    trained = {}

    def tune(task, init, seed, **settings):
        """A prompt trained on the short budget (each run once per call of
        this script): its file, validation curve and test accuracy."""
        key = (task, init, seed, tuple(sorted(settings.items())))
        if key not in trained:
            begun = time.time()
            name = "-".join([task, init, str(seed)] + [
                f"{k}={os.path.basename(str(v))}" for k, v in sorted(settings.items())])
            run = keras_prompt.train(
                backbone, task, preprocessor=preprocessor,
                output_dir=os.path.join(runs, name),
                config=short.replace(prompt_initializer=init, seed=seed,
                                     **settings))
            accuracy = keras_prompt.evaluate(
                run["model"], None, task, split="test",
                batch_size=baselines.EVAL_BATCH_SIZE,
                max_input_length=baselines.ENCODER_LENGTH,
                rank_classification=True,
            )["accuracy"]
            curve = [[v["step"], v["accuracy"]]
                     for v in run["metrics"]["validation"]]
            trained[key] = {"prompt": run["prompt_path"], "accuracy": accuracy,
                            "validation": curve}
            print(f"{name}: test {accuracy:.1f}, validation {curve} "
                  f"({time.time() - begun:.0f} s)", flush=True)
        return trained[key]

    tasks = args.tasks.split(",")
    if "ensemble" in parts:
        section = results["ensemble"] = {"steps": args.short_steps,
                                         "seeds": list(SEEDS), "tasks": {}}
        for task in tasks:
            singles = [tune(task, "random_uniform", seed) for seed in SEEDS]
            row = section["tasks"][task] = {
                "single": [r["accuracy"] for r in singles]}
            for size in (3, 5):
                for method, rank in (("vote", True), ("vote", False),
                                     ("mean-logprob", True)):
                    result = keras_prompt.ensemble(
                        backbone, [r["prompt"] for r in singles[:size]], task,
                        preprocessor=preprocessor, method=method,
                        rank_classification=rank, split="test",
                        batch_size=baselines.EVAL_BATCH_SIZE // size,
                        max_input_length=baselines.ENCODER_LENGTH)
                    readout = "rank" if rank else "greedy"
                    row[f"{size}/{method}/{readout}"] = {
                        "accuracy": result["accuracy"],
                        "single": [m["accuracy"]
                                   for m in result["prompt_metrics"]],
                    }
                    print(f"{task} ensemble of {size}, {method} ({readout}): "
                          f"{result['accuracy']:.1f}", flush=True)
            save()
    if "transfer" in parts:
        source = tune(TRANSFER["source"], "class_labels", 0, steps=args.steps,
                      checkpoint_every=args.steps)
        section = results["transfer"] = {
            **TRANSFER, "steps": args.short_steps, "seeds": list(SEEDS[:3]),
            "source_steps": args.steps,
            "source_test_accuracy": source["accuracy"], "inits": {}}
        for init, settings in (
                ("random_uniform", {}), ("class_labels", {}),
                ("from_file", {"init_file": source["prompt"]})):
            section["inits"][init] = [
                tune(TRANSFER["target"], init, seed, **settings)
                for seed in SEEDS[:3]]
            save()
    if "residual" in parts:
        section = results["residual"] = {"steps": args.short_steps,
                                         "seeds": list(SEEDS[:3]), "tasks": {}}
        for task in tasks:
            section["tasks"][task] = {
                "plain": [tune(task, "random_uniform", seed)["accuracy"]
                          for seed in SEEDS[:3]],
                "residual": [tune(task, "random_uniform", seed,
                                  reparameterization="residual")["accuracy"]
                             for seed in SEEDS[:3]],
            }
            save()


def spread(values):
    """"mean ± sd (min-max)" of per-seed accuracies."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return (f"{statistics.mean(values):.1f} ± {sd:.1f} "
            f"({min(values):.1f}-{max(values):.1f})")


def first_step_reaching(curve, accuracy=REACH):
    return next((step for step, value in curve if value >= accuracy), None)


def tables(results):
    """The README tables of every part that has results."""
    out = []
    if results.get("tasks"):
        out.append(claims_table(results))
    if "ensemble" in results:
        section = results["ensemble"]
        names = list(section["tasks"])
        lines = [
            f"Prompt ensembling on `{results['preset']}`: test accuracy (%), "
            f"prompts trained {section['steps']} steps (random-uniform init, "
            f"length 20, seeds {section['seeds']}); an ensemble runs its "
            "prompts in one batch (`keras_prompt.ensemble()`); single prompts "
            "as mean ± sd (min-max) over the seeds; rank = each prompt's "
            "label by rank classification, greedy = its greedy output.",
            "",
            "| method | " + " | ".join(names) + " |",
            "| --- | " + " | ".join("---" for _ in names) + " |",
        ]
        rows = section["tasks"]
        lines.append("| single prompt (5 seeds, rank) | " + " | ".join(
            spread(rows[n]["single"]) for n in names) + " |")
        lines.append("| best single prompt of 5 (rank) | " + " | ".join(
            f"{max(rows[n]['single']):.1f}" for n in names) + " |")
        lines.append("| single prompt (5 seeds, greedy) | " + " | ".join(
            spread(rows[n]["5/vote/greedy"]["single"]) for n in names) + " |")
        for size in (3, 5):
            for key, label in (("vote/rank", "majority vote (rank)"),
                               ("vote/greedy", "majority vote (greedy)"),
                               ("mean-logprob/rank", "mean log-likelihood")):
                lines.append(f"| ensemble of {size}, {label} | " + " | ".join(
                    f"{rows[n][f'{size}/{key}']['accuracy']:.1f}"
                    for n in names) + " |")
        out.append("\n".join(lines))
    if "transfer" in results:
        section = results["transfer"]
        lines = [
            f"Prompt transfer (SPoT) into `{section['target']}` from a prompt "
            f"trained on `{section['source']}` ({section['source_steps']} steps, class-label init; "
            f"its own test accuracy {section['source_test_accuracy']:.1f}): "
            f"{section['steps']} steps, length 20, seeds {section['seeds']}; "
            f"test accuracy (%) as mean ± sd (min-max), the first step whose "
            f"validation accuracy reached {REACH:.0f} % (of evaluations every "
            "10 steps), and the validation accuracy at step 10.",
            "",
            "| init | test accuracy | steps to "
            f"{REACH:.0f} % (per seed) | validation at step 10 |",
            "| --- | --- | --- | --- |",
        ]
        for init, runs in section["inits"].items():
            reached = [first_step_reaching(r["validation"]) for r in runs]
            lines.append(
                f"| {init} | {spread([r['accuracy'] for r in runs])} | "
                + ", ".join("—" if s is None else str(s) for s in reached)
                + " | " + spread([r["validation"][0][1] for r in runs]) + " |")
        out.append("\n".join(lines))
    if "residual" in results:
        section = results["residual"]
        names = list(section["tasks"])
        lines = [
            "Residual reparameterization (a shared MLP with a skip "
            "connection and layer norm over the prompt while training; the "
            f"files hold the folded prompt): {section['steps']} steps, "
            f"random-uniform init, length 20, seeds {section['seeds']}; test "
            "accuracy (%) as mean ± sd (min-max).",
            "",
            "| method | " + " | ".join(names) + " |",
            "| --- | " + " | ".join("---" for _ in names) + " |",
        ]
        for method in ("plain", "residual"):
            lines.append(f"| {method} prompt tuning | " + " | ".join(
                spread(section["tasks"][n][method]) for n in names) + " |")
        out.append("\n".join(lines))
    return out


def claims_table(results):
    args = argparse.Namespace(**{
        "preset": results["preset"], "steps": results["config"]["steps"],
        "batch_size": results["config"]["batch_size"],
        "seed": results["config"]["seed"]})
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
    return "\n".join(lines)


if __name__ == "__main__":
    main()
