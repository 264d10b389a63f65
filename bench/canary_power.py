#!/usr/bin/env python3
"""Calibrate the canary checks by simulation: false-alarm rate and power at N = 1000.

Each replication draws a fresh corpus of N items with a true label and a baseline logit
margin m ~ (2y - 1) * 3 + N(0, 2) (about 93% accuracy, 5% of items below 0.6
confidence, like the example model on model/canary.jsonl), derives the candidate's
margins for one scenario, and runs the real paired checks (release.canary.stats) with
the default thresholds. One table, one row per scenario: the share of replications in
which each check failed, and whether the issue's target holds (false alarms <= 0.1% for
the same model and benign noise; power >= 99% for a 5-point shift and for a confidence
collapse at unchanged share).

    .venv/bin/python bench/canary_power.py [--n 1000] [--reps 3000] [--seed 6]

Then every output type (`--type-reps`, default 300 null pairs and 300 changed pairs per
type, N = 1000): a 3-label classifier, a 4-label multi-label classifier, a scorer and a
64-dimension embedding model (timed at 384), each drawn fresh per replication, the candidate the
baseline plus symmetric noise (a rebuilt model, no behaviour change: the null) or plus the
documented minimum detectable effect (MDE). Per type: the false-alarm rate of the type's
checks at the default thresholds against alpha + 2 SE (alpha: the type's test alpha), the
raw paired test's rejection rate at 0.05 against 0.05 + 2 SE (the test holds its level by
itself, not only through the effect floors), the power at the MDE (target >= 0.9), and the
time to compare 1,000 items (`release.canary.report.build` with a baseline report, model
inference excluded; target <= 5 s).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from release.canary import checks, stats

Scenario = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


def baseline(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    y = rng.random(n) < 0.5
    m = np.where(y, 3.0, -3.0) + rng.normal(0.0, 2.0, n)
    return y, m


def shift_points(points: float) -> Scenario:
    """A bias towards POSITIVE just large enough to move `points` of the share."""

    def f(y: np.ndarray, m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        k = round(points / 100 * len(m))
        neg = np.sort(-m[m < 0])
        return m + (neg[k - 1] + 1e-9 if k else 0.0)

    return f


def scale(s: float) -> Scenario:
    return lambda y, m, rng: m * s


def noise(sd: float) -> Scenario:
    return lambda y, m, rng: m + rng.normal(0.0, sd, len(m))


def flip_words(frac: float) -> Scenario:
    """A few lexicon words reversed: a random `frac` of items flip, confidently."""

    def f(y: np.ndarray, m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = m.copy()
        idx = rng.choice(len(m), size=round(frac * len(m)), replace=False)
        out[idx] = -out[idx]
        return out

    return f


def accuracy_drop(points: float) -> Scenario:
    """`points` of the items the baseline gets right turned wrong, at random, half in
    each direction (share about unchanged)."""

    def f(y: np.ndarray, m: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = m.copy()
        right = np.flatnonzero((m > 0) == y)
        idx = rng.choice(right, size=round(points / 100 * len(m)), replace=False)
        out[idx] = -0.5 * out[idx]
        return out

    return f


# (name, scenario, kind, target): kind "A/A" -> false-alarm target; "power" -> power target
SCENARIOS: list[tuple[str, Scenario, str, float | None]] = [
    ("same model (A/A)", lambda y, m, rng: m.copy(), "A/A", 0.001),
    ("benign noise sd 0.05 logit", noise(0.05), "A/A", 0.001),
    ("benign noise sd 0.15 logit", noise(0.15), "A/A", 0.001),
    ("noise sd 0.5 (not benign)", noise(0.5), "A/A", None),
    ("positive share +5 points", shift_points(5), "power", 0.99),
    ("positive share +2 points", shift_points(2), "power", None),
    ("confidence collapse x0.5", scale(0.5), "power", 0.99),
    ("confidence collapse x0.8", scale(0.8), "power", None),
    ("1% of items flipped (words)", flip_words(0.01), "power", None),
    ("accuracy -3 points", accuracy_drop(3), "power", None),
]

COLS = ["share-shift", "flip-rate", "confident-flips", "confidence-ks", "accuracy-drop"]


def outputs(y: np.ndarray, m: np.ndarray) -> checks.Outputs:
    conf = 1.0 / (1.0 + np.exp(-np.abs(m)))
    pos = m > 0
    return checks.Outputs(
        "label",
        tuple(f"i{i}" for i in range(len(m))),
        ("NEG", "POS"),
        label=pos.astype(np.int64),
        confidence=conf,
        raw=np.stack([-m / 2, m / 2], axis=1),
        correct=tuple(bool(v) for v in (pos == y)),
    )


def upper95(k: int, n: int) -> float:
    """One-sided 95% Clopper-Pearson upper bound of a rate seen k times in n."""
    from scipy.stats import beta

    return 1.0 if k == n else float(beta.ppf(0.95, k + 1, n - k))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--type-reps", type=int, default=300)
    args = ap.parse_args()
    t = checks.Thresholds()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    head = f"{'scenario':<30} {'kind':<5} {'any':>7} " + " ".join(f"{c:>15}" for c in COLS)
    print(f"N = {args.n}, {args.reps} replications per scenario, default thresholds")
    print(head + f" {'ub95':>7} {'target':>9} {'met':>4}")
    print("-" * len(head + " " * 20))
    for name, scen, kind, target in SCENARIOS:
        fails = dict.fromkeys([*COLS, "any"], 0)
        for _ in range(args.reps):
            y, m = baseline(args.n, rng)
            cand = scen(y, m, rng)
            done = checks.run_checks(outputs(y, cand), outputs(y, m), t)
            paired = [c for c in done if c.name in COLS]
            for c in paired:
                fails[c.name] += not c.ok
            fails["any"] += any(not c.ok for c in paired)
        rate = fails["any"] / args.reps
        ub = f"{upper95(fails['any'], args.reps):.2%}" if kind == "A/A" else "-"
        if target is None:
            tgt, met = "-", ""
        elif kind == "A/A":
            tgt, met = f"<= {target:.1%}", "yes" if rate <= target else "NO"
        else:
            tgt, met = f">= {target:.0%}", "yes" if rate >= target else "NO"
        cells = " ".join(f"{fails[c] / args.reps:>15.2%}" for c in COLS)
        print(f"{name:<30} {kind:<5} {rate:>7.2%} {cells} {ub:>7} {tgt:>9} {met:>4}")
    dt = time.perf_counter() - t0
    print(
        f"\nub95: one-sided 95% upper bound of the false-alarm rate; KS D_crit at N={args.n}: {stats.ks_critical(args.n, args.n, t.ks_alpha):.4f};"
        f" {dt:.1f} s"
    )
    types_table(args.n, args.type_reps, args.seed)


# --- every output type ------------------------------------------------------------------
def _ids(n: int) -> tuple[str, ...]:
    return tuple(f"i{i}" for i in range(n))


def _label_pair(n: int, rng: np.random.Generator, shift: float) -> tuple[Any, Any]:
    """3 labels; logits class mean 2.5 + N(0, 1.5); candidate logits + N(0, 0.1) and, for
    a change, `shift` of the items moved to the last label."""
    y = rng.integers(0, 3, n)
    z = rng.normal(0, 1.5, (n, 3))
    z[np.arange(n), y] += 2.5
    zc = z + rng.normal(0, 0.1, z.shape)
    if shift:
        idx = rng.choice(np.flatnonzero(zc.argmax(1) != 2), round(shift * n), replace=False)
        zc[idx, 2] = zc[idx].max(1) + 1.0

    def out(zz: np.ndarray) -> Any:
        p = np.exp(zz - zz.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return checks.Outputs(
            "label",
            _ids(n),
            ("a", "b", "c"),
            label=p.argmax(1),
            confidence=p.max(1),
            raw=p,
            correct=(None,) * n,
        )

    return out(z), out(zc)


def _multi_pair(n: int, rng: np.random.Generator, shift: float) -> tuple[Any, Any]:
    """4 labels, logits N(-1, 2); candidate + N(0, 0.1); a change: `shift` of the items
    get label 3 on."""
    z = rng.normal(-1.0, 2.0, (n, 4))
    zc = z + rng.normal(0, 0.1, z.shape)
    if shift:
        idx = rng.choice(np.flatnonzero(zc[:, 3] < 0), round(shift * n), replace=False)
        zc[idx, 3] = 1.0

    def out(zz: np.ndarray) -> Any:
        p = 1 / (1 + np.exp(-zz))
        return checks.Outputs(
            "multilabel", _ids(n), ("a", "b", "c", "d"), raw=p, on=p >= 0.5, correct=(None,) * n
        )

    return out(z), out(zc)


def _score_pair(n: int, rng: np.random.Generator, shift: float) -> tuple[Any, Any]:
    """Scores N(0, 1) + a skew; candidate + N(0, 0.05); a change: + shift sd."""
    b = rng.normal(0, 1, n) + 0.3 * rng.exponential(1, n)
    c = b + rng.normal(0, 0.05, n) + shift * float(np.std(b, ddof=1))
    return checks.Outputs("score", _ids(n), raw=b), checks.Outputs("score", _ids(n), raw=c)


def _vector_pair(n: int, rng: np.random.Generator, shift: float, dim: int = 64) -> tuple[Any, Any]:
    """Embeddings N(0, 1)^dim; candidate + N(0, 0.01) per component; a change: + a fixed
    direction of `shift` x the mean norm."""
    b = rng.normal(0, 1, (n, dim))
    c = b + rng.normal(0, 0.01, b.shape)
    if shift:
        u = rng.normal(0, 1, dim)
        c += shift * float(np.mean(np.linalg.norm(b, axis=1))) * u / np.linalg.norm(u)
    return checks.Outputs("vector", _ids(n), raw=b), checks.Outputs("vector", _ids(n), raw=c)


def _raw_p(kind: str, b: Any, c: Any) -> float:
    """The type's paired test alone (no effect floor)."""
    if kind == "label":
        return stats.marginal_homogeneity(checks.label_table(b, c)).p_value
    if kind == "multilabel":
        k = b.on.shape[1]
        ps = [stats.mcnemar_exact(*checks.discordant(b.on[:, j], c.on[:, j])) for j in range(k)]
        return min(stats.holm(ps))
    if kind == "score":
        return stats.wilcoxon_paired(b.raw, c.raw)
    return stats.mean_shift_test(b.raw, c.raw)[1]


