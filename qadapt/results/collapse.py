"""Degenerate runs, named when they finish: a table never averages one in silently (the study engine flags it in
every table that uses it and never selects its point).

A run *collapsed* when its training did something other than learn: the loss never left its start, the adapted
perplexity diverged from the model it started from, or a classifier answers one class for every example. Each rule
is checked on the run's own row (and, for a classifier, its predictions) when it finishes; the reason goes in the
row's ``collapse`` column (empty: it did not collapse).
"""

from __future__ import annotations

import math

STUCK_REL = 1e-4  # |final - first| / first below this: the loss never left its start
DIVERGED_RATIO = 2.0  # a trained adapter whose perplexity is this many times its own base perplexity diverged


def reason(row: dict, predictions=None, labels=None, regression: bool = False) -> str | None:
    """Why a finished run collapsed, or None.

    Args:
        row: the run's results row (``train_loss_first``, ``train_loss_final``, ``perplexity``, ``base_perplexity``,
            ``train_steps``; absent keys are not checked).
        predictions, labels: a classifier's predicted and true classes on the scored split (``(N,)`` each).
        regression: the task is a regression (predictions are values, not classes: the one-class rule is skipped).
    Returns: ``"loss never left its start (3.795 -> 3.795)"``, ``"perplexity diverged (54.1 against base 21.8)"``,
        ``"one class for every example (class 0, 1,000 of 1,000)"``, or None.
    """
    first, final = _number(row.get("train_loss_first")), _number(row.get("train_loss_final"))
    steps = _number(row.get("train_steps")) or 0
    if steps > 1 and first is not None and final is not None and abs(final - first) <= STUCK_REL * abs(first):
        return f"loss never left its start ({first:.4g} -> {final:.4g})"
    ppl, base = _number(row.get("perplexity")), _number(row.get("base_perplexity"))
    if steps > 0 and ppl is not None and base is not None and (not math.isfinite(ppl) or ppl > DIVERGED_RATIO * base):
        return f"perplexity diverged ({ppl:.4g} against base {base:.4g})"
    if predictions is not None and labels is not None and not regression:
        classes = {int(p) for p in predictions}
        if len(classes) == 1 and len({int(y) for y in labels}) > 1:
            (only,) = classes
            return f"one class for every example (class {only}, {len(predictions):,} of {len(predictions):,})"
    return None


def _number(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if x != x else x
