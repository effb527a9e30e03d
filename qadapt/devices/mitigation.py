"""Error mitigation of sampled block circuits (``device.mitigation``) and the SamplerV2 options IBM hardware takes.

``readout``: measurement-error mitigation. The assignment matrix of every measured physical qubit is calibrated on
the same backend by mthree (``M3Mitigation.cals_from_system``, its ``balanced`` method: 2 x shots in all, spread over
the circuits of a Hadamard design; Nation et al., PRX Quantum 2, 040326 (2021)). The counts of a block measured on
qubits (q_0 .. q_{k-1}) (clbit i on q_i, outcome index sum_i bit_i 2^i) are then corrected by the inverse of the
tensored assignment matrix, A^-1 = A_{q_{k-1}}^-1 x ... x A_{q_0}^-1, and projected onto the nearest probability
distribution in the 2-norm (Smolin, Gambetta and Smith, PRL 108, 070502 (2012)). With all 2^k outcomes in its
subspace, which is the case for the k <= 8 qubits of a block, that is what mthree's ``apply_correction`` followed by
``nearest_probability_distribution`` returns (tests/{unit,integration}/test_mitigation.py checks it); here it is one
batched matmul over
every (token, block) circuit instead of one call per circuit.

``dynamical_decoupling`` and ``twirling`` are SamplerV2 options of IBM Runtime (``device=ibm``): passed through as
given. Neither Aer's SamplerV2 nor the fused engine honours them, so ``device=ibm_fake`` refuses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import schema
from ..errors import ConfigError
from .options import IBMKeys


def _ibm_keys(cfg) -> IBMKeys:
    """The keys both IBM devices share, read from an ``ibm`` or ``ibm_fake`` device block (each device's own keys are
    checked by ``compose``).

    Raises:
        ConfigError: a shared key's value is not one the option accepts (the key and what it accepts).
    """
    return schema.read({k: v for k, v in cfg.items() if k in IBMKeys.model_fields}, IBMKeys)


def check(cfg, hardware: bool) -> None:
    """Check ``device.mitigation`` / ``dynamical_decoupling`` / ``twirling`` of a sampling IBM device against what it
    can do (their values: :class:`~qadapt.devices.options.IBMKeys`).

    Raises:
        ConfigError: a value the option does not accept; readout mitigation without noise (nothing to correct);
            dynamical decoupling or twirling on a simulator that ignores them (``hardware`` false).
    """
    o = _ibm_keys(cfg)
    if o.mitigation == "readout" and cfg.name == "ibm_fake" and not cfg.noise:
        raise ConfigError("device.mitigation=readout corrects readout noise; with device.noise=false there is none")
    if not hardware and (o.dynamical_decoupling is not None or o.twirling != "none"):
        raise ConfigError(
            f"device={cfg.name}: neither Aer's SamplerV2 nor the fused engine applies dynamical decoupling or "
            "twirling (IBM Runtime does, on the QPU); set device.dynamical_decoupling=null device.twirling=none, "
            "or use device=ibm"
        )


def sampler_options(cfg) -> dict:
    """SamplerV2 options (qiskit-ibm-runtime ``SamplerOptions``) for ``device.dynamical_decoupling`` and
    ``device.twirling``: ``{"dynamical_decoupling": {...}, "twirling": {...}}``, only what is switched on.

    Raises:
        ConfigError: a shared IBM key's value is not one the option accepts (the key and what it accepts).
    """
    options: dict = {}
    o = _ibm_keys(cfg)
    if o.dynamical_decoupling is not None:
        options["dynamical_decoupling"] = {"enable": True, "sequence_type": o.dynamical_decoupling}
    twirling = o.twirling
    if twirling != "none":
        options["twirling"] = {
            "enable_gates": twirling in ("gates", "both"),
            "enable_measure": twirling in ("measure", "both"),
        }
    return options


def measured_qubits(compiled) -> list[int]:
    """Physical qubit of each classical bit of a transpiled circuit, in clbit order (clbit 0 first).

    Raises:
        ConfigError: a clbit measured twice or never (not a block circuit).
    """
    qubits: dict[int, int] = {}
    for instruction in compiled.data:
        if instruction.operation.name == "measure":
            clbit = compiled.find_bit(instruction.clbits[0]).index
            if clbit in qubits:
                raise ConfigError(f"clbit {clbit} of {compiled.name} is measured twice")
            qubits[clbit] = compiled.find_bit(instruction.qubits[0]).index
    if sorted(qubits) != list(range(compiled.num_clbits)):
        raise ConfigError(f"{compiled.name}: not every clbit is measured once")
    return [qubits[c] for c in range(compiled.num_clbits)]


def nearest_probability(quasi: torch.Tensor) -> torch.Tensor:
    """The probability vector closest in the 2-norm to each quasi-probability vector (Euclidean projection onto the
    simplex; Smolin, Gambetta and Smith, PRL 108, 070502 (2012), the rule mthree's
    ``nearest_probability_distribution`` applies).

    Args:
        quasi: ``(..., b)`` real, each row summing to 1 (up to rounding).
    Returns:
        ``(..., b)``: non-negative, rows summing to 1.
    """
    b = quasi.shape[-1]
    ordered = torch.sort(quasi, dim=-1, descending=True).values
    excess = ordered.cumsum(-1) - 1.0
    ranks = torch.arange(1, b + 1, dtype=quasi.dtype, device=quasi.device)
    kept = (ordered - excess / ranks > 0).sum(-1, keepdim=True).clamp(min=1)
    shift = excess.gather(-1, kept - 1) / kept.to(quasi.dtype)
    return (quasi - shift).clamp(min=0.0)


@dataclass
class ReadoutCalibration:
    """Assignment matrices of calibrated physical qubits and what calibrating them cost.

    Attributes:
        matrices: physical qubit -> ``(2, 2)``, entry [measured, prepared] = P(measured | prepared).
        circuits: calibration circuits run. shots: their shots in all.
    """

    matrices: dict[int, np.ndarray]
    circuits: int
    shots: int

    def inverse(self, qubits: list[list[int]]) -> torch.Tensor:
        """``(n, 2^k, 2^k)`` float64: inverse tensored assignment matrix of each block, its clbits on ``qubits[j]``."""
        inverses = {q: np.linalg.inv(m) for q, m in self.matrices.items()}
        return torch.from_numpy(np.stack([tensored(inverses, block) for block in qubits]))


def tensored(matrices: dict[int, np.ndarray], qubits: list[int]) -> np.ndarray:
    """``(2^k, 2^k)``: the Kronecker product of the qubits' 2 x 2 matrices acting on outcome indices sum_i bit_i 2^i,
    clbit i read on ``qubits[i]`` (clbit 0 = least significant bit: the rightmost factor)."""
    out = np.ones((1, 1))
    for qubit in qubits:  # clbit i's factor goes to the left of those of clbits < i
        out = np.kron(matrices[qubit], out)
    return out


def calibrate(backend, qubits: list[int], shots: int, seed: int | None = None, mode=None) -> ReadoutCalibration:
    """Calibrate the readout of ``qubits`` on ``backend`` with mthree's balanced method.

    Args:
        backend: an IBM backend (``mode``: the Batch its jobs join) or a simulator of one (an ``AerSimulator`` with
            the backend's target and noise model; ``seed`` seeds its sampling).
        qubits: physical qubits to calibrate. shots: calibration shots per qubit state (mthree's ``shots``).
    Raises:
        ConfigError: mthree missing (extra ``ibm``).
    """
    try:
        import mthree
        from mthree.generators import HadamardGenerator
    except ImportError:
        raise ConfigError("device.mitigation=readout needs mthree (extra `ibm`): pip install -e '.[ibm]'") from None
    if seed is not None and "seed_simulator" in getattr(backend, "options", {}):
        backend.set_options(seed_simulator=seed)
    qubits = sorted(set(int(q) for q in qubits))
    mitigator = mthree.M3Mitigation(backend)
    mitigator.cals_from_system(qubits, shots=shots, method="balanced", async_cal=False, runtime_mode=mode)
    designs = HadamardGenerator(len(qubits)).length
    per_circuit = math.ceil(2 * shots / designs)  # mthree's balanced rule: 2 x shots spread over the designs
    matrices = {q: np.asarray(mitigator.single_qubit_cals[q], dtype=np.float64) for q in qubits}
    return ReadoutCalibration(matrices, designs, designs * per_circuit)


def correct(probabilities: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """Readout-mitigated outcome distributions.

    Args:
        probabilities: ``(N, n, b)`` measured frequencies (counts / shots) of N tokens' n block circuits.
        inverse: ``(n, b, b)`` from :meth:`ReadoutCalibration.inverse`.
    Returns:
        ``(N, n, b)``, each row the nearest probability distribution to A^-1 p.
    """
    quasi = torch.einsum("jab,njb->nja", inverse.to(probabilities.dtype), probabilities)
    return nearest_probability(quasi)
