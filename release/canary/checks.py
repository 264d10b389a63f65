"""The canary's checks per output type: which paired test, which effect size, which
threshold (defaults in `release.config.CanaryConfig`, calibrated by bench/canary_power.py).
Pure functions over aligned arrays; the statistics themselves are `release.canary.stats`.

Every run, with a baseline: `paired-items` (the share of the corpus paired with it).

label (K labels, the model's own; `labels` of both runs united by name)
  label-set          the candidate's label set must be the baseline's.
  share-shift        per label k, shift_k = candidate share - baseline share (paired);
                     marginal homogeneity p (exact McNemar at K = 2, Stuart-Maxwell above);
                     fail when p < share_alpha AND max_k |shift_k| >= share_min_shift.
                     The value is the shift of the second label at K = 2, else the largest
                     (a tie: the label that gained).
  flip-rate          share of items whose label changed > max_flip_rate -> fail.
  confident-flips    share of items flipped that the baseline scored >= confident_flip_conf
                     > max_confident_flip_rate -> fail; the flipped ids are listed.
  confidence-ks      two-sample KS D on the confidences >= D_crit(ks_alpha) -> fail.
  accuracy-drop      labelled items: b = #(baseline right, candidate wrong), c = the
                     reverse; (b - c) / n > accuracy_max_drop AND exact McNemar p <
                     accuracy_alpha -> fail.
multilabel (a probability per label, on at >= multilabel_threshold)
  label-set, flip-rate (share of item-label decisions changed; the items are listed),
  accuracy-drop (exact set);
  label-shift        per label the exact McNemar of its decisions, Holm-adjusted over the
                     labels; fail when a label has adjusted p < share_alpha AND |shift| >=
                     share_min_shift. The value is that label's shift (else the smallest p's).
score (effects in baseline standard deviations, sd)
  score-shift        median(c - b) / sd, Wilcoxon signed-rank p; fail when p < score_alpha
                     AND |effect| >= score_min_shift.
  score-ks           two-sample KS D >= D_crit(ks_alpha) -> fail.
  score-median-abs-diff   median |c - b| / sd > score_max_median_abs_diff -> fail.
vector
  vector-dim         both runs return vectors of one dimension.
  cosine-floor       the vector_cosine_percentile-th percentile of cos(c_i, b_i) <
                     vector_min_cosine -> fail.
  vector-shift       ||mean(c - b)|| / mean ||b||, sign-flip permutation p; fail when p <
                     vector_alpha AND effect >= vector_min_shift.
identical-outputs    when both runs used the same weights (same lock digest): the largest
                     |output difference| over all items > identical_tolerance -> fail.
absolute checks      (also on a first release): label: accuracy on labelled items >=
                     min_accuracy, share of items with confidence < low_confidence <=
                     max_low_confidence_rate; multilabel: exact-set accuracy >= min_accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from release.canary import stats
from release.checks import Check


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
    multilabel_threshold: float = 0.5
    score_alpha: float = 1e-3
    score_min_shift: float = 0.05
    score_max_median_abs_diff: float = 0.1
    vector_cosine_percentile: float = 5.0
    vector_min_cosine: float = 0.99
    vector_alpha: float = 0.01
    vector_min_shift: float = 0.02


# --- one run's outputs, aligned by item ----------------------------------------------------
@dataclass(frozen=True)
class Outputs:
    """One model run over a corpus, as arrays aligned by item (the paired order).

    kind "label": `label` (N,) int index into `labels`, `confidence` (N,), `raw` the
    logits or probabilities (N, K) or None; "multilabel": `raw` (N, K) probabilities,
    `on` (N, K) bool; "score": `raw` (N,); "vector": `raw` (N, D).
    `correct`: per item, the output equals `expected` (None where unlabelled).
    """

    kind: str
    ids: tuple[str, ...]
    labels: tuple[str, ...] = ()
    label: np.ndarray | None = None
    confidence: np.ndarray | None = None
    raw: np.ndarray | None = None
    on: np.ndarray | None = None
    correct: tuple[bool | None, ...] = ()

    @property
    def n(self) -> int:
        return len(self.ids)

    def take(self, idx: Sequence[int]) -> Outputs:
        ix = np.asarray(idx, dtype=np.int64)
        arrays: dict[str, Any] = {
            f.name: getattr(self, f.name)[ix]
            for f in fields(self)
            if isinstance(getattr(self, f.name), np.ndarray)
        }
        return replace(
            self,
            ids=tuple(self.ids[i] for i in idx),
            correct=tuple(self.correct[i] for i in idx) if self.correct else (),
            **arrays,
        )

    def relabel(self, labels: tuple[str, ...]) -> Outputs:
        """The same outputs over a superset `labels` (by name): indices and (N, K) columns
        moved to their label's position, absent labels' columns zero."""
        if labels == self.labels:
            return self
        pos = [labels.index(x) for x in self.labels]
        out: dict[str, Any] = {"labels": labels}
        if self.label is not None:
            out["label"] = np.asarray(pos, dtype=np.int64)[self.label]
        for name in ("raw", "on"):
            a = getattr(self, name)
            if a is not None and a.ndim == 2:
                b = np.zeros((a.shape[0], len(labels)), dtype=a.dtype)
                b[:, pos] = a
                out[name] = b
        return replace(self, **out)


def label_outputs(
    ids: Sequence[str],
    labels: Sequence[str],
    label: Sequence[str],
    confidence: Sequence[float],
    raw: np.ndarray | None = None,
    correct: Sequence[bool | None] | None = None,
) -> Outputs:
    """Outputs of a K-label model from label names (tests and the report build these)."""
    index = {x: k for k, x in enumerate(labels)}
    return Outputs(
        "label",
        tuple(ids),
        tuple(labels),
        label=np.asarray([index[x] for x in label], dtype=np.int64),
        confidence=np.asarray(confidence, dtype=np.float64),
        raw=raw,
        correct=tuple(correct) if correct is not None else (None,) * len(ids),
    )


# --- shared checks -------------------------------------------------------------------------
def check_paired_items(paired: int, n: int, t: Thresholds) -> Check:
    """A comparison on a few shared items proves nothing about the rest: the paired items
    must be at least `min_paired_fraction` of the candidate's corpus."""
    frac = paired / n if n else 0.0
    return Check(
        name="paired-items",
        ok=frac >= t.min_paired_fraction,
        statistic="paired / corpus items",
        value=frac,
        threshold=t.min_paired_fraction,
        detail=f"{paired} of {n} items paired with the baseline",
    )


