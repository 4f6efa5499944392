"""Checkpoints of other code bases -> this suite: official AFNet names both ways, and `load_pretrained`, the
one loader behind `python -m src.train pretrained=PATH` for every kind of weights a user may have.

Official AFNet names. The official AF-ResNet checkpoints (`checkpoint['state_dict']`, DataParallel `module.`
prefix) name the trunk `base_model` (conv1/bn1, layer1-4) and the classifier `new_fc`; inside an AF stage
`list_gen` are the navigations, `base_module` the ample blocks, `refine_module` the focal blocks,
`base_transform` the ample projection, `att_gen.fc.{0,2}` the dynamic fusion and `fusion.0` the fusion block;
`downsample` is a block's shortcut. This suite's names: stem.{0,1}, stages.{s}.{nav,ample,focal}.{i},
stages.{s}.proj, stages.{s}.fuse.fc{1,2}, stages.{s}.fusion_block, stage4.{j}, fc; shortcut for downsample.
The shapes are the same, so a conversion is a renaming.

AF-MobileNetV3: official conv/bn -> stem.{0,1}; features_head.0 and features_stage1.{0,1} -> early.{0,1,2};
list_gen{2,3} -> stages.{0,1}.nav; features_stage{2,3}_base / _refine / _fuse.0 -> stages.{0,1}.ample /
focal.{i}.block / fusion_block; att_gen{2,3} -> stages.{0,1}.fuse; features_stage4 and features_stage5
-> late.{0-4}; conv_last/bn_last -> last_conv.{0,1}; fc.0 -> embed.0; fc.3 -> fc. Inside a block
conv1/bn1, conv2/bn2, se.fc.{0,2}, conv3/bn3, res_connect become conv.0, conv.1, conv.2.fc{1,2}, conv.2 or
conv.3 (after an SE), skip; the SE linears (out, in) are stored here as 1x1 convs (out, in, 1, 1).

Weights `load_pretrained` reads (`detect_format`), each found under `state_dict` / `model` or at the top, with
or without the DataParallel `module.` prefix:
- "suite": a checkpoint of this suite (`net.` keys: src.train, src.convert_checkpoint) or a suite state dict;
- "afnet": an official AFNet video checkpoint (`module.base_model.layer1.list_gen...`, `...features_head...`);
- "afnet_imagenet": an official ImageNet-pretrained AF backbone (`module.conv1.weight`,
  `module.layer1.list_gen...`, or `module.conv.weight`, `module.features_head...` for AF-MobileNetV3);
- "tsm": a TSN / TSM checkpoint of TSM's code (`module.base_model.layer1.0.conv1.net.weight` in a shifted
  block, `.conv1.weight` in the others, the classifier `module.new_fc`);
- "torchvision_resnet": a torchvision-format ImageNet ResNet-18/34/50/101 (`conv1.weight`, `layer1.0...`, `fc`);
- "torchvision_mbv3": a torchvision-format ImageNet MobileNetV3-Large (`features.0.0.weight`,
  `features.1.block.0.0.weight`, `classifier.{0,3}`).
Where they go:
- TSN / TSM (and the plain image models): every backbone tensor from "tsm", "torchvision_*" (of the same
  architecture) and "suite"; TSM's `new_fc` becomes the classifier when the class count matches.
- AF-ResNet / AF-MobileNetV3: everything from "afnet", "afnet_imagenet" and "suite", except the classifier when
  the class count differs and the navigation's temporal conv when the clip length differs (it is per frame).
  From an ImageNet ResNet ("torchvision_resnet", or the trunk of "tsm") only the stem (conv1, bn1) and
  stage 4 (layer4) have a counterpart in AF-ResNet; from an ImageNet MobileNetV3-Large the stem, the first
  three blocks (`early`), the ample and fusion blocks of both AF stages (blocks 4-6 and 7-10 of the standard
  model; AF-MobileNetV3 strides its third block), the late blocks (11-15), the last conv and the 960->1280
  embedding. Focal blocks (grouped convs), navigations, projections and fusions have no ImageNet counterpart.
  Standard MobileNetV3 weights apply the SE after the activation, AF-MobileNetV3 before it: they are an
  initialisation there, not the same function (and torchvision's BN uses eps 1e-3, this suite's 1e-5).
A load that leaves any backbone tensor at its initial value (anything but the classifier, the navigation's
per-frame temporal conv, the spatial heads of this suite's RS design and BN step counters) raises
`PretrainedError` with the list, unless `strict=False` (`pretrained_strict=false`).
"""

