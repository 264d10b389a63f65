"""Classify a ticket's urgency, store it, escalate the urgent ones (plain boto3).

Per invocation it prints one CloudWatch embedded-metric-format line per label it
predicted: `Urgency` in namespace `Tickets`, the label in an `urgency` dimension, per
function and version, at one-second resolution - what its release.toml's live canary
compares (`label_metric = "Urgency"`, `label_dimension = "urgency"`). No library: EMF is
a JSON line on stdout.
"""

from __future__ import annotations

import collections
import json
import os
import time

import boto3

from svc import urgency

TABLE = boto3.resource("dynamodb").Table(os.environ["TICKETS_TABLE"])
SQS = boto3.client("sqs")
MODEL = urgency.load(os.environ["MODEL_DIR"], os.environ.get("MODEL_LOCK"))


def _metrics(counts, context):
    for label, n in counts.items():
        doc = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": "Tickets",
                        "Dimensions": [["FunctionName", "ExecutedVersion", "urgency"]],
                        "Metrics": [{"Name": "Urgency", "Unit": "Count", "StorageResolution": 1}],
                    }
                ],
            },
            "FunctionName": getattr(context, "function_name", None)
            or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            "ExecutedVersion": getattr(context, "function_version", None)
            or os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            "urgency": label,
            "Urgency": n,
        }
        print(json.dumps(doc), flush=True)


def handler(event, context):
    tickets = [json.loads(r["body"]) for r in event["Records"]] if "Records" in event else [event]
    results = []
    counts = collections.Counter()
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
        counts[p.label] += 1
    _metrics(counts, context)
    return {"results": results}
