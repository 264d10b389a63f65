"""The generated execution-role policies against IAM enforcement: moto in server mode with
INITIAL_NO_AUTH_ACTION_COUNT (tests/fixtures/moto_iam.py: DynamoDB authorised per table
and index, as AWS does), each function's handler run in its own process as an IAM user
that holds only `release iam --function NAME`'s policy. Every call succeeds; with any one
statement removed some call is denied (AccessDenied). The second platform (plain boto3)
and the example (its helpers, powertools' idempotency) alike. And the CI jobs: `release
promote` and `release status` run as users holding only `release iam --job NAME`'s policy
(tests/fixtures/moto_iam.py authorises Lambda per function ARN, qualified when the call
names a qualifier, as AWS does)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.aws import enforcing_moto
from tests.fixtures.tools import REPO, copy_project, run_cli

pytestmark = [pytest.mark.aws]

ACCOUNT, REGION = "123456789012", "us-east-1"
PLATFORM = REPO / "tests" / "platforms" / "tickets"

#: runs HANDLER(event) in a fresh interpreter: `python -c RUN MODULE FUNC`, the event on stdin
RUN = r"""
import json, sys, importlib
class Ctx:
    function_name = "fn"; function_version = "$LATEST"; memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    aws_request_id = "req-1"; log_group_name = "/aws/lambda/fn"; log_stream_name = "s"
    def get_remaining_time_in_millis(self): return 60_000
handler = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
print("RESULT " + json.dumps(handler(json.load(sys.stdin), Ctx()), default=str))
"""


@dataclass
class Moto:
    url: str
    admin: dict[str, str]  # AWS_* of a user allowed everything

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.admin["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.admin["AWS_SECRET_ACCESS_KEY"],
        )

    def user_with(self, name: str, policy: dict[str, Any]) -> dict[str, str]:
        """An IAM user holding exactly `policy` (replaced on each call): its credentials."""
        iam = self.client("iam")
        try:
            iam.create_user(UserName=name)
        except iam.exceptions.EntityAlreadyExistsException:
            for k in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
                iam.delete_access_key(UserName=name, AccessKeyId=k["AccessKeyId"])
        iam.put_user_policy(
            UserName=name, PolicyName="generated", PolicyDocument=json.dumps(policy)
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        }


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moto]:
    """An enforcing moto: the first 3 requests make an admin user, then every request is
    authorised against its caller's policies."""
    import boto3

    with enforcing_moto(tmp_path_factory.mktemp("moto-iam")) as (url, admin):
        # enforcement is on: unknown credentials are refused
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        with pytest.raises(iam.exceptions.ClientError, match="InvalidClientTokenId"):
            iam.list_users()
        yield Moto(url, admin)


def run_handler(
    moto: Moto,
    creds: dict[str, str],
    cwd: Path,
    handler: str,
    event: dict[str, Any],
    variables: dict[str, str],
) -> subprocess.CompletedProcess[str]:
    module, func = handler.rsplit(".", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON"))}
    env |= variables | creds
    env.update(
        AWS_ENDPOINT_URL=moto.url,
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        PYTHONPATH=str(cwd),
    )
    return subprocess.run(
        [sys.executable, "-c", RUN, module, func],
        cwd=cwd,
        env=env,
        input=json.dumps(event),
        capture_output=True,
        text=True,
        timeout=300,
    )


def result(p: subprocess.CompletedProcess[str]) -> Any:
    assert p.returncode == 0, p.stderr[-3000:]
    [line] = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line[len("RESULT ") :])


def policy(project: Path, function: str) -> dict[str, Any]:
    r = run_cli("iam", "--function", function, "--env", "moto", "--account", ACCOUNT, cwd=project)
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout))


