"""The canary's statistics: pure functions, no I/O, every formula written down.

The canary compares a candidate model with a baseline on the SAME corpus, so every test
here is paired (item i of the baseline against item i of the candidate) where it can be:
a paired test only sees the items whose output changed, which is what makes a 2-point
shift detectable at N=1000 while a model compared with itself never alarms.

Notation: N paired items; for a binary outcome (label is POSITIVE, or answer is correct)
the 2x2 table of baseline x candidate has discordant cells

    b = #(baseline 0, candidate 1)        c = #(baseline 1, candidate 0)

Checks (defaults in `release.config.CanaryConfig`, calibrated by bench/canary_power.py):

G1 share-shift      shift = (b - c) / N  (candidate positive share minus baseline's),
                    exact McNemar p; fail when p < share_alpha AND |shift| >= share_min_shift.
G2 flip-rate        (b + c) / N > max_flip_rate -> fail.
G2 confident-flips  #(label changed AND baseline confidence >= confident_flip_conf) / N
                    > max_confident_flip_rate -> fail; the flipped ids are listed.
G3 confidence-ks    two-sample Kolmogorov-Smirnov D = sup_x |F_base(x) - F_cand(x)| on the
                    confidences; fail when D >= D_crit(ks_alpha) (0.087 at N = M = 1000).
G4 accuracy-drop    on labelled items: b = #(baseline right, candidate wrong),
                    c = #(baseline wrong, candidate right); drop = (b - c) / n;
                    fail when drop > accuracy_max_drop AND exact McNemar p < accuracy_alpha.
identical-outputs   when both runs used the same weights (same lock digest): the largest
                    |logit difference| over all items; fail when > identical_tolerance.
absolute checks     (also on a first release, without a baseline): accuracy on labelled
                    items >= min_accuracy; share of items with confidence < low_confidence
                    <= max_low_confidence_rate.

Live canary (release.canary.live): two-proportion z-test with the alpha split evenly over
the planned looks (Bonferroni), and the sample size needed for a given power.

The tests themselves come from scipy.stats (`binomtest`, `ks_2samp`, the normal tail);
what is written here is which test, which method, and the thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import stats as _st


# --- primitives -----------------------------------------------------------------------
def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    Under H0 (no change) each discordant pair is equally likely to go either way, so
    b ~ Binomial(b + c, 1/2): the exact binomial test (`scipy.stats.binomtest`), which for
    p = 1/2 is p = min(1, 2 * P[X <= min(b, c)]).  p = 1 when b + c = 0 (nothing changed).
    """
    if b < 0 or c < 0:
        raise ValueError("counts must be >= 0")
    n = b + c
    if n == 0:
        return 1.0
    return float(_st.binomtest(b, n, 0.5, alternative="two-sided").pvalue)


def ks_critical(n: int, m: int, alpha: float) -> float:
    """Asymptotic critical value of the two-sample KS statistic:

    D_crit = c(alpha) * sqrt((n + m) / (n * m)),   c(alpha) = sqrt(-ln(alpha / 2) / 2).

    At n = m = 1000 and alpha = 1e-3: c = 1.9495, D_crit = 0.0872.
    """
    c = math.sqrt(-math.log(alpha / 2.0) / 2.0)
    return c * math.sqrt((n + m) / (n * m))


