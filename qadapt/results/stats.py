"""Statistics every table uses: intervals over seeds and examples, paired tests, McNemar on questions.

- :func:`t_interval`: Student-t interval of a mean over seeds (``scipy.stats.t``); what a table with only per-seed
  figures can give.
- :func:`bootstrap_interval` / :func:`paired_bootstrap`: percentile bootstrap of a mean, one sample or the paired
  difference of two (``scipy.stats.bootstrap``, Efron & Tibshirani 1993, ch. 13), with the paired bootstrap's two-sided
  p-value (twice the smaller share of resampled differences on either side of zero).
- :func:`two_level_resamples`, :func:`percentile`, :func:`bootstrap_p`: the two-level (cluster) bootstrap of a table
  whose cells are (seed, example) matrices: seeds drawn with replacement, then examples (windows, questions, images)
  drawn with replacement, the same draws for every method of the table, so two methods' statistics are paired
  (Davison & Hinkley 1997, Sec. 3.8). A statistic such as a perplexity is a ratio of sums, so the draws are returned
  as counts (how often each seed and each example is drawn) and the caller forms its sums with one matrix product.
- :func:`ratio_interval`: percentile bootstrap of a ratio of sums over clusters (blocks of consecutive tokens).
- :func:`wilcoxon`: Wilcoxon signed-rank test of paired samples (``scipy.stats.wilcoxon``).
- :func:`score_interval`: the interval of one score on n examples (Wilson for an accuracy, Fisher's z for a
  correlation): whether a single run is clearly above a bar.
- :func:`mcnemar`: McNemar's exact test of two models on the same questions (McNemar 1947; the exact form is a
  two-sided binomial test with p = 1/2 on the discordant pairs, ``scipy.stats.binomtest``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval.

    Attributes:
        estimate: the statistic on the observed data. low, high: interval bounds. confidence: e.g. 0.95.
        method: how the interval was made (for the table's note), e.g. ``t over 3 seeds``. n: sample size.
    """

    estimate: float
    low: float
    high: float
    confidence: float
    method: str
    n: int

    def excludes(self, value: float = 0.0) -> bool:
        """Whether ``value`` lies outside the interval."""
        return not self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of B against A: ``difference`` = statistic(B) - statistic(A), its interval and p-value.

    Attributes:
        difference: the interval of the difference. p: two-sided p-value of "no difference". method: test name.
    """

    difference: Interval
    p: float
    method: str


def t_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Student-t interval of the mean of ``values`` (e.g. one figure per seed): mean +- t_{(1+c)/2, n-1} s / sqrt(n).

    Raises:
        ValueError: fewer than 2 values.
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {x.size}")
    mean, sem = float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))
    half = float(stats.t.ppf((1 + confidence) / 2, x.size - 1)) * sem
    return Interval(mean, mean - half, mean + half, confidence, f"t over {x.size}", int(x.size))


def bootstrap_interval(values, confidence: float = CONFIDENCE, n_resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (``scipy.stats.bootstrap``).

    Raises:
        ValueError: fewer than 2 values.
    """
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 values, got {x.size}")
    res = stats.bootstrap(
        (x,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="percentile", rng=seed
    )
    ci = res.confidence_interval
    return Interval(float(x.mean()), float(ci.low), float(ci.high), confidence, f"bootstrap over {x.size}", x.size)


def _paired_percentile(samples: tuple, statistic, confidence: float, n_resamples: int, seed: int):
    """``scipy.stats.bootstrap`` of ``statistic`` over units drawn jointly from every array of ``samples``."""
    from scipy import stats

    return stats.bootstrap(
        samples,
        statistic,
        paired=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=seed,
    )


def paired_bootstrap(a, b, confidence: float = CONFIDENCE, n_resamples: int = RESAMPLES, seed: int = 0) -> PairedTest:
    """Paired percentile bootstrap of mean(b - a) over the same units (seeds, examples), with its two-sided p-value.

    Raises:
        ValueError: the samples differ in length or have fewer than 2 units.
    """

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} != {y.size}")
    if x.size < 2:
        raise ValueError(f"a paired bootstrap needs at least 2 pairs, got {x.size}")
    res = _paired_percentile((x, y), lambda u, v, axis=-1: np.mean(v - u, axis=axis), confidence, n_resamples, seed)
    ci = res.confidence_interval
    diff = Interval(float((y - x).mean()), float(ci.low), float(ci.high), confidence, "paired bootstrap", x.size)
    return PairedTest(diff, bootstrap_p(res.bootstrap_distribution), "paired bootstrap")


