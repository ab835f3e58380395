"""`keras-prompt inspect`: a prompt file's metadata and nearest tokens."""

import json

from keras_prompt.cli.arguments import positive_int

HELP = "show a prompt file's metadata and nearest tokens"
DESCRIPTION = (
    "Shape, metadata and vector norms of a prompt file; with --backbone, the "
    "nearest vocabulary tokens of each prompt vector (cosine similarity)."
)


def add_arguments(parser):
    parser.add_argument("prompt", help="prompt file (or training output dir)")
    parser.add_argument(
        "--backbone",
        help="backbone to find the nearest vocabulary tokens of each prompt "
        "vector (cosine similarity)",
    )
    parser.add_argument(
        "--top-k",
        type=positive_int,
        default=5,
        help="nearest tokens per prompt vector (default: 5)",
    )
    parser.add_argument(
        "--rows",
        type=positive_int,
        default=20,
        help="prompt vectors to show (default: 20)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON instead of text"
    )


def uses_tensorflow(args):
    return bool(args.backbone)


def run(args):
    import numpy as np

    from keras_prompt.prompts.prompt_file import prompt_file_path
    from keras_prompt.prompts.prompt_file import read_prompt_file

    path = prompt_file_path(args.prompt)
    prompt, metadata = read_prompt_file(path)
    norms = np.linalg.norm(prompt, axis=1)
    report = {
        "file": path,
        "metadata": metadata,
        "shape": list(prompt.shape),
        "norm": {
            "mean": float(norms.mean()),
            "min": float(norms.min()),
            "max": float(norms.max()),
        },
    }
    if args.backbone:
        from keras_prompt.nearest_tokens import nearest_tokens
        from keras_prompt.training.evaluate import load_model_with_prompt

        model, _ = load_model_with_prompt(args.backbone, path)
        neighbours = nearest_tokens(model, k=args.top_k)
        report["nearest_tokens"] = [
            [
                {"id": i, "token": token, "similarity": round(similarity, 4)}
                for i, token, similarity in row
            ]
            for row in neighbours[: args.rows]
        ]
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
        return 0
    print(f"prompt file: {path}")
    print(
        f"shape: {prompt.shape[0]} x {prompt.shape[1]}  (prompt_length x "
        "hidden_dim)"
    )
    for key in sorted(metadata):
        print(f"  {key}: {metadata[key]}")
    norm = report["norm"]
    print(
        f"vector norms: mean {norm['mean']:.4f}, min {norm['min']:.4f}, "
        f"max {norm['max']:.4f}"
    )
    if "nearest_tokens" in report:
        print(f"nearest tokens (cosine, top {args.top_k}):")
        for row, tokens in enumerate(report["nearest_tokens"]):
            shown = ", ".join(
                f"{t['token']!s} ({t['similarity']:.2f})" for t in tokens
            )
            print(f"  {row:4d}: {shown}")
    else:
        print("(pass --backbone to list the nearest vocabulary tokens)")
    return 0
