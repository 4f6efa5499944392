"""`python -m src.bench_train_ops`: the op timer's accounting on small clips of the real training-step pair."""

import json

import pytest
import torch

from src.bench import training_inputs, training_models
from src.bench_train_ops import STAGES, OpTimer, capture_stages, category, family, main, timed_step
from src.models.flops import layer_macs


def module_macs(net: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(MACs of every conv and linear layer in one forward of x, MACs of the stem conv alone), counted by module
    hooks with the FLOPs counter's `layer_macs`."""
    total = [0]

    def hook(module, args, out):
        total[0] += layer_macs(module, args[0], out)

    counted = (torch.nn.Conv2d, torch.nn.Linear)
    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, counted)]
    stem = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    frames = x.shape[0] * x.shape[1]
    stem_macs = layer_macs(stem, None, torch.empty(frames, stem.out_channels, x.shape[-2] // 2, x.shape[-1] // 2))
    return total[0], stem_macs


@pytest.mark.parametrize("name", ["tsn_r50", "afnet_r50"])
def test_timer_counts_every_product_mac_of_a_training_step(name):
    """Forward: exactly the MACs of the model's conv and linear layers. Backward: both gradients of every product,
    except the stem's input gradient (the clip needs none)."""
    torch.manual_seed(0)
    net = training_models(2, False)[name]
    x, y = training_inputs(2, 64, 1, False)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    fwd, stem = module_macs(net, x)
    timer = OpTimer()
    with timer:
        seconds = timed_step(timer, net, opt, x, y)
    assert timer.totals[("forward", "conv")][2] == fwd
    assert timer.totals[("backward", "conv")][2] == 2 * fwd - stem
    assert timer.totals[("forward", "batch norm")][1] > 0 and timer.totals[("backward", "batch norm")][1] > 0
    assert sum(row[2] for row in timer.shapes.values()) == 3 * fwd - stem
    op_seconds = sum(row[0] for row in timer.totals.values())
    assert 0 < op_seconds < seconds


def test_categories():
    assert category("convolution_backward") == "conv" and category("bmm") == "conv"
    assert category("native_batch_norm_backward") == "batch norm"
    assert category("threshold_backward") == "other ops" and category("add_") == "other ops"


def test_cli_table_and_json(capsys):
    res = main(["--frames", "2", "--size", "64", "--steps", "1", "--warmup", "0", "--threads", "1", "--top", "3"])
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1]) == {k: v for k, v in res.items() if k != "models"}
    assert "step (mean under the timer)" in res["rows"] and "backward: conv" in res["rows"]
    assert 0 < res["gmacs"]["afnet_r50"] < res["gmacs"]["tsn_r50"]  # grouped focal convs: fewer MACs
    assert out.count(" conv (") + out.count("mm (") >= 3  # the listed shapes
    assert "grouped 1x1" in res["families"] and "by layer family" in out


@pytest.mark.parametrize("argv, named", [(["--steps", "0"], "--steps 0"), (["--batch", "0"], "--batch 0"),
                                         (["--size", "100"], "--size 100")])
def test_cli_rejects_bad_values_naming_the_flag(capsys, argv, named):
    with pytest.raises(SystemExit):
        main(argv)
    assert named in capsys.readouterr().err


def test_families_split_every_product_mac_by_layer_kind():
    """Grouped convolutions are told apart from dense ones (forward and backward), and the families hold every
    product MAC: AFNet-R50's focal branch is grouped, TSN-R50 has no grouped conv."""
    torch.manual_seed(0)
    nets = training_models(2, False)
    x, y = training_inputs(2, 64, 1, False)
    fams = {}
    for name, net in nets.items():
        timer = OpTimer()
        with timer:
            timed_step(timer, net, torch.optim.SGD(net.parameters(), lr=1e-3), x, y)
        assert sum(r[2] for r in timer.families.values()) == sum(r[2] for r in timer.shapes.values())
        fams[name] = set(timer.families)
    assert {"grouped 1x1", "grouped 3x3", "dense 3x3", "dense 1x1"} <= fams["afnet_r50"]
    assert not any(f.startswith(("grouped", "depthwise")) for f in fams["tsn_r50"])
    assert {"dense 7x7", "matrix products"} <= fams["tsn_r50"]  # the stem; the classifier


def test_family_of_conv_ops():
    x, w, wg, wd = (torch.empty(2, 8, 4, 4), torch.empty(4, 8, 3, 3), torch.empty(4, 4, 1, 1),
                    torch.empty(8, 1, 3, 3))
    assert family("convolution", (x, w)) == "dense 3x3"
    assert family("convolution", (x, wg)) == "grouped 1x1"
    assert family("convolution_backward", (torch.empty(2, 8, 2, 2), x, wd)) == "depthwise 3x3"
    assert family("bmm", (x, x)) == "matrix products"


def test_stages_are_captured_with_their_real_inputs_and_macs():
    """Each captured stage, run on its captured input, gives the next stage's captured input; stage 4 of AFNet-R50
    differs from TSN-R50's layer4 by exactly its ResNet-D shortcut pool (9 MACs per pooled output value)."""
    torch.manual_seed(0)
    nets = training_models(2, False)
    x, _ = training_inputs(2, 64, 1, False)
    captured = {}
    for key, net in nets.items():
        modules = dict(net.named_modules())
        stages = capture_stages(net, STAGES[key], x)
        with torch.no_grad():
            for name, stage, nxt in zip(STAGES[key], stages, stages[1:]):
                out = modules[name](*stage["args"], **stage["kwargs"])
                torch.testing.assert_close(out[0] if isinstance(out, tuple) else out, nxt["args"][0])
        captured[key] = stages
    pooled = 1024 * (64 // 32) ** 2 * 2  # stage 4's pooled shortcut input: 1024 x 2² per frame, 2 frames
    assert captured["afnet_r50"][3]["macs"] - captured["tsn_r50"][3]["macs"] == 9 * pooled
    assert all(a["macs"] < 0.7 * t["macs"] for a, t in zip(captured["afnet_r50"][:3], captured["tsn_r50"][:3]))


def test_cli_stage_table_and_json(capsys):
    res = main(["--stages", "--frames", "2", "--size", "64", "--steps", "1", "--warmup", "0", "--threads", "1"])
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1]) == res
    rows = res["stages"]
    assert len(rows) == 4 and "all four" in out
    assert all(r["afnet_r50_ms"] > 0 and r["tsn_r50_ms"] > 0 for r in rows.values())
