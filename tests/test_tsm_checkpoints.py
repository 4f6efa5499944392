"""TSN / TSM checkpoints of TSM's code: converted and rebuilt as `src.eval` rebuilds them, they give the TSM model's
logits (an independent reference with TSM's shift placement, tests/helpers/official_models.py)."""

import pytest
import torch

from src.convert_checkpoint import main as convert
from src.models import build_video_model
from src.models.resnet import LAYOUTS, ResNet
from src.utils.runs import load_run
from tests.helpers.official_models import tsm_checkpoint, tsm_logits, tsm_shift_placement

EVERY = {18: [[True] * 2] * 4, 34: [[True] * n for n in (3, 4, 6, 3)], 50: [[True] * n for n in (3, 4, 6, 3)]}
EVERY_OTHER = [[j % 2 == 0 for j in range(n)] for n in (3, 4, 23, 3)]  # ResNet-101: blocks 0, 2, 4, ... of each stage


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
def test_tsm_shift_placement_per_depth(depth):
    net = ResNet(depth, width=8, num_classes=0, shift_segments=8)
    shifted = [[block.shift_segments > 0 for block in getattr(net, f"layer{s}")] for s in (1, 2, 3, 4)]
    assert shifted == (EVERY_OTHER if depth == 101 else EVERY[depth])
    assert shifted == tsm_shift_placement(LAYOUTS[depth][1])
    tsn = ResNet(depth, width=8, shift_segments=0)
    assert not any(b.shift_segments for s in (1, 2, 3, 4) for b in getattr(tsn, f"layer{s}"))


@pytest.mark.parametrize("depth", [18, 34, 50, 101])
@pytest.mark.parametrize("shift", [True, False])
def test_tsm_checkpoint_converts_to_the_tsm_models_logits(tmp_path, depth, shift):
    ckpt = tsm_checkpoint(depth, 27, shift, width=8, seed=depth)
    src = tmp_path / f"TSM_jester_RGB_resnet{depth}_segment8.pth"
    torch.save(ckpt, src)
    convert(["to-suite", str(src), str(tmp_path / "suite.ckpt"), "--num-segments", "8", "--dataset", "jester"])
    cfg, net = load_run(tmp_path / "suite.ckpt")
    assert (cfg.model.method, cfg.backbone.name, cfg.dataset.name) == ("tsm" if shift else "tsn", f"r{depth}", "jester")
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = tsm_logits(ckpt["state_dict"], x, 8, shift)
        torch.testing.assert_close(net.eval()(x.view(1, 8, 3, 32, 32)).logits, ref, rtol=0, atol=1e-4)
        if shift and depth == 101:  # shifting every block (the suite's former TSM-R101) is another model
            every = build_video_model("tsm", "r101", 27, 8, width=8).eval()
            for s in (1, 2, 3, 4):
                for block in getattr(every.trunk, f"layer{s}"):
                    block.shift_segments = 8
            every.load_state_dict(net.state_dict())
            assert (every(x).logits - ref).abs().max() > 1e-3


def run(args, capsys) -> tuple[int, str]:
    try:
        convert([str(a) for a in args])
    except SystemExit as e:
        return e.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_tsm_conversion_needs_the_clip_length_and_agrees_with_the_names(tmp_path, capsys):
    src = tmp_path / "tsm.pth"
    torch.save(tsm_checkpoint(50, 27, True, width=8), src)
    code, err = run(["to-suite", src, tmp_path / "o.ckpt"], capsys)
    assert code == 2 and "--num-segments" in err
    code, err = run(["to-suite", src, tmp_path / "o.ckpt", "--num-segments", "8", "--no-shift"], capsys)
    assert code == 2 and "a TSM checkpoint (with shifted `.net` convs), but --no-shift was given" in err
    wrong = tsm_checkpoint(101, 27, True, width=8)  # every block shifted: not TSM's ResNet-101
    state = wrong["state_dict"]
    for k in list(state):
        if ".conv1.weight" in k and k.startswith("module.base_model.layer"):
            state[k.replace(".conv1.weight", ".conv1.net.weight")] = state.pop(k)
    torch.save(wrong, src)
    code, err = run(["to-suite", src, tmp_path / "o.ckpt", "--num-segments", "8"], capsys)
    assert code == 2 and "but TSM's placement for r101" in err
