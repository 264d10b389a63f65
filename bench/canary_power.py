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
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from release.canary import stats

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


def outputs(y: np.ndarray, m: np.ndarray) -> stats.Outputs:
    conf = 1.0 / (1.0 + np.exp(-np.abs(m)))
    pos = m > 0
    return stats.Outputs(
        ids=tuple(f"i{i}" for i in range(len(m))),
        positive=pos,
        confidence=conf,
        logits=np.stack([-m / 2, m / 2], axis=1),
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
    args = ap.parse_args()
    t = stats.Thresholds()
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
            checks = stats.run_checks(outputs(y, cand), outputs(y, m), t)
            paired = [c for c in checks if c.name in COLS]
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


if __name__ == "__main__":
    main()
