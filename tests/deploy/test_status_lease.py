"""`release status` tells what Lambda really serves, and the promotion lease.

A promoter killed during the live canary (a real process, killed while its canary watch
waits) leaves every alias sending 10% to the candidate: status shows the split per
function and exits 1. Two promoters meet at an explicit barrier (the first one waits in
the deployer's `before_publish` hook while the second one tries), never at a sleep. A
lease from another host is honoured until it expires and taken over after (a fake clock,
a Python argument of the Ledger). Both ledger backends: SQLite and DynamoDB on moto.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from release import lease as leases
from release.deploy.lambda_ import LambdaTarget
from release.digest import parse_reference
from release.errors import LeaseLost, PromotionLocked
from release.lease import Holder
from release.ledger import DynamoStore, Ledger, SqliteStore, open_ledger
from release.promote import promote
from tests.deploy.conftest import (
    FUNCTIONS,
    HANDLERS,
    aliases,
    cli_env,
    digest_of,
    file_provider,
    promotion_project,
)
from tests.fixtures.tools import REPO, run_cli

OLD, NEW, CAND = digest_of("a"), digest_of("b"), digest_of("c")
ME = f"{getpass.getuser()}@{socket.gethostname()}"
LEDGERS = pytest.mark.parametrize(
    "ledger", ["sqlite:.release/ledger.db", "dynamodb:release-ledger"]
)


def _promoter(cfg: Any, digest: str, *extra: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """A second promoter process (tests/deploy/promoter.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.deploy.promoter", str(cfg.path), digest, *extra],
        env={**os.environ, **cli_env(env)},
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.aws
@LEDGERS
def test_promoter_killed_during_the_canary_status_shows_the_split(
    lambdas: dict[str, str], tmp_path: Path, aws_env: dict[str, str], ledger: str
) -> None:
    cfg = promotion_project(tmp_path, OLD, NEW, CAND, ledger=ledger)
    promote(cfg, parse_reference(NEW), "prod", file_provider, actor="ci")  # NEW live on version 2
    p = _promoter(cfg, CAND, "--hold-canary", env=aws_env)
    try:
        assert p.stdout is not None and p.stdout.readline() == "canary\n"  # the barrier
    finally:
        p.kill()
        p.communicate(timeout=60)
    assert aliases() == {fn: ("2", {"3": 0.1}) for fn in FUNCTIONS.values()}

    r = run_cli("status", "--env", "prod", "--config", cfg.path, "--json", env=cli_env(aws_env))
    assert r.code == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["digest"] == NEW
    for name, fn in FUNCTIONS.items():
        assert doc["functions"][name] == {
            "function": fn,
            "version": "2",
            "digest": None,
            "routing": [
                {"version": "2", "weight": 0.9, "digest": NEW, "command": [HANDLERS[name]]},
                {"version": "3", "weight": 0.1, "digest": CAND, "command": [HANDLERS[name]]},
            ],
        }
    assert doc["drift"] == [
        line
        for fn in sorted(FUNCTIONS.values())
        for line in (
            f"{fn}: alias live splits traffic: version 2 90%, version 3 10%",
            f"{fn}: version 3 (10% of requests) runs {CAND}, not the live digest {NEW}",
        )
    ]
    assert (doc["lease"]["holder"], doc["lease"]["expired"]) == (f"{ME} pid {p.pid}", False)
    human = run_cli("status", "--env", "prod", "--config", cfg.path, env=cli_env(aws_env))
    assert human.code == 1
    lines = human.stderr.splitlines()
    assert "  scorer: ma-scorer 2" in lines
    assert f"    version 3 10%: {CAND}" in lines
    assert "  drift: ma-scorer: alias live splits traffic: version 2 90%, version 3 10%" in lines

    # the killed promoter wrote no failure event; the next promotion takes over its lease
    # (a process of this host that is gone) and ends the split
    led = open_ledger(cfg)
    actions = [e.action for e in led.events(env="prod")]
    assert actions[actions.index("promote") + 1 :] == (
        ["gate", "promote.start"]
        + ["deploy.update"] * 3
        + ["deploy.publish"] * 3
        + ["canary.shift"] * 3
    )
    promote(cfg, parse_reference(NEW), "prod", file_provider, actor="ci")
    start = [e for e in led.events(env="prod") if e.action == "promote.start"][-1]
    assert start.evidence["lease_took_over"] == f"{ME} pid {p.pid} (process gone)"
    assert aliases() == {fn: ("4", {}) for fn in FUNCTIONS.values()}
    r = run_cli("status", "--env", "prod", "--config", cfg.path, "--json", env=cli_env(aws_env))
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["drift"] == []


@pytest.mark.aws
@LEDGERS
def test_two_promoters_one_waits_at_the_barrier_the_other_is_refused(
    lambdas: dict[str, str], tmp_path: Path, aws_env: dict[str, str], ledger: str
) -> None:
    cfg = promotion_project(tmp_path, OLD, NEW, CAND, ledger=ledger)
    inside, go_on = threading.Event(), threading.Event()
    outcome: list[Any] = []

    def hold(function: str) -> None:
        if not inside.is_set():
            inside.set()
            assert go_on.wait(timeout=300)

    def first() -> None:
        try:
            target = LambdaTarget(cfg, "prod", poll_seconds=0.05, before_publish=hold)
            outcome.append(
                promote(cfg, parse_reference(NEW), "prod", file_provider, target=target, actor="ci")
            )
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)
            inside.set()

    t = threading.Thread(target=first)
    t.start()
    try:
        assert inside.wait(timeout=300)
        r = run_cli("status", "--env", "prod", "--config", cfg.path, "--json", env=cli_env(aws_env))
        lease = json.loads(r.stdout)["lease"]
        assert (lease["holder"], lease["expired"]) == (f"{ME} pid {os.getpid()}", False)
        second = _promoter(cfg, OLD, env=aws_env)
        out, err = second.communicate(timeout=300)
        assert second.returncode == 1, err
        assert out == ""
        assert re.fullmatch(
            rf"release: error: environment 'prod' is locked by another promotion \({re.escape(ME)} pid "
            rf"{os.getpid()}, since \S+Z, lease expires \S+Z\); wait for it to finish, or for the lease "
            r"to expire if that promoter is dead, then run the command again\n",
            err,
        ), err
    finally:
        go_on.set()
        t.join(timeout=300)
    assert not isinstance(outcome[0], BaseException), outcome
    led = open_ledger(cfg)
    assert [e.action for e in led.events()].count("promote") == 1
    assert led.current("prod").digest == NEW
    assert led.lease("prod") is None
    assert aliases() == {fn: ("2", {}) for fn in FUNCTIONS.values()}


