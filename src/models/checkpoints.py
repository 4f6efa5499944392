"""Official AFNet checkpoints <-> this suite, and loading pretrained weights by name and shape.

The official AF-ResNet checkpoints (`checkpoint['state_dict']`, DataParallel `module.` prefix) name the
trunk `base_model` (conv1/bn1, layer1-4) and the classifier `new_fc`; inside an AF stage `list_gen` are the
navigations, `base_module` the ample blocks, `refine_module` the focal blocks, `base_transform` the ample
projection, `att_gen.fc.{0,2}` the dynamic fusion and `fusion.0` the fusion block; `downsample` is a block's
shortcut. This suite's names: stem.{0,1}, stages.{s}.{nav,ample,focal}.{i}, stages.{s}.proj,
stages.{s}.fuse.fc{1,2}, stages.{s}.fusion_block, stage4.{j}, fc; shortcut for downsample. The shapes are
the same, so a conversion is a renaming (tested on the official parameter lists in
shared/reference/official-checkpoint-keys.txt). AF-MobileNetV3 is not covered yet.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

# (official pattern, suite pattern); layer{N} is AF stage N-1 for N in 1..3 and stage 4 for N = 4
_RULES = [
    (r"base_model\.conv1\.(.*)", r"stem.0.\1"),
    (r"base_model\.bn1\.(.*)", r"stem.1.\1"),
    (r"base_model\.layer4\.(\d+)\.downsample\.(.*)", r"stage4.\1.shortcut.\2"),
    (r"base_model\.layer4\.(.*)", r"stage4.\1"),
    (r"base_model\.layer(\d)\.list_gen\.(\d+)\.conv_pool\.(.*)", r"stages.{L}.nav.\2.conv.\3"),
    (r"base_model\.layer(\d)\.list_gen\.(\d+)\.conv_gs\.(.*)", r"stages.{L}.nav.\2.temporal.\3"),
    (r"base_model\.layer(\d)\.list_gen\.(\d+)\.bn\.(.*)", r"stages.{L}.nav.\2.bn.\3"),
    (r"base_model\.layer(\d)\.base_module\.(\d+)\.downsample\.(.*)", r"stages.{L}.ample.\2.shortcut.\3"),
    (r"base_model\.layer(\d)\.base_module\.(.*)", r"stages.{L}.ample.\2"),
    (r"base_model\.layer(\d)\.refine_module\.(\d+)\.downsample\.(.*)", r"stages.{L}.focal.\2.shortcut.\3"),
    (r"base_model\.layer(\d)\.refine_module\.(.*)", r"stages.{L}.focal.\2"),
    (r"base_model\.layer(\d)\.base_transform\.(.*)", r"stages.{L}.proj.\2"),
    (r"base_model\.layer(\d)\.att_gen\.fc\.0\.(.*)", r"stages.{L}.fuse.fc1.\2"),
    (r"base_model\.layer(\d)\.att_gen\.fc\.2\.(.*)", r"stages.{L}.fuse.fc2.\2"),
    (r"base_model\.layer(\d)\.fusion\.0\.downsample\.(.*)", r"stages.{L}.fusion_block.shortcut.\2"),
    (r"base_model\.layer(\d)\.fusion\.0\.(.*)", r"stages.{L}.fusion_block.\2"),
    (r"new_fc\.(.*)", r"fc.\1"),
]
_REVERSE = [
    (r"stem\.0\.(.*)", "base_model.conv1.{1}"),
    (r"stem\.1\.(.*)", "base_model.bn1.{1}"),
    (r"stage4\.(\d+)\.shortcut\.(.*)", "base_model.layer4.{1}.downsample.{2}"),
    (r"stage4\.(.*)", "base_model.layer4.{1}"),
    (r"stages\.(\d)\.nav\.(\d+)\.conv\.(.*)", "base_model.layer{L}.list_gen.{2}.conv_pool.{3}"),
    (r"stages\.(\d)\.nav\.(\d+)\.temporal\.(.*)", "base_model.layer{L}.list_gen.{2}.conv_gs.{3}"),
    (r"stages\.(\d)\.nav\.(\d+)\.bn\.(.*)", "base_model.layer{L}.list_gen.{2}.bn.{3}"),
    (r"stages\.(\d)\.ample\.(\d+)\.shortcut\.(.*)", "base_model.layer{L}.base_module.{2}.downsample.{3}"),
    (r"stages\.(\d)\.ample\.(.*)", "base_model.layer{L}.base_module.{2}"),
    (r"stages\.(\d)\.focal\.(\d+)\.shortcut\.(.*)", "base_model.layer{L}.refine_module.{2}.downsample.{3}"),
    (r"stages\.(\d)\.focal\.(.*)", "base_model.layer{L}.refine_module.{2}"),
    (r"stages\.(\d)\.proj\.(.*)", "base_model.layer{L}.base_transform.{2}"),
    (r"stages\.(\d)\.fuse\.fc1\.(.*)", "base_model.layer{L}.att_gen.fc.0.{2}"),
    (r"stages\.(\d)\.fuse\.fc2\.(.*)", "base_model.layer{L}.att_gen.fc.2.{2}"),
    (r"stages\.(\d)\.fusion_block\.shortcut\.(.*)", "base_model.layer{L}.fusion.0.downsample.{2}"),
    (r"stages\.(\d)\.fusion_block\.(.*)", "base_model.layer{L}.fusion.0.{2}"),
    (r"fc\.(.*)", "new_fc.{1}"),
]


def official_to_suite_name(name: str) -> str | None:
    """'module.base_model.layer2.refine_module.0.conv1.weight' -> 'stages.1.focal.0.conv1.weight' (None: unknown)."""
    name = name[len("module."):] if name.startswith("module.") else name
    for pattern, repl in _RULES:
        m = re.fullmatch(pattern, name)
        if m:
            out = m.expand(repl)
            return out.replace("{L}", str(int(m.group(1)) - 1)) if "{L}" in out else out
    return None


def suite_to_official_name(name: str, prefix: str = "module.") -> str | None:
    for pattern, template in _REVERSE:
        m = re.fullmatch(pattern, name)
        if m:
            groups = {str(i): g for i, g in enumerate(m.groups(), 1)}
            out = template.replace("{L}", str(int(m.group(1)) + 1) if "{L}" in template else "")
            for i, g in groups.items():
                out = out.replace("{" + i + "}", g)
            return prefix + out
    return None


def convert_official(state_dict: dict) -> dict:
    """Official AF-ResNet state dict -> this suite's model state dict; raises on a name it does not know."""
    out = {}
    for k, v in state_dict.items():
        new = official_to_suite_name(k)
        if new is None:
            raise KeyError(f"no mapping for official parameter {k!r}")
        out[new] = v
    return out


