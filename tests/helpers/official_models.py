"""Independent references of the released models, for the checkpoint tests, and checkpoints in their formats.

The references compute logits straight from a state dict in the other code base's names, with torch.nn.functional
only, as that code is published to behave (not through this suite's modules):
- official AF-ResNet: ResNet-D shortcuts (3x3/2 average pool, then 1x1 conv + BN), the TSM residual shift at
  the start of every block's residual when shifted, input masking in the focal blocks (F(shift(x) * m): a
  skipped frame gets F(0)), no final ReLU in the last ample / focal block of a stage, nearest upsampling of the
  projected ample output, dynamic fusion relu(θ a + (1 - θ) f), θ = σ(W2 relu(W1 GAP(a + f)));
- official AF-MobileNetV3: the same stage scheme without projection, fusion linears with biases and no ReLU
  after the blend, blocks shift their input, depthwise conv -> BN -> SE -> activation;
- TSM: torchvision's ResNet with the residual shift in the blocks TSM's code shifts (every block, or every
  other block of every stage when the third stage has 23 or more blocks).
Navigation masks are deterministic: select where the select logit beats the skip logit.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F

KEYS_FILE = Path(__file__).resolve().parents[1] / "data" / "afnet_official_keys.txt"


# ---- checkpoints in the released formats -----------------------------------------------------------------------

def official_shapes(model: str) -> dict[str, tuple]:
    """Names and shapes of one official AFNet checkpoint (AF_resnet50, AF_resnet101, AF_mobilenetv3: 12 frames,
    174 classes, `module.` prefixed), as listed in tests/data/afnet_official_keys.txt."""
    shapes, current = {}, None
    for line in KEYS_FILE.read_text().splitlines():
        if line.startswith("## "):
            current = line.split()[1]
        elif current == model and line.startswith("module."):
            name, shape = line.split("\t")
            shapes[name] = tuple(int(d) for d in re.findall(r"\d+", shape))
    assert shapes, model
    return shapes


def random_state(shapes: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    """Tensors of these shapes with trained-like scales: conv / linear weights N(0, 1/fan_in), BN statistics and
    affine parameters away from their initial values (so F(0) != 0), biases N(0, 0.1)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in shapes.items():
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            out[name] = 0.5 + torch.rand(shape, generator=g)
        elif name.endswith(("running_mean", "bias")):
            out[name] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:  # a BN scale
            out[name] = 0.5 + 0.5 * torch.rand(shape, generator=g)
        else:
            fan_in = 1
            for d in shape[1:]:
                fan_in *= d
            out[name] = torch.randn(shape, generator=g) / fan_in ** 0.5
    return out


def bn_shapes(prefix: str, c: int, counter: bool = True) -> dict[str, tuple]:
    out = {f"{prefix}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")}
    return {**out, f"{prefix}.num_batches_tracked": ()} if counter else out


RESNETS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
           101: ("bottleneck", (3, 4, 23, 3))}


def tsm_shift_placement(counts: tuple[int, ...]) -> list[list[bool]]:
    """TSM's code: n_round = 2 when the third stage has >= 23 blocks, and block j of every stage is shifted
    when j % n_round == 0."""
    n_round = 2 if counts[2] >= 23 else 1
    return [[j % n_round == 0 for j in range(n)] for n in counts]


def torchvision_resnet_shapes(depth: int, width: int = 64, num_classes: int = 1000,
                              counter: bool = False) -> dict[str, tuple]:
    """torchvision ResNet-18/34/50/101 state-dict names and shapes (`counter`: with BN num_batches_tracked)."""
    kind, counts = RESNETS[depth]
    expansion = 4 if kind == "bottleneck" else 1
    shapes = {"conv1.weight": (width, 3, 7, 7), **bn_shapes("bn1", width, counter)}
    cin = width
    for s, n in enumerate(counts):
        planes = width * 2**s
        for j in range(n):
            p = f"layer{s + 1}.{j}"
            convs = [(planes, cin, 1), (planes, planes, 3), (planes * 4, planes, 1)] if kind == "bottleneck" \
                else [(planes, cin, 3), (planes, planes, 3)]
            for i, (o, c, k) in enumerate(convs, 1):
                shapes[f"{p}.conv{i}.weight"] = (o, c, k, k)
                shapes.update(bn_shapes(f"{p}.bn{i}", o, counter))
            if j == 0 and (s > 0 or cin != planes * expansion):
                shapes[f"{p}.downsample.0.weight"] = (planes * expansion, cin, 1, 1)
                shapes.update(bn_shapes(f"{p}.downsample.1", planes * expansion, counter))
            cin = planes * expansion
    return {**shapes, "fc.weight": (num_classes, cin), "fc.bias": (num_classes,)}


