"""Handler test fixtures: the example model, and moto (server mode) tables and queues."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.fixtures.tools import REPO

MODEL_DIR = REPO / "model" / "examples" / "sst2-tiny"
MODEL_LOCK = REPO / "model" / "model.lock.json"

TABLES = {
    "ANALYSIS_TABLE": "analysis-results",
    "ENTITIES_TABLE": "entities",
    "SCORES_TABLE": "posture-scores",
    "REMEDIATIONS_TABLE": "remediations",
    "IDEMPOTENCY_TABLE": "idempotency",
}
QUEUES = {
    "DLQ_URL": "analysis-dlq",
    "SCORING_QUEUE_URL": "scoring-jobs",
    "FINDINGS_QUEUE_URL": "findings",
}


def _create_tables(ddb: Any) -> None:
    ddb.create_table(
        TableName=TABLES["ANALYSIS_TABLE"],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "entity_id", "AttributeType": "S"},
            {"AttributeName": "analyzed_at", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "entity_id-index",
                "KeySchema": [
                    {"AttributeName": "entity_id", "KeyType": "HASH"},
                    {"AttributeName": "analyzed_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for key in ("ENTITIES_TABLE", "REMEDIATIONS_TABLE", "IDEMPOTENCY_TABLE"):
        ddb.create_table(
            TableName=TABLES[key],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    ddb.create_table(
        TableName=TABLES["SCORES_TABLE"],
        KeySchema=[
            {"AttributeName": "entity_id", "KeyType": "HASH"},
            {"AttributeName": "scored_at", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "entity_id", "AttributeType": "S"},
            {"AttributeName": "scored_at", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def handler_env(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """moto reset, every table and queue created, handler settings in the environment."""
    ddb = boto3.client("dynamodb")
    _create_tables(ddb)
    sqs = boto3.client("sqs")
    env = dict(aws_env)
    for var, name in QUEUES.items():
        env[var] = sqs.create_queue(QueueName=name)["QueueUrl"]
    env.update(TABLES)
    env.update(
        {
            "MODEL_DIR": str(MODEL_DIR),
            "MODEL_LOCK": str(MODEL_LOCK),
            "POWERTOOLS_METRICS_NAMESPACE": "Test/Handlers",
            "LOW_CONFIDENCE": "0.6",
            "DRY_RUN": "true",
        }
    )
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def tampered_model(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    """A copy of the example model with one alteration: "changed", "extra" or "missing"."""

    def make(kind: str) -> tuple[Path, Path]:
        d = tmp_path / f"model-{kind}"
        shutil.copytree(MODEL_DIR, d)
        if kind == "changed":
            p = d / "config.json"
            p.write_bytes(p.read_bytes().replace(b"NEGATIVE", b"POSITIVX", 1))
        elif kind == "extra":
            (d / "evil.py").write_text("import os\n")
        elif kind == "missing":
            (d / "tokenizer.json").unlink()
        return d, MODEL_LOCK

    return make


def sqs_event(*bodies: Any, prefix: str = "m") -> dict[str, Any]:
    """An SQS event as Lambda delivers it (bodies: dicts are JSON-encoded, str raw)."""
    recs = []
    for n, b in enumerate(bodies):
        recs.append(
            {
                "messageId": f"{prefix}{n}",
                "receiptHandle": f"rh-{prefix}{n}",
                "body": b if isinstance(b, str) else json.dumps(b),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": recs}


class Ctx:
    function_name = "test-fn"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:test-fn"
    aws_request_id = "req-1"
    log_group_name = "/aws/lambda/test-fn"
    log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def emf_lines(out: str) -> list[dict[str, Any]]:
    """The EMF documents among stdout's JSON lines."""
    docs = []
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict) and "_aws" in d:
            docs.append(d)
    return docs


def metric_values(out: str, name: str) -> list[float]:
    vals: list[float] = []
    for d in emf_lines(out):
        if name in d:
            v = d[name]
            vals.extend(v if isinstance(v, list) else [v])
    return vals


def metric_total(out: str, name: str) -> float:
    """The sum of every value of metric `name` in the EMF lines (0 when absent)."""
    return sum(metric_values(out, name))


def write_lock(model_dir: Path, lock_path: Path) -> Path:
    """A model lock for `model_dir` in the format of model/model.lock.json."""
    import hashlib

    files = []
    for p in sorted(q for q in model_dir.rglob("*") if q.is_file()):
        rel = p.relative_to(model_dir).as_posix()
        files.append(
            {
                "path": rel,
                "size": p.stat().st_size,
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            }
        )
    files.sort(key=lambda f: f["path"])
    root = hashlib.sha256(b"".join(bytes.fromhex(f["sha256"]) for f in files)).hexdigest()
    doc = {
        "schema": 1,
        "source": "local",
        "repo": "test/model",
        "revision": "main",
        "commit": "0" * 40,
        "files": files,
        "digest": "sha256:" + root,
    }
    lock_path.write_text(json.dumps(doc, indent=2))
    return lock_path


@pytest.fixture
def poison_model(tmp_path: Path) -> tuple[Path, Path]:
    """A verified model (its own lock) whose ONNX embedding has only the first 250 rows:
    a text with a word of a higher token id ("wonderful", "terrible") makes ONNX Runtime
    fail at run time (Gather index out of range) - a real InferenceError."""
    import importlib.util
    import sys

    gen_path = REPO / "model" / "examples" / "generate.py"
    sys.path.insert(0, str(gen_path.parent))
    try:
        spec = importlib.util.spec_from_file_location("example_generate", gen_path)
        assert spec and spec.loader
        gen = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(gen)
    finally:
        sys.path.remove(str(gen_path.parent))
    d = tmp_path / "poison-model"
    shutil.copytree(MODEL_DIR, d)
    vocab = gen.vocabulary()
    (d / "onnx" / "model.onnx").write_bytes(gen.build_onnx(vocab[:250], 1.0, 0.0))
    return d, write_lock(d, tmp_path / "poison.lock.json")
