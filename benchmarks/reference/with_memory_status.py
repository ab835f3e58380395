#!/usr/bin/env python3
"""Runs a reference benchmark script and adds its process's memory to the
script's result line.

    ~/.venvs/ref/bin/python benchmarks/reference/with_memory_status.py \
        ../shared/reference/hf_peft_bench.py --mode train ...

The script runs in this process (`runpy`), so that `/proc/self/status` at
the end describes it: the last JSON line it prints gets
`memory_at_end_mb` (`benchmarks.common.memory_status_mb()`: peak, resident,
anonymous and file-backed MiB, and the estimated anonymous peak), and is
printed again as the last line. Everything else it prints passes through.
Imports only the standard library and `benchmarks.common` (itself standard
library only), so it runs in the reference virtual environment.
"""

import contextlib
import io
import json
import os
import runpy
import sys

sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
)
from benchmarks.common import memory_status_mb


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: with_memory_status.py SCRIPT [ARGUMENTS ...]")
    script = os.path.abspath(sys.argv[1])
    sys.argv = [script, *sys.argv[2:]]
    sys.path.insert(0, os.path.dirname(script))
    captured = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(captured):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as exit_request:
            code = exit_request.code
    output = captured.getvalue()
    sys.stdout.write(output)
    results = [line for line in output.splitlines() if line.startswith("{")]
    if results and not code:
        record = json.loads(results[-1])
        record["memory_at_end_mb"] = memory_status_mb()
        print(json.dumps(record))
    return code


if __name__ == "__main__":
    sys.exit(main())
