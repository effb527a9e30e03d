"""``ibm``: IBM Quantum hardware through qiskit-ibm-runtime's SamplerV2 in Batch mode.

Same circuits as ``ibm_fake`` (compiled once per block for the chosen backend; every token binds its own
amplitude-encoding angles). The account comes from ``QISKIT_IBM_TOKEN`` / ``QISKIT_IBM_INSTANCE`` or a
saved account; the token is read from the environment only, never put in a config, a log or a result,
and scrubbed from any error message. Without an account the device fails at construction, before any
model is loaded.
"""

from __future__ import annotations

import os

from ..errors import ConfigError, QadaptError
from .ibm_fake import QiskitSamplerDevice

TOKEN_ENV, INSTANCE_ENV = "QISKIT_IBM_TOKEN", "QISKIT_IBM_INSTANCE"


def _scrub(message: str) -> str:
    token = os.environ.get(TOKEN_ENV)
    return message.replace(token, "***") if token else message


class IBMDevice(QiskitSamplerDevice):
    """Runs block circuits on an IBM Quantum backend (``backend: null`` = least busy operational QPU).

    Raises (at construction):
        ConfigError: no account (message says how to provide one), extra ``ibm`` missing.
        QadaptError: the account is rejected or the backend is unavailable (token scrubbed).
    """

    name = "ibm"

    def __init__(self, cfg):
        super().__init__(cfg)
        from .mitigation import check, sampler_options

        check(cfg, hardware=True)
        try:
            from qiskit_ibm_runtime import Batch, QiskitRuntimeService, SamplerV2
            from qiskit_ibm_runtime.accounts.exceptions import AccountNotFoundError
        except ImportError:
            raise ConfigError("device=ibm needs the extra `ibm`: pip install -e '.[ibm]'") from None
        token, instance = os.environ.get(TOKEN_ENV), os.environ.get(INSTANCE_ENV)
        try:
            if token:
                service = QiskitRuntimeService(channel=str(cfg.channel), token=token, instance=instance)
            else:
                service = QiskitRuntimeService(channel=str(cfg.channel), instance=instance)
        except AccountNotFoundError:
            raise ConfigError(
                f"device=ibm needs an IBM Quantum account: set {TOKEN_ENV} (and {INSTANCE_ENV}), or save one once with "
                "QiskitRuntimeService.save_account(token=..., instance=...). To try the pipeline without hardware, "
                "use device=ibm_fake."
            ) from None
        except Exception as err:  # rejected token, network: say so without the token
            raise QadaptError(
                f"IBM Quantum account could not be used: {type(err).__name__}: {_scrub(str(err))}"
            ) from None
        try:
            if cfg.backend:
                self.backend = service.backend(str(cfg.backend))
            else:
                self.backend = service.least_busy(operational=True, simulator=False)
        except Exception as err:
            raise QadaptError(f"IBM backend {cfg.backend or '(least busy)'} unavailable: {_scrub(str(err))}") from None
        self.batch = Batch(backend=self.backend)
        self.options = sampler_options(cfg)
        self.sampler = SamplerV2(mode=self.batch, options=self.options)

    def _calibration_mode(self):
        return self.batch

    def describe(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self._settings().items())
        return f"ibm({self.backend.name}, shots={self.shots}{extra})"

    def _settings(self) -> dict:
        """Mitigation settings other than the defaults, for the description."""
        out = {} if self.mitigation == "none" else {"mitigation": self.mitigation}
        if "dynamical_decoupling" in self.options:
            out["dynamical_decoupling"] = self.options["dynamical_decoupling"]["sequence_type"]
        if "twirling" in self.options:
            out["twirling"] = str(self.cfg.twirling)
        return out
