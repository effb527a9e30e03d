"""The statistics helpers (qadapt/results/stats.py) on samples generated here: an interval covers a known mean about
as often as it says, a known shift is detected and the absence of one is not."""

from __future__ import annotations

import numpy as np
import pytest

from qadapt.results import stats


def test_t_interval_matches_the_formula():
    x = [1.0, 2.0, 4.0]
    ci = stats.t_interval(x)
    half = 4.302652729911275 * np.std(x, ddof=1) / np.sqrt(3)  # t_{0.975, 2}
    assert ci.estimate == pytest.approx(7 / 3)
    assert (ci.low, ci.high) == pytest.approx((7 / 3 - half, 7 / 3 + half))
    with pytest.raises(ValueError, match="at least 2"):
        stats.t_interval([1.0])


@pytest.mark.parametrize("interval", ["t", "bootstrap"])
def test_intervals_cover_a_known_mean(interval):
    rng = np.random.default_rng(0)
    hits, trials = 0, 200
    for _ in range(trials):
        x = rng.normal(3.0, 2.0, size=40)
        ci = stats.t_interval(x) if interval == "t" else stats.bootstrap_interval(x, n_resamples=999, seed=1)
        hits += ci.low <= 3.0 <= ci.high
    # nominal 95 %: with 200 trials, 0.88..0.99 holds unless the interval is wrong (binomial sd ~ 1.5 points)
    assert 0.88 <= hits / trials <= 0.99


def test_paired_bootstrap_and_wilcoxon_detect_a_known_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=60)
    b = a + 0.4 + rng.normal(0.0, 0.5, size=60)  # paired: the unit effect cancels
    for test in (stats.paired_bootstrap(a, b, n_resamples=4999), stats.wilcoxon(a, b)):
        assert test.p < 0.001
        assert test.difference.excludes(0)
        assert test.difference.low < 0.4 < test.difference.high


def test_no_shift_is_not_detected_more_often_than_the_level_says():
    rng = np.random.default_rng(2)
    rejected = {"bootstrap": 0, "wilcoxon": 0}
    trials = 200
    for _ in range(trials):
        a = rng.normal(0.0, 1.0, size=30)
        b = a + rng.normal(0.0, 0.5, size=30)
        rejected["bootstrap"] += stats.paired_bootstrap(a, b, n_resamples=999).p < 0.05
        rejected["wilcoxon"] += stats.wilcoxon(a, b).p < 0.05
    # the level is 5 %: 10 of 200 expected; more than 22 would mean the test finds shifts that are not there
    assert rejected["bootstrap"] <= 22 and rejected["wilcoxon"] <= 22
    assert rejected["bootstrap"] >= 2  # and it is a test, not a constant


