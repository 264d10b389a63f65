"""`release readiness`: the live environment (boto3) against the platform's readiness review.

`collect(cfg, env)` reads, for every function of `[environments.ENV].functions` (a lambda
target): the function behind the alias (image, memory, timeout, architecture, tracing,
environment), its reserved concurrency, its SQS event source mappings (and each source
queue, its redrive policy and DLQ), its SNS subscriptions (and their failure
destinations), the CloudWatch alarms of the account, and the ECR repository the image
comes from. Each requirement becomes a `Row` (pass/fail and why); thresholds come from
`[readiness]` (release.config.ReadinessConfig). Nothing is changed.

Row kinds (docs/readiness.md lists each with its threshold and config key):
live-digest, esm-report-failures, esm-batching, redrive, dlq-retention,
visibility-timeout, sns-failure-destination, alarm-sns-failures, alarm-dlq-depth, memory,
timeout, reserved-concurrency, architecture, tracing, ecr-scan-on-push, metric-namespace,
function (each configured function and its alias exist), trigger-declared (each trigger of
`[readiness.functions.NAME]` is live on the alias), trigger-undeclared (a declared
function has no live SQS, SNS or EventBridge trigger beyond those), and `alarm-NAME` for each
`[[readiness.alarms]]` (the platform's own handler alarms: metric, function, threshold).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from release.config import Config, ReadinessConfig
from release.errors import ConfigError, RemoteError, aws_error_code, aws_error_message
from release.readiness.model import ReadinessReport, Row

DEFAULT_NAMESPACE = "Release/Handlers"
#: dimension keys of the handlers' version-free series (handlers/common/observability.py)
VERSION_FREE_KEYS = frozenset({"service", "FunctionName"})
VERSION_KEY = "ExecutedVersion"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_ECR = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(.+)$")
_ARCH = {"linux/amd64": "x86_64", "linux/arm64": "arm64"}
_GREATER = {"GreaterThanThreshold", "GreaterThanOrEqualToThreshold"}


@dataclass(frozen=True)
class Clients:
    """The boto3 clients the review reads (tests pass their own)."""

    lambda_: Any
    sqs: Any
    sns: Any
    cloudwatch: Any
    ecr: Any
    events: Any

    @classmethod
    def default(cls, region: str | None) -> Clients:
        import boto3

        kw = {"region_name": region} if region else {}
        return cls(
            *(
                boto3.client(s, **kw)
                for s in ("lambda", "sqs", "sns", "cloudwatch", "ecr", "events")
            )
        )


def _call(what: str, fn: Callable[..., Any], **kw: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kw)
    except (ClientError, BotoCoreError) as exc:
        raise RemoteError(f"readiness: cannot read {what}: {aws_error_message(exc)}") from None


def _pages(what: str, client: Any, op: str, key: str, **kw: Any) -> list[Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return [x for page in client.get_paginator(op).paginate(**kw) for x in page.get(key, [])]
    except (ClientError, BotoCoreError) as exc:
        raise RemoteError(f"readiness: cannot read {what}: {aws_error_message(exc)}") from None


def _image_digest(code: dict[str, Any]) -> tuple[str | None, str | None]:
    """(repository, digest) of what the function runs: ResolvedImageUri when it is a
    well-formed REPO@sha256:..., else ImageUri."""
    for key in ("ResolvedImageUri", "ImageUri"):
        uri = code.get(key)
        if isinstance(uri, str) and "@" in uri:
            repo, _, dig = uri.rpartition("@")
            if "@" not in repo and _DIGEST.match(dig):
                return repo, dig
    return None, None


def _base_name(function_arn: str) -> str:
    # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
    parts = function_arn.split(":")
    return parts[6] if len(parts) > 6 else function_arn


@dataclass
class _Function:
    name: str  # [functions] name
    target: str  # Lambda function name
    alias: str
    config: dict[str, Any]
    code: dict[str, Any]
    arn: str
    concurrency: int | None
    invoke_config: dict[str, Any] | None
    mappings: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)


def _read_function(c: Clients, name: str, target: str, alias: str) -> _Function | None:
    """The function behind the alias (None: no such function or alias)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        fn = c.lambda_.get_function(FunctionName=target, Qualifier=alias)
    except ClientError as exc:
        if aws_error_code(exc) == "ResourceNotFoundException":
            return None
        raise RemoteError(
            f"readiness: cannot read function {target}:{alias}: {aws_error_message(exc)}"
        ) from None
    except BotoCoreError as exc:
        raise RemoteError(
            f"readiness: cannot read function {target}:{alias}: {aws_error_message(exc)}"
        ) from None
    conf = fn.get("Configuration", {})
    conc = _call(
        f"concurrency of {target}", c.lambda_.get_function_concurrency, FunctionName=target
    )
    try:
        eic: dict[str, Any] | None = c.lambda_.get_function_event_invoke_config(
            FunctionName=target, Qualifier=alias
        )
    except ClientError as exc:
        if aws_error_code(exc) != "ResourceNotFoundException":
            raise RemoteError(
                f"readiness: cannot read {target}: {aws_error_message(exc)}"
            ) from None
        eic = None
    except BotoCoreError as exc:
        raise RemoteError(f"readiness: cannot read {target}: {aws_error_message(exc)}") from None
    return _Function(
        name,
        target,
        alias,
        conf,
        fn.get("Code", {}),
        str(conf.get("FunctionArn", "")),
        conc.get("ReservedConcurrentExecutions"),
        eic,
    )


