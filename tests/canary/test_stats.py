"""release.canary.stats: each formula against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from release.canary import checks, stats


def _exact_mcnemar_by_counting(b: int, c: int) -> float:
    """Two-sided sign test by enumeration: 2 * sum_{i <= min(b, c)} C(n, i) / 2^n, at most 1."""
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n)


@pytest.mark.parametrize(("b", "c"), [(0, 5), (3, 9), (20, 0), (50, 48), (7, 7), (1, 30)])
def test_mcnemar_exact_matches_an_enumerated_sign_test(b: int, c: int) -> None:
    assert stats.mcnemar_exact(b, c) == pytest.approx(_exact_mcnemar_by_counting(b, c), rel=1e-9)
    assert stats.mcnemar_exact(c, b) == stats.mcnemar_exact(b, c)


def test_mcnemar_exact_known_values() -> None:
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    # (3, 9): 2 * (1 + 12 + 66 + 220) / 4096
    assert stats.mcnemar_exact(3, 9) == pytest.approx(598 / 4096)
    assert stats.mcnemar_exact(7, 7) == 1.0


def _ks_d_by_brute_force(a: np.ndarray, b: np.ndarray) -> float:
    """sup_x |F_a(x) - F_b(x)|, evaluating both empirical CDFs at every pooled point."""
    return max(abs(np.mean(a <= x) - np.mean(b <= x)) for x in np.concatenate([a, b]))


def _ks_exact_p_equal_sizes(n: int, d: float) -> float:
    """Gnedenko-Korolyuk: P(D_nn >= k/n) = 2 sum_{j>=1} (-1)^(j-1) C(2n, n - jk) / C(2n, n)."""
    k = round(d * n)
    if k == 0:
        return 1.0
    s = sum((-1) ** (j - 1) * math.comb(2 * n, n - j * k) for j in range(1, n // k + 1))
    return min(1.0, 2 * s / math.comb(2 * n, n))


@pytest.mark.parametrize(("seed", "n"), [(1, 10), (2, 40), (3, 50), (4, 200), (5, 1000)])
def test_ks_matches_the_exact_distribution_for_equal_sizes(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.random(n), rng.random(n) ** 1.4
    d, p = stats.ks_two_sample(a, b)
    assert d == pytest.approx(_ks_d_by_brute_force(a, b), abs=1e-12)
    assert p == pytest.approx(_ks_exact_p_equal_sizes(n, d), rel=1e-6)


def test_ks_known_values_and_critical_value() -> None:
    # disjoint samples of 5: D = 1, P = 2 / C(10, 5) = 2 / 252
    assert stats.ks_two_sample([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == (1.0, pytest.approx(2 / 252))
    assert stats.ks_critical(1000, 1000, 1e-3) == pytest.approx(0.0872, abs=5e-5)
    # unequal sizes still give the statistic; the p-value is a probability
    d, p = stats.ks_two_sample([0.1, 0.2, 0.3], [0.25, 0.5, 0.6, 0.7, 0.8])
    assert d == pytest.approx(
        _ks_d_by_brute_force(np.array([0.1, 0.2, 0.3]), np.array([0.25, 0.5, 0.6, 0.7, 0.8]))
    )
    assert 0.0 < p <= 1.0
    with pytest.raises(ValueError):
        stats.ks_two_sample([], [1.0])


def test_ks_ties_and_identical_samples() -> None:
    a = np.array([0.9, 0.9, 0.7, 0.7])
    assert stats.ks_two_sample(a, a) == (0.0, 1.0)
    assert stats.ks_two_sample(a, np.array([0.7, 0.7, 0.7, 0.9]))[0] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2"),
    [(500, 1000, 560, 1000), (1400, 3000, 14500, 27000), (90, 3000, 27, 27000), (3, 40, 9, 41)],
)
def test_two_proportion_matches_the_chi_square_test_of_the_table(
    x1: int, n1: int, x2: int, n2: int
) -> None:
    z, p2, p1 = stats.two_proportion(x1, n1, x2, n2)
    chi2 = st.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    assert z * z == pytest.approx(chi2.statistic, rel=1e-9)
    assert p2 == pytest.approx(chi2.pvalue, rel=1e-9)
    # the one-sided tail is half the two-sided one, on the side of the sign of z
    assert p1 == pytest.approx(chi2.pvalue / 2 if z > 0 else 1 - chi2.pvalue / 2, rel=1e-9)
    assert (z > 0) == (x1 / n1 > x2 / n2)


def test_two_proportion_known_values() -> None:
    # 60/100 vs 40/100: pooled 1/2, se = sqrt(1/4 * 2/100), z = 2 sqrt(2), P = erfc(2)
    z, p2, p1 = stats.two_proportion(60, 100, 40, 100)
    assert z == pytest.approx(2 * math.sqrt(2))
    assert p2 == pytest.approx(math.erfc(2.0))
    assert p1 == pytest.approx(math.erfc(2.0) / 2)
    assert stats.two_proportion(0, 10, 0, 10) == (0.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        stats.two_proportion(0, 0, 1, 10)


def test_samples_for_power_equal_arms_about_3000() -> None:
    assert 2900 <= stats.samples_for_power(0.5, 0.05, 0.01, 0.9, 1.0) <= 3000
    assert stats.alpha_per_look(0.01, 4) == 0.0025


def _outs(
    pos: list[bool], conf: list[float], correct: list[bool | None] | None = None
) -> checks.Outputs:
    n = len(pos)
    return checks.label_outputs(
        [f"i{k}" for k in range(n)],
        ["no", "yes"],
        ["yes" if p else "no" for p in pos],
        conf,
        correct=correct,
    )


def test_share_shift_needs_significance_and_effect_size() -> None:
    t = checks.Thresholds()
    n = 1000
    base = _outs([False] * 600 + [True] * 400, [0.95] * n)
    # 30 NEGATIVE -> POSITIVE: shift +3 points, p = 2 * 0.5**30
    shifted = _outs([True] * 30 + [False] * 570 + [True] * 400, [0.95] * n)
    c = checks.check_share_shift(base, shifted, t)
    assert (c.ok, c.value, c.p_value) == (False, 0.03, pytest.approx(2 * 0.5**30))
    # 15 each way: no shift at all
    churn = _outs([True] * 15 + [False] * 585 + [False] * 15 + [True] * 385, [0.95] * n)
    assert checks.check_share_shift(base, churn, t).ok
    # significant but below 2 points: 12 one way -> p = 4.9e-4 < 1e-3, |shift| 1.2 points
    small = _outs([True] * 12 + [False] * 588 + [True] * 400, [0.95] * n)
    c = checks.check_share_shift(base, small, t)
    assert c.p_value is not None and c.p_value < 1e-3
    assert c.ok


def test_flips_and_confident_flips_list_the_items() -> None:
    t = checks.Thresholds()
    base = _outs([True] * 200, [0.95] * 100 + [0.55] * 100)
    cand = _outs([False] + [True] * 199, [0.6] * 200)
    rate, conf = checks.check_flips(base, cand, t)
    assert rate.ok and rate.value == 0.005
    assert conf.ok and conf.items == ("i0",) and conf.value == 0.005
    cand2 = _outs([False, False] + [True] * 198, [0.6] * 200)
    conf2 = checks.check_flips(base, cand2, t)[1]
    assert not conf2.ok and conf2.items == ("i0", "i1") and conf2.value == 0.01


def test_accuracy_drop_is_paired() -> None:
    t = checks.Thresholds()
    n = 400
    base = _outs([True] * n, [0.9] * n, [True] * 380 + [False] * 20)
    worse = _outs([True] * n, [0.9] * n, [False] * 12 + [True] * 368 + [False] * 20)
    c = checks.check_accuracy_drop(base, worse, t)
    assert c is not None and not c.ok and c.value == 12 / 400
    unlabelled = _outs([True] * n, [0.9] * n)
    assert checks.check_accuracy_drop(unlabelled, unlabelled, t) is None


def test_run_checks_aligns_by_id_and_absolute_only_without_baseline() -> None:
    t = checks.Thresholds()
    cand = _outs([True, False, True], [0.99, 0.98, 0.97], [True, True, False])
    names = [c.name for c in checks.run_checks(cand, None, t)]
    assert names == ["accuracy", "low-confidence"]
    rev = cand.take([2, 1, 0])
    done = checks.run_checks(cand, rev, t, same_weights=True)
    assert {c.name: c.ok for c in done}["identical-outputs"] is True
    assert all(c.ok for c in done if c.name != "accuracy")


def test_threshold_defaults_are_the_configs() -> None:
    """checks.Thresholds keeps a config-free copy of the [canary] defaults: they agree."""
    from release.canary import report as rpt
    from release.config import CanaryConfig

    assert checks.Thresholds() == rpt.thresholds(CanaryConfig())
