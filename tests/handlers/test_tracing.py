"""X-Ray tracing (powertools Tracer): a handler run as Lambda runs it (the runner
`release.deploy.runner` in a subprocess with the Lambda environment and a trace header) sends its subsegments to
an X-Ray daemon address; the test is that daemon (a UDP socket on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from typing import Any

from tests.fixtures.tools import REPO

TRACE = "1-5759e988-bd862e3fe1be46a994272793"


def _segments(sock: socket.socket) -> list[dict[str, Any]]:
    out = []
    sock.settimeout(5)
    try:
        while True:
            data, _ = sock.recvfrom(65535)
            header, _, body = data.decode().partition("\n")
            assert json.loads(header) == {"format": "json", "version": 1}
            out.append(json.loads(body))
            sock.settimeout(1)
    except TimeoutError:
        pass
    return out


def test_invocation_and_handler_steps_are_traced_with_the_correlation_id() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "LAMBDA_TASK_ROOT": str(REPO),
            "AWS_LAMBDA_FUNCTION_NAME": "ma-scorer",
            "_X_AMZN_TRACE_ID": f"Root={TRACE};Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{sock.getsockname()[1]}",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # never reached: the job is rejected first
            "DLQ_URL": "",
        }
        env.pop("POWERTOOLS_TRACE_DISABLED", None)
        event = {"entity_id": "bad id!", "correlation_id": "corr-xray"}
        p = subprocess.run(
            [sys.executable, "-m", "release.deploy.runner", "handlers.scorer.lambda_handler"],
            input=json.dumps(event).encode(),
            env=env,
            capture_output=True,
            timeout=120,
            cwd=REPO,
        )
        assert p.returncode == 0, p.stderr.decode()[-2000:]
        assert json.loads(p.stdout)["statusCode"] == 400
        segs = _segments(sock)
    finally:
        sock.close()
    by_name = {s["name"]: s for s in segs}
    root = by_name["## lambda_handler"]
    assert root["trace_id"] == TRACE and root["parent_id"] == "53995c3f42cd8ad8"
    assert root["annotations"]["correlation_id"] == "corr-xray"
    assert root["annotations"]["Service"] == "scorer"
    step = by_name["## handlers.scorer.run_job"]
    assert step["parent_id"] == root["id"] and step["fault"] is True
    assert step["cause"]["exceptions"][0]["type"] == "BadRequest"
    # the X-Ray trace id is on the log lines too
    logs = [json.loads(x) for x in p.stderr.decode().splitlines() if x.startswith('{"level"')]
    assert {d.get("xray_trace_id") for d in logs} == {TRACE}
