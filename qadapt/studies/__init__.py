"""Studies: a comparison written as a spec (``configs/study/<name>.yaml``), run cell by cell with reuse, and
rendered into a table whose every figure comes from the cells and the one estimator (qadapt/results/estimate.py).

``load`` (spec.py) checks a spec; ``run`` (engine.py) runs or looks up its cells; ``render`` (render.py) writes its
table; ``status`` lists its cells, done and left.
"""

from .engine import run, status
from .render import render
from .spec import Study, load

__all__ = ["Study", "load", "render", "run", "status"]