def ks_two_sample(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """(D, p) of `scipy.stats.ks_2samp`, two-sided, with `method="exact"`:
    D = sup_x |F_a(x) - F_b(x)|; p the exact permutation p-value (for n = m the
    Gnedenko-Korolyuk sum, O(n) and a millisecond at n = 10,000; the canary always compares
    aligned samples, so n = m). The exact p assumes continuous data: tied confidences make
    it conservative (too large), never too small. The verdict is D against `ks_critical`."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both samples must be non-empty")
    res = _st.ks_2samp(
        np.asarray(a, dtype=np.float64),
        np.asarray(b, dtype=np.float64),
        alternative="two-sided",
        method="exact",
    )
    return float(res.statistic), float(res.pvalue)


class ZTest(NamedTuple):
    """The pooled two-proportion z-test of p1 = x1/n1 against p2 = x2/n2."""

    z: float  # (p1 - p2) / se
    p_two_sided: float  # P(|Z| >= |z|)
    p_greater: float  # one-sided P(Z >= z): small when p1 is significantly above p2


def two_proportion(x1: float, n1: float, x2: float, n2: float) -> ZTest:
    """The pooled two-proportion z-test (counts may be floats: CloudWatch sums):

    p_hat = (x1 + x2) / (n1 + n2),  z = (x1/n1 - x2/n2) / sqrt(p_hat (1 - p_hat) (1/n1 + 1/n2)).

    Two-sided, it is the chi-square test of the 2x2 table without continuity correction
    (z^2 = chi2; `scipy.stats.chi2_contingency(..., correction=False)`), which scipy offers
    only for the two-sided case and integer tables, so z is computed here and only the
    normal tail comes from scipy. se = 0 (both rates 0 or both 1): z = 0, p = 1.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples must be non-empty")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:
        return ZTest(0.0, 1.0, 1.0)
    z = (x1 / n1 - x2 / n2) / se
    return ZTest(z, float(2.0 * _st.norm.sf(abs(z))), float(_st.norm.sf(z)))


def alpha_per_look(alpha: float, looks: int) -> float:
    """Bonferroni split of the family-wise alpha over `looks` planned interim analyses:
    alpha / looks (conservative; valid for any dependence between the looks)."""
    if looks < 1:
        raise ValueError("looks must be >= 1")
    return alpha / looks


def samples_for_power(p0: float, delta: float, alpha: float, power: float, ratio: float) -> int:
    """Canary samples n2 needed for a two-sided two-proportion test to detect p0 -> p0 +
    delta with the given power, when the stable side has ratio * n2 samples:

    n2 = (z_{1-a/2} sqrt(pbar qbar (1 + 1/r)) + z_{power} sqrt(p1 q1 / r + p2 q2))^2 / delta^2.

    p0 = 0.5, delta = 0.05, alpha = 0.01: equal arms (r = 1) at power 0.9 need ~2,970
    canary samples; a 10% canary (r = 9) at power 0.8 ~1,300.
    """
    p1, p2 = p0, p0 + delta
    pbar = (ratio * p1 + p2) / (1 + ratio)
    za: float = _st.norm.isf(alpha / 2.0)
    zb: float = _st.norm.isf(1.0 - power)
    num = za * math.sqrt(pbar * (1 - pbar) * (1 + 1 / ratio)) + zb * math.sqrt(
        p1 * (1 - p1) / ratio + p2 * (1 - p2)
    )
    return math.ceil(num * num / (delta * delta))


# --- the canary checks ----------------------------------------------------------------
@dataclass(frozen=True)
class Outputs:
    """One model run over a corpus, as arrays aligned by item (the paired order).

    positive: label == POSITIVE; confidence: the winning class's probability;
    logits: shape (N, 2) or None; correct: label == expected, None where unlabelled.
    """

    ids: tuple[str, ...]
    positive: np.ndarray  # bool (N,)
    confidence: np.ndarray  # float (N,)
    logits: np.ndarray | None  # float (N, 2)
    correct: tuple[bool | None, ...]

    @property
    def n(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Check:
    """One check: its statistic, the value and threshold it was judged by, the verdict."""

    name: str
    passed: bool
    statistic: str
    value: float
    threshold: float
    p_value: float | None = None
    p_threshold: float | None = None
    detail: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class Thresholds:
    """The [canary] thresholds (a plain copy so this module stays config-free)."""

    share_alpha: float = 1e-3
    share_min_shift: float = 0.02
    max_flip_rate: float = 0.05
    confident_flip_conf: float = 0.9
    max_confident_flip_rate: float = 0.005
    ks_alpha: float = 1e-3
    accuracy_max_drop: float = 0.01
    accuracy_alpha: float = 0.01
    min_accuracy: float = 0.8
    low_confidence: float = 0.6
    max_low_confidence_rate: float = 0.2
    identical_tolerance: float = 1e-4
    min_paired_fraction: float = 0.9


def discordant(base: np.ndarray, cand: np.ndarray) -> tuple[int, int]:
    """(b, c) = (#(base False, cand True), #(base True, cand False))."""
    base = np.asarray(base, dtype=bool)
    cand = np.asarray(cand, dtype=bool)
    return int(np.sum(~base & cand)), int(np.sum(base & ~cand))


def check_share_shift(base: Outputs, cand: Outputs, t: Thresholds) -> Check:
    """G1: exact McNemar on the label discordant pairs, plus a minimum effect size."""
    b, c = discordant(base.positive, cand.positive)
    shift = (b - c) / cand.n
    p = mcnemar_exact(b, c)
    failed = p < t.share_alpha and abs(shift) >= t.share_min_shift
    return Check(
        "share-shift",
        not failed,
        "positive-share shift (candidate - baseline), exact McNemar",
        shift,
        t.share_min_shift,
        p,
        t.share_alpha,
        f"{b} NEGATIVE->POSITIVE, {c} POSITIVE->NEGATIVE of {cand.n}",
    )


def check_flips(base: Outputs, cand: Outputs, t: Thresholds) -> list[Check]:
    """G2: the flip rate, and flips of items the baseline was confident about."""
    changed = base.positive != cand.positive
    flips = int(changed.sum())
    rate = flips / cand.n
    confident = changed & (base.confidence >= t.confident_flip_conf)
    ids = tuple(i for i, f in zip(cand.ids, confident, strict=True) if f)
    crate = len(ids) / cand.n
    return [
        Check(
            "flip-rate",
            rate <= t.max_flip_rate,
            "share of items whose label changed",
            rate,
            t.max_flip_rate,
            detail=f"{flips} of {cand.n} labels changed",
            items=tuple(i for i, f in zip(cand.ids, changed, strict=True) if f),
        ),
        Check(
            "confident-flips",
            crate <= t.max_confident_flip_rate,
            f"share of items flipped that the baseline scored >= {t.confident_flip_conf:g}",
            crate,
            t.max_confident_flip_rate,
            detail=f"{len(ids)} confident flips",
            items=ids,
        ),
    ]


def check_confidence_ks(base: Outputs, cand: Outputs, t: Thresholds) -> Check:
    """G3: two-sample KS on the confidence distributions."""
    d, p = ks_two_sample(base.confidence, cand.confidence)
    crit = ks_critical(base.n, cand.n, t.ks_alpha)
    return Check(
        "confidence-ks",
        d < crit,
        "two-sample Kolmogorov-Smirnov D on confidences",
        d,
        crit,
        p,
        t.ks_alpha,
        f"median confidence {float(np.median(base.confidence)):.3f} -> "
        f"{float(np.median(cand.confidence)):.3f}",
    )


def paired_correct(base: Outputs, cand: Outputs) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of both runs on the items labelled in both."""
    pairs = [
        (bc, cc)
        for bc, cc in zip(base.correct, cand.correct, strict=True)
        if bc is not None and cc is not None
    ]
    if not pairs:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    arr = np.asarray(pairs, dtype=bool)
    return arr[:, 0], arr[:, 1]


def check_accuracy_drop(base: Outputs, cand: Outputs, t: Thresholds) -> Check | None:
    """G4: paired accuracy drop on labelled items (None when nothing is labelled)."""
    bc, cc = paired_correct(base, cand)
    n = len(bc)
    if n == 0:
        return None
    # b: baseline right, candidate wrong; c: baseline wrong, candidate right
    b, c = discordant(~bc, ~cc)
    drop = (b - c) / n
    p = mcnemar_exact(b, c)
    failed = drop > t.accuracy_max_drop and p < t.accuracy_alpha
    return Check(
        "accuracy-drop",
        not failed,
        "accuracy drop on labelled items (baseline - candidate), exact McNemar",
        drop,
        t.accuracy_max_drop,
        p,
        t.accuracy_alpha,
        f"accuracy {bc.mean():.3f} -> {cc.mean():.3f} on {n} labelled items",
    )


def check_identical(base: Outputs, cand: Outputs, t: Thresholds) -> Check:
    """Same weights: the largest absolute output difference (logits when both runs have
    them, else confidences) must stay within the tolerance."""
    if base.logits is not None and cand.logits is not None:
        diff = float(np.max(np.abs(base.logits - cand.logits))) if cand.n else 0.0
        what = "logit"
    else:
        diff = float(np.max(np.abs(base.confidence - cand.confidence))) if cand.n else 0.0
        what = "confidence"
    return Check(
        "identical-outputs",
        diff <= t.identical_tolerance,
        f"max |{what} difference| with the same weights",
        diff,
        t.identical_tolerance,
    )


def check_absolute(cand: Outputs, t: Thresholds) -> list[Check]:
    """Checks that need no baseline: accuracy on labelled items, low-confidence rate."""
    out: list[Check] = []
    labelled = [c for c in cand.correct if c is not None]
    if labelled:
        acc = sum(labelled) / len(labelled)
        out.append(
            Check(
                "accuracy",
                acc >= t.min_accuracy,
                "accuracy on labelled items (minimum)",
                acc,
                t.min_accuracy,
                detail=f"{sum(labelled)} of {len(labelled)} correct",
            )
        )
    low = float(np.mean(cand.confidence < t.low_confidence)) if cand.n else 0.0
    out.append(
        Check(
            "low-confidence",
            low <= t.max_low_confidence_rate,
            f"share of items with confidence < {t.low_confidence:g} (maximum)",
            low,
            t.max_low_confidence_rate,
        )
    )
    return out


def align(base: Outputs, cand: Outputs) -> tuple[Outputs, Outputs]:
    """Both runs restricted to their common ids, in the candidate's order."""
    if base.ids == cand.ids:
        return base, cand
    pos = {i: k for k, i in enumerate(base.ids)}
    keep = [k for k, i in enumerate(cand.ids) if i in pos]
    bidx = [pos[cand.ids[k]] for k in keep]
    return _take(base, bidx), _take(cand, keep)


def _take(o: Outputs, idx: list[int]) -> Outputs:
    ix = np.asarray(idx, dtype=np.int64)
    return Outputs(
        tuple(o.ids[i] for i in idx),
        o.positive[ix],
        o.confidence[ix],
        None if o.logits is None else o.logits[ix],
        tuple(o.correct[i] for i in idx),
    )


def check_paired_items(paired: int, n: int, t: Thresholds) -> Check:
    """A comparison on a few shared items proves nothing about the rest: the paired items
    must be at least `min_paired_fraction` of the candidate's corpus."""
    frac = paired / n if n else 0.0
    return Check(
        name="paired-items",
        passed=frac >= t.min_paired_fraction,
        statistic="paired / corpus items",
        value=frac,
        threshold=t.min_paired_fraction,
        detail=f"{paired} of {n} items paired with the baseline",
    )


def run_checks(
    cand: Outputs, base: Outputs | None, t: Thresholds, *, same_weights: bool = False
) -> list[Check]:
    """Every check that applies: the absolute checks always; with a baseline, G1-G4 on
    the paired items (and identical-outputs when both used the same weights)."""
    checks = check_absolute(cand, t)
    if base is None:
        return checks
    b, c = align(base, cand)
    if c.n == 0:
        raise ValueError("the baseline and the candidate share no item ids")
    checks.append(check_paired_items(c.n, cand.n, t))
    checks.append(check_share_shift(b, c, t))
    checks.extend(check_flips(b, c, t))
    checks.append(check_confidence_ks(b, c, t))
    acc = check_accuracy_drop(b, c, t)
    if acc is not None:
        checks.append(acc)
    if same_weights:
        checks.append(check_identical(b, c, t))
    return checks
