"""The live canary: new vs stable version on the same Lambda aliases, from CloudWatch.

`LambdaTarget` shifts `traffic.canary_weight` of every alias to the newly published
version (`RoutingConfig.AdditionalVersionWeights`) and hands the shifts to `LiveCanary`,
which looks at the traffic until it can decide:

- every poll: any configured CloudWatch alarm (`[environments.ENV].alarms`) in ALARM ->
  fail (the target rolls every function back, exit 1);
- every `bake_seconds / looks` seconds (a *look*): per version, the handlers' EMF metrics
  (`SentimentPositive`, `SentimentNegative`, `AnalysisErrors` in `traffic.metrics_namespace`)
  and Lambda's own (`Invocations`, `Errors`, `Duration` p99 in `AWS/Lambda`), each summed
  over every dimension set that carries `FunctionName = <function>` and
  `ExecutedVersion = <version>`, cumulative since the shift. `evaluate_look` (pure) compares
  new against stable:

  L1 positive share (all functions together): two-sided two-proportion z-test,
     z = (p_new - p_old) / sqrt(p (1 - p) (1/n_new + 1/n_old)), p pooled; fail when
     P < alpha / looks (the alpha is split across looks, Bonferroni, so repeated looking
     keeps the overall false-alarm rate <= alpha). Needs at least `min_samples` canary
     predictions (3,000 gives ~99% power for a 5-point shift at alpha 0.01 with a 10%
     canary); fewer -> inconclusive.
  L2 handler errors (`AnalysisErrors` per prediction) and L3 Lambda errors (`Errors` per
     `Invocations`), per function: one-sided two-proportion test P < alpha / looks AND
     the rate higher by more than `max_error_rate_increase`.
  L4 p99 duration per function: new p99 > stable p99 x (1 + `max_p99_increase`) -> fail
     (only when CloudWatch reports p99 for both versions).

- the canary passes once `bake_seconds` have elapsed, nothing failed and L1 was decided
  (pass); while L1 is inconclusive the canary *holds* (traffic stays split, looks go on)
  until `deadline_seconds`, then fails as inconclusive (rolled back).

Time is read from `clock` and waited with `sleep`, both injectable (tests never wait).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from release.canary.stats import ZTest, two_proportion
from release.config import TrafficConfig
from release.errors import CanaryFailed, ConfigError, RemoteError, aws_error_message

log = logging.getLogger(__name__)

LAMBDA_NAMESPACE = "AWS/Lambda"
HANDLER_METRICS = ("SentimentPositive", "SentimentNegative", "AnalysisErrors")
LAMBDA_METRICS = ("Invocations", "Errors")
VERSION_DIMENSION = "ExecutedVersion"
FUNCTION_DIMENSION = "FunctionName"

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Counts:
    """One version's cumulative metrics since the shift (`p99_ms` None: not reported)."""

    positive: float = 0.0
    negative: float = 0.0
    analysis_errors: float = 0.0
    invocations: float = 0.0
    errors: float = 0.0
    p99_ms: float | None = None

    @property
    def predictions(self) -> float:
        return self.positive + self.negative

    def __add__(self, other: Counts) -> Counts:
        p99s = [p for p in (self.p99_ms, other.p99_ms) if p is not None]
        return Counts(
            self.positive + other.positive,
            self.negative + other.negative,
            self.analysis_errors + other.analysis_errors,
            self.invocations + other.invocations,
            self.errors + other.errors,
            max(p99s) if p99s else None,
        )


@dataclass(frozen=True)
class LiveCheck:
    name: str
    verdict: Verdict
    value: float | None
    threshold: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "value": self.value,
            "threshold": self.threshold,
            "detail": self.detail,
        }


