"""CPU latency benchmark (Table S5 protocol): `python -m src.bench [--threads 2] [--rounds 50]`.

Per-video latency at batch 1, T frames, 224², eval + inference mode, a fixed thread count, models
interleaved after warm-up (every model once per round, in a shuffled order); medians (with min / max) and
each model's ratio to TSM-R50 next to its GMACs ratio, with a 90% bootstrap interval over the rounds
(`ratio_interval`), plus the median (min / max) of the per-round ratios to TSM-R50 (paired, robust to a
shared machine's slow phases), and the median minor page faults per video
(fresh pages touched: the default allocator's cost, which `--allocator keep` removes). AFNet rows force the
realised selection ratio deterministically: top-k frames per block, k spread over the blocks so that the
frames computed average exactly r*T (`forced_ratios`), GMACs counted at those per-block ratios. Every model
gets the same inference rewrites: BN folded into its convs, channels-last, conv weights prepacked for oneDNN
once per input shape (`--no-prepack`: reordered on every call, as `F.conv2d` does), ResNet stems run a few
frames at a time (`--stem-chunk 0`: the whole clip at once, whose 38.5 MB conv output is mapped afresh per call).
Then a training-step benchmark (forward + backward + SGD step, masked path) of AFNet-R50 against TSN-R50.
The last line printed is one JSON object with every figure.

`--allocator keep` tells glibc's malloc never to hand freed memory back to the kernel (no mmap, no trim), so
after warm-up no activation costs page faults: the figures then measure the arithmetic and the memory
traffic alone, where the default also charges each model for the fresh pages it touches (on a VM, a cost that
changes from hour to hour). Both models of a ratio always run under the same allocator.
"""

from __future__ import annotations

import os

# The interleaved models together need more than oneDNN's default 1024 cached conv primitives; past that,
# rounds rebuild (JIT) kernels and the timings grow noisy. Read when the first primitive is created.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")

import argparse
import ctypes
import ctypes.util
import json
import platform
import random
import statistics
import time
from pathlib import Path

import torch

from src.models import build_video_model
from src.models.afnet.af_resnet import forced_ratios
from src.models.flops import profile_macs
from src.models.inference import STEM_CHUNK_FRAMES, PrepackedConv2d, model_input, prepare_for_inference

REFERENCE = "tsm_r50"


def latency_rows(ratios: list[float]) -> list[tuple[str, str, str, float | None]]:
    """(row name, method, backbone, forced ratio) of the latency table."""
    rows = [(REFERENCE, "tsm", "r50", None), ("tsn_r50", "tsn", "r50", None)]
    rows += [(f"afnet_tsm_r50@{r:.2f}", "afnet_tsm", "r50", r) for r in ratios]
    rows += [("tsm_mbv3", "tsm", "mbv3", None), ("afnet_tsm_mbv3@0.40", "afnet_tsm", "mbv3", 0.4)]
    return rows


def build(method: str, backbone: str, frames: int, ratio: float | None, channels_last: bool, fold_bn: bool = True,
          prepack: bool = True, stem_chunk_frames: int = STEM_CHUNK_FRAMES):
    """An eval-mode model of the latency table, with the same inference rewrites as every other row
    (`prepare_for_inference`: BN folded, channels-last, prepacked conv weights, frame-chunked ResNet stems), so
    the ratios stay fair."""
    net = build_video_model(method, backbone, num_classes=174, num_segments=frames).eval()
    if ratio is not None:  # realised ratio r on average over the masks, to a frame (5, 5, 4, ... of 12 at 0.4)
        net.set_forced_ratio(forced_ratios(ratio, frames, net.num_masks))
    return prepare_for_inference(net, channels_last=channels_last, fold_bn=fold_bn, prepack=prepack,
                                 stem_chunk_frames=stem_chunk_frames)