#: (type, pair maker, MDE, the type's test alpha at the defaults)
TYPES: list[tuple[str, Callable[..., tuple[Any, Any]], float, str, float]] = [
    ("label", _label_pair, 0.03, "3 points of one label's share", 1e-3),
    ("multilabel", _multi_pair, 0.03, "3 points of one label's on-share", 1e-3),
    ("score", _score_pair, 0.10, "median shift 0.1 baseline sd", 1e-3),
    ("vector", _vector_pair, 0.03, "mean shift 3% of the mean norm", 1e-2),
]


def _items(o: Any) -> list[Any]:
    """Report items of Outputs (for timing a whole comparison)."""
    from release.canary import report as rpt

    if o.kind == "label":
        return [
            rpt.Item(id=i, label=o.labels[int(k)], confidence=float(c), probs=[float(x) for x in p])
            for i, k, c, p in zip(o.ids, o.label, o.confidence, o.raw, strict=True)
        ]
    if o.kind == "multilabel":
        return [
            rpt.Item(id=i, probs=[float(x) for x in p]) for i, p in zip(o.ids, o.raw, strict=True)
        ]
    if o.kind == "score":
        return [rpt.Item(id=i, score=float(s)) for i, s in zip(o.ids, o.raw, strict=True)]
    return [rpt.Item(id=i, vector=[float(x) for x in v]) for i, v in zip(o.ids, o.raw, strict=True)]


