"""`python -m release.deploy.runner MODULE.FUNC` (the runner `release invoke` ships): a handler in a fresh process, as a
container runs a function's CMD without the Lambda runtime."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from tests.fixtures.tools import REPO
from tests.handlers.conftest import emf_lines


def invoke(
    target: str, event: Any, env: dict[str, str], raw: str | None = None
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    full.update(env)
    full["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "release.deploy.runner", target],
        input=raw if raw is not None else json.dumps(event),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=full,
        timeout=120,
    )


def test_analysis_in_a_fresh_process(handler_env: dict[str, str]) -> None:
    p = invoke(
        "handlers.analysis.lambda_handler",
        {"id": "s1", "text": "A wonderful, delightful day!"},
        handler_env,
    )
    assert p.returncode == 0, p.stderr
    # stdout holds the result and nothing else; logs and EMF went to stderr
    assert json.loads(p.stdout) == {
        "statusCode": 200,
        "id": "s1",
        "label": "POSITIVE",
        "confidence": json.loads(p.stdout)["confidence"],
        "low_confidence": False,
        "truncated": False,
        "duplicate": False,
    }
    names = {
        m["Name"]
        for d in emf_lines(p.stderr)
        for x in d["_aws"]["CloudWatchMetrics"]
        for m in x["Metrics"]
    }
    assert {"ModelLoadTimeMs", "InferenceLatencyMs", "SentimentPositive", "ColdStart"} <= names
    item = (
        boto3.resource("dynamodb")
        .Table(handler_env["ANALYSIS_TABLE"])
        .get_item(Key={"id": "s1"})["Item"]
    )
    assert item["label"] == "POSITIVE"


def test_tampered_model_fails_closed_in_a_fresh_process(
    handler_env: dict[str, str], tampered_model: Callable[[str], tuple[Path, Path]]
) -> None:
    d, _ = tampered_model("changed")
    p = invoke(
        "handlers.analysis.lambda_handler",
        {"id": "s2", "text": "great"},
        {**handler_env, "MODEL_DIR": str(d)},
    )
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert (
        r["statusCode"] == 500
        and "changed: config.json (sha256 differs)" in r["error"]
        and r["dlq"] is True
    )
    assert "ModelLoadErrors" in p.stderr


def test_onboarding_in_a_fresh_process(handler_env: dict[str, str]) -> None:
    ev = {
        "httpMethod": "GET",
        "path": "/entities/ent-1",
        "headers": {},
        "requestContext": {},
        "body": None,
        "isBase64Encoded": False,
        "queryStringParameters": None,
        "pathParameters": None,
    }
    p = invoke("handlers.onboarding.lambda_handler", ev, handler_env)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["statusCode"] == 404 and json.loads(r["body"]) == {"error": "entity ent-1 not found"}


def test_usage_errors_exit_2_and_a_raising_handler_exits_1(handler_env: dict[str, str]) -> None:
    p = invoke("not a target", {}, handler_env)
    assert p.returncode == 2 and p.stdout == "" and "usage:" in p.stderr
    p = invoke("handlers.analysis.lambda_handler", None, handler_env, raw="{nope")
    assert p.returncode == 2 and "the event on stdin is not JSON" in p.stderr
    p = invoke("handlers.nothing.lambda_handler", {}, handler_env)
    assert p.returncode == 2 and "cannot load handler handlers.nothing.lambda_handler" in p.stderr
    p = invoke(
        "handlers.analysis.lambda_handler",
        {"id": "x", "text": "y"},
        {**handler_env, "LOW_CONFIDENCE": "2"},
    )
    assert p.returncode == 1
    assert json.loads(p.stdout) == {
        "errorType": "SettingsError",
        "errorMessage": "LOW_CONFIDENCE='2' is outside [0.0, 1.0]",
    }
