"""Remediation of posture findings: a plan per finding from an action catalog.

Consumes the scorer's findings from SQS (or one finding by direct invoke):
`{"finding_id", "entity_id", "rule", "severity", "resource", ...}`. The plan comes from
`CATALOG` (rule id -> action). Dry-run by default ($DRY_RUN=true): the plan is recorded
with status "planned" and nothing is changed. With DRY_RUN=false, automated actions run
with boto3 in the account the function's credentials reach and are recorded "executed"
(or "failed", then retried); manual actions are recorded "manual-required" with their
steps. A rule without a catalog entry is recorded "unsupported" (not retried).

Triggers: SQS (partial batch), SNS, direct/async invoke (common/triggers.py). A message
that is not a finding (400) is logged at ERROR and kept in $DLQ_URL; a failed action or
store (500) is retried (batch item failure; raised under SNS/async). The message's
correlation id is logged and recorded with the remediation.

Idempotent: powertools idempotency with a DynamoDB persistence layer ($IDEMPOTENCY_TABLE,
key `id`, TTL attribute `expiration` after $IDEMPOTENCY_TTL_SECONDS, default 7 days),
keyed on (finding_id, dry_run): a re-delivered finding returns the first
result without acting again (counted as DuplicateRemediationSkipped). What was done is
recorded in $REMEDIATIONS_TABLE (key `id` = finding_id + mode).

Metrics: RemediationsPlanned, RemediationsExecuted, RemediationsManual,
RemediationsFailed, RemediationsUnsupported, DuplicateRemediationSkipped, RemediatorErrors.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from botocore.exceptions import BotoCoreError, ClientError

from handlers.common import aws, schemas, settings, triggers
from handlers.common.entry import Handler, Results
from handlers.common.observability import MetricUnit

HANDLER = Handler.create(
    "remediator", error_metric="RemediatorErrors", failure_log="remediation failed"
)
logger, metrics, tracer = HANDLER.logger, HANDLER.metrics, HANDLER.tracer


# --- the action catalog -----------------------------------------------------------------


def _block_public_bucket(f: dict[str, Any]) -> str:
    aws.client("s3").put_public_access_block(
        Bucket=f["resource"],
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    return f"public access blocked on bucket {f['resource']}"


def _enable_ebs_encryption(f: dict[str, Any]) -> str:
    aws.client("ec2").enable_ebs_encryption_by_default()
    return "EBS encryption by default enabled"


def _enable_guardduty(f: dict[str, Any]) -> str:
    gd = aws.client("guardduty")
    if gd.list_detectors().get("DetectorIds"):
        return "GuardDuty detector already present"
    det = gd.create_detector(Enable=True)["DetectorId"]
    return f"GuardDuty detector {det} created"


def _password_policy(f: dict[str, Any]) -> str:
    aws.client("iam").update_account_password_policy(
        MinimumPasswordLength=14,
        RequireSymbols=True,
        RequireNumbers=True,
        RequireUppercaseCharacters=True,
        RequireLowercaseCharacters=True,
        PasswordReusePrevention=24,
        MaxPasswordAge=90,
    )
    return "account password policy set (14+ characters, complexity, reuse 24, max age 90 days)"


@dataclass(frozen=True)
class Action:
    action: str
    description: str
    steps: tuple[str, ...]
    run: Callable[[dict[str, Any]], str] | None = None  # None: manual

    @property
    def automated(self) -> bool:
        return self.run is not None


CATALOG: dict[str, Action] = {
    "s3-public-bucket": Action(
        "block-s3-public-access",
        "Block all public access on the bucket",
        ("s3:PutPublicAccessBlock on the bucket with all four settings true",),
        _block_public_bucket,
    ),
    "ebs-encryption-disabled": Action(
        "enable-ebs-default-encryption",
        "Turn on EBS encryption by default",
        ("ec2:EnableEbsEncryptionByDefault in the region",),
        _enable_ebs_encryption,
    ),
    "guardduty-disabled": Action(
        "enable-guardduty",
        "Create and enable a GuardDuty detector",
        ("guardduty:CreateDetector Enable=true (unless one exists)",),
        _enable_guardduty,
    ),
    "weak-password-policy": Action(
        "set-password-policy",
        "Enforce a strong IAM account password policy",
        ("iam:UpdateAccountPasswordPolicy MinimumPasswordLength=14 with complexity",),
        _password_policy,
    ),
    "root-mfa-disabled": Action(
        "enforce-root-mfa",
        "Put a hardware MFA device on the root user",
        (
            "sign in as root with the break-glass procedure",
            "assign a FIDO2/hardware MFA device",
            "store the device in the safe; record its serial in the account register",
        ),
    ),
    "cloudtrail-disabled": Action(
        "enable-cloudtrail",
        "Enable an organization CloudTrail to the central log archive",
        (
            "create a multi-region trail to the log-archive bucket",
            "enable log file validation",
            "start logging",
        ),
    ),
    "sso-not-enforced": Action(
        "enforce-sso",
        "Move human access to IAM Identity Center",
        ("federate the company IdP", "migrate IAM users", "remove console passwords of IAM users"),
    ),
    "no-incident-response-plan": Action(
        "adopt-ir-plan",
        "Adopt the group incident response plan",
        ("assign an IR owner", "run the onboarding tabletop exercise"),
    ),
    "reported-finding": Action(
        "triage-reported-finding",
        "Triage the finding reported by the company",
        ("open a ticket with the finding", "agree a fix date by severity SLA"),
    ),
}


# --- idempotent remediation ---------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _duplicate_hook(response: Any, idempotent_data: Any) -> Any:
    metrics.add_metric(name="DuplicateRemediationSkipped", unit=MetricUnit.Count, value=1)
    logger.info("duplicate finding: returning the recorded result")
    if isinstance(response, dict):
        response = {**response, "duplicate": True}
    return response


def remediate(cfg: settings.Settings, finding: dict[str, Any]) -> dict[str, Any]:
    """Plan (and, unless dry-run, act on) one finding; record it. Not idempotent by itself."""
    dry_run = bool(finding["dry_run"])
    mode = "dry-run" if dry_run else "apply"
    action = CATALOG.get(finding["rule"])
    record: dict[str, Any] = {
        "id": f"{finding['finding_id']}:{mode}",
        "finding_id": finding["finding_id"],
        "entity_id": finding["entity_id"],
        "rule": finding["rule"],
        "resource": finding["resource"],
        "severity": finding["severity"],
        "dry_run": dry_run,
        "recorded_at": _now(),
    }
    if finding.get("correlation_id"):
        record["correlation_id"] = str(finding["correlation_id"])
    error: str | None = None
    if action is None:
        record.update(
            status="unsupported",
            action=None,
            detail=f"no catalog action for rule {finding['rule']}",
        )
        metrics.add_metric(name="RemediationsUnsupported", unit=MetricUnit.Count, value=1)
    else:
        record.update(
            action=action.action,
            description=action.description,
            steps=list(action.steps),
            automated=action.automated,
        )
        if dry_run:
            record.update(status="planned", detail="dry run: nothing changed")
            metrics.add_metric(name="RemediationsPlanned", unit=MetricUnit.Count, value=1)
        elif action.run is None:
            record.update(status="manual-required", detail="manual action: steps recorded")
            metrics.add_metric(name="RemediationsManual", unit=MetricUnit.Count, value=1)
        else:
            try:
                record.update(status="executed", detail=action.run(finding))
                metrics.add_metric(name="RemediationsExecuted", unit=MetricUnit.Count, value=1)
            except (ClientError, BotoCoreError) as exc:
                error = (
                    f"{action.action} failed: {aws.error_code(exc) or type(exc).__name__}: {exc}"
                )
                record.update(status="failed", detail=error)
                metrics.add_metric(name="RemediationsFailed", unit=MetricUnit.Count, value=1)
    aws.table(cfg.remediations_table).put_item(Item=record)
    logger.info(
        "remediation recorded", extra={k: record[k] for k in ("finding_id", "rule", "status")}
    )
    if error:
        raise ActionFailed(error)
    return {k: v for k, v in record.items() if k != "recorded_at"}


class ActionFailed(RuntimeError):
    """An automated action failed: recorded, and the message is retried."""


_LOCK = threading.Lock()
_IDEMPOTENT: dict[tuple[str, str, str], tuple[Callable[..., Any], IdempotencyConfig]] = {}


def _idempotent_remediate(cfg: settings.Settings, context: Any) -> Callable[..., Any]:
    """`remediate` wrapped by powertools idempotency on (finding_id, dry_run), per table."""
    key = (
        cfg.idempotency_table,
        aws._key("client", "dynamodb")[2],
        str(cfg.idempotency_ttl_seconds),
    )
    with _LOCK:
        cached = _IDEMPOTENT.get(key)
        if cached is None:
            store = DynamoDBPersistenceLayer(
                table_name=cfg.idempotency_table, boto3_client=aws.client("dynamodb")
            )
            config = IdempotencyConfig(
                event_key_jmespath="[finding_id, dry_run]",
                expires_after_seconds=cfg.idempotency_ttl_seconds,
                response_hook=_duplicate_hook,
            )

            @idempotent_function(  # type: ignore[untyped-decorator]
                data_keyword_argument="finding", persistence_store=store, config=config
            )
            def run(finding: dict[str, Any]) -> dict[str, Any]:
                return remediate(settings.load(), finding)

            cached = _IDEMPOTENT[key] = (run, config)
        fn, config = cached
        if context is not None:
            config.register_lambda_context(
                context
            )  # in-progress records expire with the invocation
        return fn


class BadFinding(ValueError):
    """The message is not a finding: 400, not retried."""


def parse_finding(body: Any) -> dict[str, Any]:
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise BadFinding(f"finding is not JSON: {exc}") from None
    problem = schemas.check(schemas.validate_finding, body)
    if problem:
        raise BadFinding(problem)
    return dict(body)


@tracer.capture_method
def handle(
    cfg: settings.Settings, body: Any, context: Any = None, correlation_id: str | None = None
) -> dict[str, Any]:
    finding = parse_finding(body)
    finding["dry_run"] = cfg.dry_run
    if correlation_id:
        finding["correlation_id"] = correlation_id  # not part of the idempotency key
    result = _idempotent_remediate(cfg, context)(finding=finding)
    return {"statusCode": 200, **result}


#: a message's exception -> (status, poison: to the DLQ rather than retried); anything
#: else (a bug, an idempotency store state) is logged and retried, never lost
ERRORS = ((BadFinding, 400, True), ((ActionFailed, ClientError, BotoCoreError), 500, False))


def process(
    batch: triggers.Batch, cfg: settings.Settings, budget: triggers.Budget, context: Any
) -> Results:
    return HANDLER.each_message(
        batch,
        budget,
        lambda m: handle(cfg, m.body, context, m.correlation_id),
        ERRORS,
        unexpected="remediation raised",
    )


lambda_handler = HANDLER.entry(process)
