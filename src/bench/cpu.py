"""CPU latency benchmark (Table S5 protocol): `python -m src.bench [--threads 2] [--rounds 50]`.

Per-video latency at batch 1, T frames, 224², eval + inference mode, float32, a fixed thread count, models
interleaved after warm-up (`common.time_interleaved`); medians (with min / max) and each model's ratio to
TSM-R50 next to its GMACs ratio, with a 90% bootstrap interval over the rounds and the median (min / max) of
the per-round ratios. Every model gets the same inference rewrites (`models.prepare`): BN folded,
channels-last, conv weights prepacked for oneDNN once per input shape (`--no-prepack`: reordered on every
call, as `F.conv2d` does), ResNet stems run a few frames at a time (`--stem-chunk 0`: the whole clip at once).
Then a training step (forward + backward + SGD step, batch 1, default training options, NCHW as `src.train`
runs) of AFNet-R50 against TSN-R50. The last line printed is one JSON object with every figure; `--out`
also writes it, `--runs-dir` keeps a copy per run (`python -m src.bench.runs` summarises them).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from src.bench import common, models
from src.models.inference import STEM_CHUNK_FRAMES

CPU = torch.device("cpu")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m src.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu (this protocol) or cuda (`python -m src.bench.gpu`)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.4, 0.5, 0.8, 1.0],
                    help="forced selection ratios of the AFNet-TSM-R50 rows")
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--no-prepack", action="store_true",
                    help="convs reorder their weights on every call (F.conv2d) instead of once per input shape")
    ap.add_argument("--stem-chunk", type=int, default=STEM_CHUNK_FRAMES,
                    help="frames per chunk of the ResNet stems (conv, ReLU, max-pool, per frame); 0: whole clips")
    ap.add_argument("--train-rounds", type=int, default=12, help="0 skips the training-step benchmark")
    ap.add_argument("--train-batch", type=int, default=1)
    ap.add_argument("--train-warmup", type=int, default=3, help="untimed interleaved rounds of training steps first")
    ap.add_argument("--train-layout", choices=["nchw", "cl"], default="nchw",
                    help="memory layout of the training step (cl: channels-last)")
    ap.add_argument("--only", nargs="*", help="row names to keep (the TSM-R50 reference is always kept)")
    ap.add_argument("--out", type=Path, help="also write the JSON here (make bench: experiments/S5/bench.json, "
                                             "which `python -m src.report S5` reads)")
    ap.add_argument("--runs-dir", type=Path, help="also keep a copy named by its UTC start time here "
                                                  "(make bench: experiments/S5/runs)")
    return ap


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The flags, checked: a bad value exits with one line naming the flag."""
    ap = parser()
    args = ap.parse_args(argv)
    common.check_at_least(ap, args, {"--threads": 1, "--frames": 1, "--size": 32, "--rounds": 1, "--warmup": 0,
                                     "--stem-chunk": 0, "--train-rounds": 0, "--train-batch": 1, "--train-warmup": 0})
    common.check_ratios(ap, args.ratios)
    return args


def latency(args: argparse.Namespace) -> dict[str, dict]:
    """The latency rows: ms per video (stats), ratio to TSM-R50 with its interval, GMACs and their ratio."""
    channels_last = not args.no_channels_last
    nets, gmacs = {}, {}
    for name, method, backbone, ratio in models.select_rows(models.latency_rows(args.ratios), args.only):
        net, gmacs[name] = models.build_eval_model(method, backbone, args.frames, ratio, args.size)
        nets[name] = models.prepare(net, CPU, channels_last=channels_last, prepack=not args.no_prepack,
                                    stem_chunk_frames=args.stem_chunk)
    clip = torch.randn(1, args.frames, 3, args.size, args.size)
    clip = models.inference_clip(clip, CPU, channels_last=channels_last)
    calls = {k: (lambda n=n: n(clip)) for k, n in nets.items()}
    with torch.inference_mode():
        times = common.time_interleaved(calls, args.rounds, args.warmup)
    rows = common.compare(times, models.REFERENCE, "ratio_to_tsm")
    for name, row in rows.items():
        row.update(gmacs=gmacs[name], gmacs_ratio=gmacs[name] / gmacs[models.REFERENCE])
    return rows


