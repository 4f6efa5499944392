"""Official AFNet checkpoints <-> this suite, and loading pretrained weights by name and shape.

The official AF-ResNet checkpoints (`checkpoint['state_dict']`, DataParallel `module.` prefix) name the
trunk `base_model` (conv1/bn1, layer1-4) and the classifier `new_fc`; inside an AF stage `list_gen` are the
navigations, `base_module` the ample blocks, `refine_module` the focal blocks, `base_transform` the ample
projection, `att_gen.fc.{0,2}` the dynamic fusion and `fusion.0` the fusion block; `downsample` is a block's
shortcut. This suite's names: stem.{0,1}, stages.{s}.{nav,ample,focal}.{i}, stages.{s}.proj,
stages.{s}.fuse.fc{1,2}, stages.{s}.fusion_block, stage4.{j}, fc; shortcut for downsample. The shapes are
the same, so a conversion is a renaming (tested on the official parameter lists in
shared/reference/official-checkpoint-keys.txt).

AF-MobileNetV3: official conv/bn -> stem.{0,1}; features_head.0 and features_stage1.{0,1} -> early.{0,1,2};
list_gen{2,3} -> stages.{0,1}.nav; features_stage{2,3}_base / _refine / _fuse.0 -> stages.{0,1}.ample /
focal.{i}.block / fusion_block; att_gen{2,3} -> stages.{0,1}.fuse; features_stage4 and features_stage5
-> late.{0-4}; conv_last/bn_last -> last_conv.{0,1}; fc.0 -> embed.0; fc.3 -> fc. Inside a block
conv1/bn1, conv2/bn2, se.fc.{0,2}, conv3/bn3, res_connect become conv.0, conv.1, conv.2.fc{1,2}, conv.2 or
conv.3 (after an SE), skip; the SE linears (out, in) are stored here as 1x1 convs (out, in, 1, 1).
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


# AF-MobileNetV3: whole-tensor renames, then block containers whose insides are renamed by _mb_inner
_MB_DIRECT = [
    (r"conv\.(.*)", lambda m: f"stem.0.{m[1]}"),
    (r"bn\.(.*)", lambda m: f"stem.1.{m[1]}"),
    (r"conv_last\.(.*)", lambda m: f"last_conv.0.{m[1]}"),
    (r"bn_last\.(.*)", lambda m: f"last_conv.1.{m[1]}"),
    (r"fc\.0\.(.*)", lambda m: f"embed.0.{m[1]}"),
    (r"fc\.3\.(.*)", lambda m: f"fc.{m[1]}"),
    (r"list_gen([23])\.(\d+)\.conv_pool\.(.*)", lambda m: f"stages.{int(m[1]) - 2}.nav.{m[2]}.conv.{m[3]}"),
    (r"list_gen([23])\.(\d+)\.conv_gs\.(.*)", lambda m: f"stages.{int(m[1]) - 2}.nav.{m[2]}.temporal.{m[3]}"),
    (r"list_gen([23])\.(\d+)\.bn\.(.*)", lambda m: f"stages.{int(m[1]) - 2}.nav.{m[2]}.bn.{m[3]}"),
    (r"att_gen([23])\.fc\.0\.(.*)", lambda m: f"stages.{int(m[1]) - 2}.fuse.fc1.{m[2]}"),
    (r"att_gen([23])\.fc\.2\.(.*)", lambda m: f"stages.{int(m[1]) - 2}.fuse.fc2.{m[2]}"),
]
_MB_BLOCKS = [  # official block prefix -> suite block prefix
    (r"features_head\.0", lambda m: "early.0"),
    (r"features_stage1\.(\d+)", lambda m: f"early.{int(m[1]) + 1}"),
    (r"features_stage([23])_base\.(\d+)", lambda m: f"stages.{int(m[1]) - 2}.ample.{m[2]}"),
    (r"features_stage([23])_refine\.(\d+)", lambda m: f"stages.{int(m[1]) - 2}.focal.{m[2]}.block"),
    (r"features_stage([23])_fuse\.0", lambda m: f"stages.{int(m[1]) - 2}.fusion_block"),
    (r"features_stage4\.(\d+)", lambda m: f"late.{m[1]}"),
    (r"features_stage5\.(\d+)", lambda m: f"late.{int(m[1]) + 2}"),
]
_MB_DIRECT_REV = [
    (r"stem\.0\.(.*)", lambda m: f"conv.{m[1]}"),
    (r"stem\.1\.(.*)", lambda m: f"bn.{m[1]}"),
    (r"last_conv\.0\.(.*)", lambda m: f"conv_last.{m[1]}"),
    (r"last_conv\.1\.(.*)", lambda m: f"bn_last.{m[1]}"),
    (r"embed\.0\.(.*)", lambda m: f"fc.0.{m[1]}"),
    (r"fc\.(.*)", lambda m: f"fc.3.{m[1]}"),
    (r"stages\.(\d)\.nav\.(\d+)\.conv\.(.*)", lambda m: f"list_gen{int(m[1]) + 2}.{m[2]}.conv_pool.{m[3]}"),
    (r"stages\.(\d)\.nav\.(\d+)\.temporal\.(.*)", lambda m: f"list_gen{int(m[1]) + 2}.{m[2]}.conv_gs.{m[3]}"),
    (r"stages\.(\d)\.nav\.(\d+)\.bn\.(.*)", lambda m: f"list_gen{int(m[1]) + 2}.{m[2]}.bn.{m[3]}"),
    (r"stages\.(\d)\.fuse\.fc1\.(.*)", lambda m: f"att_gen{int(m[1]) + 2}.fc.0.{m[2]}"),
    (r"stages\.(\d)\.fuse\.fc2\.(.*)", lambda m: f"att_gen{int(m[1]) + 2}.fc.2.{m[2]}"),
]
_MB_BLOCKS_REV = [
    (r"early\.0", lambda m: "features_head.0"),
    (r"early\.(\d+)", lambda m: f"features_stage1.{int(m[1]) - 1}"),
    (r"stages\.(\d)\.ample\.(\d+)", lambda m: f"features_stage{int(m[1]) + 2}_base.{m[2]}"),
    (r"stages\.(\d)\.focal\.(\d+)\.block", lambda m: f"features_stage{int(m[1]) + 2}_refine.{m[2]}"),
    (r"stages\.(\d)\.fusion_block", lambda m: f"features_stage{int(m[1]) + 2}_fuse.0"),
    (r"late\.([01])", lambda m: f"features_stage4.{m[1]}"),
    (r"late\.(\d+)", lambda m: f"features_stage5.{int(m[1]) - 2}"),
]


_MB_INNER = [  # (official, suite) inside one block; conv3/bn3 sit at conv.3 after an SE, else at conv.2
    (r"res_connect\.(\d)\.(.*)", r"skip.\1.\2", r"skip\.(\d)\.(.*)", r"res_connect.\1.\2"),
    (r"se\.fc\.0\.(.*)", r"conv.2.fc1.\1", r"conv\.2\.fc1\.(.*)", r"se.fc.0.\1"),
    (r"se\.fc\.2\.(.*)", r"conv.2.fc2.\1", r"conv\.2\.fc2\.(.*)", r"se.fc.2.\1"),
    (r"conv1\.(.*)", r"conv.0.0.\1", r"conv\.0\.0\.(.*)", r"conv1.\1"),
    (r"bn1\.(.*)", r"conv.0.1.\1", r"conv\.0\.1\.(.*)", r"bn1.\1"),
    (r"conv2\.(.*)", r"conv.1.0.\1", r"conv\.1\.0\.(.*)", r"conv2.\1"),
    (r"bn2\.(.*)", r"conv.1.1.\1", r"conv\.1\.1\.(.*)", r"bn2.\1"),
    (r"conv3\.(.*)", r"conv.{P}.0.\1", r"conv\.[23]\.0\.(.*)", r"conv3.\1"),
    (r"bn3\.(.*)", r"conv.{P}.1.\1", r"conv\.[23]\.1\.(.*)", r"bn3.\1"),
]


def _mb_inner(inner: str, has_se: bool) -> str | None:
    """Inside an official MobileNetV3 block -> inside `InvertedResidual` (its `conv` Sequential, `skip`)."""
    for pattern, repl, _, _ in _MB_INNER:
        m = re.fullmatch(pattern, inner)
        if m:
            return m.expand(repl).replace("{P}", "3" if has_se else "2")
    return None


def _mb_inner_rev(inner: str) -> str | None:
    for _, _, pattern, repl in _MB_INNER:
        m = re.fullmatch(pattern, inner)
        if m:
            return m.expand(repl)
    return None


def _match(rules, name: str):
    for pattern, fn in rules:
        m = re.fullmatch(pattern, name)
        if m:
            return fn(m)
    return None


def _mb_to_suite(name: str, se_blocks: set[str]) -> str | None:
    name = name.removeprefix("module.").removeprefix("base_model.")
    for pattern, fn in _MB_BLOCKS:
        m = re.match(pattern + r"\.(.*)", name)
        if m:
            inner = _mb_inner(m[m.re.groups], m[0][: -len(m[m.re.groups]) - 1] in se_blocks)
            return None if inner is None else f"{fn(m)}.{inner}"
    return _match(_MB_DIRECT, name)


def _mb_to_official(name: str) -> str | None:
    for pattern, fn in _MB_BLOCKS_REV:
        m = re.match(pattern + r"\.(.*)", name)
        if m:
            inner = _mb_inner_rev(m[m.re.groups])
            return None if inner is None else f"base_model.{fn(m)}.{inner}"
    out = _match(_MB_DIRECT_REV, name)
    return None if out is None else f"base_model.{out}"



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


def detect_backbone(state_dict: dict) -> str:
    """'mbv3' for an AF-MobileNetV3 state dict (official or suite names), else 'resnet'."""
    return "mbv3" if any(".features_head." in k or k.startswith(("early.", "net.early.")) for k in state_dict) \
        else "resnet"


def convert_official(state_dict: dict, backbone: str | None = None) -> dict:
    """Official AF-ResNet / AF-MobileNetV3 state dict -> this suite's model state dict (backbone: 'r50',
    'r101', 'mbv3', ...; None detects it). Raises on a name it does not know."""
    mbv3 = (backbone or detect_backbone(state_dict)) == "mbv3"
    se_blocks = {k.removeprefix("module.").removeprefix("base_model.").split(".se.")[0] for k in state_dict
                 if ".se.fc." in k}
    out = {}
    for k, v in state_dict.items():
        new = _mb_to_suite(k, se_blocks) if mbv3 else official_to_suite_name(k)
        if new is None:
            raise KeyError(f"no mapping for official parameter {k!r}")
        if mbv3 and ".se.fc." in k and k.endswith("weight"):
            v = v.reshape(*v.shape, 1, 1)  # Linear (out, in) -> 1x1 conv (out, in, 1, 1)
        out[new] = v
    return out


def to_official(state_dict: dict, prefix: str = "module.", backbone: str | None = None) -> dict:
    """This suite's AFNet state dict (model keys, or `net.`-prefixed Lightning keys) -> official names."""
    mbv3 = (backbone or detect_backbone(state_dict)) == "mbv3"
    out = {}
    for k, v in state_dict.items():
        k = k[len("net."):] if k.startswith("net.") else k
        new = (None if (o := _mb_to_official(k)) is None else prefix + o) if mbv3 else suite_to_official_name(k, prefix)
        if new is None:
            raise KeyError(f"no official name for {k!r}")
        if mbv3 and ".se.fc." in new and new.endswith("weight"):
            v = v.flatten(1)  # 1x1 conv -> Linear
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
        return convert_official(state)  # the backbone is detected from the names
    return dict(state)