def without(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    return {**doc, "Statement": [s for s in doc["Statement"] if s["Sid"] != sid]}


# --- the second platform ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tickets(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    p = tmp_path_factory.mktemp("tickets") / "t"
    shutil.copytree(PLATFORM, p, ignore=shutil.ignore_patterns("__pycache__"))
    ddb, sqs = moto.client("dynamodb"), moto.client("sqs")
    ddb.create_table(
        TableName="tickets",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue = sqs.create_queue(QueueName="escalations")["QueueUrl"]
    variables = {"TICKETS_TABLE": "tickets", "ESCALATION_QUEUE_URL": queue}
    (p / "release.toml").write_text(
        f"""
[model]
path = "ml/urgency"
lock = "ml/urgency.lock.json"
[image]
base = "oci:.release/base@sha256:{"0" * 64}"
requirements = "requirements.lock"
[code]
package = "svc"
[functions]
classify = "svc.classify.handler"
health = "svc.health.handler"
[environments.moto]
target = "lambda"
region = "{REGION}"
[environments.moto.variables]
{chr(10).join(f'{k} = "{v}"' for k, v in variables.items())}
"""
    )
    pin = run_cli("model", "pin", cwd=p)
    assert pin.code == 0, pin.stderr
    variables |= {
        "MODEL_DIR": str(p / "ml" / "urgency"),
        "MODEL_LOCK": str(p / "ml" / "urgency.lock.json"),
    }
    return p, variables


URGENT = {"id": "t-1", "text": "Production is down for all users in us-east"}


def test_the_second_platform_runs_under_its_generated_policy(
    moto: Moto, tickets: tuple[Path, dict[str, str]]
) -> None:
    project, variables = tickets
    doc = policy(project, "classify")
    creds = moto.user_with("classify", doc)
    out = result(run_handler(moto, creds, project, "svc.classify.handler", URGENT, variables))
    assert out == {"results": [{"id": "t-1", "urgency": "CRITICAL", "urgent": True}]}
    # the call really reached the table and the queue (read back as admin)
    item = moto.client("dynamodb").get_item(TableName="tickets", Key={"id": {"S": "t-1"}})["Item"]
    assert item["urgent"] == {"BOOL": True}
    msgs = moto.client("sqs").receive_message(QueueUrl=variables["ESCALATION_QUEUE_URL"])
    assert [json.loads(m["Body"])["id"] for m in msgs["Messages"]] == ["t-1"]


def test_every_statement_of_the_second_platform_is_needed(
    moto: Moto, tickets: tuple[Path, dict[str, str]]
) -> None:
    project, variables = tickets
    doc = policy(project, "classify")
    sids = [s["Sid"] for s in doc["Statement"] if s["Sid"] != "Logs"]  # Logs: Lambda's own writes
    assert sids == ["Dynamodb1", "Sqs1"]
    for sid in sids:
        creds = moto.user_with("classify", without(doc, sid))
        p = run_handler(moto, creds, project, "svc.classify.handler", URGENT, variables)
        assert p.returncode != 0 and "AccessDenied" in p.stderr, (sid, p.stderr[-2000:])


def test_a_policy_on_another_table_is_denied(
    moto: Moto, tickets: tuple[Path, dict[str, str]]
) -> None:
    """The test server authorises DynamoDB per table: the right grant on the wrong table fails."""
    project, variables = tickets
    doc = policy(project, "classify")
    wrong = json.loads(json.dumps(doc).replace(":table/tickets", ":table/other"))
    p = run_handler(
        moto, moto.user_with("classify", wrong), project, "svc.classify.handler", URGENT, variables
    )
    assert p.returncode != 0, p.stderr[-2000:]
    assert "user/classify is not authorized to perform: dynamodb:PutItem" in p.stderr


# --- the example platform ---------------------------------------------------------------------
def _sqs_event(msgs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:q",
                "awsRegion": REGION,
            }
            for m in msgs
        ]
    }


def _drain(moto: Moto, url: str) -> list[dict[str, Any]]:
    sqs, out = moto.client("sqs"), []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        out += msgs
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
            ],
        )
    return out


