"""MKL's CPU dispatch on AMD hosts, and whether it changes the training-step ratio of AFNet-R50 to TSN-R50.

`python experiments/bench_mkl_dispatch.py [--rounds 10] [--repeats 1] [--allocator keep]` (`make bench-mkl`)

oneMKL, torch's BLAS, runs its fastest GEMM kernels only where it believes the CPU is Intel's: on this AMD
EPYC host (AVX-512) a 1024³ product runs at ~100 GMAC/s under its default dispatch and ~200-230 GMAC/s
with its Intel paths. It asks `mkl_serv_intel_cpu_true`, which libtorch_cpu exports and calls through its
PLT, so a one-function library loaded with RTLD_GLOBAL before torch is imported (compiled here with the
system C compiler, `build_shim`) makes it take those paths. oneDNN, which runs torch's convolutions, picks
its kernels by ISA and is unaffected. The suite's training uses MKL products for the focal branch's
grouped 1x1 convolutions at 56² (`GroupedPointwiseConv2d`) and oneDNN for everything else, so a faster MKL
could move the AFNet-R50 / TSN-R50 ratio; this script measures by how much.

The script runs itself as a child process per dispatch (`--child default`, `--child intel`; `--repeats`
times each, alternating). Each child measures, in one process:
- GEMM rates: a 1024³ product and the 1x1 products of both models at 12 frames;
- forward + backward of every 1x1 convolution shape of the two models (dense and the focal branch's
  groups=2) as oneDNN's convolution and as the batched product, and their ratio;
- training steps (`src.bench.sgd_step`, NCHW, 12 frames) of four models interleaved: TSN-R50 and AFNet-R50
  as the suite trains them, and both with every 1x1 stride-1 convolution as a product from
  `--product-min-pixels` on (grouped ones at every size). The fair pair is the one where both models get
  the faster path: "both products" when products beat oneDNN.
The parent then prints the children's figures next to each other and one JSON object.
"""

from __future__ import annotations

import os
import sys

# The child's override must be in place before torch (and with it MKL) is loaded.
if os.environ.get("AFNET_MKL_SHIM"):
    import ctypes

    ctypes.CDLL(os.environ["AFNET_MKL_SHIM"], mode=os.RTLD_GLOBAL)
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8192")  # as in src.bench: four models interleaved

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src import bench as suite_bench  # noqa: E402


