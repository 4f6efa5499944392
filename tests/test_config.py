"""Every config group option composes and resolves; bad values fail before compute, naming the key."""

import pytest
from hydra.errors import ConfigCompositionException, MissingConfigException

from src.utils.config import ConfigError, validate
from tests.helpers import compose_train, group_options, resolved

GROUPS = ["dataset", "backbone", "model", "optim", "callbacks", "logger", "trainer", "debug", "experiment", "recipe",
          "test_protocol"]


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_group_option_composes(group, option, tmp_path):
    cfg = compose_train([f"{group}={option}"], tmp_path)
    resolved(cfg)
    validate(cfg)


def test_top_level_keys_drive_model_and_data(tmp_path):
    cfg = compose_train(["rt=0.25", "num_segments=12", "backbone=r34", "model=afnet_tsm"], tmp_path)
    c = resolved(cfg)
    assert c["model"]["num_segments"] == 12 and c["dataset"]["num_segments"] == 12
    assert c["run_name"] == "afnet_tsm_r34_12f_rt0.25_synthetic"


@pytest.mark.parametrize("override,key", [("rt=0", "rt="), ("rt=1.5", "rt="), ("rs=2", "rs="),
                                          ("num_segments=0", "num_segments="), ("batch_size=0", "batch_size="),
                                          ("schedule.tau.kind=step", "schedule.tau.kind")])
def test_invalid_values_name_their_key(override, key, tmp_path):
    cfg = compose_train([override], tmp_path)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(cfg)


@pytest.mark.parametrize("group", ["dataset", "backbone", "model"])
def test_unknown_option_lists_the_choices(group, tmp_path):
    with pytest.raises((ConfigCompositionException, MissingConfigException)) as e:
        compose_train([f"{group}=nope"], tmp_path)
    msg = str(e.value)
    assert f"'{group}/nope'" in msg or f"{group}/nope" in msg
    for option in group_options(group)[:3]:
        assert option in msg


@pytest.mark.parametrize("devices,nodes,per_device", [(1, 1, 32), (2, 1, 16), (4, 2, 4)])
def test_global_batch_is_kept_whatever_the_device_count(devices, nodes, per_device, tmp_path):
    from src.utils.config import apply_global_batch

    cfg = compose_train(["dataset=jester", "trainer=ddp", f"trainer.devices={devices}",
                         f"trainer.num_nodes={nodes}"], tmp_path)
    apply_global_batch(cfg)
    assert cfg.batch_size == per_device
    assert resolved(cfg)["dataset"]["batch_size"] == per_device


def test_global_batch_must_divide(tmp_path):
    from src.utils.config import apply_global_batch

    cfg = compose_train(["global_batch_size=30", "trainer=ddp", "trainer.devices=4"], tmp_path)
    with pytest.raises(ConfigError, match="global_batch_size"):
        apply_global_batch(cfg)


def test_slurm_launcher_composes_with_its_resources(tmp_path):
    from src.utils.runs import compose

    cfg = compose("train", ["launcher=slurm", "slurm.gpus_per_node=4", "slurm.nodes=2", "slurm.partition=gpu",
                            "dataset=jester"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (2, 4, 4)
    assert launcher.partition == "gpu" and launcher.signal_delay_s > 0
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.devices == 4 and cfg.trainer.num_nodes == 2
    from src.utils.config import apply_global_batch

    apply_global_batch(cfg)
    assert cfg.batch_size == 4  # 32 over 8 GPUs