def to_official(state_dict: dict, prefix: str = "module.") -> dict:
    """This suite's AF-ResNet state dict (model keys, or `net.`-prefixed Lightning keys) -> official names."""
    out = {}
    for k, v in state_dict.items():
        k = k[len("net."):] if k.startswith("net.") else k
        new = suite_to_official_name(k, prefix)
        if new is None:
            raise KeyError(f"no official name for {k!r}")
        out[new] = v
    return out


def model_state_from_file(path: str | Path) -> dict:
    """The model weights of any checkpoint this suite knows: a suite / Lightning checkpoint (`net.` keys), an
    official AFNet checkpoint (`module.base_model...`), or a plain state dict of our model."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    if any(k.startswith("net.") for k in state):
        return {k[4:]: v for k, v in state.items() if k.startswith("net.")}
    if any(k.startswith(("module.base_model.", "base_model.")) for k in state):
        return convert_official(state)
    return dict(state)


def load_pretrained(model: nn.Module, source, verbose: bool = True) -> dict:
    """Copy the weights of `source` (path or state dict) whose name and shape match `model`.

    Returns {"loaded": [...], "skipped": {name: reason}, "missing": [model keys left as initialised]} and
    prints a summary: e.g. an ImageNet backbone into a video model skips `fc.*` (1000-way) and the navigation's
    T-dependent `temporal` convs when T differs.
    """
    state = model_state_from_file(source) if isinstance(source, (str, Path)) else dict(source)
    own = model.state_dict()
    loaded, skipped = [], {}
    for k, v in state.items():
        if k not in own:
            skipped[k] = "not in this model"
        elif tuple(own[k].shape) != tuple(v.shape):
            skipped[k] = f"shape {tuple(v.shape)} != model {tuple(own[k].shape)}"
        else:
            own[k] = v
            loaded.append(k)
    model.load_state_dict(own, strict=True)
    report = {"loaded": loaded, "skipped": skipped, "missing": sorted(set(own) - set(loaded))}
    if verbose:
        print(f"pretrained: loaded {len(loaded)} tensors, skipped {len(skipped)}, "
              f"{len(report['missing'])} left as initialised")
        for k, why in list(skipped.items())[:20]:
            print(f"  skipped {k}: {why}")
    return report
