"""src.models.inference: every rewrite keeps the plain model's numbers; the API moves, casts and compiles."""

import copy
import io

import pytest
import torch

from src.models import build_video_model
from src.models.afnet import build_afnet
from src.models.inference import model_input, prepare_for_inference
from src.models.inference.cpu import (
    CpuAFStage,
    FrameChunked,
    ShiftInPlace,
    ShortcutPool,
    VectorConv2d,
    add_frames_,
    copy_frames_,
    gather_shifted_frames,
    temporal_shift_,
)
from src.models.inference.gpu import DenseGroupsConv2d, SplitGroupsConv2d, rewrite_grouped_convs
from src.models.inference.onednn import PrepackedConv2d, prepack_available, prepack_convs
from src.models.inference.rewrites import conv_like, fold_batchnorm
from src.models.macs import profile_macs
from src.models.temporal_shift import gather_shifted, select_frames, temporal_shift
from tests.helpers import randomise

CL = torch.channels_last
MODELS = [("tsn", "r18"), ("tsm", "r50"), ("tsm", "mbv3"), ("afnet", "r18"), ("afnet_tsm", "r50"),
          ("afnet_tsm", "mbv3"), ("afnet_soft", "r18")]


def tiny(method, backbone, seed=0, **options):
    return randomise(build_video_model(method, backbone, 10, 4, width=8, width_mult=0.25, **options), seed).eval()


def features(net, x):
    """Per-frame features (N*T, C) of a TSN/TSM or AFNet model (its logits are tiny at initialisation)."""
    return net.features(x)[0] if hasattr(net, "stages") else net.trunk.features(x)


def assert_close_scaled(got, want, tol):
    """|got - want| <= tol * max(1, max |want|): a relative bound that also holds for near-zero features."""
    assert (got.float() - want.float()).abs().max() <= tol * max(1.0, float(want.float().abs().max()))


# ---------------------------------------------------------------- the whole rewrite, every model

@pytest.mark.parametrize("method,backbone", MODELS)
def test_cpu_fast_paths_equal_the_plain_path(method, backbone):
    """prepare_for_inference on CPU with the fast paths (fast_paths auto) against the same folded model without
    them (fast_paths off) and against the unfolded eval model (masked): the same features, to 1e-5 (fast paths)
    and 1e-4 (BN folding changes the rounding); the caller's clip is never written."""
    net = tiny(method, backbone)
    x = torch.randn(2 * 4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    clip = model_input(x)
    before = clip.clone()
    with torch.no_grad():
        if hasattr(net, "focal_compute"):
            net.focal_compute = "masked"
        want = features(net, x)
        net.focal_compute = "auto"
    plain = prepare_for_inference(copy.deepcopy(net), fast_paths="off")
    fast = prepare_for_inference(copy.deepcopy(net))
    assert plain.inference_rewrites.keys() == {"folded_bn"}
    assert fast.inference_rewrites["prepacked_convs"] > 0 or not prepack_available()
    with torch.inference_mode():
        got_plain, got_fast = features(plain, clip), features(fast, clip)
    assert_close_scaled(got_fast, got_plain, 1e-5)
    assert_close_scaled(got_plain, want, 1e-4)
    assert torch.equal(clip, before)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())


@pytest.mark.parametrize("backbone", ["r50", "r18", "mbv3"])
@pytest.mark.parametrize("mask_mode", ["output", "input"])
def test_cpu_af_stage_equals_the_masked_plain_path(backbone, mask_mode):
    """The CPU AF stage (lockstep order, in-place sums and shift, frame-wise gathers, fusion into the focal
    output) against the plain masked path, unfolded, in NCHW and channels-last: equal features also show that
    nothing overwrites the stage input before its last reader (the first ample block) has read it."""
    ref = randomise(build_afnet(backbone, 10, 4, shift=True, width=8, width_mult=0.25, mask_mode=mask_mode), 1)
    ref.eval().focal_compute = "masked"
    x = torch.randn(2 * 4, 3, 64, 64)
    with torch.no_grad():
        want, masks, _ = ref.features(x)
    sel = torch.stack([k.view(-1) for k in masks])
    assert 0.2 < sel.mean() < 0.8
    for channels_last in (False, True):
        fast = prepare_for_inference(copy.deepcopy(ref), fold_bn=False, channels_last=channels_last)
        fast.focal_compute = "sliced"
        assert all(isinstance(s, CpuAFStage) for s in fast.stages)
        with torch.inference_mode():
            got, got_masks, _ = fast.features(model_input(x, channels_last=channels_last))
        assert all(torch.equal(a, b) for a, b in zip(masks, got_masks))
        assert_close_scaled(got, want, 1e-5)


