"""handlers.scorer: sample posture documents, news sentiment weight, storage, findings out."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from handlers import analysis, scorer
from tests.handlers.conftest import Ctx, metric_total, sqs_event

DATA = __import__("pathlib").Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "expected-scores.json").read_text())
SAMPLES = sorted(k for k in EXPECTED if k.endswith(".json"))


def _posture(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


@pytest.mark.parametrize("sample", SAMPLES)
def test_sample_posture_documents(handler_env: dict[str, str], sample: str) -> None:
    want = EXPECTED[sample]
    r = scorer.lambda_handler({"entity_id": "ent-s", "posture": _posture(sample)}, Ctx())
    assert r["statusCode"] == 200, r
    assert (r["score"], r["grade"], r["news_score"]) == (want["score"], want["grade"], None)
    assert sorted({f["rule"] for f in r["findings"]}) == want["rules"]
    sev = [scorer.SEVERITY_ORDER[f["severity"]] for f in r["findings"]]
    assert sev == sorted(sev)  # most severe first
    assert r["policy_digest"].startswith("sha256:")


def test_result_is_stored_and_findings_are_published(
    handler_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    r = scorer.lambda_handler(
        {"entity_id": "ent-w", "posture": _posture("posture-weak.json")}, Ctx()
    )
    stdout = capsys.readouterr().out
    rows = boto3.resource("dynamodb").Table(handler_env["SCORES_TABLE"]).scan()["Items"]
    assert [(x["entity_id"], int(x["score"]), x["grade"]) for x in rows] == [("ent-w", 16, "F")]
    assert json.loads(rows[0]["findings"]) == r["findings"]
    sqs = boto3.client("sqs")
    got: list[dict[str, Any]] = []
    while True:
        msgs = sqs.receive_message(
            QueueUrl=handler_env["FINDINGS_QUEUE_URL"], MaxNumberOfMessages=10
        ).get("Messages", [])
        if not msgs:
            break
        got += [json.loads(m["Body"]) for m in msgs]
        sqs.delete_message_batch(
            QueueUrl=handler_env["FINDINGS_QUEUE_URL"],
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(msgs)
            ],
        )
    assert sorted(g["finding_id"] for g in got) == sorted(f["finding_id"] for f in r["findings"])
    assert all(g["entity_id"] == "ent-w" for g in got) and len(got) == 10
    assert metric_total(stdout, "FindingsPublished") == 10
    assert metric_total(stdout, "PostureScore") == 16
    # the same posture scored again gives the same finding ids (idempotent downstream)
    again = scorer.lambda_handler(
        {"entity_id": "ent-w", "posture": _posture("posture-weak.json")}, Ctx()
    )
    assert [f["finding_id"] for f in again["findings"]] == [f["finding_id"] for f in r["findings"]]


def test_recent_news_sentiment_contributes_with_its_weight(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    news = [
        "Terrible quarter, customers angry and the product is broken.",
        "Awful reviews: the service was horrible.",
        "Excellent new release, customers love it.",
        "Another disaster: the app crashes, a total mess.",
    ]
    for n, text in enumerate(news):
        assert (
            analysis.lambda_handler({"id": f"news-{n}", "text": text, "entity_id": "ent-m"}, Ctx())[
                "statusCode"
            ]
            == 200
        )
    analysis.lambda_handler({"id": "other", "text": "Wonderful!", "entity_id": "ent-x"}, Ctx())
    monkeypatch.setenv("SENTIMENT_WEIGHT", "0.5")
    r = scorer.lambda_handler(
        {"entity_id": "ent-m", "posture": _posture("posture-mixed.json")}, Ctx()
    )
    assert r["sentiment"] == {"count": 4, "positive": 1, "negative": 3}
    assert r["posture_score"] == 80 and r["news_score"] == 25.0
    assert r["score"] == 53  # round(0.5 * 80 + 0.5 * 25 = 52.5): Rego rounds half away from zero
    monkeypatch.setenv("SENTIMENT_WEIGHT", "0")
    assert (
        scorer.lambda_handler(
            {"entity_id": "ent-m", "posture": _posture("posture-mixed.json")}, Ctx()
        )["score"]
        == 80
    )


def test_sqs_jobs_read_the_entity_and_bad_jobs_are_not_retried(
    handler_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ents = boto3.resource("dynamodb").Table(handler_env["ENTITIES_TABLE"])
    ents.put_item(
        Item={"id": "ent-q", "name": "Q", "posture": json.dumps(_posture("posture-strong.json"))}
    )
    ev = sqs_event(
        {"entity_id": "ent-q"}, {"entity_id": "ent-missing"}, "not json", {"entity_id": "bad id!"}
    )
    assert scorer.lambda_handler(ev, Ctx()) == {"batchItemFailures": []}
    item = ents.get_item(Key={"id": "ent-q"})["Item"]
    assert (int(item["last_score"]), item["grade"], item["status"]) == (99, "A", "scored")
    r = scorer.lambda_handler({"entity_id": "ent-missing"}, Ctx())
    assert r == {"statusCode": 404, "error": "entity ent-missing does not exist"}
    r = scorer.lambda_handler(
        {"entity_id": "e", "posture": {"accounts": "x", "controls": {}, "findings": []}}, Ctx()
    )
    assert r["statusCode"] == 400 and "accounts must be array" in r["error"]
    monkeypatch.setenv("SCORES_TABLE", "no-such-table")
    assert scorer.lambda_handler(sqs_event({"entity_id": "ent-q"}), Ctx()) == {
        "batchItemFailures": [{"itemIdentifier": "m0"}]
    }
    r = scorer.lambda_handler({"entity_id": "ent-q"}, Ctx())
    assert r["statusCode"] == 500 and "score not stored" in r["error"]
