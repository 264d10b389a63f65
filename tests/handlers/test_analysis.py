"""handlers.analysis: every row of the error matrix, duplicates, EMF, SQS partial batches."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from handlers import analysis
from handlers.common import model as mm
from tests.handlers.conftest import Ctx, emf_lines, metric_total, metric_values, sqs_event

POS = "An amazing, awesome and brilliant concert."  # low token ids: safe for poison_model
NEG = "Awful, boring and bad. A disaster."


def _items(table: str) -> dict[str, dict[str, Any]]:
    items = boto3.resource("dynamodb").Table(table).scan()["Items"]
    return {i["id"]: i for i in items}


def _dlq(env: dict[str, str]) -> list[dict[str, Any]]:
    resp = boto3.client("sqs").receive_message(
        QueueUrl=env["DLQ_URL"],
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        WaitTimeSeconds=0,
    )
    return resp.get("Messages", [])


def run(event: Any, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    capsys.readouterr()
    out = analysis.lambda_handler(event, Ctx())
    return out, capsys.readouterr().out


def test_sqs_batch_labels_and_stores_every_item(
    handler_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ev = sqs_event(
        {"id": "n1", "text": "This movie was wonderful, I loved it.", "entity_id": "ent-1"},
        {"id": "n2", "text": "Terrible service, the staff were rude and the food was awful."},
        {
            "id": "n3",
            "text": "Excellent quality and a fantastic price, highly recommended!",
            "entity_id": "ent-1",
        },
    )
    out, stdout = run(ev, capsys)
    assert out == {"batchItemFailures": []}
    items = _items(handler_env["ANALYSIS_TABLE"])
    assert {k: v["label"] for k, v in items.items()} == {
        "n1": "POSITIVE",
        "n2": "NEGATIVE",
        "n3": "POSITIVE",
    }
    assert items["n1"]["entity_id"] == "ent-1" and "entity_id" not in items["n2"]
    assert all(0.5 < float(v["confidence"]) <= 1 for v in items.values())
    assert (
        items["n1"]["model_digest"]
        == json.loads(Path(handler_env["MODEL_LOCK"]).read_text())["digest"]
    )
    assert metric_total(stdout, "SentimentPositive") == 2.0
    assert metric_total(stdout, "SentimentNegative") == 1.0
    assert len(metric_values(stdout, "InferenceLatencyMs")) == 1


def test_duplicate_delivery_is_skipped_counted_and_never_overwritten(
    handler_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run(sqs_event({"id": "d1", "text": POS}), capsys)
    before = _items(handler_env["ANALYSIS_TABLE"])["d1"]
    # the same id again (SQS at-least-once), this time with different text
    out, stdout = run(
        sqs_event({"id": "d1", "text": NEG}, {"id": "d1", "text": POS}, prefix="x"), capsys
    )
    assert out == {"batchItemFailures": []}
    assert _items(handler_env["ANALYSIS_TABLE"])["d1"] == before
    assert metric_total(stdout, "DuplicateAnalysisSkipped") == 2.0
    assert (
        metric_total(stdout, "SentimentPositive") == metric_total(stdout, "SentimentNegative") == 0
    )
    direct = analysis.lambda_handler({"id": "d1", "text": NEG}, Ctx())
    assert (direct["statusCode"], direct["duplicate"], direct["label"]) == (200, True, "NEGATIVE")


def test_malformed_items_are_400_kept_in_the_dlq_and_logged_at_error(
    handler_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ev = sqs_event(
        "{not json", {"id": "", "text": "x"}, {"id": "ok", "text": POS}, {"text": "no id"}, [1, 2]
    )
    out, stdout = run(ev, capsys)
    assert out == {"batchItemFailures": []}  # settled: every poison message is in the DLQ
    assert set(_items(handler_env["ANALYSIS_TABLE"])) == {"ok"}
    assert metric_total(stdout, "AnalysisErrors") == 4.0
    kept = _dlq(handler_env)
    assert sorted(m["Body"] for m in kept) == sorted(
        ["{not json", json.dumps({"id": "", "text": "x"}), json.dumps({"text": "no id"}), "[1, 2]"]
    )
    assert {m["MessageAttributes"]["status"]["StringValue"] for m in kept} == {"400"}
    assert {m["MessageAttributes"]["source"]["StringValue"] for m in kept} == {"analysis"}
    errors = [r for r in caplog.records if r.getMessage() == "message not processed"]
    assert len(errors) == 4 and all(r.levelname == "ERROR" for r in errors)
    for bad, msg in [
        ("{not json", "body is not JSON"),
        ({"id": "a"}, "text must be a non-empty string"),
        ({"id": "a", "text": "x" * 100_001}, "longer than 100000"),
    ]:
        r = analysis.lambda_handler(bad, Ctx())
        assert r["statusCode"] == 400 and msg in r["error"]
    assert _dlq(handler_env) == []  # a sync caller gets its 400; nothing kept for it


def test_malformed_item_without_a_dlq_is_a_batch_item_failure(
    handler_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DLQ_URL", "")
    out, _ = run(sqs_event({"id": "ok", "text": POS}, "{not json"), capsys)
    assert out == {"batchItemFailures": [{"itemIdentifier": "m1"}]}  # redrive keeps it


def test_a_failed_dlq_send_leaves_the_message_a_batch_item_failure(
    handler_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    gone = handler_env["DLQ_URL"].rsplit("/", 1)[0] + "/no-such-queue"
    monkeypatch.setenv("DLQ_URL", gone)
    out, _ = run(sqs_event("{not json"), capsys)
    assert out == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert any(
        r.getMessage() == "DLQ send failed" and r.levelname == "ERROR" for r in caplog.records
    )


def test_model_load_error_is_500_and_items_go_to_the_dlq(
    handler_env: dict[str, str],
    tampered_model: Callable[[str], tuple[Path, Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    d, _ = tampered_model("extra")
    monkeypatch.setenv("MODEL_DIR", str(d))
    out, stdout = run(
        sqs_event({"id": "a", "text": POS}, {"id": "b", "text": NEG}, "garbage"), capsys
    )
    assert out == {"batchItemFailures": []}  # handed to the DLQ, not re-driven
    msgs = _dlq(handler_env)
    assert sorted(m["Body"] for m in msgs) == sorted(
        [json.dumps({"id": "a", "text": POS}), json.dumps({"id": "b", "text": NEG}), "garbage"]
    )
    model_errors = [m for m in msgs if m["Body"] != "garbage"]
    assert all(
        "model not verified" in m["MessageAttributes"]["error"]["StringValue"]
        and m["MessageAttributes"]["status"]["StringValue"] == "500"
        for m in model_errors
    )
    assert _items(handler_env["ANALYSIS_TABLE"]) == {}
    assert metric_total(stdout, "ModelLoadErrors") == 1.0
    assert any("extra: evil.py" in getattr(r, "problems", []) for r in caplog.records)  # logged
    r = analysis.lambda_handler({"id": "c", "text": POS}, Ctx())
    assert r["statusCode"] == 500 and r["dlq"] is True and "does not match the lock" in r["error"]
    assert [json.loads(m["Body"])["id"] for m in _dlq(handler_env)] == ["c"]
    assert metric_total(stdout, "AnalysisErrors") == 1.0  # the malformed one only


def test_model_load_error_without_dlq_is_a_batch_item_failure(
    handler_env: dict[str, str],
    tampered_model: Callable[[str], tuple[Path, Path]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    d, _ = tampered_model("changed")
    monkeypatch.setenv("MODEL_DIR", str(d))
    monkeypatch.setenv("DLQ_URL", "")
    out, _ = run(sqs_event({"id": "a", "text": POS}, {"id": "b", "text": NEG}), capsys)
    assert out == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}


def test_inference_error_fails_only_the_poison_item(
    handler_env: dict[str, str],
    poison_model: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    d, lock = poison_model
    monkeypatch.setenv("MODEL_DIR", str(d))
    monkeypatch.setenv("MODEL_LOCK", str(lock))
    ev = sqs_event(
        {"id": "p1", "text": POS}, {"id": "p2", "text": "wonderful"}, {"id": "p3", "text": NEG}
    )
    out, stdout = run(ev, capsys)
    assert out == {"batchItemFailures": []}  # the poison item is kept in the DLQ
    assert [json.loads(m["Body"])["id"] for m in _dlq(handler_env)] == ["p2"]
    assert set(_items(handler_env["ANALYSIS_TABLE"])) == {"p1", "p3"}
    assert metric_total(stdout, "AnalysisErrors") == 1.0
    r = analysis.lambda_handler({"id": "p4", "text": "terrible"}, Ctx())
    assert r["statusCode"] == 500 and r["error"].startswith("inference failed") and r["dlq"] is True
    monkeypatch.setenv("DLQ_URL", "")
    out, _ = run(sqs_event({"id": "p5", "text": "wonderful"}), capsys)
    assert out == {"batchItemFailures": [{"itemIdentifier": "m0"}]}


def test_conditional_check_failed_is_200_other_dynamodb_errors_are_500(
    handler_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert analysis.lambda_handler({"id": "c1", "text": POS}, Ctx())["statusCode"] == 200
    assert analysis.lambda_handler({"id": "c1", "text": POS}, Ctx())["statusCode"] == 200
    monkeypatch.setenv("ANALYSIS_TABLE", "no-such-table")  # ResourceNotFoundException
    r = analysis.lambda_handler({"id": "c2", "text": POS}, Ctx())
    assert r["statusCode"] == 500 and "ResourceNotFoundException" in r["error"]
    out, stdout = run(sqs_event({"id": "c3", "text": POS}, "bad"), capsys)
    assert out == {
        "batchItemFailures": [{"itemIdentifier": "m0"}]
    }  # retried; the malformed one is not
    assert metric_total(stdout, "AnalysisErrors") == 2.0


def test_low_confidence_and_truncation(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOW_CONFIDENCE", "0.9")
    long_text = "wonderful " * 600 + "terrible " * 600
    ev = sqs_event(
        {"id": "l1", "text": "the train"},
        {"id": "l2", "text": long_text},
        {"id": "l3", "text": POS},
    )
    out, stdout = run(ev, capsys)
    assert out == {"batchItemFailures": []}
    items = _items(handler_env["ANALYSIS_TABLE"])
    assert items["l1"]["low_confidence"] is True and items["l3"]["low_confidence"] is False
    assert items["l2"]["truncated"] is True and items["l2"]["label"] == "POSITIVE"
    assert metric_total(stdout, "LowConfidence") == 1.0


def test_emf_is_valid_cloudwatch_emf(
    handler_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    mm.clear_cache()  # a new container: ModelLoadTimeMs is emitted
    _, stdout = run(sqs_event({"id": "e1", "text": POS}, {"id": "e2", "text": NEG}, "bad"), capsys)
    docs = emf_lines(stdout)
    assert docs, "no EMF line on stdout"
    names: set[str] = set()
    for d in docs:
        meta = d["_aws"]
        assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
        for directive in meta["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Test/Handlers"
            for dimset in directive["Dimensions"]:
                assert dimset and all(isinstance(d[k], str) for k in dimset)
            for m in directive["Metrics"]:
                assert set(m) <= {"Name", "Unit", "StorageResolution"}
                assert m["Unit"] in {"Count", "Milliseconds", "None"}
                v = d[m["Name"]]
                vals = v if isinstance(v, list) else [v]
                assert vals and all(isinstance(x, (int, float)) for x in vals)
                names.add(m["Name"])
    assert {
        "ModelLoadTimeMs",
        "InferenceLatencyMs",
        "SentimentPositive",
        "SentimentNegative",
        "AnalysisErrors",
    } <= names
    assert any(d.get("service") == "analysis" for d in docs)
    # the live canary (release/canary/live.py) reads per function and version what the
    # example's production config names (release.prod.toml: traffic.label_metrics and
    # traffic.error_metric)
    from release.canary.live import FUNCTION_DIMENSION, VERSION_DIMENSION
    from release.config import load
    from tests.fixtures.tools import REPO

    traffic = load(REPO / "release.prod.toml").environment("prod").traffic
    assert traffic.error_metric is not None
    handler_metrics = {*traffic.label_metrics.values(), traffic.error_metric}

    per_version = [
        d
        for d in docs
        for x in d["_aws"]["CloudWatchMetrics"]
        if any({FUNCTION_DIMENSION, VERSION_DIMENSION} <= set(ds) for ds in x["Dimensions"])
    ]
    assert per_version
    assert {(d[FUNCTION_DIMENSION], d[VERSION_DIMENSION]) for d in per_version} == {
        ("test-fn", "$LATEST")
    }
    carried = {
        m["Name"] for d in per_version for x in d["_aws"]["CloudWatchMetrics"] for m in x["Metrics"]
    }
    assert handler_metrics == {"SentimentPositive", "SentimentNegative", "AnalysisErrors"}
    assert handler_metrics <= carried


def test_direct_invoke_with_a_json_body(handler_env: dict[str, str]) -> None:
    r = analysis.lambda_handler({"body": json.dumps({"id": "b1", "text": POS})}, Ctx())
    assert (r["statusCode"], r["label"], r["duplicate"]) == (200, "POSITIVE", False)
    assert analysis.lambda_handler({"body": "{"}, Ctx())["statusCode"] == 400
