"""Official AFNet checkpoints: converted with the documented command and rebuilt as `src.eval` rebuilds them, they
give the official model's logits (an independent reference, tests/helpers/official_models.py) on both focal paths."""

import pytest
import torch
import torch.nn.functional as F

from src.convert_checkpoint import main as convert
from src.models import build_video_model
from src.models.checkpoints import convert_official, to_official
from src.models.mobilenetv3 import InvertedResidual
from src.utils.runs import compose_run_config, load_run
from tests.helpers.official_models import (
    af_mbv3_logits,
    af_resnet_logits,
    hswish,
    imagenet_af_shapes,
    official_shapes,
    random_state,
)

T = 12


def save(obj, path):
    torch.save(obj, path)
    return str(path)


def run_convert(args, capsys) -> tuple[int, str]:
    """(exit code, stderr) of `python -m src.convert_checkpoint args`, in process."""
    try:
        convert([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("official,shift", [("AF_resnet50", True), ("AF_resnet50", False), ("AF_resnet101", True),
                                            ("AF_mobilenetv3", None)])
def test_converted_official_checkpoint_gives_the_official_logits(tmp_path, official, shift):
    state = random_state(official_shapes(official), seed=1)
    src = save({"epoch": 50, "state_dict": state, "best_prec1": 49.0}, tmp_path / "official.pth.tar")
    flag = [] if shift is None else ["--shift" if shift else "--no-shift"]
    convert(["to-suite", src, str(tmp_path / "suite.ckpt"), *flag, "--dataset", "sthv1"])
    cfg, net = load_run(tmp_path / "suite.ckpt")  # as src.eval rebuilds it: no dataset= needed
    assert (cfg.dataset.name, cfg.model.mask_mode, cfg.num_segments) == ("sthv1", "input", T)
    back = to_official(net.state_dict())  # and back to the official names, bit-exactly
    assert set(back) == set(state) and all(torch.equal(back[k], v) for k, v in state.items())
    net.eval()
    x = torch.randn(T, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, ref_masks = af_mbv3_logits(state, x, T) if shift is None else af_resnet_logits(state, x, T, shift)
        selected = torch.cat([m.view(-1) for m in ref_masks])
        assert 0.2 < float(selected.mean()) < 0.8  # skipped frames (F(0)) and selected ones both occur
        for compute in ("masked", "sliced"):
            net.focal_compute = compute
            out = net(x.view(1, T, 3, 32, 32))
            assert all(torch.equal(m.view(-1), r.view(-1)) for m, r in zip(out.masks, ref_masks, strict=True))
            torch.testing.assert_close(out.logits, ref, rtol=0, atol=1e-4)
        if shift is None:  # the standard SE order (activation, then SE) is a different function
            for m in net.modules():
                if isinstance(m, InvertedResidual) and len(m.conv) == 4:
                    m.conv[1].append(m.conv[2].post_act)
                    m.conv[2].post_act = None
            assert (net(x.view(1, T, 3, 32, 32)).logits - ref).abs().max() > 1e-3


def test_official_names_are_detected_without_the_backbone():
    for official, backbone in (("AF_resnet50", "r50"), ("AF_mobilenetv3", "mbv3")):
        shapes = official_shapes(official)
        state = {k: torch.empty(0) for k in shapes}
        assert convert_official(state).keys() == convert_official(state, backbone).keys()


def test_af_mobilenetv3_round_trips_suite_official_suite_to_the_same_logits(tmp_path):
    net = build_video_model("afnet_tsm", "mbv3", 174, T, mask_mode="input").eval()
    net.load_state_dict(random_state({k: tuple(v.shape) for k, v in net.state_dict().items()}, seed=2))
    record = {"method": "afnet_tsm", "backbone": "mbv3", "num_classes": 174, "num_segments": T, "width_mult": 1.0,
              "mask_mode": "input"}
    first = save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "suite_model": record},
                 tmp_path / "suite.ckpt")
    convert(["to-official", first, str(tmp_path / "official.pth.tar")])
    convert(["to-suite", str(tmp_path / "official.pth.tar"), str(tmp_path / "again.ckpt"), "--dataset", "sthv1"])
    _, again = load_run(tmp_path / "again.ckpt")
    x = torch.randn(T, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x).logits, net(x).logits, rtol=0, atol=0)


def _bn(y, sd, p):
    return F.batch_norm(y, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.0, 1e-5)


def _se(y, sd):
    s = F.relu(F.conv2d(y.mean((2, 3), keepdim=True), sd["conv.2.fc1.weight"], sd["conv.2.fc1.bias"]))
    return y * F.relu6(F.conv2d(s, sd["conv.2.fc2.weight"], sd["conv.2.fc2.bias"]) + 3) / 6


