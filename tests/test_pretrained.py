"""`pretrained=`: every kind of weights a user has loads through `load_pretrained`, with a report by name; a load
that would leave backbone tensors at their initial values fails with the list. Each source is a generated file in
its exact format (tests/helpers/official_models.py)."""

import pytest
import torch

from src.models import build_video_model
from src.models.checkpoints import MBV3_IN_AF, PretrainedError, load_pretrained
from src.models.mobilenetv3 import MobileNetV3
from src.models.resnet import ResNet
from tests.helpers.official_models import (
    imagenet_af_shapes,
    official_shapes,
    random_state,
    torchvision_mbv3_shapes,
    torchvision_resnet_shapes,
    tsm_checkpoint,
)


def save(obj, path):
    torch.save(obj, path)
    return path


def backbone_left(report) -> list[str]:
    return [k for k, why in report["left_at_init"].items() if why == "backbone"]


@pytest.mark.parametrize("official,backbone", [("AF_resnet50", "r50"), ("AF_resnet101", "r101"),
                                               ("AF_mobilenetv3", "mbv3")])
def test_official_imagenet_af_backbone_loads_into_the_video_model(tmp_path, official, backbone):
    """`module.conv1.weight`, ...: everything but the 1000-way classifier and the one-frame navigation temporal
    convs (the video model has 12 frames)."""
    state = random_state(imagenet_af_shapes(official))
    path = save({"state_dict": state, "epoch": 90}, tmp_path / "imagenet.pth.tar")
    net = build_video_model("afnet_tsm", backbone, 174, 12)
    report = load_pretrained(net, path, verbose=False)
    assert report["format"] == "afnet_imagenet" and not backbone_left(report)
    assert set(report["left_at_init"].values()) == {"classifier", "navigation temporal conv (per frame: depends on "
                                                                  "the clip length)"}
    assert all(".conv_gs." in k or k.startswith(("module.fc.weight", "module.fc.bias", "module.fc.3."))
               for k in report["skipped"])
    stem = "module.conv1.weight" if backbone != "mbv3" else "module.conv.weight"
    assert torch.equal(net.state_dict()["stem.0.weight"], state[stem])
    assert len(report["loaded"]) == len(state) - len(report["skipped"])


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_torchvision_resnet_loads_into_tsn_and_tsm(tmp_path, depth):
    state = random_state(torchvision_resnet_shapes(depth, width=16))
    path = save(state, tmp_path / f"resnet{depth}.pth")
    for method in ("tsn", "tsm"):
        net = build_video_model(method, f"r{depth}", 7, 8, width=16)
        report = load_pretrained(net, path, verbose=False)
        assert report["format"] == "torchvision_resnet" and set(report["skipped"]) == {"fc.weight", "fc.bias"}
        assert {k for k, why in report["left_at_init"].items() if why != "BN step counter"} == {"head.1.weight",
                                                                                                "head.1.bias"}
        own = net.state_dict()
        assert all(torch.equal(own["trunk." + k], v) for k, v in state.items() if not k.startswith("fc."))


def test_torchvision_resnet_into_an_af_backbone_fills_stem_and_stage4_only(tmp_path):
    state = random_state(torchvision_resnet_shapes(50, width=16))
    path = save({"model": state}, tmp_path / "resnet50.pth")
    net = build_video_model("afnet", "r50", 7, 8, width=16)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(PretrainedError) as e:
        load_pretrained(net, path, verbose=False)
    message = str(e.value)
    assert "backbone tensors of AFResNet at their initial values" in message and "pretrained_strict=false" in message
    assert "stages.0.focal.0.conv1.weight" in message and "stem.0.weight" not in message
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # untouched
    report = load_pretrained(net, path, strict=False, verbose=False)
    loaded = set(report["loaded"])
    assert loaded == {k for k in net.state_dict() if k.startswith(("stem.", "stage4."))
                                   and not k.endswith("num_batches_tracked")}
    own = net.state_dict()
    assert torch.equal(own["stage4.0.shortcut.1.weight"], state["layer4.0.downsample.0.weight"])
    assert torch.equal(own["stage4.2.conv3.weight"], state["layer4.2.conv3.weight"])
    assert all(k.startswith(("layer1.", "layer2.", "layer3.", "fc.")) for k in report["skipped"])