def test_rewritten_model_keeps_forced_ratios_masks_and_flops():
    """What the benchmark relies on: set_forced_ratio reaches the rewritten stages, and the FLOPs profile of the
    rewritten model equals the plain model's."""
    net = build_video_model("afnet_tsm", "r50", 10, 4, width=8)
    want = profile_macs(net, 4, input_size=64)
    fast = prepare_for_inference(copy.deepcopy(net))
    fast.set_forced_ratio(0.5)
    with torch.inference_mode():
        out = fast(model_input(torch.randn(1, 4, 3, 64, 64)))
    assert out.ratios() == [0.5] * fast.num_masks
    got = profile_macs(fast, 4, input_size=64)
    assert got.static == pytest.approx(want.static, rel=1e-9) and got.focal == pytest.approx(want.focal, rel=1e-9)


# ---------------------------------------------------------------- single rewrites

def test_fold_batchnorm_keeps_outputs_and_removes_every_bn():
    net = tiny("afnet_tsm", "mbv3")
    x = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        want = features(net, x.flatten(0, 1))
        folded = fold_batchnorm(net)
        got = features(net, x.flatten(0, 1))
    assert folded > 0 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert_close_scaled(got, want, 1e-4)
    with pytest.raises(RuntimeError, match="eval"):
        fold_batchnorm(net.train())


@pytest.mark.parametrize("channels_last", [False, True])
def test_frame_ops_match_plain_indexing(channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, 6, 6, generator=g)
    src = torch.randn(3, 16, 6, 6, generator=g)
    idx = torch.tensor([0, 3, 7])  # first frame, middle, last frame of the second 4-frame video
    xs, ss = (x.contiguous(memory_format=CL), src.contiguous(memory_format=CL)) if channels_last else (x, src)
    want = temporal_shift(x, 4).index_select(0, idx)
    torch.testing.assert_close(gather_shifted_frames(xs, idx, 4), want, rtol=0, atol=0)
    torch.testing.assert_close(gather_shifted(xs, idx, 4), want, rtol=0, atol=0)
    torch.testing.assert_close(select_frames(xs, idx), x.index_select(0, idx), rtol=0, atol=0)
    torch.testing.assert_close(copy_frames_(xs.clone(), idx, ss), x.clone().index_copy_(0, idx, src), rtol=0, atol=0)
    torch.testing.assert_close(add_frames_(xs.clone(), idx, ss), x.clone().index_add_(0, idx, src), rtol=0, atol=0)
    torch.testing.assert_close(temporal_shift_(xs.clone(), 4), temporal_shift(x, 4), rtol=0, atol=0)
    for out in (gather_shifted_frames(xs, idx, 4), gather_shifted(xs, idx, 4), select_frames(xs, idx)):
        assert out.is_contiguous(memory_format=CL) == channels_last


@pytest.mark.parametrize("method,backbone", [("tsm", "r50"), ("tsn", "r18"), ("afnet_tsm", "r50")])
def test_frame_chunked_stems_give_the_same_logits(method, backbone):
    """ResNet and AF-ResNet stems in chunks of 5 frames (chunks straddling videos), with the other CPU paths: the
    same logits; training mode runs the stem once."""
    net = tiny(method, backbone)
    clip = torch.randn(3, 4, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        want = net(clip).logits
    fast = prepare_for_inference(copy.deepcopy(net), fold_bn=False, channels_last=False, prepack=False,
                                 stem_chunk_frames=5)
    stems = [m for m in fast.modules() if isinstance(m, FrameChunked)]
    calls = []
    stems[0].module.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape[0]))
    with torch.inference_mode():
        got = fast(clip).logits
    assert len(stems) == 1 and calls == [5, 5, 2]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    fast.train()
    fast(clip)
    assert calls[3:] == [12]