def evaluate_look(
    new: dict[str, Counts], stable: dict[str, Counts], traffic: TrafficConfig
) -> list[LiveCheck]:
    """Every live check of one look; `new`/`stable` map function -> cumulative counts."""
    alpha = traffic.alpha / traffic.looks
    checks: list[LiveCheck] = []
    tn = sum(new.values(), Counts())
    ts = sum(stable.values(), Counts())
    n_new, n_old = tn.predictions, ts.predictions
    if traffic.min_samples == 0 and n_new == 0:
        checks.append(
            LiveCheck(
                "L1 positive share",
                "pass",
                None,
                None,
                "no predictions and min_samples = 0: not compared",
            )
        )
    elif n_new == 0 and n_old == 0:
        checks.append(
            LiveCheck(
                "L1 positive share",
                "inconclusive",
                0.0,
                float(traffic.min_samples),
                f"no SentimentPositive/SentimentNegative metrics with {FUNCTION_DIMENSION} and "
                f"{VERSION_DIMENSION} dimensions in {traffic.metrics_namespace} for either version "
                "(do the handlers publish them per version?)",
            )
        )
    elif n_new < max(traffic.min_samples, 1) or n_old == 0:
        checks.append(
            LiveCheck(
                "L1 positive share",
                "inconclusive",
                n_new,
                float(traffic.min_samples),
                f"{n_new:.0f} canary predictions (need {traffic.min_samples}), {n_old:.0f} stable",
            )
        )
    else:
        _z, p, _ = two_proportion(tn.positive, n_new, ts.positive, n_old)
        shift = tn.positive / n_new - ts.positive / n_old
        checks.append(
            LiveCheck(
                "L1 positive share",
                "fail" if p < alpha else "pass",
                p,
                alpha,
                f"positive share {tn.positive / n_new:.3f} (new, n={n_new:.0f}) vs "
                f"{ts.positive / n_old:.3f} (stable, n={n_old:.0f}), shift {shift * 100:+.1f} "
                f"points, P={p:.2g} (fail below {alpha:.2g})",
            )
        )
    for fn in sorted(new):
        a, b = new[fn], stable.get(fn, Counts())
        for name, x1, n1, x2, n2 in (
            (
                "L2 handler errors",
                a.analysis_errors,
                a.predictions + a.analysis_errors,
                b.analysis_errors,
                b.predictions + b.analysis_errors,
            ),
            ("L3 lambda errors", a.errors, a.invocations, b.errors, b.invocations),
        ):
            if n1 <= 0:
                continue
            r1, r2 = x1 / n1, (x2 / n2 if n2 > 0 else 0.0)
            _z, _p2, p1 = two_proportion(x1, n1, x2, n2) if n2 > 0 else ZTest(0.0, 1.0, 0.0)
            bad = r1 - r2 > traffic.max_error_rate_increase and p1 < alpha
            checks.append(
                LiveCheck(
                    f"{name} {fn}",
                    "fail" if bad else "pass",
                    r1 - r2,
                    traffic.max_error_rate_increase,
                    f"{fn}: error rate {r1:.2%} (new, n={n1:.0f}) vs {r2:.2%} (stable, n={n2:.0f}), "
                    f"P={p1:.2g}",
                )
            )
        if a.p99_ms is not None and b.p99_ms is not None and b.p99_ms > 0:
            limit = b.p99_ms * (1.0 + traffic.max_p99_increase)
            checks.append(
                LiveCheck(
                    f"L4 p99 duration {fn}",
                    "fail" if a.p99_ms > limit else "pass",
                    a.p99_ms,
                    limit,
                    f"{fn}: p99 {a.p99_ms:.0f} ms (new) vs {b.p99_ms:.0f} ms (stable), limit {limit:.0f} ms",
                )
            )
    return checks


