"""The live canary: new vs stable version on the aliases, from CloudWatch (moto server).

moto never evaluates alarms from data and serves no metric-math, so the tests put the
metric data the handlers (EMF) and Lambda would publish with `put_metric_data` and set
alarm states with `set_alarm_state`. Time is a fake clock: `sleep` advances it, and the
first sleep is when the "traffic" arrives (its metrics are put then).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from release.canary.live import Counts, evaluate_look
from release.canary.stats import two_proportion
from release.config import TrafficConfig
from release.deploy.lambda_ import LambdaTarget
from release.digest import parse_reference
from release.errors import CanaryFailed
from release.ledger import open_ledger
from release.promote import promote
from tests.deploy.conftest import (
    FUNCTIONS,
    aliases,
    boto,
    digest_of,
    file_provider,
    promotion_project,
    set_alarm,
)

NEW = digest_of("b")
TRAFFIC = TrafficConfig(min_samples=3000, looks=3, alpha=0.01)


# --- the statistics (pure) ---------------------------------------------------------------
def _share(n: int, pos: float) -> Counts:
    return Counts(positive=round(n * pos), negative=n - round(n * pos))


def _verdicts(
    new: dict[str, Counts], stable: dict[str, Counts], t: TrafficConfig = TRAFFIC
) -> dict[str, str]:
    return {c.name: c.verdict for c in evaluate_look(new, stable, t)}


def test_same_share_passes_and_a_five_point_shift_fails() -> None:
    old = {"fn": _share(27000, 0.52)}
    assert _verdicts({"fn": _share(3000, 0.52)}, old)["L1 positive share"] == "pass"
    assert _verdicts({"fn": _share(3000, 0.47)}, old)["L1 positive share"] == "fail"


def test_too_few_canary_predictions_is_inconclusive_not_a_pass() -> None:
    c = evaluate_look({"fn": _share(2999, 0.30)}, {"fn": _share(27000, 0.52)}, TRAFFIC)[0]
    assert (c.verdict, c.value, c.threshold) == ("inconclusive", 2999, 3000)
    assert c.detail == "2999 canary predictions (need 3000), 27000 stable"


def test_no_per_version_metrics_at_all_says_so() -> None:
    [c] = evaluate_look({"fn": Counts()}, {"fn": Counts()}, TRAFFIC)
    assert c.verdict == "inconclusive"
    assert c.detail == (
        "no SentimentPositive/SentimentNegative metrics with FunctionName and ExecutedVersion "
        "dimensions in Release/Handlers for either version (do the handlers publish them per version?)"
    )


def test_default_min_samples_has_the_power_the_issue_asks_for() -> None:
    """3,000 canary predictions (10% weight: 27,000 stable) detect a 5-point shift with
    ~99% power at alpha 0.01 split over 3 looks (simulated at the final look)."""
    rng = np.random.default_rng(11)
    runs = 4000
    new = rng.binomial(3000, 0.47, size=runs)
    old = rng.binomial(27000, 0.52, size=runs)
    hits = sum(
        two_proportion(a, 3000, b, 27000)[1] < TRAFFIC.alpha / TRAFFIC.looks
        for a, b in zip(new, old, strict=True)
    )
    assert hits / runs >= 0.98


def test_error_rates_and_p99_are_compared_per_function() -> None:
    old = {"a": Counts(invocations=27000, errors=27, p99_ms=100.0), "b": Counts(invocations=2700)}
    new = {
        "a": Counts(invocations=3000, errors=90, p99_ms=130.0),
        "b": Counts(invocations=300, errors=1),
    }
    v = _verdicts(new, old, TrafficConfig(min_samples=0))
    assert v == {
        "L1 positive share": "pass",
        "L3 lambda errors a": "fail",
        "L4 p99 duration a": "fail",
        "L3 lambda errors b": "pass",  # 1 error in 300 is not > 1 point more, significantly
    }
    ok = {"a": Counts(invocations=3000, errors=3, p99_ms=110.0)}
    assert set(_verdicts(ok, old, TrafficConfig(min_samples=0)).values()) == {"pass"}


def test_alpha_split_across_looks_keeps_false_alarms_below_alpha() -> None:
    """A/A: the same positive share on both versions, looked at `looks` times as the
    counts grow: the canary must fail in at most alpha of the runs."""
    rng = np.random.default_rng(7)
    runs, looks, per_look = 4000, 3, 1000
    t = TrafficConfig(min_samples=1000, looks=looks, alpha=0.01)
    new = rng.binomial(per_look, 0.52, size=(runs, looks)).cumsum(axis=1)
    old = rng.binomial(per_look * 9, 0.52, size=(runs, looks)).cumsum(axis=1)
    alarms = 0
    for r in range(runs):
        for k in range(looks):
            n1, n2 = per_look * (k + 1), per_look * 9 * (k + 1)
            _, p, _ = two_proportion(new[r, k], n1, old[r, k], n2)
            if p < t.alpha / t.looks:
                alarms += 1
                break
    assert alarms / runs <= 0.01


# --- against moto: the whole promotion ------------------------------------------------
class FakeTime:
    def __init__(self, on_first_sleep: Callable[[], None]) -> None:
        self.t = 1000.0
        self.slept = 0
        self._first = on_first_sleep

    def clock(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        if self.slept == 0:
            self._first()
        self.slept += 1
        self.t += max(s, 0.001)


def emit(
    fn: str,
    version: str,
    *,
    positive: int = 0,
    negative: int = 0,
    invocations: int = 0,
    errors: int = 0,
) -> None:
    """What the analysis handler (EMF, with the FunctionName and ExecutedVersion
    dimensions) and Lambda itself would publish for this much traffic."""
    cw = boto("cloudwatch")
    ver = [{"Name": "FunctionName", "Value": fn}, {"Name": "ExecutedVersion", "Value": version}]
    handler = [*ver, {"Name": "service", "Value": "release-handlers"}]
    data = [("SentimentPositive", positive), ("SentimentNegative", negative), ("AnalysisErrors", 0)]
    cw.put_metric_data(
        Namespace="Release/Handlers",
        MetricData=[
            {"MetricName": n, "Dimensions": handler, "Value": float(v), "Unit": "Count"}
            for n, v in data
        ],
    )
    lam = [*ver, {"Name": "Resource", "Value": f"{fn}:live"}]
    cw.put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {"MetricName": "Invocations", "Dimensions": lam, "Value": float(invocations)},
            {"MetricName": "Errors", "Dimensions": lam, "Value": float(errors)},
        ],
    )


def healthy_traffic(
    new_positive: float = 0.52, new_predictions: int = 3200, new_errors: int = 0
) -> Callable[[], None]:
    def put() -> None:
        for fn in FUNCTIONS.values():
            analysis = fn == "ma-analysis"
            pos = round(new_predictions * new_positive)
            emit(
                fn,
                "2",
                positive=pos if analysis else 0,
                negative=new_predictions - pos if analysis else 0,
                invocations=400,
                errors=new_errors,
            )
            emit(
                fn,
                "1",
                positive=15000 if analysis else 0,
                negative=13800 if analysis else 0,
                invocations=3600,
                errors=2,
            )

    return put


LIVE_ENV = """alarms = ["ma-errors"]
traffic = { canary_weight = 0.1, bake_seconds = 300, looks = 3, min_samples = 3000, deadline_seconds = 900 }"""


def _promote(tmp_path: Path, traffic: Callable[[], None]) -> tuple[Any, FakeTime, Any]:
    set_alarm("OK")
    cfg = promotion_project(tmp_path, NEW, env_extra=LIVE_ENV)
    ft = FakeTime(traffic)
    target = LambdaTarget(cfg, "prod", clock=ft.clock, sleep=ft.sleep)
    return cfg, ft, target


def _looks(cfg: Any) -> list[dict[str, str]]:
    return [e.evidence for e in open_ledger(cfg).events() if e.action == "canary.look"]


@pytest.mark.aws
def test_healthy_canary_completes(lambdas: dict[str, str], tmp_path: Path) -> None:
    cfg, ft, target = _promote(tmp_path, healthy_traffic())
    promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert aliases() == {fn: ("2", {}) for fn in FUNCTIONS.values()}
    looks = _looks(cfg)
    assert [lk["decision"] for lk in looks] == ["continue", "continue", "pass"]
    assert looks[-1]["L1 positive share"].startswith("pass: positive share 0.520 (new, n=3200)")
    assert ft.t - 1000.0 == pytest.approx(300.0, abs=1.0)  # baked, no longer


@pytest.mark.aws
def test_degraded_canary_is_rolled_back(lambdas: dict[str, str], tmp_path: Path) -> None:
    cfg, _ft, target = _promote(tmp_path, healthy_traffic(new_positive=0.45))
    with pytest.raises(CanaryFailed) as info:
        promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert info.value.message.startswith(
        "live canary failed L1 positive share: positive share 0.450 (new, n=3200) vs 0.521 "
        "(stable, n=28800), shift -7.1 points"
    )
    assert info.value.message.endswith("every function was put back on its previous version")
    assert aliases() == {fn: ("1", {}) for fn in FUNCTIONS.values()}
    assert [lk["decision"] for lk in _looks(cfg)] == ["fail"]  # the first look already
    assert open_ledger(cfg).events()[-1].action == "promote.failed"


@pytest.mark.aws
def test_erroring_canary_is_rolled_back(lambdas: dict[str, str], tmp_path: Path) -> None:
    cfg, _ft, target = _promote(tmp_path, healthy_traffic(new_errors=40))
    with pytest.raises(
        CanaryFailed,
        match=r"^live canary failed L3 lambda errors ma-analysis: "
        r"ma-analysis: error rate 10\.00% \(new, n=400\) vs 0\.06%",
    ):
        promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert aliases() == {fn: ("1", {}) for fn in FUNCTIONS.values()}


@pytest.mark.aws
def test_too_few_samples_holds_then_rolls_back_at_the_deadline(
    lambdas: dict[str, str], tmp_path: Path
) -> None:
    cfg, ft, target = _promote(tmp_path, healthy_traffic(new_predictions=800))
    with pytest.raises(CanaryFailed) as info:
        promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert info.value.message == (
        "live canary inconclusive after 900s (deadline 900s): 800 canary predictions "
        "(need 3000), 28800 stable; every function was put back on its previous version"
    )
    assert [lk["decision"] for lk in _looks(cfg)] == ["continue"] * 2 + ["hold"] * 6 + [
        "inconclusive"
    ]
    assert ft.t - 1000.0 == pytest.approx(900.0, abs=1.0)
    assert aliases() == {fn: ("1", {}) for fn in FUNCTIONS.values()}


@pytest.mark.aws
def test_alarm_in_alarm_mid_bake_rolls_back(lambdas: dict[str, str], tmp_path: Path) -> None:
    def traffic() -> None:
        healthy_traffic()()
        set_alarm("ALARM")

    cfg, _ft, target = _promote(tmp_path, traffic)
    with pytest.raises(
        CanaryFailed, match=r"^alarm ma-errors fired during the canary: test says ALARM; "
    ):
        promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    assert aliases() == {fn: ("1", {}) for fn in FUNCTIONS.values()}