@pytest.mark.parametrize("method,backbone", [("tsm", "r50"), ("afnet_tsm", "r18"), ("tsm", "mbv3")])
def test_shift_in_place_equals_the_copying_shift(method, backbone):
    net = tiny(method, backbone)
    if hasattr(net, "focal_compute"):
        net.focal_compute = "masked"
    clip = torch.randn(2, 4, 3, 64, 64)
    with torch.inference_mode():
        want = features(net, clip.flatten(0, 1))
    fast = prepare_for_inference(copy.deepcopy(net), fold_bn=False, channels_last=False, prepack=False)
    assert fast.inference_rewrites["shift_in_place"] > 0
    assert all(isinstance(m.block.shift_segments, int) for m in fast.modules() if isinstance(m, ShiftInPlace))
    with torch.inference_mode():
        torch.testing.assert_close(features(fast, clip.flatten(0, 1)), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("channels_last", [False, True])
def test_shortcut_pool_equals_avg_pool(channels_last):
    x = torch.randn(3, 6, 9, 8, generator=torch.Generator().manual_seed(5))
    if channels_last:
        x = x.contiguous(memory_format=CL)
    out = ShortcutPool(2)(x)
    torch.testing.assert_close(out, torch.nn.AvgPool2d(3, 2, 1)(x), rtol=1e-5, atol=1e-6)
    assert out.shape == (3, 6, 5, 4) and out.is_contiguous(memory_format=CL) == channels_last
    assert not list(ShortcutPool(2).state_dict())


@pytest.mark.parametrize("groups,bias", [(1, False), (1, True), (4, True), (4, False)])
def test_vector_conv_equals_conv2d_on_pooled_features(groups, bias):
    ref = torch.nn.Conv2d(8, 12, 1, groups=groups, bias=bias)
    fast = conv_like(VectorConv2d, ref)
    assert fast.weight is ref.weight
    for x in (torch.randn(5, 8, 1, 1), torch.randn(5, 8, 3, 2), torch.randn(5, 8, 1, 1).contiguous(memory_format=CL)):
        torch.testing.assert_close(fast(x), ref(x), rtol=1e-5, atol=1e-6)
    padded = torch.nn.Conv2d(8, 12, 1, padding=1, groups=groups)
    x = torch.randn(5, 8, 1, 1)
    torch.testing.assert_close(conv_like(VectorConv2d, padded)(x), padded(x))  # (5, 12, 3, 3): a convolution


needs_onednn = pytest.mark.skipif(not prepack_available(), reason="this torch build has no oneDNN prepacking")


def packed_shapes(net) -> int:
    """How many (conv, input shape) pairs hold a packed weight."""
    return sum(len(m.__dict__.get("_packed", {})) - ("stamp" in m.__dict__.get("_packed", {}))
               for m in net.modules() if isinstance(m, PrepackedConv2d))


@needs_onednn
def test_prepacked_convs_keep_outputs_and_pack_once_per_shape():
    net = fold_and_cl(tiny("afnet_tsm", "r50"))
    x = torch.randn(4, 3, 64, 64).contiguous(memory_format=CL)
    with torch.inference_mode():
        want = features(net, x)
        n = prepack_convs(net)
        got = features(net, x)
        packed = packed_shapes(net)
        again = features(net, x)
    assert n > 0 and packed > 0 and packed_shapes(net) == packed  # the second forward packs nothing new
    assert_close_scaled(got, want, 1e-5)
    torch.testing.assert_close(again, got, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="eval"):
        prepack_convs(net.train())


def fold_and_cl(net):
    fold_batchnorm(net)
    return net.to(memory_format=CL)


@needs_onednn
def test_prepacked_conv_repacks_after_a_weight_change_and_falls_back_elsewhere():
    """A new state dict (or any in-place update) is never served stale packed weights; NCHW input and autograd
    take F.conv2d, with gradients; a copy packs its own; a refusing private op falls back to F.conv2d."""
    g = torch.Generator().manual_seed(0)
    conv = conv_like(PrepackedConv2d, torch.nn.Conv2d(8, 16, 3, padding=1, groups=2)).eval()
    other = torch.nn.Conv2d(8, 16, 3, padding=1, groups=2)
    x = torch.randn(2, 8, 9, 9, generator=g).contiguous(memory_format=CL)
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
    torch.save(conv, io.BytesIO())
    with torch.inference_mode():
        torch.testing.assert_close(twin(x), got, rtol=0, atol=0)
        assert packed_shapes(twin) == 1
    twin.__dict__["_packed"] = {"stamp": None}
    twin.packed_weight = lambda x: (_ for _ in ()).throw(RuntimeError("unsupported"))
    with torch.inference_mode():
        torch.testing.assert_close(twin(x), got, rtol=1e-5, atol=1e-6)
    assert twin.__dict__["_refused"]


@pytest.mark.parametrize("how", ["split", "dense"])
def test_grouped_conv_rewrites_equal_the_grouped_conv(how):
    """The GPU option for grouped convs (run here on CPU): the same values and parameter gradients; depthwise
    and dense convs are left alone; the FLOPs counter still counts the grouped MACs."""
    net = tiny("afnet", "r50")
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        want = features(net, x)
    fast = copy.deepcopy(net)
    n = rewrite_grouped_convs(fast, how)
    cls = SplitGroupsConv2d if how == "split" else DenseGroupsConv2d
    assert n == sum(1 for m in net.modules() if type(m) is torch.nn.Conv2d and 1 < m.groups < m.in_channels) > 0
    assert sum(isinstance(m, cls) for m in fast.modules()) == n
    with torch.no_grad():
        assert_close_scaled(features(fast, x), want, 1e-5)
    conv = torch.nn.Conv2d(8, 6, 3, padding=1, groups=2)
    twin = conv_like(cls, copy.deepcopy(conv))
    xa = torch.randn(2, 8, 5, 5).requires_grad_()
    xb = xa.detach().clone().requires_grad_()
    conv(xa).square().sum().backward()
    twin(xb).square().sum().backward()
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(twin.weight.grad, conv.weight.grad, rtol=1e-5, atol=1e-4)
    assert profile_macs(fast, 4, input_size=64).focal == pytest.approx(profile_macs(net, 4, input_size=64).focal)


# ---------------------------------------------------------------- the API

def test_prepare_for_inference_casts_moves_and_validates():
    net = tiny("afnet_tsm", "r18")
    bf16 = prepare_for_inference(copy.deepcopy(net), dtype=torch.bfloat16)
    clip = torch.randn(2, 4, 3, 64, 64)
    x = model_input(clip, "cpu", torch.bfloat16)
    assert x.shape == (8, 3, 64, 64) and x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=CL)
    assert model_input(clip, channels_last=False).is_contiguous()
    with torch.inference_mode():
        out = bf16(x)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.logits).all() and not bf16.training
    with pytest.raises(TypeError, match="grouped_convs"):
        prepare_for_inference(copy.deepcopy(net), grouped_convs="split")  # a CUDA option on the CPU
    with pytest.raises(TypeError, match="prepack"):
        prepare_for_inference(copy.deepcopy(net), fast_paths="off", prepack=False)
    with pytest.raises(ValueError, match="fast_paths"):
        prepare_for_inference(copy.deepcopy(net), fast_paths="fast")


