"""`release iam`: job policies from the config, function policies from the handlers' AWS
calls (the example's helpers and the second platform's plain boto3, one analysis), the ECR
repository policy; every document accepted by IAM (moto's policy validator) and without
an error from an independent linter (parliament); a call it cannot bind exits 1 naming
its file:line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import REPO, copy_project, run_cli

ACCOUNT, REGION = "123456789012", "eu-west-1"
REPO_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/platform"
SQS = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}"
PLATFORM = REPO / "tests" / "platforms" / "tickets"

CONFIG = f"""
[model]
path = "model/examples/sst2-tiny"
[image]
base = "{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/base@sha256:{"0" * 64}"
registry = "{REPO_URI}"
[functions]
scorer = "handlers.scorer.lambda_handler"
remediator = "handlers.remediator.lambda_handler"
onboarding = "handlers.onboarding.lambda_handler"
analysis = "handlers.analysis.lambda_handler"
[signing]
mode = "awskms:alias/release"
[gate]
vulnerabilities = "ecr"
[environments.prod]
target = "lambda"
functions = {{ scorer = "ma-scorer", remediator = "ma-remediator", onboarding = "ma-onboarding", analysis = "ma-analysis" }}
alarms = ["ma-errors"]
[environments.prod.variables]
ANALYSIS_TABLE = "prod-analysis"
SCORING_QUEUE_URL = "{SQS}/scoring"
FINDINGS_QUEUE_URL = "{SQS}/findings"
DLQ_URL = "{SQS}/analysis-dlq"
[environments.prod.function_variables.remediator]
REMEDIATIONS_TABLE = "prod-remediations"
[ledger]
url = "dynamodb:release-ledger"
[iam.variables]
ENTITIES_TABLE = "entities"
SCORES_TABLE = "posture-scores"
REMEDIATIONS_TABLE = "remediations"
ANALYSIS_ENTITY_INDEX = "entity_id-index"
[[iam.statements]]
sid = "XRay"
actions = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
resources = ["*"]
[[iam.functions.remediator.statements]]
sid = "Idempotency"
actions = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
resources = ["arn:aws:dynamodb:${{Region}}:${{Account}}:table/idempotency"]
[[iam.functions.remediator.statements]]
sid = "BlockPublicBuckets"
actions = ["s3:PutBucketPublicAccessBlock"]
resources = ["arn:aws:s3:::*"]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = copy_project(tmp_path_factory.mktemp("iam") / "p")
    (p / "release.toml").write_text(CONFIG)
    (p / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(REPO / ".github" / "workflows" / "release.yml", p / ".github" / "workflows")
    return p


def iam(project: Path, *args: str) -> dict[str, Any]:
    r = run_cli("iam", *args, cwd=project)
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout))


def grants(doc: dict[str, Any]) -> dict[str, set[str]]:
    """action -> every resource it is allowed on."""
    out: dict[str, set[str]] = {}
    for s in doc["Statement"]:
        assert s["Effect"] == "Allow"
        res = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        for a in s["Action"]:
            out.setdefault(a, set()).update(res)
    return out


