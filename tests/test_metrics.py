import pytest
import torch

from src.lit.metrics import MaskRatios, MeanAveragePrecision, mask_ratios, mean_average_precision
from src.lit.video_module import ratio_loss


def reference_map(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """The definition, class by class: softmax, rank (ties in input order), AP = mean precision at the positives."""
    probs = scores.float().softmax(1)
    aps = []
    for k in range(probs.shape[1]):
        ranked = sorted(range(len(labels)), key=lambda i: -float(probs[i, k]))  # sorted() is stable
        hits = [int(labels[i]) == k for i in ranked]
        if not any(hits):
            continue
        precisions = [sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h]
        aps.append(sum(precisions) / len(precisions))
    return 100 * sum(aps) / len(aps)


def test_map_hand_computed():
    # 4 videos, 3 classes; softmax probabilities per row (rounded):
    # v0 [.909 .045 .045]  v1 [.665 .245 .090]  v2 [.045 .909 .045]  v3 [.018 .007 .976]
    scores = torch.tensor([[3.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [1.0, 0.0, 5.0]])
    labels = torch.tensor([0, 1, 1, 0])
    # class 0 ranking v0, v1, v2, v3; positives v0 (rank 1) and v3 (rank 4): AP = (1/1 + 2/4) / 2 = 0.75
    # class 1 ranking v2, v1, v0, v3; positives v2 (rank 1) and v1 (rank 2): AP = (1 + 1) / 2 = 1
    # class 2 has no positive video and is left out of the mean
    assert float(mean_average_precision(scores, labels)) == pytest.approx(100 * (0.75 + 1.0) / 2)
    assert float(mean_average_precision(scores, torch.nn.functional.one_hot(labels, 3))) == pytest.approx(87.5)
    assert reference_map(scores, labels) == pytest.approx(87.5)


def test_map_equals_the_definition_with_ties():
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 3, (40, 6), generator=g).float()  # few distinct values: many tied scores
    labels = torch.randint(0, 5, (40,), generator=g)  # class 5 has no positive
    assert float(mean_average_precision(scores, labels)) == pytest.approx(reference_map(scores, labels), abs=1e-4)


def test_map_makes_no_tensor_off_its_input_device():
    """On the meta device any tensor made on the CPU (e.g. an arange without device=) would fail to combine."""
    scores, labels = torch.randn(6, 4, device="meta"), torch.zeros(6, dtype=torch.long, device="meta")
    out = mean_average_precision(scores, labels)
    assert out.device.type == "meta" and out.shape == ()


def test_map_metric_accumulates_batches():
    torch.manual_seed(0)
    scores, labels = torch.randn(20, 5), torch.randint(0, 5, (20,))
    m = MeanAveragePrecision()
    m.update(scores[:7], labels[:7])
    m.update(scores[7:], labels[7:])
    assert float(m.compute()) == pytest.approx(float(mean_average_precision(scores, labels)))
    perfect = torch.nn.functional.one_hot(labels, 5).float() * 10
    assert float(mean_average_precision(perfect, labels)) == pytest.approx(100.0)


def test_mask_ratios_weight_batches_by_videos_and_spatial_cost():
    m = MaskRatios()
    # batch 1: 2 videos x 2 frames; mask 0 selects 1 of 4 frames, mask 1 all; batch 2: 1 video, nothing selected
    m.update([torch.tensor([1.0, 0, 0, 0]).view(4, 1, 1, 1), torch.ones(4, 1, 1, 1)], [], 2)
    m.update([torch.zeros(2, 1, 1, 1), torch.zeros(2, 1, 1, 1)], [], 1)
    ratios, costs = m.compute()
    torch.testing.assert_close(ratios, torch.tensor([0.25 * 2 / 3, 2 / 3], dtype=torch.float64))
    torch.testing.assert_close(costs, ratios)
    s = MaskRatios()
    s.update([torch.ones(2, 1, 1, 1)], [torch.tensor([1.0, 0, 0, 0]).view(1, 1, 2, 2).repeat(2, 1, 1, 1)], 1)
    assert s.compute()[1].tolist() == [0.25] and s.compute()[0].tolist() == [1.0]
    empty = MaskRatios()
    empty.update([], [], 4)
    assert [v.numel() for v in empty.compute()] == [0, 0]


def test_mask_ratios_stay_on_the_device():
    m = MaskRatios().to("meta")
    m.update([torch.ones(4, 1, 1, 1, device="meta")], [], 2)
    assert m.ratio_sum.device.type == "meta" and m.videos.device.type == "meta"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_ratio_loss_is_float32_under_autocast(dtype):
    leaf = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=dtype, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = ratio_loss(mask_ratios([leaf.view(4, 1, 1, 1)]), 0.5)
    assert loss.dtype == torch.float32 and float(loss) == pytest.approx(0.0625)  # (0.5 - 0.75)²
    loss.backward()
    assert torch.isfinite(leaf.grad).all() and float(leaf.grad.float().abs().sum()) > 0
