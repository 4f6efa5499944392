"""AFNet models: parameter counts, shapes, mask counts, sliced = masked, gradients, dtypes, variants."""

import pytest
import torch

from src.models import build_video_model
from src.models.afnet import build_afnet
from tests.helpers import randomise


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
    """4.51 M at 174 classes: exactly the 4,507,169 parameters of the official checkpoint."""
    assert n_params(build_afnet("mbv3", 174, 12)) == 4_507_169


@pytest.mark.parametrize("backbone,masks", [("r18", 3), ("r34", 10), ("r50", 10), ("r101", 27), ("mbv3", 5)])
def test_mask_counts(backbone, masks):
    """Masks per forward (one per focal block); the forward pass itself is checked in test_twelve_frames."""
    assert build_afnet(backbone, 10, 2, width=8, width_mult=0.25).num_masks == masks


def test_stage_shapes_at_224():
    """1 video: AF-1/2/3 (T, 256, 28, 28), (T, 512, 14, 14), (T, 1024, 14, 14); stage 4 (T, 2048, 7, 7)."""
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
    """At 224: AF-2 focal at 28 / ample at 14 -> 14; AF-3 focal at 14 / ample at 7 -> 14; end 7."""
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


def masked_and_sliced(m, x):
    """m.features(x) (x: (N*T, 3, H, W)) on the masked, then on the sliced path: ((features, masks), ...)."""
    runs = []
    with torch.no_grad():
        for compute in ("masked", "sliced"):
            m.focal_compute = compute
            feats, masks, _ = m.features(x)
            runs.append((feats, masks))
    return runs


@pytest.mark.parametrize("backbone", ["r50", "r18", "mbv3"])
@pytest.mark.parametrize("shift", [False, True])
@pytest.mark.parametrize("mask_mode", ["output", "input"])
def test_sliced_equals_masked_on_every_frame(backbone, shift, mask_mode):
    if backbone == "mbv3" and not shift:
        pytest.skip("AF-MobileNetV3 is always shifted")
    m = randomise(build_afnet(backbone, 10, 4, shift=shift, width=8, width_mult=0.25, mask_mode=mask_mode)).eval()
    (fa, ma), (fb, mb) = masked_and_sliced(m, torch.randn(3 * 4, 3, 64, 64))
    sel = torch.stack([k.view(-1) for k in ma])
    assert 0.2 < sel.mean() < 0.8  # some frames selected, some skipped, at every block on average
    assert all(torch.equal(a, b) for a, b in zip(ma, mb))
    torch.testing.assert_close(fa, fb, rtol=0, atol=1e-5)  # per frame, (N*T, C)


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_sliced_equals_masked_when_no_frame_or_every_frame_is_selected(ratio):
    """The edge cases of the sliced input mode: no frame computed (all get F(0)), every frame computed (no F(0))."""
    m = randomise(build_afnet("r18", 10, 4, shift=True, width=8, mask_mode="input")).eval()
    m.set_forced_ratio(ratio)
    (fa, ma), (fb, mb) = masked_and_sliced(m, torch.randn(2 * 4, 3, 64, 64))
    assert all(float(k.mean()) == ratio for k in ma)
    torch.testing.assert_close(fa, fb, rtol=0, atol=1e-5)


def test_input_mode_differs_from_output_mode_on_skipped_frames():
    """F(0) is not zero with non-trivial BN statistics: the official input masking gives skipped frames a
    constant residual, which the sliced path reproduces only by filling in F(0)."""
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
    """θ a + (1 - θ) f with a nearest-upsampled and θ = σ(W_b ReLU(W_a GAP(a + f)))."""
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


# ---------------------------------------------------------------- dtypes, devices, host synchronisations

DTYPE_RUNS = {"fp32": (torch.float32, "autocast"), "bf16-autocast": (torch.bfloat16, "autocast"),
              "fp16-autocast": (torch.float16, "autocast"), "bf16-cast": (torch.bfloat16, "cast"),
              "fp16-cast": (torch.float16, "cast")}


