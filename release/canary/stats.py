"""The canary's statistics: pure functions, no I/O, every formula written down.

The canary compares a candidate model with a baseline on the SAME corpus, so every test
here is paired (item i of the baseline against item i of the candidate): a paired test
only sees the items whose output changed, which is what makes a 2-point shift detectable
at N = 1000 while a model compared with itself never alarms. Which test each output type
gets, with which threshold, is `release.canary.checks`; the tests are here:

label (K labels)  the K x K table n[i, j] = #(baseline label i, candidate label j):
                  marginal homogeneity - K = 2: exact McNemar on the discordant cells
                  b = n[0, 1], c = n[1, 0]; K > 2: Stuart-Maxwell, exact (conditional on
                  the pair totals n[i, j] + n[j, i], each split Binomial(., 1/2) under
                  no change) when that enumeration is small, else chi-square (K - 1 df).
multi-label       per label the exact McNemar of its on/off decisions, Holm-corrected.
score             Wilcoxon signed-rank on the paired differences; two-sample KS.
vector            per-item cosine similarity; a sign-flip permutation test of the mean
                  paired difference (`scipy.stats.permutation_test`).
live canary       label shares compared within strata (period x function) and pooled
                  (`stratified_difference`; normal reference when each invocation makes
                  one prediction, quasi-binomial with a t reference when invocations
                  are batched); error rates by the two-proportion z-test; the alpha
                  split over the planned looks (Bonferroni).

The tests themselves come from scipy.stats (`binomtest`, `chi2`, `wilcoxon`, `ks_2samp`,
`permutation_test`, the normal tail); Stuart-Maxwell and Holm are written here (scipy has
neither), each in a few lines. scipy is imported inside the functions that compute a
p-value, never at module import: importing `scipy.stats` costs seconds of CPU, and
`release verify` (which reads canary reports, computes nothing) must not pay it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


# --- primitives -----------------------------------------------------------------------
def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    Under H0 (no change) each discordant pair is equally likely to go either way, so
    b ~ Binomial(b + c, 1/2): the exact binomial test (`scipy.stats.binomtest`), which for
    p = 1/2 is p = min(1, 2 * P[X <= min(b, c)]).  p = 1 when b + c = 0 (nothing changed).
    """
    from scipy import stats as _st

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
    from scipy import stats as _st

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
    from scipy import stats as _st

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
    from scipy import stats as _st

    p1, p2 = p0, p0 + delta
    pbar = (ratio * p1 + p2) / (1 + ratio)
    za: float = _st.norm.isf(alpha / 2.0)
    zb: float = _st.norm.isf(1.0 - power)
    num = za * math.sqrt(pbar * (1 - pbar) * (1 + 1 / ratio)) + zb * math.sqrt(
        p1 * (1 - p1) / ratio + p2 * (1 - p2)
    )
    return math.ceil(num * num / (delta * delta))


# --- K labels: marginal homogeneity ------------------------------------------------------
#: the exact Stuart-Maxwell test enumerates at most this many tables
EXACT_TABLES = 200_000


class Homogeneity(NamedTuple):
    """A marginal-homogeneity test of a K x K paired table."""

    statistic: float  # Stuart-Maxwell chi-square (K = 2: McNemar's (b - c)^2 / (b + c))
    p_value: float
    method: str  # "exact McNemar" | "exact Stuart-Maxwell" | "Stuart-Maxwell chi2(df)"


def _sm_matrix(table: np.ndarray) -> np.ndarray:
    """S of Stuart-Maxwell: S[i, i] = n[i, .] + n[., i] - 2 n[i, i], S[i, j] = -(n[i, j] +
    n[j, i]); it depends only on the pair totals n[i, j] + n[j, i]."""
    sym = table + table.T
    s: np.ndarray = -sym.astype(np.float64)
    np.fill_diagonal(s, sym.sum(axis=1) - np.diag(sym))
    return s


def stuart_maxwell(table: np.ndarray) -> tuple[float, int]:
    """(chi2, df) of the Stuart-Maxwell test: d = row sums - column sums (first K - 1),
    chi2 = d' S^-1 d over the first K - 1 labels; labels that never changed drop out
    (pseudo-inverse; df = rank of S restricted). chi2 = 0, df = 0 when nothing changed."""
    t = np.asarray(table, dtype=np.float64)
    d = (t.sum(axis=1) - t.sum(axis=0))[:-1]
    s = _sm_matrix(t)[:-1, :-1]
    df = int(np.linalg.matrix_rank(s)) if s.size else 0
    if df == 0:
        return 0.0, 0
    return float(d @ np.linalg.pinv(s) @ d), df


