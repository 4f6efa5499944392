"""Each paper table's sweep launches exactly the table's trained rows, with the dataset's recipe."""

import pytest
import yaml

from src.report import TABLES, load_tables, row_id
from tests.helpers import CONF_DIR, compose_train, resolved

PAPER = load_tables()
RECIPES = {  # the paper's recipes (conf/recipe/)
    "sth": {"optim.groups.nav_lr_mult": 10.0, "optim.lr": 0.01, "optim.lr_steps": [25, 45],
                   "trainer.max_epochs": 55, "loss.lambda_rt": 0.5},
    "kinetics": {"optim.groups.nav_lr_mult": 10.0, "optim.lr": 0.002, "optim.lr_steps": [20, 40],
                        "trainer.max_epochs": 50, "loss.lambda_rt": 1.0},
    "imagenet": {"optim.lr": 0.1, "optim.lr_steps": [30, 60], "trainer.max_epochs": 90,
                          "optim.warmup_epochs": 5, "global_batch_size": 256, "num_segments": 1},
}
RECIPE_OF = {"jester": "sth", "sthv1": "sth", "sthv2": "sth", "minik": "kinetics", "activitynet": "kinetics",
             "imagenet": "imagenet"}
TRAINED = [t for t, spec in PAPER.items() if any(not r.get("cited") for r in spec.get("rows", [])) and t != "S5"]


def sweep_rows(table):
    params = yaml.safe_load((CONF_DIR / "sweep" / f"{table}.yaml").read_text())["hydra"]["sweeper"]["params"]
    return [r.strip() for r in str(params["+row"]).split(",")]


@pytest.mark.parametrize("table", TRAINED)
def test_sweep_launches_exactly_the_trained_rows(table, tmp_path):
    spec = PAPER[table]
    expected = {row_id(table, r): r for r in spec["rows"] if not r.get("cited")}
    launched = sweep_rows(table)
    assert sorted(launched) == sorted(expected)
    recipe = RECIPES[RECIPE_OF[spec["dataset"]]]
    for rid in launched:
        row = expected[rid]
        c = resolved(compose_train([f"sweep={table}", f"+row={rid}"], tmp_path))
        assert c["row_id"] == rid and c["dataset"]["name"] == spec["dataset"]
        if row["method"] == "af_backbone":
            assert c["model"]["method"] == "afnet" and c["rt"] == 1.0
        else:
            assert c["model"]["method"] == row["method"]
            assert c["num_segments"] == row["frames"]
            assert c["rt"] == row.get("rt", c["rt"]) and c["rs"] == row.get("rs")
            assert c["model"].get("fusion", "dynamic") == {"addition": "add"}.get(row.get("fusion"), "dynamic")
            assert c["schedule"]["tau"]["kind"] == row.get("tau_schedule", "exponential")
        assert c["backbone"]["name"] == row["backbone"]
        for key, value in recipe.items():
            node = c
            for part in key.split("."):
                node = node[part]
            assert node == value, (rid, key)


def test_demo_sweep_launches_the_demo_table_rows(tmp_path):
    """The built-in demonstration (conf/tables/demo-tables.yaml) goes through the same sweep mechanism."""
    demo = load_tables(TABLES.parent / "demo-tables.yaml")["demo"]
    expected = {row_id("demo", r): r for r in demo["rows"]}
    assert sorted(sweep_rows("demo")) == sorted(expected)
    for rid, row in expected.items():
        c = resolved(compose_train(["sweep=demo", f"+row={rid}"], tmp_path))
        assert c["row_id"] == rid and c["dataset"]["name"] == demo["dataset"]
        assert c["model"]["method"] == row["method"] and c["num_segments"] == row["frames"]
        assert c["rt"] == row.get("rt", c["rt"])
