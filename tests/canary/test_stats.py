"""release.canary.stats: each formula against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from release.canary import stats


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 5), (3, 9), (20, 0), (50, 48), (7, 7)])
def test_mcnemar_exact_matches_binomial_test(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else st.binomtest(b, b + c, 0.5).pvalue
    assert stats.mcnemar_exact(b, c) == pytest.approx(min(1.0, expected), rel=1e-9)


def test_mcnemar_exact_known_values() -> None:
    assert stats.mcnemar_exact(0, 10) == pytest.approx(2 * 0.5**10)
    assert stats.mcnemar_exact(20, 0) < 1e-5


def test_ks_statistic_matches_scipy_and_critical_value() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.random(700), rng.random(900) ** 1.3
    d, p = stats.ks_two_sample(a, b)
    ref = st.ks_2samp(a, b)
    assert d == pytest.approx(ref.statistic)
    assert p == pytest.approx(st.kstwobign.sf(math.sqrt(700 * 900 / 1600) * d))
    assert p == pytest.approx(st.ks_2samp(a, b, method="asymp").pvalue, rel=0.2)
    assert stats.ks_critical(1000, 1000, 1e-3) == pytest.approx(0.0872, abs=5e-5)


def test_ks_ties_and_identical_samples() -> None:
    a = np.array([0.9, 0.9, 0.7, 0.7])
    assert stats.ks_two_sample(a, a) == (0.0, 1.0)
    assert stats.ks_two_sample(a, np.array([0.7, 0.7, 0.7, 0.9]))[0] == pytest.approx(0.25)


def test_two_proportion_test() -> None:
    diff, z, p = stats.two_proportion_test(500, 1000, 560, 1000)
    pooled = 1060 / 2000
    assert diff == pytest.approx(0.06)
    assert z == pytest.approx(0.06 / math.sqrt(pooled * (1 - pooled) * 2 / 1000))
    assert p == pytest.approx(2 * st.norm.sf(z))
    assert stats.two_proportion_test(0, 10, 0, 10) == (0.0, 0.0, 1.0)


def test_samples_for_power_equal_arms_about_3000() -> None:
    assert 2900 <= stats.samples_for_power(0.5, 0.05, 0.01, 0.9, 1.0) <= 3000
    assert stats.alpha_per_look(0.01, 4) == 0.0025


def _outs(
    pos: list[bool], conf: list[float], correct: list[bool | None] | None = None
) -> stats.Outputs:
    n = len(pos)
    return stats.Outputs(
        ids=tuple(f"i{k}" for k in range(n)),
        positive=np.asarray(pos),
        confidence=np.asarray(conf, dtype=float),
        logits=None,
        correct=tuple(correct) if correct is not None else (None,) * n,
    )


def test_share_shift_needs_significance_and_effect_size() -> None:
    t = stats.Thresholds()
    n = 1000
    base = _outs([False] * 600 + [True] * 400, [0.95] * n)
    # 30 NEGATIVE -> POSITIVE: shift +3 points, p = 2 * 0.5**30
    shifted = _outs([True] * 30 + [False] * 570 + [True] * 400, [0.95] * n)
    c = stats.check_share_shift(base, shifted, t)
    assert (c.ok, c.value, c.p_value) == (False, 0.03, pytest.approx(2 * 0.5**30))
    # 15 each way: no shift at all
    churn = _outs([True] * 15 + [False] * 585 + [False] * 15 + [True] * 385, [0.95] * n)
    assert stats.check_share_shift(base, churn, t).ok
    # significant but below 2 points: 12 one way -> p = 4.9e-4 < 1e-3, |shift| 1.2 points
    small = _outs([True] * 12 + [False] * 588 + [True] * 400, [0.95] * n)
    c = stats.check_share_shift(base, small, t)
    assert c.p_value is not None and c.p_value < 1e-3
    assert c.ok


def test_flips_and_confident_flips_list_the_items() -> None:
    t = stats.Thresholds()
    base = _outs([True] * 200, [0.95] * 100 + [0.55] * 100)
    cand = _outs([False] + [True] * 199, [0.6] * 200)
    rate, conf = stats.check_flips(base, cand, t)
    assert rate.ok and rate.value == 0.005
    assert conf.ok and conf.items == ("i0",) and conf.value == 0.005
    cand2 = _outs([False, False] + [True] * 198, [0.6] * 200)
    conf2 = stats.check_flips(base, cand2, t)[1]
    assert not conf2.ok and conf2.items == ("i0", "i1") and conf2.value == 0.01


def test_accuracy_drop_is_paired() -> None:
    t = stats.Thresholds()
    n = 400
    base = _outs([True] * n, [0.9] * n, [True] * 380 + [False] * 20)
    worse = _outs([True] * n, [0.9] * n, [False] * 12 + [True] * 368 + [False] * 20)
    c = stats.check_accuracy_drop(base, worse, t)
    assert c is not None and not c.ok and c.value == 12 / 400
    unlabelled = _outs([True] * n, [0.9] * n)
    assert stats.check_accuracy_drop(unlabelled, unlabelled, t) is None


def test_run_checks_aligns_by_id_and_absolute_only_without_baseline() -> None:
    t = stats.Thresholds()
    cand = _outs([True, False, True], [0.99, 0.98, 0.97], [True, True, False])
    names = [c.name for c in stats.run_checks(cand, None, t)]
    assert names == ["accuracy", "low-confidence"]
    rev = stats.Outputs(
        ids=tuple(reversed(cand.ids)),
        positive=cand.positive[::-1],
        confidence=cand.confidence[::-1],
        logits=None,
        correct=tuple(reversed(cand.correct)),
    )
    checks = stats.run_checks(cand, rev, t, same_weights=True)
    assert {c.name: c.ok for c in checks}["identical-outputs"] is True
    assert all(c.ok for c in checks if c.name != "accuracy")