def marginal_homogeneity(table: np.ndarray) -> Homogeneity:
    """Do the candidate's label shares differ from the baseline's, paired item by item?

    K = 2: exact McNemar (`mcnemar_exact(n[0, 1], n[1, 0])`). K > 2: Stuart-Maxwell; when
    the product over label pairs of (n[i, j] + n[j, i] + 1) is at most EXACT_TABLES, the
    exact conditional p-value - each pair total split Binomial(total, 1/2), as it is when
    the models agree in distribution (the candidate is the baseline up to noise), every
    split enumerated, P(chi2 >= observed) - else the chi-square tail with K - 1 df."""
    from scipy import stats as _st

    t = np.asarray(table, dtype=np.int64)
    k = t.shape[0]
    if t.shape != (k, k) or k < 2:
        raise ValueError("a square table of at least 2 labels is needed")
    if k == 2:
        b, c = int(t[0, 1]), int(t[1, 0])
        stat = (b - c) ** 2 / (b + c) if b + c else 0.0
        return Homogeneity(stat, mcnemar_exact(b, c), "exact McNemar")
    stat, df = stuart_maxwell(t)
    if df == 0:
        return Homogeneity(0.0, 1.0, "exact Stuart-Maxwell")
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k) if t[i, j] + t[j, i] > 0]
    totals = [int(t[i, j] + t[j, i]) for i, j in pairs]
    if math.prod(m + 1 for m in totals) <= EXACT_TABLES:
        s_inv = np.linalg.pinv(_sm_matrix(t)[:-1, :-1])
        grids = np.meshgrid(*[np.arange(m + 1) for m in totals], indexing="ij")
        ups = np.stack([g.ravel() for g in grids], axis=1)  # n[i, j] per pair, every split
        logp = sum(_st.binom.logpmf(ups[:, q], m, 0.5) for q, m in enumerate(totals))
        d = np.zeros((len(ups), k))
        for q, (i, j) in enumerate(pairs):
            net = 2 * ups[:, q] - totals[q]  # n[i, j] - n[j, i]
            d[:, i] += net
            d[:, j] -= net
        d = d[:, :-1]
        stats_all = np.einsum("ni,ij,nj->n", d, s_inv, d)
        p = float(np.exp(logp)[stats_all >= stat - 1e-9 * max(1.0, stat)].sum())
        return Homogeneity(stat, min(1.0, p), "exact Stuart-Maxwell")
    return Homogeneity(stat, float(_st.chi2.sf(stat, df)), f"Stuart-Maxwell chi2({df})")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: sorted ascending, p_(i) * (m - i), made
    non-decreasing, capped at 1. Rejecting adjusted p < alpha keeps the family-wise
    error rate at alpha under any dependence."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, p_values[i] * (m - rank)))
        out[i] = running
    return out


