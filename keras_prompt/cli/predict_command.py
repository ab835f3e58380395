"""`keras-prompt predict`: run a prompt on ad-hoc text."""

import json
import os

from keras_prompt.cli.arguments import positive_int

HELP = "run a prompt on ad-hoc text"
DESCRIPTION = (
    "Greedy generation (or --rank-classification over the label words) for "
    "texts given on the command line or in a file."
)


def add_arguments(parser):
    parser.add_argument("--backbone", required=True)
    parser.add_argument(
        "--prompt",
        required=True,
        help="prompt file, or a training output directory",
    )
    parser.add_argument(
        "--text",
        action="append",
        default=[],
        help="an input text, already formatted (repeatable)",
    )
    parser.add_argument(
        "--input-file",
        help="one input per line (.txt), or .csv/.tsv/.jsonl rows formatted "
        "with --template",
    )
    parser.add_argument("--template", help="template for --input-file rows")
    parser.add_argument(
        "--labels",
        help="comma-separated label words; with --rank-classification their "
        "scores are printed (default: the prompt file's labels)",
    )
    parser.add_argument("--rank-classification", action="store_true")
    parser.add_argument("--max-input-length", type=positive_int, default=256)
    parser.add_argument(
        "--max-length",
        type=positive_int,
        default=16,
        help="tokens to generate (default: 16)",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per input"
    )


def read_inputs(args):
    """The input texts of `--text` and `--input-file`."""
    from keras_prompt.data import DataError

    texts = list(args.text)
    if args.input_file:
        path = args.input_file
        ext = os.path.splitext(path)[1].lower()
        if ext in (".csv", ".tsv", ".jsonl", ".json"):
            from keras_prompt.data import TemplateFormatter
            from keras_prompt.data import infer_file_format
            from keras_prompt.data import read_rows

            if not args.template:
                raise DataError(
                    f"--input-file {path} has columns; pass --template to "
                    "build the input text, e.g. --template "
                    "'premise: {premise} hypothesis: {hypothesis}'"
                )
            formatter = TemplateFormatter(args.template)
            _, rows = read_rows(path, infer_file_format(path))
            for line, row in rows:
                missing = [c for c in formatter.columns if c not in row]
                if missing:
                    raise DataError(
                        f"Column '{missing[0]}' is missing from line {line} "
                        f"of '{path}'."
                    )
                texts.append(formatter.format_python(row))
        else:
            with open(path, encoding="utf-8") as file:
                texts.extend(line.rstrip("\n") for line in file if line.strip())
    if not texts and args.input_file:
        raise DataError(
            f"--input-file {args.input_file} holds no inputs (no rows after "
            "its header, or only blank lines). Add inputs or pass --text."
        )
    if not texts:
        raise DataError("Give inputs with --text or --input-file.")
    return texts


def run(args):
    import numpy as np

    from keras_prompt.data import DataError
    from keras_prompt.training.evaluate import load_model_with_prompt

    texts = read_inputs(args)
    model, metadata = load_model_with_prompt(args.backbone, args.prompt)
    labels = (
        [word.strip() for word in args.labels.split(",") if word.strip()]
        if args.labels
        else list(metadata.get("labels") or [])
    )
    if args.rank_classification and not labels:
        raise DataError(
            "--rank-classification needs --labels (the prompt file records "
            "none)."
        )
    model.preprocessor.encoder_sequence_length = args.max_input_length
    size = args.batch_size
    for start in range(0, len(texts), size):
        chunk = texts[start : start + size]
        padded = chunk + [""] * (size - len(chunk))  # one compiled shape
        scores = None
        if args.rank_classification:
            scores = model.score(padded, labels)[: len(chunk)]
            outputs = [labels[int(np.argmax(row))] for row in scores]
        else:
            outputs = model.generate(padded, max_length=args.max_length + 1)
            outputs = outputs[: len(chunk)]
        for row, (text, output) in enumerate(zip(chunk, outputs)):
            if args.json:
                record = {"input": text, "output": output}
                if scores is not None:
                    record["scores"] = dict(zip(labels, map(float, scores[row])))
                print(json.dumps(record))
            else:
                print(f"{output}\t{text}")
    return 0
