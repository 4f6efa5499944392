import pytest
from torch import nn

from src.lit.param_groups import param_groups


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.nav = nn.ModuleDict({"conv": nn.Conv2d(4, 2, 1, bias=False), "bn": nn.BatchNorm2d(2)})
        self.fuse_fc = nn.Linear(4, 4, bias=False)
        self.fc = nn.Linear(4, 10)


def test_groups_follow_official_multipliers():
    groups = {g["name"]: g for g in param_groups(Toy(), lr=0.01, weight_decay=1e-4)}
    assert set(groups) == {"nav", "conv_weight", "conv_bias", "norm", "linear_weight", "linear_bias"}
    expect = {"nav": (0.1, 1e-4, 3), "conv_weight": (0.01, 1e-4, 1), "conv_bias": (0.02, 0.0, 1),
              "norm": (0.01, 0.0, 2), "linear_weight": (0.05, 1e-4, 2), "linear_bias": (0.1, 0.0, 1)}
    for name, (lr, wd, n) in expect.items():
        assert groups[name]["lr"] == pytest.approx(lr), name
        assert groups[name]["weight_decay"] == wd, name
        assert len(groups[name]["params"]) == n, name


def test_every_parameter_in_exactly_one_group():
    model = Toy()
    ids = [id(p) for g in param_groups(model, 0.1, 1e-4) for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
