"""Inference speed paths keep the numbers: BN folding, channels-last frame gathers, in-place sums."""

import copy
import io

import pytest
import torch

from src.models import build_video_model
from src.models.afnet import build_afnet
from src.models.afnet.fusion import blend_upsampled
from src.models.frame_ops import add_frames_, copy_frames_, gather_shifted, select_frames
from src.models.inference import (
    PrepackedConv2d,
    channels_last_clip,
    fold_batchnorm,
    mkldnn_prepack_available,
    prepack_convs,
    prepare_for_inference,
)
from src.models.temporal_shift import temporal_shift
from tests.test_afnet import randomise

CL = torch.channels_last


@pytest.mark.parametrize("channels_last", [False, True])
def test_frame_ops_match_plain_indexing(channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, 6, 6, generator=g)
    src = torch.randn(3, 16, 6, 6, generator=g)
    idx = torch.tensor([0, 3, 7])  # first frame, middle, last frame of the second 4-frame video
    xs, ss = (x.contiguous(memory_format=CL), src.contiguous(memory_format=CL)) if channels_last else (x, src)
    torch.testing.assert_close(select_frames(xs, idx), x.index_select(0, idx), rtol=0, atol=0)
    torch.testing.assert_close(gather_shifted(xs, idx, 4), temporal_shift(x, 4).index_select(0, idx), rtol=0, atol=0)
    torch.testing.assert_close(copy_frames_(xs.clone(), idx, ss), x.clone().index_copy_(0, idx, src), rtol=0, atol=0)
    torch.testing.assert_close(add_frames_(xs.clone(), idx, ss), x.clone().index_add_(0, idx, src), rtol=0, atol=0)
    if channels_last:
        assert select_frames(xs, idx).is_contiguous(memory_format=CL)
        assert gather_shifted(xs, idx, 4).is_contiguous(memory_format=CL)


@pytest.mark.parametrize("channels_last", [False, True])
def test_blend_upsampled_in_place_equals_reference(channels_last):
    f, a = torch.randn(2, 8, 6, 10), torch.randn(2, 8, 3, 5)
    want = f + torch.nn.functional.interpolate(a, size=(6, 10), mode="nearest")
    if channels_last:
        f, a = f.contiguous(memory_format=CL), a.contiguous(memory_format=CL)
    torch.testing.assert_close(blend_upsampled(f, a), want, rtol=0, atol=0)
    out = blend_upsampled(f, a, inplace=True)
    assert out.data_ptr() == f.data_ptr()
    torch.testing.assert_close(out, want, rtol=0, atol=0)


@pytest.mark.parametrize("method,backbone", [("tsm", "r50"), ("afnet_tsm", "r50"), ("afnet", "r18"),
                                             ("afnet_tsm", "mbv3"), ("tsm", "mbv3")])
def test_fold_batchnorm_keeps_outputs_and_removes_every_bn(method, backbone):
    net = randomise(build_video_model(method, backbone, num_classes=10, num_segments=4)).eval()
    x = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        want = net(x).logits
        folded = fold_batchnorm(net)
        got = net(x).logits
    assert folded > 0 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError, match="eval"):
        fold_batchnorm(net.train())


needs_mkldnn = pytest.mark.skipif(not mkldnn_prepack_available(), reason="this torch build has no oneDNN")


def packed_shapes(net) -> int:
    """How many (conv, input shape) pairs hold a packed weight."""
    return sum(len(m.__dict__.get("_packed", {})) - ("stamp" in m.__dict__.get("_packed", {}))
               for m in net.modules() if isinstance(m, PrepackedConv2d))


@needs_mkldnn
@pytest.mark.parametrize("method,backbone", [("tsm", "r50"), ("afnet_tsm", "r50"), ("afnet", "r18"),
                                             ("afnet_tsm", "mbv3")])