# --- scores -------------------------------------------------------------------------------
def wilcoxon_paired(base: np.ndarray, cand: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of the differences cand - base
    (`scipy.stats.wilcoxon`, zero differences dropped, exact for small samples);
    1 when every difference is zero (nothing changed)."""
    from scipy import stats as _st

    d = np.asarray(cand, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    if not np.any(d != 0):
        return 1.0
    return float(_st.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


# --- vectors ------------------------------------------------------------------------------
def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays; 1 where both rows are zero, 0
    where one is."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = np.einsum("nd,nd->n", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = dot / (na * nb)
    return np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0, c))


def mean_shift_test(
    base: np.ndarray, cand: np.ndarray, *, resamples: int = 1999, seed: int = 0
) -> tuple[float, float]:
    """(||mean_i (c_i - b_i)||, p): is there a systematic paired difference?

    Under no change each item's pair is exchangeable, so each difference is as likely to
    be -(c_i - b_i): `scipy.stats.permutation_test` with permutation_type="samples" on one
    sample flips the signs, here of the item numbers 1..N, and the statistic applies each
    item's sign to its difference vector. `resamples` random sign vectors (fixed seed: a
    report is reproducible); p >= 1 / (resamples + 1)."""
    from scipy import stats as _st

    diffs = np.asarray(cand, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    n = len(diffs)
    observed = float(np.linalg.norm(diffs.mean(axis=0)))
    if n == 0 or observed == 0.0:
        return observed, 1.0

    def statistic(x: np.ndarray, axis: int) -> np.ndarray:
        signs = np.sign(np.moveaxis(x, axis, -1))  # (..., N), items in order
        return np.asarray(np.linalg.norm(signs @ diffs / n, axis=-1))

    res = _st.permutation_test(
        (np.arange(1, n + 1, dtype=np.float64),),
        statistic,
        permutation_type="samples",
        vectorized=True,
        n_resamples=resamples,
        alternative="greater",
        batch=500,
        random_state=seed,
    )
    return observed, float(res.pvalue)


# --- live canary: per-stratum comparison ---------------------------------------------
class Stratified(NamedTuple):
    """A share difference new - stable estimated within strata (period x function) and
    pooled."""

    difference: float  # the pooled within-stratum difference D
    z: float
    p_value: float  # two-sided
    dispersion: float  # phi >= 1: the excess of between-stratum variation over binomial
    periods: int  # strata that carried information
    df: int | None = None  # t reference with df degrees of freedom; None: normal


def stratified_difference(
    x1: Sequence[float],
    n1: Sequence[float],
    x2: Sequence[float],
    n2: Sequence[float],
    *,
    batched: bool = True,
    heterogeneity_alpha: float = 0.01,
) -> Stratified:
    """Is the share x1/n1 of one version different from x2/n2 of the other, when both are
    counted within the same strata (one period of one function: version 1 and 2 see the
    same traffic there)?

    Per stratum t: d_t = x1_t/n1_t - x2_t/n2_t, v_t = p_t (1 - p_t) (1/n1_t + 1/n2_t) with
    p_t pooled; D = sum w_t d_t / sum w_t, w_t = 1/v_t (the Cochran-Mantel-Haenszel idea:
    each stratum compares like with like, so a traffic mix that drifts over the bake
    moves both versions together and cancels).

    How far D may stray by chance depends on what the alias routes at random:
    - `batched=False` (each invocation makes one prediction): Lambda's weighted alias
      sends each invocation to a version at random, so within a stratum the new version's
      predictions are a random draw from that stratum's - v_t is their exact
      (hypergeometric) variance however bursty or alike the traffic is; z = D /
      sqrt(1 / sum w_t), normal reference. A safety net: when the heterogeneity statistic
      Q = sum w_t (d_t - D)^2 is itself significant (chi-square, T - 1 df, P <
      `heterogeneity_alpha`), the predictions are not one per invocation after all, and
      the batched test below is used.
    - `batched=True` (an invocation makes several predictions, e.g. an SQS batch, and
      they go to one version together): predictions correlated within an invocation
      spread the d_t more than binomial, by a factor phi nobody knows in advance.
      phi = max(1, Q / (T - 1)) (quasi-binomial), z = D / sqrt(phi / sum w_t), and the
      reference is Student's t with T - 1 df: phi is estimated from T strata, and a
      normal reference would alarm several times too often when T is small. Power
      then grows with T: more periods (high-resolution metrics, `period_seconds` 10) or
      more functions.
    Strata where either version had nothing, or p_t is 0 or 1, carry no information and
    are left out; none left: D = 0, p = 1."""
    from scipy import stats as _st

    a, b = np.asarray(x1, dtype=np.float64), np.asarray(x2, dtype=np.float64)
    m, n = np.asarray(n1, dtype=np.float64), np.asarray(n2, dtype=np.float64)
    ok = (m > 0) & (n > 0)
    a, b, m, n = a[ok], b[ok], m[ok], n[ok]
    pooled = (a + b) / (m + n) if len(m) else np.zeros(0)
    v = pooled * (1 - pooled) * (1 / m + 1 / n) if len(m) else np.zeros(0)
    keep = v > 0
    if not np.any(keep):
        return Stratified(0.0, 0.0, 1.0, 1.0, 0)
    d = a[keep] / m[keep] - b[keep] / n[keep]
    w = 1.0 / v[keep]
    big_d = float(np.sum(w * d) / np.sum(w))
    t = int(keep.sum())
    q = float(np.sum(w * (d - big_d) ** 2))
    phi = q / (t - 1) if t > 1 else 1.0
    if not batched and (t < 2 or float(_st.chi2.sf(q, t - 1)) >= heterogeneity_alpha):
        z = big_d / math.sqrt(1.0 / float(np.sum(w)))
        return Stratified(big_d, z, float(2.0 * _st.norm.sf(abs(z))), max(phi, 1.0), t)
    if t < 2:  # one stratum: no estimate of phi, no test
        return Stratified(big_d, 0.0, 1.0, 1.0, t, 0)
    phi = max(1.0, phi)
    z = big_d / math.sqrt(phi / float(np.sum(w)))
    return Stratified(big_d, z, float(2.0 * _st.t.sf(abs(z), t - 1)), phi, t, t - 1)
