"""Sentiment analysis of news items with the baked-in model: SQS batches or direct invoke.

Input item: `{"id": str, "text": str, "entity_id"?: str}`. The model (verified against
the image's lock at cold start, see common/model.py) labels each text; inputs longer than
the model's 512-token limit are truncated (and marked so). Each result is written to
DynamoDB ($ANALYSIS_TABLE, key `id`) with a conditional put: a duplicate id is skipped
and counted (`DuplicateAnalysisSkipped`), never overwritten.

Error matrix (direct invoke returns the statusCode; in an SQS batch a 500 is a batch item
failure, so SQS re-delivers only that message - partial batch response):

| condition                          | status | what happens                                      |
|------------------------------------|--------|---------------------------------------------------|
| ModelLoadError (model not verified)| 500    | item sent to $DLQ_URL (if the send fails or no DLQ is set: batch item failure) |
| InferenceError                     | 500    | retried (batch item failure)                      |
| ConditionalCheckFailedException    | 200    | duplicate: skipped and counted                    |
| any other DynamoDB ClientError     | 500    | retried (batch item failure)                      |
| malformed JSON / invalid item      | 400    | logged and counted, not retried                   |

Metrics (EMF): ModelLoadTimeMs, InferenceLatencyMs, AnalysisErrors, ModelLoadErrors,
DuplicateAnalysisSkipped, SentimentPositive, SentimentNegative, LowConfidence.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from botocore.exceptions import BotoCoreError, ClientError

from handlers.common import aws, settings
from handlers.common.model import (
    InferenceError,
    ModelLoadError,
    Prediction,
    SentimentModel,
    get_model,
)
from handlers.common.observability import MetricUnit, logger_for, metrics_for, refresh_namespace

logger = logger_for("analysis")
metrics = metrics_for("analysis")

MAX_TEXT_CHARS = 100_000
MAX_ID_CHARS = 512


class Malformed(ValueError):
    """A client mistake in the item: 400, never retried."""


class Retry(RuntimeError):
    """Raised inside the batch record handler: the message is reported as failed."""


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    entity_id: str | None


def parse_item(body: Any) -> Item:
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body)
        except ValueError as exc:
            raise Malformed(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Malformed("item must be a JSON object with id and text")
    item_id, text, entity = body.get("id"), body.get("text"), body.get("entity_id")
    if not isinstance(item_id, str) or not item_id.strip() or len(item_id) > MAX_ID_CHARS:
        raise Malformed(f"id must be a non-empty string of at most {MAX_ID_CHARS} characters")
    if not isinstance(text, str) or not text.strip():
        raise Malformed("text must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise Malformed(f"text is longer than {MAX_TEXT_CHARS} characters")
    if entity is not None and (not isinstance(entity, str) or not entity.strip()):
        raise Malformed("entity_id must be a non-empty string when given")
    return Item(item_id, text, entity)


def _load_model(cfg: settings.Settings) -> SentimentModel:
    try:
        model, fresh = get_model(
            cfg.model_dir, cfg.model_lock, cfg.max_tokens, cfg.intra_op_threads
        )
    except ModelLoadError as exc:
        metrics.add_metric(name="ModelLoadErrors", unit=MetricUnit.Count, value=1)
        logger.error("model load failed", extra={"error": str(exc), "problems": exc.problems[:20]})
        raise
    if fresh:
        metrics.add_metric(
            name="ModelLoadTimeMs", unit=MetricUnit.Milliseconds, value=round(model.load_ms, 3)
        )
        logger.info(
            "model loaded", extra={"model_digest": model.digest, "load_ms": round(model.load_ms, 1)}
        )
    return model


def _predict(
    model: SentimentModel, items: list[Item], batch_size: int
) -> dict[int, Prediction | InferenceError]:
    """Predictions by position; a failing batch is retried item by item, so one poison
    input fails alone."""
    out: dict[int, Prediction | InferenceError] = {}
    if not items:
        return out
    t0 = time.perf_counter()
    try:
        preds = model.predict([i.text for i in items], batch_size=batch_size)
        metrics.add_metric(
            name="InferenceLatencyMs",
            unit=MetricUnit.Milliseconds,
            value=round((time.perf_counter() - t0) * 1000.0, 3),
        )
        return dict(enumerate(preds))
    except InferenceError as exc:
        logger.warning("batch inference failed; isolating items", extra={"error": str(exc)})
    for n, item in enumerate(items):
        try:
            out[n] = model.predict([item.text], batch_size=1)[0]
        except InferenceError as exc:
            out[n] = exc
    return out


def _put(cfg: settings.Settings, model: SentimentModel, item: Item, pred: Prediction) -> bool:
    """Store the result; False when the id already exists (duplicate, not overwritten)."""
    record: dict[str, Any] = {
        "id": item.id,
        "label": pred.label,
        "confidence": Decimal(f"{pred.confidence:.6f}"),
        "low_confidence": pred.confidence < cfg.low_confidence,
        "truncated": pred.truncated,
        "text_sha256": hashlib.sha256(item.text.encode("utf-8")).hexdigest(),
        "model_digest": model.digest,
        "analyzed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    if item.entity_id:
        record["entity_id"] = item.entity_id
    try:
        aws.table(cfg.analysis_table).put_item(
            Item=record, ConditionExpression="attribute_not_exists(id)"
        )
    except ClientError as exc:
        if aws.error_code(exc) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _count(pred: Prediction, cfg: settings.Settings) -> None:
    label = pred.label.upper()
    if label == "POSITIVE":
        metrics.add_metric(name="SentimentPositive", unit=MetricUnit.Count, value=1)
    elif label == "NEGATIVE":
        metrics.add_metric(name="SentimentNegative", unit=MetricUnit.Count, value=1)
    if pred.confidence < cfg.low_confidence:
        metrics.add_metric(name="LowConfidence", unit=MetricUnit.Count, value=1)


def _error(status: int, message: str, item_id: str | None = None) -> dict[str, Any]:
    if status >= 400:
        metrics.add_metric(name="AnalysisErrors", unit=MetricUnit.Count, value=1)
    doc: dict[str, Any] = {"statusCode": status, "error": message}
    if item_id is not None:
        doc["id"] = item_id
    return doc


def _store(
    cfg: settings.Settings, model: SentimentModel, item: Item, pred: Prediction
) -> dict[str, Any]:
    """200 stored / 200 duplicate; raises Retry on a DynamoDB failure."""
    try:
        stored = _put(cfg, model, item, pred)
    except (ClientError, BotoCoreError) as exc:
        _error(500, "")
        logger.error("result not stored", extra={"id": item.id, "error": str(exc)})
        raise Retry(f"DynamoDB: {aws.error_code(exc) or type(exc).__name__}: {exc}") from None
    doc = {
        "statusCode": 200,
        "id": item.id,
        "label": pred.label,
        "confidence": round(pred.confidence, 6),
        "low_confidence": pred.confidence < cfg.low_confidence,
        "truncated": pred.truncated,
        "duplicate": not stored,
    }
    if stored:
        _count(pred, cfg)
    else:
        metrics.add_metric(name="DuplicateAnalysisSkipped", unit=MetricUnit.Count, value=1)
        logger.info("duplicate id skipped", extra={"id": item.id})
    return doc


def _to_dlq(cfg: settings.Settings, body: str, reason: str) -> bool:
    if not cfg.dlq_url:
        return False
    try:
        aws.client("sqs").send_message(
            QueueUrl=cfg.dlq_url,
            MessageBody=body,
            MessageAttributes={"error": {"DataType": "String", "StringValue": reason[:1000]}},
        )
    except (ClientError, BotoCoreError) as exc:
        logger.error("DLQ send failed", extra={"error": str(exc)})
        return False
    return True


def _handle_sqs(
    event: dict[str, Any], context: Any, cfg: settings.Settings
) -> PartialItemFailureResponse:
    records = event.get("Records") or []
    items: dict[str, Item] = {}
    malformed: dict[str, str] = {}
    for r in records:
        try:
            items[r["messageId"]] = parse_item(r.get("body", ""))
        except Malformed as exc:
            malformed[r["messageId"]] = str(exc)
    model: SentimentModel | None = None
    load_error: ModelLoadError | None = None
    if items:
        try:
            model = _load_model(cfg)
        except ModelLoadError as exc:
            load_error = exc
    order = list(items)
    preds = _predict(model, [items[m] for m in order], cfg.batch_size) if model else {}
    by_id = {m: preds[n] for n, m in enumerate(order)} if model else {}

    def record_handler(record: Any) -> dict[str, Any]:
        mid = record.message_id
        if mid in malformed:
            logger.warning(
                "malformed item dropped (not retried)",
                extra={"message_id": mid, "error": malformed[mid]},
            )
            return _error(400, malformed[mid])
        item = items[mid]
        if load_error is not None:
            _error(500, str(load_error), item.id)
            if _to_dlq(cfg, record.body, f"ModelLoadError: {load_error}"):
                return {
                    "statusCode": 500,
                    "id": item.id,
                    "error": "model not verified; sent to DLQ",
                }
            raise Retry(f"ModelLoadError: {load_error}")
        assert model is not None
        pred = by_id[mid]
        if isinstance(pred, InferenceError):
            _error(500, str(pred), item.id)
            raise Retry(str(pred))
        return _store(cfg, model, item, pred)

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


def _handle_direct(event: Any, cfg: settings.Settings) -> dict[str, Any]:
    # a direct invoke carries the item itself, or (API-style) a JSON string in "body"
    if isinstance(event, dict) and "body" in event and "id" not in event:
        event = event["body"]
    try:
        item = parse_item(event)
    except Malformed as exc:
        return _error(400, str(exc))
    try:
        model = _load_model(cfg)
    except ModelLoadError as exc:
        sent = _to_dlq(
            cfg,
            json.dumps({"id": item.id, "text": item.text, "entity_id": item.entity_id}),
            f"ModelLoadError: {exc}",
        )
        doc = _error(500, f"model not verified: {exc}", item.id)
        doc["dlq"] = sent
        return doc
    pred = _predict(model, [item], 1)[0]
    if isinstance(pred, InferenceError):
        return _error(500, str(pred), item.id)
    try:
        return _store(cfg, model, item, pred)
    except Retry as exc:
        return {"statusCode": 500, "id": item.id, "error": str(exc)}


@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: Any) -> Any:
    refresh_namespace(metrics, context)
    cfg = settings.load()
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        return _handle_sqs(event, context, cfg)
    return _handle_direct(event, cfg)
