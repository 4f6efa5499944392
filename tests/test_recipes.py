"""The dataset brings its training recipe (conf/recipe/); rows, sweeps and the command line override it."""

import pytest

from src.utils.config import ConfigError, apply_global_batch
from tests.helpers import CONF_DIR, cli, compose_train, resolved

STH = {"trainer.max_epochs": 55, "optim.lr": 0.01, "optim.lr_steps": [25, 45], "loss.lambda_rt": 0.5,
       "global_batch_size": 32, "num_segments": 8, "optim.weight_decay": 1e-4, "trainer.gradient_clip_val": 20,
       "optim.groups.nav_lr_mult": 10.0, "schedule.tau.t_end": 50, "schedule.tau.t1": 0.01,
       "schedule.rt_warmup.begin": 10, "schedule.rt_warmup.end": 20, "schedule.rt_warmup.enabled": True}
KINETICS = {**STH, "trainer.max_epochs": 50, "optim.lr": 0.002, "optim.lr_steps": [20, 40], "loss.lambda_rt": 1.0,
            "num_segments": 12}
IMAGENET = {"trainer.max_epochs": 90, "optim.lr": 0.1, "optim.lr_steps": [30, 60], "optim.warmup_epochs": 5,
            "global_batch_size": 256, "num_segments": 1, "rt": 1.0, "loss.lambda_rt": 0.0,
            "schedule.rt_warmup.enabled": False, "trainer.gradient_clip_val": None, "optim.weight_decay": 1e-4}
SYNTHETIC = {"trainer.max_epochs": 15, "optim.lr": 0.01, "optim.lr_steps": [14], "loss.lambda_rt": 4.0,
             "global_batch_size": None, "batch_size": 16, "num_segments": 8, "optim.groups.nav_lr_mult": 200.0,
             "schedule.tau.t_end": 45, "schedule.rt_warmup.begin": 2, "schedule.rt_warmup.end": 8,
             "trainer.gradient_clip_val": 20}
RECIPES = {"jester": STH, "sthv1": STH, "sthv2": STH, "minik": KINETICS, "activitynet": KINETICS,
           "imagenet": IMAGENET, "synthetic": SYNTHETIC, "synthetic_video": SYNTHETIC}


def value(c: dict, key: str):
    for part in key.split("."):
        c = c[part]
    return c


@pytest.mark.parametrize("dataset", sorted(RECIPES))
def test_the_dataset_brings_its_recipe(dataset, tmp_path):
    c = resolved(compose_train([f"dataset={dataset}"], tmp_path))
    assert c["dataset"]["name"] == dataset
    for key, expected in RECIPES[dataset].items():
        assert value(c, key) == expected, key


def test_the_default_is_the_built_in_short_recipe(tmp_path):
    c = resolved(compose_train([], tmp_path))
    for key, expected in SYNTHETIC.items():
        assert value(c, key) == expected, key


@pytest.mark.parametrize("dataset", ["jester", "minik", "synthetic"])
def test_command_line_values_win_over_the_recipe(dataset, tmp_path):
    c = resolved(compose_train([f"dataset={dataset}", "optim.lr=0.05", "trainer.max_epochs=3", "loss.lambda_rt=2",
                                "num_segments=16", "optim.lr_steps=[1,2]", "schedule.rt_warmup.enabled=false"],
                               tmp_path))
    assert (c["optim"]["lr"], c["trainer"]["max_epochs"], c["loss"]["lambda_rt"]) == (0.05, 3, 2)
    assert c["num_segments"] == 16 and c["dataset"]["num_segments"] == 16 and c["optim"]["lr_steps"] == [1, 2]
    assert c["schedule"]["rt_warmup"]["enabled"] is False


def test_another_recipe_can_be_chosen(tmp_path):
    c = resolved(compose_train(["dataset=synthetic", "recipe=sth"], tmp_path))
    assert c["dataset"]["name"] == "synthetic" and c["trainer"]["max_epochs"] == 55


def test_a_row_overrides_the_recipe(tmp_path):
    c = resolved(compose_train(["sweep=R3", "+row=R3/afnet_tsm_r50_12f_rt0.4"], tmp_path))
    assert c["num_segments"] == 12 and c["rt"] == 0.4 and c["trainer"]["max_epochs"] == 55


