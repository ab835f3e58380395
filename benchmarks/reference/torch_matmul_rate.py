#!/usr/bin/env python3
"""float32 matmul GFLOP/s of PyTorch on `--threads` threads (2048 x 2048),
the machine's state for the reference side of a benchmark run. Runs in the
reference virtual environment only. Prints one JSON line."""

import argparse
import json
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    a = torch.randn(args.size, args.size)
    b = torch.randn(args.size, args.size)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(args.calls):
        a @ b
    seconds = (time.perf_counter() - start) / args.calls
    print(json.dumps({"benchmark": "matmul_rate", "side": "torch",
                      "size": args.size, "threads": args.threads,
                      "gflops": 2 * args.size**3 / seconds / 1e9}))


if __name__ == "__main__":
    main()
