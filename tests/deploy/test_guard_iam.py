"""The drift guard under IAM enforcement: moto with INITIAL_NO_AUTH_ACTION_COUNT
(tests/fixtures/moto_iam.py: DynamoDB per table, Lambda per function/alias/version, SNS
per topic, as AWS authorises them); the guard's clients hold only `release iam --function
release.guard --env prod`. It checks, catches and undoes a console deployment and
alarms; with any one of the statements it exercises removed, that step is denied.

Not exercised here: ECR (the signed bundles are in an OCI layout, moto's ECR has no
referrers API), KMS (key signing) and Logs (Lambda's runtime writes them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release.guard import Guard, check
from release.iam import guard_policy
from release.ledger import DynamoStore, Ledger
from tests.deploy import test_guard as g
from tests.deploy.conftest import ACCOUNT, FUNCTIONS, REGION
from tests.fixtures.aws import enforcing_moto

pytestmark = pytest.mark.aws

SCORER = FUNCTIONS["scorer"]
EXERCISED = ("ReadFunctions", "Ledger", "RollBackAliases", "Alarm")


@pytest.fixture
def enforcing(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An enforcing moto whose Lambda resolves images in its ECR; AWS_* in this process
    are an admin's (the set-up), the guard gets its own credentials."""
    import boto3

    with enforcing_moto(tmp_path_factory.mktemp("moto-guard-iam")) as (url, admin):
        for k, v in {
            "AWS_ENDPOINT_URL": url,
            **admin,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        # boto3's default session keeps the credentials it first read: a fresh one here
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        yield url


def _user(policy: dict[str, Any], n: int) -> dict[str, str]:
    iam = g.boto("iam")
    name = f"guard-{n}"
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="guard", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }


def _guard_as(r: dict[str, Any], url: str, creds: dict[str, str]) -> Guard:
    import boto3

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=url, region_name=REGION, **creds)

    return Guard(
        r["cfg"],
        "prod",
        lambda_client=client("lambda"),
        sns=client("sns"),
        ledger=Ledger(DynamoStore("ledger", client=client("dynamodb"))),
        registry=r["layout"],
    )


def _without(doc: dict[str, Any], sid: str) -> dict[str, Any]:
    return {**doc, "Statement": [s for s in doc["Statement"] if s.get("Sid") != sid]}


def _functions() -> None:
    role = g.boto("iam").create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]
    from tests.deploy.conftest import ECR, HANDLERS, digest_of, push_images

    push_images("a")
    lam = g.boto("lambda")
    for name, fn in FUNCTIONS.items():
        lam.create_function(
            FunctionName=fn,
            Role=role["Arn"],
            PackageType="Image",
            Code={"ImageUri": f"{ECR}@{digest_of('a')}"},
            ImageConfig={"Command": [HANDLERS[name]]},
            Publish=True,
        )
        lam.create_alias(FunctionName=fn, Name="live", FunctionVersion="1")


def test_the_guard_runs_under_its_generated_policy_and_needs_each_statement(
    enforcing: str, tmp_path: Path
) -> None:
    _functions()
    r = g._release(tmp_path, rollback=True)
    policy = guard_policy(r["cfg"], "prod", account=ACCOUNT)
    sids = {s["Sid"] for s in policy["Statement"]}
    assert set(EXERCISED) <= sids

    # the whole policy: a console deployment is caught, alarmed and undone
    guard = _guard_as(r, enforcing, _user(policy, 0))
    assert check(guard, trigger="schedule").result == "ok"
    g._console_deploy(SCORER, r["unsigned"])
    report = check(guard, trigger="UpdateAlias20150331")
    assert report.result == "drift-undone", report.to_dict()
    assert report.alarm and g._alarms(r["queue"])[0]["result"] == "drift-undone"

    from release.errors import RemoteError

    for n, sid in enumerate(EXERCISED, start=1):
        g._console_deploy(SCORER, r["unsigned"])
        creds = _user(_without(policy, sid), n)
        if sid == "RollBackAliases":
            rep = check(_guard_as(r, enforcing, creds), trigger="test")
            assert rep.result == "drift" and not rep.rollbacks[0].ok, rep.to_dict()
            assert "AccessDenied" in rep.rollbacks[0].detail or "not authorized" in (
                rep.rollbacks[0].detail
            )
        else:
            with pytest.raises(RemoteError) as err:  # the ledger: already when it opens
                check(_guard_as(r, enforcing, creds), trigger="test")
            assert "AccessDenied" in err.value.message or "not authorized" in err.value.message
        # put it back for the next round (the admin; the full policy's guard)
        assert check(guard, trigger="test").result in ("drift-undone", "ok")
