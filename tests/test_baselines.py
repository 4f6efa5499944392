"""TSN / TSM baselines, their ResNet / MobileNetV3 trunks and the model factory."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from src.models import BACKBONES, METHODS, VideoOutput, build_video_model
from src.models.mobilenetv3 import InvertedResidual, MobileNetV3
from src.models.resnet import ResNet
from src.models.temporal_shift import temporal_shift

T, N, SIZE, K = 8, 2, 64, 5
TINY = {"width": 8, "width_mult": 0.25}


def differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Relative comparison: fresh heads give logits of order 1e-10."""
    return not torch.allclose(a, b, rtol=1e-3, atol=0)


def tiny(method: str, backbone: str, **kw) -> nn.Module:
    return build_video_model(method, backbone, K, T, **TINY, **kw).eval()


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("method", ["tsn", "tsm"])
def test_output_shapes(method, backbone):
    net = tiny(method, backbone)
    with torch.no_grad():
        out = net(torch.randn(N, T, 3, SIZE, SIZE))
    assert isinstance(out, VideoOutput)
    assert out.logits.shape == (N, K) and out.masks == [] and out.spatial_masks == []
    assert net.num_segments == T and net.uses_ratio_loss is False
    net.set_temperature(0.5)  # baseline no-ops must exist
    net.set_forced_ratio(0.5)


def test_folded_input_gives_the_same_logits():
    net = tiny("tsm", "r18")
    x = torch.randn(N, T, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(net(x).logits, net(x.flatten(0, 1)).logits)


@pytest.mark.parametrize("backbone", ["r18", "r50", "mbv3"])
def test_tsm_differs_from_tsn_only_by_the_shift(backbone):
    tsn, tsm = tiny("tsn", backbone), tiny("tsm", backbone)
    tsm.load_state_dict(tsn.state_dict())  # the shift has no parameters: same keys, same weights
    x = torch.randn(N, T, 3, 32, 32)
    with torch.no_grad():
        a, b = tsn.frame_logits(x), tsm.frame_logits(x)
        y = x.clone()
        y[:, 0] += 1.0  # perturb frame 0 only
        a2, b2 = tsn.frame_logits(y), tsm.frame_logits(y)
    assert differs(a, b)
    frame = lambda z: z.view(N, T, K)  # noqa: E731
    # TSN frames are independent; TSM mixes neighbours, so frame 1 sees frame 0's change
    assert torch.equal(frame(a)[:, 1:], frame(a2)[:, 1:])
    assert differs(frame(b)[:, 1], frame(b2)[:, 1])
    # each video is shifted on its own: the other video of the batch is untouched
    y2 = x.clone()
    y2[0, -1] += 1.0
    with torch.no_grad():
        b3 = tsm.frame_logits(y2)
    assert torch.equal(frame(b)[1], frame(b3)[1])


def test_residual_shift_fold_and_boundaries():
    """Inside a TSM bottleneck, conv1 sees the shifted input; the skip path sees the original."""
    trunk = ResNet(50, width=16, num_classes=0, shift_segments=4).eval()
    block = trunk.layer2[1]  # identity skip, 128 channels: fold = 16
    seen = {}
    block.conv1.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0].clone()))
    x = torch.randn(2 * 4, 128, 8, 8)
    with torch.no_grad():
        out = block(x)
    s, v = seen["x"].view(2, 4, 128, 8, 8), x.view(2, 4, 128, 8, 8)
    f = 128 // 8
    assert torch.equal(s[:, :-1, :f], v[:, 1:, :f]) and torch.all(s[:, -1, :f] == 0)  # from t+1
    assert torch.equal(s[:, 1:, f:2 * f], v[:, :-1, f:2 * f]) and torch.all(s[:, 0, f:2 * f] == 0)  # from t-1
    assert torch.equal(s[:, :, 2 * f:], v[:, :, 2 * f:])
    with torch.no_grad():
        assert torch.allclose(out, torch.relu(block.residual(temporal_shift(x, 4)) + x))  # skip unshifted


