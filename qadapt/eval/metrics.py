"""GLUE metrics (Wang et al. 2019): accuracy; Matthews correlation for CoLA; STS-B's mean of Pearson and Spearman.
Computed by scikit-learn and SciPy; scores are fractions in [0, 1] (correlations in [-1, 1]), tables print x100."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError

METRICS = ("accuracy", "matthews", "pearson_spearman")


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
    from sklearn.metrics import accuracy_score, matthews_corrcoef

    pred, gold = [int(round(p)) for p in predictions], [int(round(y)) for y in labels]
    if metric == "matthews":
        return {"score": float(matthews_corrcoef(gold, pred)), "accuracy": float(accuracy_score(gold, pred))}
    return {"score": float(accuracy_score(gold, pred))}