def _store(kind: str, tmp_path: Path) -> Any:
    return (
        SqliteStore(tmp_path / "ledger.db") if kind == "sqlite" else DynamoStore("release-ledger")
    )


T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("dynamodb", marks=pytest.mark.aws)])
def test_a_dead_promoters_lease_from_another_host_is_taken_over_after_expiry(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "dynamodb":
        request.getfixturevalue("aws_env")
    store = _store(kind, tmp_path)
    now = [T0]
    led = Ledger(store, clock=lambda: now[0])
    dead = leases.acquire(store, "prod", now=T0, ttl=900, holder=Holder("alice", "build-7", 4242))
    now[0] = T0 + 899  # still within the dead promoter's lease: nobody can tell it is dead
    with pytest.raises(PromotionLocked) as info, led.lock("prod"):
        pass
    assert info.value.exit_code == 1
    assert info.value.message == (
        "environment 'prod' is locked by another promotion (alice@build-7 pid 4242, since "
        "2023-11-14T22:13:20Z, lease expires 2023-11-14T22:28:20Z); wait for it to finish, or for "
        "the lease to expire if that promoter is dead, then run the command again"
    )
    now[0] = T0 + 901
    with led.lock("prod", ttl=600) as mine:
        assert mine.took_over == "alice@build-7 pid 4242 (lease expired 2023-11-14T22:28:20Z)"
        assert mine.holder == Holder.current() and mine.expires == T0 + 1501
        assert led.lease("prod") == mine
        # the old holder coming back to life cannot renew: it must stop
        with pytest.raises(LeaseLost, match=r"^the promotion lease of 'prod' is now held by "):
            leases.renew(store, dead, now=now[0], ttl=900)
        now[0] = T0 + 1400
        assert led.renew(mine, ttl=600).expires == T0 + 2000
        # and a third promoter is refused while we hold it
        with pytest.raises(PromotionLocked), led.lock("prod"):
            pass
    assert led.lease("prod") is None


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("dynamodb", marks=pytest.mark.aws)])
def test_two_takers_of_one_expired_lease_one_wins(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "dynamodb":
        request.getfixturevalue("aws_env")
    store = _store(kind, tmp_path)
    dead = leases.acquire(store, "prod", now=T0, ttl=10, holder=Holder("alice", "build-7", 4242))
    rows = [
        leases.Lease("prod", tok, Holder("bob", h, 1), T0 + 20, T0 + 920).to_row()
        for tok, h in (("t1", "build-8"), ("t2", "build-9"))
    ]
    assert store.write_lease("prod", rows[0], replace=dead.token, now=T0 + 20) is True
    assert store.write_lease("prod", rows[1], replace=dead.token, now=T0 + 20) is False
    assert (
        store.write_lease("prod", rows[1], replace=None, now=T0 + 20) is False
    )  # t1 holds, unexpired
    assert leases.read(store, "prod").holder == Holder("bob", "build-8", 1)


def test_promote_process_takes_over_an_expired_lease_and_records_it(tmp_path: Path) -> None:
    import time

    cfg = promotion_project(tmp_path, OLD, NEW, CAND, target="local")
    store = open_ledger(cfg).store
    t = time.time()
    leases.acquire(store, "prod", now=t, ttl=3600, holder=Holder("alice", "build-7", 4242))
    p = _promoter(cfg, OLD, env={})
    out, err = p.communicate(timeout=300)
    assert p.returncode == 1
    assert err.startswith(
        "release: error: environment 'prod' is locked by another promotion "
        "(alice@build-7 pid 4242, since "
    )
    assert open_ledger(cfg).current("prod") is None
    store.drop_lease("prod", leases.read(store, "prod").token)
    gone = leases.acquire(
        store, "prod", now=t - 7200, ttl=3600, holder=Holder("alice", "build-7", 4242)
    )
    p = _promoter(cfg, OLD, env={})
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    assert out == f"promoted {OLD}\n"
    led = open_ledger(cfg)
    start = [e for e in led.events(env="prod") if e.action == "promote.start"][-1]
    assert (
        start.evidence["lease_took_over"] == f"alice@build-7 pid 4242 (lease expired {gone.until})"
    )
    assert led.current("prod").digest == OLD and led.lease("prod") is None
