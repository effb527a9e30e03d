"""Where circuits run. Adapters talk to a :class:`Device`, never to a backend library; the ``device`` options are in
:mod:`.options`, the devices by name in :mod:`.registry`.

The names below load on first use (:mod:`qadapt.lazy`): every command's config check imports :mod:`.options` through
this package, and must not pay for torch, PennyLane or Qiskit.
"""

from __future__ import annotations

from .. import lazy

_NAMES = {"Device": "base", "DEVICES": "registry", "get": "registry", "gradients_flow": "registry"}
__getattr__ = lazy.exports(__name__, _NAMES)
__all__ = sorted(_NAMES)