# --- CloudWatch ------------------------------------------------------------------------
def cloudwatch_call(client: Any, op: str, **kw: Any) -> Any:
    """One CloudWatch API call; an AWS failure is a RemoteError (exit 3)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return getattr(client, op)(**kw)
    except (ClientError, BotoCoreError) as exc:
        raise RemoteError(f"CloudWatch {op} failed: {aws_error_message(exc)}") from None


class Alarms:
    """The environment's CloudWatch alarms: all must exist (checked before anything is
    touched); any in ALARM stops the canary."""

    def __init__(self, names: Sequence[str], client: Any) -> None:
        self.names = list(names)
        self.client = client

    def states(self) -> dict[str, tuple[str, str]]:
        if not self.names:
            return {}
        resp = cloudwatch_call(self.client, "describe_alarms", AlarmNames=self.names)
        found = {}
        for kind in ("MetricAlarms", "CompositeAlarms"):
            for a in resp.get(kind, []):
                found[a["AlarmName"]] = (a.get("StateValue", ""), a.get("StateReason", ""))
        return found

    def check_configured(self) -> None:
        missing = sorted(set(self.names) - set(self.states()))
        if missing:
            raise ConfigError(
                f"CloudWatch alarm(s) {', '.join(missing)} named in [environments] "
                "alarms do not exist: create them or fix the names"
            )

    def check(self) -> None:
        for name, (state, reason) in sorted(self.states().items()):
            if state == "ALARM":
                raise CanaryFailed(f"alarm {name} fired during the canary: {reason or 'ALARM'}")


class CloudWatchMetrics:
    """Reads per-version metrics of a function from CloudWatch (`get_metric_data`)."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    def _call(self, op: str, **kw: Any) -> Any:
        return cloudwatch_call(self.client, op, **kw)

    def _series(
        self, namespace: str, name: str, function: str, version: str
    ) -> list[list[dict[str, str]]]:
        """Every dimension set of `name` that includes the function and version."""
        dims = [
            {"Name": FUNCTION_DIMENSION, "Value": function},
            {"Name": VERSION_DIMENSION, "Value": version},
        ]
        out: list[list[dict[str, str]]] = []
        kw: dict[str, Any] = {"Namespace": namespace, "MetricName": name, "Dimensions": dims}
        while True:
            resp = self._call("list_metrics", **kw)
            out.extend(
                [{"Name": d["Name"], "Value": d["Value"]} for d in m.get("Dimensions", [])]
                for m in resp.get("Metrics", [])
            )
            token = resp.get("NextToken")
            if not token:
                return out
            kw["NextToken"] = token

    def counts(self, function: str, version: str, start: datetime, end: datetime) -> Counts:
        queries: list[dict[str, Any]] = []
        kinds: dict[str, str] = {}
        wanted = [(self.namespace, n, "Sum") for n in HANDLER_METRICS]
        wanted += [(LAMBDA_NAMESPACE, n, "Sum") for n in LAMBDA_METRICS]
        wanted.append((LAMBDA_NAMESPACE, "Duration", "p99"))
        for ns, name, stat in wanted:
            for dims in self._series(ns, name, function, version):
                qid = f"q{len(queries)}"
                kinds[qid] = name
                queries.append(
                    {
                        "Id": qid,
                        "ReturnData": True,
                        "MetricStat": {
                            "Metric": {"Namespace": ns, "MetricName": name, "Dimensions": dims},
                            "Period": 60,
                            "Stat": stat,
                        },
                    }
                )
        sums: dict[str, float] = {}
        p99: list[float] = []
        for i in range(0, len(queries), 500):
            kw: dict[str, Any] = {
                "MetricDataQueries": queries[i : i + 500],
                "StartTime": start,
                "EndTime": end,
            }
            while True:
                resp = self._call("get_metric_data", **kw)
                for r in resp.get("MetricDataResults", []):
                    name = kinds[r["Id"]]
                    vals = [float(v) for v in r.get("Values", []) if v is not None]
                    if name == "Duration":
                        p99.extend(vals)
                    else:
                        sums[name] = sums.get(name, 0.0) + sum(vals)
                token = resp.get("NextToken")
                if not token:
                    break
                kw["NextToken"] = token
        return Counts(
            positive=sums.get("SentimentPositive", 0.0),
            negative=sums.get("SentimentNegative", 0.0),
            analysis_errors=sums.get("AnalysisErrors", 0.0),
            invocations=sums.get("Invocations", 0.0),
            errors=sums.get("Errors", 0.0),
            # the worst minute's p99: conservative, never averaged away
            p99_ms=max(p99) if p99 else None,
        )


# --- the watch -------------------------------------------------------------------------
@dataclass(frozen=True)
class Look:
    index: int
    elapsed: float
    decision: Literal["continue", "hold", "pass", "fail", "inconclusive"]
    checks: tuple[LiveCheck, ...]
    new: dict[str, Counts] = field(default_factory=dict)
    stable: dict[str, Counts] = field(default_factory=dict)


StepCallback = Callable[[str, dict[str, str]], None]