def _queue(c: Clients, arn: str, cache: dict[str, dict[str, str] | None]) -> dict[str, str] | None:
    """The attributes of the queue with this ARN (None: it does not exist)."""
    from botocore.exceptions import ClientError

    if arn in cache:
        return cache[arn]
    parts = arn.split(":")
    name, account = parts[-1], parts[4] if len(parts) > 4 else ""
    try:
        url = c.sqs.get_queue_url(
            QueueName=name, **({"QueueOwnerAWSAccountId": account} if account else {})
        )["QueueUrl"]
        attrs = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    except ClientError as exc:
        if "NonExistentQueue" in aws_error_code(exc) or aws_error_code(exc) == "QueueDoesNotExist":
            cache[arn] = None
            return None
        raise RemoteError(
            f"readiness: cannot read queue {name}: {aws_error_message(exc)}"
        ) from None
    found: dict[str, str] = {str(k): str(v) for k, v in attrs.items()}
    cache[arn] = found
    return found


def _name_of(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


class _Review:
    def __init__(self, cfg: Config, env: str, rc: ReadinessConfig, namespace: str) -> None:
        self.cfg = cfg
        self.env = env
        self.rc = rc
        self.namespace = namespace
        self.rows: list[Row] = []

    def add(self, kind: str, subject: str, ok: bool, why: str) -> None:
        self.rows.append(
            Row(kind, subject, "pass" if ok else "fail", why, kind not in self.rc.optional)
        )


def collect(
    cfg: Config,
    env: str,
    *,
    clients: Clients | None = None,
    live_digest: str | Callable[[], str | None] | None = None,
    now: Callable[[], datetime] | None = None,
) -> ReadinessReport:
    """The readiness report of `env` (raises RemoteError when AWS cannot be read)."""
    e = cfg.environment(env)
    if e.target != "lambda":
        raise ConfigError(
            f"[environments.{env}] is a {e.target!r} target: readiness reviews a lambda environment"
        )
    if not e.functions:
        raise ConfigError(f"[environments.{env}].functions is empty: nothing to review")
    rc = cfg.readiness
    namespace = rc.metrics_namespace or e.traffic.metrics_namespace or DEFAULT_NAMESPACE
    if live_digest is None:
        from release.ledger import open_ledger

        cur = open_ledger(cfg).current(env)
        digest = cur.digest if cur else None
    elif callable(live_digest):
        digest = live_digest()
    else:
        digest = live_digest
    c = clients or Clients.default(e.region)
    review = _Review(cfg, env, rc, namespace)

    fns = []
    for n, t in sorted(e.functions.items()):
        f = _read_function(c, n, t, e.alias)
        review.add(
            "function",
            f"{t}:{e.alias}",
            f is not None,
            f"{f.arn}"
            if f
            else f"[environments.{env}].functions.{n} = {t!r}: no such function "
            f"or alias {e.alias!r} in Lambda",
        )
        if f is not None:
            fns.append(f)
    mappings = _pages(
        "event source mappings", c.lambda_, "list_event_source_mappings", "EventSourceMappings"
    )
    subs = _pages("SNS subscriptions", c.sns, "list_subscriptions", "Subscriptions")
    alarms = _pages("CloudWatch alarms", c.cloudwatch, "describe_alarms", "MetricAlarms")
    for f in fns:
        f.mappings = [
            m
            for m in mappings
            if _base_name(str(m.get("FunctionArn", ""))) == f.target
            and str(m.get("EventSourceArn", "")).startswith("arn:aws:sqs:")
        ]
        f.subscriptions = [
            s
            for s in subs
            if s.get("Protocol") == "lambda" and _base_name(str(s.get("Endpoint", ""))) == f.target
        ]

    _live_digest(review, fns, digest)
    queues = _event_sources(review, c, fns)
    topics = _sns(review, c, fns)
    _alarms(review, alarms, e.functions, queues, topics)
    _function_settings(review, fns)
    _ecr(review, c, fns)
    _namespace(review, fns, alarms)
    _triggers(review, c, e.functions, fns, mappings, subs)
    stamp = (now or (lambda: datetime.now(UTC)))().strftime("%Y-%m-%dT%H:%M:%SZ")
    return ReadinessReport(env, stamp, digest, namespace, tuple(review.rows))


# --- rows ------------------------------------------------------------------------------
def _live_digest(r: _Review, fns: list[_Function], digest: str | None) -> None:
    for f in fns:
        _repo, runs = _image_digest(f.code)
        subject = f"{f.target}:{f.alias}"
        if digest is None:
            r.add(
                "live-digest",
                subject,
                False,
                f"the ledger has no live digest for {r.env} (never promoted)",
            )
        elif runs is None:
            r.add(
                "live-digest",
                subject,
                False,
                f"runs {f.code.get('ImageUri')!r}, not an image by digest",
            )
        elif runs != digest:
            r.add(
                "live-digest", subject, False, f"runs {runs}, the ledger's live digest is {digest}"
            )
        else:
            r.add("live-digest", subject, True, f"runs {runs} (the ledger's live digest)")


def _event_sources(
    r: _Review, c: Clients, fns: list[_Function]
) -> dict[str, dict[str, str] | None]:
    """Rows of every SQS event source; returns the DLQs seen (ARN -> attributes)."""
    rc = r.rc
    cache: dict[str, dict[str, str] | None] = {}
    dlqs: dict[str, dict[str, str] | None] = {}
    for f in fns:
        timeout = int(f.config.get("Timeout", 3))
        for m in f.mappings:
            src = str(m["EventSourceArn"])
            qname = _name_of(src)
            subject = f"{f.target}<-{qname}"
            types = m.get("FunctionResponseTypes") or []
            r.add(
                "esm-report-failures",
                subject,
                "ReportBatchItemFailures" in types,
                "FunctionResponseTypes includes ReportBatchItemFailures"
                if "ReportBatchItemFailures" in types
                else "FunctionResponseTypes lacks ReportBatchItemFailures: a failed message "
                "re-delivers the whole batch",
            )
            size = int(m.get("BatchSize", 10))
            window = int(m.get("MaximumBatchingWindowInSeconds", 0))
            problems = []
            if size > rc.max_batch_size:
                problems.append(f"batch size {size} > {rc.max_batch_size}")
            if window > rc.max_batching_window_seconds:
                problems.append(f"batching window {window}s > {rc.max_batching_window_seconds}s")
            r.add(
                "esm-batching",
                subject,
                not problems,
                "; ".join(problems)
                or f"batch size {size} <= {rc.max_batch_size}, window {window}s <= "
                f"{rc.max_batching_window_seconds}s",
            )
            attrs = _queue(c, src, cache)
            if attrs is None:
                r.add("redrive", qname, False, f"queue {qname} does not exist")
                continue
            vis = int(attrs.get("VisibilityTimeout", "30"))
            need = rc.visibility_timeout_factor * timeout
            r.add(
                "visibility-timeout",
                qname,
                vis >= need,
                f"visibility timeout {vis}s {'>=' if vis >= need else '<'} "
                f"{rc.visibility_timeout_factor:g} x {f.target}'s timeout {timeout}s = {need:g}s",
            )
            policy = attrs.get("RedrivePolicy")
            target = None
            if policy:
                try:
                    target = json.loads(policy).get("deadLetterTargetArn")
                except ValueError:
                    target = None
            if not target:
                r.add(
                    "redrive",
                    qname,
                    False,
                    "no redrive policy: a message that keeps failing is lost",
                )
                continue
            dlq = _queue(c, str(target), cache)
            if dlq is None:
                r.add(
                    "redrive",
                    qname,
                    False,
                    f"redrive target {_name_of(str(target))} does not exist",
                )
                continue
            r.add("redrive", qname, True, f"redrives to {_name_of(str(target))}")
            dlqs[str(target)] = dlq
    for arn, attrs in sorted(dlqs.items()):
        days = int((attrs or {}).get("MessageRetentionPeriod", "345600")) / 86400
        r.add(
            "dlq-retention",
            _name_of(arn),
            days >= rc.dlq_min_retention_days,
            f"keeps messages {days:g} days ({'>=' if days >= rc.dlq_min_retention_days else '<'} "
            f"{rc.dlq_min_retention_days})",
        )
    return dlqs


def _sns(r: _Review, c: Clients, fns: list[_Function]) -> set[str]:
    topics: set[str] = set()
    for f in fns:
        for s in f.subscriptions:
            topic = str(s.get("TopicArn", ""))
            topics.add(topic)
            subject = f"{f.target}<-{_name_of(topic)}"
            found = []
            dest = ((f.invoke_config or {}).get("DestinationConfig") or {}).get("OnFailure") or {}
            if dest.get("Destination"):
                found.append(f"on-failure destination {_name_of(str(dest['Destination']))}")
            dl = (f.config.get("DeadLetterConfig") or {}).get("TargetArn")
            if dl:
                found.append(f"function DLQ {_name_of(str(dl))}")
            arn = s.get("SubscriptionArn")
            if isinstance(arn, str) and arn.startswith("arn:"):
                attrs = _call(
                    f"subscription {arn}", c.sns.get_subscription_attributes, SubscriptionArn=arn
                ).get("Attributes", {})
                rp = attrs.get("RedrivePolicy")
                if rp:
                    try:
                        tgt = json.loads(rp).get("deadLetterTargetArn")
                    except ValueError:
                        tgt = None
                    if tgt:
                        found.append(f"subscription DLQ {_name_of(str(tgt))}")
            r.add(
                "sns-failure-destination",
                subject,
                bool(found),
                ", ".join(found)
                or "no on-failure destination, function DLQ or subscription DLQ: a failed "
                "event is dropped after Lambda's retries",
            )
    return topics


def _dims(a: dict[str, Any]) -> dict[str, str]:
    return {str(d["Name"]): str(d["Value"]) for d in a.get("Dimensions") or []}


def _actions(a: dict[str, Any]) -> bool:
    return bool(a.get("ActionsEnabled", True)) and bool(a.get("AlarmActions"))


def _alarm_row(
    r: _Review,
    kind: str,
    subject: str,
    candidates: Iterable[dict[str, Any]],
    fits: Callable[[dict[str, Any]], str | None],
    missing: str,
) -> None:
    """Pass when one candidate alarm fits (fits() returns None); else the closest reason."""
    reasons = []
    for a in candidates:
        problem = fits(a)
        if problem is None:
            r.add(kind, subject, True, f"alarm {a['AlarmName']}")
            return
        reasons.append(f"alarm {a['AlarmName']}: {problem}")
    r.add(kind, subject, False, "; ".join(reasons) or missing)


def _threshold_check(
    a: dict[str, Any], *, limit: float, period: int | None, stat: str | None
) -> str | None:
    if a.get("ComparisonOperator") not in _GREATER:
        return f"compares {a.get('ComparisonOperator')}, not greater-than"
    if float(a.get("Threshold", 0)) > limit:
        return f"threshold {a.get('Threshold'):g} > {limit:g}"
    if period is not None and int(a.get("Period", 0)) * int(a.get("EvaluationPeriods", 1)) > period:
        return f"window {int(a.get('Period', 0)) * int(a.get('EvaluationPeriods', 1))}s > {period}s"
    if stat is not None and a.get("ExtendedStatistic") != stat:
        return f"statistic {a.get('ExtendedStatistic') or a.get('Statistic')}, not {stat}"
    if not _actions(a):
        return "no alarm actions (or actions disabled)"
    return None


def _alarms(
    r: _Review,
    alarms: list[dict[str, Any]],
    targets: dict[str, str],
    dlqs: dict[str, dict[str, str] | None],
    topics: set[str],
) -> None:
    rc = r.rc

    def series(service: str, target: str, a: dict[str, Any]) -> str | None:
        if a.get("Namespace") != r.namespace:
            return f"namespace {a.get('Namespace')!r}, the handlers emit to {r.namespace!r}"
        dims = _dims(a)
        if VERSION_KEY in dims:
            return f"watches version {dims[VERSION_KEY]} only (goes blind after the next promotion)"
        if not dims or not set(dims) <= VERSION_FREE_KEYS:
            return f"dimensions {sorted(dims)} are not a series the handlers emit"
        if "service" not in dims or dims["service"] != service:
            return f"service {dims.get('service')!r}, not {service!r}"
        if "FunctionName" in dims and dims["FunctionName"] != target:
            return f"FunctionName {dims['FunctionName']!r}, not {target!r}"
        return None

    for spec in rc.alarms:
        kind = f"alarm-{spec.name}"
        target = targets.get(spec.function)
        if target is None:
            r.add(
                kind,
                spec.metric,
                False,
                f"[readiness] alarm {spec.name}: function {spec.function!r} is not in "
                f"[environments.{r.env}].functions",
            )
            continue
        _alarm_row(
            r,
            kind,
            spec.metric,
            [a for a in alarms if a.get("MetricName") == spec.metric],
            functools.partial(
                _handler_fit,
                functools.partial(series, spec.function, target),
                limit=spec.threshold,
                period=spec.period_seconds,
                stat=spec.statistic,
            ),
            f"no alarm on {spec.metric} in {r.namespace}",
        )
    for topic in sorted(topics):
        name = _name_of(topic)
        cands = [
            a
            for a in alarms
            if a.get("Namespace") == "AWS/SNS"
            and a.get("MetricName") == "NumberOfNotificationsFailed"
            and _dims(a).get("TopicName") == name
        ]
        _alarm_row(
            r,
            "alarm-sns-failures",
            name,
            cands,
            lambda a: _threshold_check(
                a, limit=rc.sns_failures_threshold, period=rc.sns_failures_period_seconds, stat=None
            ),
            f"no alarm on AWS/SNS NumberOfNotificationsFailed for topic {name}",
        )
    for arn in sorted(dlqs):
        name = _name_of(arn)
        cands = [
            a
            for a in alarms
            if a.get("Namespace") == "AWS/SQS"
            and a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and _dims(a).get("QueueName") == name
        ]
        _alarm_row(
            r,
            "alarm-dlq-depth",
            name,
            cands,
            lambda a: _threshold_check(a, limit=rc.dlq_depth_threshold, period=None, stat=None),
            f"no alarm on AWS/SQS ApproximateNumberOfMessagesVisible for DLQ {name}",
        )


def _handler_fit(
    series: Callable[[dict[str, Any]], str | None],
    a: dict[str, Any],
    *,
    limit: float,
    period: int | None,
    stat: str | None,
) -> str | None:
    return series(a) or _threshold_check(a, limit=limit, period=period, stat=stat)


def _function_settings(r: _Review, fns: list[_Function]) -> None:
    rc = r.rc
    arch = _ARCH.get(r.cfg.image.platform, "x86_64")
    for f in fns:
        mem = int(f.config.get("MemorySize", 128))
        r.add(
            "memory",
            f.target,
            mem >= rc.min_memory_mb,
            f"{mem} MB ({'>=' if mem >= rc.min_memory_mb else '<'} {rc.min_memory_mb} MB)",
        )
        t = int(f.config.get("Timeout", 3))
        r.add(
            "timeout",
            f.target,
            t <= rc.max_timeout_seconds,
            f"{t}s ({'<=' if t <= rc.max_timeout_seconds else '>'} {rc.max_timeout_seconds}s)",
        )
        if rc.reserved_concurrency:
            r.add(
                "reserved-concurrency",
                f.target,
                f.concurrency is not None,
                f"reserved concurrency {f.concurrency}"
                if f.concurrency is not None
                else "no reserved concurrency: one function can starve the others",
            )
        archs = f.config.get("Architectures") or ["x86_64"]
        r.add(
            "architecture",
            f.target,
            archs == [arch],
            f"{', '.join(archs)} ({'matches' if archs == [arch] else 'differs from'} the image's "
            f"{r.cfg.image.platform})",
        )
        if rc.tracing:
            mode = (f.config.get("TracingConfig") or {}).get("Mode", "PassThrough")
            r.add("tracing", f.target, mode == "Active", f"X-Ray tracing {mode}")


def _ecr(r: _Review, c: Clients, fns: list[_Function]) -> None:
    if not r.rc.ecr_scan_on_push:
        return
    from botocore.exceptions import ClientError

    repos = sorted({repo for f in fns if (repo := _image_digest(f.code)[0])})
    if not repos and r.cfg.image.registry and not r.cfg.image.registry.startswith("oci:"):
        repos = [r.cfg.image.registry]
    for repo in repos:
        m = _ECR.match(repo)
        if not m:
            r.add("ecr-scan-on-push", repo, False, "not an ECR repository: no scan on push")
            continue
        account, _, name = m.groups()
        try:
            got = c.ecr.describe_repositories(registryId=account, repositoryNames=[name])
        except ClientError as exc:
            if aws_error_code(exc) == "RepositoryNotFoundException":
                r.add("ecr-scan-on-push", name, False, f"repository {name} not found")
                continue
            raise RemoteError(
                f"readiness: cannot read ECR {name}: {aws_error_message(exc)}"
            ) from None
        scan = bool(
            (got["repositories"][0].get("imageScanningConfiguration") or {}).get("scanOnPush")
        )
        r.add(
            "ecr-scan-on-push",
            name,
            scan,
            "scan on push enabled" if scan else "scan on push disabled",
        )


def _namespace(r: _Review, fns: list[_Function], alarms: list[dict[str, Any]]) -> None:
    for f in fns:
        env = (f.config.get("Environment") or {}).get("Variables") or {}
        ns = (
            env.get("METRICS_NAMESPACE")
            or env.get("POWERTOOLS_METRICS_NAMESPACE")
            or DEFAULT_NAMESPACE
        )
        if ns != r.namespace:
            r.add(
                "metric-namespace",
                f.target,
                False,
                f"emits to {ns!r}, the alarms and the review watch {r.namespace!r}",
            )
        else:
            r.add("metric-namespace", f.target, True, f"emits to {ns!r}")


# --- declared triggers -------------------------------------------------------------------
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KIND = {"sqs": "SQS event source mapping", "sns": "SNS subscription", "eventbridge": "rule"}


def _expand(text: str, variables: dict[str, str], declared: dict[str, str], scope: str) -> str:
    """`${VAR}` filled as `release iam --function` fills it: the environment's variables
    of the function, else `[iam].variables`; ValueError names the variable missing."""

    def one(m: re.Match[str]) -> str:
        value = variables.get(m.group(1), declared.get(m.group(1)))
        if not value:
            why = "is empty" if value == "" else f"is set in neither {scope} nor [iam].variables"
            raise ValueError(f"${{{m.group(1)}}} {why}")
        return value

    return _VAR.sub(one, text)


def _short(value: str) -> str:
    """The name in a name, an ARN (queue, topic, rule/[BUS/]NAME) or a queue URL."""
    return value.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def _matches(declared: str, live_arn: str) -> bool:
    if declared.startswith("arn:"):
        return declared == live_arn or (
            ":rule/" in declared and _short(declared) == _short(live_arn)
        )
    return _short(declared) == _short(live_arn)


def _qualifier(function_arn: str) -> str | None:
    parts = function_arn.split(":")
    return parts[7] if len(parts) > 7 else None


def _live_triggers(
    c: Clients, f: _Function, mappings: list[dict[str, Any]], subs: list[dict[str, Any]]
) -> list[tuple[str, str, str | None]]:
    """(type, source ARN or rule name, qualifier invoked: None = the bare function) of every
    SQS mapping, SNS subscription and EventBridge rule (default bus) that invokes `f`."""
    out: list[tuple[str, str, str | None]] = []
    for m in mappings:
        fa, src = str(m.get("FunctionArn", "")), str(m.get("EventSourceArn", ""))
        if _base_name(fa) == f.target and src.startswith("arn:aws:sqs:"):
            out.append(("sqs", src, _qualifier(fa)))
    for s in subs:
        ep = str(s.get("Endpoint", ""))
        if s.get("Protocol") == "lambda" and _base_name(ep) == f.target:
            out.append(("sns", str(s.get("TopicArn", "")), _qualifier(ep)))
    base = ":".join(f.arn.split(":")[:7])
    for arn, qual in ((base, None), (f"{base}:{f.alias}", f.alias)):
        for rule in _pages(
            f"EventBridge rules of {f.target}",
            c.events,
            "list_rule_names_by_target",
            "RuleNames",
            TargetArn=arn,
        ):
            out.append(("eventbridge", str(rule), qual))
    return out


def _on(qual: str | None) -> str:
    if qual is None:
        return "the bare function ($LATEST)"
    return f"version {qual}" if qual.isdigit() else f"alias {qual}"


def _triggers(
    r: _Review,
    c: Clients,
    targets: dict[str, str],
    fns: list[_Function],
    mappings: list[dict[str, Any]],
    subs: list[dict[str, Any]],
) -> None:
    by_name = {f.name: f for f in fns}
    scope = f"[environments.{r.env}].variables"
    for name, spec in sorted(r.rc.functions.items()):
        target = targets.get(name)
        if target is None:
            r.add(
                "trigger-declared",
                name,
                False,
                f"[readiness.functions.{name}]: {name!r} is not in "
                f"[environments.{r.env}].functions",
            )
            continue
        f = by_name.get(name)
        alias = r.cfg.environment(r.env).alias
        live = _live_triggers(c, f, mappings, subs) if f else []
        variables = r.cfg.environment(r.env).variables_of(name)
        used: set[int] = set()
        for t in spec.triggers:
            try:
                value = _expand(t.source, variables, r.cfg.iam.variables, scope)
            except ValueError as exc:
                r.add(
                    "trigger-declared",
                    f"{target}<-{t.type}:{t.source}",
                    False,
                    f"[readiness.functions.{name}] {t.type} trigger {t.source}: {exc}",
                )
                continue
            subject = f"{target}<-{t.type}:{_short(value)}"
            if f is None:
                r.add(
                    "trigger-declared",
                    subject,
                    False,
                    f"function {target}:{alias} ([functions] {name}) does not exist in Lambda",
                )
                continue
            hits = [
                i for i, (ty, src, _q) in enumerate(live) if ty == t.type and _matches(value, src)
            ]
            used.update(hits)
            serving = {alias, str(f.config.get("Version", alias))}
            on_alias = sorted({_on(live[i][2]) for i in hits if live[i][2] in serving})
            off = sorted({_on(live[i][2]) for i in hits if live[i][2] not in serving})
            if on_alias and not off:
                r.add(
                    "trigger-declared",
                    subject,
                    True,
                    f"{_KIND[t.type]} on {' and '.join(on_alias)} (alias {alias} serves "
                    f"version {f.config.get('Version')})",
                )
            elif hits:
                r.add(
                    "trigger-declared",
                    subject,
                    False,
                    f"{_KIND[t.type]} from {_short(value)} "
                    f"{'also ' if on_alias else ''}invokes {', '.join(off)}, not alias {alias} "
                    "(nor the version it serves): that code is never canaried nor rolled back",
                )
            else:
                r.add(
                    "trigger-declared",
                    subject,
                    False,
                    f"no {_KIND[t.type]} from {_short(value)} to {target}",
                )
        if f is None:
            continue
        stray = sorted(
            f"{ty}:{_short(src)} (on {_on(q)})"
            for i, (ty, src, q) in enumerate(live)
            if i not in used
        )
        r.add(
            "trigger-undeclared",
            target,
            not stray,
            f"live but not in [readiness.functions.{name}].triggers: {', '.join(stray)}"
            if stray
            else f"every live SQS, SNS and EventBridge trigger is declared ({len(live)})",
        )