def test_prepacked_convs_keep_outputs_and_pack_once_per_shape(method, backbone):
    net = randomise(build_video_model(method, backbone, num_classes=10, num_segments=4)).eval()
    fold_batchnorm(net)
    net = net.to(memory_format=CL)
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=CL)
    with torch.inference_mode():
        want = net(x).logits
        n = prepack_convs(net)
        got = net(x).logits
        packed = packed_shapes(net)
        again = net(x).logits
    assert n > 0 and packed > 0 and packed_shapes(net) == packed  # the second forward packs nothing new
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(again, got, rtol=0, atol=0)
    # the navigation heads keep their matrix-product forward
    assert not any(type(m).__name__ == "VectorConv2d" and isinstance(m, PrepackedConv2d) for m in net.modules())
    with pytest.raises(RuntimeError, match="eval"):
        prepack_convs(net.train())


@needs_mkldnn
def test_prepare_for_inference_keeps_the_eval_outputs():
    """What make bench and src.eval time is the eval model, rewritten: BN folded, channels-last, prepacked."""
    net = randomise(build_video_model("afnet_tsm", "r50", num_classes=10, num_segments=4)).eval()
    clip = torch.randn(1, 4, 3, 64, 64)
    with torch.inference_mode():
        want = net(clip).logits
        fast = prepare_for_inference(net)
        got = fast(channels_last_clip(clip)).logits
    assert channels_last_clip(clip).shape == (4, 3, 64, 64) and channels_last_clip(clip).is_contiguous(memory_format=CL)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, PrepackedConv2d) for m in fast.modules())
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method,backbone", [("tsm", "r50"), ("tsn", "r18"), ("afnet_tsm", "r50")])
def test_frame_chunked_stem_gives_the_same_logits_in_eval_only(method, backbone):
    """With `stem_chunk_frames` set (prepare_for_inference sets 4) the stems run in chunks: bit-equal logits for
    3 videos of 4 frames in chunks of 5 (chunks that straddle videos). A training-mode forward ignores the setting
    (BN uses batch statistics), and it works after inference-mode forwards (cached constants such as the ResNet-D
    pool's kernel must not be inference tensors)."""
    from src.models.inference import set_stem_chunk_frames

    net = randomise(build_video_model(method, backbone, num_classes=10, num_segments=4, width=8)).eval()
    clip = torch.randn(3, 4, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    calls = []
    stem_owner = net.trunk if hasattr(net, "trunk") else net
    if isinstance(stem_owner.stem, torch.nn.Module):  # AF-ResNet: an nn.Sequential
        stem_owner.stem.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[0]))
    else:  # ResNet: a method
        stem = stem_owner.stem
        stem_owner.stem = lambda x: calls.append(x.shape[0]) or stem(x)
    with torch.inference_mode():
        want = net(clip).logits
        assert calls == [12] and set_stem_chunk_frames(net, 5) == 1
        got = net(clip).logits
    assert calls[1:] == [5, 5, 2]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    net.train()
    net(clip)
    assert calls[4:] == [12]


@needs_mkldnn
def test_prepacked_conv_repacks_after_a_weight_change_and_falls_back_elsewhere():
    """A new state dict (or any in-place update) is never served stale packed weights; NCHW input and autograd
    take F.conv2d, with gradients."""
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(8, 16, 3, padding=1, groups=2).eval()
    other = torch.nn.Conv2d(8, 16, 3, padding=1, groups=2)
    x = torch.randn(2, 8, 9, 9, generator=g).contiguous(memory_format=CL)
    prepack_convs(conv)
    with torch.inference_mode():
        conv(x)
        conv.load_state_dict(other.state_dict())
        got = conv(x)
    torch.testing.assert_close(got, other(x).detach(), rtol=1e-5, atol=1e-6)
    plain = torch.randn(2, 8, 9, 9, generator=g)
    with torch.inference_mode():
        assert packed_shapes(conv) == 1
        torch.testing.assert_close(conv(plain), other(plain).detach(), rtol=1e-5, atol=1e-6)
        assert packed_shapes(conv) == 1  # NCHW took F.conv2d
    xg = x.clone().requires_grad_()
    conv(xg).sum().backward()
    assert xg.grad is not None and conv.weight.grad is not None
    twin = copy.deepcopy(conv)  # after use: the packed weights stay behind, the copy packs its own
    buf = io.BytesIO()
    torch.save(conv, buf)
    with torch.inference_mode():
        torch.testing.assert_close(twin(x), got, rtol=0, atol=0)
        assert packed_shapes(twin) == 1


