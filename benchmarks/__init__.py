"""Speed and memory benchmarks of keras-prompt.

Run `python -m benchmarks.run --suite quick|full`; see `benchmarks/README.md`.
"""