class GroupedPointwiseConv2d(nn.Conv2d):
    """A 1x1, stride-1 convolution that, in training on CPU with NCHW input of at least `matmul_min_pixels`
    positions, runs as one batched matrix product over the input's own memory, (N, g, C_in/g, H·W) by
    (g, C_out/g, C_in/g) -> (N, C_out, H, W), no copies; elsewhere the usual convolution."""

    matmul_min_pixels = 56 * 56

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and x.device.type == "cpu" and x.dim() == 4 and x.is_contiguous()
                and x.shape[-2] * x.shape[-1] >= self.matmul_min_pixels):
            return super().forward(x)
        n, c, h, w = x.shape
        g = self.groups
        y = torch.matmul(self.weight.view(g, -1, c // g), x.view(n, g, c // g, h * w)).view(n, -1, h, w)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


SHIM_SOURCE = "int mkl_serv_intel_cpu_true(void) { return 1; }\n"
# (C_in, C_out, H = W, groups): TSN-R50's and AFNet-R50's 1x1 stride-1 convolutions at 12 frames
SHAPES = [(256, 64, 56, 1), (64, 256, 56, 1), (512, 128, 28, 1), (128, 512, 28, 1), (1024, 256, 14, 1),
          (256, 1024, 14, 1), (2048, 512, 7, 1), (512, 2048, 7, 1),
          (256, 64, 56, 2), (64, 256, 56, 2), (512, 128, 28, 2), (128, 512, 28, 2), (1024, 256, 14, 2),
          (256, 1024, 14, 2)]


def build_shim(directory: Path) -> Path:
    """Compiles the one-function override into `directory`/libmkl_intel_dispatch.so with the C compiler on
    PATH (`cc`, else `gcc`); a clear error if there is none."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("bench_mkl_dispatch needs a C compiler (cc or gcc on PATH) to build the MKL override")
    src, lib = directory / "mkl_intel_dispatch.c", directory / "libmkl_intel_dispatch.so"
    src.write_text(SHIM_SOURCE)
    subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src)], check=True)
    return lib


def pointwise_as_products(net: nn.Module, min_pixels: int) -> nn.Module:
    """Every 1x1 stride-1 unpadded convolution of `net` becomes a `GroupedPointwiseConv2d` (the same weight
    Parameter, so values and state dict stay) that trains as a batched product on maps of H·W >= min_pixels
    (dense) or at every size (grouped). In place; returns net."""
    for module in list(net.modules()):
        for name, conv in list(module.named_children()):
            if type(conv) not in (nn.Conv2d, GroupedPointwiseConv2d) or conv.kernel_size != (1, 1) \
                    or conv.stride != (1, 1) or conv.padding != (0, 0):
                continue
            if type(conv) is nn.Conv2d:
                new = GroupedPointwiseConv2d(conv.in_channels, conv.out_channels, 1, groups=conv.groups,
                                             bias=conv.bias is not None)
                new.weight, new.bias = conv.weight, conv.bias
                setattr(module, name, new)
                conv = new
            conv.matmul_min_pixels = 0 if conv.groups > 1 else min_pixels
    return net


def median_ms(fn, reps: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def gemm_rates(frames: int, reps: int) -> dict:
    """GMAC/s of a 1024³ product and of the forward 1x1 products of `SHAPES` (one per group and frame)."""
    a, b, out = torch.randn(1024, 1024), torch.randn(1024, 1024), torch.empty(1024, 1024)
    rates = {"1024^3": 1024**3 / 1e6 / median_ms(lambda: torch.mm(a, b, out=out), reps)}
    for cin, cout, hw, g in SHAPES:
        w, x = torch.randn(g, cout // g, cin // g), torch.randn(frames, g, cin // g, hw * hw)
        out = torch.empty(frames, g, cout // g, hw * hw)
        ms = median_ms(functools.partial(torch.matmul, w, x, out=out), reps)
        rates[f"{cin}->{cout}@{hw} g{g}"] = frames * cout * cin // g * hw * hw / 1e6 / ms
    return rates


def forward_backward(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    module(x).backward(grad)


def pointwise_times(frames: int, reps: int) -> list[dict]:
    """Forward + backward ms of each `SHAPES` convolution as oneDNN's convolution and as the product."""
    rows = []
    for cin, cout, hw, g in SHAPES:
        x = torch.randn(frames, cin, hw, hw, requires_grad=True)
        gy = torch.randn(frames, cout, hw, hw)
        conv = nn.Conv2d(cin, cout, 1, groups=g, bias=False)
        prod = GroupedPointwiseConv2d(cin, cout, 1, groups=g, bias=False)
        prod.weight, prod.matmul_min_pixels = conv.weight, 0
        t_conv = median_ms(functools.partial(forward_backward, conv, x, gy), reps)
        t_prod = median_ms(functools.partial(forward_backward, prod, x, gy), reps)
        rows.append({"shape": f"{cin}->{cout}@{hw} g{g}", "conv_ms": t_conv, "product_ms": t_prod,
                     "product_over_conv": t_prod / t_conv})
    return rows


def step_times(frames: int, size: int, rounds: int, warmup: int, min_pixels: int) -> dict[str, list[float]]:
    """Seconds per training step of the four variants, interleaved (`src.bench.interleaved_step_times`)."""
    plain, products = suite_bench.training_models(frames, False), suite_bench.training_models(frames, False)
    nets = {"tsn": plain["tsn_r50"], "afnet": plain["afnet_r50"],
            "tsn_products": pointwise_as_products(products["tsn_r50"], min_pixels),
            "afnet_products": pointwise_as_products(products["afnet_r50"], min_pixels)}
    x, y = suite_bench.training_inputs(frames, size, 1, False)
    return suite_bench.interleaved_step_times(nets, x, y, rounds, warmup)


def step_ratios(times: dict[str, list[float]]) -> dict:
    m = {k: statistics.median(v) for k, v in times.items()}
    return {"median_s": m, "suite": m["afnet"] / m["tsn"], "both_products": m["afnet_products"] / m["tsn_products"],
            "afnet_products_vs_suite_tsn": m["afnet_products"] / m["tsn"],
            "products_speedup": {"tsn": m["tsn_products"] / m["tsn"], "afnet": m["afnet_products"] / m["afnet"]}}


def child(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.allocator == "keep":
        suite_bench.keep_freed_memory()
    result = {"dispatch": args.child, "gemm_gmacs": gemm_rates(args.frames, args.reps),
              "pointwise": pointwise_times(args.frames, args.reps)}
    result["steps"] = step_ratios(step_times(args.frames, args.size, args.rounds, args.warmup,
                                             args.product_min_pixels))
    return result


def run_child(args, dispatch: str, shim: Path | None) -> dict:
    env = dict(os.environ)
    env.pop("AFNET_MKL_SHIM", None)
    if dispatch == "intel":
        env["AFNET_MKL_SHIM"] = str(shim)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", dispatch]
    for flag in ("threads", "frames", "size", "rounds", "warmup", "reps", "product_min_pixels", "allocator"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the {dispatch} child ({' '.join(cmd)}) failed with exit code {proc.returncode}:\n"
                           + proc.stderr[-4000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def print_summary(runs: list[dict]) -> None:
    by = {d: [r for r in runs if r["dispatch"] == d] for d in ("default", "intel")}
    print(f"{'GEMM GMAC/s (median over runs)':34s} {'default':>9s} {'intel':>9s}")
    for key in by["default"][0]["gemm_gmacs"]:
        vals = [statistics.median(r["gemm_gmacs"][key] for r in by[d]) for d in ("default", "intel")]
        print(f"  {key:32s} {vals[0]:9.0f} {vals[1]:9.0f}")
    print(f"\n{'1x1 conv fwd+bwd, product / oneDNN conv':42s} {'default':>9s} {'intel':>9s}")
    for i, row in enumerate(by["default"][0]["pointwise"]):
        vals = [statistics.median(r["pointwise"][i]["product_over_conv"] for r in by[d]) for d in ("default", "intel")]
        print(f"  {row['shape']:40s} {vals[0]:9.2f} {vals[1]:9.2f}")
    print("\ntraining step (NCHW), per run: seconds (tsn, afnet, tsn_products, afnet_products) and ratios")
    for r in runs:
        s = r["steps"]
        m = s["median_s"]
        print(f"  {r['dispatch']:8s} {m['tsn']:.3f} {m['afnet']:.3f} {m['tsn_products']:.3f} "
              f"{m['afnet_products']:.3f}   AFNet/TSN as the suite trains {s['suite']:.3f}, both products "
              f"{s['both_products']:.3f}, AFNet products / suite TSN {s['afnet_products_vs_suite_tsn']:.3f}")


def main(argv: list[str] | None = None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    suite_bench.add_machine_args(ap)
    ap.add_argument("--rounds", type=int, default=10, help="timed training steps per model")
    ap.add_argument("--warmup", type=int, default=3, help="untimed training steps per model first")
    ap.add_argument("--reps", type=int, default=10, help="timed calls per GEMM / 1x1 convolution")
    ap.add_argument("--repeats", type=int, default=1, help="child runs per dispatch, alternating")
    ap.add_argument("--product-min-pixels", type=int, default=14 * 14,
                    help="the products variants run dense 1x1 convs as products on maps of at least this H·W")
    ap.add_argument("--child", choices=["default", "intel"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for flag, least in (("threads", 1), ("frames", 1), ("size", 32), ("rounds", 1), ("warmup", 0), ("reps", 1),
                        ("repeats", 1), ("product_min_pixels", 0)):
        if getattr(args, flag) < least:
            ap.error(f"--{flag.replace('_', '-')} {getattr(args, flag)}: must be at least {least}")
    if args.size % 32:
        ap.error(f"--size {args.size}: must be a multiple of 32 (the ResNets' total stride)")
    if args.child:
        print(json.dumps(child(args)))
        return None
    vendor = suite_bench.cpuinfo_field("vendor_id") or "unknown"
    print(f"host: {suite_bench.cpu_name()}, vendor {vendor}, torch {torch.__version__}, {args.threads} threads, "
          f"allocator {args.allocator}")
    if vendor != "AuthenticAMD":
        print("  (MKL already takes its Intel paths on this vendor: both children should agree)")
    with tempfile.TemporaryDirectory() as tmp:
        shim = build_shim(Path(tmp))
        runs = [run_child(args, d, shim) for _ in range(args.repeats) for d in ("default", "intel")]
    print()
    print_summary(runs)
    result = {"host": suite_bench.cpu_name(), "vendor": vendor, "allocator": args.allocator, "runs": runs}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