@pytest.mark.parametrize("backbone", ["r50", "r18", "mbv3"])
def test_fast_sliced_inference_equals_masked_reference(backbone):
    """Folded BN + channels-last + inference mode (in-place sums) against the plain masked path."""
    ref = randomise(build_afnet(backbone, 10, 4, shift=True, width=8, width_mult=0.25), seed=1).eval()
    fast = randomise(build_afnet(backbone, 10, 4, shift=True, width=8, width_mult=0.25), seed=1).eval()
    fast.load_state_dict(ref.state_dict())
    ref.focal_compute, fast.focal_compute = "masked", "sliced"
    fold_batchnorm(fast)
    fast = fast.to(memory_format=CL)
    x = torch.randn(2 * 4, 3, 64, 64)
    x_cl = x.contiguous(memory_format=CL)
    before = x_cl.clone()
    with torch.no_grad():
        fa, ma, _ = ref.features(x)
    with torch.inference_mode():
        fb, mb, _ = fast.features(x_cl)
    sel = torch.stack([k.view(-1) for k in ma])
    assert 0.2 < sel.mean() < 0.8
    assert all(torch.equal(a, b) for a, b in zip(ma, mb))
    torch.testing.assert_close(fb, fa, rtol=1e-4, atol=1e-4)
    assert torch.equal(x_cl, before)  # the caller's input is never written


@pytest.mark.parametrize("backbone", ["r18", "r50"])
def test_stage_input_shared_with_ample_branch_is_not_overwritten(backbone):
    """The first focal block shares its input with the ample branch and the navigation: no in-place sum
    writes it before they read it. Only the first ample block (the last reader) may shift it in place."""
    m = randomise(build_afnet(backbone, 10, 4, shift=True, width=8), seed=2).eval()
    m.focal_compute = "sliced"
    seen = {}
    stage = m.stages[0]
    stage.register_forward_pre_hook(lambda mod, args: seen.update(x=args[0].clone()))
    stage.nav[0].register_forward_pre_hook(lambda mod, args: seen.update(nav=args[0].clone()))
    stage.ample[0].register_forward_pre_hook(lambda mod, args: seen.update(ample=args[0].clone()))
    with torch.inference_mode():
        m.features(torch.randn(8, 3, 64, 64))
    assert torch.equal(seen["nav"], seen["x"]) and torch.equal(seen["ample"], seen["x"])
    assert stage.ample[0].shift_in_place and not any(b.shift_in_place for b in stage.ample[1:])


def assert_same_outputs_and_grads(fn, reference, inputs: tuple, atol: float, params: bool = False) -> None:
    """fn and reference give the same output and input gradients under a non-uniform upstream gradient;
    with `params` (both nn.Modules with the same parameters) also the same parameter gradients."""
    results = []
    for f in (fn, reference):
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        if params:
            f.zero_grad()
        out = f(*leaves)
        (out * torch.arange(out.numel()).view_as(out)).sum().backward()
        results.append((out.detach(), *[t.grad for t in leaves], *([p.grad for p in f.parameters()] if params else [])))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=atol)