def run_in_dtype(net, x, dtype, how, device_type="cpu"):
    """net(x) with the whole net and x cast to dtype ("cast"), or under autocast ("autocast"; fp32: plain)."""
    if how == "cast":
        return net.to(dtype)(x.to(dtype))
    with torch.autocast(device_type, dtype=dtype, enabled=dtype != torch.float32):
        return net(x)


def loss_of(out):
    loss = torch.nn.functional.cross_entropy(out.logits.float(), torch.arange(out.logits.shape[0]))
    if out.masks:
        loss = loss + torch.stack([(0.5 - m.float().mean()) ** 2 for m in out.masks]).mean()
    return loss


@pytest.mark.parametrize("run", list(DTYPE_RUNS))
@pytest.mark.parametrize("backbone", ["r18", "r50", "mbv3"])
@pytest.mark.parametrize("method", ["tsn", "tsm", "afnet", "afnet_tsm", "afnet_soft"])
def test_every_model_trains_and_evaluates_in_every_precision(method, backbone, run):
    """fp32, bf16 and fp16, under CPU autocast and with the whole model cast: a training step (masked, and for
    hard AFNet also sliced) has a finite loss and gradients, non-zero at the navigation (the head for TSN / TSM);
    an eval forward (sliced for AFNet) gives finite logits in the run's dtype and float32 masks."""
    dtype, how = DTYPE_RUNS[run]
    x = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    hard_af = method in ("afnet", "afnet_tsm")
    for compute in ("masked", "sliced") if hard_af else ("auto",):
        net = randomise(build_video_model(method, backbone, 2, 4, width=8, width_mult=0.25)).train()
        if hasattr(net, "focal_compute"):
            net.focal_compute = compute
        loss = loss_of(run_in_dtype(net, x, dtype, how))
        loss.backward()
        assert torch.isfinite(loss), compute
        grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}  # sliced: None where no
        assert all(torch.isfinite(g).all() for g in grads.values()), compute  # frame was selected
        watched = [g for n, g in grads.items() if (".nav." in n if "afnet" in method else n.startswith("head."))]
        assert watched and sum(float(g.float().abs().sum()) for g in watched) > 0, compute
    net.eval()
    if hasattr(net, "focal_compute"):
        net.focal_compute = "auto"
    with torch.no_grad():
        out = run_in_dtype(net, x, dtype, how)
    assert torch.isfinite(out.logits).all() and out.logits.dtype == dtype
    assert all(m.dtype == torch.float32 for m in out.masks)


@pytest.mark.parametrize("backbone", ["r50", "mbv3"])
@pytest.mark.parametrize("mask_mode", ["output", "input"])
def test_sliced_equals_masked_in_bfloat16(backbone, mask_mode):
    """Whole model in bfloat16 on CPU: the sliced path runs the same per-frame arithmetic on fewer frames, so it
    matches the masked path to bf16 rounding, allowed 1% of the features' largest magnitude (equal on this
    machine); the masks themselves are equal."""
    m = randomise(build_afnet(backbone, 10, 4, shift=True, width=8, width_mult=0.25, mask_mode=mask_mode),
                  seed=3).eval().to(torch.bfloat16)
    m.set_forced_ratio(0.5)  # masks away from ties, so bf16 rounding cannot flip a decision
    x = torch.randn(3 * 4, 3, 64, 64, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16)
    (fa, ma), (fb, mb) = masked_and_sliced(m, x)
    assert all(torch.equal(a, b) for a, b in zip(ma, mb))
    assert (fa.float() - fb.float()).abs().max() <= 0.01 * fa.float().abs().max()


class SyncCounter:
    """Counts calls of the tensor methods that wait for the device (copies to the host, data-dependent shapes)
    while active."""

    NAMES = ("item", "tolist", "cpu", "numpy", "nonzero", "__bool__", "__int__", "__float__", "__index__")

    def __init__(self, monkeypatch):
        self.calls: list[str] = []
        self.active = False
        for name in self.NAMES:
            real = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self.wrap(name, real))
        real_nonzero = torch.nonzero
        monkeypatch.setattr(torch, "nonzero", lambda *a, **k: self.record("torch.nonzero") or real_nonzero(*a, **k))

    def record(self, name: str) -> None:
        if self.active:
            self.calls.append(name)

    def wrap(self, name, real):
        def method(t, *args, **kwargs):
            self.record(name)
            return real(t, *args, **kwargs)
        return method


