"""`release readiness` against a moto server: a ready environment (every row passes, exit 0)
and, one case per row kind, the same environment with exactly that one thing wrong: that
row fails with its own reason and no row of another kind fails (exit 1).

The environment is built through the AWS APIs (Lambda, SQS, SNS, CloudWatch, ECR) as an
operator would; the ledger's live digest is written by the real ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from release.config import READINESS_ROWS, load
from release.ledger import open_ledger
from release.readiness import collect
from release.readiness.render import to_html, to_markdown
from tests.deploy.conftest import (
    ECR,
    FUNCTIONS,
    HANDLERS,
    boto,
    digest_of,
    push_images,
    write_config,
)
from tests.fixtures.tools import run_cli

pytestmark = pytest.mark.aws

LIVE = digest_of("d")
NS = "Release/Handlers"
ACTION = "arn:aws:sns:us-east-1:123456789012:ops-pager"
QUEUES = {"analysis": "news-items", "scorer": "scoring-jobs", "remediator": "findings"}


def _queue(sqs: Any, name: str, **attrs: str) -> str:
    url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
    return str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )


#: the example's handler alarms, as its release.prod.toml declares them
ALARMS = """
[[readiness.alarms]]
name = "analysis-errors"
metric = "AnalysisErrors"
function = "analysis"
threshold = 3
period_seconds = 300

[[readiness.alarms]]
name = "latency"
metric = "InferenceLatencyMs"
function = "analysis"
threshold = 500
statistic = "p95"

