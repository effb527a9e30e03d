"""The one estimator of every study table, and the one wording of its verdicts.

A table's arms are scored on the same units (windows of text, examples, questions) for each of S seeds. Each arm's
statistic is a transform of a ratio of sums over units, per seed, averaged over seeds: Δ perplexity (%) is
``100 (exp(sum(nll - base nll) / sum(tokens)) - 1)``, perplexity ``exp(sum nll / sum tokens)``, an accuracy
``sum(correct) / n``. Its 95 % interval is the two-level percentile bootstrap of :func:`stats.two_level_resamples`
(seeds with replacement, then units; Davison & Hinkley 1997, Sec. 3.8) with :data:`stats.RESAMPLES` draws, the same
draws for every arm, so the difference of two arms is paired; its two-sided p-value is :func:`stats.bootstrap_p`
(floored at 2 / B, the resolution of B resamples). :func:`verdict` turns a paired comparison into the table's words.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import stats

TRANSFORMS = {
    "delta_ppl_pct": lambda r: 100 * np.expm1(r),
    "perplexity": np.exp,
    "mean": lambda r: r,
}
LOWER_IS_BETTER = {"delta_ppl_pct": True, "perplexity": True, "mean": False}


@dataclass(frozen=True)
class Estimates:
    """Each arm's statistic with its interval, and every arm against the reference, from one set of draws.

    Attributes:
        statistic: a key of :data:`TRANSFORMS`. arms: arm -> interval of its mean-over-seeds statistic.
        versus: arm -> paired test of (arm - reference) (the reference itself has none). seeds, units: S and W.
        samples: arm -> its ``(B,)`` resampled statistic (for comparisons beyond the reference: :meth:`difference`).
    """

    statistic: str
    reference: str
    arms: dict[str, stats.Interval]
    versus: dict[str, stats.PairedTest]
    seeds: int
    units: int
    resamples: int
    samples: dict[str, np.ndarray] = field(repr=False)

    def difference(self, arm: str, other: str) -> stats.PairedTest:
        """Paired two-level bootstrap test of statistic(arm) - statistic(other), on the table's draws."""
        diff = self.samples[arm] - self.samples[other]
        observed = self.arms[arm].estimate - self.arms[other].estimate
        d = stats.percentile(diff, observed, method=PAIRED)
        return stats.PairedTest(d, stats.bootstrap_p(diff), PAIRED)


PAIRED = "paired two-level bootstrap"


def estimate(
    numerators: dict[str, np.ndarray],
    denominators,
    statistic: str,
    reference: str,
    n_resamples: int = stats.RESAMPLES,
    seed: int = 0,
) -> Estimates:
    """Intervals of every arm and paired tests against ``reference``.

    Args:
        numerators: arm -> ``(S, W)`` per-seed, per-unit sums (summed NLL minus the baseline's, in nats, for
            ``delta_ppl_pct``; summed NLL for ``perplexity``; correct answers for ``mean``), seeds in the same order
            and units in the same order for every arm.
        denominators: ``(W,)`` per-unit counts (tokens scored; 1 per example).
        statistic: a key of :data:`TRANSFORMS`. reference: the arm compared with every other.
        n_resamples, seed: the draws (the same for every arm).
    Returns: :class:`Estimates`.
    Raises:
        ValueError: an unknown statistic or reference, arms of different shapes, or fewer than 2 seeds or units.
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
    if n_seeds < 2 or n_units < 2:
        raise ValueError(f"an interval needs at least 2 seeds and 2 units, got {n_seeds} and {n_units}")
    f = TRANSFORMS[statistic]
    seed_counts, unit_counts = stats.two_level_resamples(n_seeds, n_units, n_resamples, seed=seed)
    drawn_den = den @ unit_counts.T  # (B,)
    arms, samples = {}, {}
    for arm, values in numerators.items():
        num = np.asarray(values, dtype=float)
        observed = float(f(num.sum(1) / den.sum()).mean())
        per_seed = f((num @ unit_counts.T) / drawn_den)  # (S, B): each seed on each resample of units
        samples[arm] = stats.seed_mean(per_seed, seed_counts)
        arms[arm] = stats.percentile(samples[arm], observed, method="two-level bootstrap")
    result = Estimates(statistic, reference, arms, {}, n_seeds, n_units, n_resamples, samples)
    result.versus.update({arm: result.difference(arm, reference) for arm in numerators if arm != reference})
    return result


def p_text(p: float, n_resamples: int = stats.RESAMPLES) -> str:
    """``p = 0.03``, or at the resolution of ``n_resamples`` draws, ``p < 0.0002`` (2 / B)."""
    floor = 2 / n_resamples
    return f"p < {floor:g}" if p <= floor else f"p = {p:.3g}"


def verdict(test: stats.PairedTest, lower_is_better: bool, resolved: bool = True) -> str:
    """The words a paired comparison of A against B supports, for "A <verdict> B": ``beats``, ``is beaten by``,
    ``is indistinguishable from`` (the interval holds 0: "at this budget"), or ``is not resolved against`` (the
    comparison is not complete: ``resolved=False``)."""
    if not resolved:
        return "is not resolved against"
    d = test.difference
    if not d.excludes(0):
        return "is indistinguishable from"
    return "beats" if (d.estimate < 0) == lower_is_better else "is beaten by"


def sentence(test: stats.PairedTest, other: str, lower_is_better: bool, unit: str, n_resamples: int) -> str:
    """``<verdict> <other> by 1.01 <unit> [0.58, 1.49] (p < 0.0002)``: the verdict, the size of the difference with
    its interval (as a gap: positive), and the p-value; "... at this budget (p = 0.126)" where the interval holds 0."""
    said, d, p = verdict(test, lower_is_better), test.difference, p_text(test.p, n_resamples)
    if said == "is indistinguishable from":
        return f"{said} {other} at this budget ({p})"
    low, high = sorted((abs(d.low), abs(d.high)))
    return f"{said} {other} by {abs(d.estimate):.2f} {unit} [{low:.2f}, {high:.2f}] ({p})"
