"""Trigger shapes, the DLQ, the time budget and the correlation id of the message handlers.

The analysis, scorer and remediator functions take the same three shapes of event:

- an SQS batch (`Records[].eventSource == "aws:sqs"`): answered with a partial batch
  response `{"batchItemFailures": [...]}` (the event source mapping must report
  `ReportBatchItemFailures`), so SQS re-delivers only the failed messages and its redrive
  policy moves them to the queue's DLQ after `maxReceiveCount` attempts;
- SNS (`Records[].EventSource == "aws:sns"`, one message per invocation): Lambda invokes
  asynchronously, so a message that is not settled RAISES `Unsettled` - Lambda retries
  twice, then the function's on-failure destination or DLQ gets the event;
- a direct invoke (any other event, one message). $DIRECT_INVOKE=sync (default): the
  result document with its statusCode is returned to the caller. $DIRECT_INVOKE=async
  (functions invoked with InvocationType=Event, e.g. by EventBridge): as SNS, an unsettled
  message raises, because Lambda counts a returned 500 as a success.

A message that can never be processed (`Failed(poison=True)`: malformed, unverifiable
model, an input the model cannot run) is sent to $DLQ_URL with its error, status,
source function and correlation id as message attributes, and counts as settled; when
no DLQ is set or the send fails it stays a failure (batch item failure / raise), so it
is never lost. A failure worth retrying (`poison=False`: DynamoDB, SQS, an action that
failed, the time budget) is always a failure. A sync direct caller gets a 4xx back (its
own mistake, not kept); a poison 5xx is also kept in the DLQ.

Time budget: before each message (and each inference chunk) the handler asks
`Budget.short()`; once the invocation has less than $TIME_RESERVE_MS left, no more
messages are taken and the rest are reported as (retryable) failures.

Correlation id: the `correlation_id` message attribute (SQS, SNS) or key (direct
invoke) when present, else the message id (direct: the Lambda request id). Handlers put
it on the logger (`correlation_id` in every log line), on the X-Ray trace (annotation)
and on every message they send on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from handlers.common import aws, settings

Trigger = Literal["sqs", "sns", "direct"]
CORRELATION_ATTRIBUTE = "correlation_id"


class Failed(Exception):
    """A message that was not processed: `status` as in the error matrix; `poison` when a
    retry cannot help (it goes to the DLQ), else it is retried."""

    def __init__(self, status: int, message: str, *, poison: bool, item_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.poison = poison
        self.item_id = item_id
        self.dlq = False


class Unsettled(RuntimeError):
    """Raised to Lambda (SNS, async invoke) when a message was neither processed nor kept
    in the DLQ, so Lambda retries and then hands the event to the on-failure destination."""


@dataclass(frozen=True)
class Message:
    id: str
    body: Any
    correlation_id: str
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Batch:
    trigger: Trigger
    messages: tuple[Message, ...]
    asynchronous: bool


def _sqs_attr(record: dict[str, Any]) -> str | None:
    attrs = record.get("messageAttributes") or {}
    v = (attrs.get(CORRELATION_ATTRIBUTE) or {}).get("stringValue")
    return v if isinstance(v, str) and v else None


def _sns_attr(sns: dict[str, Any]) -> str | None:
    attrs = sns.get("MessageAttributes") or {}
    v = (attrs.get(CORRELATION_ATTRIBUTE) or {}).get("Value")
    return v if isinstance(v, str) and v else None


def batch_of(event: Any, context: Any, cfg: settings.Settings) -> Batch:
    """The messages of an event, whatever its shape."""
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list) and records and all(isinstance(r, dict) for r in records):
        if all(r.get("EventSource") == "aws:sns" or "Sns" in r for r in records):
            msgs = []
            for n, r in enumerate(records):
                sns = r.get("Sns") or {}
                mid = str(sns.get("MessageId") or f"sns-{n}")
                msgs.append(Message(mid, sns.get("Message", ""), _sns_attr(sns) or mid, r))
            return Batch("sns", tuple(msgs), True)
        if all("messageId" in r for r in records):
            msgs = [
                Message(
                    str(r["messageId"]), r.get("body", ""), _sqs_attr(r) or str(r["messageId"]), r
                )
                for r in records
            ]
            return Batch("sqs", tuple(msgs), False)
    if isinstance(records, list) and not records:
        return Batch("sqs", (), False)
    request_id = str(getattr(context, "aws_request_id", "") or "direct")
    cid = event.get(CORRELATION_ATTRIBUTE) if isinstance(event, dict) else None
    if isinstance(event, dict) and cid is not None:
        event = {k: v for k, v in event.items() if k != CORRELATION_ATTRIBUTE}
    cid = cid if isinstance(cid, str) and cid else request_id
    return Batch("direct", (Message(request_id, event, cid),), cfg.direct_invoke == "async")


class Budget:
    """The invocation's remaining time against $TIME_RESERVE_MS."""

    def __init__(self, context: Any, reserve_ms: int) -> None:
        self._context = context
        self.reserve_ms = reserve_ms

    def short(self) -> bool:
        remaining = getattr(self._context, "get_remaining_time_in_millis", None)
        if remaining is None:
            return False
        return int(remaining()) < self.reserve_ms