def train_step(args: argparse.Namespace) -> dict:
    """ms per SGD step of AFNet-R50 and TSN-R50 on the same batch, interleaved after `--train-warmup` untimed
    steps each (the first steps still create the backward's buffers, the momenta and oneDNN primitives)."""
    cl = args.train_layout == "cl"
    nets = models.training_models([models.TRAIN_REFERENCE, "afnet_r50"], args.frames, CPU, cl)
    opts = models.training_optimizers(nets)
    x, y = models.training_batch(args.train_batch, args.frames, args.size, CPU, cl)
    calls = {k: (lambda k=k: models.sgd_step(nets[k], opts[k], x, y)) for k in nets}
    times = common.time_interleaved(calls, args.train_rounds, args.train_warmup)
    return {"batch": args.train_batch, "layout": args.train_layout, "warmup": args.train_warmup,
            "rounds": args.train_rounds, "models": common.compare(times, models.TRAIN_REFERENCE, "ratio_to_tsn")}


def print_latency(rows: dict[str, dict], args: argparse.Namespace) -> None:
    print(f"\nlatency per video, batch 1, {args.frames}x{args.size}², {args.threads} threads, "
          f"{args.rounds} interleaved rounds")
    print(f"{'model':<22}{'median ms':>10}{'min':>8}{'max':>8}{'÷ TSM-R50':>11}{'90% interval':>18}{'GMACs':>8}"
          f"{'MAC ratio':>11}{'paired ÷ TSM [min, max]':>27}")
    for name, s in rows.items():
        ci, p = s["ratio_ci90"], s["paired_ratio"]
        print(f"{name:<22}{s['median']:>10.1f}{s['min']:>8.1f}{s['max']:>8.1f}{s['ratio_to_tsm']:>11.3f}"
              f"   [{ci['lo']:.3f}, {ci['hi']:.3f}]{s['gmacs']:>8.2f}{s['gmacs_ratio']:>11.3f}"
              f"{p['median']:>11.3f} [{p['min']:.3f}, {p['max']:.3f}]")


def print_train_step(step: dict, frames: int, size: int) -> None:
    a, b = step["models"]["afnet_r50"], step["models"][models.TRAIN_REFERENCE]
    ci, p = a["ratio_ci90"], a["paired_ratio"]
    print(f"\ntraining step (fwd+bwd+SGD), {step['batch']}x{frames}x{size}², {step['layout']}: "
          f"AFNet-R50 {a['median']:.0f} ms [{a['min']:.0f}, {a['max']:.0f}], "
          f"TSN-R50 {b['median']:.0f} ms [{b['min']:.0f}, {b['max']:.0f}], ratio {a['ratio_to_tsn']:.3f}, "
          f"90% interval [{ci['lo']:.3f}, {ci['hi']:.3f}] (paired {p['median']:.3f} [{p['min']:.3f}, {p['max']:.3f}])")


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    # The interleaved models together need more than oneDNN's default 1024 cached conv primitives; past that,
    # rounds rebuild (JIT) kernels and the timings grow noisy. Read when the first primitive is created.
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")
    started = common.started_utc()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = {"device": "cpu", "machine": common.machine(CPU), "started": started, "frames": args.frames,
              "size": args.size, "prepack": not args.no_prepack and not args.no_channels_last
              and torch.backends.mkldnn.is_available(), "stem_chunk_frames": args.stem_chunk, "rounds": args.rounds,
              "latency": latency(args)}
    print_latency(result["latency"], args)
    if args.train_rounds:
        result["train_step"] = train_step(args)
        print_train_step(result["train_step"], args.frames, args.size)
    if args.out:
        common.write_json(result, args.out)
    if args.runs_dir:
        common.write_json(result, common.kept_run_path(args.runs_dir, started))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