def test_paired_samples_must_have_the_same_length():
    with pytest.raises(ValueError, match="differ in length"):
        stats.paired_bootstrap([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="differ in length"):
        stats.wilcoxon([1.0, 2.0], [1.0])


def _two_level(effect: float, rng, seeds: int = 3, windows: int = 40):
    """Per (seed, window) NLL sums of a base and of a method whose per-token NLL moves by ``effect`` (nats)."""
    tokens = np.full(windows, 100.0)
    base = rng.normal(3.0, 0.3, size=windows) * tokens
    seed_effect = rng.normal(0.0, 0.005, size=(seeds, 1))
    method = base + (effect + seed_effect + rng.normal(0.0, 0.02, size=(seeds, windows))) * tokens
    return method, base, tokens


def _deltas(method, base, tokens, seed_counts, window_counts):
    sums = ((method - base) @ window_counts.T) / (tokens @ window_counts.T)
    return (np.expm1(sums).T * seed_counts).sum(1) / method.shape[0]


def test_two_level_resamples_pair_methods():
    """The two-level draws (seeds, then windows; the legacy scripts' bootstrap) pair two methods on the same draws.
    Its coverage is not claimed: at 3 seeds it undercovers (tests/unit/test_estimate.py); the study estimator
    replaces it."""
    rng = np.random.default_rng(3)
    seeds, windows = 3, 40
    seed_counts, window_counts = stats.two_level_resamples(seeds, windows, n_resamples=2000, seed=0)
    assert (seed_counts.sum(1) == seeds).all() and (window_counts.sum(1) == windows).all()

    # paired: a 0.01-nat difference between two methods on the same windows is found; no difference is not
    a, base, tokens = _two_level(-0.05, rng, seeds, windows)
    b = a - 0.01 * tokens
    same = a + rng.normal(0.0, 0.02, size=a.shape) * tokens
    da = _deltas(a, base, tokens, seed_counts, window_counts)
    assert stats.bootstrap_p(_deltas(b, base, tokens, seed_counts, window_counts) - da) < 0.01
    assert stats.bootstrap_p(_deltas(same, base, tokens, seed_counts, window_counts) - da) > 0.05


def test_bootstrap_p_is_two_sided_and_bounded_by_the_resolution():
    assert stats.bootstrap_p(np.ones(100)) == pytest.approx(0.02)  # 2 / B: the resolution of a two-sided p
    assert stats.bootstrap_p(np.r_[-np.ones(50), np.ones(50)]) == 1.0
    assert stats.bootstrap_p(np.r_[-np.ones(10), np.ones(90)]) == pytest.approx(0.2)


def test_window_perplexities_and_seed_mean_are_the_drawn_statistics():
    """Each resample's perplexity is exp(NLL / tokens) over the windows it draws (with repeats), and the seed mean
    averages the seeds it draws: checked against the statistic computed on the drawn lists directly."""
    rng = np.random.default_rng(7)
    nll, tokens = rng.uniform(100, 400, size=(3, 25)), rng.integers(50, 129, size=25).astype(float)
    seed_counts, window_counts = stats.two_level_resamples(3, 25, n_resamples=50, seed=1)
    ppl = stats.window_perplexities(nll, tokens, window_counts)
    means = stats.seed_mean(ppl, seed_counts)
    for b in (0, 17, 49):
        drawn = np.repeat(np.arange(25), window_counts[b])
        direct = np.exp(nll[:, drawn].sum(1) / tokens[drawn].sum())
        assert np.allclose(ppl[:, b], direct, rtol=1e-12)
        assert means[b] == pytest.approx(np.mean(np.repeat(direct, seed_counts[b])), rel=1e-12)


def test_ratio_interval_covers_a_known_ratio_over_correlated_clusters():
    """Blocks of 64 tokens sharing a block effect (tokens in a block are correlated): the cluster bootstrap covers
    the true mean difference about as often as its level says, and detects a shift of 0.15 nats (~6 standard errors)."""
    rng = np.random.default_rng(0)

    def sample(shift):
        tokens = np.full(80, 64)
        tokens[-1] = 17  # a shorter last block, as at the end of an evaluation
        block_effect = rng.normal(0, 0.2, size=80)
        sums = np.array([(shift + e + rng.normal(0, 1.0, size=t)).sum() for e, t in zip(block_effect, tokens)])
        return sums, tokens

    covered = 0
    for i in range(60):
        sums, tokens = sample(0.0)
        covered += not stats.ratio_interval(sums, tokens, n_resamples=1000, seed=i).excludes(0.0)
    assert covered >= 52  # 95 % nominal: 57 of 60 expected, binomial 1st percentile ~52
    shifted = stats.ratio_interval(*sample(0.15), n_resamples=2000)
    assert shifted.excludes(0.0) and shifted.low > 0
    with pytest.raises(ValueError):
        stats.ratio_interval([1.0], [2.0])


@pytest.mark.parametrize("metric", ["accuracy", "pearson_spearman"])
def test_score_interval_covers_a_known_score_about_as_often_as_it_says(metric):
    """500 examples per draw, 400 draws: an accuracy of 0.55 (Wilson) or a correlation of 0.3 (Fisher z) is
    covered 95 % of the time (binomial spread of 400 draws: +-2.2 points at 2 sd) and missed on either side."""
    rng, n, covered, below = np.random.default_rng(0), 500, 0, 0
    truth = 0.55 if metric == "accuracy" else 0.3
    for _ in range(400):
        if metric == "accuracy":
            score = rng.binomial(n, truth) / n
        else:
            x = rng.standard_normal(n)
            y = truth * x + np.sqrt(1 - truth**2) * rng.standard_normal(n)
            score = float(np.corrcoef(x, y)[0, 1])
        ci = stats.score_interval(score, n, metric)
        covered += ci.low <= truth <= ci.high
        below += ci.high < truth
    assert 0.925 <= covered / 400 <= 0.975
    assert 0 < below < 400 - covered  # misses on both sides


def test_score_interval_says_whether_a_bar_is_clearly_passed():
    # 55.4 % of 500 is not clearly above 55 (Wilson: 51.0 to 59.7); 61.4 % is (57.1 to 65.6)
    assert 0.50 < stats.score_interval(0.554, 500, "accuracy").low < 0.52
    assert stats.score_interval(0.614, 500, "accuracy").low > 0.57
    assert stats.score_interval(0.2, 1043, "matthews").low > 0.14
    with pytest.raises(ValueError, match="valid choices"):
        stats.score_interval(0.5, 500, "bleu")


@pytest.mark.parametrize(
    ("both", "a_only", "b_only", "neither"), [(50, 12, 3, 20), (10, 0, 7, 3), (5, 4, 4, 1), (9, 0, 0, 2)]
)
def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_pairs(both, a_only, b_only, neither):
    """Constructed 2 x 2 tables: the counts come back, and p is scipy's two-sided binomial test of a_only out of the
    discordant pairs at 1/2 (1.0 without discordant pairs)."""
    from scipy.stats import binomtest

    a = [True] * both + [True] * a_only + [False] * b_only + [False] * neither
    b = [True] * both + [False] * a_only + [True] * b_only + [False] * neither
    test = stats.mcnemar(a, b)
    assert (test.n, test.a_only, test.b_only, test.net) == (len(a), a_only, b_only, b_only - a_only)
    expected = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    assert test.p == pytest.approx(expected, rel=1e-12)
    assert stats.mcnemar(b, a).p == pytest.approx(test.p, rel=1e-12)
    with pytest.raises(ValueError, match="differ in length"):
        stats.mcnemar(a, b[:-1])
