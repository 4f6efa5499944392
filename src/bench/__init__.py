"""Benchmarks: `python -m src.bench [--device cpu|cuda] ...`.

- `cpu`: the CPU protocol (`make bench`): batch-1 latency of the Table S5 models on a fixed thread count, and
  a training step of AFNet-R50 against TSN-R50.
- `gpu`: the GPU protocol (`make bench-gpu`): batch-1 latency and batch-16 / 64 throughput in fp32 and bf16,
  and a bf16 training step of AFNet-R50 against TSN-R50 and TSM-R50 with peak memory.
- `runs`: the spread of the CPU ratios over the runs `make bench` keeps (`python -m src.bench.runs`).
- `loader`: training-clip loading speed against a per-frame PIL loader (`python -m src.bench.loader`).
- `models`: what the benchmarks run, and `prepare`, their one call of the inference rewrites.
- `common`: timing (interleaved rounds, CUDA events), statistics of ratios, the machine's name, JSON output.

Latency is compared as ratios to TSM-R50 measured in the same rounds, never as absolute times across
machines: the paper's own CPU and GPU figures are only comparable that way.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> dict:
    """Run the CPU protocol (`--device cpu`, the default) or the GPU one (any other `--device`, which the GPU
    protocol checks); returns the result it printed last as JSON."""
    argv = sys.argv[1:] if argv is None else list(argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--device", default="cpu")
    device = pre.parse_known_args(argv)[0].device
    if device == "cpu":
        from src.bench import cpu

        return cpu.main(argv)
    from src.bench import gpu

    return gpu.main(argv)