def test_recipes_leave_the_device_to_the_trainer_group():
    for path in (CONF_DIR / "recipe").glob("*.yaml"):
        assert "accelerator" not in path.read_text() and "precision" not in path.read_text(), path


def test_the_headline_command_shows_the_jester_recipe():
    """`python -m src.train --cfg job dataset=jester backbone=r34 rt=0.5` prints the paper's Jester recipe."""
    import yaml

    proc = cli(["-m", "src.train", "--cfg", "job", "dataset=jester", "backbone=r34", "rt=0.5"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    c = yaml.safe_load(proc.stdout)
    assert (c["trainer"]["max_epochs"], c["loss"]["lambda_rt"], c["optim"]["lr"]) == (55, 0.5, 0.01)
    assert c["optim"]["lr_steps"] == [25, 45] and c["backbone"]["name"] == "r34" and c["rt"] == 0.5


@pytest.mark.parametrize("devices,nodes,accumulate,per_device", [(1, 1, 1, 32), (1, 1, 4, 8), (2, 1, 2, 8),
                                                                 (4, 2, 1, 4)])
def test_global_batch_accounts_for_devices_and_accumulation(devices, nodes, accumulate, per_device, tmp_path):
    cfg = compose_train(["dataset=jester", "trainer=ddp", f"trainer.devices={devices}", f"trainer.num_nodes={nodes}",
                         f"trainer.accumulate_grad_batches={accumulate}"], tmp_path)
    apply_global_batch(cfg)
    assert cfg.batch_size == per_device and cfg.trainer.accumulate_grad_batches == accumulate


def test_global_batch_must_divide_with_accumulation(tmp_path):
    cfg = compose_train(["dataset=jester", "trainer.accumulate_grad_batches=3"], tmp_path)
    with pytest.raises(ConfigError, match="accumulate_grad_batches"):
        apply_global_batch(cfg)


def test_bad_accumulation_names_the_key(tmp_path):
    cfg = compose_train(["dataset=jester", "trainer.accumulate_grad_batches=0"], tmp_path)
    with pytest.raises(ConfigError, match=r"trainer\.accumulate_grad_batches=0"):
        apply_global_batch(cfg)


def test_a_command_line_batch_size_wins_over_the_recipe_global_batch(tmp_path, capsys):
    from src.utils.config import honour_explicit_batch

    cfg = compose_train(["dataset=jester", "batch_size=8"], tmp_path)
    honour_explicit_batch(cfg, ["dataset=jester", "batch_size=8"])
    apply_global_batch(cfg)
    assert cfg.batch_size == 8 and cfg.global_batch_size is None
    assert "global_batch_size=32 is not applied" in capsys.readouterr().out
    cfg = compose_train(["dataset=jester", "batch_size=8", "global_batch_size=64"], tmp_path)
    honour_explicit_batch(cfg, ["dataset=jester", "batch_size=8", "global_batch_size=64"])
    apply_global_batch(cfg)
    assert cfg.batch_size == 64


@pytest.mark.parametrize("overrides,warned", [(["dataset=jester"], True), (["dataset=minik"], True),
                                               (["dataset=jester", "pretrained=/w/af_r34.pth"], False),
                                               ([], False), (["experiment=pretrain_imagenet"], False)])
def test_training_a_real_dataset_from_scratch_warns_naming_the_key(overrides, warned, tmp_path, capsys):
    from src.train import warn_if_not_pretrained

    warn_if_not_pretrained(compose_train(overrides, tmp_path), resuming=False)
    err = capsys.readouterr().err
    assert ("pretrained=null" in err and "pretrained=PATH" in err) == warned


def test_train_help_lists_the_groups_and_the_recipe_rule():
    proc = cli(["-m", "src.train", "--help"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "brings its paper recipe" in proc.stdout and "test_protocol: dense" in proc.stdout
    assert "recipe: activitynet" in proc.stdout


@pytest.mark.parametrize("experiment,recipe", [("recipe_sth", STH), ("recipe_kinetics", KINETICS)])
def test_earlier_recipe_experiments_still_compose(experiment, recipe, tmp_path):
    """Checkpoints of runs launched with `experiment=recipe_*` still recompose (src.eval, resume)."""
    c = resolved(compose_train([f"experiment={experiment}"], tmp_path))
    assert c["dataset"]["name"] == "synthetic"
    for key, expected in recipe.items():
        assert value(c, key) == expected, key
