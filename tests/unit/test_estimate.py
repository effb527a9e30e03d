"""The study estimator (qadapt/results/estimate.py) holds its level with few seeds: simulated tables of S seeds x W
units, seeds and units both random, the seed standard deviation from 0 to 3 times the unit-level one. The crossed
percentile bootstrap it replaced does not at 3 seeds."""

from __future__ import annotations

import numpy as np
import pytest

from qadapt.results import estimate as est
from qadapt.results import stats

UNITS = 32
SEED_SD = (0.0, 0.1, 0.3, 1.0, 3.0)  # x the unit-level standard deviation (1)


def table(rng, seeds: int, seed_sd: float, arms: int = 1) -> list[np.ndarray]:
    """``arms`` (S, W) matrices with mean 0: a unit effect shared by the arms (the same text), a seed effect and a
    residual per arm; each unit's own standard deviation is 1 (half unit effect, half residual, in variance)."""
    unit = rng.normal(0, np.sqrt(0.5), (1, UNITS))
    return [
        unit + rng.normal(0, seed_sd, (seeds, 1)) + rng.normal(0, np.sqrt(0.5), (seeds, UNITS)) for _ in range(arms)
    ]


@pytest.mark.parametrize("seeds", [3, 5])
def test_coverage_and_false_positives_hold_at_few_seeds(seeds):
    rng = np.random.default_rng(7)
    ones = np.ones(UNITS)
    for seed_sd in SEED_SD:
        covered = false_positive = 0
        replicates = 2000
        for _ in range(replicates):
            a, b = table(rng, seeds, seed_sd, arms=2)
            found = est.estimate({"a": a, "b": b}, ones, "mean", "a")
            covered += found.arms["a"].low <= 0 <= found.arms["a"].high
            false_positive += found.versus["b"].p < 0.05
        assert covered / replicates >= 0.93, (seeds, seed_sd, covered / replicates)
        assert false_positive / replicates <= 0.06, (seeds, seed_sd, false_positive / replicates)


def test_false_positives_hold_at_two_seeds():
    """A table at 2 of its 3 seeds (results/mitigation.md while seed 2 runs): the paired p-value keeps its level, so a
    verdict there stands on p; the interval's coverage is only held to 95 % from 3 seeds (the test above)."""
    rng = np.random.default_rng(7)
    ones = np.ones(UNITS)
    for seed_sd in SEED_SD:
        replicates = 2000
        false_positive = sum(
            est.estimate(dict(zip("ab", table(rng, 2, seed_sd, arms=2))), ones, "mean", "a").versus["b"].p < 0.05
            for _ in range(replicates)
        )
        assert false_positive / replicates <= 0.06, (seed_sd, false_positive / replicates)


def test_the_crossed_percentile_bootstrap_undercovers_at_three_seeds():
    """The method this replaced: seeds, then units, drawn with replacement (stats.two_level_resamples)."""
    rng = np.random.default_rng(7)
    worst = 1.0
    for seed_sd in (0.3, 1.0):
        covered, replicates = 0, 300
        for _ in range(replicates):
            (y,) = table(rng, 3, seed_sd)
            seed_counts, unit_counts = stats.two_level_resamples(3, UNITS, 1000, seed=int(rng.integers(1 << 30)))
            draws = stats.seed_mean((y @ unit_counts.T) / UNITS, seed_counts)
            low, high = np.quantile(draws, [0.025, 0.975])
            covered += low <= 0 <= high
        worst = min(worst, covered / replicates)
    assert worst < 0.9


def test_the_interval_is_the_crossed_anova_one_by_hand():
    """Mean squares of a 3 x 4 table worked out by hand; Satterthwaite's df where the units dominate, S - 1 where
    the seeds do."""
    from scipy import stats as st

    y = np.array([[1.0, 2.0, 4.0, 3.0], [2.0, 3.0, 6.0, 4.0], [1.5, 2.0, 5.0, 3.5]])
    s, w = y.shape
    g = y.mean()
    ms_seed = w * ((y.mean(1) - g) ** 2).sum() / (s - 1)
    ms_unit = s * ((y.mean(0) - g) ** 2).sum() / (w - 1)
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + g
    ms_res = (resid**2).sum() / ((s - 1) * (w - 1))
    assert ms_unit > ms_seed > ms_res
    total = ms_seed + ms_unit - ms_res
    df = total**2 / (ms_seed**2 / (s - 1) + ms_unit**2 / (w - 1) + ms_res**2 / ((s - 1) * (w - 1)))
    spread = est.crossed_variance(y)
    assert spread.variance == pytest.approx(total / (s * w)) and spread.df == pytest.approx(df)
    found = est.estimate({"a": y}, np.ones(w), "mean", "a")
    half = st.t.ppf(0.975, df) * np.sqrt(total / (s * w))
    assert (found.arms["a"].low, found.arms["a"].high) == pytest.approx((g - half, g + half))
    # seeds far apart: they decide the degrees of freedom
    assert est.crossed_variance(y + np.array([[0.0], [10.0], [20.0]])).df == s - 1