def ratio_interval(
    numerators, denominators, confidence: float = CONFIDENCE, n_resamples: int = RESAMPLES, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of sum(numerators) / sum(denominators) over clusters (e.g. summed NLL differences
    of blocks of consecutive tokens over their token counts): whole clusters are resampled, so correlation inside a
    cluster is kept (``scipy.stats.bootstrap``, paired; Davison & Hinkley 1997, Sec. 3.8).

    Raises:
        ValueError: the arrays differ in length or hold fewer than 2 clusters.
    """

    x, n = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if x.shape != n.shape or x.size < 2:
        raise ValueError(f"need paired arrays of at least 2 clusters, got {x.size} and {n.size}")
    res = _paired_percentile(
        (x, n), lambda u, v, axis=-1: u.sum(axis=axis) / v.sum(axis=axis), confidence, n_resamples, seed
    )
    ci = res.confidence_interval
    return Interval(float(x.sum() / n.sum()), float(ci.low), float(ci.high), confidence, "cluster bootstrap", x.size)


def wilcoxon(a, b) -> PairedTest:
    """Wilcoxon signed-rank test of b - a (two-sided, ``scipy.stats.wilcoxon``); the interval is the t-interval of
    the mean difference, for scale. With n pairs the smallest attainable p-value is 2 / 2^n (0.25 at n = 3).

    Raises:
        ValueError: the samples differ in length or have fewer than 2 pairs.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} != {y.size}")
    d = y - x
    p = 1.0 if not np.any(d) else float(stats.wilcoxon(d).pvalue)
    return PairedTest(t_interval(d), p, "Wilcoxon signed-rank")