@pytest.fixture(scope="module")
def example(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The example project with an environment `moto` whose variables name moto's tables and
    queues (the rest from the example's own [iam].variables)."""
    from tests.handlers.conftest import MODEL_DIR, MODEL_LOCK, QUEUES, TABLES, _create_tables

    p = copy_project(tmp_path_factory.mktemp("example") / "p")
    _create_tables(moto.client("dynamodb"))
    queues = {
        var: moto.client("sqs").create_queue(QueueName=n)["QueueUrl"] for var, n in QUEUES.items()
    }
    lines = "\n".join(
        f'{k} = "{v}"' for k, v in {"ANALYSIS_TABLE": TABLES["ANALYSIS_TABLE"], **queues}.items()
    )
    with open(p / "release.toml", "a") as f:
        f.write(
            f"""
[environments.moto]
target = "lambda"
region = "{REGION}"
functions = {{ scorer = "scorer", remediator = "remediator", onboarding = "onboarding", analysis = "analysis" }}
[environments.moto.variables]
{lines}
"""
        )
    variables = {
        **TABLES,
        **queues,
        "MODEL_DIR": str(MODEL_DIR),
        "MODEL_LOCK": str(MODEL_LOCK),
        "POWERTOOLS_METRICS_NAMESPACE": "Test/Handlers",
        "DRY_RUN": "false",  # the remediator's apply mode: every action it can take
    }
    return p, variables


_DOMAINS = itertools.count()
WEAK = json.loads((REPO / "tests" / "handlers" / "data" / "posture-weak.json").read_text())


def _onboard(moto: Moto, p: Path, v: dict[str, str], policy_doc: dict[str, Any]) -> Any:
    from tests.handlers.test_onboarding import new_entity

    body = new_entity(domain=f"acme-{next(_DOMAINS)}.com", sample="posture-weak.json")
    event = {
        "resource": "/{proxy+}",
        "path": "/entities",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "pathParameters": {"proxy": "entities"},
        "requestContext": {"resourcePath": "/{proxy+}", "httpMethod": "POST", "requestId": "r"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }
    return run_handler(
        moto,
        moto.user_with("onboarding", policy_doc),
        p,
        "handlers.onboarding.lambda_handler",
        event,
        v,
    )


def _analyse(moto: Moto, p: Path, v: dict[str, str], policy_doc: dict[str, Any]) -> Any:
    good = {"id": "n1", "text": "Wonderful results, great quarter", "entity_id": "ent-a"}
    msgs = [
        {"MessageId": "m1", "ReceiptHandle": "r1", "Body": json.dumps(good), "MD5OfBody": "x"},
        {
            "MessageId": "m2",
            "ReceiptHandle": "r2",
            "Body": "not json",
            "MD5OfBody": "x",
        },  # to the DLQ
    ]
    return run_handler(
        moto,
        moto.user_with("analysis", policy_doc),
        p,
        "handlers.analysis.lambda_handler",
        _sqs_event(msgs),
        v,
    )


def _score(moto: Moto, p: Path, v: dict[str, str], policy_doc: dict[str, Any]) -> Any:
    job = {
        "MessageId": "j1",
        "ReceiptHandle": "r",
        "Body": json.dumps({"entity_id": "ent-a", "posture": WEAK}),
        "MD5OfBody": "x",
    }
    return run_handler(
        moto,
        moto.user_with("scorer", policy_doc),
        p,
        "handlers.scorer.lambda_handler",
        _sqs_event([job]),
        v,
    )


def _remediate(
    moto: Moto,
    p: Path,
    v: dict[str, str],
    policy_doc: dict[str, Any],
    findings: list[dict[str, Any]],
) -> Any:
    poison = {"MessageId": "bad", "ReceiptHandle": "r", "Body": "not json", "MD5OfBody": "x"}
    return run_handler(
        moto,
        moto.user_with("remediator", policy_doc),
        p,
        "handlers.remediator.lambda_handler",
        _sqs_event([*findings, poison]),  # the poison message goes to the DLQ
        v,
    )


def test_the_example_runs_under_its_generated_policies_and_needs_each_statement(
    moto: Moto, example: tuple[Path, dict[str, str]]
) -> None:
    p, v = example
    for bucket in WEAK["accounts"][0]["public_s3_buckets"]:
        moto.client("s3").create_bucket(Bucket=bucket)
    docs = {f: policy(p, f) for f in ("onboarding", "analysis", "scorer", "remediator")}

    onboarded = result(_onboard(moto, p, v, docs["onboarding"]))
    assert onboarded["statusCode"] == 201, onboarded
    assert len(_drain(moto, v["SCORING_QUEUE_URL"])) == 1
    assert result(_analyse(moto, p, v, docs["analysis"])) == {"batchItemFailures": []}
    assert len(_drain(moto, v["DLQ_URL"])) == 1  # the poison message, kept
    scored = _score(moto, p, v, docs["scorer"])
    assert result(scored) == {"batchItemFailures": []}, scored.stdout[-3000:]
    findings = _drain(moto, v["FINDINGS_QUEUE_URL"])
    rules = sorted(json.loads(m["Body"])["rule"] for m in findings)
    assert {
        "s3-public-bucket",
        "ebs-encryption-disabled",
        "guardduty-disabled",
        "weak-password-policy",
    } <= set(rules)
    remediated = _remediate(moto, p, v, docs["remediator"], findings)
    assert result(remediated) == {"batchItemFailures": []}, remediated.stdout[-6000:]
    records = moto.client("dynamodb").scan(TableName=v["REMEDIATIONS_TABLE"])["Items"]
    executed = sorted(r["rule"]["S"] for r in records if r["status"]["S"] == "executed")
    assert executed == sorted(
        [
            "ebs-encryption-disabled",
            "guardduty-disabled",
            "s3-public-bucket",
            "s3-public-bucket",
            "weak-password-policy",
        ]
    ), records

    # each statement the code's calls need, removed alone: some call is denied
    runs = {
        "onboarding": lambda d: _onboard(moto, p, v, d),
        "analysis": lambda d: _analyse(moto, p, v, d),
        "scorer": lambda d: _score(moto, p, v, d),
        "remediator": lambda d: _remediate(moto, p, v, d, findings),
    }
    for fn, run in runs.items():
        # Logs: Lambda's own writes; XRay: the Tracer sends segments only inside Lambda
        for sid in [s["Sid"] for s in docs[fn]["Statement"] if s["Sid"] not in ("Logs", "XRay")]:
            _reset_idempotency(moto, v)  # else the remediator answers from its records
            out = run(without(docs[fn], sid))
            denied = "AccessDenied" in out.stderr + out.stdout
            assert denied, (fn, sid, out.stdout[-1500:], out.stderr[-1500:])


def _reset_idempotency(moto: Moto, v: dict[str, str]) -> None:
    ddb = moto.client("dynamodb")
    for item in ddb.scan(TableName=v["IDEMPOTENCY_TABLE"])["Items"]:
        ddb.delete_item(TableName=v["IDEMPOTENCY_TABLE"], Key={"id": item["id"]})


# --- the CI jobs' policies ----------------------------------------------------------------------
#: a promote job and a status job, as a workflow runs them
JOBS_WORKFLOW = """
on: push
env:
  RELEASE_ENV: prod
jobs:
  promote:
    runs-on: ubuntu-24.04
    steps:
      - uses: ./
      - run: release promote "$DIGEST" --env "$RELEASE_ENV" --json > promotion.json
  status:
    runs-on: ubuntu-24.04
    steps:
      - run: release status
  review:
    runs-on: ubuntu-24.04
    steps:
      - run: release readiness --format json -o readiness.json
"""


@pytest.fixture(scope="module")
def promotion(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three image functions on `ECR@sha256:aaa...` with alias `live`, a DynamoDB ledger
    table, a project promoting them (canned evidence for each digest, no live canary) and
    its workflow. Made as the admin: the infrastructure code's part."""
    from tests.deploy.conftest import (
        ECR,
        FUNCTIONS,
        HANDLERS,
        digest_of,
        good_evidence,
        put_evidence,
        write_config,
    )

    p = tmp_path_factory.mktemp("promote") / "p"
    p.mkdir()
    write_config(
        p,
        target="lambda",
        ledger="dynamodb:release-ledger",
        env_extra="traffic = { bake_seconds = 0 }",
    )
    for ch in "bcdef1":
        put_evidence(p, good_evidence(digest_of(ch)))
    (p / ".github" / "workflows").mkdir(parents=True)
    (p / ".github" / "workflows" / "release.yml").write_text(JOBS_WORKFLOW)
    ecr, lam, ddb = moto.client("ecr"), moto.client("lambda"), moto.client("dynamodb")
    ecr.create_repository(repositoryName="app")
    for ch in "abcdef1":
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(ch),
                "size": 2,
            },
            "layers": [],
        }
        ecr.put_image(
            repositoryName="app",
            imageManifest=json.dumps(manifest),
            imageDigest=digest_of(ch),
            imageTag=f"t{ch}",
        )
    role = moto.client("iam").create_role(
        RoleName="fn-role", AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[]}'
    )["Role"]["Arn"]
    for name, fn in FUNCTIONS.items():
        lam.create_function(
            FunctionName=fn,
            Role=role,
            PackageType="Image",
            Code={"ImageUri": f"{ECR}@{digest_of('a')}"},
            ImageConfig={"Command": [HANDLERS[name]]},
            Publish=True,
        )
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")
    ddb.create_table(
        TableName="release-ledger",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "seq", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "seq", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return p


def _as(moto: Moto, creds: dict[str, str], project: Path, *args: str) -> Any:
    from tests.deploy.conftest import PROVIDER
    from tests.fixtures.tools import run_cli_with_provider

    env = {
        **creds,
        "AWS_ENDPOINT_URL": moto.url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "GITHUB_ACTOR": "ci",
    }
    return run_cli_with_provider(PROVIDER, *args, cwd=project, env=env)


def _live(moto: Moto) -> dict[str, str]:
    from tests.deploy.conftest import FUNCTIONS

    lam = moto.client("lambda")
    out = {}
    for fn in FUNCTIONS.values():
        v = lam.get_alias(FunctionName=fn, Name="live")["FunctionVersion"]
        uri = lam.get_function(FunctionName=fn, Qualifier=v)["Code"]["ImageUri"]
        out[fn] = uri.rsplit("@", 1)[1]
    return out


def test_promote_runs_under_its_job_policy_and_needs_each_statement(
    moto: Moto, promotion: Path
) -> None:
    """`release promote` as a user holding only `release iam --job promote`: every function
    moves. The statements its run exercises (the ledger, the functions, the published
    versions) are each needed; the ECR statements are the evidence collection's and the
    promotion signature's, which this run does not make (its evidence is canned and its
    promotion statement is not signed: the test's provider stands in for both)."""
    from tests.deploy.conftest import FUNCTIONS, digest_of

    doc = policy_of_job(promotion, "promote")
    sids = [s["Sid"] for s in doc["Statement"]]
    assert sids == ["NoResourceLevel", "EcrImage", "Ledger", "Lambda", "LambdaVersions"]
    creds = moto.user_with("promoter", doc)
    r = _as(moto, creds, promotion, "promote", digest_of("b"), "--env", "prod")
    assert r.code == 0, r.stderr[-3000:]
    assert _live(moto) == dict.fromkeys(FUNCTIONS.values(), digest_of("b"))

    needed = {}
    for sid, ch in zip(("Ledger", "Lambda", "LambdaVersions"), "cde", strict=True):
        creds = moto.user_with("promoter", without(doc, sid))
        r = _as(moto, creds, promotion, "promote", digest_of(ch), "--env", "prod")
        needed[sid] = r.code != 0 and "AccessDenied" in r.stderr
        assert needed[sid], (sid, r.code, r.stderr[-3000:])
        # nothing moved (a failure part-way put every function back)
        assert _live(moto) == dict.fromkeys(FUNCTIONS.values(), digest_of("b")), sid
    # a policy for another environment's functions is refused on the first Lambda call
    wrong = json.loads(json.dumps(doc).replace(":function:ma-", ":function:other-"))
    r = _as(
        moto,
        moto.user_with("promoter", wrong),
        promotion,
        "promote",
        digest_of("f"),
        "--env",
        "prod",
    )
    assert r.code != 0 and "is not authorized to perform: lambda:GetFunction" in r.stderr, r.stderr
    # the whole policy again: the next release goes out
    r = _as(
        moto, moto.user_with("promoter", doc), promotion, "promote", digest_of("1"), "--env", "prod"
    )
    assert r.code == 0, r.stderr[-3000:]
    assert _live(moto) == dict.fromkeys(FUNCTIONS.values(), digest_of("1"))


def test_status_runs_under_its_job_policy_and_needs_each_statement(
    moto: Moto, promotion: Path
) -> None:
    """`release status` (RELEASE_ENV from the workflow) reads: the ledger, the alias and
    the versions it routes to - and nothing else is granted."""
    doc = policy_of_job(promotion, "status")
    assert [s["Sid"] for s in doc["Statement"]] == ["Ledger", "LambdaRead", "LambdaVersions"]
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert not any(
        a.endswith(("PutItem", "DeleteItem", "UpdateAlias", "UpdateFunctionCode")) for a in actions
    )
    r = _as(moto, moto.user_with("status", doc), promotion, "status", "--env", "prod")
    assert r.code == 0, r.stderr[-3000:]
    for sid in ("Ledger", "LambdaRead", "LambdaVersions"):
        r = _as(
            moto, moto.user_with("status", without(doc, sid)), promotion, "status", "--env", "prod"
        )
        assert r.code != 0 and "AccessDenied" in r.stderr, (sid, r.stderr[-3000:])


def policy_of_job(project: Path, job: str) -> dict[str, Any]:
    r = run_cli("iam", "--job", job, cwd=project)
    assert r.code == 0, r.stderr
    doc = dict(json.loads(r.stdout))
    # the only `*`: what IAM cannot scope
    from release.iam import awsmodel

    for s in doc["Statement"]:
        if s["Resource"] == "*":
            assert all(awsmodel.resource_types(a) == [] for a in s["Action"]), s
    return doc


def test_readiness_runs_under_its_job_policy_and_needs_each_statement(
    moto: Moto, promotion: Path
) -> None:
    """`release readiness` as a user holding only `release iam --job review`: it reads
    everything its review needs (exit 0 or 1 on its rows, never 3), and each statement
    whose reads this environment makes is needed (removing it: AccessDenied, exit 3).
    Nothing it is granted writes. (The enforcing moto authorises CloudWatch's alarm
    calls and ECR's against their ARNs: tests/fixtures/moto_iam.py.)"""
    doc = policy_of_job(promotion, "review")
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert not [a for a in actions if a.split(":")[1].startswith(("Put", "Update", "Delete"))]
    creds = moto.user_with("reviewer", doc)
    r = _as(moto, creds, promotion, "readiness", "--env", "prod", "--format", "json")
    assert r.code in (0, 1), r.stderr[-3000:]
    rows = json.loads(r.stdout)["rows"] if r.stdout.strip().startswith("{") else []
    assert rows, r.stdout[-2000:]
    needed = {}
    for sid in [s["Sid"] for s in doc["Statement"]]:
        r = _as(
            moto,
            moto.user_with("reviewer", without(doc, sid)),
            promotion,
            "readiness",
            "--env",
            "prod",
            "--format",
            "json",
        )
        needed[sid] = r.code == 3 and "not authorized" in r.stderr
    # every read is made here but the queues' (no queue is attached to these functions)
    assert needed == {
        "ReadinessFunctions": True,  # GetFunction, GetFunctionEventInvokeConfig by alias
        "ReadinessConcurrency": True,
        "NoResourceLevel": True,  # event source mappings, subscriptions, rules
        "ReadinessQueues": False,
        "ReadinessAlarms": True,  # every alarm of the account: alarm:*
        "ReadinessRepository": True,  # DescribeRepositories of the image's repository
        "Ledger": True,  # the live digest
    }, needed
