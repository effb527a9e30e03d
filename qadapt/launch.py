"""Sweeps through Hydra launcher plugins: ``qadapt train -m seed=0,1,2 hydra/launcher=joblib`` (or ``submitit_slurm``,
``submitit_local``; configs in ``configs/hydra/launcher/``).

Without a ``hydra/launcher=`` override, ``-m`` runs its points one after another in this process, sharing base
evaluations (qadapt/cli.py). With one, the sweep goes through Hydra's own multirun (as ``hydra.main`` runs it),
which hands every point to the launcher: joblib worker processes here, SLURM array tasks on a cluster. Each job
receives the config :func:`qadapt.config.compose` would give for its overrides (same config directory, same
overrides, the ``hydra`` node removed), so its run directory and its results row are those of the same point run
locally; rows from all jobs land in one ``results/runs.csv`` under the store's file lock. Hydra writes each job's
config and overrides to ``${runs_dir}/multirun/<time>/<job>/.hydra/``.
"""

from __future__ import annotations

import warnings

from omegaconf import DictConfig, OmegaConf

from .config import declared_forced
from .errors import QadaptError
from .log import log
from .memo import Memo
from .paths import CONFIG_DIR

# configs/hydra/launcher/<name>.yaml carry every field of the plugin's own config of that name (so they stand alone),
# which Hydra 1.3 checks against the plugin's schema with a deprecation notice. Filtered at import: the launcher's
# worker processes import this module when they unpickle the job, before Hydra loads the config there.
warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/\w+' is validated against ConfigStore schema", category=UserWarning
)


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(run overrides, Hydra overrides): ``hydra/...=`` and ``hydra.`` keys go to Hydra, the rest compose the run."""

    def is_hydra(o: str) -> bool:
        key = o.split("=", 1)[0].lstrip("+~")
        return key == "hydra" or key.startswith(("hydra/", "hydra."))

    return [o for o in overrides if not is_hydra(o)], [o for o in overrides if is_hydra(o)]


def uses_launcher(overrides: list[str]) -> bool:
    """Whether ``overrides`` choose a Hydra launcher (``hydra/launcher=<name>``)."""
    return any(o.split("=", 1)[0].lstrip("+~") == "hydra/launcher" for o in overrides)


COMMANDS = ("train", "eval ppl", "eval mc")


def run_job(command: str, cfg: DictConfig, memo: Memo | None = None) -> dict:
    """One point of a launcher sweep, inside the job: the experiment command ``command`` on ``cfg`` (Hydra's,
    ``hydra`` removed).

    Raises:
        QadaptError: whatever the experiment raises (the launcher records the job as failed; the sweep reports it).
    """
    from hydra.core.hydra_config import HydraConfig

    point = [o for o in HydraConfig.get().overrides.task if not split_overrides([o])[1]]
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # as compose() returns it: resolved
    try:
        from .experiments import run

        return run(command, cfg, point, memo)
    except QadaptError as err:
        log(f"error in sweep point {' '.join(point)}: {err}")
        raise


def multirun(command: str, overrides: list[str]) -> int:
    """Run the sweep ``overrides`` (with its ``hydra/launcher=`` choice) through Hydra's multirun; returns the number
    of jobs. The same steps as ``hydra.main`` in ``--multirun`` mode (search path, ``Hydra.create_main_hydra2``,
    ``multirun``), without its error report: a failed job's own exception reaches the caller.

    Raises:
        ValueError: ``command`` is not train, eval ppl or eval mc.
        Whatever a failed job raised, once the launcher has collected every job (Hydra's sweeper re-raises it).
    """
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.global_hydra import GlobalHydra

    if command not in COMMANDS:
        raise ValueError(f"unknown sweep command '{command}'; valid choices: {', '.join(COMMANDS)}")

    # the points a launcher runs in this process share its base evaluations and caches (a process-pool launcher's
    # workers each start from an empty copy)
    memo = Memo()

    def task(cfg: DictConfig) -> dict:
        return run_job(command, cfg, memo)

    GlobalHydra.instance().clear()
    try:
        hydra = Hydra.create_main_hydra2(
            task_name="qadapt", config_search_path=create_automatic_config_search_path(None, None, str(CONFIG_DIR))
        )
        # declared keys an option's YAML leaves out are settable here as in compose (++key=value, sweeps included)
        sweep = declared_forced(list(overrides))
        batches = hydra.multirun(config_name="config", task_function=task, overrides=sweep)
    finally:
        GlobalHydra.instance().clear()
    return sum(len(batch) for batch in batches or [])