@pytest.mark.parametrize("channels_last", [False, True])
def test_frame_gated_add_gradients_equal_autograd(channels_last):
    from src.models.afnet.blocks import frame_gated_add

    g = torch.Generator().manual_seed(3)
    skip, f = torch.randn(4, 6, 5, 5, generator=g), torch.randn(4, 6, 5, 5, generator=g)
    gate = torch.tensor([1.0, 0.0, 1.0, 0.3]).view(4, 1, 1, 1)
    if channels_last:
        skip, f = skip.contiguous(memory_format=CL), f.contiguous(memory_format=CL)
    assert_same_outputs_and_grads(frame_gated_add, lambda s, m, x: s + m * x, (skip, gate, f), atol=1e-4)
    gate64 = gate.double().requires_grad_()
    torch.autograd.gradcheck(frame_gated_add, (skip.double().requires_grad_(), gate64, f.double().requires_grad_()))


@pytest.mark.parametrize("gate", [[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_hard_gated_sum_into_the_residual_equals_autograd(channels_last, relu, gate):
    """With a hard gate and a residual output handed over, act(skip + m F) is written into F's memory, and
    the values and gradients (skip, m, F) are those of the plain expression."""
    from src.models.afnet.blocks import frame_gated_add

    act = torch.relu if relu else (lambda y: y)
    g = torch.Generator().manual_seed(6)
    skip, f = torch.randn(4, 6, 5, 5, generator=g), torch.randn(4, 6, 5, 5, generator=g)
    m = torch.tensor(gate).view(4, 1, 1, 1)
    if channels_last:
        skip, f = skip.contiguous(memory_format=CL), f.contiguous(memory_format=CL)
    written = []

    def fused(s, m, f):
        fresh = f * 1.0  # a residual output: not a leaf, nothing else reads it
        out = frame_gated_add(s, m, fresh, relu, own_f=True)
        written.append(out.data_ptr() == fresh.data_ptr())
        return out

    assert_same_outputs_and_grads(fused, lambda s, m, x: act(s + m * x), (skip, m, f), atol=1e-4)
    assert all(written)
    dbl = tuple(t.double().requires_grad_() for t in (skip, m, f))
    torch.autograd.gradcheck(fused, dbl)


def test_masked_training_gradients_equal_with_and_without_the_in_place_gated_sum(monkeypatch):
    """A masked-path training forward and backward of AF-ResNet-50 (Gumbel masks, some frames skipped) gives the
    same loss and parameter gradients whether the focal sums are built in place or by plain autograd."""
    import src.models.afnet.blocks as blocks

    net = randomise(build_video_model("afnet", "r50", num_classes=10, num_segments=4, width=8,
                                      focal_compute="masked"))
    net.train()
    clip = torch.randn(2, 4, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    results = []
    for fused in (True, False):
        monkeypatch.setattr(blocks, "is_hard_frame_gate", blocks.is_hard_frame_gate if fused else lambda g: False)
        copy_ = copy.deepcopy(net)
        torch.manual_seed(8)  # the same Gumbel noise
        out = copy_(clip)
        masks = torch.cat([m.view(-1) for m in out.masks])
        loss = out.logits.logsumexp(1).sum() + masks.mean()
        loss.backward()
        results.append((loss.detach(), masks.detach(), {n: p.grad for n, p in copy_.named_parameters()}))
    (l1, m1, g1), (l2, m2, g2) = results
    assert 0 < m1.mean() < 1  # some frames skipped, some selected
    torch.testing.assert_close(m1, m2, rtol=0, atol=0)
    torch.testing.assert_close(l1, l2, rtol=1e-6, atol=1e-6)
    assert g1.keys() == g2.keys()
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_blend2x_gradients_equal_autograd(channels_last, relu):
    from src.models.afnet.fusion import Blend2x

    act = torch.relu if relu else (lambda y: y)
    up = lambda a, f: torch.nn.functional.interpolate(a, size=f.shape[-2:], mode="nearest")  # noqa: E731
    g = torch.Generator().manual_seed(4)
    f, a, th = torch.randn(2, 3, 6, 8, generator=g), torch.randn(2, 3, 3, 4, generator=g), torch.rand(2, 3, 1, 1)
    if channels_last:
        f, a = f.contiguous(memory_format=CL), a.contiguous(memory_format=CL)
    assert_same_outputs_and_grads(lambda f, a, t: Blend2x.apply(f, a, t, relu),
                                  lambda f, a, t: act(t * up(a, f) + (1 - t) * f), (f, a, th), atol=1e-3)
    torch.autograd.gradcheck(lambda *x: Blend2x.apply(*x, relu), tuple(x.double().requires_grad_() for x in (f, a, th)))


@pytest.mark.parametrize("method,backbone",
                         [("tsm", "r50"), ("tsm", "r18"), ("afnet_tsm", "r50"), ("afnet_tsm", "r18")])
def test_in_place_shift_without_autograd_equals_the_copying_shift(method, backbone):
    from src.models.temporal_shift import temporal_shift, temporal_shift_

    x = torch.randn(8, 16, 3, 3)
    torch.testing.assert_close(temporal_shift_(x.clone(), 4), temporal_shift(x, 4), rtol=0, atol=0)
    net = randomise(build_video_model(method, backbone, num_classes=10, num_segments=4, width=8)).eval()
    if hasattr(net, "focal_compute"):
        net.focal_compute = "masked"
    clip = torch.randn(2, 4, 3, 64, 64)
    before = clip.clone()
    want = net(clip).logits.detach()  # autograd on: every shift copies
    with torch.inference_mode():
        got = net(clip).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(clip, before)


@pytest.mark.parametrize("channels_last", [False, True])
def test_pools_equal_their_torch_parents_forward_and_backward(channels_last):
    """ShortcutPool (depthwise conv) = nn.AvgPool2d(3, 2, 1); GlobalAvgPool (view gradient) = mean over H, W,
    also when its input has another consumer whose gradient it joins; both count as pools for the FLOPs."""
    from src.models.flops import layer_macs
    from src.models.layers import GlobalAvgPool, ShortcutPool

    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, 6, 9, 8, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=CL)
    assert_same_outputs_and_grads(ShortcutPool(2), torch.nn.AvgPool2d(3, 2, 1), (x,), atol=1e-5)
    out = ShortcutPool(2)(x)
    assert out.shape == (3, 6, 5, 4) and out.is_contiguous(memory_format=CL) == channels_last
    assert layer_macs(ShortcutPool(2), x, out) == out.numel() * 9
    assert not list(ShortcutPool(2).state_dict()) and not list(GlobalAvgPool().state_dict())
    w = torch.randn(3, 6, 9, 8, generator=g)
    assert_same_outputs_and_grads(lambda t: GlobalAvgPool()(t) * 3 + (t * w).sum((2, 3), keepdim=True),
                                  lambda t: t.mean((2, 3), keepdim=True) * 3 + (t * w).sum((2, 3), keepdim=True),
                                  (x,), atol=1e-5)
    assert layer_macs(GlobalAvgPool(), x, GlobalAvgPool()(x)) == x.numel()


@pytest.mark.parametrize("bias", [False, True])
def test_grouped_pointwise_conv_equals_conv2d_with_gradients(bias):
    """The batched-matmul grouped 1x1 conv (training, NCHW) = nn.Conv2d, values and gradients; the factory
    gives it to grouped 1x1 stride-1 convs only; channels-last input takes the usual conv."""
    from src.models.layers import GroupedPointwiseConv2d, conv2d

    torch.manual_seed(6)
    fast, ref = conv2d(8, 6, 1, groups=2, bias=bias), torch.nn.Conv2d(8, 6, 1, groups=2, bias=bias)
    fast.matmul_min_pixels = 1  # the product path on this small map (by default from 56² on, except on AVX2)
    assert type(fast) is GroupedPointwiseConv2d and fast.weight.shape == ref.weight.shape
    for plain in (conv2d(8, 6, 1), conv2d(8, 8, 3, padding=1, groups=2), conv2d(8, 6, 1, 2, groups=2)):
        assert type(plain) is torch.nn.Conv2d
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(3, 8, 5, 7)
    for inp in (x, x.contiguous(memory_format=CL)):
        a, b = inp.clone().requires_grad_(), inp.clone().requires_grad_()
        ya, yb = fast(a), ref(b)
        w = torch.randn_like(ya)
        (ya * w).sum().backward()
        (yb * w).sum().backward()
        torch.testing.assert_close(ya, yb, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast.weight.grad, ref.weight.grad, rtol=1e-5, atol=1e-5)
        if bias:
            torch.testing.assert_close(fast.bias.grad, ref.bias.grad, rtol=1e-5, atol=1e-5)
        fast.zero_grad(), ref.zero_grad()


def test_grouped_pointwise_conv_takes_the_product_from_matmul_min_pixels_on(monkeypatch):
    """Training NCHW input of H·W >= matmul_min_pixels runs as the batched product, smaller maps (and
    channels-last or no-grad input) as oneDNN's convolution."""
    from src.models.layers import GroupedPointwiseConv2d

    calls = []
    real = torch.nn.Conv2d._conv_forward
    monkeypatch.setattr(torch.nn.Conv2d, "_conv_forward", lambda self, *a: calls.append(1) or real(self, *a))
    conv = GroupedPointwiseConv2d(8, 6, 1, groups=2, bias=False)
    conv.matmul_min_pixels = 6 * 6
    for size, grad, fmt, used in ((6, True, torch.contiguous_format, False), (5, True, torch.contiguous_format, True),
                                  (6, False, torch.contiguous_format, True), (6, True, CL, True)):
        calls.clear()
        with torch.set_grad_enabled(grad):
            conv(torch.randn(2, 8, size, size).contiguous(memory_format=fmt))
        assert bool(calls) is used, (size, grad, fmt)


def test_grouped_pointwise_product_threshold_follows_the_cpu_isa():
    """AVX2: the product at every map size; AVX-512 (and ISAs not measured): from 56² on; a new layer takes
    the rule of the ISA torch reports here."""
    from src.models.layers import GroupedPointwiseConv2d, matmul_min_pixels_for

    assert matmul_min_pixels_for("AVX2") == 0
    assert matmul_min_pixels_for("AVX512") == matmul_min_pixels_for("DEFAULT") == 56 * 56
    conv = GroupedPointwiseConv2d(8, 6, 1, groups=2, bias=False)
    assert conv.matmul_min_pixels == matmul_min_pixels_for(torch.backends.cpu.get_cpu_capability())


@pytest.mark.parametrize("groups,bias", [(1, False), (1, True), (4, True), (4, False)])
def test_vector_conv_equals_conv2d_on_pooled_features_with_gradients(groups, bias):
    """VectorConv2d (the navigation's 1x1 convs as matrix products on (B, C, 1, 1)) = nn.Conv2d, values and
    gradients, dense and grouped; a spatial input takes the usual conv; the FLOPs counter sees a Conv2d."""
    from src.models.flops import layer_macs
    from src.models.layers import VectorConv2d

    torch.manual_seed(7)
    fast, ref = VectorConv2d(8, 12, 1, groups=groups, bias=bias), torch.nn.Conv2d(8, 12, 1, groups=groups, bias=bias)
    ref.load_state_dict(fast.state_dict())
    for x in (torch.randn(5, 8, 1, 1), torch.randn(5, 8, 3, 2), torch.randn(5, 8, 1, 1).contiguous(memory_format=CL)):
        assert_same_outputs_and_grads(fast, ref, (x,), atol=1e-5, params=True)
    out = fast(torch.randn(5, 8, 1, 1))
    assert out.shape == (5, 12, 1, 1) and layer_macs(fast, None, out) == 5 * 12 * 8 // groups
    padded = VectorConv2d(8, 12, 1, padding=1, groups=groups)
    padded_ref = torch.nn.Conv2d(8, 12, 1, padding=1, groups=groups)
    padded_ref.load_state_dict(padded.state_dict())
    x = torch.randn(5, 8, 1, 1)
    torch.testing.assert_close(padded(x), padded_ref(x))  # (5, 12, 3, 3): the usual convolution
