"""Export a trained TSN / TSM / AFNet checkpoint for deployment without this code base.

    python -m src.export ckpt_path=PATH format=torchscript|onnx|pt2 [out=PATH] [batch=1] [check=true]
                         [training overrides]

The exported graph takes one fp32 batch of clips (batch, T, 3, crop, crop), normalised as the datasets
normalise them (ImageNet mean and std), and returns (logits (batch, K), masks (M, batch*T)): the frames each
of the M focal blocks selected (1) or skipped (0); M = 0 for TSN / TSM. The input shape is fixed at export.

AFNet is exported in evaluation mode with deterministic masks (the argmax of the navigation logits) and the
masked focal computation: every frame runs through the focal blocks and the skipped frames' residuals are
multiplied by 0. Its logits equal those of the sliced computation (the default in evaluation, which runs the
focal blocks on the selected frames only) to float rounding, but it does not save the skipped frames' compute.
No format here holds the sliced computation: the number of selected frames decides tensor shapes, and the
frames are gathered in a Python loop over their indices, which neither tracing (TorchScript, ONNX) nor
`torch.export` can record as a graph.

formats: torchscript (`torch.jit.trace`, a .pt file for `torch.jit.load`), pt2 (`torch.export`, a .pt2 file
for `torch.export.load`), onnx (`torch.onnx.export`, opset of the installed exporter; needs
`pip install -e .[onnx]`). With check=true (the default) the exported model is run on a random clip and its
logits compared with the eager model's (the checkpoint's net in evaluation mode).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

USAGE = __doc__
FORMATS = {"torchscript": ".torchscript.pt", "pt2": ".pt2", "onnx": ".onnx"}  # the default out: <ckpt stem><suffix>
EXPORT_KEYS = {"ckpt_path": None, "format": None, "out": None, "batch": "1", "check": "true"}
# the AFNet switches that make the exported graph: the masked focal computation and deterministic masks
MASKED_DETERMINISTIC = ["model.focal_compute=masked", "model.eval_gumbel_noise=false"]


class ExportError(ValueError):
    """Bad export input, or a format whose package is missing: the message names it."""


class ExportedVideoModel(nn.Module):
    """A video model with plain tensor outputs: (N, T, 3, H, W) -> (logits (N, K), masks (M, N*T)).

    masks[i] is focal block i's temporal mask over the N*T frames (1 = selected); (0, N*T) for TSN / TSM."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(x)
        if out.masks:
            masks = torch.stack([m.reshape(-1) for m in out.masks])
        else:
            masks = out.logits.new_zeros(0, x.shape[0] * x.shape[1])
        return out.logits, masks


# ---- arguments ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> tuple[dict, list[str]]:
    """(export options, training-config overrides)."""
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    opts, overrides = dict(EXPORT_KEYS), []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ExportError(f"argument {arg!r}: expected key=value")
        if key in opts:
            opts[key] = value
        else:
            overrides.append(arg)
    if not opts["ckpt_path"]:
        raise ExportError("ckpt_path=PATH is required (a .ckpt of src.train or src.convert_checkpoint)")
    if opts["format"] not in FORMATS:
        raise ExportError(f"format={opts['format']!r}: choose one of {', '.join(FORMATS)}")
    if not opts["batch"].isdigit() or int(opts["batch"]) < 1:
        raise ExportError(f"batch={opts['batch']!r}: expected an integer >= 1")
    if opts["check"].lower() not in ("true", "false"):
        raise ExportError(f"check={opts['check']!r}: expected true or false")
    opts["batch"], opts["check"] = int(opts["batch"]), opts["check"].lower() == "true"
    return opts, overrides


# ---- export ------------------------------------------------------------------------------------------------
def load_for_export(ckpt_path: str | Path, overrides: list[str] = ()):
    """(cfg, eager net, net to export): both in evaluation mode; for AFNet the exported one computes the focal
    blocks masked with deterministic masks (see the module docstring), the eager one as the run configured it."""
    from src.utils.runs import load_run

    cfg, eager = load_run(ckpt_path, overrides)
    eager.eval()
    if not str(cfg.model.method).startswith("afnet"):
        return cfg, eager, eager
    _, net = load_run(ckpt_path, [*overrides, *MASKED_DETERMINISTIC])
    return cfg, eager, net.eval()


