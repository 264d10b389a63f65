"""`release iam`: job policies from the config, function policies from the handlers' AWS
calls, the ECR repository policy; every document accepted by IAM (moto's policy
validator) and every action one that the boto3 call really needs (botocore's model)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import copy_project, run_cli

ACCOUNT, REGION = "123456789012", "eu-west-1"
REPO_URI = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/platform"
SQS = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}"

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
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = copy_project(tmp_path_factory.mktemp("iam") / "p")
    (p / "release.toml").write_text(CONFIG)
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
    for action in ("lambda:UpdateFunctionCode", "lambda:PublishVersion", "lambda:UpdateAlias"):
        assert g[action] == {fn + n for n in names} | {fn + n + ":*" for n in names}, action
    assert g["cloudwatch:DescribeAlarms"] == {
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:ma-errors"
    }
    assert g["ecr:DescribeImageScanFindings"] == {
        f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/platform"
    }
    assert g["dynamodb:PutItem"] == {f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/release-ledger"}
    assert g["kms:Sign"] == {f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/release"}
    assert "cloudwatch:GetMetricData" in g  # the live canary (bake_seconds default 300)
    assert not any(a.startswith("iam:") for a in g)


def test_build_job_pushes_and_pulls_the_base_but_never_deploys(project: Path) -> None:
    g = grants(iam(project, "--job", "build"))
    assert g["ecr:PutImage"] == {f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/platform"}
    assert f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/base" in g["ecr:BatchGetImage"]
    assert g["ecr:GetAuthorizationToken"] == {"*"}
    assert not any(a.startswith(("lambda:", "kms:", "dynamodb:")) for a in g)


def test_attest_job_signs_with_kms_and_pushes_referrers(project: Path) -> None:
    g = grants(iam(project, "--job", "attest"))
    assert g["kms:Sign"] and g["ecr:PutImage"]
    assert not any(a.startswith("lambda:") for a in g)


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
    assert o["dynamodb:PutItem"] == {table + "entities"}  # the handlers' default name

    s = grants(iam(project, "--function", "scorer", "--env", "prod"))
    assert s["dynamodb:Query"] == {table + "prod-analysis", table + "prod-analysis/index/*"}
    assert s["sqs:SendMessageBatch"] == {queue + "findings"}
    assert s["sqs:SendMessage"] == {
        queue + "analysis-dlq"
    }  # poison jobs, through the shared trigger layer
    assert "xray:PutTraceSegments" in s  # the handlers trace with powertools' Tracer

    r = grants(iam(project, "--function", "remediator", "--env", "prod"))
    # apply mode: S3, EC2, GuardDuty, IAM; records and idempotency in DynamoDB
    for action in (
        "s3:PutPublicAccessBlock",
        "ec2:EnableEbsEncryptionByDefault",
        "guardduty:CreateDetector",
        "iam:UpdateAccountPasswordPolicy",
    ):
        assert action in r, action
    assert table + "prod-remediations" in r["dynamodb:PutItem"]
    assert r["dynamodb:UpdateItem"] == {table + "idempotency"}


def test_every_action_is_a_real_api_operation(project: Path) -> None:
    import botocore.session

    session = botocore.session.get_session()
    prefixes = {}
    for svc in (
        "dynamodb",
        "sqs",
        "s3",
        "ec2",
        "iam",
        "guardduty",
        "lambda",
        "ecr",
        "kms",
        "cloudwatch",
        "logs",
        "xray",
    ):
        m = session.get_service_model(svc)
        prefixes.setdefault(svc, set()).update(m.operation_names)
    docs = [
        iam(project, "--job", j, "--env", "prod") for j in ("build", "attest", "canary", "promote")
    ]
    docs += [
        iam(project, "--function", f, "--env", "prod")
        for f in ("scorer", "remediator", "onboarding", "analysis")
    ]
    for d in docs:
        for action in grants(d):
            prefix, op = action.split(":")
            assert op in prefixes[prefix], action


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
        == "release: error: give exactly one of --job, --function, --repository-policy"
    )
    r = run_cli("iam", "--function", "ghost", cwd=project)
    assert r.code == 2 and "no function 'ghost' in [functions]" in r.stderr
    r = run_cli("iam", "--job", "promote", cwd=project)
    assert r.code == 2 and "needs --env ENV" in r.stderr
