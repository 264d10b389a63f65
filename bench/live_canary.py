#!/usr/bin/env python3
"""The live canary's L1 under simulated production traffic: false alarms per look and power.

One bake = `periods` whole periods after the shift, the traffic of
tests/fixtures/traffic.py (the model the live canary's tests assert on): a label mix and
volume that follow a daily cycle, per-period bursts, invocations of `batch` alike
predictions, each invocation on the new version with probability 0.1 (the alias's
weight), so both versions see the same traffic. Per scenario, the share of bakes in which each test
rejects at alpha / looks = 0.01 / 3:

- L1: `release.canary.stats.stratified_difference` as the live canary runs it (batched
  when an invocation makes more than one prediction);
- pooled: a two-proportion z-test over the same whole periods;
- old L1: pooled, the stable version counted from the start of the shift's period.

Null rows (no change) should be <= alpha / looks + 2 SE; power rows move every new-version
prediction's share by `shift` (5 points, the documented minimum detectable effect; target
0.9 once the bake holds the default 3,000 canary predictions: about 9 periods here). The score check (per-period medians, Student's t over the
periods) is simulated the same way.

    .venv/bin/python bench/live_canary.py [--reps 2000] [--seed 3]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from release.canary.live import Counts, evaluate_look
from release.canary.stats import stratified_difference, two_proportion
from release.config import TrafficConfig
from tests.fixtures import traffic

ALPHA = 0.01 / 3


def rates(rng: np.random.Generator, reps: int, **kw: float) -> tuple[float, float, float]:
    ours = pooled = old = 0
    batched = kw["batch"] > 1
    for _ in range(reps):
        x1, n1, x2, n2 = traffic.day(rng, **kw)  # type: ignore[arg-type]
        ours += (
            stratified_difference(x1[1:], n1[1:], x2[1:], n2[1:], batched=batched).p_value < ALPHA
        )
        pooled += two_proportion(x1[1:].sum(), n1[1:].sum(), x2[1:].sum(), n2[1:].sum())[1] < ALPHA
        old += two_proportion(x1.sum(), n1.sum(), x2.sum(), n2.sum())[1] < ALPHA
    return ours / reps, pooled / reps, old / reps


def score_rate(rng: np.random.Generator, reps: int, periods: int, shift: float) -> float:
    t = TrafficConfig(score_metric="S", min_samples=0, looks=3, alpha=0.01)
    fails = 0
    for _ in range(reps):
        new, old = traffic.score_periods(rng, periods, shift)
        n = Counts(score=tuple(new), scored=tuple([300.0] * periods), invocations=300.0 * periods)
        o = Counts(score=tuple(old), scored=tuple([2700.0] * periods), invocations=2700.0 * periods)
        fails += evaluate_look({"fn": n}, {"fn": o}, t)[0].verdict == "fail"
    return fails / reps


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    se = 2 * math.sqrt(ALPHA * (1 - ALPHA) / a.reps)
    print(
        f"Live canary L1 per look at alpha/looks = {ALPHA:.4f}; {a.reps} bakes per row; null bound {ALPHA + se:.4f}"
    )
    head = f"{'scenario':<52} {'periods':>7} {'L1':>7} {'pooled':>7} {'old L1':>7}  met"
    print(head)
    print("-" * len(head))
    started = time.perf_counter()
    rows = [
        ("null: drift, 1 per invocation", dict(batch=1, kappa=None, burst=0.0, shift=0.0), 12),
        (
            "null: drift + bursts (sd 0.1), 1 per invocation",
            dict(batch=1, kappa=None, burst=0.1, shift=0.0),
            12,
        ),
        (
            "null: drift, batches of 20 alike (kappa 20)",
            dict(batch=20, kappa=20.0, burst=0.0, shift=0.0),
            5,
        ),
        (
            "null: drift, batches of 20 alike (kappa 20)",
            dict(batch=20, kappa=20.0, burst=0.0, shift=0.0),
            12,
        ),
        ("power: 5 points, 1 per invocation", dict(batch=1, kappa=None, burst=0.0, shift=0.05), 10),
        (
            "power: 5 points, batches of 20 alike",
            dict(batch=20, kappa=20.0, burst=0.0, shift=0.05),
            12,
        ),
        (
            "power: 5 points, batches of 20 alike",
            dict(batch=20, kappa=20.0, burst=0.0, shift=0.05),
            30,
        ),
    ]
    for name, kw, periods in rows:
        ours, pooled, old = rates(rng, a.reps, periods=periods, **kw)  # type: ignore[arg-type]
        met = ours <= ALPHA + se if name.startswith("null") else ours >= 0.9
        print(
            f"{name:<52} {periods:>7} {ours:>7.2%} {pooled:>7.2%} {old:>7.2%}  {'yes' if met else 'no'}"
        )
    for periods, shift in ((5, 0.0), (12, 0.0), (5, 0.05), (12, 0.05)):
        r = score_rate(rng, a.reps, periods, shift)
        kind = "null" if shift == 0 else "power"
        met = r <= ALPHA + se if kind == "null" else r >= 0.9
        name = f"{kind}: score p50{'' if shift == 0 else ' shift 0.05 (1/4 sd)'}, daily drift"
        print(f"{name:<52} {periods:>7} {r:>7.2%} {'':>7} {'':>7}  {'yes' if met else 'no'}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