from __future__ import annotations

import re
from collections import defaultdict
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
    (r"base_model\.fc\.(.*)", r"fc.\1"),  # the 1000-way classifier of an ImageNet AF backbone
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




class CheckpointError(ValueError):
    """A checkpoint that cannot be read or converted; the message names the file or key and what was expected."""


class PretrainedError(ValueError):
    """A `pretrained=` load that would leave backbone tensors at their initial values; the message lists them."""


def detect_backbone(state_dict: dict) -> str:
    """'mbv3' for an AF-MobileNetV3 state dict (official or suite names), else 'resnet'."""
    return "mbv3" if any(".features_head." in k or k.startswith(("features_head.", "early.", "net.early."))
                         for k in state_dict) else "resnet"


def official_names(state_dict: dict, backbone: str | None = None) -> dict[str, str | None]:
    """Official AFNet name -> this suite's name (None: no counterpart), for an AF-ResNet or AF-MobileNetV3
    state dict (`module.` optional); backbone 'mbv3' or any ResNet name (None: detected from the names)."""
    mbv3 = (backbone or detect_backbone(state_dict)) == "mbv3"
    se_blocks = {k.removeprefix("module.").removeprefix("base_model.").split(".se.")[0] for k in state_dict
                 if ".se.fc." in k}
    return {k: _mb_to_suite(k, se_blocks) if mbv3 else official_to_suite_name(k) for k in state_dict}


