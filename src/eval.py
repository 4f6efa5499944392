"""Evaluate a checkpoint: `python -m src.eval ckpt_path=PATH [split=val|test] [repeats=N] [trainer=...] [overrides]`.

The run's training config is recomposed from the overrides saved in the checkpoint (or, for a converted
official checkpoint, from its `suite_model` entry); any override not in conf/eval.yaml applies on top of
it, e.g. `dataset.test_num_crops=3`, `model.eval_gumbel_noise=true repeats=5`, `data_root=/data`.
The device and precision come from this command line's `trainer=` (default `auto`: the CUDA GPU in bf16-mixed
when there is one, else the CPU in 32-true; `trainer=cpu`, `trainer.precision=32-true`, ...), never from the
training run's; evaluation runs on one device, with a progress bar (`trainer.enable_progress_bar=false` hides it).
Prints top-1/top-5 (or mAP), realised ratio, GFLOPs and the batch-1 latency per video (the model with its
inference rewrites, after warm-up; CUDA events on a GPU), then one JSON line. Bad input ends with one line on
stderr and exit status 2.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from src.utils.runs import CONF_DIR

SPLITS = ("val", "test")


class EvalError(ValueError):
    """Bad input to `src.eval`; the message is the one line the user sees."""


def usage() -> str:
    """`--help`: this module's docstring and the options of conf/eval.yaml with their comments."""
    options = (CONF_DIR / "eval.yaml").read_text().splitlines()
    return __doc__.strip() + "\n\noptions (conf/eval.yaml):\n" + "\n".join(
        "  " + line for line in options if line and not line.startswith("#"))


def is_trainer_override(arg: str) -> bool:
    """True for `trainer=...`, `trainer.key=...` and their `+` / `++` / `~` forms."""
    key = arg.lstrip("+~").partition("=")[0]
    return key == "trainer" or key.startswith("trainer.")


