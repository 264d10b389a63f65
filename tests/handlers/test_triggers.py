"""Trigger shapes, the error matrix's DLQ/retry column, the time budget, the correlation id,
version-free metrics and record TTLs of the message handlers (moto server, real handlers).

Every trigger shape (SQS batch, SNS, direct sync, direct async) is driven for each of
analysis, scorer and remediator; each matrix row is checked for where the message ends
up (done, DLQ, retried) and at which log level it was reported.
"""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from handlers import analysis, onboarding, remediator, scorer
from handlers.common.triggers import Unsettled
from tests.handlers.conftest import Ctx, emf_lines, metric_total, sqs_event
from tests.handlers.test_remediator import finding

POS = "An amazing, awesome and brilliant concert."


def sns_event(
    body: Any, *, correlation_id: str | None = None, mid: str = "sns-1"
) -> dict[str, Any]:
    """An SNS event as Lambda delivers it (one record)."""
    attrs = {}
    if correlation_id:
        attrs["correlation_id"] = {"Type": "String", "Value": correlation_id}
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:us-east-1:000000000000:news:sub-1",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": mid,
                    "TopicArn": "arn:aws:sns:us-east-1:000000000000:news",
                    "Subject": None,
                    "Message": body if isinstance(body, str) else json.dumps(body),
                    "Timestamp": "2026-11-30T09:00:00.000Z",
                    "MessageAttributes": attrs,
                },
            }
        ]
    }