def minor_faults() -> int:
    """Minor page faults of this process so far (the kernel mapping a fresh page on first touch); 0 where
    the OS does not count them (no `resource` module)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_interleaved(nets: dict, clip: torch.Tensor, rounds: int, warmup: int,
                     seed: int = 0) -> tuple[dict[str, list[float]], dict[str, list[int]]]:
    """Milliseconds and minor page faults per forward, one forward per model per round, the order of the
    models shuffled anew each round (seeded): no model always runs right after the same other one (whose
    memory it would inherit). The faults count the fresh pages each forward touched (mostly 4 KiB ones): on
    a VM each costs microseconds, which is most of the run-to-run spread under the default allocator."""
    times, faults = {k: [] for k in nets}, {k: [] for k in nets}
    order = random.Random(seed)
    with torch.inference_mode():
        for i in range(warmup + rounds):
            for name in order.sample(list(nets), len(nets)):
                net = nets[name]
                f0, t0 = minor_faults(), time.perf_counter()
                net(clip)
                dt, df = (time.perf_counter() - t0) * 1e3, minor_faults() - f0
                if i >= warmup:
                    times[name].append(dt)
                    faults[name].append(df)
    return times, faults


def training_models(frames: int, channels_last: bool) -> dict[str, torch.nn.Module]:
    """The training-step pair in train mode: TSN-R50 and AFNet-R50 on the masked path (its navigation trained
    through the Gumbel straight-through masks), both in the same memory layout."""
    nets = {"tsn_r50": build_video_model("tsn", "r50", 174, frames).train(),
            "afnet_r50": build_video_model("afnet", "r50", 174, frames, focal_compute="masked").train()}
    if channels_last:
        nets = {k: n.to(memory_format=torch.channels_last) for k, n in nets.items()}
    return nets


def training_inputs(frames: int, size: int, batch: int, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A random clip batch (batch, frames, 3, size, size) and labels (batch,) over 174 classes."""
    x = torch.randn(batch, frames, 3, size, size)
    return (model_input(x) if channels_last else x), torch.randint(0, 174, (batch,))


def training_optimizers(nets: dict[str, torch.nn.Module]) -> dict[str, torch.optim.Optimizer]:
    """The benchmark's optimiser per model: SGD, lr 1e-3, momentum 0.9 (its momenta are part of a step's cost)."""
    return {k: torch.optim.SGD(n.parameters(), lr=1e-3, momentum=0.9) for k, n in nets.items()}


def sgd_step(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
             phase=None) -> None:
    """One training step: forward, cross-entropy, backward, SGD update. `phase`, if given, is called with
    "forward", "backward" and "optimizer" as each part starts (`src.bench_train_ops` times them apart)."""
    if phase:
        phase("forward")
    loss = torch.nn.functional.cross_entropy(net(x).logits, y)
    opt.zero_grad(set_to_none=True)
    if phase:
        phase("backward")
    loss.backward()
    if phase:
        phase("optimizer")
    opt.step()


def train_step_times(frames: int, size: int, batch: int, rounds: int, channels_last: bool,
                     warmup: int = 3) -> dict[str, list[float]]:
    """Seconds per SGD step (`sgd_step`) of the `training_models` pair, interleaved, after `warmup` untimed
    steps each: the first steps still map fresh pages (the backward's buffers, the optimiser's momenta;
    measured on this machine through the third step) and create oneDNN primitives."""
    nets = training_models(frames, channels_last)
    x, y = training_inputs(frames, size, batch, channels_last)
    return interleaved_step_times(nets, x, y, rounds, warmup)


def interleaved_step_times(nets: dict[str, torch.nn.Module], x: torch.Tensor, y: torch.Tensor, rounds: int,
                           warmup: int) -> dict[str, list[float]]:
    """Seconds per SGD step (`sgd_step`, momentum 0.9) of each model on the same batch: every round runs each
    model once, in a seeded shuffled order; the first `warmup` rounds are not timed."""
    opts = training_optimizers(nets)
    times = {k: [] for k in nets}
    order = random.Random(0)
    for i in range(warmup + rounds):
        for k in order.sample(list(nets), len(nets)):  # which model goes first changes from round to round
            t0 = time.perf_counter()
            sgd_step(nets[k], opts[k], x, y)
            if i >= warmup:
                times[k].append(time.perf_counter() - t0)
    return times


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4


