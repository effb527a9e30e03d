"""Models: loading causal LMs (:mod:`.loading`: a GGUF in a PyPI package, the hub, a local path, the meta device),
the classification backbones (:mod:`.encoders`), compression (:mod:`.compress`), layer lookup and inference kernels;
their ``model`` options in :mod:`.options`. The names of :mod:`.loading` load on first use (:mod:`qadapt.lazy`).
"""

from __future__ import annotations

from .. import lazy

_NAMES = dict.fromkeys(
    (
        "DTYPES",
        "LoadedModel",
        "assemble_gguf",
        "build_meta",
        "input_device",
        "load",
        "locate_chunks",
        "locate_gguf",
        "placement",
        "_gguf_cache",
    ),
    "loading",
)
__getattr__ = lazy.exports(__name__, _NAMES)
__all__ = sorted(n for n in _NAMES if not n.startswith("_"))
