import math

import pytest

from src.lit.schedules import lr_factor, rt_target, temperature


@pytest.mark.parametrize("step", [0, 1, 37, 250, 499, 500, 10_000])
def test_exponential_temperature_matches_formula(step):
    spe, t_end = 10, 50  # 500 steps to reach t1
    expected = 1.0 * (0.01 / 1.0) ** (min(step, 500) / 500)
    assert temperature(step, spe, "exponential", 1.0, 0.01, t_end) == pytest.approx(expected, rel=1e-12)


def test_temperature_end_points_and_shapes():
    for kind in ("exponential", "cosine", "linear"):
        assert temperature(0, 7, kind) == pytest.approx(1.0)
        assert temperature(7 * 50, 7, kind) == pytest.approx(0.01)
        assert temperature(7 * 80, 7, kind) == pytest.approx(0.01)  # stays at t1 after t_end
    # half way: exponential is the geometric mean, linear the arithmetic, cosine also arithmetic
    assert temperature(175, 7, "exponential") == pytest.approx(math.sqrt(0.01))
    assert temperature(175, 7, "linear") == pytest.approx(0.505)
    assert temperature(175, 7, "cosine") == pytest.approx(0.505)
    # a quarter: cosine decays slower than linear at the start
    assert temperature(350 // 4, 7, "cosine") > temperature(350 // 4, 7, "linear")
    with pytest.raises(ValueError, match="schedule.tau.kind"):
        temperature(0, 1, "step")


@pytest.mark.parametrize("epoch,expected", [(0, 1.0), (9, 1.0), (10, 0.5 + 1 / 3), (14, 0.5 + 1 / 3),
                                            (15, 0.5 + 1 / 6), (19, 0.5 + 1 / 6), (20, 0.5), (54, 0.5)])
def test_rt_warmup_official_steps(epoch, expected):
    assert rt_target(epoch, 0.5, begin=10, end=20) == pytest.approx(expected)


def test_rt_warmup_disabled():
    assert rt_target(0, 0.25, enabled=False) == 0.25


def test_lr_factor_steps_and_warmup():
    spe = 100
    assert lr_factor(0, spe, (25, 45)) == 1.0
    assert lr_factor(25 * spe - 1, spe, (25, 45)) == 1.0
    assert lr_factor(25 * spe, spe, (25, 45)) == pytest.approx(0.1)
    assert lr_factor(45 * spe, spe, (25, 45)) == pytest.approx(0.01)
    # 5-epoch linear warm-up (ImageNet recipe), then steps at 30/60
    assert lr_factor(0, spe, (30, 60), warmup_epochs=5) == pytest.approx(1 / 500)
    assert lr_factor(249, spe, (30, 60), warmup_epochs=5) == pytest.approx(250 / 500)
    assert lr_factor(500, spe, (30, 60), warmup_epochs=5) == 1.0
    assert lr_factor(60 * spe, spe, (30, 60), warmup_epochs=5) == pytest.approx(0.01)
