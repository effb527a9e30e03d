"""The one estimator of every study table, and the one wording of its verdicts.

A table's arms are scored on the same units (windows of text, blocks of tokens, examples) for each of S seeds. Each
arm's statistic is a transform f of a ratio of sums over units, per seed, averaged over seeds: Δ perplexity (%) is
``100 (exp(sum(nll - base nll) / sum(tokens)) - 1)``, perplexity ``exp(sum nll / sum tokens)``, an accuracy
``sum(correct) / n``.

Seeds and units are crossed (every seed scores the same units), and both vary: a new seed trains another adapter,
new text is other units. The interval is that of a two-way crossed random-effects model, y_sw = mu + a_s + b_w +
e_sw (Searle, Casella & McCulloch 1992, *Variance Components*, Sec. 4.2 and 5.2): each seed's ratio is linearised
per unit (y_sw = R_s + (num_sw - R_s tok_w) / mean tok, whose mean over units is R_s), the variance of the grand mean
is estimated from the ANOVA mean squares with each component truncated at zero,
``Var = (max(MS_seed, MS_res) + max(MS_unit, MS_res) - MS_res) / (S W)``, and the interval is
``f(R) +- t_{0.975, df} |f'(R)| sqrt(Var)``. The degrees of freedom are Satterthwaite's (1946, *Biometrics Bulletin*
2(6), 110-114), except where the seed mean square is the larger one: there the seeds decide, df = S - 1 (the
conservative choice, as Welch's test takes min(n1, n2) - 1; Satterthwaite's approximation is liberal when its
dominant term has few degrees of freedom). tests/test_estimate.py simulates 3 and 5 seeds with the seed standard
deviation from 0 to 3 times the unit-level one: coverage >= 0.93 and a false-positive rate <= 0.06 throughout, where
the crossed percentile bootstrap this replaces covers 0.81-0.90 at 3 seeds.

Two arms are compared on the same seeds and units (paired): the same model on the per-unit differences of their
linearised values, a two-sided t-test with its p-value. :func:`verdict` turns the comparison into the table's words;
with S seeds, "beats" needs the interval of the difference to exclude zero at S - 1 degrees of freedom where the seeds
dominate, so 3 seeds decide only large, consistent differences and "not resolved" is a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import stats

TRANSFORMS = {
    "delta_ppl_pct": (lambda r: 100 * np.expm1(r), lambda r: 100 * np.exp(r)),
    "perplexity": (np.exp, np.exp),
    "mean": (lambda r: r, lambda r: np.ones_like(r)),
}
LOWER_IS_BETTER = {"delta_ppl_pct": True, "perplexity": True, "mean": False}
METHOD = "crossed random-effects t"
PAIRED = "paired crossed random-effects t"
P_FLOOR = 1e-4  # p-values below this are written "p < 0.0001"


@dataclass(frozen=True)
class Spread:
    """The variance of a grand mean over a crossed (seeds x units) matrix, and its degrees of freedom."""

    variance: float
    df: float
    seed_decides: bool  # the seed mean square was the larger: df = S - 1


def crossed_variance(y: np.ndarray) -> Spread:
    """Variance of the grand mean of ``y`` (``(S, W)``: seeds x units) under y_sw = mu + a_s + b_w + e_sw, from the
    ANOVA mean squares with each variance component truncated at zero; Satterthwaite's degrees of freedom, or S - 1
    where the seed mean square exceeds the unit mean square. One seed (one run): the units' spread alone, var / W
    with W - 1 degrees of freedom, an interval that covers other text but not other training seeds.

    Raises:
        ValueError: fewer than 2 units.
    """
    y = np.asarray(y, dtype=float)
    s, w = y.shape
    if w < 2:
        raise ValueError(f"an interval needs at least 2 units, got {w}")
    if s == 1:  # one run: the units' spread alone (the interval covers other text, not other seeds)
        return Spread(float(y.var(ddof=1)) / w, float(w - 1), False)
    grand = y.mean()
    seed_means, unit_means = y.mean(1), y.mean(0)
    ms_seed = w * float(((seed_means - grand) ** 2).sum()) / (s - 1)
    ms_unit = s * float(((unit_means - grand) ** 2).sum()) / (w - 1)
    resid = y - seed_means[:, None] - unit_means[None, :] + grand
    ms_res = float((resid**2).sum()) / ((s - 1) * (w - 1))
    terms = [(max(ms_seed, ms_res), s - 1), (max(ms_unit, ms_res), w - 1), (-ms_res, (s - 1) * (w - 1))]
    total = sum(m for m, _ in terms)
    if total <= 0:  # every unit and seed identical (a constant matrix): no spread at all
        return Spread(0.0, float("inf"), False)
    seed_decides = ms_seed > ms_unit
    df = float(s - 1) if seed_decides else total**2 / sum(m**2 / d for m, d in terms)
    return Spread(total / (s * w), df, seed_decides)


def _interval(estimate: float, spread: Spread, scale: float, method: str, n: int) -> stats.Interval:
    from scipy import stats as st

    half = float(st.t.ppf((1 + stats.CONFIDENCE) / 2, spread.df)) * abs(scale) * np.sqrt(spread.variance)
    return stats.Interval(estimate, estimate - half, estimate + half, stats.CONFIDENCE, method, n)


@dataclass(frozen=True)
class Estimates:
    """Each arm's statistic with its interval, and every arm against the reference.

    Attributes:
        statistic: a key of :data:`TRANSFORMS`. arms: arm -> interval of its mean-over-seeds statistic.
        versus: arm -> paired test of (arm - reference) (the reference itself has none). seeds, units: S and W.
        df: arm -> degrees of freedom of its comparison with the reference. linear: arm -> its ``(S, W)``
        linearised statistic (for comparisons beyond the reference: :meth:`difference`).
    """

    statistic: str
    reference: str
    arms: dict[str, stats.Interval]
    versus: dict[str, stats.PairedTest]
    seeds: int
    units: int
    df: dict[str, float] = field(default_factory=dict)
    linear: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    seed_ids: tuple[int, ...] = ()  # which seeds (set by the caller that knows them)

    def difference(self, arm: str, other: str) -> stats.PairedTest:
        """Paired test of statistic(arm) - statistic(other) on the same seeds and units (two-sided t)."""
        from scipy import stats as st

        spread = crossed_variance(self.linear[arm] - self.linear[other])
        observed = self.arms[arm].estimate - self.arms[other].estimate
        interval = _interval(observed, spread, 1.0, PAIRED, self.seeds)
        if spread.variance == 0:
            p = 1.0 if observed == 0 else 0.0
        else:
            p = float(2 * st.t.sf(abs(observed) / np.sqrt(spread.variance), spread.df))
        return stats.PairedTest(interval, p, f"{PAIRED}, df {spread.df:.1f}")


def estimate(numerators: dict[str, np.ndarray], denominators, statistic: str, reference: str) -> Estimates:
    """Intervals of every arm and paired tests against ``reference``.

    Args:
        numerators: arm -> ``(S, W)`` per-seed, per-unit sums (summed NLL minus the baseline's, in nats, for
            ``delta_ppl_pct``; summed NLL for ``perplexity``; correct answers for ``mean``), seeds in the same order
            and units in the same order for every arm.
        denominators: ``(W,)`` per-unit counts (tokens scored; 1 per example).
        statistic: a key of :data:`TRANSFORMS`. reference: the arm compared with every other.
    Returns: :class:`Estimates`.
    Raises:
        ValueError: an unknown statistic or reference, arms of different shapes, no seed, or fewer than 2 units.
    With one seed the intervals cover the units only (one run); :func:`sentence` says so.
    """
    if statistic not in TRANSFORMS:
        raise ValueError(f"unknown statistic '{statistic}'; valid choices: {', '.join(TRANSFORMS)}")
    if reference not in numerators:
        raise ValueError(f"reference '{reference}' has no scores; arms: {', '.join(numerators)}")
    den = np.asarray(denominators, dtype=float)
    shape = np.shape(numerators[reference])
    if any(np.shape(v) != shape for v in numerators.values()) or shape[1:] != den.shape:
        raise ValueError(f"every arm needs (seeds, units) = {shape} scores on the same {den.size} units")
    n_seeds, n_units = shape
    if n_seeds < 1 or n_units < 2:
        raise ValueError(f"an interval needs at least 1 seed and 2 units, got {n_seeds} and {n_units}")
    f, slope = TRANSFORMS[statistic]
    arms, linear = {}, {}
    for arm, values in numerators.items():
        num = np.asarray(values, dtype=float)
        ratio = num.sum(1) / den.sum()  # (S,): each seed's ratio of sums
        observed = float(f(ratio).mean())
        # the ratio linearised per unit (its mean over units is the seed's ratio), on the statistic's scale
        y = ratio[:, None] + (num - ratio[:, None] * den[None, :]) / den.mean()
        linear[arm] = float(slope(ratio.mean())) * y
        arms[arm] = _interval(observed, crossed_variance(y), float(slope(ratio.mean())), METHOD, n_seeds)
    result = Estimates(statistic, reference, arms, {}, n_seeds, n_units, {}, linear)
    for arm in numerators:
        if arm != reference:
            test = result.difference(arm, reference)
            result.versus[arm] = test
            result.df[arm] = crossed_variance(linear[arm] - linear[reference]).df
    return result


def p_text(p: float) -> str:
    """``p = 0.03``, or below :data:`P_FLOOR`, ``p < 0.0001``."""
    return f"p < {P_FLOOR:g}" if p < P_FLOOR else f"p = {p:.2g}"


def verdict(test: stats.PairedTest, lower_is_better: bool, resolved: bool = True) -> str:
    """The words a paired comparison of A against B supports, for "A <verdict> B": ``beats``, ``is beaten by``,
    ``is not resolved against`` (the 95 % interval of the difference holds 0: these seeds do not decide; also for a
    comparison that is not complete: ``resolved=False``)."""
    if not resolved:
        return "is not resolved against"
    d = test.difference
    if not d.excludes(0):
        return "is not resolved against"
    return "beats" if (d.estimate < 0) == lower_is_better else "is beaten by"


def sentence(test: stats.PairedTest, other: str, lower_is_better: bool, unit: str, seeds: int) -> str:
    """``<verdict> <other> by 1.01 <unit> [0.58, 1.49] (p = 0.003, 3 seeds)``: the verdict, the size of the difference
    with its interval (as a gap: positive), and the p-value; "is not resolved against <other> at 3 seeds
    (difference +0.12 [-0.40, +0.64], p = 0.41)" where the interval holds 0."""
    said, d, p = verdict(test, lower_is_better), test.difference, p_text(test.p)
    if seeds == 1:  # the interval covers the units of one run, not training seeds
        p = f"{p}, one run: the interval covers the text, not training"
    if said == "is not resolved against":
        return (
            f"{said} {other} at {seeds} seed{'s' if seeds > 1 else ''} (difference {d.estimate:+.2f} {unit} "
            f"[{d.low:+.2f}, {d.high:+.2f}], {p})"
        )
    low, high = sorted((abs(d.low), abs(d.high)))
    count = f", {seeds} seeds" if seeds > 1 else ""
    return f"{said} {other} by {abs(d.estimate):.2f} {unit} [{low:.2f}, {high:.2f}] ({p}{count})"
