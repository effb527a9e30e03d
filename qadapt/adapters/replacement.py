"""Replacement adapters (QFFN and its classical control): which decoder FFNs they take, how many attention heads
become quantum, and the parameters a QFFN replacement adds (the budget the control is sized to).

Source: QFFN paper ("Less Bits, More Qubits", ../shared/papers/002_*.txt; NOTES.md), Section 3.2 (half of the
FFNs, half of the heads per layer), Section 3.3 / Algorithm 1 (a fraction of the sub-layers, chosen by layer index
or a pattern) and Section 4.5 / Table 2 (fractions: full = all FFNs and half the heads; half; quarter).

Fractions: quarter / half / full replace m = round(f L) of L FFNs (f = 1/4, 1/2, 1; halves round up, at least
one) and make floor(min(f, 1/2) H) of H heads per layer quantum. Layers: ``spread`` (default; evenly spaced,
e.g. every second layer for half), ``last``, or ``random`` (seeded by ``layer_seed``).

Parameters added by a QFFN replacement (qadapt/adapters/qffn/): 3 n D + 2 d per quantum FFN (n = ceil(log2 d)
qubits, depth D; readout scale and bias) and 3 n_h D_h + 1 per quantum head (n_h = ceil(log2 d_h), head depth
D_h; temperature). This module imports the quantum math (qadapt/quantum/ansatz.py) for those counts, never the
quantum adapter itself: the classical control (qadapt/adapters/ffn_lowrank.py) depends on it alone.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from omegaconf import DictConfig

from .. import schema
from ..errors import ConfigError
from ..quantum.ansatz import StronglyEntanglingCircuit, qubits_for
from ..schema import Option
from .options import QFFNAdapter

FRACTIONS = {"quarter": 0.25, "half": 0.5, "full": 1.0}
PATTERNS = ("spread", "last", "random")


@dataclass(frozen=True)
class ReplacementConfig:
    """The ``adapter`` keys every replacement shares: which layers, and the QFFN shape that sets the budget.

    Attributes:
        fraction: ``quarter`` | ``half`` | ``full`` (:data:`FRACTIONS`).
        depth: D of the quantum FFN's circuit (>= 1).
        head_depth: D_h of the quantum heads' kernel circuit (>= 1).
        quantum_heads: whether attention heads become quantum.
        layer_pattern: ``spread`` | ``last`` | ``random`` (:data:`PATTERNS`).
        layer_seed: seed of the ``random`` pattern.
    """

    fraction: str
    depth: int
    head_depth: int
    quantum_heads: bool
    layer_pattern: str
    layer_seed: int

    @classmethod
    def from_cfg(cls, cfg: DictConfig, option: type[Option] = QFFNAdapter) -> ReplacementConfig:
        """Read the keys above from an ``adapter`` config of the option ``option`` (``adapter=qffn``, ``ffn_lowrank``
        or ``ffn_pruned``: the class is passed in, since those modules build on this one); a key the option does not
        declare (the QFFN shape, for the classical controls) is ``adapter=qffn``'s own (configs/adapter/qffn.yaml):
        their budget is QFFN's with the same fraction.

        Raises: ConfigError for a value the option does not accept (the key and what it accepts).
        """
        own = schema.read(cfg, option)
        qffn = own if isinstance(own, QFFNAdapter) else schema.read(schema.option_file("adapter", "qffn"), QFFNAdapter)
        keys = ("fraction", "depth", "head_depth", "quantum_heads", "layer_pattern", "layer_seed")
        return cls(*(getattr(own if key in type(own).model_fields else qffn, key) for key in keys))

    def layers(self, n_layers: int) -> list[int]:
        """:func:`select_layers` for this config."""
        return select_layers(self.fraction, n_layers, self.layer_pattern, self.layer_seed)


def select_layers(fraction: str, n_layers: int, pattern: str = "spread", seed: int = 0) -> list[int]:
    """Indices of the decoder layers whose FFN is replaced: m = round(f L) (halves round up) of L layers.

    spread: floor((i + 1/2) L / m), i = 0..m-1 (half of 30 -> 1, 3, ..., 29); last: the last m; random: m
    drawn with ``random.Random(seed)``. Raises: ConfigError for an unknown fraction or pattern.
    """
    if fraction not in FRACTIONS:
        raise ConfigError(f"unknown adapter.fraction '{fraction}'; valid choices: {', '.join(FRACTIONS)}")
    m = max(1, math.floor(FRACTIONS[fraction] * n_layers + 0.5))
    if pattern == "spread":
        return [math.floor((i + 0.5) * n_layers / m) for i in range(m)]
    if pattern == "last":
        return list(range(n_layers - m, n_layers))
    if pattern == "random":
        return sorted(random.Random(seed).sample(range(n_layers), m))
    raise ConfigError(f"unknown adapter.layer_pattern '{pattern}'; valid choices: {', '.join(PATTERNS)}")


def heads_per_layer(fraction: str, n_heads: int) -> int:
    """floor(min(f, 1/2) H): quarter of 9 heads -> 2, half and full -> 4. Raises: KeyError for an unknown fraction."""
    return math.floor(min(FRACTIONS[fraction], 0.5) * n_heads)


def qffn_params(width: int, depth: int) -> int:
    """Parameters of one quantum FFN: 3 n D (circuit) + 2 d (readout w, b), n = ceil(log2 d)."""
    return StronglyEntanglingCircuit.num_params(qubits_for(width), depth) + 2 * width


def quantum_head_params(head_dim: int, depth: int) -> int:
    """Parameters of one quantum attention head: 3 n_h D_h + 1 (temperature)."""
    return StronglyEntanglingCircuit.num_params(qubits_for(head_dim), depth) + 1


def param_summary(
    cfg: DictConfig, n_layers: int, hidden: int, n_heads: int, head_dim: int, option: type[Option] = QFFNAdapter
) -> dict:
    """Exact parameters a QFFN replacement described by ``cfg`` adds, from the architecture alone.

    Args:
        cfg: ``adapter`` config (:class:`ReplacementConfig` keys). n_layers: L. hidden: d. n_heads: H.
        head_dim: d_h. option: the class of ``cfg``'s option (:meth:`ReplacementConfig.from_cfg`).
    Returns:
        ``layers`` (replaced FFNs), ``ffn_params_each``, ``quantum_heads_per_layer``, ``head_params_each`` and
        ``added_params`` = len(layers) * ffn_params_each + L * heads per layer * head_params_each.
    Raises:
        ConfigError: bad config values.
    """
    config = ReplacementConfig.from_cfg(cfg, option)
    layers = config.layers(n_layers)
    heads = heads_per_layer(config.fraction, n_heads) if config.quantum_heads else 0
    ffn, head = qffn_params(hidden, config.depth), quantum_head_params(head_dim, config.head_depth)
    return {
        "layers": layers,
        "ffn_params_each": ffn,
        "quantum_heads_per_layer": heads,
        "head_params_each": head,
        "added_params": len(layers) * ffn + n_layers * heads * head,
    }
