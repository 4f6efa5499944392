"""What every benchmark here shares: the machine's description, interleaved timing, the statistics of the
figures (medians, ratios with their intervals), flag checks and writing the JSON.

Times are milliseconds per call. A ratio compares a model's median with the reference model's median over
the same rounds; every round runs each model once, in a seeded shuffled order, so a slow phase of a shared
machine slows both sides of a ratio alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

Timer = Callable[[Callable[[], object]], float]


def wall_ms(fn: Callable[[], object]) -> float:
    """Milliseconds of wall-clock time of one call of `fn` (CPU work is done when it returns)."""
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


class CudaEventTimer:
    """Milliseconds of one call of `fn` on the GPU's clock: the device is synchronised first (no earlier work is
    charged to this call), CUDA events are recorded around the call, then the end event is waited for. Kernel
    launch gaps count: at batch 1 a GPU mostly waits for the host, and that wait is the latency a user sees."""

    def __init__(self, device: torch.device):
        self.device = device
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def __call__(self, fn: Callable[[], object]) -> float:
        torch.cuda.synchronize(self.device)
        self.start.record()
        fn()
        self.end.record()
        self.end.synchronize()
        return self.start.elapsed_time(self.end)


def timer_for(device: torch.device) -> Timer:
    """CUDA events on a CUDA device, the wall clock elsewhere."""
    return CudaEventTimer(device) if device.type == "cuda" else wall_ms


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU, whose calls return when done)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(calls: dict[str, Callable[[], object]], rounds: int, warmup: int, timer: Timer = wall_ms,
                     seed: int = 0) -> dict[str, list[float]]:
    """Milliseconds per call, `rounds` per entry of `calls`: each round calls every entry once, in an order
    shuffled anew each round (seeded), so that no entry always runs right after the same other one (whose
    caches and memory it would inherit). The first `warmup` rounds are not kept."""
    times: dict[str, list[float]] = {k: [] for k in calls}
    order = random.Random(seed)
    for i in range(warmup + rounds):
        for name in order.sample(list(calls), len(calls)):
            ms = timer(calls[name])
            if i >= warmup:
                times[name].append(ms)
    return times


def stats(values: list[float]) -> dict:
    """Median, min, max and count of `values`."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def paired_ratios(times: list[float], reference: list[float]) -> dict:
    """Median / min / max over rounds of time / reference time within the same round: the two ran back to
    back, so a slow phase of a shared machine slows both and mostly cancels (a check on the ratio of medians)."""
    r = [a / b for a, b in zip(times, reference)]
    return {"median": statistics.median(r), "min": min(r), "max": max(r)}


def ratio_interval(times: list[float], reference: list[float], level: float = 0.9, resamples: int = 2000,
                   seed: int = 0) -> dict:
    """The `level` bootstrap interval of median(times) / median(reference): rounds resampled with replacement,
    each round's pair kept together (the two ran in the same round), percentiles of the resampled ratios of
    medians. How far this run's ratio could move from sampling alone (seeded, so reruns on the same figures
    agree); a different hour of a shared machine can move it further."""
    pick = random.Random(seed).choices
    n, ratios = len(times), []
    for _ in range(resamples):
        idx = pick(range(n), k=n)
        ratios.append(statistics.median(times[i] for i in idx) / statistics.median(reference[i] for i in idx))
    ratios.sort()
    tail = (1 - level) / 2
    return {"lo": ratios[round(tail * (resamples - 1))], "hi": ratios[round((1 - tail) * (resamples - 1))]}


def compare(times: dict[str, list[float]], reference: str, key: str) -> dict[str, dict]:
    """Per entry of `times` (ms per round): `stats`, the ratio of its median to the `reference` entry's median
    under `key` (e.g. "ratio_to_tsm"), that ratio's 90% interval (`ratio_interval`, as "ratio_ci90") and the
    per-round ratios (`paired_ratios`, as "paired_ratio"). Without a reference entry (it failed to run) the
    three ratio fields are None."""
    ref = times.get(reference)
    out = {}
    for name, t in times.items():
        row = stats(t)
        row[key] = statistics.median(t) / statistics.median(ref) if ref else None
        row["ratio_ci90"] = ratio_interval(t, ref) if ref else None
        row["paired_ratio"] = paired_ratios(t, ref) if ref else None
        out[name] = row
    return out


def cpuinfo_field(field: str) -> str | None:
    """The first value of `field` ("model name", "vendor_id", ...) in /proc/cpuinfo; None where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == field:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name (Linux, else what platform knows) and the vector ISA torch's kernels dispatch to,
    e.g. "AMD EPYC (AVX2)": VMs that report the same model name have come with and without AVX-512, and the
    ratios differ between them, so runs of the two are never grouped together."""
    name = cpuinfo_field("model name") or platform.processor() or platform.machine()
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


def machine(device: torch.device) -> str:
    """One line naming what ran the benchmark: the CPU, its cores and torch's threads; on a CUDA device also the
    GPU, its memory and the CUDA / cuDNN versions."""
    host = f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if device.type != "cuda":
        return host
    props = torch.cuda.get_device_properties(device)
    return (f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}, "
            f"cuDNN {torch.backends.cudnn.version()}; host {host}")


def check_at_least(ap: argparse.ArgumentParser, args: argparse.Namespace, least: dict[str, int]) -> None:
    """`ap.error` (one line, exit 2) naming the first flag whose value, or any of whose values, is below its
    least value in `least` ({"--rounds": 1, ...}); None values (not given, no default) pass."""
    for flag, lo in least.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        for v in value if isinstance(value, list) else [value]:
            if v is not None and v < lo:
                ap.error(f"{flag} {v}: must be at least {lo}")


def check_ratios(ap: argparse.ArgumentParser, ratios: list[float]) -> None:
    """`ap.error` unless every forced selection ratio is in (0, 1]."""
    for r in ratios:
        if not 0 < r <= 1:
            ap.error(f"--ratios {r}: must be in (0, 1] (the fraction of frames the focal branch computes)")


def started_utc() -> str:
    """The current UTC time as 2026-01-31T235959Z: a run's start, sortable and safe in file names."""
    return time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())


def write_json(result: dict, path: Path) -> None:
    """Atomically: an interrupted run never leaves a half-written file for the report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)


def kept_run_path(runs_dir: Path, started: str) -> Path:
    """<runs_dir>/<started>.json, numbered (-2, -3, ...) rather than overwrite a kept run."""
    path, n = runs_dir / f"{started}.json", 1
    while path.exists():
        n += 1
        path = runs_dir / f"{started}-{n}.json"
    return path