@pytest.mark.parametrize("channels_last", [False, True])
def test_shift_backward_is_its_adjoint(channels_last):
    """The shift's hand-written backward (the same shift, directions swapped) equals autograd through the
    shift written as plain indexing, in both memory formats, and passes gradcheck."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2 * 4, 16, 3, 2, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    up = torch.randn(x.shape, generator=g)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    (temporal_shift(a, 4) * up).sum().backward()
    v, f = b.view(2, 4, 16, 3, 2), 16 // 8
    zero = torch.zeros_like(v[:, :1, :f])
    ref = torch.cat([torch.cat([v[:, 1:, :f], zero], 1), torch.cat([zero, v[:, :-1, f:2 * f]], 1), v[:, :, 2 * f:]], 2)
    (ref.view(8, 16, 3, 2) * up).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)
    assert a.grad.is_contiguous(memory_format=torch.channels_last) == channels_last
    x64 = torch.randn(8, 16, 2, 2, dtype=torch.double, generator=g).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: temporal_shift(t, 4), (x64,))


def test_consensus_is_mean_of_frame_logits():
    net = tiny("tsm", "r18")
    x = torch.randn(N, T, 3, SIZE, SIZE)
    with torch.no_grad():
        out, frames = net(x).logits, net.frame_logits(x)
    assert torch.allclose(out, frames.view(N, T, K).mean(1), rtol=1e-5, atol=0)
    assert differs(out, frames.view(N, T, K).softmax(-1).mean(1))


def test_new_classifier_init():
    net = build_video_model("tsn", "r50", 400, T, width=16)  # 512 features x 400 classes
    fc = net.head[1]
    assert isinstance(net.head[0], nn.Dropout) and net.head[0].p == 0.5
    assert fc.weight.shape == (400, 512)
    assert abs(fc.weight.std().item() - 0.001) < 0.00005 and abs(fc.weight.mean().item()) < 0.00005
    assert torch.all(fc.bias == 0)
    assert build_video_model("tsn", "mbv3", 10, T, dropout=0.2).head[0].p == 0.2


def test_reference_parameter_counts():
    assert sum(p.numel() for p in ResNet(50).parameters()) == 25_557_032
    assert sum(p.numel() for p in ResNet(18).parameters()) == 11_689_512
    assert sum(p.numel() for p in MobileNetV3().parameters()) == 5_483_032


def test_kaiming_init_and_width_scaling():
    m = ResNet(50, width=16, num_classes=0)
    assert m.out_channels == 16 * 8 * 4 and m.layer3[0].conv2.out_channels == 64
    w = ResNet(50).layer3[0].conv2.weight  # fan_out = 256 * 9
    assert abs(w.std().item() - (2 / (256 * 9)) ** 0.5) < 5e-4


def test_inverted_residual_api():
    blk = InvertedResidual(16, 64, 24, 3, 1, use_se=True, use_hs=True, pw_groups=2, shift_segments=4,
                           proj_shortcut=True)
    convs = blk.residual_convs()
    assert [c.groups for c in convs] == [2, 64, 1, 1, 2]  # expand, depthwise, SE fc1/fc2, project
    assert blk.has_skip and blk.skip[0].groups == 2
    x = torch.randn(8, 16, 12, 12)
    assert blk(x).shape == (8, 24, 12, 12)
    with torch.no_grad():
        assert torch.allclose(blk(x), blk.skip(x) + blk.residual(temporal_shift(x, 4)))
    strided = InvertedResidual(16, 16, 16, 5, 2, use_se=False, use_hs=False)
    assert not strided.has_skip and len(strided.residual_convs()) == 2  # no expand conv when exp == in
    assert strided(x).shape == (8, 16, 6, 6)
    assert InvertedResidual(16, 48, 16, 3, 1, False, False).has_skip  # standard identity skip


@pytest.mark.parametrize("kind", ["basic", "bottleneck", "af_plain", "inverted"])
def test_in_place_residual_sum_keeps_values_and_gradients(kind):
    """Blocks sum the skip into F's fresh output in place (as torchvision does): the values and every gradient
    must equal the out-of-place act(F(x) + skip(x)), in training (BN batch statistics) and in eval."""
    from src.models.afnet.blocks import Residual
    from src.models.resnet import BasicBlock, Bottleneck

    torch.manual_seed(0)
    blk, act = {"basic": (lambda: BasicBlock(16, 16, shift_segments=4), torch.relu),
                "bottleneck": (lambda: Bottleneck(32, 8, stride=2, shift_segments=4), torch.relu),
                "af_plain": (lambda: Residual("bottleneck", 32, 32, shift_segments=4, zero_init=False), torch.relu),
                "inverted": (lambda: InvertedResidual(16, 48, 16, 3, 1, True, True, shift_segments=4),
                             lambda y: y)}[kind]
    blk = blk()
    x = torch.randn(8, blk.conv1.in_channels if hasattr(blk, "conv1") else 16, 8, 8)
    for train in (True, False):
        blk.train(train)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya = blk(xa)
        yb = act(blk.residual(temporal_shift(xb, 4)) + blk.skip_path(xb))
        assert torch.allclose(ya, yb, atol=1e-6)
        w = torch.randn_like(ya)
        ga = torch.autograd.grad((ya * w).sum(), [xa, *blk.parameters()])
        gb = torch.autograd.grad((yb * w).sum(), [xb, *blk.parameters()])
        for a, b in zip(ga, gb):
            assert torch.allclose(a, b, atol=1e-5)


def test_factory_choices_and_afnet_options():
    with pytest.raises(ValueError, match="tsn, tsm, afnet"):
        build_video_model("slowfast", "r50", K, T)
    with pytest.raises(ValueError, match="r18, r34, r50, r101, mbv3"):
        build_video_model("tsn", "r152", K, T)
    # AFNet switches at their "off" values are ignored by a baseline; anything else is refused
    build_video_model("tsn", "r18", K, T, width=8, rs=None, fusion="dynamic", mask_mode="output",
                      focal_compute="auto", eval_gumbel_noise=False, nav_mix_frames=False)
    with pytest.raises(ValueError, match="rs"):
        build_video_model("tsm", "r18", K, T, width=8, rs=0.4)
    with pytest.raises(ValueError, match="fusion"):
        build_video_model("tsn", "r18", K, T, width=8, fusion="add")
    with pytest.raises(TypeError, match="bogus"):
        build_video_model("tsn", "r18", K, T, width=8, bogus=1)
    assert METHODS == ("tsn", "tsm", "afnet", "afnet_tsm", "afnet_soft")


def test_num_segments_mismatch_is_an_error():
    with pytest.raises(ValueError, match="num_segments"):
        tiny("tsn", "r18")(torch.randn(2, 4, 3, SIZE, SIZE))