def check_label_set(base: Outputs, cand: Outputs) -> Check:
    """A label added or dropped is a behaviour change, whatever the counts say."""
    missing = [x for x in base.labels if x not in cand.labels]
    added = [x for x in cand.labels if x not in base.labels]
    detail = "; ".join(
        p
        for p in (
            f"dropped {', '.join(missing)}" if missing else "",
            f"added {', '.join(added)}" if added else "",
        )
        if p
    )
    return Check(
        name="label-set",
        ok=not missing and not added,
        statistic="labels added or dropped by the candidate",
        value=float(len(missing) + len(added)),
        threshold=0.0,
        detail=detail or f"{len(cand.labels)} labels: {', '.join(cand.labels)}",
    )


def discordant(base: np.ndarray, cand: np.ndarray) -> tuple[int, int]:
    """(b, c) = (#(base False, cand True), #(base True, cand False))."""
    base = np.asarray(base, dtype=bool)
    cand = np.asarray(cand, dtype=bool)
    return int(np.sum(~base & cand)), int(np.sum(base & ~cand))


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
    """Paired accuracy drop on labelled items (None when nothing is labelled)."""
    bc, cc = paired_correct(base, cand)
    n = len(bc)
    if n == 0:
        return None
    # b: baseline right, candidate wrong; c: baseline wrong, candidate right
    b, c = discordant(~bc, ~cc)
    drop = (b - c) / n
    p = stats.mcnemar_exact(b, c)
    failed = drop > t.accuracy_max_drop and p < t.accuracy_alpha
    return Check(
        name="accuracy-drop",
        ok=not failed,
        statistic="accuracy drop on labelled items (baseline - candidate), exact McNemar",
        value=drop,
        threshold=t.accuracy_max_drop,
        p_value=p,
        p_threshold=t.accuracy_alpha,
        detail=f"accuracy {bc.mean():.3f} -> {cc.mean():.3f} on {n} labelled items",
    )


