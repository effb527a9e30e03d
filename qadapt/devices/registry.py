"""The devices by config name (``configs/device/<name>.yaml``), and the device a config names."""

from __future__ import annotations

from omegaconf import DictConfig

from ..errors import ConfigError
from .base import Device
from .exact import ExactDevice
from .ibm import IBMDevice
from .ibm_fake import IBMFakeDevice
from .pennylane import PennyLaneDevice

# config name (configs/device/<name>.yaml) -> class
DEVICES: dict[str, type[Device]] = {
    "exact": ExactDevice,
    "default_qubit": PennyLaneDevice,
    "lightning_qubit": PennyLaneDevice,
    "lightning_gpu": PennyLaneDevice,
    "ibm_fake": IBMFakeDevice,
    "ibm": IBMDevice,
}


def get(cfg: DictConfig) -> Device:
    """The device named by ``cfg.name`` (config group ``device/``).

    Raises:
        ConfigError: unknown device name (lists the valid ones).
    """
    if cfg.name not in DEVICES:
        raise ConfigError(f"unknown device '{cfg.name}'; valid choices: {', '.join(sorted(DEVICES))}")
    return DEVICES[cfg.name](cfg)


def gradients_flow(cfg: DictConfig) -> bool:
    """Whether training can run on the device ``cfg`` names (:attr:`Device.differentiable`), read from its config
    without building it (building one can need an account or a GPU).

    Raises:
        ConfigError: unknown device name (lists the valid ones).
    """
    if cfg.name not in DEVICES:
        raise ConfigError(f"unknown device '{cfg.name}'; valid choices: {', '.join(sorted(DEVICES))}")
    return DEVICES[cfg.name].gradients_flow(cfg)