def example_clip(cfg, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """A random normalised clip batch (batch, T, 3, crop, crop), fp32."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, int(cfg.num_segments), 3, int(cfg.dataset.crop_size), int(cfg.dataset.crop_size),
                       generator=g)


def export(model: nn.Module, example: torch.Tensor, fmt: str, out: Path) -> None:
    """Write `ExportedVideoModel(model)` (eval mode) traced on `example` to `out` in format `fmt`."""
    import warnings

    from src.utils.files import atomic_output

    if fmt == "onnx":
        require_onnx()
    wrapped = ExportedVideoModel(model).eval()
    with torch.no_grad(), warnings.catch_warnings(), atomic_output(out) as tmp:
        # shape checks in the models are Python branches: tracing fixes them at this input shape, as intended
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if fmt == "torchscript":
            traced = torch.jit.trace(wrapped, (example,), check_trace=False, strict=False)
            torch.jit.save(traced, str(tmp))
        elif fmt == "pt2":
            program = torch.export.export(wrapped, (example,), strict=False)
            with open(tmp, "wb") as f:  # a file object: the archive writer wants a .pt2 name otherwise
                torch.export.save(program, f)
        else:
            torch.onnx.export(wrapped, (example,), str(tmp), input_names=["clip"], output_names=["logits", "masks"],
                              dynamo=True, external_data=False, verbose=False)


def require_onnx() -> None:
    import importlib.util

    missing = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"format=onnx needs {', '.join(missing)}: pip install -e '.[onnx]'")


def run_exported(path: Path, fmt: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, masks) of the exported file at `path` on clip batch x, on the CPU."""
    if fmt == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path), map_location="cpu")(x)
    if fmt == "pt2":
        with torch.no_grad():
            return torch.export.load(str(path)).module()(x)
    require_onnx()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, masks = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(logits), torch.from_numpy(masks)


def run_export(opts: dict, overrides: list[str]) -> dict:
    from src.utils.runs import checkpoint_arg

    ckpt = checkpoint_arg(opts["ckpt_path"])
    fmt = opts["format"]
    print(f"loading {ckpt}", flush=True)
    cfg, eager, net = load_for_export(ckpt, overrides)
    out = Path(opts["out"] or ckpt.with_name(ckpt.stem + FORMATS[fmt]))
    x = example_clip(cfg, opts["batch"])
    afnet = str(cfg.model.method).startswith("afnet")
    path_used = "masked (deterministic masks)" if afnet else "dense (no focal blocks)"
    print(f"exporting {cfg.run_name} to {fmt}: input {tuple(x.shape)} fp32, focal computation {path_used}",
          flush=True)
    export(net, x, fmt, out)
    result = {"out": str(out), "format": fmt, "input_shape": list(x.shape), "focal_compute": path_used}
    if opts["check"]:
        print("checking the exported model against the eager one", flush=True)
        with torch.no_grad():
            ref = eager(x).logits
        logits, _ = run_exported(out, fmt, x)
        result["max_abs_diff"] = float((logits - ref).abs().max())
    print(f"wrote {out}  ({out.stat().st_size / 1e6:.1f} MB)")
    print("  inputs   clip (batch, T, 3, crop, crop) = " + str(tuple(x.shape)) + ", normalised with the ImageNet "
          "mean / std")
    print("  outputs  logits (batch, classes), masks (focal blocks, batch*T): 1 = frame selected")
    if "max_abs_diff" in result:
        print(f"  check    max |logits - eager logits| = {result['max_abs_diff']:.2e}")
    return result


def main(argv: list[str] | None = None) -> dict:
    try:
        opts, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        return run_export(opts, overrides)
    except (ExportError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
