"""handlers.onboarding: API Gateway proxy events, valid and malformed; then the whole flow
onboarding -> scoring queue -> scorer -> findings queue -> remediator on moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from handlers import onboarding, remediator, scorer
from tests.handlers.conftest import Ctx, metric_total

DATA = __import__("pathlib").Path(__file__).parent / "data"


def api(method: str, path: str, body: Any = None, raw: str | None = None) -> dict[str, Any]:
    ev = {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "stage": "prod",
            "requestId": "r-1",
            "path": "/prod" + path,
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": raw if raw is not None else (None if body is None else json.dumps(body)),
        "isBase64Encoded": False,
    }
    r = onboarding.lambda_handler(ev, Ctx())
    return {"status": r["statusCode"], "body": json.loads(r["body"]) if r.get("body") else None}


def new_entity(
    domain: str = "acme-widgets.com", sample: str = "posture-weak.json"
) -> dict[str, Any]:
    return {
        "name": "Acme Widgets",
        "domain": domain,
        "acquired_on": "2026-10-01",
        "posture": json.loads((DATA / sample).read_text()),
    }


def _drain(url: str) -> list[dict[str, Any]]:
    sqs, out = boto3.client("sqs"), []
    while msgs := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        out += msgs
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
            ],
        )
    return out


def test_create_then_get(handler_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    r = api("POST", "/entities", new_entity())
    assert r["status"] == 201 and r["body"]["status"] == "pending"
    eid = r["body"]["id"]
    assert eid == onboarding.entity_id_for("acme-widgets.com")
    jobs = _drain(handler_env["SCORING_QUEUE_URL"])
    assert [json.loads(m["Body"]) for m in jobs] == [{"entity_id": eid}]
    assert jobs[0]["MessageId"] == r["body"]["scoring_job"]
    g = api("GET", f"/entities/{eid}")
    assert g["status"] == 200
    assert {k: g["body"][k] for k in ("id", "name", "domain", "status")} == {
        "id": eid,
        "name": "Acme Widgets",
        "domain": "acme-widgets.com",
        "status": "pending",
    }
    assert "posture" not in g["body"]
    assert metric_total(capsys.readouterr().out, "EntitiesCreated") == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "raw", "status", "error"),
    [
        ("POST", "/entities", None, "{oops", 400, "request body is not valid JSON"),
        ("POST", "/entities", None, None, 400, "request body is required (JSON)"),
        ("POST", "/entities", [1], None, 400, "invalid entity: request must be object"),
        (
            "POST",
            "/entities",
            {"name": "x", "domain": "acme.com"},
            None,
            400,
            "invalid entity: request must contain ['posture'] properties",
        ),
        ("POST", "/entities", "DOMAIN", None, 400, "invalid entity: domain must match pattern"),
        (
            "POST",
            "/entities",
            "EXTRA",
            None,
            400,
            "invalid entity: request must not contain {'ceo'} properties",
        ),
        (
            "POST",
            "/entities",
            "SEVERITY",
            None,
            400,
            "invalid entity: posture.findings[0].severity must be one of",
        ),
        (
            "POST",
            "/entities",
            None,
            "x" * (300 * 1024),
            413,
            "request body larger than 262144 bytes",
        ),
        (
            "GET",
            "/entities/ent-0000000000000000",
            None,
            None,
            404,
            "entity ent-0000000000000000 not found",
        ),
        ("GET", "/entities/bad%20id!", None, None, 400, "invalid entity id"),
        (
            "DELETE",
            "/entities/ent-1",
            None,
            None,
            405,
            "method DELETE is not allowed on /entities/ent-1",
        ),
        ("GET", "/companies", None, None, 404, "no route GET /companies"),
    ],
)
def test_client_mistakes_are_4xx_with_a_clear_message(
    handler_env: dict[str, str],
    method: str,
    path: str,
    body: Any,
    raw: str | None,
    status: int,
    error: str,
) -> None:
    if body == "DOMAIN":
        body = new_entity(domain="Not A Domain")
    elif body == "EXTRA":
        body = {**new_entity(), "ceo": "x"}
    elif body == "SEVERITY":
        body = new_entity()
        body["posture"]["findings"][0]["severity"] = "urgent"
    r = api(method, path, body, raw)
    assert r["status"] == status and r["body"]["error"].startswith(error), r
    assert _drain(handler_env["SCORING_QUEUE_URL"]) == []


def test_duplicate_is_409_and_non_proxy_event_is_400(handler_env: dict[str, str]) -> None:
    first = api("POST", "/entities", new_entity())
    again = api("POST", "/entities", new_entity())
    assert again == {
        "status": 409,
        "body": {
            "error": "entity for domain acme-widgets.com already exists",
            "id": first["body"]["id"],
        },
    }
    r = onboarding.lambda_handler({"foo": 1}, Ctx())
    assert r["statusCode"] == 400 and "not an API Gateway proxy event" in r["body"]


def test_dependency_failure_is_503_and_leaves_nothing(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCORING_QUEUE_URL", handler_env["SCORING_QUEUE_URL"] + "-gone")
    r = api("POST", "/entities", new_entity())
    assert r == {"status": 503, "body": {"error": "service temporarily unavailable; retry later"}}
    assert boto3.resource("dynamodb").Table(handler_env["ENTITIES_TABLE"]).scan()["Items"] == []


def test_whole_flow_onboarding_scorer_remediator(handler_env: dict[str, str]) -> None:
    eid = api("POST", "/entities", new_entity(sample="posture-mixed.json"))["body"]["id"]
    sqs = boto3.client("sqs")

    def as_event(msgs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": {},
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
                    "awsRegion": "us-east-1",
                }
                for m in msgs
            ]
        }

    jobs = sqs.receive_message(QueueUrl=handler_env["SCORING_QUEUE_URL"], MaxNumberOfMessages=10)[
        "Messages"
    ]
    assert scorer.lambda_handler(as_event(jobs), Ctx()) == {"batchItemFailures": []}
    ent = api("GET", f"/entities/{eid}")["body"]
    assert (ent["status"], ent["last_score"], ent["grade"]) == ("scored", 80, "B")
    findings = _drain(handler_env["FINDINGS_QUEUE_URL"])
    assert len(findings) == 4
    assert remediator.lambda_handler(as_event(findings), Ctx()) == {"batchItemFailures": []}
    recs = boto3.resource("dynamodb").Table(handler_env["REMEDIATIONS_TABLE"]).scan()["Items"]
    assert sorted((r["rule"], r["status"]) for r in recs) == [
        ("guardduty-disabled", "planned"),
        ("no-incident-response-plan", "planned"),
        ("reported-finding", "planned"),
        ("s3-public-bucket", "planned"),
    ]
    assert {r["entity_id"] for r in recs} == {eid}
