"""AF-ResNet against SPEC: parameter counts, shapes, mask counts, sliced = masked, gradients, variants."""

import pytest
import torch

from src.models import build_video_model
from src.models.afnet import build_afnet


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("classes,t,expected", [(1000, 12, 24_897_440), (1000, 8, 24_897_200), (174, 12, 23_204_966)])
def test_af_resnet50_parameter_counts(classes, t, expected):
    assert n_params(build_afnet("r50", classes, t)) == expected


def test_af_resnet50_parameter_breakdown():
    m = build_afnet("r50", 1000, 12)
    parts = {}
    for name, p in m.named_parameters():
        key = name.split(".")[2] if name.startswith("stages") else name.split(".")[0]
        parts[key] = parts.get(key, 0) + p.numel()
    assert parts == {"stem": 9536, "nav": 7800, "ample": 1653504, "focal": 3881472, "proj": 691712,
                     "fuse": 172032, "fusion_block": 1467648, "stage4": 14964736, "fc": 2049000}


def test_af_resnet101_parameter_count():
    assert round(n_params(build_afnet("r101", 1000, 12)) / 1e6, 2) == 35.89


def test_af_mobilenetv3_parameter_count():
    """4.51 M at 174 classes (SPEC §2.11); exactly the 4,507,169 parameters of the official checkpoint."""
    assert n_params(build_afnet("mbv3", 174, 12)) == 4_507_169


@pytest.mark.parametrize("backbone,masks", [("r18", 3), ("r34", 10), ("r50", 10), ("r101", 27), ("mbv3", 5)])
def test_mask_counts(backbone, masks):
    """Masks per forward (one per focal block); the forward pass itself is checked in test_twelve_frames."""
    assert build_afnet(backbone, 10, 2, width=8, width_mult=0.25).num_masks == masks


def test_stage_shapes_at_224():
    """SPEC §2.2, 1 video: AF-1/2/3 (T, 256, 28, 28), (T, 512, 14, 14), (T, 1024, 14, 14); stage 4 (T, 2048, 7, 7)."""
    m = build_afnet("r50", 174, 2).eval()
    shapes = []
    hooks = [s.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o[0].shape))) for s in m.stages]
    hooks.append(m.stage4.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape))))
    with torch.no_grad():
        out = m(torch.randn(1, 2, 3, 224, 224))
    assert shapes == [(2, 256, 28, 28), (2, 512, 14, 14), (2, 1024, 14, 14), (2, 2048, 7, 7)]
    assert out.logits.shape == (1, 174)
    for h in hooks:
        h.remove()


def test_mobilenetv3_spatial_path():
    """SPEC §2.11 at 224: AF-2 focal at 28 / ample at 14 -> 14; AF-3 focal at 14 / ample at 7 -> 14; end 7."""
    m = build_afnet("mbv3", 10, 2, width_mult=0.25).eval()
    parts = {"early": m.early, "ample2": m.stages[0].ample[0], "focal2": m.stages[0].focal[0], "af2": m.stages[0],
             "ample3": m.stages[1].ample[0], "focal3": m.stages[1].focal[0], "af3": m.stages[1], "late": m.late}
    shapes = {}

    def record(name):
        def hook(mod, inputs, out):
            shapes.setdefault(name, (out[0] if isinstance(out, tuple) else out).shape)
        return hook

    for name, mod in parts.items():
        mod.register_forward_hook(record(name))
    with torch.no_grad():
        m(torch.randn(1, 2, 3, 224, 224))
    assert {k: s[-1] for k, s in shapes.items()} == {"early": 28, "ample2": 14, "focal2": 28, "af2": 14,
                                                     "ample3": 7, "focal3": 14, "af3": 14, "late": 7}
    assert {k: s[1] for k, s in shapes.items()} == {"early": 8, "ample2": 16, "focal2": 16, "af2": 16,
                                                    "ample3": 24, "focal3": 24, "af3": 24, "late": 40}  # x0.25


