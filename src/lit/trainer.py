"""The Lightning Trainer of every entry point, its device and numeric precision resolved when the run starts.

`trainer.accelerator: auto` runs on the CUDA GPU when one is visible and on the CPU otherwise (the two devices
the suite is tested on). `trainer.precision: null` picks by device: bf16-mixed on a CUDA GPU with native
bfloat16 (compute capability 8.0 or later: Ampere, Hopper and newer), 16-mixed on older CUDA GPUs, 32-true on
the CPU. A precision the user sets is kept (its short aliases 32 / 16 / bf16 / 64 are spelt out).
"""

from __future__ import annotations

from src.utils.config import ConfigError

PRECISION_ALIASES = {"32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed", "64": "64-true"}
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")
GPU_ACCELERATORS = ("gpu", "cuda")


def cuda_has_native_bf16(device: int = 0) -> bool:
    """True when CUDA device `device` computes in bfloat16 natively (compute capability >= 8.0); older GPUs
    emulate it, slower than float16."""
    import torch

    return torch.cuda.get_device_capability(device)[0] >= 8


def resolve_device(accelerator: str | None, precision: str | int | None) -> tuple[str, str]:
    """(accelerator, precision) for the Trainer: `auto` becomes `gpu` when CUDA is available, else `cpu`;
    precision None becomes the device's default (see the module docstring). Raises ConfigError, naming the key,
    for a GPU asked on a machine without one, an unknown precision, or fp16 autocast on the CPU."""
    import torch

    accelerator = str(accelerator or "auto").lower()
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    elif accelerator in GPU_ACCELERATORS and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator}: no CUDA device is visible; "
                          "use trainer=auto or trainer=cpu")
    on_gpu = accelerator in GPU_ACCELERATORS
    if precision is None:
        if not on_gpu:
            return accelerator, "32-true"
        return accelerator, "bf16-mixed" if cuda_has_native_bf16() else "16-mixed"
    name = PRECISION_ALIASES.get(str(precision), str(precision))
    if name not in PRECISIONS:
        raise ConfigError(f"trainer.precision={precision!r}: choose one of {', '.join(PRECISIONS)} "
                          "(or null: bf16-mixed / 16-mixed on a GPU, 32-true on the CPU)")
    if name == "16-mixed" and accelerator == "cpu":
        raise ConfigError("trainer.precision=16-mixed: float16 autocast needs a GPU; on the CPU use bf16-mixed "
                          "or 32-true")
    return accelerator, name


def build_trainer(trainer_cfg, **overrides):
    """A `lightning.pytorch.Trainer` from the `trainer` config group (a DictConfig with `_target_`) with the
    device and precision resolved (`resolve_device`); `overrides` (callbacks, logger, ...) win over the config."""
    from hydra.utils import instantiate

    accelerator, precision = resolve_device(trainer_cfg.get("accelerator"), trainer_cfg.get("precision"))
    kwargs = {"accelerator": accelerator, "precision": precision, **overrides}
    return instantiate(trainer_cfg, **kwargs)
