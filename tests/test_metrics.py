import pytest
import torch

from src.lit.metrics import MeanAveragePrecision, mean_average_precision


def test_map_hand_computed():
    # 4 videos, 3 classes; softmax probabilities per row (rounded):
    # v0 [.909 .045 .045]  v1 [.665 .245 .090]  v2 [.045 .909 .045]  v3 [.018 .007 .976]
    scores = torch.tensor([[3.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [1.0, 0.0, 5.0]])
    labels = torch.tensor([0, 1, 1, 0])
    # class 0 ranking v0, v1, v2, v3; positives v0 (rank 1) and v3 (rank 4): AP = (1/1 + 2/4) / 2 = 0.75
    # class 1 ranking v2, v1, v0, v3; positives v2 (rank 1) and v1 (rank 2): AP = (1 + 1) / 2 = 1
    # class 2 has no positive video and is left out of the mean
    assert mean_average_precision(scores, labels) == pytest.approx(100 * (0.75 + 1.0) / 2)
    assert mean_average_precision(scores, torch.nn.functional.one_hot(labels, 3)) == pytest.approx(87.5)


def test_map_metric_accumulates_batches():
    torch.manual_seed(0)
    scores, labels = torch.randn(20, 5), torch.randint(0, 5, (20,))
    m = MeanAveragePrecision()
    m.update(scores[:7], labels[:7])
    m.update(scores[7:], labels[7:])
    assert float(m.compute()) == pytest.approx(mean_average_precision(scores, labels))
    perfect = torch.nn.functional.one_hot(labels, 5).float() * 10
    assert mean_average_precision(perfect, labels) == pytest.approx(100.0)
