"""The quantum math that is ours: Cayley blocks, circuit descriptions and readout rules. No backend imports here."""

from .cayley import cayley, num_skew_params, random_block_unitaries, random_cayley_generators, skew_symmetric
from .circuits import BlockUnitaryCircuit
from .readout import EncodedBlocks, decode_blocks, encode_blocks, read_out_blocks

__all__ = [
    "BlockUnitaryCircuit",
    "EncodedBlocks",
    "cayley",
    "decode_blocks",
    "encode_blocks",
    "num_skew_params",
    "random_block_unitaries",
    "random_cayley_generators",
    "read_out_blocks",
    "skew_symmetric",
]