def check_identical(base: Outputs, cand: Outputs, t: Thresholds) -> Check:
    """Same weights: the largest absolute output difference (logits or probabilities,
    scores, vector components; confidences when a run has nothing else) must stay within
    the tolerance."""
    if base.raw is not None and cand.raw is not None and base.raw.shape == cand.raw.shape:
        a, b, what = base.raw, cand.raw, "output"
    elif base.confidence is not None and cand.confidence is not None:
        a, b, what = base.confidence, cand.confidence, "confidence"
    else:
        a = b = np.zeros(1)
        what = "output (shapes differ)"
    diff = float(np.max(np.abs(a - b))) if cand.n else 0.0
    if what == "output (shapes differ)":
        diff = float("inf")
    return Check(
        name="identical-outputs",
        ok=diff <= t.identical_tolerance,
        statistic=f"max |{what} difference| with the same weights",
        value=diff,
        threshold=t.identical_tolerance,
    )


# --- K labels ------------------------------------------------------------------------------
def label_table(base: Outputs, cand: Outputs) -> np.ndarray:
    """n[i, j] = #(baseline label i, candidate label j), over the shared `labels`."""
    k = len(cand.labels)
    assert base.label is not None and cand.label is not None
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (base.label, cand.label), 1)
    return table


def check_share_shift(base: Outputs, cand: Outputs, t: Thresholds) -> Check:
    """Marginal homogeneity of the paired labels plus a minimum per-label share shift."""
    table = label_table(base, cand)
    n = max(cand.n, 1)
    shifts = (table.sum(axis=0) - table.sum(axis=1)) / n
    k = len(cand.labels)
    # the largest |shift| (a tie: the label the candidate gained); K = 2: the second label
    top = 1 if k == 2 else max(range(k), key=lambda j: (round(abs(shifts[j]), 12), shifts[j]))
    test = stats.marginal_homogeneity(table)
    failed = test.p_value < t.share_alpha and float(np.max(np.abs(shifts))) >= t.share_min_shift
    if k == 2:
        a, b = cand.labels
        detail = f"{table[0, 1]} {a}->{b}, {table[1, 0]} {b}->{a} of {cand.n}"
    else:
        detail = ", ".join(f"{x} {s * 100:+.2f}%" for x, s in zip(cand.labels, shifts, strict=True))
    return Check(
        name="share-shift",
        ok=not failed,
        statistic=f"{cand.labels[top]} share shift (candidate - baseline), {test.method}",
        value=float(shifts[top]),
        threshold=t.share_min_shift,
        p_value=test.p_value,
        p_threshold=t.share_alpha,
        detail=detail,
    )


def check_flips(base: Outputs, cand: Outputs, t: Thresholds) -> list[Check]:
    """The flip rate, and flips of items the baseline was confident about."""
    changed = np.asarray(base.label != cand.label, dtype=bool)
    flips = int(np.sum(changed))
    rate = flips / cand.n
    assert base.confidence is not None
    confident = changed & (base.confidence >= t.confident_flip_conf)
    ids = tuple(i for i, f in zip(cand.ids, confident, strict=True) if f)
    crate = len(ids) / cand.n
    return [
        Check(
            name="flip-rate",
            ok=rate <= t.max_flip_rate,
            statistic="share of items whose label changed",
            value=rate,
            threshold=t.max_flip_rate,
            detail=f"{flips} of {cand.n} labels changed",
            items=tuple(i for i, f in zip(cand.ids, changed, strict=True) if f),
        ),
        Check(
            name="confident-flips",
            ok=crate <= t.max_confident_flip_rate,
            statistic=f"share of items flipped that the baseline scored >= {t.confident_flip_conf:g}",
            value=crate,
            threshold=t.max_confident_flip_rate,
            detail=f"{len(ids)} confident flips",
            items=ids,
        ),
    ]


def check_confidence_ks(base: Outputs, cand: Outputs, t: Thresholds) -> Check:
    """Two-sample KS on the confidence distributions."""
    assert base.confidence is not None and cand.confidence is not None
    d, p = stats.ks_two_sample(base.confidence, cand.confidence)
    crit = stats.ks_critical(base.n, cand.n, t.ks_alpha)
    return Check(
        name="confidence-ks",
        ok=d < crit,
        statistic="two-sample Kolmogorov-Smirnov D on confidences",
        value=d,
        threshold=crit,
        p_value=p,
        p_threshold=t.ks_alpha,
        detail=f"median confidence {float(np.median(base.confidence)):.3f} -> "
        f"{float(np.median(cand.confidence)):.3f}",
    )


