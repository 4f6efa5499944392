"""The notebooks run headless (src.tools.notebook_runner): the runner itself and clean notebook files in the fast lane,
the two notebooks end to end in the slow lane (a tiny AFNet trained for the frame-selection one)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from src.tools.notebook_runner import code_cells, run_notebook
from tests.helpers import compose_train, tiny_backbone, tiny_overrides

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def write_notebook(path: Path, *cells: tuple[str, str]) -> Path:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": kind, "metadata": {}, "source": src.splitlines(keepends=True),
                     **({"outputs": [], "execution_count": None} if kind == "code" else {})} for kind, src in cells]}
    path.write_text(json.dumps(nb))
    return path


def test_runner_executes_code_cells_in_order_in_one_namespace(tmp_path):
    nb = write_notebook(tmp_path / "x.ipynb", ("markdown", "# title\nx = 'not code'"),
                        ("code", "%matplotlib inline\nx = 2"),
                        ("code", "import matplotlib\nbackend = matplotlib.get_backend()\ny = x * 3"))
    assert code_cells(nb) == ["x = 2", "import matplotlib\nbackend = matplotlib.get_backend()\ny = x * 3"]
    ns = run_notebook(nb)
    assert ns["y"] == 6 and ns["backend"].lower() == "agg"


@pytest.mark.parametrize("name", ["frames_selected", "accuracy_vs_gflops"])
def test_committed_notebooks_have_no_outputs(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert nb["nbformat"] == 4 and code and any(c["cell_type"] == "markdown" for c in nb["cells"])
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)


@pytest.mark.slow
def test_frames_selected_draws_the_masks_of_a_trained_afnet(tiny_data_root, tmp_path, monkeypatch):
    from src.train import train

    cfg = compose_train([*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=afnet_tsm",
                         "trainer.max_epochs=1"], tmp_path / "run")
    ckpt = train(cfg)["best_ckpt"]
    monkeypatch.setenv("AFNET_CKPT", ckpt)
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path / "out"))
    ns = run_notebook(NOTEBOOKS / "frames_selected.ipynb")
    assert (tmp_path / "out" / "frames_selected.png").stat().st_size > 0
    masks = ns["masks"]  # what the figure drew: (videos, blocks, T)
    assert tuple(masks.shape) == (ns["N_VIDEOS"], ns["net"].num_masks, cfg.num_segments) == (3, 3, 8)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.slow
def test_accuracy_vs_gflops_plots_the_demo_table(tmp_path, monkeypatch):
    monkeypatch.delenv("REPORT_CSV", raising=False)  # the default: experiments/demo/results.csv
    monkeypatch.setenv("NOTEBOOK_OUT", str(tmp_path))
    ns = run_notebook(NOTEBOOKS / "accuracy_vs_gflops.ipynb")
    assert (tmp_path / "demo_accuracy_vs_gflops.png").stat().st_size > 0
    with open(ROOT / "experiments" / "demo" / "results.csv", newline="") as f:
        methods = [r["method"] for r in csv.DictReader(f)]
    assert methods[:2] == ["tsn", "tsm"] and [r["method"] for r in ns["rows"]] == methods  # every row, in order