def randomise(model, seed=0):
    """Non-trivial BN statistics and navigation biases that select some frames and skip others."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            for t, lo, hi in ((mod.running_mean, -1, 1), (mod.running_var, 0.5, 2), (mod.weight.data, 0.5, 1.5),
                              (mod.bias.data, -0.5, 0.5)):
                t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)
    for nav in model.modules():
        if type(nav).__name__ == "Navigation":
            nav.temporal.bias.data.copy_(torch.randn(nav.temporal.bias.shape, generator=g) * 3)
    return model


@pytest.mark.parametrize("backbone", ["r50", "r18", "mbv3"])
@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("mask_mode", ["output", "input"])
def test_sliced_equals_masked_on_every_frame(backbone, shift, mask_mode):
    if backbone == "mbv3" and not shift:
        pytest.skip("AF-MobileNetV3 is always shifted")
    m = randomise(build_afnet(backbone, 10, 4, shift=shift, width=8, width_mult=0.25, mask_mode=mask_mode)).eval()
    x = torch.randn(3, 4, 3, 64, 64)
    with torch.no_grad():
        m.focal_compute = "masked"
        fa, ma, _ = m.features(x.flatten(0, 1))
        m.focal_compute = "sliced"
        fb, mb, _ = m.features(x.flatten(0, 1))
    sel = torch.stack([k.view(-1) for k in ma])
    assert 0.2 < sel.mean() < 0.8  # some frames selected, some skipped, at every block on average
    assert all(torch.equal(a, b) for a, b in zip(ma, mb))
    torch.testing.assert_close(fa, fb, rtol=0, atol=1e-5)  # per frame, (N*T, C)


def test_input_mode_differs_from_output_mode_on_skipped_frames():
    """F(0) is not zero with non-trivial BN statistics: the official input masking gives skipped frames a
    constant residual (SPEC §2.5), which the sliced path reproduces only by filling in F(0)."""
    x = torch.randn(1, 4, 3, 64, 64)
    outs = []
    for mode in ("output", "input"):
        m = randomise(build_afnet("r18", 10, 4, width=8, mask_mode=mode)).eval()
        with torch.no_grad():
            outs.append(m.features(x.flatten(0, 1))[0])
    assert (outs[0] - outs[1]).abs().max() > 1e-3


@pytest.mark.parametrize("backbone", ["r18", "mbv3"])
def test_fresh_model_selects_every_frame_and_navigation_gets_gradients(backbone):
    m = build_afnet(backbone, 10, 4, width=8, width_mult=0.25).train()
    out = m(torch.randn(2, 4, 3, 64, 64))
    assert all(float(k.detach().mean()) == 1.0 for k in out.masks)
    ratio_loss = torch.stack([(0.5 - k.mean()) ** 2 for k in out.masks]).mean()
    (torch.nn.functional.cross_entropy(out.logits, torch.tensor([1, 2])) + ratio_loss).backward()
    nav_grads = [p.grad for n, p in m.named_parameters() if ".nav." in n]
    assert nav_grads and all(g is not None for g in nav_grads)
    assert sum(float(g.abs().sum()) for g in nav_grads) > 0


def test_forced_ratio_selects_exactly_k_frames_per_video():
    m = build_afnet("r18", 10, 8, width=8).eval()
    m.set_forced_ratio(0.4)
    with torch.no_grad():
        out = m(torch.randn(3, 8, 3, 64, 64))
    for k in out.masks:
        assert k.view(3, 8).sum(1).tolist() == [3.0, 3.0, 3.0]  # round(0.4 * 8)


VARIANTS = [("afnet", {}), ("afnet_tsm", {}), ("afnet_soft", {}), ("afnet", {"rs": 0.5}), ("afnet", {"fusion": "add"})]


@pytest.mark.parametrize("backbone", ["r18", "r50", "mbv3", pytest.param("r34", marks=pytest.mark.slow),
                                      pytest.param("r101", marks=pytest.mark.slow)])
@pytest.mark.parametrize("method,extra", VARIANTS)
def test_variants_forward_any_size(backbone, method, extra):
    m = build_video_model(method, backbone, 5, 8, width=8, width_mult=0.25, **extra)
    focal_stride = 8 if backbone == "mbv3" else 4  # resolution of the first AF stage's focal branch
    for size in (64, 96):
        for train in (True, False):
            m.train(train)
            with torch.set_grad_enabled(train):
                out = m(torch.randn(2, 8, 3, size, size))
            assert out.logits.shape == (2, 5)
            assert len(out.masks) == m.num_masks
            if extra.get("rs"):
                assert len(out.spatial_masks) == m.num_masks
                assert out.spatial_masks[0].shape[-2:] == (size // focal_stride, size // focal_stride)
    assert m.uses_ratio_loss == (method != "afnet_soft")


@pytest.mark.parametrize("backbone", ["r18", "r34", "r50", "r101", "mbv3"])
def test_twelve_frames_every_backbone(backbone):
    """T=12, N=2, 96x96, eval (sliced) and train (masked), the default switches; r34 / r101 get their
    variant coverage here, their full variant grid is in the slow lane."""
    m = build_video_model("afnet_tsm", backbone, 5, 12, width=8, width_mult=0.25)
    for train in (False, True):
        m.train(train)
        with torch.set_grad_enabled(train):
            out = m(torch.randn(2, 12, 3, 96, 96))
        assert out.logits.shape == (2, 5)
        assert len(out.masks) == {"r18": 3, "r34": 10, "r50": 10, "r101": 27, "mbv3": 5}[backbone]
        assert all(k.shape == (24, 1, 1, 1) for k in out.masks)


@pytest.mark.parametrize("relu,bias", [(True, False), (False, True)])
def test_dynamic_fusion_upsamples_on_the_fly(relu, bias):
    """θ a + (1 - θ) f with a nearest-upsampled and θ = σ(W_b ReLU(W_a GAP(a + f))), SPEC §2.8."""
    from src.models.afnet.fusion import AddFusion, DynamicFusion

    fuse = DynamicFusion(32, bias=bias, relu=relu)
    torch.nn.init.normal_(fuse.fc1.weight, 0, 0.5)  # a θ far from 0.5, so a wrong blend shows
    a, f = torch.randn(4, 32, 7, 7), torch.randn(4, 32, 14, 14)
    up = torch.nn.functional.interpolate(a, size=(14, 14), mode="nearest")
    theta = torch.sigmoid(fuse.fc2(torch.relu(fuse.fc1((up + f).mean((2, 3))))))[..., None, None]
    want = theta * up + (1 - theta) * f
    torch.testing.assert_close(fuse(a, f), want.relu() if relu else want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(AddFusion(relu=False)(a, f), up + f)


def test_forced_ratios_average_exactly_r_per_mask_list():
    from src.models.afnet.af_resnet import forced_ratios

    for r, t, n in ((0.4, 12, 10), (0.25, 8, 3), (0.8, 12, 27), (1.0, 12, 10), (0.5, 8, 10)):
        ks = [round(x * t) for x in forced_ratios(r, t, n)]
        assert abs(sum(ks) - r * t * n) <= 0.5 and max(ks) - min(ks) <= 1
    assert [round(x * 12) for x in forced_ratios(0.4, 12, 10)] == [5, 5, 4, 5, 5, 5, 5, 4, 5, 5]
    m = build_afnet("r50", 10, 12, width=8).eval()
    m.set_forced_ratio(forced_ratios(0.4, 12, m.num_masks))
    with torch.no_grad():
        masks = m(torch.randn(1, 12, 3, 64, 64)).masks
    assert [int(k.sum()) for k in masks] == [5, 5, 4, 5, 5, 5, 5, 4, 5, 5]
    with pytest.raises(ValueError, match="forced ratios"):
        m.set_forced_ratio([0.5] * 3)