def out_of_time(budget: Budget) -> Failed:
    return Failed(
        503,
        f"not processed: less than {budget.reserve_ms} ms of the invocation left",
        poison=False,
    )


@contextmanager
def correlated(logger: Any, message: Message, tracer: Any = None) -> Iterator[None]:
    """Log lines (and the trace) inside carry the message's correlation id and id."""
    logger.set_correlation_id(message.correlation_id)
    logger.append_keys(message_id=message.id)
    if tracer is not None:
        tracer.put_annotation(key="correlation_id", value=message.correlation_id)
    try:
        yield
    finally:
        logger.remove_keys(["message_id"])


def correlation_attributes(correlation_id: str | None) -> dict[str, Any]:
    """SQS MessageAttributes carrying the correlation id to the next function."""
    if not correlation_id:
        return {}
    return {CORRELATION_ATTRIBUTE: {"DataType": "String", "StringValue": correlation_id[:256]}}


def _dlq_body(message: Message) -> str:
    if isinstance(message.body, str):
        return message.body
    if isinstance(message.body, bytes):
        return message.body.decode("utf-8", "replace")
    return json.dumps(message.body, sort_keys=True, default=str)


def to_dlq(
    cfg: settings.Settings, message: Message, failure: Failed, source: str, logger: Any
) -> bool:
    """Keep a message that cannot be processed in $DLQ_URL; False when it could not be."""
    if not cfg.dlq_url:
        return False
    attrs = {
        "error": {"DataType": "String", "StringValue": (str(failure) or "failed")[:1000]},
        "status": {"DataType": "Number", "StringValue": str(failure.status)},
        "source": {"DataType": "String", "StringValue": source},
        "message_id": {"DataType": "String", "StringValue": message.id[:256]},
        **correlation_attributes(message.correlation_id),
    }
    try:
        aws.client("sqs").send_message(
            QueueUrl=cfg.dlq_url,
            MessageBody=_dlq_body(message) or "(empty)",
            MessageAttributes=attrs,
        )
    except (ClientError, BotoCoreError) as exc:
        logger.error("DLQ send failed", extra={"message_id": message.id, "error": str(exc)})
        return False
    logger.info(
        "message kept in the DLQ", extra={"message_id": message.id, "status": failure.status}
    )
    return True


def settle(
    batch: Batch,
    results: dict[str, dict[str, Any] | Failed],
    cfg: settings.Settings,
    *,
    source: str,
    logger: Any,
) -> Any:
    """The answer to the trigger: poison messages kept in the DLQ, the rest reported."""
    unsettled: list[tuple[Message, Failed]] = []
    for m in batch.messages:
        r = results.get(m.id)
        if r is None:
            r = results[m.id] = Failed(500, "not processed", poison=False)
        if not isinstance(r, Failed):
            continue
        keep = r.poison and (batch.trigger != "direct" or batch.asynchronous or r.status >= 500)
        with correlated(logger, m):
            kept = keep and to_dlq(cfg, m, r, source, logger)
        if kept:
            r.dlq = True
            if batch.trigger != "direct" or batch.asynchronous:
                continue
        unsettled.append((m, r))
    if batch.trigger == "sqs":
        return {"batchItemFailures": [{"itemIdentifier": m.id} for m, _ in unsettled]}
    if unsettled and (batch.trigger == "sns" or batch.asynchronous):
        first_m, first = unsettled[0]
        raise Unsettled(
            f"{len(unsettled)} of {len(batch.messages)} message(s) not processed "
            f"(first {first_m.id}: {first.status} {first})"
        )
    docs = [_doc(results[m.id]) for m in batch.messages]
    if batch.trigger == "direct":
        return docs[0]
    return {"statusCode": 200, "results": docs}


def _doc(r: dict[str, Any] | Failed) -> dict[str, Any]:
    if not isinstance(r, Failed):
        return r
    doc: dict[str, Any] = {"statusCode": r.status, "error": str(r)}
    if r.item_id is not None:
        doc["id"] = r.item_id
    if (r.poison and r.status >= 500) or r.dlq:
        doc["dlq"] = r.dlq
    return doc