def split_args(argv: list[str]) -> tuple[dict, list[str], list[str]]:
    """(eval options: the keys of conf/eval.yaml, training-config overrides, trainer overrides); raises EvalError
    for an argument that is not key=value, a missing ckpt_path, or an option value that cannot be used."""
    eval_cfg = OmegaConf.load(CONF_DIR / "eval.yaml")
    eval_cfg.pop("hydra", None)
    overrides, trainer_overrides = [], []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep and not arg.startswith("~"):
            raise EvalError(f"argument {arg!r}: expected key=value (python -m src.eval --help lists the options)")
        if key in eval_cfg.keys():  # `in eval_cfg` is False for the mandatory (???) ckpt_path
            eval_cfg[key] = OmegaConf.from_dotlist([arg])[key] if value != "" else None
        elif is_trainer_override(arg):
            trainer_overrides.append(arg)
        else:
            overrides.append(arg)
    if OmegaConf.is_missing(eval_cfg, "ckpt_path") or eval_cfg.ckpt_path is None:
        raise EvalError("ckpt_path=PATH is required (a .ckpt of src.train or of src.convert_checkpoint)")
    opts = OmegaConf.to_container(eval_cfg)
    if opts["split"] not in SPLITS:
        raise EvalError(f"split={opts['split']}: expected val or test")
    for key, least in (("repeats", 1), ("latency_videos", 0)):
        value = opts[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise EvalError(f"{key}={value}: expected an integer >= {least}")
    return opts, overrides, trainer_overrides


def _first_line(error: BaseException, limit: int = 240) -> str:
    lines = [s.strip() for s in str(error).splitlines() if s.strip()]
    text = lines[0] if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_checkpoint_run(path: Path, overrides: list[str]):
    """`src.utils.runs.load_run` with its one-line failures (a missing, truncated or foreign file, weights that do
    not fit the net the command line asks for, a recorded value the command line contradicts) as EvalErrors."""
    from src.utils.runs import load_run

    try:
        return load_run(path, overrides)
    except SystemExit as e:  # load_run's own one-line errors
        raise EvalError(str(e.code)) from None


def eval_trainer(trainer_overrides: list[str]):
    """The Trainer of this evaluation: conf/train.yaml's `trainer` group (default `auto`) with this command line's
    trainer overrides only, on one device, without logger or checkpoints."""
    from src.lit.trainer import build_trainer
    from src.utils.runs import compose

    trainer_cfg = compose("train", trainer_overrides).trainer
    return build_trainer(trainer_cfg, devices=1, num_nodes=1, strategy="auto", logger=False, callbacks=[],
                         enable_checkpointing=False, enable_model_summary=False, default_root_dir=None)


def inference_model(net, device):
    """A copy of `net`, in eval mode with the models' inference rewrites, on `device`: what latency is timed on
    (the same rewrites as `make bench`)."""
    from src.models.inference import prepare_for_inference

    return prepare_for_inference(copy.deepcopy(net), device=device)


def precision_dtypes(precision: str):
    """(dtype of the weights, autocast dtype or None) of a Lightning precision name."""
    import torch

    half = {"bf16": torch.bfloat16, "16": torch.float16}
    kind, _, mode = precision.partition("-")
    if mode == "mixed":
        return torch.float32, half[kind]
    return {"64": torch.float64, "32": torch.float32, **half}[kind], None


def latency_ms(model, clip, repeats: int, precision: str = "32-true") -> float:
    """Median time (ms) of a batch-1 forward of `model` (from `inference_model`) in inference mode, after warm-up
    forwards; clip: (1, T, 3, H, W) on the model's device. On CUDA each forward is timed with CUDA events (GPU time,
    no host sync between forwards); on the CPU with the wall clock."""
    import torch

    from src.models.inference import model_input

    device = next(model.parameters()).device
    weights, autocast = precision_dtypes(precision)
    model = model.to(weights)
    clip = model_input(clip, device=device, dtype=weights)
    on_cuda = device.type == "cuda"
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
        for _ in range(5 if on_cuda else 1):  # cuDNN picks its kernels and the allocator warms up
            model(clip)
        if on_cuda:
            torch.cuda.synchronize(device)
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(repeats)]
            for start, end in events:
                start.record()
                model(clip)
                end.record()
            torch.cuda.synchronize(device)
            times = [start.elapsed_time(end) for start, end in events]
        else:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(clip)
                times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def device_name(device) -> str:
    import torch

    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def evaluate(opts: dict, overrides: list[str], trainer_overrides: list[str] = ()) -> dict:
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from src.lit.video_module import VideoLitModule
    from src.utils.runs import net_config

    path = Path(opts["ckpt_path"])
    trainer = eval_trainer(list(trainer_overrides))
    cfg, net = load_checkpoint_run(path, overrides)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.check_paths()
    kwargs = net_config(cfg, num_classes=cfg.dataset.num_classes)
    module = VideoLitModule(net, num_classes=cfg.dataset.num_classes, metric=cfg.dataset.get("metric", "top1"),
                            macs_input_size=cfg.dataset.crop_size, net_config=kwargs)
    runs = []
    for i in range(opts["repeats"]):
        pl.seed_everything(cfg.seed + i, workers=True)
        if opts["split"] == "test":
            trainer.test(module, datamodule=datamodule, verbose=False)
        else:
            trainer.validate(module, datamodule=datamodule, verbose=False)
        runs.append(dict(module.last_eval_metrics))
    device = trainer.strategy.root_device
    result = {"ckpt_path": str(path), "run": cfg.run_name, "split": opts["split"], "repeats": len(runs),
              "protocol": "noisy" if cfg.model.get("eval_gumbel_noise") else "deterministic",
              "device": device_name(device), "precision": str(trainer.precision)}
    for key in runs[0]:
        values = [r[key] for r in runs]
        result[key.split("/", 1)[1]] = statistics.fmean(values)
        if len(values) > 1:
            result[key.split("/", 1)[1] + "_std"] = statistics.stdev(values)
    if opts["latency_videos"]:
        net.eval()
        clip = next(iter(datamodule.val_dataloader()))[0][:1]
        if clip.dim() == 6:
            clip = clip[:, 0]
        result["latency_ms"] = latency_ms(inference_model(net, device), clip, opts["latency_videos"],
                                          result["precision"])
    return result


def print_table(result: dict) -> None:
    keys = [k for k in ("top1", "top5", "mAP", "ratio", "gflops", "latency_ms") if k in result]
    print(f"\n{result['run']}  ({result['split']}, {result['protocol']} masks, {result['repeats']} run(s), "
          f"{result['device']}, {result['precision']})")
    for k in keys:
        std = f" ± {result[k + '_std']:.3f}" if k + "_std" in result else ""
        print(f"  {k:<11}{result[k]:10.3f}{std}")


def main(argv: list[str] | None = None) -> dict:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from src.data import DataConfigError, ListFormatError
    from src.utils.config import ConfigError
    from src.utils.files import write_atomic

    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(usage())
        return {}
    try:
        opts, overrides, trainer_overrides = split_args(argv)
        result = evaluate(opts, overrides, trainer_overrides)
    except (EvalError, ConfigError, DataConfigError, ListFormatError, HydraException, OmegaConfBaseException) as e:
        print(f"error: {_first_line(e, limit=1000)}", file=sys.stderr)
        sys.exit(2)
    print_table(result)
    if opts.get("output"):
        write_atomic(opts["output"], json.dumps(result, indent=2))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
