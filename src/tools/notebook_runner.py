"""Run a notebook headless: `python -m src.tools.notebook_runner notebooks/x.ipynb [more.ipynb ...]`.

Executes the code cells of an nbformat-4 notebook in order, in one namespace, with matplotlib's Agg
backend, so notebooks run in tests and on machines without Jupyter (no nbformat / nbclient needed: the
.ipynb file is plain JSON). The working directory is restored afterwards (a notebook may chdir).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path


def code_cells(path: str | Path) -> list[str]:
    """The source of each code cell, in order; IPython magics and shell lines (`%...`, `!...`) are dropped
    because plain Python cannot run them."""
    nb = json.loads(Path(path).read_text())
    if nb.get("nbformat") != 4:
        raise ValueError(f"{path}: nbformat {nb.get('nbformat')}, expected 4")
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        cells.append("\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("%", "!"))))
    return cells


def run_notebook(path: str | Path) -> dict:
    """Execute the notebook's code cells; returns the namespace they ran in (what the notebook defined)."""
    import matplotlib

    matplotlib.use("Agg")  # before the notebook imports pyplot: no display needed
    namespace = {"__name__": "__main__", "__file__": str(Path(path).resolve())}
    cwd = os.getcwd()
    try:
        with warnings.catch_warnings():
            # plt.show() under Agg warns that it cannot show: expected here
            warnings.filterwarnings("ignore", message=".*non-interactive.*")
            for i, src in enumerate(code_cells(path)):
                exec(compile(src, f"{path}[cell {i}]", "exec"), namespace)
    finally:
        os.chdir(cwd)
        import matplotlib.pyplot as plt

        plt.close("all")
    return namespace


def main(argv: list[str] | None = None) -> None:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        raise SystemExit("usage: python -m src.tools.notebook_runner NOTEBOOK.ipynb [...]")
    for p in paths:
        print(f"running {p}", flush=True)
        run_notebook(p)


if __name__ == "__main__":
    main()