def keep_freed_memory() -> None:
    """glibc malloc: no mmap'd blocks and no trimming, so freed memory stays mapped for the next allocation."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        raise RuntimeError("--allocator keep needs glibc's mallopt (Linux); run with --allocator default")
    for param, value in ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1)):
        if libc.mallopt(param, value) != 1:
            raise RuntimeError(f"mallopt({param}, {value}) failed: run with --allocator default")


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
    ratios differ between them, so `bench_runs` must not group their runs together."""
    name = cpuinfo_field("model name") or platform.processor() or platform.machine()
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


def write_json(result: dict, path: Path) -> None:
    """Atomically: an interrupted run never leaves a half-written file for the report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, path)


def kept_run_path(runs_dir: Path, started: str, allocator: str) -> Path:
    """<runs_dir>/<started>-<allocator>.json, numbered (-2, -3, ...) rather than overwrite a kept run."""
    path, n = runs_dir / f"{started}-{allocator}.json", 1
    while path.exists():
        n += 1
        path = runs_dir / f"{started}-{allocator}-{n}.json"
    return path


def stats(values: list[float]) -> dict:
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


def add_machine_args(ap: argparse.ArgumentParser) -> None:
    """The flags every CPU benchmark here shares: threads, clip length and size, allocator."""
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--allocator", choices=["default", "keep"], default="default",
                    help="keep: glibc malloc keeps freed memory mapped (no page faults after warm-up)")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_machine_args(ap)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.4, 0.5, 0.8, 1.0])
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--no-prepack", action="store_true",
                    help="convs reorder their weights on every call (F.conv2d) instead of once per input shape")
    ap.add_argument("--stem-chunk", type=int, default=STEM_CHUNK_FRAMES,
                    help="frames per chunk of the ResNet stems (conv, ReLU, max-pool, per frame); 0: whole clips")
    ap.add_argument("--train-rounds", type=int, default=24, help="0 skips the training-step benchmark")
    ap.add_argument("--train-batch", type=int, default=1)
    ap.add_argument("--train-warmup", type=int, default=3, help="untimed training steps per model first")
    ap.add_argument("--train-layouts", nargs="+", choices=["nchw", "cl"], default=["nchw", "cl"],
                    help="memory layouts of the training-step benchmark (cl: channels-last)")
    ap.add_argument("--only", nargs="*", help="row names to keep (the TSM-R50 reference is always kept)")
    ap.add_argument("--out", type=Path, help="also write the JSON here (make bench: experiments/S5/bench.json, "
                                             "which `python -m src.report S5` reads)")
    ap.add_argument("--runs-dir", type=Path, help="also keep a copy named by its UTC start time and allocator "
                                                  "here (make bench: experiments/S5/runs, which "
                                                  "`python -m src.bench_runs` summarises)")
    args = ap.parse_args(argv)
    for flag, value, least in (("--rounds", args.rounds, 1), ("--warmup", args.warmup, 0),
                               ("--stem-chunk", args.stem_chunk, 0),
                               ("--train-rounds", args.train_rounds, 0), ("--train-warmup", args.train_warmup, 0),
                               ("--train-batch", args.train_batch, 1)):
        if value < least:
            ap.error(f"{flag} {value}: must be at least {least}")
    started = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    if args.allocator == "keep":
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = [r for r in latency_rows(args.ratios) if not args.only or r[0] in args.only or r[0] == REFERENCE]
    nets, gmacs = {}, {}
    for name, method, backbone, ratio in rows:
        net = build(method, backbone, args.frames, ratio, not args.no_channels_last, prepack=not args.no_prepack,
                    stem_chunk_frames=args.stem_chunk)
        prof = profile_macs(net, args.frames, input_size=args.size)
        gmacs[name] = prof.gmacs(net.forced_ratio if ratio is not None else 1.0)  # the frames really computed
        nets[name] = net
    clip = torch.randn(args.frames, 3, args.size, args.size)  # one video, folded (T, 3, H, W)
    if not args.no_channels_last:
        clip = model_input(clip)
    times, faults = time_interleaved(nets, clip, args.rounds, args.warmup)

    ref = statistics.median(times[REFERENCE])
    result = {"machine": f"{cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, "
                         f"torch {torch.__version__}",
              "started": started, "allocator": args.allocator, "frames": args.frames, "size": args.size,
              "prepack": any(isinstance(m, PrepackedConv2d) for n in nets.values() for m in n.modules()),
              "stem_chunk_frames": args.stem_chunk, "rounds": args.rounds,
              "latency": {}}
    print(f"\nlatency per video, batch 1, {args.frames}x{args.size}², {args.threads} threads, "
          f"{args.rounds} interleaved rounds, {args.allocator} allocator")
    print(f"{'model':<22}{'median ms':>10}{'min':>8}{'max':>8}{'÷ TSM-R50':>11}{'GMACs':>8}{'MAC ratio':>11}"
          f"{'90% interval':>16}{'paired ÷ TSM [min, max]':>27}{'faults':>9}")
    for name in nets:
        s = stats(times[name])
        p = paired_ratios(times[name], times[REFERENCE])
        ci = ratio_interval(times[name], times[REFERENCE])
        s.update(ratio_to_tsm=s["median"] / ref, ratio_ci90=ci, gmacs=gmacs[name],
                 gmacs_ratio=gmacs[name] / gmacs[REFERENCE], paired_ratio=p,
                 page_faults=int(statistics.median(faults[name])))
        result["latency"][name] = s
        print(f"{name:<22}{s['median']:>10.1f}{s['min']:>8.1f}{s['max']:>8.1f}{s['ratio_to_tsm']:>11.3f}"
              f"{s['gmacs']:>8.2f}{s['gmacs_ratio']:>11.3f}   [{ci['lo']:.3f}, {ci['hi']:.3f}]"
              f"{p['median']:>11.3f} [{p['min']:.3f}, {p['max']:.3f}]"
              f"{s['page_faults']:>9}")

    if args.train_rounds:
        result["train_step"] = {"batch": args.train_batch, "warmup": args.train_warmup,
                               "rounds": args.train_rounds}
        for layout in args.train_layouts:
            tt = train_step_times(args.frames, args.size, args.train_batch, args.train_rounds, layout == "cl",
                                  args.train_warmup)
            a, b = stats(tt["afnet_r50"]), stats(tt["tsn_r50"])
            p = paired_ratios(tt["afnet_r50"], tt["tsn_r50"])
            ci = ratio_interval(tt["afnet_r50"], tt["tsn_r50"])
            result["train_step"][layout] = {"afnet_r50": a, "tsn_r50": b, "ratio": a["median"] / b["median"],
                                            "ratio_ci90": ci, "paired_ratio": p}
            print(f"\ntraining step (fwd+bwd+SGD), {args.train_batch}x{args.frames}x{args.size}², {layout}: "
                  f"AFNet-R50 {a['median']:.2f} s [{a['min']:.2f}, {a['max']:.2f}], "
                  f"TSN-R50 {b['median']:.2f} s [{b['min']:.2f}, {b['max']:.2f}], "
                  f"ratio {a['median'] / b['median']:.3f}, 90% interval [{ci['lo']:.3f}, {ci['hi']:.3f}] "
                  f"(paired {p['median']:.3f} [{p['min']:.3f}, {p['max']:.3f}])")
    if args.out:
        write_json(result, args.out)
    if args.runs_dir:
        write_json(result, kept_run_path(args.runs_dir, started, args.allocator))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
