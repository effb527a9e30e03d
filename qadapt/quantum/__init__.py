"""The quantum math that is ours: Cayley blocks and circuit descriptions. No backend imports here."""

from .cayley import cayley, num_skew_params, skew_symmetric
from .circuits import BlockUnitaryCircuit

__all__ = ["BlockUnitaryCircuit", "cayley", "num_skew_params", "skew_symmetric"]