def _dlq(env: dict[str, str]) -> list[dict[str, Any]]:
    sqs, out = boto3.client("sqs"), []
    while msgs := sqs.receive_message(
        QueueUrl=env["DLQ_URL"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        out += msgs
        sqs.delete_message_batch(
            QueueUrl=env["DLQ_URL"],
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
            ],
        )
    return out


def _analysis_ids(env: dict[str, str]) -> set[str]:
    return {
        i["id"] for i in boto3.resource("dynamodb").Table(env["ANALYSIS_TABLE"]).scan()["Items"]
    }


def _levels(caplog: pytest.LogCaptureFixture, message: str) -> list[str]:
    return [r.levelname for r in caplog.records if r.getMessage() == message]


# --- SNS --------------------------------------------------------------------------------


def test_sns_message_is_analysed_instead_of_crashing(handler_env: dict[str, str]) -> None:
    out = analysis.lambda_handler(sns_event({"id": "s1", "text": POS}), Ctx())
    assert out["statusCode"] == 200 and out["results"][0]["label"] == "POSITIVE"
    assert _analysis_ids(handler_env) == {"s1"}


def test_sns_poison_goes_to_the_dlq_or_raises_without_one(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    out = analysis.lambda_handler(sns_event("{oops", correlation_id="c-sns"), Ctx())
    assert out["results"][0]["statusCode"] == 400 and out["results"][0]["dlq"] is True
    kept = _dlq(handler_env)
    assert [m["Body"] for m in kept] == ["{oops"]
    attrs = kept[0]["MessageAttributes"]
    assert attrs["correlation_id"]["StringValue"] == "c-sns"
    assert attrs["message_id"]["StringValue"] == "sns-1"
    assert _levels(caplog, "message not processed") == ["ERROR"]
    monkeypatch.setenv("DLQ_URL", "")
    # Lambda retries a raised async invocation, then the on-failure destination gets it
    with pytest.raises(Unsettled, match=r"1 of 1 message\(s\) not processed \(first sns-1: 400"):
        analysis.lambda_handler(sns_event("{oops"), Ctx())


def test_sns_retryable_failure_raises(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYSIS_TABLE", "no-such-table")
    with pytest.raises(Unsettled, match="ResourceNotFoundException"):
        analysis.lambda_handler(sns_event({"id": "s2", "text": POS}), Ctx())
    assert _dlq(handler_env) == []  # a retryable failure is Lambda's to retry, not the DLQ's


def test_scorer_and_remediator_take_sns(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    posture = json.loads(
        (__import__("pathlib").Path(__file__).parent / "data" / "posture-strong.json").read_text()
    )
    out = scorer.lambda_handler(sns_event({"entity_id": "ent-sns", "posture": posture}), Ctx())
    assert out["statusCode"] == 200 and out["results"][0]["grade"] == "A"
    f = finding("guardduty-disabled", "123456789012", entity="ent-sns")
    out = remediator.lambda_handler(sns_event(f), Ctx())
    assert out["results"][0]["status"] == "planned"
    monkeypatch.setenv("ENTITIES_TABLE", "no-such-table")
    with pytest.raises(Unsettled, match="entity store unavailable"):  # retried by Lambda
        scorer.lambda_handler(sns_event({"entity_id": "ent-sns"}), Ctx())


# --- direct invoke: sync and async -------------------------------------------------------


def test_async_direct_invoke_raises_on_a_retryable_error_sync_returns_it(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANALYSIS_TABLE", "no-such-table")
    r = analysis.lambda_handler({"id": "a1", "text": POS}, Ctx())
    assert r["statusCode"] == 500 and "ResourceNotFoundException" in r["error"]
    monkeypatch.setenv("DIRECT_INVOKE", "async")
    with pytest.raises(Unsettled, match="ResourceNotFoundException"):
        analysis.lambda_handler({"id": "a1", "text": POS}, Ctx())
    monkeypatch.setenv("ANALYSIS_TABLE", handler_env["ANALYSIS_TABLE"])
    monkeypatch.setenv("SCORES_TABLE", "no-such-table")
    with pytest.raises(Unsettled, match="score not stored"):
        scorer.lambda_handler(
            {"entity_id": "ent-x", "posture": {"accounts": [], "controls": {}, "findings": []}},
            Ctx(),
        )


def test_async_direct_poison_is_kept_in_the_dlq(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIRECT_INVOKE", "async")
    r = scorer.lambda_handler({"entity_id": "ent-none"}, Ctx())
    assert (r["statusCode"], r["dlq"]) == (404, True)
    r = remediator.lambda_handler({"finding_id": "x"}, Ctx())
    assert (r["statusCode"], r["dlq"]) == (400, True)
    kept = _dlq(handler_env)
    assert sorted(m["Body"] for m in kept) == sorted(
        [json.dumps({"entity_id": "ent-none"}), json.dumps({"finding_id": "x"})]
    )
    assert sorted(m["MessageAttributes"]["source"]["StringValue"] for m in kept) == [
        "remediator",
        "scorer",
    ]
    monkeypatch.setenv("DLQ_URL", "")
    with pytest.raises(Unsettled, match="404 entity ent-none does not exist"):
        scorer.lambda_handler({"entity_id": "ent-none"}, Ctx())


def test_direct_invoke_setting_is_validated(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.common.settings import SettingsError

    monkeypatch.setenv("DIRECT_INVOKE", "sometimes")
    with pytest.raises(SettingsError, match="DIRECT_INVOKE='sometimes' is not one of sync, async"):
        analysis.lambda_handler({"id": "a", "text": POS}, Ctx())


# --- SQS: scorer and remediator poison messages -----------------------------------------


def test_scorer_keeps_bad_and_unknown_jobs_in_the_dlq(
    handler_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    ev = sqs_event({"entity_id": "ent-missing"}, "not json", {"entity_id": "bad id!"})
    assert scorer.lambda_handler(ev, Ctx()) == {"batchItemFailures": []}
    kept = _dlq(handler_env)
    assert sorted(m["MessageAttributes"]["status"]["StringValue"] for m in kept) == [
        "400",
        "400",
        "404",
    ]
    assert _levels(caplog, "scoring failed") == ["ERROR"] * 3


def test_remediator_keeps_non_findings_in_the_dlq(
    handler_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    ev = sqs_event(finding("guardduty-disabled", "1"), "{", {"finding_id": "x"})
    assert remediator.lambda_handler(ev, Ctx()) == {"batchItemFailures": []}
    assert sorted(m["Body"] for m in _dlq(handler_env)) == ["{", json.dumps({"finding_id": "x"})]
    assert _levels(caplog, "remediation failed") == ["ERROR"] * 2


def test_duplicate_analysis_is_a_warning_not_an_error(
    handler_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    analysis.lambda_handler({"id": "w1", "text": POS}, Ctx())
    assert analysis.lambda_handler(sqs_event({"id": "w1", "text": POS}), Ctx()) == {
        "batchItemFailures": []
    }
    assert _levels(caplog, "duplicate id skipped") == ["WARNING"]
    assert _dlq(handler_env) == []


# --- the time budget --------------------------------------------------------------------


class CountdownCtx(Ctx):
    """A context whose remaining time drops below any reserve after `calls` questions."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def get_remaining_time_in_millis(self) -> int:
        self.calls -= 1
        return 60_000 if self.calls >= 0 else 100


def test_short_time_stops_taking_items_and_reports_the_rest(handler_env: dict[str, str]) -> None:
    ev = sqs_event(*({"id": f"t{n}", "text": POS} for n in range(3)))
    # asked once before inference and once before each store: the first item only
    out = analysis.lambda_handler(ev, CountdownCtx(2))
    assert out == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m2"}]}
    assert _analysis_ids(handler_env) == {"t0"}
    assert _dlq(handler_env) == []  # not poison: re-delivered by SQS
    jobs = sqs_event({"entity_id": "ent-a"}, {"entity_id": "ent-b"})
    assert scorer.lambda_handler(jobs, CountdownCtx(0)) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]
    }


def test_time_reserve_is_configurable(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Ctx30s(Ctx):
        def get_remaining_time_in_millis(self) -> int:
            return 30_000

    ev = sqs_event({"id": "r1", "text": POS})
    assert analysis.lambda_handler(ev, Ctx30s()) == {"batchItemFailures": []}
    monkeypatch.setenv("TIME_RESERVE_MS", "31000")
    assert analysis.lambda_handler(sqs_event({"id": "r2", "text": POS}), Ctx30s()) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}]
    }


# --- correlation id ---------------------------------------------------------------------


def _log_lines(out: str) -> list[dict[str, Any]]:
    docs = []
    for line in out.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            if "level" in d and "message" in d:
                docs.append(d)
    return docs


def _as_sqs(msgs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "messageAttributes": {
                    k: {"stringValue": v["StringValue"], "dataType": v["DataType"]}
                    for k, v in (m.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
                "awsRegion": "us-east-1",
            }
            for m in msgs
        ]
    }


def _receive(url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    sqs = boto3.client("sqs")
    while msgs := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", []):
        out += msgs
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
            ],
        )
    return out


def test_correlation_id_flows_from_the_api_request_to_the_remediation(
    handler_env: dict[str, str],
) -> None:
    from tests.handlers.test_onboarding import new_entity

    ev = {
        "resource": "/{proxy+}",
        "path": "/entities",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json", "X-Correlation-Id": "corr-4711"},
        "requestContext": {
            "requestId": "api-req-1",
            "httpMethod": "POST",
            "path": "/prod/entities",
        },
        "body": json.dumps(new_entity(sample="posture-mixed.json")),
        "isBase64Encoded": False,
    }
    import io
    import logging

    buf = io.StringIO()
    handlers = []
    for mod in (onboarding, scorer, remediator):
        h = logging.StreamHandler(buf)
        h.setFormatter(mod.logger.registered_formatter)  # the JSON lines Lambda would log
        mod.logger.addHandler(h)
        handlers.append((mod, h))
    try:
        _flow(handler_env, ev, buf)
    finally:
        for mod, h in handlers:
            mod.logger.removeHandler(h)


def _flow(handler_env: dict[str, str], ev: dict[str, Any], buf: Any) -> None:
    from tests.handlers.test_onboarding import new_entity

    r = onboarding.lambda_handler(ev, Ctx())
    assert r["statusCode"] == 201 and r["headers"]["X-Correlation-Id"] == "corr-4711"
    jobs = _receive(handler_env["SCORING_QUEUE_URL"])
    assert [j["MessageAttributes"]["correlation_id"]["StringValue"] for j in jobs] == ["corr-4711"]
    assert scorer.lambda_handler(_as_sqs(jobs), Ctx()) == {"batchItemFailures": []}
    findings = _receive(handler_env["FINDINGS_QUEUE_URL"])
    assert len(findings) == 4
    assert {f["MessageAttributes"]["correlation_id"]["StringValue"] for f in findings} == {
        "corr-4711"
    }
    assert remediator.lambda_handler(_as_sqs(findings), Ctx()) == {"batchItemFailures": []}
    recs = boto3.resource("dynamodb").Table(handler_env["REMEDIATIONS_TABLE"]).scan()["Items"]
    assert {r["correlation_id"] for r in recs} == {"corr-4711"}
    logs = _log_lines(buf.getvalue())
    by_service: dict[str, set[str]] = {}
    for d in logs:
        by_service.setdefault(d["service"], set()).add(d.get("correlation_id"))
    assert by_service["onboarding"] == {"corr-4711"}
    assert by_service["scorer"] == {"corr-4711"}
    assert by_service["remediator"] == {"corr-4711"}
    # without the header: API Gateway's request id
    ev["headers"] = {"Content-Type": "application/json"}
    ev["body"] = json.dumps(new_entity(domain="other.example"))
    assert onboarding.lambda_handler(ev, Ctx())["headers"]["X-Correlation-Id"] == "api-req-1"
    jobs = _receive(handler_env["SCORING_QUEUE_URL"])
    assert jobs[0]["MessageAttributes"]["correlation_id"]["StringValue"] == "api-req-1"


# --- metrics: version-free dimension sets, configurable namespace ------------------------


def test_every_metric_has_a_version_free_series_too(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("METRICS_NAMESPACE", "Acme/Analysis")
    capsys.readouterr()
    analysis.lambda_handler(sqs_event({"id": "v1", "text": POS}, "bad"), Ctx())
    docs = emf_lines(capsys.readouterr().out)
    assert docs
    docs = [d for d in docs if "ColdStart" not in d]  # powertools' own cold-start line
    assert docs
    for d in docs:
        for directive in d["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Acme/Analysis"
            sets = sorted(sorted(s) for s in directive["Dimensions"])
            assert sets == [
                ["ExecutedVersion", "FunctionName", "service"],
                ["FunctionName", "service"],
                ["service"],
            ]
        assert (d["service"], d["FunctionName"], d["ExecutedVersion"]) == (
            "analysis",
            "test-fn",
            "$LATEST",
        )
    names = {m["Name"] for d in docs for x in d["_aws"]["CloudWatchMetrics"] for m in x["Metrics"]}
    assert {"AnalysisErrors", "InferenceLatencyMs"} <= names


# --- TTL --------------------------------------------------------------------------------


def test_analysis_and_idempotency_records_carry_a_ttl(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = int(time.time())
    analysis.lambda_handler({"id": "ttl1", "text": POS}, Ctx())
    item = (
        boto3.resource("dynamodb")
        .Table(handler_env["ANALYSIS_TABLE"])
        .get_item(Key={"id": "ttl1"})["Item"]
    )
    assert t0 + 90 * 86400 <= int(item["expires_at"]) <= int(time.time()) + 90 * 86400
    monkeypatch.setenv("ANALYSIS_TTL_DAYS", "0")
    analysis.lambda_handler({"id": "ttl2", "text": POS}, Ctx())
    item = (
        boto3.resource("dynamodb")
        .Table(handler_env["ANALYSIS_TABLE"])
        .get_item(Key={"id": "ttl2"})["Item"]
    )
    assert "expires_at" not in item
    monkeypatch.setenv("IDEMPOTENCY_TTL_SECONDS", "3600")
    t0 = int(time.time())
    remediator.lambda_handler(finding("guardduty-disabled", "ttl"), Ctx())
    recs = boto3.resource("dynamodb").Table(handler_env["IDEMPOTENCY_TABLE"]).scan()["Items"]
    assert len(recs) == 1
    assert t0 + 3600 <= int(recs[0]["expiration"]) <= int(time.time()) + 3600


# --- the analysis error matrix x every trigger shape -------------------------------------

#: row -> (status, kept in the DLQ at once, retried, log level, metric)
MATRIX = {
    "model-load-error": (500, True, False, "ERROR", "ModelLoadErrors"),
    "inference-error": (500, True, False, "ERROR", "AnalysisErrors"),
    "conditional-check-failed": (200, False, False, "WARNING", "DuplicateAnalysisSkipped"),
    "dynamodb-client-error": (500, False, True, "ERROR", "AnalysisErrors"),
    "json-parse-error": (400, True, False, "ERROR", "AnalysisErrors"),
}
SHAPES = ("sqs", "sns", "direct-sync", "direct-async")


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("row", sorted(MATRIX))
def test_analysis_error_matrix_on_every_trigger(
    row: str,
    shape: str,
    handler_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tampered_model: Any,
    poison_model: Any,
) -> None:
    status, to_dlq, retried, level, metric = MATRIX[row]
    body: Any = {"id": f"x-{row}", "text": POS}
    if row == "model-load-error":
        monkeypatch.setenv("MODEL_DIR", str(tampered_model("changed")[0]))
    elif row == "inference-error":
        d, lock = poison_model
        monkeypatch.setenv("MODEL_DIR", str(d))
        monkeypatch.setenv("MODEL_LOCK", str(lock))
        body = {"id": "x-poison", "text": "wonderful"}
    elif row == "conditional-check-failed":
        assert analysis.lambda_handler(dict(body), Ctx())["statusCode"] == 200
    elif row == "dynamodb-client-error":
        monkeypatch.setenv("ANALYSIS_TABLE", "no-such-table")
    elif row == "json-parse-error":
        body = "{oops"
    raw = body if isinstance(body, str) else json.dumps(body)
    event: Any = {
        "sqs": sqs_event(raw),
        "sns": sns_event(raw),
        "direct-sync": {"body": raw},
        "direct-async": {"body": raw},
    }[shape]
    if shape == "direct-async":
        monkeypatch.setenv("DIRECT_INVOKE", "async")
    capsys.readouterr()
    caplog.clear()
    unsettled = retried and shape in ("sns", "direct-async")
    if unsettled:
        with pytest.raises(Unsettled):
            analysis.lambda_handler(event, Ctx())
    else:
        out = analysis.lambda_handler(event, Ctx())
    stdout = capsys.readouterr().out
    kept = _dlq(handler_env)
    # where the message went
    sync_4xx = shape == "direct-sync" and status < 500
    expect_dlq = to_dlq and not sync_4xx
    invoked = raw if shape in ("sqs", "sns") else json.dumps(event, sort_keys=True)
    assert [m["Body"] for m in kept] == ([invoked] if expect_dlq else [])
    if expect_dlq:
        assert kept[0]["MessageAttributes"]["status"]["StringValue"] == str(status)
    if shape == "sqs":
        assert out == {"batchItemFailures": [{"itemIdentifier": "m0"}] if retried else []}
    elif not unsettled:
        doc = out["results"][0] if shape == "sns" else out
        assert doc["statusCode"] == status
        if expect_dlq:
            assert doc["dlq"] is True
    # how it was reported
    ours = [r for r in caplog.records if r.name == "analysis"]
    outcome = [
        r
        for r in ours
        if r.getMessage() in ("message not processed", "result not stored", "duplicate id skipped")
    ]
    assert [r.levelname for r in outcome] == [level]
    assert max(r.levelno for r in ours) == outcome[0].levelno  # nothing louder elsewhere
    assert metric_total(stdout, metric) == 1.0