def _time_compare(
    kind: str, maker: Callable[..., tuple[Any, Any]], rng: np.random.Generator
) -> float:
    from release.canary import report as rpt

    # the timing at a sentence-transformers dimension (384); the replications at 64
    b, c = maker(1000, rng, 0.0, dim=384) if kind == "vector" else maker(1000, rng, 0.0)
    labels = list(b.labels) or None
    output = rpt.Output(type=kind, labels=labels, threshold=0.5 if kind == "multilabel" else None)
    meta = rpt.Corpus(path="bench", sha256="0" * 64, items=1000)
    t = checks.Thresholds()
    base = rpt.build(subject=rpt.Subject(), corpus=meta, items=_items(b), t=t, output=output)
    items = _items(c)
    t0 = time.perf_counter()
    rpt.build(subject=rpt.Subject(), corpus=meta, items=items, t=t, output=output, baseline=base)
    return time.perf_counter() - t0


def types_table(n: int, reps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = checks.Thresholds()
    print(f"\nEvery output type: N = {n}, {reps} null pairs and {reps} pairs at the MDE each")
    head = (
        f"{'type':<11} {'checks FA':>9} {'<= a+2SE':>9} {'test@0.05':>9} {'<= +2SE':>8} "
        f"{'MDE':<36} {'power':>6} {'compare 1000':>12} {'met':>4}"
    )
    print(head)
    print("-" * len(head))
    for kind, maker, mde, what, alpha in TYPES:
        fa = raw = power = 0
        for _ in range(reps):
            b, c = maker(n, rng, 0.0)
            fa += any(not x.ok for x in checks.run_checks(c, b, t) if x.name != "low-confidence")
            raw += _raw_p(kind, b, c) < 0.05
            b, c = maker(n, rng, mde)
            power += any(not x.ok for x in checks.run_checks(c, b, t) if x.name != "low-confidence")
        bound = alpha + 2 * math.sqrt(alpha * (1 - alpha) / reps)
        bound05 = 0.05 + 2 * math.sqrt(0.05 * 0.95 / reps)
        secs = _time_compare(kind, maker, rng)
        ok = fa / reps <= bound and raw / reps <= bound05 and power / reps >= 0.9 and secs <= 5
        print(
            f"{kind:<11} {fa / reps:>9.2%} {bound:>9.2%} {raw / reps:>9.2%} {bound05:>8.2%} "
            f"{what:<36} {power / reps:>6.1%} {secs:>11.2f}s {'yes' if ok else 'NO':>4}"
        )


if __name__ == "__main__":
    main()