[[readiness.alarms]]
name = "model-load-errors"
metric = "ModelLoadErrors"
function = "analysis"
threshold = 0
"""
ALARM_KINDS = ("alarm-analysis-errors", "alarm-latency", "alarm-model-load-errors")

#: the example's triggers, as its release.prod.toml declares them
TRIGGERS = """
[readiness.functions.analysis]
triggers = [{ type = "sqs", queue = "news-items" }, { type = "sns", topic = "news" }]
[readiness.functions.scorer]
triggers = [{ type = "sqs", queue = "scoring-jobs" }]
[readiness.functions.remediator]
triggers = [{ type = "sqs", queue = "findings" }]
"""


def build_env(root: Path, broken: str | None = None) -> Path:
    """The ready environment of the review; `broken` names the one thing done wrong."""
    iam, lam, sqs, sns, cw, ecr = (
        boto(s) for s in ("iam", "lambda", "sqs", "sns", "cloudwatch", "ecr")
    )
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    ecr.create_repository(
        repositoryName="app",
        imageScanningConfiguration={"scanOnPush": broken != "ecr-scan-on-push"},
    )
    manifest = {  # moto's Lambda resolves an image function in its ECR, as Lambda does
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": LIVE,
            "size": 2,
        },
        "layers": [],
    }
    ecr.put_image(repositoryName="app", imageManifest=json.dumps(manifest), imageDigest=LIVE)
    timeout = 400 if broken == "timeout" else 60
    arns = {}
    for name, fn in FUNCTIONS.items():
        env_vars = {
            "METRICS_NAMESPACE": "Other/NS"
            if broken == "metric-namespace" and name == "scorer"
            else NS
        }
        arns[name] = lam.create_function(
            FunctionName=fn,
            Role=role,
            PackageType="Image",
            Code={"ImageUri": f"{ECR}@{LIVE}"},
            ImageConfig={"Command": [HANDLERS[name]]},
            MemorySize=512 if broken == "memory" and name == "analysis" else 2048,
            Timeout=timeout,
            TracingConfig={
                "Mode": "PassThrough" if broken == "tracing" and name == "remediator" else "Active"
            },
            Architectures=[
                "arm64" if broken == "architecture" and name == "analysis" else "x86_64"
            ],
            Environment={"Variables": env_vars},
            Publish=True,
        )["FunctionArn"]
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
        if not (broken == "reserved-concurrency" and name == "scorer"):
            lam.put_function_concurrency(FunctionName=fn, ReservedConcurrentExecutions=20)
    dlq_arns = {}
    for name, q in QUEUES.items():
        if broken == "trigger-declared" and name == "scorer":  # the queue feeds nothing
            continue
        retention = str(4 * 86400 if broken == "dlq-retention" and name == "scorer" else 14 * 86400)
        dlq_arns[name] = _queue(sqs, f"{q}-dlq", MessageRetentionPeriod=retention)
        attrs = {
            "VisibilityTimeout": str(
                30 if broken == "visibility-timeout" and name == "analysis" else 6 * timeout
            )
        }
        if not (broken == "redrive" and name == "remediator"):
            attrs["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": dlq_arns[name], "maxReceiveCount": "5"}
            )
        src = _queue(sqs, q, **attrs)
        lam.create_event_source_mapping(
            EventSourceArn=src,
            FunctionName=f"{FUNCTIONS[name]}:live",
            BatchSize=100 if broken == "esm-batching" and name == "scorer" else 10,
            MaximumBatchingWindowInSeconds=5,
            FunctionResponseTypes=[]
            if broken == "esm-report-failures" and name == "analysis"
            else ["ReportBatchItemFailures"],
        )
    topic = sns.create_topic(Name="news")["TopicArn"]
    sub_attrs = {}
    if broken != "sns-failure-destination":
        sub_attrs["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dlq_arns["analysis"]})
        lam.put_function_event_invoke_config(
            FunctionName=FUNCTIONS["analysis"],
            Qualifier="live",
            DestinationConfig={"OnFailure": {"Destination": dlq_arns["analysis"]}},
        )
    sns.subscribe(
        TopicArn=topic, Protocol="lambda", Endpoint=f"{arns['analysis']}:live", Attributes=sub_attrs
    )

    def alarm(name: str, **kw: Any) -> None:
        base = {
            "AlarmName": name,
            "Period": 300,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "AlarmActions": [ACTION],
            "Statistic": "Sum",
        }
        base.update(kw)
        if "ExtendedStatistic" in base:
            base.pop("Statistic")
        if base.get("AlarmActions") == []:
            base.pop("AlarmActions")
        cw.put_metric_alarm(**base)

    fdims = [
        {"Name": "service", "Value": "analysis"},
        {"Name": "FunctionName", "Value": FUNCTIONS["analysis"]},
    ]
    if broken == "alarm-analysis-errors":  # pinned to one version: blind after the next promotion
        alarm(
            "analysis-errors",
            Namespace=NS,
            MetricName="AnalysisErrors",
            Threshold=3,
            Dimensions=[*fdims, {"Name": "ExecutedVersion", "Value": "1"}],
        )
    else:
        alarm(
            "analysis-errors",
            Namespace=NS,
            MetricName="AnalysisErrors",
            Threshold=3,
            Dimensions=fdims,
        )
    alarm(
        "analysis-latency",
        Namespace=NS,
        MetricName="InferenceLatencyMs",
        Threshold=500,
        Dimensions=[{"Name": "service", "Value": "analysis"}],
        **({"Statistic": "Average"} if broken == "alarm-latency" else {"ExtendedStatistic": "p95"}),
    )
    if broken != "alarm-model-load-errors":
        alarm(
            "model-load-errors",
            Namespace=NS,
            MetricName="ModelLoadErrors",
            Threshold=0,
            Dimensions=fdims,
        )
    alarm(
        "sns-delivery-failures",
        Namespace="AWS/SNS",
        MetricName="NumberOfNotificationsFailed",
        Threshold=5,
        Dimensions=[{"Name": "TopicName", "Value": "news"}],
        AlarmActions=[] if broken == "alarm-sns-failures" else [ACTION],
    )
    for name, q in QUEUES.items():
        alarm(
            f"{q}-dlq-depth",
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Threshold=1000 if broken == "alarm-dlq-depth" and name == "remediator" else 100,
            Dimensions=[{"Name": "QueueName", "Value": f"{q}-dlq"}],
        )
    if broken == "trigger-undeclared":  # a rule invokes the remediator, nobody declared it
        boto("events").put_rule(Name="stray-sweep", ScheduleExpression="rate(1 hour)")
        boto("events").put_targets(
            Rule="stray-sweep", Targets=[{"Id": "1", "Arn": f"{arns['remediator']}:live"}]
        )
    cfg = write_config(root, target="lambda")
    text = cfg.read_text() + ALARMS + TRIGGERS
    if broken == "function":  # configured, never created in Lambda
        text = text.replace(
            'analysis = "handlers.analysis.lambda_handler"',
            'analysis = "handlers.analysis.lambda_handler"\nonboarding = "handlers.onboarding.lambda_handler"',
        ).replace("functions = { ", 'functions = { onboarding = "ma-onboarding", ')
    cfg.write_text(text)
    open_ledger(load(cfg)).append(
        "prod", "promote", digest_of("e") if broken == "live-digest" else LIVE
    )
    return cfg


#: what the one failing row says in each broken environment
EXPECTED = {
    "live-digest": f"runs {LIVE}, the ledger's live digest is {digest_of('e')}",
    "esm-report-failures": "FunctionResponseTypes lacks ReportBatchItemFailures",
    "esm-batching": "batch size 100 > 10",
    "redrive": "no redrive policy: a message that keeps failing is lost",
    "dlq-retention": "keeps messages 4 days (< 14)",
    "visibility-timeout": "visibility timeout 30s < 6 x ma-analysis's timeout 60s = 360s",
    "sns-failure-destination": "no on-failure destination, function DLQ or subscription DLQ",
    "alarm-analysis-errors": "watches version 1 only (goes blind after the next promotion)",
    "alarm-latency": "statistic Average, not p95",
    "alarm-model-load-errors": f"no alarm on ModelLoadErrors in {NS}",
    "alarm-sns-failures": "no alarm actions (or actions disabled)",
    "function": "[environments.prod].functions.onboarding = 'ma-onboarding': no such function "
    "or alias 'live' in Lambda",
    "alarm-dlq-depth": "threshold 1000 > 100",
    "memory": "512 MB (< 2048 MB)",
    "timeout": "400s (> 300s)",
    "reserved-concurrency": "no reserved concurrency",
    "architecture": "arm64 (differs from the image's linux/amd64)",
    "tracing": "X-Ray tracing PassThrough",
    "ecr-scan-on-push": "scan on push disabled",
    "metric-namespace": f"emits to 'Other/NS', the alarms and the review watch '{NS}'",
    "trigger-declared": "no SQS event source mapping from scoring-jobs to ma-scorer",
    "trigger-undeclared": "live but not in [readiness.functions.remediator].triggers: "
    "eventbridge:stray-sweep (on alias live)",
}


def test_every_row_kind_has_a_broken_case() -> None:
    assert set(EXPECTED) == set(READINESS_ROWS) | set(ALARM_KINDS)


def test_ready_environment_passes_every_row(aws_env: dict[str, str], tmp_path: Path) -> None:
    cfg = build_env(tmp_path)
    report = collect(load(cfg), "prod")
    assert report.ready, [r.to_dict() for r in report.rows if r.status == "fail"]
    # every row of the review, the declared alarms' included
    assert {r.kind for r in report.rows} == set(READINESS_ROWS) | set(ALARM_KINDS)
    kinds = [r.kind for r in report.rows]
    assert kinds.count("live-digest") == kinds.count("memory") == len(FUNCTIONS)
    assert (
        kinds.count("redrive")
        == kinds.count("dlq-retention")
        == kinds.count("alarm-dlq-depth")
        == 3
    )
    assert report.live_digest == LIVE
    r = run_cli("readiness", "--env", "prod", "--config", cfg, env=aws_env)
    assert r.code == 0, r.stderr
    assert r.stdout.startswith("# Readiness: prod\n\n**READY: every required row passes**")
    assert "readiness: prod is ready" in r.stderr


@pytest.mark.parametrize("broken", sorted(EXPECTED))
def test_each_misconfiguration_fails_its_own_row(
    aws_env: dict[str, str], tmp_path: Path, broken: str
) -> None:
    cfg = build_env(tmp_path, broken)
    report = collect(load(cfg), "prod")
    failed = [r for r in report.rows if r.status == "fail"]
    assert failed and {r.kind for r in failed} == {broken}, [r.to_dict() for r in failed]
    assert all(EXPECTED[broken] in r.why for r in failed), [r.why for r in failed]
    assert not report.ready
    out = tmp_path / "readiness.json"
    r = run_cli(
        "readiness", "--env", "prod", "--config", cfg, "--format", "json", "-o", out, env=aws_env
    )
    assert r.code == 1
    assert r.stderr.splitlines()[-len(failed) - 1].startswith(
        f"release: error: prod is not ready: {len(failed)} required row(s) fail"
    )
    doc = json.loads(out.read_text())
    assert doc["ready"] is False and doc["summary"]["failed_required"] == len(failed)
    assert {row["id"] for row in doc["rows"] if row["status"] == "fail"} == {r.id for r in failed}


def test_optional_rows_are_reported_but_do_not_fail(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    cfg = build_env(tmp_path, "tracing")
    cfg.write_text(cfg.read_text() + '\n[readiness]\noptional = ["tracing"]\n')
    report = collect(load(cfg), "prod")
    assert report.ready
    row = next(r for r in report.rows if r.status == "fail")
    assert (row.kind, row.required) == ("tracing", False)
    assert run_cli("readiness", "--env", "prod", "--config", cfg, env=aws_env).code == 0


def test_thresholds_come_from_release_toml(aws_env: dict[str, str], tmp_path: Path) -> None:
    cfg = build_env(tmp_path)
    text = cfg.read_text().replace("threshold = 3\n", "threshold = 1\n")
    cfg.write_text(text + "\n[readiness]\nmin_memory_mb = 4096\n")
    report = collect(load(cfg), "prod")
    failed = {r.id: r.why for r in report.rows if r.status == "fail"}
    assert failed == {
        **{f"memory:{fn}": "2048 MB (< 4096 MB)" for fn in FUNCTIONS.values()},
        "alarm-analysis-errors:AnalysisErrors": "alarm analysis-errors: threshold 3 > 1",
    }


def test_renderers_and_bad_input(aws_env: dict[str, str], tmp_path: Path) -> None:
    cfg = build_env(tmp_path, "memory")
    report = collect(load(cfg), "prod")
    md = to_markdown(report)
    assert "**NOT READY: 1 required row failing**" in md
    assert "| ❌ fail | memory | `ma-analysis` | 512 MB (< 2048 MB) | yes |" in md
    html = to_html(report)
    assert '<td class="fail">fail</td><td>memory</td><td><code>ma-analysis</code></td>' in html
    assert "<script" not in html
    out = tmp_path / "r.html"
    r = run_cli(
        "readiness", "--env", "prod", "--config", cfg, "--format", "html", "-o", out, env=aws_env
    )
    assert r.code == 1 and out.read_text() == html.replace(report.generated, _generated(out))
    r = run_cli("readiness", "--env", "nope", "--config", cfg, env=aws_env)
    assert r.code == 2 and "no [environments.nope]" in r.stderr and "Traceback" not in r.stderr
    cfg.write_text(cfg.read_text() + '\n[readiness]\noptional = ["colour"]\n')
    r = run_cli("readiness", "--env", "prod", "--config", cfg, env=aws_env)
    assert r.code == 2 and "unknown row kind(s) colour" in r.stderr


def _generated(html_file: Path) -> str:
    import re

    m = re.search(r"Generated (\S+);", html_file.read_text())
    assert m
    return m.group(1)


def test_aws_unreachable_is_exit_3(aws_env: dict[str, str], tmp_path: Path) -> None:
    cfg = build_env(tmp_path)
    r = run_cli(
        "readiness",
        "--env",
        "prod",
        "--config",
        cfg,
        env={**aws_env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"},
    )
    assert r.code == 3 and r.stderr.startswith("release: error: readiness: cannot read")
    assert "Traceback" not in r.stderr


def test_a_local_environment_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    r = run_cli("readiness", "--env", "prod", "--config", cfg)
    assert r.code == 2
    assert "release: error: [environments.prod] is a 'local' target" in r.stderr


# --- the gate: a ready environment before promote, when configured -----------------------


def _gate(cfg_path: Path) -> Any:
    from release.digest import parse_reference
    from release.promote import gate
    from tests.deploy.conftest import file_provider, good_evidence, put_evidence

    new = digest_of("f")
    put_evidence(cfg_path.parent, good_evidence(new))
    return gate(load(cfg_path), parse_reference(f"{ECR}@{new}"), "prod", file_provider).decision


def test_gate_requires_a_ready_environment_only_when_configured(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    cfg = build_env(tmp_path, "tracing")
    assert _gate(cfg).allow  # off by default: readiness is not part of the decision
    cfg.write_text(cfg.read_text() + "\n[readiness]\ngate = true\n")
    d = _gate(cfg)
    assert not d.allow
    assert d.reasons == ("readiness: tracing:ma-remediator: X-Ray tracing PassThrough",)
    # promote re-gates: the same reason stops the promotion, nothing is touched
    from tests.deploy.conftest import cli_env, run_gated

    r = run_gated(
        "promote",
        f"{ECR}@{digest_of('f')}",
        "--env",
        "prod",
        "--config",
        cfg,
        env={**aws_env, **cli_env()},
    )
    assert r.code == 1
    assert "readiness: tracing:ma-remediator: X-Ray tracing PassThrough" in r.stderr
    code = boto("lambda").get_function(FunctionName="ma-analysis", Qualifier="live")["Code"]
    assert code["ImageUri"].endswith(LIVE)


def test_gate_allows_when_the_environment_is_ready(aws_env: dict[str, str], tmp_path: Path) -> None:
    cfg = build_env(tmp_path)
    cfg.write_text(cfg.read_text() + "\n[readiness]\ngate = true\n")
    d = _gate(cfg)
    assert d.allow, d.reasons


def test_another_platform_is_checked_for_its_own_alarms_only(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    """The second platform (tests/platforms/tickets: `classify`, `health`) declares its own
    alarm; nothing of the example's (AnalysisErrors, an `analysis` function) is asked for,
    and a declared function the environment does not have is a failing row naming it."""
    lam, cw, ecr, iam = (boto(s) for s in ("lambda", "cloudwatch", "ecr", "iam"))
    role = iam.create_role(RoleName="t-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    ecr.create_repository(repositoryName="app")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": LIVE,
            "size": 2,
        },
        "layers": [],
    }
    ecr.put_image(repositoryName="app", imageManifest=json.dumps(manifest), imageDigest=LIVE)
    lam.create_function(
        FunctionName="tickets-classify",
        Role=role,
        PackageType="Image",
        Code={"ImageUri": f"{ECR}@{LIVE}"},
        Publish=True,
    )
    lam.create_alias(FunctionName="tickets-classify", Name="live", FunctionVersion="1")
    cw.put_metric_alarm(
        AlarmName="escalations-failing",
        Namespace="Tickets",
        MetricName="EscalationErrors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[ACTION],
        Dimensions=[{"Name": "service", "Value": "classify"}],
    )
    cfg = tmp_path / "release.toml"
    cfg.write_text(
        f"""