def convert_official(state_dict: dict, backbone: str | None = None) -> dict:
    """Official AF-ResNet / AF-MobileNetV3 state dict -> this suite's model state dict (backbone: 'r50',
    'r101', 'mbv3', ...; None detects it). Raises CheckpointError on a name it does not know."""
    names = official_names(state_dict, backbone)
    unknown = [k for k, v in names.items() if v is None]
    if unknown:
        raise CheckpointError(f"no AFNet counterpart for official parameter {unknown[0]!r}"
                              + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    return {names[k]: _se_linear_to_conv(names[k], v) for k, v in state_dict.items()}


def _se_linear_to_conv(suite_name: str, v: torch.Tensor) -> torch.Tensor:
    """The official MobileNetV3 SE linears (out, in) are 1x1 convs (out, in, 1, 1) here."""
    return v.reshape(*v.shape, 1, 1) if ".conv.2.fc" in suite_name and suite_name.endswith("weight") \
        and v.dim() == 2 else v


def to_official(state_dict: dict, prefix: str = "module.", backbone: str | None = None) -> dict:
    """This suite's AFNet state dict (model keys, or `net.`-prefixed Lightning keys) -> official names."""
    mbv3 = (backbone or detect_backbone(state_dict)) == "mbv3"
    out = {}
    for k, v in state_dict.items():
        k = k[len("net."):] if k.startswith("net.") else k
        new = (None if (o := _mb_to_official(k)) is None else prefix + o) if mbv3 else suite_to_official_name(k, prefix)
        if new is None:
            raise CheckpointError(f"no official AFNet name for {k!r}")
        if mbv3 and ".se.fc." in new and new.endswith("weight"):
            v = v.flatten(1)  # 1x1 conv -> Linear
        out[new] = v
    return out


# ---- reading any checkpoint ------------------------------------------------------------------------------------

def unwrap_state(obj, where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The name -> tensor dict of a loaded checkpoint: under `state_dict` / `model` / `module`, or the dict
    itself; non-tensor entries (epoch, best_prec1, ...) are dropped."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{where}: expected a state dict, found {type(obj).__name__}")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(f"{where}: no tensors found (keys: {list(obj)[:5]})")
    return state


def read_checkpoint(path: str | Path) -> dict:
    """torch.load of a checkpoint file on CPU, with a one-line error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated download, a text file, ...: say which file, not a pickle traceback
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from None


def detect_format(state: dict) -> str:
    """Which kind of weights `state` (names -> tensors) holds; see the module docstring for the formats."""
    if any(k.startswith("net.") for k in state):
        return "suite"
    names = {k.removeprefix("module.") for k in state}
    has = lambda *prefixes: any(n.startswith(prefixes) for n in names)  # noqa: E731
    if has("base_model.layer1.list_gen.", "base_model.features_head.", "base_model.list_gen2."):
        return "afnet"
    if has("layer1.list_gen.", "features_head.", "list_gen2."):
        return "afnet_imagenet"
    if has("base_model.layer1.0.", "base_model.conv1."):
        return "tsm"
    if has("base_model.features."):
        raise CheckpointError("a TSM MobileNetV2 checkpoint (base_model.features...): this suite has no MobileNetV2")
    if has("stem.0.", "trunk."):
        return "suite"
    if has("layer1.0.conv1.", "conv1.weight"):
        return "torchvision_resnet"
    if has("features.1.block."):
        return "torchvision_mbv3"
    raise CheckpointError(f"unknown checkpoint format (first names: {sorted(state)[:4]})")


def _tsm_to_resnet(name: str) -> str:
    """TSM's names -> torchvision's: `base_model.` dropped, the shifted conv `conv1.net` is `conv1`."""
    return name.removeprefix("base_model.").replace(".conv1.net.", ".conv1.")


def _tv_mbv3(name: str) -> str | None:
    """torchvision MobileNetV3-Large -> this suite's `MobileNetV3` names (the 1000-way classifier at classifier.1)."""
    for pattern, repl in ((r"features\.0\.(.*)", r"stem.\1"), (r"features\.16\.(.*)", r"last_conv.\1"),
                          (r"classifier\.0\.(.*)", r"embed.0.\1"), (r"classifier\.3\.(.*)", r"classifier.1.\1")):
        if m := re.fullmatch(pattern, name):
            return m.expand(repl)
    m = re.fullmatch(r"features\.(\d+)\.block\.(.*)", name)
    return f"blocks.{int(m[1]) - 1}.conv.{m[2]}" if m else None


def to_family(state: dict, fmt: str | None = None) -> tuple[str, dict, dict]:
    """(family, {renamed name: (source name, tensor)}, {source name: why dropped}) of weights in format `fmt`
    (None: detected). Families: "af" (this suite's AFNet names), "resnet" (torchvision's ResNet names), "mbv3"
    (this suite's MobileNetV3 names); the video classifier of "resnet" / "mbv3" weights is called `new_fc`."""
    fmt = fmt or detect_format(state)
    dropped: dict[str, str] = {}
    if fmt == "suite":
        # reported by their model names (no `net.`)
        suite = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")} or dict(state)
        renamed = {k: (k, v) for k, v in suite.items()}
        if any(k.startswith("trunk.") for k in suite):  # TSN / TSM: trunk + head
            renamed = {("new_fc." + k[len("head.1."):]) if k.startswith("head.1.") else k.removeprefix("trunk."):
                       (k, v) for k, v in suite.items()}
        fam = "af" if any(k.startswith(("stages.", "early.")) for k in renamed) else \
            "mbv3" if any(k.startswith("blocks.") for k in renamed) else "resnet"
        return fam, renamed, dropped
    plain = {k.removeprefix("module."): k for k in state}  # name without `module.` -> source name
    if fmt in ("afnet", "afnet_imagenet"):
        pre = "base_model." if fmt == "afnet_imagenet" else ""
        names = official_names({pre + k: state[src] for k, src in plain.items()})
        out = {}
        for k, src in plain.items():
            new = names[pre + k]
            if new is None:
                dropped[src] = "no counterpart in this suite's AFNet"
            else:
                out[new] = (src, _se_linear_to_conv(new, state[src]))
        return "af", out, dropped
    rename = {"tsm": _tsm_to_resnet, "torchvision_resnet": lambda k: k, "torchvision_mbv3": _tv_mbv3}.get(fmt)
    if rename is None:
        raise CheckpointError(f"unknown checkpoint format {fmt!r}")
    out = {}
    for k, src in plain.items():
        if (new := rename(k)) is None:
            dropped[src] = "not a MobileNetV3-Large parameter"
        else:
            out[new] = (src, state[src])
    return ("mbv3" if fmt == "torchvision_mbv3" else "resnet"), out, dropped


# ---- family -> target model names ------------------------------------------------------------------------------

# block i of the standard MobileNetV3-Large (this suite's `blocks.i`) -> its place in AF-MobileNetV3
MBV3_IN_AF = ["early.0", "early.1", "early.2", "stages.0.ample.0", "stages.0.ample.1", "stages.0.fusion_block",
              "stages.1.ample.0", "stages.1.ample.1", "stages.1.ample.2", "stages.1.fusion_block",
              "late.0", "late.1", "late.2", "late.3", "late.4"]


def _resnet_to_af(name: str) -> str | None:
    """torchvision ResNet name -> AF-ResNet name: stem and stage 4 only (the AF stages have no counterpart)."""
    for pattern, repl in ((r"conv1\.(.*)", r"stem.0.\1"), (r"bn1\.(.*)", r"stem.1.\1"),
                          (r"layer4\.(\d+)\.downsample\.([01])\.(.*)", None), (r"layer4\.(.*)", r"stage4.\1"),
                          (r"new_fc\.(.*)", r"fc.\1")):
        if m := re.fullmatch(pattern, name):  # stage 4's shortcut is [avg-pool, conv, BN]: indices shift by one
            return f"stage4.{m[1]}.shortcut.{int(m[2]) + 1}.{m[3]}" if repl is None else m.expand(repl)
    return None


def _af_to_resnet(name: str) -> str | None:
    for pattern, repl in ((r"stem\.0\.(.*)", r"conv1.\1"), (r"stem\.1\.(.*)", r"bn1.\1"),
                          (r"stage4\.(\d+)\.shortcut\.([12])\.(.*)", None), (r"stage4\.(.*)", r"layer4.\1"),
                          (r"fc\.(.*)", r"new_fc.\1")):
        if m := re.fullmatch(pattern, name):
            return f"layer4.{m[1]}.downsample.{int(m[2]) - 1}.{m[3]}" if repl is None else m.expand(repl)
    return None


def _mbv3_to_af(name: str) -> str | None:
    if m := re.fullmatch(r"blocks\.(\d+)\.(.*)", name):
        return f"{MBV3_IN_AF[int(m[1])]}.{m[2]}" if int(m[1]) < len(MBV3_IN_AF) else None
    if name.startswith(("stem.", "last_conv.", "embed.")):
        return name
    return "fc." + name[len("new_fc."):] if name.startswith("new_fc.") else None


def _af_to_mbv3(name: str) -> str | None:
    for i, prefix in enumerate(MBV3_IN_AF):
        if name.startswith(prefix + "."):
            return f"blocks.{i}.{name[len(prefix) + 1:]}"
    if name.startswith(("stem.", "last_conv.", "embed.")):
        return name
    return "new_fc." + name[len("fc."):] if name.startswith("fc.") else None


def target_kind(model_names) -> str:
    """'af_resnet', 'af_mbv3', 'video_resnet', 'video_mbv3' (TSN / TSM), 'resnet' or 'mbv3' (image models),
    from a model's state-dict names."""
    names = set(model_names)
    has = lambda prefix: any(n.startswith(prefix) for n in names)  # noqa: E731
    if has("stage4."):
        return "af_resnet"
    if has("early."):
        return "af_mbv3"
    if has("trunk."):
        return "video_mbv3" if has("trunk.blocks.") else "video_resnet"
    return "mbv3" if has("blocks.") else "resnet"


def _namer(family: str, kind: str):
    """name in `family` -> name in a model of `kind` (None: no place there)."""
    video = kind.startswith("video_")
    base = kind.removeprefix("video_").removeprefix("af_")
    if kind.startswith("af_"):
        return {"af": lambda n: n, "resnet": _resnet_to_af if base == "resnet" else None,
                "mbv3": _mbv3_to_af if base == "mbv3" else None}.get(family) or (lambda n: None)
    if family == "af":
        via, then = (_af_to_resnet if base == "resnet" else _af_to_mbv3), _namer(base, kind)
        return lambda n: None if (r := via(n)) is None else then(r)
    if family != base:
        return lambda n: None
    head = "head.1." if video else ("fc." if base == "resnet" else "classifier.1.")
    prefix = "trunk." if video else ""
    return lambda n: head + n[len("new_fc."):] if n.startswith("new_fc.") else prefix + n


def fresh_reason(name: str) -> str | None:
    """Why a model tensor may keep its initial value after a pretrained load (None: it is a backbone tensor)."""
    if name.startswith(("fc.", "head.", "classifier.")):
        return "classifier"
    if ".nav." in name and ".temporal." in name:
        return "navigation temporal conv (per frame: depends on the clip length)"
    if ".nav." in name and ".spatial." in name:
        return "spatial head (this suite's RS design: no released weights)"
    if name.endswith("num_batches_tracked"):
        return "BN step counter"
    return None


def match_into(model: nn.Module, state: dict, fmt: str | None = None) -> tuple[dict, dict, str]:
    """({model name: tensor} to load, {source name: why not}, format) for weights `state` into `model`,
    by name (after the format's renaming) and shape."""
    fmt = fmt or detect_format(state)
    family, renamed, skipped = to_family(state, fmt)
    own = model.state_dict()
    to_name = _namer(family, target_kind(own))
    take: dict[str, torch.Tensor] = {}
    for k, (src, v) in renamed.items():
        target = to_name(k)
        if target is None or target not in own:
            skipped[src] = f"no place in {type(model).__name__}"
        elif tuple(own[target].shape) != tuple(v.shape):
            skipped[src] = f"shape {tuple(v.shape)} != {tuple(own[target].shape)} of {target}"
        else:
            take[target] = v
    return take, skipped, fmt


def load_pretrained(model: nn.Module, source, strict: bool = True, verbose: bool = True) -> dict:
    """Load the weights of `source` (a path, or a loaded checkpoint / state dict) into `model`, whatever their
    format (`detect_format`), by name and shape.

    Returns {"format", "loaded": [model names], "skipped": {source name: why}, "left_at_init": {model name:
    why it may stay so, or "backbone"}} and prints it grouped by module. strict: raise `PretrainedError` when
    a backbone tensor is left at its initial value (listed); the model is then untouched.
    """
    where = str(source) if isinstance(source, (str, Path)) else "state dict"
    state = unwrap_state(read_checkpoint(source) if isinstance(source, (str, Path)) else source, where)
    take, skipped, fmt = match_into(model, state)
    own = model.state_dict()
    left = {k: fresh_reason(k) or "backbone" for k in own if k not in take}
    missing = [k for k, why in left.items() if why == "backbone"]
    report = {"format": fmt, "loaded": sorted(take), "skipped": skipped, "left_at_init": left}
    if verbose:
        print(format_report(report, where, type(model).__name__))
    if strict and missing:
        raise PretrainedError(f"{where} ({fmt}) would leave {len(missing)} backbone tensors of "
                              f"{type(model).__name__} at their initial values: {group_names(missing)} "
                              "(pretrained_strict=false loads it anyway)")
    model.load_state_dict({**own, **take}, strict=True)
    return report


def group_names(names, limit: int | None = None) -> str:
    """'a.b.w, a.b.bias, c.w' -> 'a.b.{w,bias}, c.w': one entry per module, in order; past `limit` entries,
    '... and N more modules'."""
    groups: dict[str, list[str]] = defaultdict(list)
    for n in names:
        mod, _, leaf = n.rpartition(".")
        groups[mod].append(leaf)
    entries = [f"{m}.{{{','.join(ls)}}}" if len(ls) > 1 else (f"{m}.{ls[0]}" if m else ls[0])
               for m, ls in groups.items()]
    if limit is not None and len(entries) > limit:
        entries = [*entries[:limit], f"... and {len(entries) - limit} more modules"]
    return ", ".join(entries)


def format_report(report: dict, where: str, model_name: str, limit: int = 12) -> str:
    """The load report as a few lines: counts, then the skipped and left-at-init tensors by reason (a shape
    mismatch names both shapes; BN step counters are only counted)."""
    lines = [f"pretrained: {where} ({report['format']}) -> {model_name}: loaded {len(report['loaded'])} tensors, "
             f"skipped {len(report['skipped'])}, left at init {len(report['left_at_init'])}"]
    by_reason: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, why in report["skipped"].items():
        shapes = why.startswith("shape ")
        by_reason["skipped", "shape differs" if shapes else why].append(f"{name} {why[6:]}" if shapes else name)
    for name, why in report["left_at_init"].items():
        by_reason["left at init", why].append(name)
    for (title, why), names in by_reason.items():
        listed = f"{len(names)} tensors" if why == "BN step counter" else \
            "; ".join(names[:limit]) + (f"; ... and {len(names) - limit} more" if len(names) > limit else "") \
            if why == "shape differs" else group_names(names, limit)
        lines.append(f"  {title} ({why}): {listed}")
    return "\n".join(lines)