def test_se_before_activation_block_against_a_hand_computed_reference():
    """AF-MobileNetV3 blocks: depthwise conv -> BN -> SE -> activation; the standard block: BN -> act -> SE."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    for se_first in (True, False):
        blk = InvertedResidual(8, 16, 8, 3, 1, use_se=True, use_hs=True, se_before_act=se_first).eval()
        blk.load_state_dict(random_state({k: tuple(v.shape) for k, v in blk.state_dict().items()}, seed=3))
        sd = blk.state_dict()
        h = hswish(_bn(F.conv2d(x, sd["conv.0.0.weight"]), sd, "conv.0.1"))
        d = _bn(F.conv2d(h, sd["conv.1.0.weight"], padding=1, groups=16), sd, "conv.1.1")
        y = hswish(_se(d, sd)) if se_first else _se(hswish(d), sd)
        expected = _bn(F.conv2d(y, sd["conv.3.0.weight"]), sd, "conv.3.1") + x
        with torch.no_grad():
            torch.testing.assert_close(blk(x), expected, rtol=1e-5, atol=1e-6)
    net = build_video_model("afnet_tsm", "mbv3", 10, 4, width_mult=0.5)
    af_blocks = [m for m in net.modules() if isinstance(m, InvertedResidual) and len(m.conv) == 4]
    assert len(af_blocks) == 10 and all(m.conv[2].post_act is not None for m in af_blocks)  # every SE block
    tsm = build_video_model("tsm", "mbv3", 10, 4, width_mult=0.5)
    assert all(m.conv[2].post_act is None for m in tsm.modules() if isinstance(m, InvertedResidual)
               and len(m.conv) == 4)


# ---- the converter cannot build the wrong model --------------------------------------------------------------

@pytest.fixture
def tiny_official(tmp_path):
    """An official-format AF-ResNet-50 checkpoint at width 8 (10 classes, 4 frames)."""
    net = build_video_model("afnet", "r50", 10, 4, width=8)
    return save({"state_dict": to_official(net.state_dict())}, tmp_path / "tiny.pth.tar")


def test_converter_reads_what_the_names_tell_and_records_it(tmp_path, tiny_official):
    convert(["to-suite", tiny_official, str(tmp_path / "s.ckpt"), "--no-shift"])
    ckpt = torch.load(tmp_path / "s.ckpt", weights_only=False)
    assert ckpt["suite_model"] == {"method": "afnet", "backbone": "r50", "num_classes": 10, "num_segments": 4,
                                   "width": 8, "mask_mode": "input"}
    convert(["to-suite", tiny_official, str(tmp_path / "t.ckpt"), "--method", "afnet_tsm"])
    assert torch.load(tmp_path / "t.ckpt", weights_only=False)["suite_model"]["method"] == "afnet_tsm"


@pytest.mark.parametrize("args,message", [
    ([], "--shift"),                                       # the shift cannot be read from the names
    (["--shift", "--backbone", "r101"], "--backbone r101, but the checkpoint holds backbone=r50"),
    (["--shift", "--num-segments", "8"], "num_segments=4"),
    (["--method", "tsm"], "afnet or afnet_tsm"),
])
def test_converter_refuses_what_it_cannot_know_or_contradicts(tmp_path, tiny_official, capsys, args, message):
    code, err = run_convert(["to-suite", tiny_official, tmp_path / "out.ckpt", *args], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.ckpt").exists()


def test_converter_refuses_to_overwrite_its_input(tiny_official, capsys):
    before = open(tiny_official, "rb").read()
    code, err = run_convert(["to-suite", tiny_official, tiny_official, "--shift"], capsys)
    assert code == 2 and "the output is the input file" in err and open(tiny_official, "rb").read() == before


def test_converter_points_imagenet_weights_to_pretrained(tmp_path, capsys):
    src = save({"state_dict": random_state(imagenet_af_shapes("AF_mobilenetv3"))}, tmp_path / "in.pth.tar")
    code, err = run_convert(["to-suite", src, tmp_path / "out.ckpt"], capsys)
    assert code == 2 and "pretrained=" in err and "afnet_imagenet" in err


def test_converter_keeps_mobilenet_shifted(tmp_path, capsys):
    net = build_video_model("afnet_tsm", "mbv3", 174, T)
    src = save({"state_dict": to_official(net.state_dict())}, tmp_path / "mb.pth.tar")
    code, err = run_convert(["to-suite", src, tmp_path / "out.ckpt", "--no-shift"], capsys)
    assert code == 2 and "always shifted" in err


# ---- src.eval rebuilds from the record; the command line may not contradict it -------------------------------

CONVERTED = {"suite_model": {"method": "afnet_tsm", "backbone": "r50", "num_classes": 174, "num_segments": 12,
                             "width": 64, "mask_mode": "input"}}


def test_eval_rebuilds_a_converted_checkpoint_from_its_record():
    cfg = compose_run_config({**CONVERTED, "suite_dataset": "sthv2"})
    assert (cfg.dataset.name, cfg.model.method, cfg.backbone.name, cfg.num_segments) == ("sthv2", "afnet_tsm", "r50",
                                                                                         12)
    assert compose_run_config(CONVERTED, ["dataset=sthv1"]).dataset.num_classes == 174


@pytest.mark.parametrize("ckpt,overrides,message", [
    (CONVERTED, [], "records num_classes=174, but the command line builds num_classes=6 (dataset=synthetic has 6 "
                    "classes; evaluate on dataset=sthv1 or dataset=sthv2)"),
    ({**CONVERTED, "suite_dataset": "sthv1"}, ["dataset=jester"], "num_classes=174, but the command line builds "
                                                                  "num_classes=27"),
    ({**CONVERTED, "suite_dataset": "sthv1"}, ["model=afnet"], "records method='afnet_tsm', but the command line "
                                                               "builds method='afnet'"),
    ({**CONVERTED, "suite_dataset": "sthv1"}, ["num_segments=8"], "num_segments=12"),
    ({**CONVERTED, "suite_dataset": "sthv1"}, ["backbone=r101"], "backbone='r50'"),
])
def test_eval_names_both_values_of_a_mismatch(ckpt, overrides, message):
    with pytest.raises(SystemExit) as e:
        compose_run_config(ckpt, overrides, where="ckpt_path=x.ckpt")
    assert str(e.value).startswith("ckpt_path=x.ckpt records") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_eval_refuses_an_unconverted_checkpoint_in_one_line(tmp_path, tiny_official):
    with pytest.raises(SystemExit, match="in the afnet format, not this suite.s: convert it first"):
        load_run(tiny_official)
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    with pytest.raises(SystemExit, match="not a readable PyTorch checkpoint"):
        load_run(tmp_path / "junk.ckpt")