[model]
path = "ml/urgency"
[image]
base = "oci:base@{digest_of("0")}"
registry = "{ECR}"
[code]
package = "svc"
[functions]
classify = "svc.classify.handler"
health = "svc.health.handler"
[environments.prod]
target = "lambda"
functions = {{ classify = "tickets-classify", health = "tickets-health" }}
[readiness]
metrics_namespace = "Tickets"
[[readiness.alarms]]
name = "escalation-errors"
metric = "EscalationErrors"
function = "classify"
threshold = 1
[[readiness.alarms]]
name = "health-errors"
metric = "HealthErrors"
function = "health"
threshold = 0
"""
    )
    report = collect(load(cfg), "prod", live_digest=LIVE)
    rows = {
        r.id: (r.status, r.why) for r in report.rows if r.kind.startswith(("alarm-", "function"))
    }
    assert (
        rows
        == {
            "function:tickets-classify:live": (
                "pass",
                "arn:aws:lambda:us-east-1:123456789012:function:tickets-classify:1",  # the alias's version
            ),
            "function:tickets-health:live": (
                "fail",
                "[environments.prod].functions.health = 'tickets-health': no such function or "
                "alias 'live' in Lambda",
            ),
            "alarm-escalation-errors:EscalationErrors": ("pass", "alarm escalations-failing"),
            "alarm-health-errors:HealthErrors": ("fail", "no alarm on HealthErrors in Tickets"),
        }
    )
    r = run_cli("readiness", "--env", "prod", "--config", cfg, env=aws_env)
    assert r.code == 1 and "AnalysisErrors" not in r.stdout + r.stderr


def test_an_alarm_of_an_unknown_function_is_a_config_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, target="lambda")
    cfg.write_text(
        cfg.read_text()
        + '\n[[readiness.alarms]]\nname = "x"\nmetric = "M"\nfunction = "ghost"\nthreshold = 1\n'
    )
    r = run_cli("readiness", "--env", "prod", "--config", cfg)
    assert (r.code, r.stderr.strip()) == (
        2,
        "release: error: release.toml: (top level): [readiness].alarms.0.function: "
        "'ghost' is not in [functions]",
    )


def test_declared_triggers_of_another_platform(aws_env: dict[str, str], tmp_path: Path) -> None:
    """tests/platforms/tickets declares classify's triggers: its queue through a variable of
    the environment (`${TICKETS_QUEUE_URL}`, a URL), two rules, a topic. The mapping on the
    alias and one rule pass; the other rule (by ARN) also targets the bare function and the
    topic subscribes only the bare function ($LATEST, never canaried): both fail; a queue nobody declared is reported; health (configured, not in
    Lambda) and intake (not in the environment) fail naming the function."""
    lam, sqs, sns, events, iam = (boto(s) for s in ("lambda", "sqs", "sns", "events", "iam"))
    role = iam.create_role(RoleName="t-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    push_images("a")
    arn = lam.create_function(
        FunctionName="tickets-classify",
        Role=role,
        PackageType="Image",
        Code={"ImageUri": f"{ECR}@{digest_of('a')}"},
        Publish=True,
    )["FunctionArn"]
    base = arn.rsplit(":", 1)[0] if arn.count(":") > 6 else arn
    lam.create_alias(FunctionName="tickets-classify", Name="live", FunctionVersion="1")
    for q in ("tickets-in", "tickets-stray"):
        lam.create_event_source_mapping(
            EventSourceArn=_queue(sqs, q), FunctionName="tickets-classify:live"
        )
    events.put_rule(Name="tickets-sweep", ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule="tickets-sweep", Targets=[{"Id": "1", "Arn": f"{base}:live"}])
    events.put_rule(Name="tickets-nightly", ScheduleExpression="rate(1 day)")
    events.put_targets(
        Rule="tickets-nightly",
        Targets=[{"Id": "1", "Arn": f"{base}:live"}, {"Id": "2", "Arn": base}],
    )
    topic = sns.create_topic(Name="tickets-new")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=base)
    queue_url = sqs.get_queue_url(QueueName="tickets-in")["QueueUrl"]
    cfg = tmp_path / "release.toml"
    cfg.write_text(
        f"""