def test_a_ratio_statistic_is_linearised_per_unit():
    """Δ ppl's interval: the seeds' ratios of sums, per unit linearised, scaled by the transform's slope."""
    rng = np.random.default_rng(3)
    tokens = rng.integers(40, 60, size=12).astype(float)
    a = rng.normal(-0.02, 0.01, size=(3, 12)) * tokens
    found = est.estimate({"a": a}, tokens, "delta_ppl_pct", "a")
    ratio = a.sum(1) / tokens.sum()
    assert found.arms["a"].estimate == pytest.approx(float(np.mean(100 * np.expm1(ratio))))
    y = ratio[:, None] + (a - ratio[:, None] * tokens) / tokens.mean()
    assert np.allclose(y.mean(1), ratio)
    spread = est.crossed_variance(y)
    from scipy import stats as st

    half = st.t.ppf(0.975, spread.df) * 100 * np.exp(ratio.mean()) * np.sqrt(spread.variance)
    assert found.arms["a"].high - found.arms["a"].estimate == pytest.approx(half)


def test_jackknife_pseudo_values_of_a_mean_are_the_units_and_of_mcc_match_leave_one_out():
    from sklearn.metrics import matthews_corrcoef

    from qadapt.eval.metrics import resampled_scores

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, size=40)
    preds = np.where(rng.random((2, 40)) < 0.8, labels, 1 - labels)  # 2 seeds, 80 % right
    loo_counts = 1 - np.eye(40)
    correct = (preds == labels).astype(float)
    acc = est.jackknife(correct.mean(1), np.stack([resampled_scores("accuracy", p, labels, loo_counts) for p in preds]))
    assert np.allclose(acc, correct)  # a mean's pseudo-values are its units
    full = np.array([matthews_corrcoef(labels, p) for p in preds])
    loo = np.stack([resampled_scores("matthews", p, labels, loo_counts) for p in preds])
    by_hand = [matthews_corrcoef(np.delete(labels, w), np.delete(preds[1], w)) for w in (0, 17, 39)]
    assert loo[1, [0, 17, 39]] == pytest.approx(by_hand, rel=1e-12)
    pseudo = est.jackknife(full, loo)
    assert pseudo.mean(1) == pytest.approx(full, abs=0.02)  # the jackknife's bias correction is small here


def test_a_mean_over_parts_sums_their_variances_with_satterthwaite_df():
    rng = np.random.default_rng(9)
    parts = []
    for w in (30, 50):
        a = rng.normal(0.7, 0.4, (3, w))
        b = a + rng.normal(0.05, 0.2, (3, w))
        parts.append(est.from_linear({"a": a.mean(), "b": b.mean()}, {"a": a, "b": b}, "score", "a"))
    both = est.combine(parts, "score")
    assert both.arms["b"].estimate == pytest.approx((parts[0].arms["b"].estimate + parts[1].arms["b"].estimate) / 2)
    v = [p.spread("b", "a") for p in parts]
    variance = (v[0].variance + v[1].variance) / 4
    df = variance**2 / sum((x.variance / 4) ** 2 / x.df for x in v)
    assert both.spread("b", "a").variance == pytest.approx(variance) and both.df["b"] == pytest.approx(df)
    from scipy import stats as st

    d = both.versus["b"].difference
    assert d.high - d.estimate == pytest.approx(st.t.ppf(0.975, df) * np.sqrt(variance))
    with pytest.raises(ValueError, match="same arms"):
        est.combine([parts[0], est.from_linear({"a": 0.0}, {"a": np.ones((3, 4))}, "score", "a")], "score")


def test_recovery_is_the_per_seed_formula_and_its_linear_values_average_to_it():
    """Recovery (CUA paper, SmolLM2 study): 100 (ppl_c - ppl) / (ppl_c - ppl_b) per seed, each run's own base and
    compressed passes; the per-unit values the interval uses average, per seed, to that seed's recovery, and their
    spread follows a small change of the recovered NLL to first order (the delta method's gradient)."""
    rng = np.random.default_rng(3)
    tokens = rng.integers(50, 150, size=12).astype(float)
    base = tokens * (3.0 + rng.normal(0, 0.1, size=(3, 12)))
    compressed = base + tokens * 1.0
    nll = base + tokens * (0.4 + rng.normal(0, 0.05, size=(3, 12)))
    observed, y = est.recovery(nll, base, compressed, tokens)
    p, pb, pc = (np.exp(a.sum(1) / tokens.sum()) for a in (nll, base, compressed))
    per_seed = 100 * (pc - p) / (pc - pb)
    assert observed == pytest.approx(per_seed.mean()) and np.allclose(y.mean(1), per_seed)
    # each unit's deviation is the recovery's gradient (by finite differences) times the units' linearised ratios
    ratios = [a.sum(1) / tokens.sum() for a in (nll, base, compressed)]

    def rec(r, b, c):
        return 100 * (np.exp(c) - np.exp(r)) / (np.exp(c) - np.exp(b))

    h = 1e-6
    grads = [(rec(*[x + h * (i == j) for j, x in enumerate(ratios)]) - per_seed) / h for i in range(3)]
    deviation = sum(g[:, None] * (a - r[:, None] * tokens) / tokens.mean()
                    for g, a, r in zip(grads, (nll, base, compressed), ratios))  # fmt: skip
    assert np.allclose(y - per_seed[:, None], deviation, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="no perplexity gap"):
        est.recovery(nll, compressed, base, tokens)
