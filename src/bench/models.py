"""The models the benchmarks run, and the one place where they get their inference rewrites (`prepare`).

Inference rows: TSM-R50 (the reference of every latency ratio), TSN-R50, AFNet-TSM-R50 at forced selection
ratios, TSM-MBv3 and AFNet-TSM-MBv3 at r=0.4. An AFNet row forces its realised ratio deterministically:
top-k frames per block, k spread over the blocks so that the frames computed average exactly r*T
(`forced_ratios`); its GMACs are counted at those per-block ratios. Training rows: TSN-R50 (the reference of
training ratios), TSM-R50 and AFNet-R50 in train mode with their default options, an SGD optimiser each.
Every model is built for 174 classes (Something-Something).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from src.models import build_video_model
from src.models.afnet.base import forced_ratios
from src.models.inference import model_input, prepare_for_inference
from src.models.macs import profile_macs

REFERENCE = "tsm_r50"
TRAIN_REFERENCE = "tsn_r50"
NUM_CLASSES = 174
TRAIN_MODELS = {"tsn_r50": ("tsn", "r50"), "tsm_r50": ("tsm", "r50"), "afnet_r50": ("afnet", "r50")}


def latency_rows(ratios: list[float]) -> list[tuple[str, str, str, float | None]]:
    """(row name, method, backbone, forced ratio or None) of the inference table."""
    rows = [(REFERENCE, "tsm", "r50", None), ("tsn_r50", "tsn", "r50", None)]
    rows += [(f"afnet_tsm_r50@{r:.2f}", "afnet_tsm", "r50", r) for r in ratios]
    rows += [("tsm_mbv3", "tsm", "mbv3", None), ("afnet_tsm_mbv3@0.40", "afnet_tsm", "mbv3", 0.4)]
    return rows


def select_rows(rows: list[tuple], only: list[str] | None) -> list[tuple]:
    """The rows named in `only` (all when it is empty), and always the reference row."""
    return [r for r in rows if not only or r[0] in only or r[0] == REFERENCE]


def build_eval_model(method: str, backbone: str, frames: int, ratio: float | None,
                     size: int) -> tuple[nn.Module, float]:
    """A plain eval-mode model of the inference table (CPU, float32, no rewrites yet) and its GMACs per video at
    `size`² with the frames it really computes (`ratio` forced for AFNet rows, every frame otherwise)."""
    net = build_video_model(method, backbone, num_classes=NUM_CLASSES, num_segments=frames).eval()
    if ratio is not None:  # realised ratio r on average over the masks, to a frame (5, 5, 4, ... of 12 at 0.4)
        net.set_forced_ratio(forced_ratios(ratio, frames, net.num_masks))
    gmacs = profile_macs(net, frames, input_size=size).gmacs(net.forced_ratio if ratio is not None else 1.0)
    return net, gmacs


def prepare(model: nn.Module, device: torch.device, dtype: torch.dtype = torch.float32, channels_last: bool = True,
            compile: str | None = None, **options) -> nn.Module:
    """`model` (eval mode) with the inference rewrites every benchmarked model gets alike, so that ratios stay
    fair (`prepare_for_inference`: BN folded, on `device` in `dtype`, channels-last memory, the device's fast
    paths; `options` are the device's switches, e.g. `prepack` and `stem_chunk_frames` on a CPU); `compile`: a
    `torch.compile` mode, None for eager. The benchmarks' only call of the inference rewrites."""
    return prepare_for_inference(model, device=device, dtype=dtype, channels_last=channels_last,
                                 compile=compile or None, **options)


def inference_clip(clip: torch.Tensor, device: torch.device, dtype: torch.dtype = torch.float32,
                   channels_last: bool = True) -> torch.Tensor:
    """(N, T, 3, H, W) -> the folded (N*T, 3, H, W) input `prepare`d models take, on `device` in `dtype`."""
    return model_input(clip, device=device, dtype=dtype, channels_last=channels_last)


def training_models(names: list[str], frames: int, device: torch.device,
                    channels_last: bool) -> dict[str, nn.Module]:
    """The `TRAIN_MODELS` named, in train mode with their default options, on `device`, all in one layout."""
    nets = {}
    for name in names:
        method, backbone = TRAIN_MODELS[name]
        net = build_video_model(method, backbone, NUM_CLASSES, frames).train().to(device)
        nets[name] = net.to(memory_format=torch.channels_last) if channels_last else net
    return nets


def training_gmacs(name: str, frames: int, size: int) -> float:
    """Forward GMACs per video of a `TRAIN_MODELS` entry with every frame selected (what the masked training
    path of AFNet computes)."""
    method, backbone = TRAIN_MODELS[name]
    return profile_macs(build_video_model(method, backbone, NUM_CLASSES, frames), frames, input_size=size).gmacs(1.0)


def training_batch(batch: int, frames: int, size: int, device: torch.device,
                   channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """A random folded clip batch (batch*frames, 3, size, size) and labels (batch,) over the classes."""
    x = inference_clip(torch.randn(batch, frames, 3, size, size), device, channels_last=channels_last)
    return x, torch.randint(0, NUM_CLASSES, (batch,), device=device)


def training_optimizers(nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    """The benchmark's optimiser per model: SGD, lr 1e-3, momentum 0.9 (its momenta are part of a step's cost)."""
    return {k: torch.optim.SGD(n.parameters(), lr=1e-3, momentum=0.9) for k, n in nets.items()}


def sgd_step(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
             autocast: torch.dtype | None = None) -> None:
    """One training step: forward and cross-entropy (under autocast to `autocast` when given), backward, SGD
    update."""
    with torch.autocast(x.device.type, dtype=autocast) if autocast else nullcontext():
        loss = nn.functional.cross_entropy(net(x).logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