def load_matching(model: nn.Module, state: dict, strip_prefixes: tuple[str, ...] = ("module.",),
                  add_prefix: str = "") -> dict:
    """Copy the entries of `state` whose name (after stripping `strip_prefixes`, then prepending `add_prefix`)
    and shape match `model`. Returns {"loaded": [...], "skipped": {name: reason}, "missing": [...]}
    (missing = model keys left at their initialisation)."""
    own = model.state_dict()
    merged, loaded, skipped = dict(own), [], {}
    for k, v in state.items():
        for p in strip_prefixes:
            if k.startswith(p):
                k = k[len(p):]
        k = add_prefix + k
        if k not in own:
            skipped[k] = "not in model"
        elif tuple(own[k].shape) != tuple(v.shape):
            skipped[k] = f"shape {tuple(v.shape)} != {tuple(own[k].shape)}"
        else:
            merged[k] = v
            loaded.append(k)
    model.load_state_dict(merged, strict=True)
    return {"loaded": loaded, "skipped": skipped, "missing": sorted(set(own) - set(loaded))}



def load_pretrained(model: nn.Module, source, verbose: bool = True) -> dict:
    """Copy the weights of `source` (path or state dict) whose name and shape match `model`.

    Returns {"loaded": [...], "skipped": {name: reason}, "missing": [model keys left as initialised]} and
    prints a summary: e.g. an ImageNet backbone into a video model skips `fc.*` (1000-way) and the navigation's
    T-dependent `temporal` convs when T differs.
    """
    state = model_state_from_file(source) if isinstance(source, (str, Path)) else dict(source)
    report = load_matching(model, state, strip_prefixes=())
    loaded, skipped = report["loaded"], report["skipped"]
    if verbose:
        print(f"pretrained: loaded {len(loaded)} tensors, skipped {len(skipped)}, "
              f"{len(report['missing'])} left as initialised")
        for k, why in list(skipped.items())[:20]:
            print(f"  skipped {k}: {why}")
    return report
