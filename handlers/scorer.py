"""Security posture score of an acquired company: Rego policies + recent news sentiment.

Input: a scoring job `{"entity_id", "posture"?}` as a direct invoke or in SQS records (the
onboarding handler enqueues them). Without `posture`, the entity's posture document is
read from $ENTITIES_TABLE. The document (accounts, controls, findings; schema in
common/schemas.py) is evaluated by the policies in $SCORING_POLICY_DIR (policy/scoring,
package `scoring.posture`, via regopy) together with the entity's recent news sentiment:
the last $SENTIMENT_WINDOW analysis results for the entity ($ANALYSIS_TABLE, GSI
$ANALYSIS_ENTITY_INDEX). With W = $SENTIMENT_WEIGHT (default 0.1):

    score = round((1 - W) * posture_score + W * 100 * positive / count)   (posture_score when no news)

The result `{score 0-100, grade, findings[]}` is returned, stored in $SCORES_TABLE
(entity_id, scored_at) and on the entity, and each finding is sent to $FINDINGS_QUEUE_URL
(if set) for the remediator, with a stable `finding_id` (so re-scoring is idempotent
downstream). A bad job is 400 (not retried); a DynamoDB/SQS/policy failure is 500
(retried: SQS batch item failure).

Triggers: SQS (partial batch), SNS, direct/async invoke (common/triggers.py). A job that
can never be scored (400 bad job, 404 unknown entity) is logged at ERROR and kept in
$DLQ_URL; a 500 is retried (batch item failure; raised under SNS/async). The job's
correlation id (message attribute `correlation_id`, set by onboarding) is logged and
passed on with every finding.

Metrics: PostureScore, ScoringErrors, FindingsPublished.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import BotoCoreError, ClientError

from handlers.common import aws, policy, schemas, settings, triggers
from handlers.common.entry import Handler, Results
from handlers.common.observability import MetricUnit

HANDLER = Handler.create("scorer", error_metric="ScoringErrors", failure_log="scoring failed")
logger, metrics, tracer = HANDLER.logger, HANDLER.metrics, HANDLER.tracer

QUERY = "data.scoring.posture.result"
SEVERITY_ORDER = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3, "INFO": 4}


class BadRequest(ValueError):
    """A client mistake: 400, not retried."""


class NotFound(LookupError):
    """The entity does not exist: 404, not retried."""


class Retryable(RuntimeError):
    """An outside system failed: 500, retried."""


def finding_id(entity_id: str, rule: str, resource: str) -> str:
    return hashlib.sha256(f"{entity_id}\0{rule}\0{resource}".encode()).hexdigest()[:32]


def _plain(o: Any) -> Any:
    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_plain(v) for v in o]
    return o


def sentiment_for(cfg: settings.Settings, entity_id: str) -> dict[str, int]:
    """Counts of the entity's most recent analysis results."""
    try:
        resp = aws.table(cfg.analysis_table).query(
            IndexName=cfg.analysis_entity_index,
            KeyConditionExpression=Key("entity_id").eq(entity_id),
            ScanIndexForward=False,
            Limit=cfg.sentiment_window,
        )
    except (ClientError, BotoCoreError) as exc:
        raise Retryable(f"analysis results unavailable: {exc}") from None
    labels = [str(i.get("label", "")).upper() for i in resp.get("Items", [])]
    return {
        "count": len(labels),
        "positive": labels.count("POSITIVE"),
        "negative": labels.count("NEGATIVE"),
    }


def _posture_of(cfg: settings.Settings, entity_id: str) -> dict[str, Any]:
    try:
        item = aws.table(cfg.entities_table).get_item(Key={"id": entity_id}).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise Retryable(f"entity store unavailable: {exc}") from None
    if not item:
        raise NotFound(f"entity {entity_id} does not exist")
    posture = _plain(item.get("posture"))
    if isinstance(posture, str):
        posture = json.loads(posture)
    if not isinstance(posture, dict):
        raise BadRequest(f"entity {entity_id} has no posture document")
    return posture


