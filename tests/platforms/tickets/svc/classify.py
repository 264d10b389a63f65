"""Classify a ticket's urgency, store it, escalate the urgent ones (plain boto3)."""

from __future__ import annotations

import json
import os

import boto3

from svc import urgency

TABLE = boto3.resource("dynamodb").Table(os.environ["TICKETS_TABLE"])
SQS = boto3.client("sqs")
MODEL = urgency.load(os.environ["MODEL_DIR"], os.environ.get("MODEL_LOCK"))


def handler(event, context):
    tickets = [json.loads(r["body"]) for r in event["Records"]] if "Records" in event else [event]
    results = []
    for t in tickets:
        [p] = MODEL.predict([t["text"]])
        urgent = p.label != MODEL.labels[0]  # URGENT and CRITICAL are escalated
        TABLE.put_item(
            Item={
                "id": t["id"],
                "urgency": p.label,
                "urgent": urgent,
                "confidence": str(p.confidence),
            }
        )
        if urgent:
            SQS.send_message(QueueUrl=os.environ["ESCALATION_QUEUE_URL"], MessageBody=json.dumps(t))
        results.append({"id": t["id"], "urgency": p.label, "urgent": urgent})
    return {"results": results}
