"""Makes the stock ``lm_eval`` command find ``--model qadapt`` without importing lm-eval or torch at start-up.

lm-eval 0.4 has no plugin entry point for models: its CLI resolves ``--model`` in a registry that its own
``lm_eval.models`` package fills. :func:`install` (run from ``qadapt_lm_eval.pth`` in site-packages, written by
``qadapt lm-eval-hook install``, which ``make setup`` runs) adds an import hook that, once
``lm_eval.models`` has been executed, registers ``qadapt`` as a lazy placeholder for
:class:`qadapt.integrations.harness.QadaptLM`; nothing else is imported until lm-eval asks for that model.
``qadapt lm-eval-hook uninstall`` removes the file.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import sysconfig
from pathlib import Path

TARGET = "lm_eval.models"
PLACEHOLDER = "qadapt.integrations.harness:QadaptLM"
PTH_NAME = "qadapt_lm_eval.pth"
# a no-op when qadapt is no longer installed (site.py runs every "import" line of a .pth at start-up)
PTH_LINE = (
    "import importlib.util as _u; _u.find_spec('qadapt') and "
    "__import__('qadapt.lm_eval_hook', fromlist=['install']).install()\n"
)


def register() -> None:
    """Register ``qadapt`` in lm-eval's model registry (a lazy ``module:object`` placeholder), once."""
    from lm_eval.api.registry import model_registry

    if "qadapt" not in model_registry:
        model_registry.register("qadapt", target=PLACEHOLDER)


class _AfterLmEvalModels(importlib.abc.MetaPathFinder):
    """Finds ``lm_eval.models`` with the other finders and wraps its loader so :func:`register` runs after it."""

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        sys.meta_path.remove(self)  # one shot: the real finders locate the package
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            register()

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Add the import hook (or register at once when ``lm_eval.models`` is already imported)."""
    if TARGET in sys.modules:
        register()
    elif not any(isinstance(f, _AfterLmEvalModels) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterLmEvalModels())


def pth_path() -> Path:
    """Where the start-up file goes: this interpreter's site-packages (purelib)."""
    return Path(sysconfig.get_paths()["purelib"]) / PTH_NAME


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        pth_path().write_text(PTH_LINE)
        print(f"wrote {pth_path()}: `lm_eval --model qadapt` now works in this environment")
        return 0
    if argv[:1] == ["uninstall"]:
        pth_path().unlink(missing_ok=True)
        print(f"removed {pth_path()}")
        return 0
    print(f"unknown action {argv[:1]}; valid choices: install, uninstall", file=sys.stderr)
    return 2
