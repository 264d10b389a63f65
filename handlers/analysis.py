"""Sentiment analysis of news items with the baked-in model: SQS batches or direct invoke.

Input item: `{"id": str, "text": str, "entity_id"?: str}`. The model (verified against
the image's lock at cold start, see common/model.py) labels each text; inputs longer than
the model's 512-token limit are truncated (and marked so). Each result is written to
DynamoDB ($ANALYSIS_TABLE, key `id`) with a conditional put: a duplicate id is skipped
and counted (`DuplicateAnalysisSkipped`), never overwritten.

Triggers: SQS (partial batch response), SNS and direct/async invoke (common/triggers.py).
Error matrix (docs/example-platform.md, "Handlers: error matrix and triggers"):

| condition                           | log   | metric                     | message           | status |
|-------------------------------------|-------|----------------------------|-------------------|--------|
| ModelLoadError (model not verified) | ERROR | ModelLoadErrors+1 (a load) | DLQ               | 500    |
| InferenceError                      | ERROR | AnalysisErrors+1           | DLQ               | 500    |
| ConditionalCheckFailedException     | WARN  | DuplicateAnalysisSkipped+1 | done (no DLQ)     | 200    |
| any other DynamoDB ClientError      | ERROR | AnalysisErrors+1           | retried, then DLQ | 500    |
| malformed JSON / invalid item       | ERROR | AnalysisErrors+1           | DLQ               | 400    |
| time budget short                   | ERROR | -                          | retried           | 503    |

"DLQ": sent to $DLQ_URL at once; without a DLQ (or when the send fails) the message is a
batch item failure / raised, so the trigger's own redrive or on-failure destination
keeps it. "retried, then DLQ": a batch item failure (raised under SNS/async), the
queue's redrive policy moves it to the DLQ after maxReceiveCount deliveries. Records
carry `expires_at` ($ANALYSIS_TTL_DAYS, default 90; the table's TTL attribute).

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

from botocore.exceptions import BotoCoreError, ClientError

from handlers.common import aws, settings, triggers
from handlers.common.entry import Handler, Results
from handlers.common.model import (
    InferenceError,
    ModelLoadError,
    Prediction,
    SentimentModel,
    get_model,
)
from handlers.common.observability import MetricUnit, count_prediction

#: a failed message as the error matrix says: logged at ERROR, AnalysisErrors+1
HANDLER = Handler.create(
    "analysis",
    error_metric="AnalysisErrors",
    failure_log="message not processed",
    log_item_id=True,
)
logger, metrics, tracer = HANDLER.logger, HANDLER.metrics, HANDLER.tracer
_fail = HANDLER.fail

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
    if cfg.analysis_ttl_days > 0:  # DynamoDB TTL attribute (epoch seconds)
        record["expires_at"] = int(time.time()) + cfg.analysis_ttl_days * 86400
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


#: the metric per label the live canary reads (release.prod.toml: traffic.label_metrics)
PREDICTION_METRICS = {"POSITIVE": "SentimentPositive", "NEGATIVE": "SentimentNegative"}


def _count(pred: Prediction, cfg: settings.Settings) -> None:
    count_prediction(metrics, pred.label.upper(), PREDICTION_METRICS, resolution=1)
    if pred.confidence < cfg.low_confidence:
        metrics.add_metric(name="LowConfidence", unit=MetricUnit.Count, value=1)


def _store(
    cfg: settings.Settings, model: SentimentModel, item: Item, pred: Prediction
) -> dict[str, Any]:
    """200 stored / 200 duplicate; raises Retry on a DynamoDB failure."""
    try:
        stored = _put(cfg, model, item, pred)
    except (ClientError, BotoCoreError) as exc:
        metrics.add_metric(name="AnalysisErrors", unit=MetricUnit.Count, value=1)
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
        logger.warning("duplicate id skipped", extra={"id": item.id})
    return doc


def _unwrap(body: Any) -> Any:
    # a direct invoke carries the item itself, or (API-style) a JSON string in "body"
    if isinstance(body, dict) and "body" in body and "id" not in body:
        return body["body"]
    return body


@tracer.capture_method
def process(
    batch: triggers.Batch, cfg: settings.Settings, budget: triggers.Budget, context: Any = None
) -> Results:
    """Every message of the batch: its result document or why it failed."""
    results: Results = {}
    items: dict[str, Item] = {}
    by_id = {m.id: m for m in batch.messages}
    for m in batch.messages:
        with triggers.correlated(logger, m):
            try:
                items[m.id] = parse_item(_unwrap(m.body))
            except Malformed as exc:
                results[m.id] = _fail(400, str(exc), poison=True)
    if not items:
        return results
    try:
        model = _load_model(cfg)
    except ModelLoadError as exc:
        for mid, item in items.items():
            with triggers.correlated(logger, by_id[mid]):
                results[mid] = _fail(
                    500, f"model not verified: {exc}", poison=True, item_id=item.id, count=False
                )
        return results
    order = list(items)
    preds: dict[str, Prediction | InferenceError] = {}
    for start in range(0, len(order), cfg.batch_size):
        if budget.short():
            break
        chunk = order[start : start + cfg.batch_size]
        got = _predict(model, [items[m] for m in chunk], cfg.batch_size)
        preds.update({m: got[n] for n, m in enumerate(chunk)})
    for mid in order:
        item = items[mid]
        with triggers.correlated(logger, by_id[mid]):
            pred = preds.get(mid)
            if pred is None or budget.short():
                results[mid] = _fail(
                    503,
                    str(triggers.out_of_time(budget)),
                    poison=False,
                    item_id=item.id,
                    count=False,
                )
            elif isinstance(pred, InferenceError):
                results[mid] = _fail(500, str(pred), poison=True, item_id=item.id)
            else:
                try:
                    results[mid] = _store(cfg, model, item, pred)
                except Retry as exc:
                    results[mid] = triggers.Failed(500, str(exc), poison=False, item_id=item.id)
    return results


lambda_handler = HANDLER.entry(process)