def two_level_resamples(
    n_seeds: int, n_examples: int, n_resamples: int = RESAMPLES, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Draws of a two-level bootstrap: ``(seed_counts (B, n_seeds), example_counts (B, n_examples))``, how often each
    seed and each example is drawn in resample b (each row sums to n_seeds, resp. n_examples).

    A statistic that is a function of per-seed sums over examples, e.g. perplexity exp(sum nll / sum tokens), is then
    ``sums = values (S, W) @ example_counts.T`` -> ``(S, B)``, and a mean over seeds weights each seed by
    ``seed_counts``. Using the same draws for every method of a table makes their statistics paired.
    """
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    examples = rng.integers(0, n_examples, size=(n_resamples, n_examples))
    seed_counts = np.stack([np.bincount(row, minlength=n_seeds) for row in seeds])
    example_counts = np.zeros((n_resamples, n_examples), dtype=np.int64)
    np.add.at(example_counts, (np.arange(n_resamples)[:, None], examples), 1)
    return seed_counts, example_counts


def window_perplexities(nll, tokens, example_counts) -> np.ndarray:
    """Perplexity of each row of ``nll`` on each resample of windows.

    Args:
        nll: ``(S, N)`` summed NLL (nats) per window, one row per seed (or model).
        tokens: ``(N,)`` tokens scored per window.
        example_counts: ``(B, N)`` draws of the windows (:func:`two_level_resamples`).
    Returns:
        ``(S, B)``: exp(drawn NLL / drawn tokens) of each row on each resample.
    """
    counts = np.asarray(example_counts, dtype=float).T
    return np.exp((np.asarray(nll, dtype=float) @ counts) / (np.asarray(tokens, dtype=float) @ counts))


def seed_mean(values, seed_counts) -> np.ndarray:
    """Mean over the drawn seeds of each resample: ``values (S, B)``, ``seed_counts (B, S)`` -> ``(B,)``."""
    counts = np.asarray(seed_counts, dtype=float)
    return (np.asarray(values, dtype=float).T * counts).sum(1) / counts.sum(1)


def percentile(samples, estimate: float, confidence: float = CONFIDENCE, method: str = "bootstrap") -> Interval:
    """Percentile interval of bootstrap ``samples`` around the observed ``estimate``."""
    s = np.asarray(samples, dtype=float)
    low, high = np.quantile(s, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(float(estimate), float(low), float(high), confidence, method, int(s.size))


def bootstrap_p(differences) -> float:
    """Two-sided bootstrap p-value of "the difference is zero": 2 min(P*(d <= 0), P*(d >= 0)), at most 1, over the
    resampled differences d, at least 2 / B: a two-sided p-value from B resamples resolves only to 2 / B, so one below
    it is reported as that bound."""
    d = np.asarray(differences, dtype=float)
    p = 2 * min(np.mean(d <= 0), np.mean(d >= 0))
    return float(min(1.0, max(p, 2 / d.size)))


@dataclass(frozen=True)
class McNemar:
    """Two models scored on the same n questions.

    Attributes:
        n: questions both answered. a_only: right for A, wrong for B. b_only: right for B, wrong for A.
        net: b_only - a_only (questions B gains over A). p: two-sided exact p-value (1.0 with no discordant pair).
    """

    n: int
    a_only: int
    b_only: int
    net: int
    p: float


def mcnemar(a_correct, b_correct) -> McNemar:
    """McNemar's exact test of two paired boolean sequences (question i right or wrong for A and for B).

    Raises:
        ValueError: the sequences differ in length.
    """
    from scipy.stats import binomtest

    a, b = [bool(x) for x in a_correct], [bool(x) for x in b_correct]
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} != {len(b)}")
    a_only = sum(x and not y for x, y in zip(a, b))
    b_only = sum(y and not x for x, y in zip(a, b))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return McNemar(len(a), a_only, b_only, b_only - a_only, float(p))


def score_interval(score: float, n: int, metric: str, confidence: float = CONFIDENCE) -> Interval:
    """Interval of one score measured on ``n`` examples (one run, one seed): how far above a bar it clearly is.

    ``accuracy`` / ``accuracy_f1``: Wilson's interval of a proportion (Wilson 1927; ``scipy.stats.binomtest``) on
    round(score * n) correct. ``matthews`` / ``pearson_spearman``: Fisher's z interval of a correlation,
    tanh(atanh(r) +- z / sqrt(n - 3)) (Fisher 1921); two classes' Matthews coefficient is their phi (Pearson)
    correlation, and STS-B's mean of Pearson and Spearman is treated as one correlation (an approximation).

    Args:
        score: the metric as a fraction or correlation (not x100). n: examples scored. metric: qadapt/eval/metrics.py.
    Raises:
        ValueError: an unknown metric or fewer than 4 examples.
    """
    from scipy.stats import binomtest, norm

    if n < 4:
        raise ValueError(f"an interval of one score needs at least 4 examples, got {n}")
    if metric in ("accuracy", "accuracy_f1"):
        ci = binomtest(round(score * n), n).proportion_ci(confidence, method="wilson")
        return Interval(score, float(ci.low), float(ci.high), confidence, "Wilson", n)
    if metric in ("matthews", "pearson_spearman"):
        z, half = np.arctanh(np.clip(score, -0.999999, 0.999999)), norm.ppf(0.5 + confidence / 2) / np.sqrt(n - 3)
        return Interval(score, float(np.tanh(z - half)), float(np.tanh(z + half)), confidence, "Fisher z", n)
    raise ValueError(f"unknown metric '{metric}'; valid choices: accuracy, accuracy_f1, matthews, pearson_spearman")
