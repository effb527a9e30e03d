"""Sweeps through Hydra launchers (qadapt/launch.py, configs/hydra/launcher/): the configs instantiate the plugins'
launchers, a real joblib sweep trains every point in parallel worker processes with the run directories and rows
of local runs, and bad use is refused before anything runs.
(Split by kind: its tests on real models, data, simulators or launches are in
tests/integration/test_launch.py.)"""

from __future__ import annotations

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from typer.testing import CliRunner

from qadapt.cli import app
from qadapt.launch import split_overrides, uses_launcher
from qadapt.paths import CONFIG_DIR


def test_split_overrides():
    run, hydra = split_overrides(
        ["seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "+hydra.x=1", "adapter=cua"]
    )
    assert run == ["seed=0,1", "adapter=cua"]
    assert hydra == ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "+hydra.x=1"]
    assert uses_launcher(hydra) and not uses_launcher(["hydra.launcher.n_jobs=2"])


@pytest.mark.parametrize(
    "launcher,target,field",
    [
        ("joblib", "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", ("n_jobs", 2)),
        (
            "submitit_slurm",
            "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
            ("cpus_per_task", 8),
        ),
        (
            "submitit_local",
            "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
            ("cpus_per_task", 1),
        ),
    ],
)
def test_launcher_configs_are_ours_and_instantiate_the_plugins(launcher, target, field):
    from hydra.utils import instantiate

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(
                "config", [f"hydra/launcher={launcher}", "runs_dir=/tmp/somewhere"], return_hydra_config=True
            )
    finally:
        GlobalHydra.instance().clear()
    assert cfg.hydra.launcher._target_ == target
    assert cfg.hydra.launcher[field[0]] == field[1]  # configs/hydra/launcher/<name>.yaml, not the plugin's default
    assert cfg.hydra.sweep.dir.startswith("/tmp/somewhere/multirun/") and cfg.hydra.job.chdir is False
    assert type(instantiate(cfg.hydra.launcher)).__name__ == target.rsplit(".", 1)[1]  # the plugin takes every field


def test_hydra_settings_outside_a_launcher_sweep_exit_2():
    result = CliRunner().invoke(app, ["train", "hydra/launcher=joblib"])
    assert result.exit_code == 2 and "launcher sweeps only" in result.output
    result = CliRunner().invoke(app, ["train", "-m", "seed=0,1", "hydra.launcher.n_jobs=2"])
    assert result.exit_code == 2
    # every point composes before the launcher starts: a bad option fails at once, with the valid choices
    result = CliRunner().invoke(app, ["train", "-m", "seed=0,1", "adapter=nope", "hydra/launcher=joblib"])
    assert result.exit_code == 2 and "valid choices" in result.output
