"""Inference rewrites of a trained model, kept apart from the model code.

`prepare_for_inference(model, device, dtype, ...)` returns the model in eval mode on that device and dtype with
the same rewrites applied to every model (TSN, TSM and AFNet alike, so latencies compare fairly):
BN folded into the convs (`rewrites.fold_batchnorm`), channels-last memory, the device's fast paths
(`cpu.apply_cpu_rewrites` on a CPU, `gpu.apply_gpu_rewrites` on CUDA) unless the model's `fast_paths` is
"off" (the config key `model.fast_paths`), and optionally `torch.compile`. The rewritten model is for
inference only: no BN to train, and the CPU paths write into tensors the forward no longer needs.
`model_input(clip, ...)` turns a clip batch into the model's folded input on that device, dtype and layout.
The forced ratio of an AFNet model (`set_forced_ratio`) works on the rewritten model too.
"""

from __future__ import annotations

import inspect
import time

import torch
from torch import nn

from src.models.inference.cpu import STEM_CHUNK_FRAMES, apply_cpu_rewrites
from src.models.inference.gpu import apply_gpu_rewrites
from src.models.inference.onednn import PrepackedConv2d, prepack_available
from src.models.inference.rewrites import fold_batchnorm

DEVICE_REWRITES = {"cpu": apply_cpu_rewrites, "cuda": apply_gpu_rewrites}


def prepare_for_inference(model: nn.Module, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                          channels_last: bool = True, fold_bn: bool = True, compile: bool | str | dict | None = None,
                          fast_paths: str | None = None, example: torch.Tensor | None = None,
                          **options) -> nn.Module:
    """`model` in eval mode, BN folded (`fold_bn`), moved to `device` and `dtype`, channels-last (`channels_last`),
    with the device's fast paths, in place; returns the model to run (a compiled wrapper with `compile`).

    fast_paths: "auto" | "off"; None reads the model's `fast_paths` attribute ("auto" when it has none).
    options: the device's switches: on a CPU `prepack` (True) and `stem_chunk_frames` (4; 0: whole clips), on
      CUDA `grouped_convs` ("native" | "split" | "dense", see `gpu`); another key is a TypeError.
    compile: torch.compile the result: True (default mode), a mode name ("reduce-overhead" uses CUDA graphs,
      "max-autotune"), or a dict of torch.compile keyword arguments. Compilation happens at the first call.
    example: an input (from `model_input`) run once under inference mode before returning, so a compiled model
      is compiled and caches are warm; the seconds it took are stored as the result's `warmup_seconds`.
    The applied rewrites are stored as `inference_rewrites` (a dict of counts).
    """
    device = torch.device(device)
    fast_paths = fast_paths or getattr(model, "fast_paths", "auto")
    if fast_paths not in ("auto", "off"):
        raise ValueError(f"fast_paths={fast_paths!r}: choose one of auto, off")
    rewrite = DEVICE_REWRITES.get(device.type) if fast_paths == "auto" else None
    allowed = set(inspect.signature(rewrite).parameters) - {"model"} if rewrite else set()
    if set(options) - allowed:
        raise TypeError(f"prepare_for_inference: unknown options {sorted(set(options) - allowed)} for device "
                        f"{device.type} with fast_paths={fast_paths} (accepted: {sorted(allowed) or 'none'})")
    model.eval()
    done = {"folded_bn": fold_batchnorm(model) if fold_bn else 0}
    model = model.to(device=device, dtype=dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if rewrite is not None:
        done.update(rewrite(model, **options))
    model.eval()  # modules made by the rewrites start in training mode
    model.inference_rewrites = done
    if compile:
        kwargs = compile if isinstance(compile, dict) else {} if compile is True else {"mode": compile}
        model = torch.compile(model, **kwargs)
    if example is not None:
        start = time.perf_counter()
        with torch.inference_mode():
            model(example)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        model.warmup_seconds = time.perf_counter() - start
    return model


def model_input(clip: torch.Tensor, device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                channels_last: bool = True) -> torch.Tensor:
    """(N, T, 3, H, W) or (N*T, 3, H, W) -> (N*T, 3, H, W) on `device` in `dtype` (None: the clip's own), in
    channels-last memory (or plainly contiguous): the input of a model made by `prepare_for_inference`."""
    x = clip.flatten(0, 1) if clip.dim() == 5 else clip
    x = x.to(device=device or x.device, dtype=dtype or x.dtype)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


__all__ = ["STEM_CHUNK_FRAMES", "PrepackedConv2d", "fold_batchnorm", "model_input", "prepack_available",
           "prepare_for_inference"]
