"""The official checkpoints' names and shapes convert to this suite and back, loading with nothing missing."""

import re
from pathlib import Path

import pytest
import torch

from src.models import build_video_model
from src.models.checkpoints import convert_official, load_pretrained, to_official

KEYS = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "official-checkpoint-keys.txt"


def official_state(model: str) -> dict:
    """Random tensors with exactly the names and shapes of one official checkpoint listed in the keys file."""
    if not KEYS.is_file():
        pytest.skip("shared/reference is not beside this checkout")
    state, current = {}, None
    g = torch.Generator().manual_seed(0)
    for line in KEYS.read_text().splitlines():
        if line.startswith("## "):
            current = line.split()[1]
        elif current == model and line.startswith("module."):
            name, shape = line.split("\t")
            dims = tuple(int(d) for d in re.findall(r"\d+", shape))
            state[name] = torch.randn(dims, generator=g) if dims else torch.tensor(7)
    assert state, model
    return state


@pytest.mark.parametrize("official,backbone", [("AF_resnet50", "r50"), ("AF_resnet101", "r101"),
                                               ("AF_mobilenetv3", "mbv3")])
def test_official_checkpoint_loads_and_converts_back(official, backbone):
    state = official_state(official)
    net = build_video_model("afnet_tsm", backbone, 174, 12)
    converted = convert_official(state, backbone)
    assert converted.keys() == convert_official(state).keys()  # the backbone is also detected from the names
    missing, unexpected = net.load_state_dict(converted, strict=False)
    assert not missing and not unexpected
    back = to_official(net.state_dict())
    assert set(back) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(back[k], v, rtol=0, atol=0)


@pytest.mark.parametrize("official,backbone", [("AF_resnet50", "r50"), ("AF_mobilenetv3", "mbv3")])
def test_converter_cli_round_trip(tmp_path, official, backbone):
    from src.convert_checkpoint import main

    state = official_state(official)
    torch.save({"state_dict": state, "epoch": 54}, tmp_path / "official.pth.tar")
    main(["to-suite", str(tmp_path / "official.pth.tar"), str(tmp_path / "suite.ckpt"), "--backbone", backbone])
    suite = torch.load(tmp_path / "suite.ckpt", weights_only=False)
    assert suite["suite_model"]["num_classes"] == 174 and suite["suite_model"]["num_segments"] == 12
    main(["to-official", str(tmp_path / "suite.ckpt"), str(tmp_path / "back.pth.tar")])
    back = torch.load(tmp_path / "back.pth.tar", weights_only=False)["state_dict"]
    assert set(back) == set(state) and all(torch.equal(back[k], state[k]) for k in state)


def test_pretrained_backbone_loads_by_name_and_shape(tmp_path):
    """An ImageNet AF backbone (T=1, 1000-way) into a 12-frame, 174-way video model: the classifier and the
    T-dependent navigation convs are skipped and reported, everything else loads."""
    image_model = build_video_model("afnet", "r50", 1000, 1, width=16)
    torch.save({"state_dict": {f"net.{k}": v for k, v in image_model.state_dict().items()}}, tmp_path / "in.ckpt")
    video = build_video_model("afnet", "r50", 174, 12, width=16)
    report = load_pretrained(video, tmp_path / "in.ckpt", verbose=False)
    skipped = set(report["skipped"])
    assert {"fc.weight", "fc.bias"} <= skipped
    assert all(".nav." in k and ".temporal." in k for k in skipped - {"fc.weight", "fc.bias"})
    assert len(report["loaded"]) == len(image_model.state_dict()) - len(skipped)
    torch.testing.assert_close(video.state_dict()["stem.0.weight"], image_model.state_dict()["stem.0.weight"])
