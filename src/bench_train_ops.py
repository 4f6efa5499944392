"""Where a training step's time goes, op by op: `python -m src.bench_train_ops [--steps 8] [--allocator keep]`.

Runs the training-step pair of `make bench` (AFNet-R50 on the masked path, TSN-R50; `src.bench.training_models`)
interleaved, with every aten op timed by a dispatch mode (`OpTimer`): the op's own wall time, no profiler
(torch.profiler's records inflate the large CPU ops here by up to 3x). Each op lands in a category:
convolutions and matrix products ("conv": `convolution`, `convolution_backward`, `mm`, `bmm`, ...), batch
norm, and every other op; forward, backward and optimiser apart. What the ops leave of the step ("outside
ops") is Python, the autograd engine and the timer's own cost (~10-20 us per op, so this column favours the
model with fewer ops). Under a dispatch mode autograd sums the gradients of a tensor with several consumers
out of place (`add`, in place without one), so "backward: other ops" holds those sums as fresh tensors.
Convolutions and products also count their MACs (`op_macs`), so the table shows the rate each model achieves:
at equal rates the conv-time ratio would be the MAC ratio.

Prints one table (ms per step, AFNet-R50 / TSN-R50 and their ratio per category), the product time, MACs and
rate of each model per layer family (dense / grouped / depthwise convolutions by kernel size, matrix
products), the AFNet-R50 conv shapes that lose the most time against TSN-R50's achieved rate, then one JSON
object. The times under the timer are a few percent above `make bench`'s; the ratios are what to read.

`--stages` instead times each of the four stages of both models alone (no timer): AF stages 1-3 and stage 4
against TSN-R50's layer1-4, each run forward + backward on the input it gets in the model, interleaved, next
to its forward MACs (`layer_macs`, the FLOPs counter's convention), so the table says where the step's time
ratio departs from the MAC ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import defaultdict

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from src.bench import (
    add_machine_args,
    cpu_name,
    keep_freed_memory,
    sgd_step,
    training_inputs,
    training_models,
    training_optimizers,
)
from src.models.flops import layer_macs

PRODUCTS = {"convolution", "convolution_backward", "mm", "bmm", "addmm", "baddbmm", "matmul"}
BATCH_NORM = {"native_batch_norm", "native_batch_norm_backward", "_native_batch_norm_legit",
              "_native_batch_norm_legit_no_training"}
PHASES = ("forward", "backward", "optimizer")
CATEGORIES = ("conv", "batch norm", "other ops")
STAGES = {"afnet_r50": ("stages.0", "stages.1", "stages.2", "stage4"),  # module names in `training_models`
          "tsn_r50": ("trunk.layer1", "trunk.layer2", "trunk.layer3", "trunk.layer4")}


def category(op: str) -> str:
    """The table row of an aten op (its overload packet's name)."""
    return "conv" if op in PRODUCTS else "batch norm" if op in BATCH_NORM else "other ops"


def op_macs(op: str, args: tuple, out) -> int:
    """Multiply-accumulates of one call of a product op (out: its result), 0 for other ops. convolution: output size x
    (C_in / groups) x k²; convolution_backward: that per gradient it computes (input, weight), from the
    output-gradient's size; mm / bmm / addmm / baddbmm: rows x inner x columns."""
    if op == "convolution":
        w = args[1]
        return out.numel() * w.shape[1] * w.shape[2] * w.shape[3]
    if op == "convolution_backward":
        g, w, mask = args[0], args[2], args[-1]
        return g.numel() * w.shape[1] * w.shape[2] * w.shape[3] * (int(mask[0]) + int(mask[1]))
    if op in ("mm", "bmm", "matmul"):
        return args[0].numel() * args[1].shape[-1]
    if op in ("addmm", "baddbmm"):
        return args[1].numel() * args[2].shape[-1]
    return 0


def family(op: str, args: tuple) -> str:
    """A product op's layer family: 'dense', 'grouped' or 'depthwise' and the kernel size for convolutions
    (forward and backward alike), 'matrix products' for mm / bmm / ... (in AFNet-R50 the grouped 1x1 convs
    that train as batched products, `GroupedPointwiseConv2d`, and the heads)."""
    if op not in ("convolution", "convolution_backward"):
        return "matrix products"
    x, w = (args[0], args[1]) if op == "convolution" else (args[1], args[2])
    groups = x.shape[1] // w.shape[1]
    kind = "dense" if groups == 1 else "depthwise" if groups == x.shape[1] else "grouped"
    return f"{kind} {w.shape[2]}x{w.shape[3]}"


def shape_key(op: str, args: tuple) -> str:
    """A product op's input and weight shapes (per frame), e.g. 'bwd conv (256, 56, 56) w (64, 256, 1, 1) s1'."""
    if op in ("convolution", "convolution_backward"):
        x, w, stride = (args[0], args[1], args[3]) if op == "convolution" else (args[1], args[2], args[4])
        return f"{'bwd' if op == 'convolution_backward' else 'fwd'} conv {tuple(x.shape[1:])} w {tuple(w.shape)} " \
               f"s{stride[0]}"
    return f"{op} {tuple(args[0].shape)} x {tuple(args[1].shape)}"


class OpTimer(TorchDispatchMode):
    """Times every aten op run under it: `totals[(phase, category)] = [seconds, calls, MACs]` and, for the
    products, `shapes[shape_key]` and `families[family]`, the same. Set `phase` before each part of a step."""

    def __init__(self):
        super().__init__()
        self.phase = "forward"
        self.totals: dict = defaultdict(lambda: [0.0, 0, 0])
        self.shapes: dict = defaultdict(lambda: [0.0, 0, 0])
        self.families: dict = defaultdict(lambda: [0.0, 0, 0])

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        t0 = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        dt = time.perf_counter() - t0
        op = func.overloadpacket.__name__
        macs = op_macs(op, args, out)
        self._add(self.totals[(self.phase, category(op))], dt, macs)
        if op in PRODUCTS:
            self._add(self.shapes[shape_key(op, args)], dt, macs)
            self._add(self.families[family(op, args)], dt, macs)
        return out

    @staticmethod
    def _add(row: list, seconds: float, macs: int) -> None:
        row[0] += seconds
        row[1] += 1
        row[2] += macs

    def set_phase(self, phase: str) -> None:
        self.phase = phase


def timed_step(timer: OpTimer, net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor) -> float:
    """`src.bench.sgd_step` with the timer's phase set for each part; returns the step's wall seconds."""
    t0 = time.perf_counter()
    sgd_step(net, opt, x, y, phase=timer.set_phase)
    return time.perf_counter() - t0


def breakdown(frames: int = 12, size: int = 224, batch: int = 1, steps: int = 8, warmup: int = 3,
              channels_last: bool = False) -> dict:
    """Per model: median step seconds under the timer and, averaged per step, seconds / calls / MACs per
    (phase, category), per product shape and per layer family (`family`). The models alternate in a seeded
    shuffled order."""
    nets = training_models(frames, channels_last)
    x, y = training_inputs(frames, size, batch, channels_last)
    opts = training_optimizers(nets)
    for _ in range(warmup):  # fresh pages, oneDNN primitives: as in `make bench`
        for k, net in nets.items():
            sgd_step(net, opts[k], x, y)
    timers = {k: OpTimer() for k in nets}
    step_s = {k: [] for k in nets}
    order = random.Random(0)
    for _ in range(steps):
        for k in order.sample(list(nets), len(nets)):
            with timers[k]:
                step_s[k].append(timed_step(timers[k], nets[k], opts[k], x, y))
    result = {}
    for k, t in timers.items():
        per_step = {f"{phase}/{cat}": [v / steps for v in row] for (phase, cat), row in t.totals.items()}
        ops_s = sum(row[0] for row in per_step.values())
        result[k] = {"step_s": statistics.median(step_s[k]), "mean_step_s": statistics.fmean(step_s[k]),
                     "outside_ops_s": statistics.fmean(step_s[k]) - ops_s, "totals": per_step,
                     "shapes": {s: [v / steps for v in row] for s, row in t.shapes.items()},
                     "families": {f: [v / steps for v in row] for f, row in t.families.items()}}
    return result


def capture_stages(net: torch.nn.Module, names: tuple[str, ...], x: torch.Tensor) -> list[dict]:
    """Per named stage of `net`, from one forward of x without autograd: the arguments the model called it
    with ("args", "kwargs"; tensors detached) and the forward MACs of its layers ("macs", `layer_macs`)."""
    modules = dict(net.named_modules())
    stages = {name: {"macs": 0} for name in names}
    handles = []
    for name in names:
        def capture(module, args, kwargs, name=name):
            stages[name].update(args=tuple(a.detach() if torch.is_tensor(a) else a for a in args), kwargs=kwargs)

        def count(module, args, out, name=name):
            stages[name]["macs"] += layer_macs(module, args[0] if args else None, out)

        handles.append(modules[name].register_forward_pre_hook(capture, with_kwargs=True))
        handles += [m.register_forward_hook(count) for m in modules[name].modules()]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return [stages[name] for name in names]


def stage_times(frames: int = 12, size: int = 224, batch: int = 1, rounds: int = 8, warmup: int = 2,
                channels_last: bool = False) -> dict:
    """Per model and stage (`STAGES`): median seconds of forward + backward of that stage alone, on the input
    it gets in the model (requiring a gradient, as inside a step) with a fixed random output gradient,
    parameter gradients cleared first; every (model, stage) once per round in a seeded shuffled order; and
    the stage's forward MACs."""
    nets = training_models(frames, channels_last)
    x, _ = training_inputs(frames, size, batch, channels_last)
    gen = torch.Generator().manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    calls = {}
    for key, net in nets.items():
        modules = dict(net.named_modules())
        for name, stage in zip(STAGES[key], capture_stages(net, STAGES[key], x)):
            calls[(key, name)] = {"module": modules[name], "input": stage["args"][0].clone().requires_grad_(),
                                  "rest": stage["args"][1:], "kwargs": stage["kwargs"], "macs": stage["macs"],
                                  "grad": None, "times": []}

    def run(call: dict) -> None:
        call["module"].zero_grad(set_to_none=True)
        call["input"].grad = None
        out = call["module"](call["input"], *call["rest"], **call["kwargs"])
        out = out[0] if isinstance(out, tuple) else out  # an AF stage also returns its masks
        if call["grad"] is None:
            call["grad"] = torch.randn(out.shape, generator=gen).contiguous(memory_format=layout)
        out.backward(call["grad"])

    order = random.Random(0)
    for r in range(warmup + rounds):
        for k in order.sample(list(calls), len(calls)):
            t0 = time.perf_counter()
            run(calls[k])
            if r >= warmup:
                calls[k]["times"].append(time.perf_counter() - t0)
    return {key: [{"name": name, "s": statistics.median(calls[(key, name)]["times"]),
                   "gmacs": calls[(key, name)]["macs"] / 1e9} for name in STAGES[key]] for key in nets}


def print_stages(res: dict) -> dict:
    """Prints the stage table; returns its rows for the JSON."""
    print(f"{'stage (fwd + bwd alone)':<26}{'AFNet-R50 ms':>13}{'TSN-R50 ms':>12}{'ratio':>8}"
          f"{'GMACs AF':>10}{'GMACs TSN':>11}{'MAC ratio':>11}")
    rows = {}
    for i, (a, b) in enumerate(zip(res["afnet_r50"], res["tsn_r50"])):
        name = f"{i + 1}: {a['name']} / {b['name'].split('.')[-1]}"
        rows[name] = {"afnet_r50_ms": a["s"] * 1e3, "tsn_r50_ms": b["s"] * 1e3, "afnet_r50_gmacs": a["gmacs"],
                      "tsn_r50_gmacs": b["gmacs"]}
    total = {k: sum(r[k] for r in rows.values()) for k in next(iter(rows.values()))}
    for name, r in [*rows.items(), ("all four", total)]:
        print(f"{name:<26}{r['afnet_r50_ms']:>13.1f}{r['tsn_r50_ms']:>12.1f}{r['afnet_r50_ms'] / r['tsn_r50_ms']:>8.3f}"
              f"{r['afnet_r50_gmacs']:>10.2f}{r['tsn_r50_gmacs']:>11.2f}"
              f"{r['afnet_r50_gmacs'] / r['tsn_r50_gmacs']:>11.3f}")
    return rows


def summary_rows(res: dict) -> list[tuple[str, float, float]]:
    """(row, AFNet-R50 ms, TSN-R50 ms) per phase and category, then outside ops and the step."""
    a, b = res["afnet_r50"], res["tsn_r50"]
    rows = []
    for phase in PHASES:
        for cat in CATEGORIES:
            key = f"{phase}/{cat}"
            ta, tb = a["totals"].get(key, [0.0])[0], b["totals"].get(key, [0.0])[0]
            if ta or tb:
                rows.append((f"{phase}: {cat}", ta * 1e3, tb * 1e3))
    rows.append(("outside ops (Python, autograd, timer)", a["outside_ops_s"] * 1e3, b["outside_ops_s"] * 1e3))
    rows.append(("step (mean under the timer)", a["mean_step_s"] * 1e3, b["mean_step_s"] * 1e3))
    return rows


def family_rows(res: dict) -> list[tuple[str, list, list]]:
    """(family, AFNet-R50 [s, calls, MACs], TSN-R50 [s, calls, MACs]) per step, the costliest in either first."""
    a, b = res["afnet_r50"]["families"], res["tsn_r50"]["families"]
    zero = [0.0, 0, 0]
    rows = [(f, a.get(f, zero), b.get(f, zero)) for f in set(a) | set(b)]
    return sorted(rows, key=lambda r: -max(r[1][0], r[2][0]))


def conv_rate(model: dict) -> tuple[float, float]:
    """(GMACs per step, achieved GMAC/s) over every product op, forward and backward."""
    s = sum(row[0] for row in model["shapes"].values())
    macs = sum(row[2] for row in model["shapes"].values())
    return macs / 1e9, macs / 1e9 / s if s else 0.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_machine_args(ap)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--top", type=int, default=12, help="AFNet-R50 product shapes to list")
    ap.add_argument("--stages", action="store_true",
                    help="time each stage of both models alone (forward + backward) instead, --steps rounds")
    args = ap.parse_args(argv)
    for flag, value, least in (("--steps", args.steps, 1), ("--warmup", args.warmup, 0), ("--top", args.top, 0),
                               ("--threads", args.threads, 1), ("--frames", args.frames, 1), ("--batch", args.batch, 1),
                               ("--size", args.size, 32)):
        if value < least:
            ap.error(f"{flag} {value}: must be at least {least}")
    if args.size % 32:
        ap.error(f"--size {args.size}: must be a multiple of 32 (the ResNets' total stride)")
    if args.allocator == "keep":
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layout = "channels-last" if args.channels_last else "NCHW"
    machine = {"machine": cpu_name(), "threads": args.threads, "allocator": args.allocator, "layout": layout,
               "frames": args.frames, "size": args.size, "batch": args.batch, "steps": args.steps}
    if args.stages:
        res = stage_times(args.frames, args.size, args.batch, args.steps, args.warmup, args.channels_last)
        print(f"\ntraining stages alone, {args.batch}x{args.frames}x{args.size}², {layout}, {args.threads} threads, "
              f"{args.steps} interleaved rounds, {args.allocator} allocator; {cpu_name()}")
        out = {**machine, "stages": print_stages(res)}
        print(json.dumps(out))
        return out
    res = breakdown(args.frames, args.size, args.batch, args.steps, args.warmup, args.channels_last)

    print(f"\ntraining step by op, {args.batch}x{args.frames}x{args.size}², {layout}, {args.threads} threads, "
          f"{args.steps} interleaved steps, {args.allocator} allocator; {cpu_name()}")
    print(f"{'ms per step':<40}{'AFNet-R50':>11}{'TSN-R50':>10}{'ratio':>8}")
    for name, ta, tb in summary_rows(res):
        print(f"{name:<40}{ta:>11.1f}{tb:>10.1f}{ta / tb if tb else float('nan'):>8.3f}")
    (ga, ra), (gb, rb) = conv_rate(res["afnet_r50"]), conv_rate(res["tsn_r50"])
    print(f"conv + products: AFNet-R50 {ga:.1f} GMACs at {ra:.0f} GMAC/s, TSN-R50 {gb:.1f} GMACs at {rb:.0f} "
          f"GMAC/s; MAC ratio {ga / gb:.3f}")
    print(f"\n{'by layer family, per step':<26}{'AFNet-R50: ms':>14}{'GMACs':>7}{'GMAC/s':>8}"
          f"{'TSN-R50: ms':>13}{'GMACs':>7}{'GMAC/s':>8}")
    for name, fa, fb in family_rows(res):
        cells = "".join(f"{s * 1e3:>{w}.1f}{m / 1e9:>7.2f}{m / 1e9 / s if s else 0:>8.0f}"
                        for (s, _, m), w in ((fa, 14), (fb, 13)))
        print(f"{name:<26}{cells}")
    if args.top:
        # time beyond what the shape would take at TSN-R50's achieved rate
        shapes = sorted(res["afnet_r50"]["shapes"].items(), key=lambda kv: kv[1][2] / 1e9 / rb - kv[1][0])
        print(f"\nAFNet-R50 product shapes furthest below TSN-R50's {rb:.0f} GMAC/s (per step):")
        print(f"{'ms':>7}{'calls':>6}{'GMACs':>7}{'GMAC/s':>8}{'excess ms':>10}  shape")
        for key, (s, n, macs) in shapes[:args.top]:
            print(f"{s * 1e3:>7.1f}{n:>6.0f}{macs / 1e9:>7.2f}{macs / 1e9 / s if s else 0:>8.0f}"
                  f"{s * 1e3 - macs / 1e9 / rb * 1e3:>10.1f}  {key}")
    out = {**machine,
           "rows": {name: {"afnet_r50_ms": ta, "tsn_r50_ms": tb} for name, ta, tb in summary_rows(res)},
           "gmacs": {"afnet_r50": ga, "tsn_r50": gb}, "gmac_per_s": {"afnet_r50": ra, "tsn_r50": rb},
           "families": {name: {"afnet_r50_ms": fa[0] * 1e3, "afnet_r50_gmacs": fa[2] / 1e9,
                               "tsn_r50_ms": fb[0] * 1e3, "tsn_r50_gmacs": fb[2] / 1e9}
                        for name, fa, fb in family_rows(res)}}
    print(json.dumps(out))
    return {**out, "models": res}


if __name__ == "__main__":
    main()