[model]
path = "ml/urgency"
[image]
base = "oci:base@{digest_of("0")}"
registry = "{ECR}"
[code]
package = "svc"
[functions]
classify = "svc.classify.handler"
health = "svc.health.handler"
intake = "svc.classify.handler"
[environments.prod]
target = "lambda"
functions = {{ classify = "tickets-classify", health = "tickets-health" }}
variables = {{ TICKETS_QUEUE_URL = "{queue_url}" }}
[readiness.functions.classify]
triggers = [
  {{ type = "sqs", queue = "${{TICKETS_QUEUE_URL}}" }},
  {{ type = "eventbridge", rule = "tickets-sweep" }},
  {{ type = "eventbridge", rule = "arn:aws:events:us-east-1:123456789012:rule/tickets-nightly" }},
  {{ type = "sns", topic = "{topic}" }},
  {{ type = "sqs", queue = "${{ESCALATION_QUEUE_URL}}" }},
]
[readiness.functions.health]
triggers = [{{ type = "eventbridge", rule = "health-ping" }}]
[readiness.functions.intake]
triggers = []
"""
    )
    report = collect(load(cfg), "prod", live_digest=LIVE)
    rows = {r.id: (r.status, r.why) for r in report.rows if r.kind.startswith("trigger-")}
    assert rows == {
        "trigger-declared:tickets-classify<-sqs:tickets-in": (
            "pass",
            "SQS event source mapping on version 1 (alias live serves version 1)",
        ),
        "trigger-declared:tickets-classify<-eventbridge:tickets-sweep": (
            "pass",
            "rule on alias live (alias live serves version 1)",
        ),
        "trigger-declared:tickets-classify<-eventbridge:tickets-nightly": (
            "fail",
            "rule from tickets-nightly also invokes the bare function ($LATEST), not alias "
            "live (nor the version it serves): that code is never canaried nor rolled back",
        ),
        "trigger-declared:tickets-classify<-sns:tickets-new": (
            "fail",
            "SNS subscription from tickets-new invokes the bare function ($LATEST), not alias "
            "live (nor the version it serves): that code is never canaried nor rolled back",
        ),
        "trigger-declared:tickets-classify<-sqs:${ESCALATION_QUEUE_URL}": (
            "fail",
            "[readiness.functions.classify] sqs trigger ${ESCALATION_QUEUE_URL}: "
            "${ESCALATION_QUEUE_URL} is set in neither [environments.prod].variables nor "
            "[iam].variables",
        ),
        "trigger-undeclared:tickets-classify": (
            "fail",
            "live but not in [readiness.functions.classify].triggers: "
            "sqs:tickets-stray (on version 1)",
        ),
        "trigger-declared:tickets-health<-eventbridge:health-ping": (
            "fail",
            "function tickets-health:live ([functions] health) does not exist in Lambda",
        ),
        "trigger-declared:intake": (
            "fail",
            "[readiness.functions.intake]: 'intake' is not in [environments.prod].functions",
        ),
    }
    r = run_cli("readiness", "--env", "prod", "--config", cfg, "--format", "json", env=aws_env)
    assert r.code == 1
    assert "trigger-declared:tickets-health<-eventbridge:health-ping" in r.stdout


def test_a_trigger_of_an_unknown_function_or_shape_is_a_config_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, target="lambda")
    base = cfg.read_text()
    for extra, msg in (
        (
            '\n[readiness.functions.ghost]\ntriggers = [{ type = "sqs", queue = "q" }]\n',
            "(top level): [readiness.functions.ghost]: 'ghost' is not in [functions]",
        ),
        (
            '\n[readiness.functions.scorer]\ntriggers = [{ type = "sqs", topic = "t" }]\n',
            "a sqs trigger takes queue, not topic",
        ),
        (
            '\n[readiness.functions.scorer]\ntriggers = [{ type = "kinesis", queue = "q" }]\n',
            "[readiness].functions.scorer.triggers.0.type: Input should be 'sqs', 'sns' or "
            "'eventbridge'",
        ),
    ):
        cfg.write_text(base + extra)
        r = run_cli("readiness", "--env", "prod", "--config", cfg)
        assert r.code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert msg in r.stderr and "Traceback" not in r.stderr, r.stderr
