"""The one estimator of every study table, and the one wording of its verdicts.

A table's arms are scored on the same units (windows of text, blocks of tokens, examples) for each of S seeds. Each
arm's statistic is a transform f of a ratio of sums over units, per seed, averaged over seeds: Δ perplexity (%) is
``100 (exp(sum(nll - base nll) / sum(tokens)) - 1)``, perplexity ``exp(sum nll / sum tokens)``, an accuracy
``sum(correct) / n``. Perplexity alone (:data:`POOLED`) averages the ratio over seeds before the transform: the
perplexity of the seeds' mean NLL per token.

Seeds and units are crossed (every seed scores the same units), and both vary: a new seed trains another adapter,
new text is other units. The interval is that of a two-way crossed random-effects model, y_sw = mu + a_s + b_w +
e_sw (Searle, Casella & McCulloch 1992, *Variance Components*, Sec. 4.2 and 5.2): each seed's ratio is linearised
per unit (y_sw = R_s + (num_sw - R_s tok_w) / mean tok, whose mean over units is R_s), the variance of the grand mean
is estimated from the ANOVA mean squares with each component truncated at zero,
``Var = (max(MS_seed, MS_res) + max(MS_unit, MS_res) - MS_res) / (S W)``, and the interval is
``f(R) +- t_{0.975, df} |f'(R)| sqrt(Var)``. The degrees of freedom are Satterthwaite's (1946, *Biometrics Bulletin*
2(6), 110-114), except where the seed mean square is the larger one: there the seeds decide, df = S - 1 (the
conservative choice, as Welch's test takes min(n1, n2) - 1; Satterthwaite's approximation is liberal when its
dominant term has few degrees of freedom). tests/unit/test_estimate.py simulates 3 and 5 seeds with the seed standard
deviation from 0 to 3 times the unit-level one: coverage >= 0.93 and a false-positive rate <= 0.06 throughout, where
the crossed percentile bootstrap this replaces covers below 0.9 at 3 seeds (asserted there).

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
# statistics averaged over seeds before the transform: a perplexity over seeds is the perplexity of their mean NLL per
# token (the geometric mean of the seeds' perplexities), as log-likelihoods average
POOLED = {"perplexity"}
LOWER_IS_BETTER = {"delta_ppl_pct": True, "perplexity": True, "mean": False, "recovery_pct": False}
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


def _test(observed: float, spread: Spread, n: int) -> stats.PairedTest:
    """The paired t-test of a difference with its spread: interval and two-sided p."""
    from scipy import stats as st

    interval = _interval(observed, spread, 1.0, PAIRED, n)
    if spread.variance == 0:
        p = 1.0 if observed == 0 else 0.0
    else:
        p = float(2 * st.t.sf(abs(observed) / np.sqrt(spread.variance), spread.df))
    return stats.PairedTest(interval, p, f"{PAIRED}, df {spread.df:.1f}")


@dataclass(frozen=True)
class Estimates:
    """Each arm's statistic with its interval, and every arm against the reference.

    Attributes:
        statistic: a key of :data:`TRANSFORMS` (or a metric's name). arms: arm -> interval of its mean-over-seeds
        statistic. versus: arm -> paired test of (arm - reference) (the reference itself has none). seeds, units: S
        and W (summed over the parts of a combined estimate). df: arm -> degrees of freedom of its comparison with the
        reference. linear: arm -> its ``(S, W)`` per-unit values on the statistic's scale (for comparisons beyond the
        reference: :meth:`difference`). parts: the estimates a :func:`combine` averages (its differences come from
        theirs).
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
    parts: tuple = ()

    def spread(self, arm: str, other: str | None = None) -> Spread:
        """The spread of an arm's statistic, or (``other``) of its difference with another arm."""
        if self.parts:
            return _mean_spread([part.spread(arm, other) for part in self.parts])
        y = self.linear[arm] - self.linear[other] if other is not None else self.linear[arm]
        return crossed_variance(y)

    def difference(self, arm: str, other: str) -> stats.PairedTest:
        """Paired test of statistic(arm) - statistic(other) on the same seeds and units (two-sided t)."""
        observed = self.arms[arm].estimate - self.arms[other].estimate
        return _test(observed, self.spread(arm, other), self.seeds)


def _mean_spread(spreads: list[Spread]) -> Spread:
    """The spread of a mean of T independent estimates (other units each, e.g. tasks): variance sum / T^2,
    Satterthwaite's degrees of freedom over the parts (the seeds decide where they decide every part)."""
    t = len(spreads)
    variance = sum(sp.variance for sp in spreads) / t**2
    terms = [(sp.variance / t**2) ** 2 / sp.df for sp in spreads if sp.variance > 0 and np.isfinite(sp.df)]
    df = variance**2 / sum(terms) if terms and variance > 0 else float("inf")
    return Spread(variance, df, all(sp.seed_decides for sp in spreads))


