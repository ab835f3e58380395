"""`keras-prompt quickstart`: the whole job, offline, on the demo backbone."""

from keras_prompt.cli.arguments import positive_float
from keras_prompt.cli.arguments import positive_int

HELP = "run the whole job offline on the built-in demo backbone (start here)"

DESCRIPTION = """\
Runs the whole job offline on the built-in pretrained demo backbone
`t5_tiny_demo` (a 1.6M-parameter T5 pretrained on a synthetic text-to-text
mixture): prompt design with hand-written text prompts vs. prompt tuning on
two held-out tasks (demo_animal, demo_mood), test accuracy, a SavedModel
with a bank of both prompts and an ONNX model, and one mixed-task batch run
through Keras, the SavedModel and ONNX Runtime. Takes a few minutes on 2 CPU
cores; writes everything, including summary.json, to --output.
"""


def add_arguments(parser):
    parser.add_argument("--output", default="runs/quickstart",
                        help="output directory (default: runs/quickstart)")
    parser.add_argument("--backbone", default="t5_tiny_demo",
                        help="preset (default: the built-in t5_tiny_demo)")
    parser.add_argument("--steps", type=positive_int, default=300,
                        help="prompt-tuning steps per task (default: 300)")
    parser.add_argument("--prompt-length", type=positive_int, default=20,
                        help="prompt length (default: 20)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--learning-rate", type=positive_float, default=0.3)
    parser.add_argument("--prompt-initializer", default="class_labels",
                        choices=["class_labels", "sampled_vocab", "random_uniform"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-export", action="store_true",
                        help="skip the SavedModel/ONNX export and parity check")


def run(args):
    from keras_prompt.quickstart.run import run_quickstart

    run_quickstart(args.output, preset=args.backbone, steps=args.steps,
                   prompt_length=args.prompt_length, batch_size=args.batch_size,
                   learning_rate=args.learning_rate,
                   prompt_initializer=args.prompt_initializer, seed=args.seed,
                   export=not args.no_export)
    return 0