def score(cfg: settings.Settings, entity_id: str, posture: dict[str, Any]) -> dict[str, Any]:
    """Evaluate the policy; the full result (not yet stored)."""
    problem = schemas.check(
        schemas.validate_scoring_job, {"entity_id": entity_id, "posture": posture}
    )
    if problem:
        raise BadRequest(problem)
    sentiment = sentiment_for(cfg, entity_id)
    doc = {
        "posture": posture,
        "sentiment": sentiment,
        "weights": {"sentiment": cfg.sentiment_weight},
    }
    try:
        result, digest = policy.evaluate(cfg.scoring_policy_dir, QUERY, doc)
    except policy.PolicyError as exc:
        raise Retryable(str(exc)) from None
    if not isinstance(result, dict) or not isinstance(result.get("score"), (int, float)):
        raise Retryable(f"policy returned no {QUERY}")
    findings = sorted(
        result.get("findings") or [],
        key=lambda f: (SEVERITY_ORDER.get(f["severity"], 9), f["rule"], f["resource"]),
    )
    for f in findings:
        f["finding_id"] = finding_id(entity_id, f["rule"], f["resource"])
    return {
        "entity_id": entity_id,
        "score": round(result["score"]),
        "grade": result["grade"],
        "posture_score": round(result["posture_score"]),
        "news_score": None
        if result.get("news_score") is None
        else round(float(result["news_score"]), 2),
        "sentiment": sentiment,
        "sentiment_weight": cfg.sentiment_weight,
        "findings": findings,
        "policy_digest": digest,
    }


def _store_and_publish(
    cfg: settings.Settings, result: dict[str, Any], correlation_id: str | None = None
) -> int:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    result["scored_at"] = now
    item = {
        "entity_id": result["entity_id"],
        "scored_at": now,
        "score": result["score"],
        "grade": result["grade"],
        "posture_score": result["posture_score"],
        "findings": json.dumps(result["findings"], sort_keys=True),
        "sentiment": result["sentiment"],
        "policy_digest": result["policy_digest"],
    }
    try:
        aws.table(cfg.scores_table).put_item(Item=item)
        aws.table(cfg.entities_table).update_item(
            Key={"id": result["entity_id"]},
            UpdateExpression="SET last_score = :s, grade = :g, scored_at = :t, #st = :st",
            ExpressionAttributeNames={"#st": "status"},
            ExpressionAttributeValues={
                ":s": result["score"],
                ":g": result["grade"],
                ":t": now,
                ":st": "scored",
            },
        )
    except (ClientError, BotoCoreError) as exc:
        raise Retryable(f"score not stored: {exc}") from None
    if not cfg.findings_queue_url or not result["findings"]:
        return 0
    sqs = aws.client("sqs")
    entries = [
        {
            "Id": f["finding_id"],
            "MessageBody": json.dumps({**f, "entity_id": result["entity_id"]}, sort_keys=True),
            "MessageAttributes": triggers.correlation_attributes(correlation_id),
        }
        for f in result["findings"]
    ]
    sent = 0
    for i in range(0, len(entries), 10):
        try:
            resp = sqs.send_message_batch(
                QueueUrl=cfg.findings_queue_url, Entries=entries[i : i + 10]
            )
        except (ClientError, BotoCoreError) as exc:
            raise Retryable(f"findings not published: {exc}") from None
        if resp.get("Failed"):
            raise Retryable(f"findings not published: {resp['Failed'][0].get('Message', 'failed')}")
        sent += len(resp.get("Successful", []))
    metrics.add_metric(name="FindingsPublished", unit=MetricUnit.Count, value=sent)
    return sent


@tracer.capture_method
def run_job(cfg: settings.Settings, job: Any, correlation_id: str | None = None) -> dict[str, Any]:
    if isinstance(job, (str, bytes)):
        try:
            job = json.loads(job)
        except ValueError as exc:
            raise BadRequest(f"job is not JSON: {exc}") from None
    problem = schemas.check(schemas.validate_scoring_job, job)
    if problem:
        raise BadRequest(problem)
    entity_id = job["entity_id"]
    posture = job.get("posture") or _posture_of(cfg, entity_id)
    result = score(cfg, entity_id, posture)
    _store_and_publish(cfg, result, correlation_id)
    metrics.add_metric(name="PostureScore", unit=MetricUnit.NoUnit, value=result["score"])
    logger.info(
        "scored",
        extra={
            "entity_id": entity_id,
            "score": result["score"],
            "grade": result["grade"],
            "findings": len(result["findings"]),
        },
    )
    return {"statusCode": 200, **result}


#: a job's exception -> (status, poison: to the DLQ rather than retried)
ERRORS = ((BadRequest, 400, True), (NotFound, 404, True), (Retryable, 500, False))


def process(
    batch: triggers.Batch, cfg: settings.Settings, budget: triggers.Budget, context: Any = None
) -> Results:
    return HANDLER.each_message(
        batch, budget, lambda m: run_job(cfg, m.body, m.correlation_id), ERRORS
    )


lambda_handler = HANDLER.entry(process)
