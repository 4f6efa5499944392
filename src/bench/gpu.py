"""GPU benchmark: `python -m src.bench --device cuda [--quick] [--out F.json]` (`make bench-gpu`).

Inference: every model of the inference table (`models.latency_rows`: TSM-R50, TSN-R50, AFNet-TSM-R50 at
forced ratios, TSM-MBv3, AFNet-TSM-MBv3) in eval mode with the same rewrites (`models.prepare`: BN folded,
channels-last, optionally `torch.compile`d), T frames at 224², for each precision (fp32; bf16: weights and
clip in bfloat16) and batch size (1: latency; 16 and 64: throughput in videos/s). Per setting the models run
interleaved after warm-up, each call timed with CUDA events (`common.CudaEventTimer`): medians with min /
max, the ratio to TSM-R50 with its 90% interval, next to the GMACs ratio. `first_call_s` is the wall-clock
time of each model's first call in a setting: cuDNN's set-up and, with `--compile`, the compilation.
fp32 convolutions run as torch's defaults allow (cuDNN may use TF32 on Ampere and later); the JSON records
those switches. cuDNN autotuning is off, as `src.train` runs (`--cudnn-benchmark` turns it on for every model:
each new conv shape is then tuned on its first call, which `first_call_s` shows).

Training step: TSN-R50 (the reference), TSM-R50 and AFNet-R50 in train mode with their default options,
8 frames, batch 16: forward and loss under bf16 autocast, backward, SGD step; ms per step, interleaved, and
the peak memory of one step (`torch.cuda.max_memory_allocated` minus what was allocated before the model was
built: its weights, gradients, momenta and activations).

A model that fails in a setting is named under "errors" and left out of that setting; the rest still run.
The defaults take about 5 minutes on one H200 and `--quick` about one (fewer rounds, batches 1 and 16,
r = 0.4 and 1.0). It prints a table per setting and, last, one JSON object (`--out` also writes it).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch

from src.bench import common, models

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
COMPILE_MODES = ["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
# Values of the flags left unset, by protocol: the full one fits ~5 minutes on an H200, --quick ~1 minute.
FULL = {"rounds": 20, "warmup": 3, "batches": [1, 16, 64], "ratios": [0.25, 0.4, 0.5, 0.8, 1.0],
        "train_rounds": 20, "train_warmup": 2}
QUICK = {"rounds": 3, "warmup": 1, "batches": [1, 16], "ratios": [0.4, 1.0], "train_rounds": 3, "train_warmup": 1}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m src.bench --device cuda", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda or cuda:N")
    ap.add_argument("--quick", action="store_true", help="a ~1-minute smoke run (unset flags take quick values)")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batches", type=int, nargs="+", help=f"default {FULL['batches']}, quick {QUICK['batches']}")
    ap.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    ap.add_argument("--ratios", type=float, nargs="+",
                    help=f"forced ratios of the AFNet-TSM-R50 rows; default {FULL['ratios']}, quick {QUICK['ratios']}")
    ap.add_argument("--rounds", type=int, help=f"timed rounds per setting; default {FULL['rounds']}")
    ap.add_argument("--warmup", type=int, help=f"untimed rounds per setting first; default {FULL['warmup']}")
    ap.add_argument("--only", nargs="*", help="inference row names to keep (the TSM-R50 reference is always kept)")
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--compile", choices=COMPILE_MODES, help="torch.compile every inference model in this mode")
    ap.add_argument("--cudnn-benchmark", action="store_true", help="cuDNN autotuning (torch.backends.cudnn.benchmark)")
    ap.add_argument("--train-frames", type=int, default=8)
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--train-dtype", choices=list(DTYPES), default="bf16", help="autocast dtype of the step")
    ap.add_argument("--train-rounds", type=int, help=f"0 skips the training step; default {FULL['train_rounds']}")
    ap.add_argument("--train-warmup", type=int, help=f"untimed interleaved rounds; default {FULL['train_warmup']}")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    return ap


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The flags, checked (a bad value exits with one line naming the flag), unset ones filled from `FULL` or,
    with --quick, `QUICK`. The device is not checked here (`main` does)."""
    ap = parser()
    args = ap.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    common.check_at_least(ap, args, {"--frames": 1, "--size": 32, "--batches": 1, "--rounds": 1, "--warmup": 0,
                              "--train-frames": 1, "--train-batch": 1, "--train-rounds": 0, "--train-warmup": 0})
    common.check_ratios(ap, args.ratios)
    return args


