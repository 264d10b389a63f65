"""An interleaved writer on Lambda (moto server, real boto3): another writer changes a
function's image between our code update and `publish_version`.

The interfering write runs at exactly that point through the deployer's `before_publish`
hook (a Python argument). moto does not enforce publish_version's CodeSha256 precondition
(the first test shows it), so on plain moto it is our read-back of the published version
that must catch the change; a client wrapper that enforces the precondition the way real
Lambda does shows the other side: the publish is refused and that is caught too. Through
the CLI, a forwarder in front of moto holds the victim's PublishVersion request until the
other writer is done (the request is the barrier): exit 1, and nothing says "promoted".
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from release.deploy.lambda_ import LambdaTarget
from release.digest import parse_reference
from release.errors import VerificationFailed
from release.ledger import open_ledger
from release.promote import promote
from tests.deploy.conftest import (
    ECR,
    FUNCTIONS,
    aliases,
    boto,
    cli_env,
    digest_of,
    file_provider,
    promotion_project,
    run_gated,
)
from tests.fixtures.tools import run_cli

pytestmark = pytest.mark.aws

OLD, NEW, OTHER = digest_of("a"), digest_of("b"), digest_of("c")
VICTIM = "ma-remediator"  # the second of three functions (sorted): one before it is published


class Recording:
    """The boto3 Lambda client, recording every publish_version call's arguments and the
    CodeSha256 every update_function_code returned; with `enforce`, publish_version checks
    its CodeSha256 precondition against $LATEST as real Lambda does (moto does not)."""

    def __init__(self, client: Any, *, enforce: bool = False) -> None:
        self._client = client
        self.enforce = enforce
        self.updates: list[tuple[str, str, str]] = []  # (function, ImageUri, CodeSha256 returned)
        self.publishes: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_function_code(self, **kw: Any) -> Any:
        resp = self._client.update_function_code(**kw)
        self.updates.append((kw["FunctionName"], kw["ImageUri"], resp["CodeSha256"]))
        return resp

    def publish_version(self, **kw: Any) -> Any:
        self.publishes.append(kw)
        if self.enforce and "CodeSha256" in kw:
            latest = self._client.get_function_configuration(FunctionName=kw["FunctionName"])[
                "CodeSha256"
            ]
            if latest != kw["CodeSha256"]:
                raise ClientError(
                    {
                        "Error": {
                            "Code": "InvalidParameterValueException",
                            "Message": f"CodeSHA256 ({kw['CodeSha256']}) is different from current CodeSHA256 "
                            f"in $LATEST ({latest}). Please try again with the CodeSHA256 in $LATEST.",
                        }
                    },
                    "PublishVersion",
                )
        return self._client.publish_version(**kw)


def _interfere(function: str) -> None:
    """Another writer (its own client) puts OTHER on the victim, once."""
    if function == VICTIM:
        boto("lambda").update_function_code(FunctionName=function, ImageUri=f"{ECR}@{OTHER}")


def _where() -> dict[str, tuple[str, dict[str, float], str]]:
    """function -> (alias version, alias routing, $LATEST image)."""
    lam = boto("lambda")
    return {
        fn: (*alias, lam.get_function(FunctionName=fn)["Code"]["ImageUri"])
        for fn, alias in aliases().items()
    }


def test_moto_does_not_enforce_the_codesha256_precondition(lambdas: dict[str, str]) -> None:
    lam = boto("lambda")
    ours = lam.update_function_code(FunctionName=VICTIM, ImageUri=f"{ECR}@{NEW}")["CodeSha256"]
    assert ours == NEW.split(":", 1)[1]  # an image function's CodeSha256 is its digest
    lam.update_function_code(FunctionName=VICTIM, ImageUri=f"{ECR}@{OTHER}")
    pub = lam.publish_version(FunctionName=VICTIM, CodeSha256=ours)  # real Lambda refuses this
    assert pub["CodeSha256"] == OTHER.split(":", 1)[1]


@pytest.mark.parametrize("enforce", [False, True], ids=["moto-publishes", "precondition-refuses"])
def test_interleaved_writer_puts_every_function_back(
    lambdas: dict[str, str], tmp_path: Path, enforce: bool
) -> None:
    cfg = promotion_project(tmp_path, NEW)
    before = _where()
    client = Recording(boto("lambda"), enforce=enforce)
    target = LambdaTarget(cfg, "prod", client=client, poll_seconds=0.05, before_publish=_interfere)
    with pytest.raises(VerificationFailed) as info:
        promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
    ours, other = NEW.split(":", 1)[1], OTHER.split(":", 1)[1]
    if enforce:
        detail = (
            f"publish_version refused (InvalidParameterValueException: CodeSHA256 ({ours}) is "
            f"different from current CodeSHA256 in $LATEST ({other}). Please try again with the "
            f"CodeSHA256 in $LATEST.): $LATEST has CodeSha256 {other}, not the {ours} our update set"
        )
    else:
        detail = f"published version 2 has CodeSha256 {other}, not the {ours} our update set"
    assert info.value.exit_code == 1
    assert info.value.message == (
        f"lambda {VICTIM} changed under this promotion: {detail} - another writer changed it "
        "between our update and the publish; every function was put back on its previous version"
    )
    # the precondition was our update's CodeSha256, on every publish we made
    assert [(p["FunctionName"], p["CodeSha256"]) for p in client.publishes] == [
        ("ma-analysis", ours),
        (VICTIM, ours),
    ]
    # our three updates, then every $LATEST back on the old image (the victim's over the
    # other writer's image)
    old = OLD.split(":", 1)[1]
    assert client.updates == [(fn, f"{ECR}@{NEW}", ours) for fn in sorted(FUNCTIONS.values())] + [
        (fn, f"{ECR}@{OLD}", old) for fn in reversed(sorted(FUNCTIONS.values()))
    ]
    # every function back: alias on version 1 without routing, $LATEST on the old image
    assert _where() == before == {fn: ("1", {}, f"{ECR}@{OLD}") for fn in FUNCTIONS.values()}
    led = open_ledger(cfg)
    events = led.events(env="prod")
    actions = [e.action for e in events]
    assert (
        "promote" not in actions and "deploy.alias" not in actions and led.current("prod") is None
    )
    failed = events[-1]
    assert failed.action == "promote.failed" and failed.evidence["error"] == info.value.message
    assert {k: v for k, v in failed.evidence.items() if k.startswith("left:")} == {
        f"left:{name}": f"{fn}: version 1 100% {OLD}" for name, fn in FUNCTIONS.items()
    }
    assert led.verify_chain().ok


@contextlib.contextmanager
def _proxy_interfering_at_publish(moto_url: str) -> Iterator[tuple[str, list[str]]]:
    """A forwarder to moto for a CLI process: the victim's first PublishVersion request is
    held until the other writer's update is done, then forwarded (the request is the
    barrier: the interfering write happens exactly between our update and our publish)."""
    import http.client
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlparse

    up = urlparse(moto_url)
    fired: list[str] = []

    class Forward(BaseHTTPRequestHandler):
        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if (
                self.command == "POST"
                and not fired
                and self.path.startswith(f"/2015-03-31/functions/{VICTIM}/versions")
            ):
                fired.append(self.path)
                _interfere(VICTIM)
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            conn.request(self.command, self.path, body=body, headers=dict(self.headers))
            resp = conn.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", fired
    finally:
        srv.shutdown()
        srv.server_close()


def test_cli_interleaved_writer_exits_1_and_nothing_says_promoted(
    lambdas: dict[str, str], tmp_path: Path, aws_env: dict[str, str], moto_url: str
) -> None:
    cand = digest_of("d")
    cfg = promotion_project(tmp_path, NEW, cand)
    promote(cfg, parse_reference(NEW), "prod", file_provider, actor="ci")  # NEW live on version 2
    before = _where()
    with _proxy_interfering_at_publish(moto_url) as (url, fired):
        r = run_gated(
            "promote",
            cand,
            "--env",
            "prod",
            "--config",
            cfg.path,
            env=cli_env({**aws_env, "AWS_ENDPOINT_URL": url}),
        )
    assert fired == [f"/2015-03-31/functions/{VICTIM}/versions"]
    assert r.code == 1, r.stderr
    assert r.stdout == "" and "promoted" not in r.stderr
    ours, other = cand.split(":", 1)[1], OTHER.split(":", 1)[1]
    assert r.stderr.splitlines()[-1] == (
        f"release: error: lambda {VICTIM} changed under this promotion: published version 3 has "
        f"CodeSha256 {other}, not the {ours} our update set - another writer changed it between "
        "our update and the publish; every function was put back on its previous version"
    )
    assert _where() == before == {fn: ("2", {}, f"{ECR}@{NEW}") for fn in FUNCTIONS.values()}
    led = open_ledger(cfg)
    assert led.current("prod").digest == NEW and led.events()[-1].action == "promote.failed"
    st = run_cli("status", "--env", "prod", "--config", cfg.path, "--json", env=cli_env(aws_env))
    assert st.code == 0, st.stderr
    assert json.loads(st.stdout)["drift"] == []