class LiveCanary:
    """The live canary watch `LambdaTarget` runs while the aliases are split (see module
    docstring). Raises `CanaryFailed` to make the target roll every function back."""

    def __init__(
        self,
        traffic: TrafficConfig,
        alarms: Sequence[str] = (),
        *,
        cloudwatch: Any = None,
        region: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_seconds: float = 5.0,
    ) -> None:
        if cloudwatch is None:
            import boto3

            cloudwatch = (
                boto3.client("cloudwatch", region_name=region)
                if region
                else boto3.client("cloudwatch")
            )
        self.traffic = traffic
        self.alarms = Alarms(alarms, cloudwatch)
        self.client = cloudwatch
        self.metrics = CloudWatchMetrics(cloudwatch, traffic.metrics_namespace)
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.poll_seconds = poll_seconds
        self.looks: list[Look] = []

    # alarms ------------------------------------------------------------------------------
    def check_configured(self) -> None:
        """Every configured alarm exists (checked before anything is touched)."""
        self.alarms.check_configured()

    # looks -------------------------------------------------------------------------------
    def look(self, shifts: Sequence[Any], start: datetime, index: int, elapsed: float) -> Look:
        """Read the metrics of every shifted function and evaluate them."""
        floor = start.replace(second=0, microsecond=0)
        end = self.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
        if end <= floor:
            end = floor + timedelta(minutes=1)
        new = {
            s.function: self.metrics.counts(s.function, s.new_version, floor, end) for s in shifts
        }
        stable = {
            s.function: self.metrics.counts(s.function, s.old_version, floor, end) for s in shifts
        }
        checks = tuple(evaluate_look(new, stable, self.traffic))
        return Look(index, elapsed, "continue", checks, new, stable)

    def __call__(self, shifts: Sequence[Any], on_step: StepCallback | None = None) -> None:
        t = self.traffic
        bake = float(t.bake_seconds)
        deadline = max(float(t.deadline_seconds), bake)
        every = bake / t.looks if bake > 0 else 0.0
        start = self.now()
        t0 = self.clock()
        next_look = t0 + every
        index = 0
        # A loop of our own, not a boto3 waiter: no waiter waits "until a statistical
        # test decides", and the clock and sleep must be injectable (tests never wait).
        while True:
            self.alarms.check()
            now = self.clock()
            if now >= next_look:
                index += 1
                elapsed = now - t0
                lk = self.look(shifts, start, index, elapsed)
                failed = [c for c in lk.checks if c.verdict == "fail"]
                pending = [c for c in lk.checks if c.verdict == "inconclusive"]
                if failed:
                    decision = "fail"
                elif elapsed >= bake and not pending:
                    decision = "pass"
                elif elapsed >= deadline:
                    decision = "inconclusive"
                else:
                    decision = "hold" if elapsed >= bake else "continue"
                lk = Look(lk.index, lk.elapsed, decision, lk.checks, lk.new, lk.stable)  # type: ignore[arg-type]
                self.looks.append(lk)
                log.info(
                    "live canary look %d at %.0fs of %.0fs: %s", index, elapsed, bake, decision
                )
                for c in lk.checks:
                    log.debug("  %s: %s: %s", c.name, c.verdict, c.detail)
                if on_step is not None:
                    on_step(
                        "canary.look",
                        {
                            "look": str(index),
                            "elapsed": f"{elapsed:.0f}",
                            "decision": decision,
                            **{c.name: f"{c.verdict}: {c.detail}" for c in lk.checks},
                        },
                    )
                if decision == "fail":
                    c = failed[0]
                    more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
                    raise CanaryFailed(
                        f"live canary failed {c.name}: {c.detail}{more}",
                        details=[f"{f.name}: {f.detail}" for f in failed],
                    )
                if decision == "inconclusive":
                    c = pending[0]
                    raise CanaryFailed(
                        f"live canary inconclusive after {elapsed:.0f}s (deadline "
                        f"{deadline:.0f}s): {c.detail}"
                    )
                if decision == "pass":
                    return
                next_look += every if every > 0 else self.poll_seconds
            self.sleep(max(0.0, min(self.poll_seconds, next_look - self.clock())))