def from_linear(observed: dict[str, float], linear: dict[str, np.ndarray], statistic: str, reference: str) -> Estimates:
    """Intervals and paired tests from per-unit values: ``linear`` arm -> ``(S, W)`` values on the statistic's scale
    whose spread is the statistic's (a ratio linearised per unit, or jackknife pseudo-values: :func:`jackknife`),
    ``observed`` arm -> the statistic (mean over seeds).

    Raises:
        ValueError: an unknown reference, arms of different shapes, no seed, or fewer than 2 units.
    """
    if reference not in linear:
        raise ValueError(f"reference '{reference}' has no scores; arms: {', '.join(linear)}")
    shape = np.shape(linear[reference])
    if any(np.shape(v) != shape for v in linear.values()) or len(shape) != 2:
        raise ValueError(f"every arm needs (seeds, units) = {shape} values on the same units")
    n_seeds, n_units = shape
    if n_seeds < 1 or n_units < 2:
        raise ValueError(f"an interval needs at least 1 seed and 2 units, got {n_seeds} and {n_units}")
    arms = {arm: _interval(observed[arm], crossed_variance(y), 1.0, METHOD, n_seeds) for arm, y in linear.items()}
    result = Estimates(statistic, reference, arms, {}, n_seeds, n_units, {}, dict(linear))
    for arm in linear:
        if arm != reference:
            result.versus[arm] = result.difference(arm, reference)
            result.df[arm] = result.spread(arm, reference).df
    return result


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
    f, slope = TRANSFORMS[statistic]
    observed, linear = {}, {}
    for arm, values in numerators.items():
        num = np.asarray(values, dtype=float)
        ratio = num.sum(1) / den.sum()  # (S,): each seed's ratio of sums
        observed[arm] = float(f(ratio.mean()) if statistic in POOLED else f(ratio).mean())
        # the ratio linearised per unit (its mean over units is the seed's ratio), on the statistic's scale
        y = ratio[:, None] + (num - ratio[:, None] * den[None, :]) / den.mean()
        linear[arm] = float(slope(ratio.mean())) * y
    return from_linear(observed, linear, statistic, reference)


def recovery(nll, base_nll, compressed_nll, tokens) -> tuple[float, np.ndarray]:
    """Recovery of a compressed model's perplexity (CUA paper, SmolLM2 study): per seed
    ``100 (ppl_c - ppl) / (ppl_c - ppl_b)``, each perplexity ``exp(sum nll / sum tokens)`` over the same units, the
    base and compressed passes those of the seed's own run; returns the mean over seeds and the ``(S, W)`` values
    whose spread is its spread (each ratio linearised per unit, then the delta method: the recovery's gradient in
    the three mean NLLs), for :func:`from_linear`.

    Args:
        nll, base_nll, compressed_nll: ``(S, W)`` summed NLL (nats) per seed and unit of the recovered, base and
            compressed models. tokens: ``(W,)`` tokens per unit.
    Raises:
        ValueError: shapes that do not match, or a compression that did not raise perplexity (no gap to recover).
    """
    arrays = [np.asarray(a, dtype=float) for a in (nll, base_nll, compressed_nll)]
    den = np.asarray(tokens, dtype=float)
    if any(a.ndim != 2 or a.shape != arrays[0].shape for a in arrays) or arrays[0].shape[1:] != den.shape:
        raise ValueError(f"nll, base and compressed need the same (seeds, units) shape over {den.size} units")
    ratios = [a.sum(1) / den.sum() for a in arrays]  # (S,) each
    lin = [r[:, None] + (a - r[:, None] * den[None, :]) / den.mean() for a, r in zip(arrays, ratios)]
    p, pb, pc = (np.exp(r) for r in ratios)
    gap = pc - pb
    if np.any(gap <= 0):
        raise ValueError("the compressed model is not above the base: no perplexity gap to recover")
    rec = 100 * (pc - p) / gap
    grads = (-100 * p / gap, 100 * (pc - p) * pb / gap**2, 100 * pc * (p - pb) / gap**2)  # d/dr, d/db, d/dc
    y = rec[:, None] + sum(g[:, None] * (z - r[:, None]) for g, z, r in zip(grads, lin, ratios))
    return float(rec.mean()), y


def jackknife(full, leave_one_out) -> np.ndarray:
    """Jackknife pseudo-values (Quenouille 1956; Efron & Tibshirani 1993, ch. 11) of a statistic that is not a mean
    of per-unit values (a Matthews or rank correlation): ``full`` ``(S,)`` the statistic on every unit of each seed,
    ``leave_one_out`` ``(S, W)`` on all units but w; returns ``(S, W)`` values W theta - (W - 1) theta_(-w), whose
    spread gives the statistic's (:func:`from_linear`).

    Raises:
        ValueError: shapes that do not match.
    """
    full, loo = np.asarray(full, dtype=float), np.asarray(leave_one_out, dtype=float)
    if loo.ndim != 2 or full.shape != loo.shape[:1]:
        raise ValueError(f"full {full.shape} and leave-one-out {loo.shape}: expected (S,) and (S, W)")
    w = loo.shape[1]
    return w * full[:, None] - (w - 1) * loo


def combine(parts: list[Estimates], statistic: str) -> Estimates:
    """The mean over parts measured on different units (GLUE's tasks): each arm's statistic averaged over the parts,
    its variance the sum of the parts' over T^2 with Satterthwaite's degrees of freedom (:func:`_mean_spread`), the
    paired tests the same on the parts' differences. Every part needs the same arms, seeds and reference.

    Raises:
        ValueError: parts with other arms or references, or none.
    """
    if not parts:
        raise ValueError("nothing to combine")
    reference, arms = parts[0].reference, list(parts[0].arms)
    if any(p.reference != reference or list(p.arms) != arms or p.seeds != parts[0].seeds for p in parts):
        raise ValueError("every part needs the same arms, seeds and reference")
    seeds = parts[0].seeds
    observed = {arm: float(np.mean([p.arms[arm].estimate for p in parts])) for arm in arms}
    shell = Estimates(statistic, reference, {}, {}, seeds, sum(p.units for p in parts), parts=tuple(parts))
    shell.arms.update({arm: _interval(observed[arm], shell.spread(arm), 1.0, METHOD, seeds) for arm in arms})
    for arm in arms:
        if arm != reference:
            shell.versus[arm] = shell.difference(arm, reference)
            shell.df[arm] = shell.spread(arm, reference).df
    return shell


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
