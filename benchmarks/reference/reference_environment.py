"""What every reference benchmark records of its process (reference venv
only): peak RSS, threads and the versions of the PyTorch stack."""

import os
import platform
import resource


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
