"""Packages that load their code on first use (PEP 562 module ``__getattr__``).

Every command's config check imports the ``options`` module of ``qadapt.adapters``, ``devices`` and ``models``,
which runs the package's ``__init__``; an ``__init__`` that imported its code there would make composing a config
pay for torch, peft and transformers (``qadapt config``, measured beside one other job on 2 cores: 7.6 s and
416 MB peak RSS with the option classes in the code modules, 0.7 s and 47 MB as built). Such a package lists its
public names with the module that defines each, and ``__getattr__ = lazy.exports(__name__, names)``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` in ``names`` is ``package.<names[name]>.<name>``, imported
    when first asked for (``qadapt.models.load`` imports ``qadapt.models.loading``).

    Raises (from the returned function):
        AttributeError: ``name`` is not one of ``names``.
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    return __getattr__
