"""handlers.remediator: dry-run plans, applied actions (moto), idempotent duplicate delivery."""

from __future__ import annotations

import json
import re
from typing import Any

import boto3
import pytest

from handlers import remediator
from handlers.scorer import finding_id
from tests.fixtures.tools import REPO
from tests.handlers.conftest import Ctx, metric_total, sqs_event


def finding(
    rule: str, resource: str, entity: str = "ent-r", severity: str = "HIGH"
) -> dict[str, Any]:
    return {
        "finding_id": finding_id(entity, rule, resource),
        "entity_id": entity,
        "rule": rule,
        "severity": severity,
        "resource": resource,
        "title": rule,
    }


def _records(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {
        i["id"]: i
        for i in boto3.resource("dynamodb").Table(env["REMEDIATIONS_TABLE"]).scan()["Items"]
    }


def _run(event: Any, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    capsys.readouterr()
    out = remediator.lambda_handler(event, Ctx())
    return out, capsys.readouterr().out


def test_every_scoring_rule_has_a_catalog_action() -> None:
    src = (REPO / "policy" / "scoring" / "posture.rego").read_text()
    rules = set(re.findall(r'"([a-z0-9]+(?:-[a-z0-9]+)+)", "(?:CRITICAL|HIGH|MEDIUM|LOW)"', src))
    assert len(rules) == 8  # seven checks + s3-public-bucket
    rules.add("reported-finding")
    assert rules <= set(remediator.CATALOG), rules - set(remediator.CATALOG)


def test_dry_run_is_the_default_and_changes_nothing(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DRY_RUN")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="legacy-exports")
    f = finding("s3-public-bucket", "legacy-exports")
    out, stdout = _run(sqs_event(f), capsys)
    assert out == {"batchItemFailures": []}
    rec = _records(handler_env)[f"{f['finding_id']}:dry-run"]
    assert (rec["status"], rec["action"], rec["dry_run"]) == (
        "planned",
        "block-s3-public-access",
        True,
    )
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchPublicAccessBlockConfiguration"):
        s3.get_public_access_block(Bucket="legacy-exports")
    assert metric_total(stdout, "RemediationsPlanned") == 1


def test_apply_mode_executes_automated_actions(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRY_RUN", "false")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="tmp-share")
    fs = [
        finding("s3-public-bucket", "tmp-share"),
        finding("ebs-encryption-disabled", "123456789012", severity="MEDIUM"),
        finding("weak-password-policy", "organization", severity="MEDIUM"),
        finding("root-mfa-disabled", "123456789012", severity="CRITICAL"),
        finding("no-such-rule", "x"),
    ]
    out, stdout = _run(sqs_event(*fs), capsys)
    assert out == {"batchItemFailures": []}
    recs = _records(handler_env)
    status = {r["rule"]: r["status"] for r in recs.values()}
    assert status == {
        "s3-public-bucket": "executed",
        "ebs-encryption-disabled": "executed",
        "weak-password-policy": "executed",
        "root-mfa-disabled": "manual-required",
        "no-such-rule": "unsupported",
    }
    pab = s3.get_public_access_block(Bucket="tmp-share")["PublicAccessBlockConfiguration"]
    assert all(pab.values())
    assert boto3.client("ec2").get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert (
        boto3.client("iam").get_account_password_policy()["PasswordPolicy"]["MinimumPasswordLength"]
        == 14
    )
    assert metric_total(stdout, "RemediationsExecuted") == 3
    assert metric_total(stdout, "RemediationsManual") == 1
    assert metric_total(stdout, "RemediationsUnsupported") == 1


def test_duplicate_delivery_acts_once(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRY_RUN", "false")
    f = finding("guardduty-disabled", "123456789012", severity="MEDIUM")
    out1, stdout1 = _run(sqs_event(f), capsys)
    first = _records(handler_env)[f"{f['finding_id']}:apply"]
    out2, stdout2 = _run(sqs_event(f, f, prefix="again"), capsys)
    assert out1 == out2 == {"batchItemFailures": []}
    assert _records(handler_env)[f"{f['finding_id']}:apply"] == first  # not re-recorded
    assert len(boto3.client("guardduty").list_detectors()["DetectorIds"]) == 1
    assert metric_total(stdout1, "RemediationsExecuted") == 1
    assert metric_total(stdout2, "RemediationsExecuted") == 0
    assert metric_total(stdout2, "DuplicateRemediationSkipped") == 2
    r = remediator.lambda_handler(f, Ctx())
    assert (r["statusCode"], r["status"], r["duplicate"]) == (200, "executed", True)


def test_failed_action_is_recorded_and_retried_bad_messages_are_not(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRY_RUN", "false")
    f = finding("s3-public-bucket", "bucket-that-does-not-exist")
    out, stdout = _run(sqs_event(f, "{", {"finding_id": "x"}), capsys)
    assert out == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    rec = _records(handler_env)[f"{f['finding_id']}:apply"]
    assert rec["status"] == "failed" and "NoSuchBucket" in rec["detail"]
    assert metric_total(stdout, "RemediationsFailed") == 1
    assert metric_total(stdout, "RemediatorErrors") == 3
    # the retry is not blocked by idempotency: once the bucket exists it succeeds
    boto3.client("s3").create_bucket(Bucket="bucket-that-does-not-exist")
    r = remediator.lambda_handler(f, Ctx())
    assert (r["statusCode"], r["status"]) == (200, "executed")
    bad = remediator.lambda_handler({"finding_id": "x"}, Ctx())
    assert bad["statusCode"] == 400 and "must contain" in bad["error"]
    assert json.loads(json.dumps(bad))  # plain JSON
