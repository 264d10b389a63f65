"""The live canary: new vs stable version on the same Lambda aliases, from CloudWatch.

`LambdaTarget` shifts `traffic.canary_weight` of every alias to the newly published
version (`RoutingConfig.AdditionalVersionWeights`) and hands the shifts to `LiveCanary`,
which looks at the traffic until it can decide. What the handlers publish is the
platform's, named in `[environments.ENV].traffic` (the tool knows no metric name): one
metric per label (`label_metrics`) or one metric with a label dimension (`label_metric`,
`label_dimension`), a score metric (`score_metric`, one value per prediction) and
optionally an error count (`error_metric`), all in
`traffic.metrics_namespace` with `FunctionName` and `ExecutedVersion` dimensions.

- every poll: any configured CloudWatch alarm (`[environments.ENV].alarms`) in ALARM ->
  fail (the target rolls every function back, exit 1);
- every `bake_seconds / looks` seconds (a *look*): per version, those metrics and Lambda's
  own (`Invocations`, `Errors`, `Duration` p99 in `AWS/Lambda`), each summed over every
  dimension set that carries `FunctionName = <function>` and `ExecutedVersion =
  <version>`, **over whole periods after the shift only** (`period_seconds`: the first
  period starts at or after the shift, the last ends at or before now; the same periods
  for both versions, so neither counts traffic from before the shift). `evaluate_look`
  (pure) compares new against stable:

  L1 label shares (only when prediction metrics are named): per label (K = 2: the
     second), the share difference estimated within each stratum - one whole period of
     one function - and pooled (`stats.stratified_difference`), so a traffic mix that
     drifts over the bake moves both versions alike and cancels. A function whose
     invocations make one prediction each is compared on a normal reference: the alias
     routes each invocation at random, which makes the within-stratum variance exact
     however bursty the traffic. A batched function (more predictions than invocations,
     or no Invocations counted) spreads more than binomial: the dispersion is estimated
     from the strata and the reference is Student's t with strata - 1 df (more periods
     - `period_seconds` 10 with high-resolution metrics - or more functions buy power).
     Holm over the labels; fail when P < alpha / looks (Bonferroni over the looks). Needs
     `min_samples` canary predictions and `min_periods` periods with predictions on both;
     fewer -> inconclusive.
  L1 score (a score output, `score_metric`): per stratum the configured CloudWatch
     statistic (`score_statistic`, p50 by default) new - stable; Student's t over the
     strata; fail when P < alpha / looks and the mean moved more than `max_score_shift`.
  L2 handler errors (`error_metric` per prediction + error) and L3 Lambda errors
     (`Errors` per `Invocations`), per function: one-sided two-proportion test P <
     alpha / looks AND the rate higher by more than `max_error_rate_increase`.
  L4 p99 duration per function: new p99 > stable p99 x (1 + `max_p99_increase`) -> fail
     (only when CloudWatch reports p99 for both versions).

- the canary passes once `bake_seconds` have elapsed, nothing failed and L1 was decided
  (pass); while L1 is inconclusive the canary *holds* (traffic stays split, looks go on)
  until `deadline_seconds`, then fails as inconclusive (rolled back). A platform that
  names no prediction metrics gets L2-L4 only, said in one line when the canary starts,
  and never holds for L1.

Time is read from `clock` and `now` and waited with `sleep`, all injectable (tests never
wait).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np

from release.canary.stats import ZTest, holm, stratified_difference, two_proportion
from release.config import TrafficConfig
from release.errors import CanaryFailed, ConfigError, RemoteError, aws_error_message

log = logging.getLogger(__name__)

LAMBDA_NAMESPACE = "AWS/Lambda"
#: markers of the score metric's two queries (its statistic, its SampleCount)
SCORE, SCORED = "\x00score", "\x00scored"
LAMBDA_METRICS = ("Invocations", "Errors")
VERSION_DIMENSION = "ExecutedVersion"
FUNCTION_DIMENSION = "FunctionName"

Verdict = Literal["pass", "fail", "inconclusive"]


def _add_series(x: tuple[float, ...], y: tuple[float, ...]) -> tuple[float, ...]:
    n = max(len(x), len(y))
    return tuple((x[i] if i < len(x) else 0.0) + (y[i] if i < len(y) else 0.0) for i in range(n))


@dataclass(frozen=True)
class Counts:
    """One version's metrics over the whole periods since the shift: per label, the
    predictions in each period (period i is the same interval for every version);
    errors and invocations summed; the worst period's p99 (None: not reported)."""

    labels: dict[str, tuple[float, ...]] = field(default_factory=dict)
    analysis_errors: float = 0.0
    invocations: float = 0.0
    errors: float = 0.0
    p99_ms: float | None = None
    #: a score output: per period the configured statistic of the scores (None: no data)
    #: and how many scores it summarises (SampleCount); per function, never summed
    score: tuple[float | None, ...] = ()
    scored: tuple[float, ...] = ()

    @property
    def predictions(self) -> float:
        return float(sum(sum(v) for v in self.labels.values()))

    def __add__(self, other: Counts) -> Counts:
        p99s = [p for p in (self.p99_ms, other.p99_ms) if p is not None]
        return Counts(
            {
                k: _add_series(self.labels.get(k, ()), other.labels.get(k, ()))
                for k in {**self.labels, **other.labels}
            },
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


def metric_names(traffic: TrafficConfig) -> str:
    """The configured prediction metrics, for messages."""
    if traffic.label_metric:
        return f"{traffic.label_metric} (by {traffic.label_dimension})"
    return "/".join(traffic.label_metrics.values())


L1 = "L1 label shares"


#: predictions per invocation above which a function counts as batched (an invocation's
#: predictions go to one version together); the slack absorbs predictions and invocations
#: timestamped on either side of a period boundary
BATCHED_ABOVE = 1.05


def batched(new: Counts, stable: Counts) -> bool:
    """Does an invocation of this function make several predictions (over both versions,
    the same whole periods)? Unknown (no Invocations counted) -> batched, the safe side."""
    invocations = new.invocations + stable.invocations
    return invocations <= 0 or (new.predictions + stable.predictions) > BATCHED_ABOVE * invocations


def _label_shares(
    new: dict[str, Counts], stable: dict[str, Counts], traffic: TrafficConfig, alpha: float
) -> LiveCheck:
    """L1 over the strata (function x whole period) both versions have (module docstring)."""
    tn = sum(new.values(), Counts())
    ts = sum(stable.values(), Counts())
    labels = list(traffic.label_metrics) or sorted({*tn.labels, *ts.labels})
    periods = max([len(v) for v in (*tn.labels.values(), *ts.labels.values())] or [0])
    if traffic.min_samples == 0 and tn.predictions == 0:
        return LiveCheck(L1, "pass", None, None, "no predictions and min_samples = 0: not compared")
    if tn.predictions == 0 and ts.predictions == 0:
        return LiveCheck(
            L1,
            "inconclusive",
            0.0,
            float(traffic.min_samples),
            f"no {metric_names(traffic)} metrics with {FUNCTION_DIMENSION} and "
            f"{VERSION_DIMENSION} dimensions in {traffic.metrics_namespace} for either version "
            f"in the {periods} whole periods since the shift (do the handlers publish them "
            "per version?)",
        )

    def cell(c: Counts, k: str, t: int) -> float:
        series = c.labels.get(k, ())
        return series[t] if t < len(series) else 0.0

    # strata: (function, period) with predictions on both versions
    strata: list[tuple[Counts, Counts, int]] = []
    n1: list[float] = []  # predictions per stratum: new version, stable
    n2: list[float] = []
    functions: set[str] = set()
    for fn in sorted(new):
        a, b = new[fn], stable.get(fn, Counts())
        for t in range(periods):
            m, n = sum(cell(a, k, t) for k in labels), sum(cell(b, k, t) for k in labels)
            if m > 0 and n > 0:
                strata.append((a, b, t))
                n1.append(m)
                n2.append(n)
                functions.add(fn)
    n_new, n_old = sum(n1), sum(n2)
    both = sorted({t for _, _, t in strata})
    if n_new < max(traffic.min_samples, 1) or n_old == 0:
        return LiveCheck(
            L1,
            "inconclusive",
            n_new,
            float(traffic.min_samples),
            f"{n_new:.0f} canary predictions (need {traffic.min_samples}), {n_old:.0f} stable",
        )
    if len(both) < traffic.min_periods:
        return LiveCheck(
            L1,
            "inconclusive",
            float(len(both)),
            float(traffic.min_periods),
            f"{len(both)} whole periods of {traffic.period_seconds}s with predictions on both "
            f"versions since the shift (need {traffic.min_periods})",
        )
    is_batched = any(batched(new[fn], stable.get(fn, Counts())) for fn in functions)
    tested = [1] if len(labels) == 2 else list(range(len(labels)))
    results = [
        stratified_difference(
            [cell(a, labels[k], t) for a, _, t in strata],
            n1,
            [cell(b, labels[k], t) for _, b, t in strata],
            n2,
            batched=is_batched,
        )
        for k in tested
    ]
    adj = holm([r.p_value for r in results])
    j = min(range(len(tested)), key=lambda i: adj[i])
    k, r, p = tested[j], results[j], adj[j]
    share_new = sum(cell(a, labels[k], t) for a, _, t in strata) / n_new
    share_old = sum(cell(b, labels[k], t) for _, b, t in strata) / n_old
    how = (
        f"dispersion {r.dispersion:.2g}, t with {r.df} df"
        if r.df is not None
        else "one prediction per invocation: binomial within periods"
    )
    return LiveCheck(
        L1,
        "fail" if p < alpha else "pass",
        p,
        alpha,
        f"{labels[k]} share {share_new:.3f} (new, n={n_new:.0f}) vs {share_old:.3f} (stable, "
        f"n={n_old:.0f}), shift {r.difference * 100:+.1f} points within {len(both)} whole "
        f"periods x {len(functions)} functions ({how}), "
        f"P={p:.2g} (fail below {alpha:.2g})",
    )


L1_SCORE = "L1 score"


def _score_shift(
    new: dict[str, Counts], stable: dict[str, Counts], traffic: TrafficConfig, alpha: float
) -> LiveCheck:
    """L1 for a score output: per stratum (function x whole period) the difference of the
    configured statistic, new - stable; their mean is tested against 0 by Student's t
    over the strata (a statistic per period is not a count: its spread is estimated, as
    Kayenta compares per-interval values); fail when P < alpha / looks AND the mean
    moved by more than `max_score_shift`. Needs `min_samples` canary scores and
    `min_periods` strata with a statistic on both versions."""
    stat, metric = traffic.score_statistic, traffic.score_metric
    diffs: list[float] = []
    n_new = n_old = 0.0
    periods: set[int] = set()
    for fn in sorted(new):
        a, b = new[fn], stable.get(fn, Counts())
        for t, (x, y) in enumerate(zip(a.score, b.score, strict=False)):
            if x is None or y is None or not a.scored[t] or not b.scored[t]:
                continue
            diffs.append(x - y)
            n_new += a.scored[t]
            n_old += b.scored[t]
            periods.add(t)
    if n_new < max(traffic.min_samples, 1) or len(periods) < traffic.min_periods:
        return LiveCheck(
            L1_SCORE,
            "inconclusive",
            n_new,
            float(traffic.min_samples),
            f"{n_new:.0f} canary scores (need {traffic.min_samples}) in {len(periods)} whole "
            f"periods with {metric} {stat} on both versions (need {traffic.min_periods}; "
            f"{traffic.metrics_namespace}, {FUNCTION_DIMENSION} and {VERSION_DIMENSION} "
            "dimensions)",
        )
    d = np.asarray(diffs)
    mean = float(d.mean())
    if len(d) > 1 and float(d.std(ddof=1)) > 0:
        from scipy import stats as _st

        p = float(_st.ttest_1samp(d, 0.0).pvalue)
    else:  # no spread: any move is certain, none is none
        p = 0.0 if mean != 0 else 1.0
    bad = p < alpha and abs(mean) > traffic.max_score_shift
    return LiveCheck(
        L1_SCORE,
        "fail" if bad else "pass",
        mean,
        traffic.max_score_shift,
        f"{metric} {stat} moved {mean:+.4g} (new - stable, mean of {len(d)} strata; "
        f"tolerance {traffic.max_score_shift:g}), n={n_new:.0f} new vs {n_old:.0f} stable "
        f"scores, P={p:.2g} (fail below {alpha:.2g})",
    )


def evaluate_look(
    new: dict[str, Counts], stable: dict[str, Counts], traffic: TrafficConfig
) -> list[LiveCheck]:
    """Every live check of one look; `new`/`stable` map function -> counts over the whole
    periods since the shift."""
    alpha = traffic.alpha / traffic.looks
    checks: list[LiveCheck] = []
    if traffic.label_metrics_named:
        checks.append(_label_shares(new, stable, traffic, alpha))
    if traffic.score_metric:
        checks.append(_score_shift(new, stable, traffic, alpha))
    for fn in sorted(new):
        a, b = new[fn], stable.get(fn, Counts())
        rows = [("L3 lambda errors", a.errors, a.invocations, b.errors, b.invocations)]
        if traffic.error_metric:
            rows.insert(
                0,
                (
                    "L2 handler errors",
                    a.analysis_errors,
                    a.predictions + a.analysis_errors,
                    b.analysis_errors,
                    b.predictions + b.analysis_errors,
                ),
            )
        for name, x1, n1, x2, n2 in rows:
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
    """Reads per-version metrics of a function from CloudWatch (`get_metric_data`), per
    whole period between `start` and `end` (both on period boundaries)."""

    def __init__(self, client: Any, traffic: TrafficConfig) -> None:
        self.client = client
        self.traffic = traffic
        self.namespace = traffic.metrics_namespace

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
        seen: set[tuple[tuple[str, str], ...]] = set()
        kw: dict[str, Any] = {"Namespace": namespace, "MetricName": name, "Dimensions": dims}
        while True:
            resp = self._call("list_metrics", **kw)
            for m in resp.get("Metrics", []):
                ds = [{"Name": d["Name"], "Value": d["Value"]} for d in m.get("Dimensions", [])]
                key = tuple(sorted((d["Name"], d["Value"]) for d in ds))
                if key not in seen:  # a series listed twice must not be counted twice
                    seen.add(key)
                    out.append(ds)
            token = resp.get("NextToken")
            if not token:
                return out
            kw["NextToken"] = token

    def _wanted(self) -> list[tuple[str, str, str, str | None]]:
        """(namespace, metric, statistic, label) of every metric a look reads; label None:
        not a prediction count (a label-dimension metric's label is per dimension set)."""
        t = self.traffic
        out: list[tuple[str, str, str, str | None]] = [
            (self.namespace, m, "Sum", label) for label, m in t.label_metrics.items()
        ]
        if t.label_metric:
            out.append((self.namespace, t.label_metric, "Sum", ""))
        if t.error_metric:
            out.append((self.namespace, t.error_metric, "Sum", None))
        if t.score_metric:
            out.append((self.namespace, t.score_metric, t.score_statistic, SCORE))
            out.append((self.namespace, t.score_metric, "SampleCount", SCORED))
        out += [(LAMBDA_NAMESPACE, n, "Sum", None) for n in LAMBDA_METRICS]
        out.append((LAMBDA_NAMESPACE, "Duration", "p99", None))
        return out

    def counts(self, function: str, version: str, start: datetime, end: datetime) -> Counts:
        period = self.traffic.period_seconds
        periods = int((end - start).total_seconds() // period)
        if periods <= 0:
            return Counts()
        queries: list[dict[str, Any]] = []
        kinds: dict[str, tuple[str, str | None]] = {}
        for ns, name, stat, label in self._wanted():
            series = self._series(ns, name, function, version)
            if label in (SCORE, SCORED):
                # a statistic of scores cannot be added up over dimension sets: the one
                # series with the fewest dimensions (FunctionName + ExecutedVersion
                # alone when the handlers publish it so)
                series = sorted(series, key=len)[:1]
            for dims in series:
                if label == "":  # one metric, the label in a dimension
                    found = [d["Value"] for d in dims if d["Name"] == self.traffic.label_dimension]
                    if not found:
                        continue
                    label = found[0]
                qid = f"q{len(queries)}"
                kinds[qid] = (name, label)
                queries.append(
                    {
                        "Id": qid,
                        "ReturnData": True,
                        "MetricStat": {
                            "Metric": {"Namespace": ns, "MetricName": name, "Dimensions": dims},
                            "Period": period,
                            "Stat": stat,
                        },
                    }
                )
                if self.traffic.label_metric and name == self.traffic.label_metric:
                    label = ""
        labels: dict[str, list[float]] = {}
        sums: dict[str, float] = {}
        p99: list[float] = []
        score: list[float | None] = [None] * periods
        scored = [0.0] * periods
        for i in range(0, len(queries), 500):
            kw: dict[str, Any] = {
                "MetricDataQueries": queries[i : i + 500],
                "StartTime": start,
                "EndTime": end,
            }
            while True:
                resp = self._call("get_metric_data", **kw)
                for r in resp.get("MetricDataResults", []):
                    name, label = kinds[r["Id"]]
                    for ts, v in zip(r.get("Timestamps", []), r.get("Values", []), strict=False):
                        if v is None:
                            continue
                        k = int((_utc(ts) - start).total_seconds() // period)
                        if not 0 <= k < periods:
                            continue  # CloudWatch answers whole periods; never a partial one
                        if label == SCORE:
                            score[k] = float(v)
                        elif label == SCORED:
                            scored[k] += float(v)
                        elif name == "Duration":
                            p99.append(float(v))
                        elif label is not None:
                            labels.setdefault(label, [0.0] * periods)[k] += float(v)
                        else:
                            sums[name] = sums.get(name, 0.0) + float(v)
                token = resp.get("NextToken")
                if not token:
                    break
                kw["NextToken"] = token
        return Counts(
            labels={k: tuple(v) for k, v in labels.items()},
            analysis_errors=sums.get(self.traffic.error_metric or "", 0.0),
            invocations=sums.get("Invocations", 0.0),
            errors=sums.get("Errors", 0.0),
            # the worst period's p99: conservative, never averaged away
            p99_ms=max(p99) if p99 else None,
            score=tuple(score) if self.traffic.score_metric else (),
            scored=tuple(scored) if self.traffic.score_metric else (),
        )


def _utc(ts: Any) -> datetime:
    t: datetime = datetime.fromisoformat(ts.replace("Z", "+00:00")) if isinstance(ts, str) else ts
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def whole_periods(shift: datetime, now: datetime, seconds: int) -> tuple[datetime, datetime]:
    """[start, end): the first period boundary at or after the shift, the last at or
    before now (start == end or later: no whole period yet)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def boundary(t: datetime, up: bool) -> datetime:
        s = (t - epoch).total_seconds()
        k = -(-s // seconds) if up else s // seconds
        return epoch + timedelta(seconds=k * seconds)

    return boundary(shift, True), boundary(now, False)


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
        self.metrics = CloudWatchMetrics(cloudwatch, traffic)
        self.clock = clock
        self.sleep = sleep
        self.now = now
        self.poll_seconds = poll_seconds
        self.looks: list[Look] = []

    def evidence(self) -> dict[str, Any]:
        """What the watch saw, for the signed promotion (`live_canary` in the promotion
        predicate): the settings it decided on, every look's decision, and the checks of
        the look that decided."""
        t = self.traffic
        last = self.looks[-1] if self.looks else None
        return {
            "passed": last is not None and last.decision == "pass",
            "bake_seconds": t.bake_seconds,
            "alpha": t.alpha,
            "period_seconds": t.period_seconds,
            "metrics": {
                "namespace": t.metrics_namespace,
                "labels": metric_names(t) if t.label_metrics_named else None,
                "score": f"{t.score_metric} {t.score_statistic}" if t.score_metric else None,
                "errors": t.error_metric,
            },
            "looks": [
                {"look": lk.index, "elapsed": round(lk.elapsed, 1), "decision": lk.decision}
                for lk in self.looks
            ],
            "checks": [c.to_dict() for c in last.checks] if last is not None else [],
        }

    # alarms ------------------------------------------------------------------------------
    def check_configured(self) -> None:
        """Every configured alarm exists (checked before anything is touched)."""
        self.alarms.check_configured()

    # looks -------------------------------------------------------------------------------
    def look(self, shifts: Sequence[Any], start: datetime, index: int, elapsed: float) -> Look:
        """Read the metrics of every shifted function over the whole periods since the
        shift (the same periods for both versions) and evaluate them."""
        begin, end = whole_periods(start, self.now(), self.traffic.period_seconds)
        new = {
            s.function: self.metrics.counts(s.function, s.new_version, begin, end) for s in shifts
        }
        stable = {
            s.function: self.metrics.counts(s.function, s.old_version, begin, end) for s in shifts
        }
        checks = tuple(evaluate_look(new, stable, self.traffic))
        return Look(index, elapsed, "continue", checks, new, stable)

    def __call__(self, shifts: Sequence[Any], on_step: StepCallback | None = None) -> None:
        t = self.traffic
        bake = float(t.bake_seconds)
        deadline = max(float(t.deadline_seconds), bake)
        every = bake / t.looks if bake > 0 else 0.0
        if not t.prediction_metrics:
            log.warning(
                "live canary: no prediction metrics named ([environments.ENV].traffic."
                "label_metrics, label_metric or score_metric): comparing errors and latency only"
            )
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
