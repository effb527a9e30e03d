"""``ibm``: IBM Quantum hardware through qiskit-ibm-runtime in Batch mode: its client-side Sampler
(``qiskit_ibm_runtime.executor_sampler.Sampler``, built on the Executor) where the installed runtime has it, else
SamplerV2 (deprecated in 0.50), chosen by what the runtime offers, not by its version (:func:`runtime_sampler`).

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


def runtime_sampler(mode, cfg) -> tuple[object, str]:
    """qiskit-ibm-runtime's sampler for ``mode`` (a Batch, or a fake backend: the runtime's local mode) with
    ``device.dynamical_decoupling`` and ``device.twirling`` as its options, and its name for the row.

    The client-side ``executor_sampler.Sampler`` where the runtime has it: its options are SamplerV2's (``enable``
    and ``sequence_type``; ``enable_gates`` and ``enable_measure``), and twirling is switched off explicitly when
    ``device.twirling=none`` (qadapt's block circuits carry no ``BoxOp``, which the Sampler needs without twirling).
    Otherwise ``SamplerV2``.

    Raises:
        pydantic.ValidationError (from the runtime's options model): options it does not accept; the device's own
            options are checked by ``qadapt.schema`` before they get here.
    """
    from .mitigation import sampler_options

    options = sampler_options(cfg)
    try:
        from qiskit_ibm_runtime.executor_sampler import Sampler
    except ImportError:  # a runtime before 0.50
        from qiskit_ibm_runtime import SamplerV2

        return SamplerV2(mode=mode, options=options), "SamplerV2"
    twirling = options.get("twirling", {})
    explicit = {
        **options,
        "twirling": {key: bool(twirling.get(key)) for key in ("enable_gates", "enable_measure")},
    }
    return Sampler(mode=mode, options=explicit), "executor Sampler"


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
            from qiskit_ibm_runtime import Batch, QiskitRuntimeService
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
        self.sampler, self.sampler_name = runtime_sampler(self.batch, cfg)

    def _calibration_mode(self):
        return self.batch

    def describe(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self._settings().items())
        return f"ibm({self.backend.name}, shots={self.shots}, {self.sampler_name}{extra})"

    def _settings(self) -> dict:
        """Mitigation settings other than the defaults, for the description."""
        out = {} if self.mitigation == "none" else {"mitigation": self.mitigation}
        if "dynamical_decoupling" in self.options:
            out["dynamical_decoupling"] = self.options["dynamical_decoupling"]["sequence_type"]
        if "twirling" in self.options:
            out["twirling"] = str(self.cfg.twirling)
        return out
