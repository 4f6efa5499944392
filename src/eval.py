"""Evaluate a checkpoint: `python -m src.eval ckpt_path=PATH [repeats=N] [other overrides]`.

The run's training config is recomposed from the overrides saved in the checkpoint (or, for a converted
official checkpoint, from its `suite_model` entry); any override not in conf/eval.yaml applies on top of
it, e.g. `dataset.test_num_crops=3`, `model.eval_gumbel_noise=true repeats=5`, `data_root=/data`.
Prints top-1/top-5 (or mAP), realised ratio, GFLOPs and latency per video (on CPU with the inference rewrites
of `make bench`), then one JSON line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def split_args(argv: list[str]) -> tuple[dict, list[str]]:
    """Separate eval options (keys of conf/eval.yaml) from training-config overrides."""
    eval_cfg = OmegaConf.load(CONF_DIR / "eval.yaml")
    eval_cfg.pop("hydra", None)
    overrides = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise SystemExit(f"argument {arg!r}: expected key=value")
        if key in eval_cfg.keys():  # `in eval_cfg` is False for the mandatory (???) ckpt_path
            eval_cfg[key] = OmegaConf.from_dotlist([arg])[key] if value != "" else None
        else:
            overrides.append(arg)
    if OmegaConf.is_missing(eval_cfg, "ckpt_path") or eval_cfg.ckpt_path is None:
        raise SystemExit("ckpt_path=PATH is required (a .ckpt of src.train or of src.convert_checkpoint)")
    return OmegaConf.to_container(eval_cfg), overrides


def compose_run_config(ckpt: dict, user_overrides: list[str]):
    from hydra import compose, initialize_config_dir

    saved = (ckpt.get("hyper_parameters") or {}).get("run_overrides")
    if saved is None and "suite_model" in ckpt:  # a converted official checkpoint: no training run behind it
        m = ckpt["suite_model"]
        saved = [f"model={m['method']}", f"backbone={m['backbone']}", f"num_segments={m['num_segments']}"]
        saved += [f"backbone.options.{k}={m[k]}" for k in ("width", "width_mult") if k in m]
        if "mask_mode" in m and str(m["method"]).startswith("afnet"):
            saved.append(f"model.mask_mode={m['mask_mode']}")
    # an empty list is a run with no overrides (the quick start): the defaults rebuild it, backbone width included
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=list(saved or []) + user_overrides, return_hydra_config=False)


def latency_ms(net, clip, repeats: int) -> float:
    """Median wall time (ms) of a batch-1 forward in inference mode; clip: (1, T, 3, H, W). The net runs as
    `make bench` runs it: a copy with the inference rewrites of its device (`prepare_for_inference`)."""
    import copy

    import torch

    from src.models.inference import model_input, prepare_for_inference

    device = next(net.parameters()).device
    net, clip = prepare_for_inference(copy.deepcopy(net), device=device), model_input(clip, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        net(clip)  # warm-up
        for _ in range(max(1, repeats)):
            sync()
            t0 = time.perf_counter()
            net(clip)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def load_run(path: str | Path, overrides: list[str] = ()):
    """The run's config (recomposed from the checkpoint plus `overrides`) and its net with the checkpoint's
    weights: (cfg, net). The net is in training mode, as built; call .eval() for evaluation masks."""
    import torch

    from src.train import build_net, net_config

    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"ckpt_path={path}: no such file")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = compose_run_config(ckpt, list(overrides))
    net = build_net(net_config(cfg, num_classes=cfg.dataset.num_classes))
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state, strict=True)
    return cfg, net


def evaluate(opts: dict, overrides: list[str]) -> dict:
    import lightning.pytorch as pl
    import torch
    from hydra.utils import instantiate

    from src.lit.video_module import VideoClassifier
    from src.train import net_config

    path = Path(opts["ckpt_path"])
    cfg, net = load_run(path, overrides)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.check_paths()
    kwargs = net_config(cfg, num_classes=cfg.dataset.num_classes)
    module = VideoClassifier(net, num_classes=cfg.dataset.num_classes, metric=cfg.dataset.get("metric", "top1"),
                             macs_input_size=cfg.dataset.crop_size, net_config=kwargs)
    trainer = pl.Trainer(accelerator="cpu" if not torch.cuda.is_available() else "auto", devices=1,
                         logger=False, enable_checkpointing=False, enable_model_summary=False,
                         enable_progress_bar=False)
    stage = "test" if opts["split"] == "test" else "val"
    runs = []
    for i in range(max(1, int(opts["repeats"]))):
        pl.seed_everything(cfg.seed + i, workers=True)
        if stage == "test":
            trainer.test(module, datamodule=datamodule, verbose=False)
        else:
            trainer.validate(module, datamodule=datamodule, verbose=False)
        runs.append(dict(module.last_eval_metrics))
    result = {"ckpt_path": str(path), "run": cfg.run_name, "repeats": len(runs),
              "protocol": "noisy" if cfg.model.get("eval_gumbel_noise") else "deterministic"}
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
        result["latency_ms"] = latency_ms(net, clip, int(opts["latency_videos"]))
    return result


def print_table(result: dict) -> None:
    keys = [k for k in ("top1", "top5", "mAP", "ratio", "gflops", "latency_ms") if k in result]
    print(f"\n{result['run']}  ({result['protocol']} masks, {result['repeats']} run(s))")
    for k in keys:
        std = f" ± {result[k + '_std']:.3f}" if k + "_std" in result else ""
        print(f"  {k:<11}{result[k]:10.3f}{std}")


def main(argv: list[str] | None = None) -> dict:
    opts, overrides = split_args(sys.argv[1:] if argv is None else argv)
    result = evaluate(opts, overrides)
    print_table(result)
    if opts.get("output"):
        Path(opts["output"]).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