def tsm_checkpoint(depth: int, num_classes: int, shift: bool, width: int = 64, seed: int = 0) -> dict:
    """A checkpoint as TSM's main.py saves it: DataParallel `module.`, the trunk under `base_model.` with each
    shifted conv1 wrapped as `conv1.net`, the ImageNet fc replaced by dropout, the classifier `new_fc`."""
    shapes = torchvision_resnet_shapes(depth, width, counter=True)
    placement = tsm_shift_placement(RESNETS[depth][1])
    state = {}
    for name, v in random_state(shapes, seed).items():
        if name.startswith("fc."):
            continue
        m = re.match(r"layer(\d)\.(\d+)\.conv1\.(.*)", name)
        if shift and m and placement[int(m[1]) - 1][int(m[2])]:
            name = f"layer{m[1]}.{m[2]}.conv1.net.{m[3]}"
        state[f"module.base_model.{name}"] = v
    fc = random_state({"w": (num_classes, shapes["fc.weight"][1]), "b": (num_classes,)}, seed + 1)
    state.update({"module.new_fc.weight": fc["w"], "module.new_fc.bias": fc["b"]})
    return {"epoch": 45, "arch": f"resnet{depth}", "state_dict": state, "best_prec1": 45.6}


def _divisible8(v: float) -> int:
    new = max(8, int(v + 4) // 8 * 8)
    return new + 8 if new < 0.9 * v else new


# torchvision MobileNetV3-Large: (kernel, expanded width, out, SE) per block, strides irrelevant to the names
MBV3_LARGE = [(3, 16, 16, False), (3, 64, 24, False), (3, 72, 24, False), (5, 72, 40, True), (5, 120, 40, True),
              (5, 120, 40, True), (3, 240, 80, False), (3, 200, 80, False), (3, 184, 80, False), (3, 184, 80, False),
              (3, 480, 112, True), (3, 672, 112, True), (5, 672, 160, True), (5, 960, 160, True), (5, 960, 160, True)]


def torchvision_mbv3_shapes(num_classes: int = 1000) -> dict[str, tuple]:
    """torchvision mobilenet_v3_large state-dict names and shapes (BN without step counters)."""
    shapes = {"features.0.0.weight": (16, 3, 3, 3), **bn_shapes("features.0.1", 16, False)}
    cin = 16
    for i, (k, exp, out, se) in enumerate(MBV3_LARGE, 1):
        p, j = f"features.{i}.block", 0
        if exp != cin:
            shapes[f"{p}.0.0.weight"] = (exp, cin, 1, 1)
            shapes.update(bn_shapes(f"{p}.0.1", exp, False))
            j = 1
        shapes[f"{p}.{j}.0.weight"] = (exp, 1, k, k)
        shapes.update(bn_shapes(f"{p}.{j}.1", exp, False))
        if se:
            sq = _divisible8(exp // 4)
            j += 1
            shapes.update({f"{p}.{j}.fc1.weight": (sq, exp, 1, 1), f"{p}.{j}.fc1.bias": (sq,),
                           f"{p}.{j}.fc2.weight": (exp, sq, 1, 1), f"{p}.{j}.fc2.bias": (exp,)})
        shapes[f"{p}.{j + 1}.0.weight"] = (out, exp, 1, 1)
        shapes.update(bn_shapes(f"{p}.{j + 1}.1", out, False))
        cin = out
    shapes.update({"features.16.0.weight": (960, 160, 1, 1), **bn_shapes("features.16.1", 960, False),
                   "classifier.0.weight": (1280, 960), "classifier.0.bias": (1280,),
                   "classifier.3.weight": (num_classes, 1280), "classifier.3.bias": (num_classes,)})
    return shapes


def imagenet_af_shapes(model: str) -> dict[str, tuple]:
    """An official ImageNet AF backbone's names: the video model's without `base_model.`, a 1000-way classifier
    (`fc`, or `fc.3` for MobileNetV3) and one-frame navigation temporal convs."""
    out = {}
    for name, shape in official_shapes(model).items():
        name = name.replace("module.base_model.", "module.").replace("module.new_fc.", "module.fc.")
        if ".conv_gs." in name:
            shape = (2, *shape[1:]) if len(shape) > 1 else (2,)
        elif name.startswith(("module.fc.weight", "module.fc.3.weight")):
            shape = (1000, shape[1])
        elif name in ("module.fc.bias", "module.fc.3.bias"):
            shape = (1000,)
        out[name] = shape
    return out


# ---- functional references --------------------------------------------------------------------------------------

def bn(x, sd, p):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.0, 1e-5)


def conv(x, sd, p, stride=1):
    """A conv named p: padding k // 2, groups from the input width and the weight's shape."""
    w = sd[f"{p}.weight"]
    return F.conv2d(x, w, sd.get(f"{p}.bias"), stride, w.shape[-1] // 2, 1, x.shape[1] // w.shape[1])


def shift(x, t):
    """TSM: channels [0, C/8) take frame t+1's values, [C/8, C/4) frame t-1's, zero at the clip ends."""
    nt, c, h, w = x.shape
    f = c // 8
    v = x.view(nt // t, t, c, h, w)
    zero = torch.zeros_like(v[:, :1, :f])
    return torch.cat([torch.cat([v[:, 1:, :f], zero], 1), torch.cat([zero, v[:, :-1, f:2 * f]], 1),
                      v[:, :, 2 * f:]], 2).reshape(nt, c, h, w)


def hswish(x):
    return x * F.relu6(x + 3) / 6


def navigate(x, sd, p, t):
    v = F.relu(bn(conv(x.mean((2, 3), keepdim=True), sd, f"{p}.conv_pool"), sd, f"{p}.bn"))
    logits = conv(v.reshape(-1, 2 * t, 1, 1), sd, f"{p}.conv_gs").view(-1, t, 2)
    return (logits[..., 1] > logits[..., 0]).to(x.dtype).view(-1, 1, 1, 1)


def res_block(x, sd, p, stride, t, shifted, mask=None, relu_out=True, resnet_d=True, conv1=None):
    """Bottleneck (conv1-3) or basic block (conv1-2), the stride on the 3x3 conv; resnet_d: the AF shortcut
    (pool, then 1x1 conv + BN at downsample.1/.2), else torchvision's (strided 1x1 at downsample.0/.1)."""
    y = shift(x, t) if shifted else x
    if mask is not None:
        y = y * mask
    n = 3 if f"{p}.conv3.weight" in sd else 2
    for i in range(1, n + 1):
        name = conv1 if i == 1 and conv1 else f"{p}.conv{i}"
        y = bn(conv(y, sd, name, stride if i == n - 1 else 1), sd, f"{p}.bn{i}")
        y = F.relu(y) if i < n else y
    skip, k = x, 0
    if resnet_d and stride != 1:
        skip, k = F.avg_pool2d(x, 3, stride, 1), 1
    if f"{p}.downsample.{k}.weight" in sd:
        skip = bn(conv(skip, sd, f"{p}.downsample.{k}", 1 if resnet_d else stride), sd, f"{p}.downsample.{k + 1}")
    out = y + skip
    return F.relu(out) if relu_out else out


def _count(sd, pattern: str) -> int:
    i = 0
    while any(k.startswith(pattern.format(i)) for k in sd):
        i += 1
    return i


def af_resnet_logits(state: dict, x: torch.Tensor, t: int, shifted: bool) -> tuple[torch.Tensor, list]:
    """Official AF-ResNet on x (N*T, 3, H, W), from its `module.base_model...` / `module.new_fc` state dict:
    (N, K) logits and the masks."""
    sd = {k.removeprefix("module.").removeprefix("base_model."): v for k, v in state.items()}
    x = F.max_pool2d(F.relu(bn(conv(x, sd, "conv1", 2), sd, "bn1")), 3, 2, 1)
    masks = []
    for s in (1, 2, 3):
        p, n = f"layer{s}", _count(sd, f"layer{s}.list_gen.{{}}.")
        a = f = x
        for i in range(n):
            m = navigate(a, sd, f"{p}.list_gen.{i}", t)
            masks.append(m)
            f = res_block(f, sd, f"{p}.refine_module.{i}", 1, t, shifted, mask=m, relu_out=i < n - 1)
            a = res_block(a, sd, f"{p}.base_module.{i}", 2 if i == 0 else 1, t, shifted, relu_out=i < n - 1)
        a = F.interpolate(bn(conv(a, sd, f"{p}.base_transform.0"), sd, f"{p}.base_transform.1"), size=f.shape[-2:],
                          mode="nearest")
        hidden = F.relu(F.linear((a + f).mean((2, 3)), sd[f"{p}.att_gen.fc.0.weight"]))
        theta = torch.sigmoid(F.linear(hidden, sd[f"{p}.att_gen.fc.2.weight"]))[..., None, None]
        x = res_block(F.relu(theta * a + (1 - theta) * f), sd, f"{p}.fusion.0", 2 if s < 3 else 1, t, shifted)
    for j in range(_count(sd, "layer4.{}.")):
        x = res_block(x, sd, f"layer4.{j}", 2 if j == 0 else 1, t, shifted)
    logits = F.linear(x.mean((2, 3)), sd["new_fc.weight"], sd["new_fc.bias"])
    return logits.view(-1, t, logits.shape[-1]).mean(1), masks


def mb_block(x, sd, p, stride, hs, t, mask=None):
    """Official AF-MobileNetV3 block: shift, [mask], [1x1 expand, BN, act], depthwise, BN, [SE], act, 1x1, BN;
    + the projection shortcut (res_connect), the identity (stride 1, same width) or nothing."""
    act = hswish if hs else F.relu
    y = shift(x, t)
    if mask is not None:
        y = y * mask
    expand = f"{p}.conv3.weight" in sd
    if expand:
        y = act(bn(conv(y, sd, f"{p}.conv1"), sd, f"{p}.bn1"))
    dw, pw = (2, 3) if expand else (1, 2)
    y = bn(conv(y, sd, f"{p}.conv{dw}", stride), sd, f"{p}.bn{dw}")
    if f"{p}.se.fc.0.weight" in sd:
        s = F.relu(F.linear(y.mean((2, 3)), sd[f"{p}.se.fc.0.weight"], sd[f"{p}.se.fc.0.bias"]))
        y = y * (F.relu6(F.linear(s, sd[f"{p}.se.fc.2.weight"], sd[f"{p}.se.fc.2.bias"]) + 3) / 6)[..., None, None]
    y = bn(conv(act(y), sd, f"{p}.conv{pw}"), sd, f"{p}.bn{pw}")
    if f"{p}.res_connect.0.weight" in sd:
        return y + bn(conv(x, sd, f"{p}.res_connect.0"), sd, f"{p}.res_connect.1")
    return y + x if y.shape == x.shape else y


def af_mbv3_logits(state: dict, x: torch.Tensor, t: int) -> tuple[torch.Tensor, list]:
    """Official AF-MobileNetV3 on x (N*T, 3, H, W) from its `module.base_model...` state dict."""
    sd = {k.removeprefix("module.").removeprefix("base_model."): v for k, v in state.items()}
    x = hswish(bn(conv(x, sd, "conv", 2), sd, "bn"))
    for p, stride in (("features_head.0", 1), ("features_stage1.0", 2), ("features_stage1.1", 2)):
        x = mb_block(x, sd, p, stride, False, t)
    masks = []
    for s, strides, fuse_stride, hs in ((2, (2, 1), 2, False), (3, (2, 1, 1), 1, True)):
        a = f = x
        for i, stride in enumerate(strides):
            m = navigate(a, sd, f"list_gen{s}.{i}", t)
            masks.append(m)
            f = mb_block(f, sd, f"features_stage{s}_refine.{i}", 1, hs, t, mask=m)
            a = mb_block(a, sd, f"features_stage{s}_base.{i}", stride, hs, t)
        a = F.interpolate(a, size=f.shape[-2:], mode="nearest")
        hidden = F.relu(F.linear((a + f).mean((2, 3)), sd[f"att_gen{s}.fc.0.weight"], sd[f"att_gen{s}.fc.0.bias"]))
        theta = torch.sigmoid(F.linear(hidden, sd[f"att_gen{s}.fc.2.weight"], sd[f"att_gen{s}.fc.2.bias"]))
        x = mb_block(theta[..., None, None] * a + (1 - theta[..., None, None]) * f, sd, f"features_stage{s}_fuse.0",
                     fuse_stride, hs, t)
    for p, stride in (("features_stage4.0", 1), ("features_stage4.1", 1), ("features_stage5.0", 2),
                      ("features_stage5.1", 1), ("features_stage5.2", 1)):
        x = mb_block(x, sd, p, stride, True, t)
    x = hswish(bn(conv(x, sd, "conv_last"), sd, "bn_last")).mean((2, 3))
    x = hswish(F.linear(x, sd["fc.0.weight"], sd["fc.0.bias"]))
    logits = F.linear(x, sd["fc.3.weight"], sd["fc.3.bias"])
    return logits.view(-1, t, logits.shape[-1]).mean(1), masks


def tsm_logits(state: dict, x: torch.Tensor, t: int, shifted: bool) -> torch.Tensor:
    """TSN (shifted=False) / TSM of TSM's code on x (N*T, 3, H, W) from its checkpoint's state dict: (N, K)."""
    sd = {k.removeprefix("module.").removeprefix("base_model."): v for k, v in state.items()}
    counts = tuple(_count(sd, f"layer{s}.{{}}.") for s in (1, 2, 3, 4))
    placement = tsm_shift_placement(counts)
    x = F.max_pool2d(F.relu(bn(conv(x, sd, "conv1", 2), sd, "bn1")), 3, 2, 1)
    for s, n in enumerate(counts):
        for j in range(n):
            p, on = f"layer{s + 1}.{j}", shifted and placement[s][j]
            x = res_block(x, sd, p, 2 if j == 0 and s > 0 else 1, t, on, resnet_d=False,
                          conv1=f"{p}.conv1.net" if on else None)
    logits = F.linear(x.mean((2, 3)), sd["new_fc.weight"], sd["new_fc.bias"])
    return logits.view(-1, t, logits.shape[-1]).mean(1)