@pytest.mark.parametrize("backbone,stages", [("r50", 3), ("r18", 3), ("mbv3", 2)])
def test_plain_path_synchronises_once_per_af_stage(monkeypatch, backbone, stages):
    """The plain model path waits for the device only where the sliced path needs the selected frames' counts:
    once per AF stage (all of its masks together), never in a masked (training) forward."""
    net = randomise(build_video_model("afnet_tsm", backbone, 5, 4, width=8, width_mult=0.25))
    x = torch.randn(2, 4, 3, 64, 64)
    counter = SyncCounter(monkeypatch)
    for train, expected in ((False, ["tolist"] * stages), (True, [])):
        net.train(train)
        counter.calls.clear()
        counter.active = True
        with torch.set_grad_enabled(train):
            out = net(x)
        counter.active = False
        assert counter.calls == expected
        assert len(out.masks) == net.num_masks


def test_output_ratios_as_one_device_tensor():
    from src.models import VideoOutput

    masks = [torch.tensor([1.0, 0.0, 1.0, 1.0]).view(4, 1, 1, 1), torch.zeros(4, 1, 1, 1)]
    out = VideoOutput(torch.zeros(1, 3), masks, [torch.ones(4, 1, 2, 2)] * 2)
    torch.testing.assert_close(out.mask_ratios(), torch.tensor([0.75, 0.0]))
    assert out.ratios() == [0.75, 0.0] and out.spatial_ratios() == [1.0, 1.0]
    assert VideoOutput(torch.zeros(1, 3)).mask_ratios().shape == (0,)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("backbone", ["r50", "mbv3"])
@pytest.mark.parametrize("mask_mode", ["output", "input"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 0.03)])
def test_sliced_equals_masked_on_cuda(backbone, mask_mode, dtype, tol):
    """On CUDA: fp32 to 1e-4; bf16 (whole model cast) to 3% of the features' largest magnitude."""
    m = randomise(build_afnet(backbone, 10, 4, shift=True, width=16, width_mult=0.5, mask_mode=mask_mode), seed=1)
    m = m.eval().to("cuda", dtype)
    m.set_forced_ratio(0.5)
    x = torch.randn(3 * 4, 3, 64, 64, generator=torch.Generator().manual_seed(2)).to("cuda", dtype)
    (fa, ma), (fb, mb) = masked_and_sliced(m, x)
    assert all(torch.equal(a, b) for a, b in zip(ma, mb))
    assert (fa.float() - fb.float()).abs().max() <= tol * max(1.0, float(fa.float().abs().max()))


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("method", ["afnet", "afnet_tsm", "afnet_soft"])
def test_cuda_autocast_training_step(method, dtype):
    """A training step under CUDA autocast (the fusion's blend once crashed on mixed dtypes there): finite loss,
    gradients reaching the navigation."""
    net = randomise(build_video_model(method, "r50", 5, 4, width=8)).cuda().train()
    x = torch.randn(2, 4, 3, 64, 64, device="cuda")
    loss = loss_of(run_in_dtype(net, x, dtype, "autocast", "cuda"))
    loss.backward()
    assert torch.isfinite(loss)
    assert sum(float(p.grad.abs().sum()) for n, p in net.named_parameters() if ".nav." in n) > 0


@pytest.mark.gpu
@needs_cuda
def test_cuda_plain_path_synchronises_once_per_af_stage():
    """torch's own sync check on CUDA: an eval forward of AFNet-TSM-R50 synchronises at most once per AF stage
    (3), a masked training forward never."""
    import warnings

    net = build_video_model("afnet_tsm", "r50", 5, 4, width=8).cuda()
    x = torch.randn(2, 4, 3, 64, 64, device="cuda")
    for train, most in ((False, 3), (True, 0)):
        net.train(train)
        net(x)  # warm-up: allocations and kernel loads
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught, torch.set_grad_enabled(train):
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                net(x)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        assert len([w for w in caught if "synchroniz" in str(w.message)]) <= most
