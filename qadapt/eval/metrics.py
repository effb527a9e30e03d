"""GLUE metrics (Wang et al. 2019): accuracy; accuracy with F1 of the positive class (MRPC, reported as GLUE does);
Matthews correlation for CoLA; STS-B's mean of Pearson and Spearman. Computed by scikit-learn and SciPy; scores are
fractions in [0, 1] (correlations in [-1, 1]), tables print x100.

:func:`resampled_scores` gives the same headline score on bootstrap resamples of the examples (counts per example),
vectorised over the resamples, for the intervals and paired tests of qadapt/results/stats.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError

METRICS = ("accuracy", "accuracy_f1", "matthews", "pearson_spearman")


def score(metric: str, predictions: Sequence[float], labels: Sequence[float]) -> dict[str, float]:
    """{"score": the task's headline number, plus its parts} for ``predictions`` against ``labels``.

    Raises:
        ConfigError: unknown metric (lists the valid ones).
        ValueError: lengths differ or nothing to score.
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown metric '{metric}'; valid choices: {', '.join(METRICS)}")
    if len(predictions) != len(labels) or not labels:
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if metric == "pearson_spearman":
        from scipy.stats import pearsonr, spearmanr

        pearson, spearman = float(pearsonr(predictions, labels)[0]), float(spearmanr(predictions, labels)[0])
        return {"score": (pearson + spearman) / 2, "pearson": pearson, "spearman": spearman}
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    pred, gold = [int(round(p)) for p in predictions], [int(round(y)) for y in labels]
    if metric == "matthews":
        return {"score": float(matthews_corrcoef(gold, pred)), "accuracy": float(accuracy_score(gold, pred))}
    if metric == "accuracy_f1":
        return {"score": float(accuracy_score(gold, pred)), "f1": float(f1_score(gold, pred, zero_division=0.0))}
    return {"score": float(accuracy_score(gold, pred))}


def _resample_ranks(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(B, N)``: each example's average rank among the examples drawn in resample b (equal values share a rank)."""
    unique, group = np.unique(values, return_inverse=True)
    drawn = np.zeros((counts.shape[0], unique.size))
    np.add.at(drawn.T, group, counts.T)  # drawn[b, g]: examples of value g drawn in resample b
    before = np.cumsum(drawn, axis=1) - drawn
    return (before + (drawn + 1) / 2)[:, group]


def resampled_scores(metric: str, predictions, labels, counts: np.ndarray) -> np.ndarray:
    """The headline score of :func:`score` on each bootstrap resample of the examples: ``counts`` ``(B, N)`` says how
    often example i is drawn in resample b (``qadapt.results.stats.two_level_resamples``); returns ``(B,)``.

    Every score is exactly the score of the drawn examples: accuracy and Matthews correlation from weighted
    confusion counts, Pearson as the weighted correlation, Spearman as the weighted Pearson correlation of each
    resample's own ranks (ties, drawn duplicates included, given their average rank, as ``scipy.stats.spearmanr``).

    Raises:
        ConfigError: unknown metric. ValueError: shapes differ.
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown metric '{metric}'; valid choices: {', '.join(METRICS)}")
    p, y = np.asarray(predictions, dtype=float), np.asarray(labels, dtype=float)
    w = np.asarray(counts, dtype=float)
    if p.shape != y.shape or w.shape[-1] != y.size:
        raise ValueError(f"{p.size} predictions, {y.size} labels, counts over {w.shape[-1]} examples")
    n = w.sum(1)
    if metric == "pearson_spearman":

        def corr(a, b):  # a, b: (N,) or (B, N)
            ma, mb = (w * a).sum(1) / n, (w * b).sum(1) / n
            cov = (w * a * b).sum(1) / n - ma * mb
            var_a, var_b = (w * a * a).sum(1) / n - ma**2, (w * b * b).sum(1) / n - mb**2
            return cov / np.sqrt(np.maximum(var_a * var_b, 1e-300))

        return (corr(p, y) + corr(_resample_ranks(p, w), _resample_ranks(y, w))) / 2
    pred, gold = np.rint(p), np.rint(y)
    if metric in ("accuracy", "accuracy_f1"):
        return (w @ (pred == gold)) / n
    tp, tn = w @ ((pred == 1) & (gold == 1)), w @ ((pred == 0) & (gold == 0))
    fp, fn = w @ ((pred == 1) & (gold == 0)), w @ ((pred == 0) & (gold == 1))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return np.where(denominator > 0, (tp * tn - fp * fn) / np.where(denominator > 0, denominator, 1), 0.0)