def test_promote_job_moves_exactly_the_configured_functions(project: Path) -> None:
    g = grants(iam(project, "--job", "promote", "--env", "prod"))
    fn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
    names = ["ma-scorer", "ma-remediator", "ma-onboarding", "ma-analysis"]
    # code, versions and the alias change through the function's own ARN (no qualifier:
    # the alias actions take none), never a version's or another function's
    for action in ("lambda:UpdateFunctionCode", "lambda:PublishVersion", "lambda:UpdateAlias"):
        assert g[action] == {fn + n for n in names}, action
    # reading back a published version names it: the two read actions on NAME:*
    for action in ("lambda:GetFunction", "lambda:GetFunctionConfiguration"):
        assert g[action] == {fn + n for n in names} | {fn + n + ":*" for n in names}, action
    assert g["lambda:GetAlias"] == {fn + n for n in names}
    assert g["cloudwatch:DescribeAlarms"] == {
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:ma-errors"
    }
    assert g["ecr:DescribeImageScanFindings"] == {
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/platform"
    }
    assert g["dynamodb:PutItem"] == {f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/release-ledger"}
    # KMS authorises against the key: any key of the account, on condition the request names the alias
    [kms] = [
        s
        for s in iam(project, "--job", "promote", "--env", "prod")["Statement"]
        if s["Sid"] == "Kms"
    ]
    assert kms["Resource"] == f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"
    assert kms["Condition"] == {"StringEquals": {"kms:RequestAlias": "alias/release"}}
    assert "cloudwatch:GetMetricData" in g  # the live canary (bake_seconds default 300)
    assert not any(a.startswith("iam:") for a in g)


def test_build_job_pushes_and_pulls_the_base_but_never_deploys(project: Path) -> None:
    g = grants(iam(project, "--job", "build"))
    assert g["ecr:PutImage"] == {f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/platform"}
    assert f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/base" in g["ecr:BatchGetImage"]
    assert g["ecr:GetAuthorizationToken"] == {"*"}
    assert not any(a.startswith(("lambda:", "kms:", "dynamodb:")) for a in g)


def test_attest_job_pushes_referrers_and_signs_as_the_workflow_says(project: Path) -> None:
    # the workflow's attest job signs keyless (--signer sigstore): no KMS call
    g = grants(iam(project, "--job", "attest"))
    assert g["ecr:PutImage"] and not any(a.startswith(("lambda:", "kms:")) for a in g)
    # the same job without --signer signs with [signing].mode (awskms:alias/release)
    wf = project / "kms.yml"
    text = (project / ".github" / "workflows" / "release.yml").read_text()
    wf.write_text(text.replace("--signer sigstore --json", "--json"))
    g = grants(iam(project, "--job", "attest", "--workflow", str(wf)))
    assert g["kms:Sign"] == {f"arn:aws:kms:{REGION}:{ACCOUNT}:key/*"}
    assert g["ecr:PutImage"] and not any(a.startswith("lambda:") for a in g)


def test_function_policies_follow_the_handlers_calls(project: Path) -> None:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:"
    a = grants(iam(project, "--function", "analysis", "--env", "prod"))
    assert a["dynamodb:PutItem"] == {table + "prod-analysis"}  # from the env's variables
    assert a["sqs:SendMessage"] == {queue + "analysis-dlq"}
    assert a["logs:PutLogEvents"] == {
        f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/ma-analysis:*"
    }
    assert not any(x.startswith(("s3:", "ec2:", "iam:")) for x in a)

    o = grants(iam(project, "--function", "onboarding", "--env", "prod"))
    # onboarding imports the trigger module for its correlation id only: no DLQ grant
    assert o["sqs:SendMessage"] == {queue + "scoring"}
    assert {"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:DeleteItem"} <= set(o)
    assert o["dynamodb:PutItem"] == {table + "entities"}  # from [iam].variables

    s = grants(iam(project, "--function", "scorer", "--env", "prod"))
    # the query names its index: the table and that index, nothing wider
    assert s["dynamodb:Query"] == {
        table + "prod-analysis",
        table + "prod-analysis/index/entity_id-index",
    }
    # findings (SendMessageBatch needs sqs:SendMessage) and poison jobs through the trigger layer
    assert s["sqs:SendMessage"] == {queue + "findings", queue + "analysis-dlq"}
    assert s["xray:PutTraceSegments"] == {"*"}  # declared in [iam].statements

    r = grants(iam(project, "--function", "remediator", "--env", "prod"))
    # apply mode: S3, EC2, GuardDuty, IAM; records and idempotency in DynamoDB
    for action in (
        "s3:PutBucketPublicAccessBlock",
        "ec2:EnableEbsEncryptionByDefault",
        "guardduty:CreateDetector",
        "iam:UpdateAccountPasswordPolicy",
    ):
        assert action in r, action
    assert table + "prod-remediations" in r["dynamodb:PutItem"]
    assert r["dynamodb:UpdateItem"] == {table + "idempotency"}


def test_no_linter_error_in_any_generated_policy(project: Path, tickets: Path) -> None:
    """parliament (duo-labs, its own IAM database) finds nothing in any document: every
    action exists, every resource fits its action, no `*` where a resource type exists."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # parliament imports pkg_resources
        from parliament import analyze_policy_string

    docs = {
        f"--job {j}": iam(project, "--job", j, "--env", "prod")
        for j in ("build", "attest", "canary", "promote")
    }
    docs |= {
        f"--function {f}": iam(project, "--function", f, "--env", "prod")
        for f in ("scorer", "remediator", "onboarding", "analysis")
    }
    docs |= {
        f"tickets --function {f}": iam(tickets, "--function", f, "--env", "prod")
        for f in ("classify", "health")
    }
    for name, doc in docs.items():
        findings = analyze_policy_string(json.dumps(doc)).findings
        assert [(f.issue, f.detail) for f in findings] == [], name


def test_documents_are_accepted_by_iam(project: Path, aws_env: dict[str, str]) -> None:
    import boto3

    client = boto3.client("iam")
    for i, args in enumerate(
        [
            ("--job", "promote", "--env", "prod"),
            ("--function", "remediator", "--env", "prod"),
            ("--job", "build"),
        ]
    ):
        doc = iam(project, *args)
        client.create_policy(PolicyName=f"p{i}", PolicyDocument=json.dumps(doc))
    repo = iam(project, "--repository-policy", "--env", "prod")
    assert repo["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert set(repo["Statement"][0]["Action"]) == {
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    }


def test_bad_usage(project: Path) -> None:
    r = run_cli("iam", cwd=project)
    assert (
        r.code == 2
        and r.stderr.strip()
        == "release: error: give exactly one of --job, --jobs, --function, --repository-policy"
    )
    r = run_cli("iam", "--function", "ghost", cwd=project)
    assert r.code == 2 and "no function 'ghost' in [functions]" in r.stderr
    r = run_cli("iam", "--job", "deploy", cwd=project)
    assert r.code == 2 and "no job 'deploy' in the workflow (its jobs: build, attest" in r.stderr


# --- the second platform (plain boto3) and code it cannot bind ----------------------------------
TICKETS_CONFIG = f"""
[model]
path = "ml/urgency"
[image]
base = "{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/base@sha256:{"0" * 64}"
registry = "{REPO_URI}"
[code]
package = "svc"
[functions]
classify = "svc.classify.handler"
health = "svc.health.handler"
[environments.prod]
target = "lambda"
region = "{REGION}"
functions = {{ classify = "tickets-classify", health = "tickets-health" }}
[environments.prod.variables]
TICKETS_TABLE = "tickets"
ESCALATION_QUEUE_URL = "{SQS}/escalations"
"""


@pytest.fixture(scope="module")
def tickets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("tickets") / "t"
    shutil.copytree(PLATFORM, p, ignore=shutil.ignore_patterns("__pycache__"))
    (p / "release.toml").write_text(TICKETS_CONFIG)
    return p


def test_plain_boto3_is_granted_exactly_on_what_it_names(tickets: Path) -> None:
    """`boto3.resource("dynamodb").Table(os.environ[...])` and `boto3.client("sqs")` at
    module level, used in the handler: the put and the send, each on its own resource."""
    doc = iam(tickets, "--function", "classify", "--env", "prod")
    assert doc["Statement"] == [
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/tickets-classify:*",
        },
        {
            "Sid": "Dynamodb1",
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem"],
            "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/tickets",
        },
        {
            "Sid": "Sqs1",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:escalations",
        },
    ]
    assert [
        s["Sid"] for s in iam(tickets, "--function", "health", "--env", "prod")["Statement"]
    ] == ["Logs"]


def test_a_variable_in_no_config_is_loud(tickets: Path) -> None:
    r = run_cli("iam", "--function", "classify", cwd=tickets)  # no --env: no variables
    assert r.code == 1
    # the lines of the two calls in the platform's own source
    src = (tickets / "svc" / "classify.py").read_text().splitlines()
    put = next(i for i, ln in enumerate(src, 1) if "TABLE.put_item(" in ln)
    send = next(i for i, ln in enumerate(src, 1) if "SQS.send_message(" in ln)
    assert r.stderr.splitlines() == [
        "release: error: release iam --function classify: 2 AWS call(s) not bound to an action "
        f"and resource (svc/classify.py:{put}: dynamodb:PutItem: table: TableName: $TICKETS_TABLE is "
        "set in neither the environment (no --env) nor [iam].variables); cover each in "
        "[iam.functions.classify].statements or give --allow-unresolved",
        f"  svc/classify.py:{send}: sqs:SendMessage: queue: QueueUrl: $ESCALATION_QUEUE_URL is set in "
        "neither the environment (no --env) nor [iam].variables",
    ]


#: code the analysis must follow: factories, sessions, resources, paginators, waiters,
#: collections, resource actions, clients passed to a package function
FOLLOWED = """
import os
import boto3
from boto3.session import Session

from app import util

BUCKET = os.environ.get("DATA_BUCKET", "ignored-default")


def s3():
    return Session().resource("s3")


def handler(event, context):
    obj = s3().Bucket(BUCKET).Object("models/latest.json")
    obj.get()
    for page in boto3.client("dynamodb").get_paginator("scan").paginate(TableName="audit"):
        pass
    boto3.client("dynamodb").get_waiter("table_exists").wait(TableName=f"{os.environ['STAGE']}-jobs")
    for o in s3().Bucket(BUCKET).objects.filter(Prefix="in/"):
        pass
    q = boto3.resource("sqs").Queue(os.environ["WORK_QUEUE_URL"])
    q.send_message(MessageBody="x")
    util.notify(boto3.client("sns"), "arn:aws:sns:eu-west-1:123456789012:alerts")
"""

UTIL = """
def notify(client, topic):
    client.publish(TopicArn=topic, Message="done")
"""

#: and code it cannot bind
UNBOUND = """
import boto3
import thirdparty

SQS = boto3.client("sqs")


def handler(event, context):
    SQS.send_message(QueueUrl=event["queue"], MessageBody="x")
    SQS.sned_message(QueueUrl="https://sqs.eu-west-1.amazonaws.com/123456789012/q")
    thirdparty.Store(client=boto3.client("dynamodb"))
    boto3.client(event["service"]).do_it()
"""


@pytest.fixture
def app(tmp_path: Path) -> Path:
    pkg = tmp_path / "app"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "followed.py").write_text(FOLLOWED)
    (pkg / "util.py").write_text(UTIL)
    (pkg / "unbound.py").write_text(UNBOUND)
    (tmp_path / "release.toml").write_text(
        TICKETS_CONFIG.replace('package = "svc"', 'package = "app"')
        .split("[functions]")[0]
        .replace('path = "ml/urgency"', 'path = "m"')
        + """[functions]
followed = "app.followed.handler"
unbound = "app.unbound.handler"
[environments.prod]
target = "lambda"
[environments.prod.variables]
DATA_BUCKET = "acme-data"
STAGE = "prod"
WORK_QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/work"
"""
    )
    return tmp_path


def test_the_analysis_follows_boto3_wherever_it_is_made(app: Path) -> None:
    g = grants(iam(app, "--function", "followed", "--env", "prod"))
    t = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
    assert {a: r for a, r in g.items() if not a.startswith("logs:")} == {
        "s3:GetObject": {"arn:aws:s3:::acme-data/models/latest.json"},
        "s3:ListBucket": {"arn:aws:s3:::acme-data"},
        "dynamodb:Scan": {t + "audit"},
        "dynamodb:DescribeTable": {t + "prod-jobs"},
        "sqs:SendMessage": {f"arn:aws:sqs:{REGION}:{ACCOUNT}:work"},
        "sns:Publish": {"arn:aws:sns:eu-west-1:123456789012:alerts"},
    }


def test_code_it_cannot_bind_exits_1_naming_each_line(app: Path) -> None:
    r = run_cli("iam", "--function", "unbound", "--env", "prod", cwd=app)
    assert r.code == 1, r.stderr
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        "release: error: release iam --function unbound: 4 AWS call(s) not bound to an action "
        "and resource (app/unbound.py:9: sqs:SendMessage: queue: QueueUrl: its value is an "
        "item of a container); cover each in [iam.functions.unbound].statements or give "
        "--allow-unresolved",
        "  app/unbound.py:10: sqs.sned_message(...): not an operation of the sqs API",
        "  app/unbound.py:11: a dynamodb client passed to thirdparty.Store: the calls made with "
        "it there are outside the code package",
        "  app/unbound.py:12: client.do_it(...): the client's service is not a literal (an item "
        "of a container)",
    ]
    allowed = run_cli(
        "iam", "--function", "unbound", "--env", "prod", "--allow-unresolved", cwd=app
    )
    assert allowed.code == 0, allowed.stderr
    assert [s["Sid"] for s in json.loads(allowed.stdout)["Statement"]] == ["Logs"]
    assert allowed.stderr.count("release: unresolved (allowed): app/unbound.py:") == 4


def test_declared_statements_cover_what_the_code_does_not_show(app: Path) -> None:
    cfg = app / "release.toml"
    cfg.write_text(
        cfg.read_text()
        + """
[[iam.functions.unbound.statements]]
actions = ["sqs:SendMessage"]
resources = ["arn:aws:sqs:${Region}:${Account}:inbox-*"]
"""
    )
    r = run_cli("iam", "--function", "unbound", "--env", "prod", cwd=app)
    # the send (its action granted) and the unknown sqs method (an sqs statement declared)
    assert r.code == 1 and r.stderr.startswith(
        "release: error: release iam --function unbound: 2 AWS call(s) not bound to an action "
        "and resource (app/unbound.py:11: a dynamodb client passed to thirdparty.Store"
    ), r.stderr
    cfg.write_text(
        cfg.read_text()
        + """
[[iam.functions.unbound.statements]]
sid = "Store"
actions = ["dynamodb:GetItem", "dynamodb:PutItem"]
resources = ["arn:aws:dynamodb:${Region}:${Account}:table/store"]
"""
    )
    r = run_cli("iam", "--function", "unbound", "--env", "prod", cwd=app)
    # a client of a service named at run time: no statement can say it is covered
    assert r.code == 1 and "1 AWS call(s)" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    r = run_cli("iam", "--function", "unbound", "--env", "prod", "--allow-unresolved", cwd=app)
    assert r.code == 0
    doc = json.loads(r.stdout)
    assert doc["Statement"][-1] == {
        "Sid": "Store",
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
        "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/store",
    }


def test_iam_config_errors_name_the_key(app: Path) -> None:
    cfg = app / "release.toml"
    base = cfg.read_text()
    cfg.write_text(
        base
        + '\n[[iam.functions.ghost.statements]]\nactions = ["s3:GetObject"]\nresources = ["*"]\n'
    )
    r = run_cli("iam", "--function", "followed", "--env", "prod", cwd=app)
    assert (r.code, r.stderr.strip()) == (
        2,
        "release: error: release.toml: (top level): [iam.functions].ghost: not in [functions]",
    )
    cfg.write_text(base + '\n[[iam.statements]]\nactions = ["GetObject"]\nresources = ["*"]\n')
    r = run_cli("iam", "--function", "followed", "--env", "prod", cwd=app)
    assert r.code == 2 and r.stderr.strip() == (
        "release: error: release.toml: [iam].statements.0.actions: "
        "'GetObject' is not an IAM action (PREFIX:Action)"
    )


#: boto3 objects kept where the analysis does not follow them: each one is named
HIDDEN = """
import boto3

CLIENTS = {"s3": boto3.client("s3")}


class Store:
    def __init__(self):
        self.table = boto3.resource("dynamodb").Table("t")


def handler(event, context):
    sqs = boto3.client("sqs")
    getattr(sqs, event["op"])(QueueUrl="https://sqs.eu-west-1.amazonaws.com/123456789012/q")
    getattr(sqs, "purge_queue")(QueueUrl="https://sqs.eu-west-1.amazonaws.com/123456789012/q")
    return Store()
"""


def test_boto3_objects_it_cannot_follow_are_named(app: Path) -> None:
    (app / "app" / "hidden.py").write_text(HIDDEN)
    cfg = app / "release.toml"
    cfg.write_text(
        cfg.read_text().replace(
            "[environments.prod]", 'hidden = "app.hidden.handler"\n[environments.prod]', 1
        )
    )
    r = run_cli("iam", "--function", "hidden", "--env", "prod", "--allow-unresolved", cwd=app)
    assert r.code == 0, r.stderr
    assert r.stderr.splitlines() == [
        "release: unresolved (allowed): app/hidden.py:4: a s3 client stored in a container: "
        "its calls are not followed from there",
        "release: unresolved (allowed): app/hidden.py:9: a dynamodb Table stored in attribute "
        "table: its calls are not followed from there",
        "release: unresolved (allowed): app/hidden.py:14: getattr(a sqs client, ...): a method "
        "named at run time",
    ]
    # a literal name is an ordinary call
    assert grants(json.loads(r.stdout))["sqs:PurgeQueue"] == {
        "arn:aws:sqs:eu-west-1:123456789012:q"
    }


def test_star_only_where_iam_has_no_resource_type(project: Path, tickets: Path) -> None:
    """Every `"Resource": "*"` of every job and function policy (the declared statements
    aside) grants only actions that IAM cannot scope (no resource type in the data)."""
    from release.iam import awsmodel

    docs = [
        iam(project, "--job", j, "--env", "prod") for j in ("build", "attest", "canary", "promote")
    ]
    docs += [
        iam(project, "--function", f, "--env", "prod")
        for f in ("scorer", "remediator", "onboarding", "analysis")
    ]
    docs += [iam(tickets, "--function", "classify", "--env", "prod")]
    starred = {
        a
        for d in docs
        for s in d["Statement"]
        if s["Resource"] == "*" and s["Sid"] != "XRay"  # XRay: declared in [iam]
        for a in s["Action"]
    }
    assert starred == {
        "ecr:GetAuthorizationToken",
        "cloudwatch:GetMetricData",
        "cloudwatch:ListMetrics",
        "ec2:EnableEbsEncryptionByDefault",
        "guardduty:CreateDetector",
        "guardduty:ListDetectors",
        "iam:UpdateAccountPasswordPolicy",
    }
    assert all(awsmodel.resource_types(a) == [] for a in starred)