def test_torchvision_mobilenetv3_loads_into_tsn_tsm_and_the_af_backbone(tmp_path):
    state = random_state(torchvision_mbv3_shapes())
    path = save(state, tmp_path / "mobilenet_v3_large.pth")
    for method in ("tsn", "tsm"):
        net = build_video_model(method, "mbv3", 27, 8)
        report = load_pretrained(net, path, verbose=False)
        assert report["format"] == "torchvision_mbv3" and set(report["skipped"]) == {"classifier.3.weight",
                                                                                      "classifier.3.bias"}
        assert not backbone_left(report)
        assert torch.equal(net.state_dict()["trunk.blocks.3.conv.2.fc1.weight"], state["features.4.block.2.fc1.weight"])
    image = MobileNetV3(num_classes=1000)
    report = load_pretrained(image, path, verbose=False)
    assert not report["skipped"] and torch.equal(image.classifier[1].weight, state["classifier.3.weight"])

    af = build_video_model("afnet_tsm", "mbv3", 27, 8)
    with pytest.raises(PretrainedError, match="stages.0.focal.0.block"):
        load_pretrained(af, path, verbose=False)
    report = load_pretrained(af, path, strict=False, verbose=False)
    assert not report["skipped"] or set(report["skipped"]) == {"classifier.3.weight", "classifier.3.bias"}
    parts = {k.split(".")[0] if not k.startswith("stages.") else ".".join(k.split(".")[:3]) for k in report["loaded"]}
    assert parts == {"stem", "early", "late", "last_conv", "embed", "stages.0.ample", "stages.0.fusion_block",
                     "stages.1.ample", "stages.1.fusion_block"}
    assert len(MBV3_IN_AF) == 15
    assert torch.equal(af.state_dict()["stages.1.fusion_block.conv.1.0.weight"], state["features.10.block.1.0.weight"])
    left = set(backbone_left(report))
    assert left and all(".focal." in k or ".nav." in k or ".fuse." in k for k in left)


def test_tsm_checkpoint_loads_into_the_tsm_model_with_its_classifier(tmp_path):
    ckpt = tsm_checkpoint(50, 174, shift=True, width=16)
    path = save(ckpt, tmp_path / "TSM_something_RGB_resnet50_shift8_blockres_avg_segment8_e45.pth")
    net = build_video_model("tsm", "r50", 174, 8, width=16)
    report = load_pretrained(net, path, verbose=False)
    assert report["format"] == "tsm" and not report["skipped"] and not report["left_at_init"]
    own = net.state_dict()
    shifted_conv = ckpt["state_dict"]["module.base_model.layer1.0.conv1.net.weight"]
    assert torch.equal(own["trunk.layer1.0.conv1.weight"], shifted_conv)
    assert torch.equal(own["head.1.weight"], ckpt["state_dict"]["module.new_fc.weight"])
    other = build_video_model("tsm", "r50", 27, 8, width=16)  # another class count: the classifier stays fresh
    report = load_pretrained(other, path, verbose=False)
    assert set(report["skipped"]) == {"module.new_fc.weight", "module.new_fc.bias"}


def test_official_afnet_video_checkpoint_and_suite_checkpoints_load(tmp_path):
    state = random_state(official_shapes("AF_resnet50"))
    path = save({"state_dict": state}, tmp_path / "afnet.pth.tar")
    net = build_video_model("afnet_tsm", "r50", 27, 12)  # fine-tuning a released model on another dataset
    report = load_pretrained(net, path, verbose=False)
    assert report["format"] == "afnet" and set(report["skipped"]) == {"module.new_fc.weight", "module.new_fc.bias"}
    assert set(report["left_at_init"]) == {"fc.weight", "fc.bias"}
    suite = save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "suite.ckpt")
    again = build_video_model("afnet_tsm", "r50", 27, 12)
    report = load_pretrained(again, suite, verbose=False)
    assert report["format"] == "suite" and not report["skipped"] and not report["left_at_init"]
    plain = ResNet(18, width=8, num_classes=5)
    image = save({"state_dict": {f"net.{k}": v for k, v in plain.state_dict().items()}}, tmp_path / "r18.ckpt")
    tsn = build_video_model("tsn", "r18", 5, 4, width=8)
    report = load_pretrained(tsn, image, verbose=False)
    assert not backbone_left(report)


def test_report_and_errors_are_one_readable_line_each(tmp_path, capsys):
    path = save(random_state(torchvision_resnet_shapes(18, width=8)), tmp_path / "r18.pth")
    net = build_video_model("tsm", "r18", 7, 4, width=8)
    load_pretrained(net, path)
    out = capsys.readouterr().out
    assert "(torchvision_resnet) -> VideoClassifier2D: loaded" in out and "skipped (no place in" in out
    assert "left at init (classifier): head.1.{weight,bias}" in out
    (tmp_path / "bad.pth").write_bytes(b"nope")
    from src.models.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match="bad.pth: not a readable PyTorch checkpoint"):
        load_pretrained(net, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_pretrained(net, {"encoder.weight": torch.zeros(1)})


def test_train_reports_a_partial_load_as_a_config_error(tmp_path, tiny_data_root):
    from helpers import compose_train

    from src.train import train
    from src.utils.config import ConfigError
    from tests.helpers import tiny_backbone, tiny_overrides

    path = save(random_state(torchvision_resnet_shapes(18, width=8)), tmp_path / "r18.pth")
    cfg = compose_train([*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=afnet",
                         f"pretrained={path}"], tmp_path / "run")
    with pytest.raises(ConfigError, match=r"^pretrained: .*r18.pth \(torchvision_resnet\) would leave \d+ backbone"):
        train(cfg)