def check_absolute(cand: Outputs, t: Thresholds) -> list[Check]:
    """Checks that need no baseline: accuracy on labelled items (labels), low-confidence
    rate (one label per item)."""
    out: list[Check] = []
    labelled = [c for c in cand.correct if c is not None]
    if labelled:
        acc = sum(labelled) / len(labelled)
        out.append(
            Check(
                name="accuracy",
                ok=acc >= t.min_accuracy,
                statistic="accuracy on labelled items (minimum)",
                value=acc,
                threshold=t.min_accuracy,
                detail=f"{sum(labelled)} of {len(labelled)} correct",
            )
        )
    if cand.kind == "label" and cand.confidence is not None:
        low = float(np.mean(cand.confidence < t.low_confidence)) if cand.n else 0.0
        out.append(
            Check(
                name="low-confidence",
                ok=low <= t.max_low_confidence_rate,
                statistic=f"share of items with confidence < {t.low_confidence:g} (maximum)",
                value=low,
                threshold=t.max_low_confidence_rate,
            )
        )
    return out


# --- multi-label ---------------------------------------------------------------------------
def check_multilabel_shift(base: Outputs, cand: Outputs, t: Thresholds) -> Check:
    """Per label the exact McNemar of its decisions, Holm-adjusted over the labels."""
    assert base.on is not None and cand.on is not None
    k = len(cand.labels)
    counts = [discordant(base.on[:, j], cand.on[:, j]) for j in range(k)]
    shifts = [(b - c) / max(cand.n, 1) for b, c in counts]
    adj = stats.holm([stats.mcnemar_exact(b, c) for b, c in counts])
    bad = [j for j in range(k) if adj[j] < t.share_alpha and abs(shifts[j]) >= t.share_min_shift]
    top = bad[0] if bad else min(range(k), key=lambda j: (adj[j], -abs(shifts[j])))
    return Check(
        name="label-shift",
        ok=not bad,
        statistic=f"{cand.labels[top]} on-share shift (candidate - baseline), exact McNemar per "
        f"label, Holm over {k}",
        value=shifts[top],
        threshold=t.share_min_shift,
        p_value=adj[top],
        p_threshold=t.share_alpha,
        detail=", ".join(
            f"{x} {s * 100:+.2f}% (p {p:.2g})"
            for x, s, p in zip(cand.labels, shifts, adj, strict=True)
        ),
    )


def check_set_flips(base: Outputs, cand: Outputs, t: Thresholds) -> Check:
    assert base.on is not None and cand.on is not None
    diff = base.on != cand.on
    changed = np.any(diff, axis=1)
    rate = float(np.mean(diff)) if diff.size else 0.0
    return Check(
        name="flip-rate",
        ok=rate <= t.max_flip_rate,
        statistic="share of (item, label) decisions that changed",
        value=rate,
        threshold=t.max_flip_rate,
        detail=f"{int(diff.sum())} of {diff.size} decisions changed, on {int(changed.sum())} "
        f"of {cand.n} items",
        items=tuple(i for i, f in zip(cand.ids, changed, strict=True) if f),
    )


# --- scores --------------------------------------------------------------------------------
def _sd(x: np.ndarray) -> float:
    sd = float(np.std(x, ddof=1)) if len(x) > 1 else 0.0
    return sd if sd > 0 else 1.0


def check_scores(base: Outputs, cand: Outputs, t: Thresholds) -> list[Check]:
    assert base.raw is not None and cand.raw is not None
    b, c = base.raw, cand.raw
    sd = _sd(b)
    d = c - b
    effect = float(np.median(d)) / sd
    p = stats.wilcoxon_paired(b, c)
    ks_d, ks_p = stats.ks_two_sample(b, c)
    crit = stats.ks_critical(base.n, cand.n, t.ks_alpha)
    mad = float(np.median(np.abs(d))) / sd
    return [
        Check(
            name="score-shift",
            ok=not (p < t.score_alpha and abs(effect) >= t.score_min_shift),
            statistic="median paired difference (candidate - baseline) / baseline sd, "
            "Wilcoxon signed-rank",
            value=effect,
            threshold=t.score_min_shift,
            p_value=p,
            p_threshold=t.score_alpha,
            detail=f"median score {float(np.median(b)):.4g} -> {float(np.median(c)):.4g} "
            f"(baseline sd {sd:.4g})",
        ),
        Check(
            name="score-ks",
            ok=ks_d < crit,
            statistic="two-sample Kolmogorov-Smirnov D on scores",
            value=ks_d,
            threshold=crit,
            p_value=ks_p,
            p_threshold=t.ks_alpha,
        ),
        Check(
            name="score-median-abs-diff",
            ok=mad <= t.score_max_median_abs_diff,
            statistic="median |candidate - baseline| / baseline sd (maximum)",
            value=mad,
            threshold=t.score_max_median_abs_diff,
        ),
    ]