def test_fast_paths_switch_comes_from_the_model_config():
    from tests.helpers import compose_train

    net = build_video_model("tsm", "r18", 10, 4, width=8, fast_paths="off")
    assert net.fast_paths == "off"
    assert prepare_for_inference(net).inference_rewrites == {"folded_bn": net.inference_rewrites["folded_bn"]}
    with pytest.raises(ValueError, match="fast_paths"):
        build_video_model("tsm", "r18", 10, 4, fast_paths="on")
    for model in ("tsn", "tsm", "afnet", "afnet_tsm", "afnet_soft"):
        assert compose_train([f"model={model}"]).model.fast_paths == "auto"


def test_compile_option_and_warm_up():
    """compile= hands the rewritten model to torch.compile (here with the eager backend: no compiler needed);
    `example` runs it once and reports the seconds."""
    net = tiny("afnet_tsm", "r18")
    x = model_input(torch.randn(1, 4, 3, 64, 64))
    with torch.inference_mode():
        want = prepare_for_inference(copy.deepcopy(net))(x).logits
    compiled = prepare_for_inference(copy.deepcopy(net), compile={"backend": "eager"}, example=x)
    assert compiled.warmup_seconds > 0
    compiled.set_forced_ratio(None)  # the model's own methods stay reachable
    with torch.inference_mode():
        torch.testing.assert_close(compiled(x).logits, want, rtol=1e-5, atol=1e-7)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 0.03)])
@pytest.mark.parametrize("method,backbone", [("tsm", "r50"), ("afnet_tsm", "r50"), ("afnet_tsm", "mbv3")])
def test_cuda_rewrites_equal_the_plain_path(method, backbone, dtype, tol):
    """prepare_for_inference on CUDA (fp32 to 1e-4, bf16 to 3% of the largest feature), each grouped-conv option
    against the model with no fast paths; the clip comes to the device through model_input."""
    net = tiny(method, backbone)
    clip = model_input(torch.randn(2, 4, 3, 64, 64), "cuda", dtype)
    plain = prepare_for_inference(copy.deepcopy(net), "cuda", dtype, fast_paths="off")
    with torch.inference_mode():
        want = features(plain, clip)
        for how in ("native", "split", "dense"):
            fast = prepare_for_inference(copy.deepcopy(net), "cuda", dtype, grouped_convs=how)
            assert_close_scaled(features(fast, clip), want, tol)
