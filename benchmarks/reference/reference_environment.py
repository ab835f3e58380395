"""What every reference benchmark shares (reference venv only): how it
times its calls, and what it records of its process (peak RSS, threads and
the versions of the PyTorch stack)."""

import os
import platform
import resource
import time


def timed_calls(call, warmup, steps):
    """Runs `call()` `warmup` times untimed, then `steps` times timed;
    returns the wall seconds of the timed calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def environment():
    import peft
    import torch
    import transformers

    return {
        "peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
    }