def cuda_device(value: str) -> torch.device:
    """The CUDA device `--device` names; SystemExit with one line when it is not one torch can use."""
    try:
        device = torch.device(value)
    except RuntimeError:
        device = None
    if device is None or device.type != "cuda":
        raise SystemExit(f"--device {value}: expected cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise SystemExit(f"--device {value}: torch {torch.__version__} sees no CUDA device")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise SystemExit(f"--device {value}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device if device.index is not None else torch.device("cuda", torch.cuda.current_device())


def error_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def first_calls(calls: dict, device: torch.device, errors: dict, where: str) -> tuple[dict, dict[str, float]]:
    """Run each call once, timing it on the wall clock (s, until the device is done); a call that raises is
    named in `errors` under `where/name` and left out. Returns the calls that ran and their first times."""
    ok, first = {}, {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        try:
            call()
            common.synchronize(device)
        except Exception as e:  # one failing model must not cost the other figures of a GPU session
            errors[f"{where}/{name}"] = error_line(e)
            continue
        first[name], ok[name] = time.perf_counter() - t0, call
    return ok, first


def inference(args: argparse.Namespace, device: torch.device, errors: dict) -> dict:
    """{dtype: {batch (str): {row: ms stats, videos_per_s, ratio_to_tsm, ratio_ci90, paired_ratio, gmacs,
    gmacs_ratio, first_call_s}}} over the `--dtypes` and `--batches`."""
    channels_last, timer = not args.no_channels_last, common.timer_for(device)
    base, gmacs = {}, {}
    for name, method, backbone, ratio in models.select_rows(models.latency_rows(args.ratios), args.only):
        base[name], gmacs[name] = models.build_eval_model(method, backbone, args.frames, ratio, args.size)
    out = {}
    for dname in args.dtypes:
        dtype, out[dname] = DTYPES[dname], {}
        nets = {k: models.prepare(copy.deepcopy(n), device, dtype, channels_last, args.compile)
                for k, n in base.items()}
        for batch in args.batches:
            clip = torch.randn(batch, args.frames, 3, args.size, args.size)
            clip = models.inference_clip(clip, device, dtype, channels_last)
            with torch.inference_mode():
                calls, first = first_calls({k: (lambda n=n, x=clip: n(x)) for k, n in nets.items()}, device,
                                           errors, f"{dname}/batch {batch}")
                times = common.time_interleaved(calls, args.rounds, args.warmup, timer)
            rows = common.compare(times, models.REFERENCE, "ratio_to_tsm")
            for name, row in rows.items():
                row.update(videos_per_s=batch * 1e3 / row["median"], gmacs=gmacs[name],
                           gmacs_ratio=gmacs[name] / gmacs[models.REFERENCE], first_call_s=first[name])
            out[dname][str(batch)] = rows
            print_inference(rows, dname, batch, args)
        del nets
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def train_step(args: argparse.Namespace, device: torch.device, errors: dict) -> dict:
    """ms per training step of `TRAIN_MODELS` (stats, ratio_to_tsn with its interval), their forward GMACs per
    video with every frame computed and its ratio, the first step's wall-clock seconds and the peak memory of
    one step in MiB (None off CUDA). The models are built one after another, each stepped twice (first step,
    then a step whose peak is measured) before the next is built, then timed interleaved."""
    cl, autocast = not args.no_channels_last, DTYPES[args.train_dtype] if args.train_dtype != "fp32" else None
    x, y = models.training_batch(args.train_batch, args.train_frames, args.size, device, cl)
    steps, first, peak = {}, {}, {}
    for name in models.TRAIN_MODELS:
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        net = models.training_models([name], args.train_frames, device, cl)[name]
        opt = models.training_optimizers({name: net})[name]

        def step(net=net, opt=opt):
            models.sgd_step(net, opt, x, y, autocast)

        ran, t = first_calls({name: step}, device, errors, f"train {args.train_dtype}")
        if not ran:
            continue
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        step()
        common.synchronize(device)
        if device.type == "cuda":
            peak[name] = (torch.cuda.max_memory_allocated(device) - before) / 2**20
        opt.zero_grad(set_to_none=True)  # the next model's peak must not include these gradients
        steps[name], first[name] = step, t[name]
    times = common.time_interleaved(steps, args.train_rounds, args.train_warmup, common.timer_for(device))
    rows = common.compare(times, models.TRAIN_REFERENCE, "ratio_to_tsn")
    gmacs = {name: models.training_gmacs(name, args.train_frames, args.size) for name in rows}
    for name, row in rows.items():
        row.update(gmacs=gmacs[name], gmacs_ratio=gmacs[name] / gmacs[models.TRAIN_REFERENCE]
                   if models.TRAIN_REFERENCE in gmacs else None, first_call_s=first[name], peak_mib=peak.get(name))
    return {"frames": args.train_frames, "batch": args.train_batch, "autocast": args.train_dtype,
            "optimizer": "SGD lr 1e-3 momentum 0.9", "rounds": args.train_rounds, "warmup": args.train_warmup,
            "models": rows}


def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def print_inference(rows: dict[str, dict], dname: str, batch: int, args: argparse.Namespace) -> None:
    print(f"\ninference {dname}, batch {batch}, {args.frames}x{args.size}², {args.rounds} interleaved rounds")
    print(f"{'model':<22}{'median ms':>10}{'min':>8}{'max':>8}{'videos/s':>10}{'÷ TSM-R50':>11}{'90% interval':>18}"
          f"{'GMACs':>8}{'MAC ratio':>11}{'first s':>9}")
    for name, s in rows.items():
        ci = s["ratio_ci90"]
        interval = f"[{ci['lo']:.3f}, {ci['hi']:.3f}]" if ci else "–"
        print(f"{name:<22}{s['median']:>10.2f}{s['min']:>8.2f}{s['max']:>8.2f}{s['videos_per_s']:>10.1f}"
              f"{fmt(s['ratio_to_tsm'], '.3f'):>11}{interval:>18}{s['gmacs']:>8.2f}{s['gmacs_ratio']:>11.3f}"
              f"{s['first_call_s']:>9.2f}")


def print_summary(inference_rows: dict) -> None:
    """One line per model: its ratio to TSM-R50 in every setting, side by side."""
    settings = [(d, b) for d, per_batch in inference_rows.items() for b in per_batch]
    names = list(dict.fromkeys(n for d, b in settings for n in inference_rows[d][b]))
    print("\nratio to TSM-R50 (median time)")
    print(f"{'model':<22}" + "".join(f"{f'{d} b{b}':>11}" for d, b in settings))
    for name in names:
        cells = [inference_rows[d][b].get(name, {}).get("ratio_to_tsm") for d, b in settings]
        print(f"{name:<22}" + "".join(f"{fmt(c, '.3f'):>11}" for c in cells))


def print_train_step(step: dict, size: int) -> None:
    print(f"\ntraining step (fwd+bwd+SGD), batch {step['batch']}x{step['frames']}x{size}², "
          f"{step['autocast']} autocast")
    print(f"{'model':<12}{'median ms':>10}{'min':>8}{'max':>8}{'÷ TSN-R50':>11}{'90% interval':>18}{'GMACs':>8}"
          f"{'MAC ratio':>11}{'peak MiB':>10}")
    for name, s in step["models"].items():
        ci = s["ratio_ci90"]
        interval = f"[{ci['lo']:.3f}, {ci['hi']:.3f}]" if ci else "–"
        print(f"{name:<12}{s['median']:>10.1f}{s['min']:>8.1f}{s['max']:>8.1f}{fmt(s['ratio_to_tsn'], '.3f'):>11}"
              f"{interval:>18}{s['gmacs']:>8.2f}{fmt(s['gmacs_ratio'], '.3f'):>11}{fmt(s['peak_mib'], '.0f'):>10}")


def run(args: argparse.Namespace, device: torch.device) -> dict:
    """The benchmark on `device` (a CUDA device; any other runs the same code with wall-clock timing and no
    memory figures, which the tests use). Returns the result printed last as JSON."""
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    errors: dict[str, str] = {}
    result = {"device": device.type, "machine": common.machine(device), "started": common.started_utc(),
              "frames": args.frames, "size": args.size, "channels_last": not args.no_channels_last,
              "compile": args.compile,
              "cudnn_benchmark": device.type == "cuda" and torch.backends.cudnn.benchmark,
              "tf32": {"cudnn": torch.backends.cudnn.allow_tf32, "matmul": torch.backends.cuda.matmul.allow_tf32},
              "rounds": args.rounds, "warmup": args.warmup, "quick": args.quick,
              "inference": inference(args, device, errors)}
    print_summary(result["inference"])
    if args.train_rounds:
        result["train_step"] = train_step(args, device, errors)
        print_train_step(result["train_step"], args.size)
    result["errors"] = errors
    for where, line in errors.items():
        print(f"failed: {where}: {line}")
    if args.out:
        common.write_json(result, args.out)
    print(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    return run(args, cuda_device(args.device))


if __name__ == "__main__":
    main()
