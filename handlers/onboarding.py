"""Onboarding API of acquired companies (API Gateway REST proxy events).

- `POST /entities` body `{"name", "domain", "posture", "acquired_on"?}` (schema:
  common/schemas.py NEW_ENTITY) -> 201 `{"id", "status": "pending", "scoring_job": MSG_ID}`:
  the entity is created in $ENTITIES_TABLE with a conditional put (its id is derived from
  the domain, so the same company twice is 409 with the existing id) and a scoring job
  `{"entity_id"}` is sent to $SCORING_QUEUE_URL.
- `GET /entities/{id}` -> 200 the entity (without its posture document) or 404.

Client mistakes are 4xx with one clear message `{"error": ...}` (400 bad JSON or schema,
404 unknown entity or route, 405 wrong method, 409 duplicate, 413 body too large); only
a failure of DynamoDB or SQS is a 5xx (503, retry later).

Correlation id: the request's `X-Correlation-Id` header (when it is a plain token of at
most 128 characters) else API Gateway's request id; it is on every log line, on the X-Ray
trace, in the response's `X-Correlation-Id` header and on the scoring job (message
attribute `correlation_id`), so the scorer and the remediator log the same id.

Metrics: EntitiesCreated, EntitiesRead, OnboardingRejected, OnboardingErrors.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from botocore.exceptions import BotoCoreError, ClientError

from handlers.common import aws, schemas, settings, triggers
from handlers.common.observability import (
    MetricUnit,
    logger_for,
    metrics_for,
    refresh_namespace,
    tracer_for,
)

logger = logger_for("onboarding")
metrics = metrics_for("onboarding")
tracer = tracer_for("onboarding")
app = APIGatewayRestResolver()
_CORRELATION = re.compile(r"^[A-Za-z0-9._:/=+-]{1,128}$")

MAX_BODY = 256 * 1024


class ClientMistake(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


class Unavailable(Exception):
    """DynamoDB or SQS failed: 503."""


def _json(status: int, doc: dict[str, Any]) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps(doc, sort_keys=True, default=_default),
    )


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return int(o) if o == o.to_integral_value() else float(o)
    raise TypeError(type(o).__name__)


def entity_id_for(domain: str) -> str:
    return "ent-" + hashlib.sha256(domain.lower().encode()).hexdigest()[:16]


@app.exception_handler(ClientMistake)  # type: ignore[untyped-decorator]
def _client_mistake(exc: ClientMistake) -> Response[Any]:
    metrics.add_metric(name="OnboardingRejected", unit=MetricUnit.Count, value=1)
    logger.warning("request rejected", extra={"status": exc.status, "error": str(exc)})
    return _json(exc.status, {"error": str(exc), **exc.extra})


@app.exception_handler(Unavailable)  # type: ignore[untyped-decorator]
def _unavailable(exc: Unavailable) -> Response[Any]:
    metrics.add_metric(name="OnboardingErrors", unit=MetricUnit.Count, value=1)
    logger.error("dependency failed", extra={"error": str(exc)})
    return _json(503, {"error": "service temporarily unavailable; retry later"})


@app.not_found
def _not_found(exc: NotFoundError) -> Response[Any]:
    ev = app.current_event
    known = ev.path in ("/entities",) or ev.path.startswith("/entities/")
    if known:
        mistake = ClientMistake(405, f"method {ev.http_method} is not allowed on {ev.path}")
    else:
        mistake = ClientMistake(404, f"no route {ev.http_method} {ev.path}")
    response: Response[Any] = _client_mistake(mistake)
    return response


def _body() -> Any:
    ev = app.current_event
    raw: str | None = ev.decoded_body if ev.is_base64_encoded else ev.body
    if not raw:
        raise ClientMistake(400, "request body is required (JSON)")
    if len(raw) > MAX_BODY:
        raise ClientMistake(413, f"request body larger than {MAX_BODY} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ClientMistake(400, f"request body is not valid JSON: {exc}") from None


@app.post("/entities")
def create_entity() -> Response[Any]:
    cfg = settings.load()
    doc = _body()
    problem = schemas.check(schemas.validate_new_entity, doc)
    if problem:
        raise ClientMistake(400, f"invalid entity: {problem}")
    eid = entity_id_for(doc["domain"])
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    item = {
        "id": eid,
        "name": doc["name"],
        "domain": doc["domain"].lower(),
        "acquired_on": doc.get("acquired_on"),
        "posture": json.dumps(doc["posture"], sort_keys=True),
        "status": "pending",
        "created_at": now,
    }
    item = {k: v for k, v in item.items() if v is not None}
    try:
        aws.table(cfg.entities_table).put_item(
            Item=item, ConditionExpression="attribute_not_exists(id)"
        )
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            raise ClientMistake(
                409, f"entity for domain {doc['domain']} already exists", id=eid
            ) from None
        raise Unavailable(str(exc)) from None
    except BotoCoreError as exc:
        raise Unavailable(str(exc)) from None
    if not cfg.scoring_queue_url:
        raise Unavailable("SCORING_QUEUE_URL is not configured")
    try:
        msg = aws.client("sqs").send_message(
            QueueUrl=cfg.scoring_queue_url,
            MessageBody=json.dumps({"entity_id": eid}),
            MessageAttributes=triggers.correlation_attributes(logger.get_correlation_id()),
        )
    except (ClientError, BotoCoreError) as exc:
        # the entity exists but no job went out: undo, so the client's retry starts clean
        try:
            aws.table(cfg.entities_table).delete_item(Key={"id": eid})
        except (ClientError, BotoCoreError):
            logger.error("could not undo entity creation", extra={"id": eid})
        raise Unavailable(str(exc)) from None
    metrics.add_metric(name="EntitiesCreated", unit=MetricUnit.Count, value=1)
    logger.info("entity created", extra={"id": eid})
    return _json(201, {"id": eid, "status": "pending", "scoring_job": msg["MessageId"]})


@app.get("/entities/<entity_id>")
def get_entity(entity_id: str) -> Response[Any]:
    cfg = settings.load()
    if schemas.check(schemas.validate_scoring_job, {"entity_id": entity_id}):
        raise ClientMistake(400, f"invalid entity id {entity_id[:80]!r}")
    try:
        item = aws.table(cfg.entities_table).get_item(Key={"id": entity_id}).get("Item")
    except (ClientError, BotoCoreError) as exc:
        raise Unavailable(str(exc)) from None
    if not item:
        raise ClientMistake(404, f"entity {entity_id} not found")
    item.pop("posture", None)
    metrics.add_metric(name="EntitiesRead", unit=MetricUnit.Count, value=1)
    return _json(200, item)


def correlation_id_of(event: dict[str, Any], context: Any) -> str:
    headers = event.get("headers") or {}
    if isinstance(headers, dict):
        for k, v in headers.items():
            if (
                isinstance(k, str)
                and k.lower() == "x-correlation-id"
                and isinstance(v, str)
                and _CORRELATION.match(v)
            ):
                return v
    rc = event.get("requestContext") or {}
    rid = rc.get("requestId") if isinstance(rc, dict) else None
    if isinstance(rid, str) and rid:
        return rid
    return str(getattr(context, "aws_request_id", "") or "unknown")


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    refresh_namespace(metrics, context)
    if not isinstance(event, dict) or "httpMethod" not in event or "path" not in event:
        metrics.add_metric(name="OnboardingRejected", unit=MetricUnit.Count, value=1)
        logger.error("not an API Gateway proxy event")
        return {
            "statusCode": 400,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"error": "not an API Gateway proxy event"}),
        }
    cid = correlation_id_of(event, context)
    logger.set_correlation_id(cid)
    tracer.put_annotation(key="correlation_id", value=cid)
    response: dict[str, Any] = app.resolve(event, context)
    headers = response.setdefault("headers", {})
    if isinstance(headers, dict):
        headers["X-Correlation-Id"] = cid
    return response