# --- vectors -------------------------------------------------------------------------------
def check_vectors(base: Outputs, cand: Outputs, t: Thresholds) -> list[Check]:
    assert base.raw is not None and cand.raw is not None
    if base.raw.shape[1] != cand.raw.shape[1]:
        return [
            Check(
                name="vector-dim",
                ok=False,
                statistic="vector dimension (candidate; threshold: the baseline's)",
                value=float(cand.raw.shape[1]),
                threshold=float(base.raw.shape[1]),
            )
        ]
    cos = stats.cosine(base.raw, cand.raw)
    low = float(np.percentile(cos, t.vector_cosine_percentile))
    shift, p = stats.mean_shift_test(base.raw, cand.raw)
    scale = float(np.mean(np.linalg.norm(base.raw, axis=1))) or 1.0
    effect = shift / scale
    worst = np.argsort(cos)[: min(20, int(np.sum(cos < t.vector_min_cosine)))]
    return [
        Check(
            name="cosine-floor",
            ok=low >= t.vector_min_cosine,
            statistic=f"p{t.vector_cosine_percentile:g} of the per-item cosine similarity "
            "(minimum)",
            value=low,
            threshold=t.vector_min_cosine,
            detail=f"median cosine {float(np.median(cos)):.4f}, minimum {float(cos.min()):.4f}",
            items=tuple(cand.ids[i] for i in worst),
        ),
        Check(
            name="vector-shift",
            ok=not (p < t.vector_alpha and effect >= t.vector_min_shift),
            statistic="||mean paired difference|| / mean baseline norm, sign-flip permutation",
            value=effect,
            threshold=t.vector_min_shift,
            p_value=p,
            p_threshold=t.vector_alpha,
        ),
    ]


# --- all of them ---------------------------------------------------------------------------
def align(base: Outputs, cand: Outputs) -> tuple[Outputs, Outputs]:
    """Both runs restricted to their common ids, in the candidate's order, over one label
    set (the baseline's labels, then any the candidate added)."""
    labels = base.labels + tuple(x for x in cand.labels if x not in base.labels)
    base, cand = base.relabel(labels), cand.relabel(labels)
    if base.ids == cand.ids:
        return base, cand
    pos = {i: k for k, i in enumerate(base.ids)}
    keep = [k for k, i in enumerate(cand.ids) if i in pos]
    return base.take([pos[cand.ids[k]] for k in keep]), cand.take(keep)


def run_checks(
    cand: Outputs, base: Outputs | None, t: Thresholds, *, same_weights: bool = False
) -> list[Check]:
    """Every check that applies: the absolute checks always; with a baseline, the paired
    checks of the output type on the paired items (and identical-outputs when both used
    the same weights)."""
    checks = check_absolute(cand, t)
    if base is None:
        return checks
    if base.kind != cand.kind:
        raise ValueError(f"the baseline's outputs are {base.kind}, the candidate's {cand.kind}")
    b, c = align(base, cand)
    if c.n == 0:
        raise ValueError("the baseline and the candidate share no item ids")
    checks.append(check_paired_items(c.n, cand.n, t))
    if c.kind in ("label", "multilabel"):
        changed = set(base.labels) != set(cand.labels)
        if changed:
            checks.append(check_label_set(base, cand))
    if c.kind == "label":
        checks.append(check_share_shift(b, c, t))
        checks.extend(check_flips(b, c, t))
        checks.append(check_confidence_ks(b, c, t))
    elif c.kind == "multilabel":
        checks.append(check_multilabel_shift(b, c, t))
        checks.append(check_set_flips(b, c, t))
    elif c.kind == "score":
        checks.extend(check_scores(b, c, t))
    else:
        checks.extend(check_vectors(b, c, t))
    acc = check_accuracy_drop(b, c, t) if c.kind in ("label", "multilabel") else None
    if acc is not None:
        checks.append(acc)
    if same_weights:
        checks.append(check_identical(b, c, t))
    return checks
