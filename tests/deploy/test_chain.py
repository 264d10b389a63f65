"""The environment chain: `[environments.prod] after = "staging"` and `soak = "24h"`.

Real parts: images in an OCI layout, promotion statements signed with a key and attached
to the digest, the gate's shipped Rego policy, sqlite and DynamoDB ledgers and CloudWatch
alarms with their history on moto. The gate's clock is a Python argument (`now`); the
staging promotion happens at the real time and the tests look at it from later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from release.attest import sign
from release.claims import verify_release
from release.config import Config, load
from release.digest import parse_reference
from release.errors import GateDenied
from release.evidence import Evidence
from release.image.registry import open_registry
from release.promote import PromotionResult, attest_promotion, gate, promote, rollback
from tests.attest.conftest import build_image
from tests.deploy.conftest import (
    ACCOUNT,
    LOCAL,
    boto,
    digest_of,
    good_evidence,
    put_evidence,
    run_gated,
)
from tests.fixtures.tools import run_cli

LEDGERS = pytest.mark.parametrize(
    "ledger", ["sqlite:.release/ledger.db", "dynamodb:release-ledger"]
)
ERRORS, LATENCY = "staging-errors", "staging-latency"
DAY = timedelta(hours=24)


def _project(
    root: Path,
    *,
    ledger: str = "sqlite:.release/ledger.db",
    chain: str = 'after = "staging"\nsoak = "24h"',
    alarms: tuple[str, ...] = (ERRORS, LATENCY),
) -> tuple[Config, str, str]:
    """A project with environments staging and prod (local targets, images in an OCI
    layout, statements signed by key) and two images: (config, D, E)."""
    names = ", ".join(f'"{a}"' for a in alarms)
    (root / "release.toml").write_text(
        f"""
[model]
path = "model"

[image]
base = "oci:base@{digest_of("0")}"
registry = "{LOCAL}"

[signing]
mode = "key:keys/signing.pem"

[functions]
scorer = "handlers.scorer.lambda_handler"

[environments.staging]
functions = {{ scorer = "st-scorer" }}
region = "us-east-1"
alarms = [{names}]

[environments.prod]
functions = {{ scorer = "pr-scorer" }}
{chain}

[ledger]
url = "{ledger}"
"""
    )
    sign.KeySigner(root / "keys" / "signing.pem")
    reg = open_registry(LOCAL, root)
    return load(root / "release.toml"), str(build_image(reg)), str(build_image(reg, seed=b"e"))


def provider(cfg: Any, ref: Any, env: str) -> Evidence:
    """Evidence that satisfies every other rule of the policy (the chain is the gate's)."""
    return Evidence.model_validate(good_evidence(ref.digest, env=env, repository=LOCAL))


def at(t: datetime) -> Callable[[], datetime]:
    return lambda: t


def _time(res: PromotionResult) -> datetime:
    return datetime.fromisoformat(res.event.time.replace("Z", "+00:00"))


def to_staging(cfg: Config, digest: str, signer: Any = None) -> tuple[datetime, Any]:
    """Promote to staging and sign the promotion statement: (its time, the attestation)."""
    res = promote(cfg, parse_reference(digest), "staging", provider, actor="ci")
    return _time(res), attest_promotion(cfg, res, signer=signer)


def alarm(name: str, *states: str) -> None:
    """Alarm `name` (created OK when new) moved through `states`."""
    cw = boto("cloudwatch")
    if not cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]:
        cw.put_metric_alarm(
            AlarmName=name,
            MetricName="Errors",
            Namespace="AWS/Lambda",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    for s in states:
        cw.set_alarm_state(AlarmName=name, StateValue=s, StateReason=f"test says {s}")


def denied(cfg: Config, digest: str, now: datetime) -> list[str]:
    with pytest.raises(GateDenied) as exc:
        promote(cfg, parse_reference(digest), "prod", provider, actor="ci", now=at(now))
    return list(exc.value.details)


@pytest.mark.aws
@LEDGERS
def test_too_early_is_denied_with_the_time_left_then_allowed_after_the_soak(
    aws_env: dict[str, str], tmp_path: Path, ledger: str
) -> None:
    cfg, d, e = _project(tmp_path, ledger=ledger)
    alarm(ERRORS, "ALARM", "OK")  # in ALARM and back before the promotion: not its soak
    alarm(LATENCY)
    t0, att = to_staging(cfg, d)

    assert denied(cfg, d, t0 + timedelta(hours=5, minutes=12)) == [
        f"prod requires {d} soaked in staging for 24h: 18h48m left"
    ]
    assert [e.action for e in _ledger(cfg).events(env="prod")] == ["gate"]  # nothing moved

    g = gate(cfg, parse_reference(d), "prod", provider, now=at(t0 + DAY))
    c = g.evidence.chain
    assert g.decision.allow, g.decision.reasons
    assert (c.configured, c.ok, c.after, c.soak, c.soak_seconds, c.soaked_seconds, c.left) == (
        True,
        True,
        "staging",
        "24h",
        86400,
        86400,
        "",
    )
    assert c.statement == str(att.referrer)
    assert c.promoted_at == t0.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert c.alarms.reason == (
        f"2 alarms of staging not in ALARM since {c.promoted_at} ({ERRORS}, {LATENCY})"
    )
    res = promote(cfg, parse_reference(d), "prod", provider, now=at(t0 + DAY + timedelta(hours=1)))
    assert res.decision.allow and _ledger(cfg).current("prod").digest == d  # type: ignore[union-attr]

    # E through the chain; then a rollback of prod to D at the real time (D reached
    # staging minutes ago): a rollback does not wait for a soak, D passed the chain before
    t1, _ = to_staging(cfg, e)
    promote(cfg, parse_reference(e), "prod", provider, now=at(t1 + DAY))
    back = rollback(cfg, "prod", provider, actor="oncall")
    assert (back.digest, back.decision.allow) == (d, True)
    # promoting E again (not a rollback) at the real time is gated by the chain
    [again] = denied(cfg, e, datetime.now(UTC))
    assert again.startswith(f"prod requires {e} soaked in staging for 24h: "), again


def _ledger(cfg: Config) -> Any:
    from release.ledger import open_ledger

    return open_ledger(cfg)


@pytest.mark.aws
def test_a_rollback_in_staging_since_is_denied(aws_env: dict[str, str], tmp_path: Path) -> None:
    cfg, d, e = _project(tmp_path)
    alarm(ERRORS)
    alarm(LATENCY)
    promote(cfg, parse_reference(e), "staging", provider, actor="ci")
    t0, _ = to_staging(cfg, d)
    back = rollback(cfg, "staging", provider, actor="oncall")  # staging back on E
    assert back.digest == e
    reasons = denied(cfg, d, t0 + 2 * DAY)
    assert (
        f"prod requires {d} not rolled back in staging: rolled back there at {back.event.time} "
        f"by oncall (ledger seq {back.event.seq})"
    ) in reasons
    # nor did it soak: it was live there until the rollback
    assert any(
        r.startswith(f"prod requires {d} soaked in staging for 24h: it was live there ")
        and f"(replaced by {e[:19]} at {back.event.time}" in r
        for r in reasons
    ), reasons


@pytest.mark.aws
def test_a_staging_alarm_in_alarm_since_is_denied(aws_env: dict[str, str], tmp_path: Path) -> None:
    cfg, d, _ = _project(tmp_path)
    alarm(ERRORS)
    alarm(LATENCY, "ALARM")  # in ALARM before the promotion and still
    t0, _ = to_staging(cfg, d)
    alarm(ERRORS, "ALARM", "OK")  # fired during the soak, then recovered
    history = boto("cloudwatch").describe_alarm_history(
        AlarmName=ERRORS, HistoryItemType="StateUpdate", ScanBy="TimestampAscending"
    )["AlarmHistoryItems"]
    went, back = (f"{h['Timestamp'].astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" for h in history)
    assert [h["HistorySummary"] for h in history] == [
        "Alarm updated from OK to ALARM",
        "Alarm updated from ALARM to OK",
    ]
    since = t0.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert denied(cfg, d, t0 + 2 * DAY) == [
        f"prod requires {d} with staging's alarms never in ALARM since it was promoted there "
        f"({since}): {ERRORS} went to ALARM at {went}; {ERRORS} was in ALARM until {back}; "
        f"{LATENCY} is in ALARM"
    ]
    # an alarm of staging that does not exist cannot show anything: denied, named
    (tmp_path / "p2").mkdir()
    cfg2, d2, _ = _project(tmp_path / "p2", alarms=("no-such-alarm",))
    t2, _ = to_staging(cfg2, d2)
    [reason] = denied(cfg2, d2, t2 + 2 * DAY)
    assert reason.endswith(": alarm no-such-alarm does not exist"), reason


@pytest.mark.aws
def test_another_digest_is_denied(aws_env: dict[str, str], tmp_path: Path) -> None:
    cfg, d, e = _project(tmp_path)
    alarm(ERRORS)
    alarm(LATENCY)
    t0, _ = to_staging(cfg, d)
    missing = f"prod requires {e} promoted to staging first: no verified promotion statement of it to staging"
    assert denied(cfg, e, t0 + 2 * DAY) == [missing]
    assert gate(cfg, parse_reference(d), "prod", provider, now=at(t0 + 2 * DAY)).decision.allow
    # E promoted to staging too (the ledger says so), its statement signed by another key:
    # not verified, so not a promotion the chain counts
    t1, _ = to_staging(cfg, e, signer=sign.KeySigner(tmp_path / "other" / "k.pem"))
    assert denied(cfg, e, t1 + 2 * DAY) == [missing]
    # and D's soak in staging ended when E replaced it there
    [ended] = denied(cfg, d, t1 + 2 * DAY)
    assert ended.startswith(f"prod requires {d} soaked in staging for 24h: it was live there ")
    assert f"(replaced by {e[:19]} at " in ended


def test_a_statement_naming_an_event_the_ledger_does_not_hold_is_denied(tmp_path: Path) -> None:
    """The statement and the ledger must agree: a ledger started afresh (or another
    project's statement) does not show what happened in staging since."""
    cfg, d, _ = _project(tmp_path, alarms=())
    t0, _ = to_staging(cfg, d)
    assert gate(cfg, parse_reference(d), "prod", provider, now=at(t0 + DAY)).decision.allow
    seq = _ledger(cfg).current("staging").seq
    (tmp_path / ".release" / "ledger.db").unlink()
    assert denied(cfg, d, t0 + DAY) == [
        f"prod requires {d} promoted to staging: its promotion statement names ledger event {seq} "
        f"at {t0:%Y-%m-%dT%H:%M:%SZ}, which the ledger does not hold for {d[:19]} in staging"
    ]


def test_promote_cli_too_early_exits_1_with_the_time_left(tmp_path: Path) -> None:
    """`release promote --env prod` right after the staging promotion (the real clock)."""
    cfg, d, _ = _project(tmp_path, alarms=())
    to_staging(cfg, d)
    put_evidence(tmp_path, good_evidence(d, env="prod", repository=LOCAL))
    r = run_gated("promote", d, "--env", "prod", cwd=tmp_path)
    assert r.code == 1, r.stderr
    assert f"gate denied {d} for prod: 1 reason" in r.stderr
    [line] = [x for x in r.stderr.splitlines() if "soaked in staging" in x]
    assert re.search(
        rf"prod requires {d} soaked in staging for 24h: (24h|23h[0-9]+m) left$", line
    ), line
    assert _ledger(cfg).current("prod") is None


def test_without_after_the_gate_is_unchanged(tmp_path: Path) -> None:
    """No `after`: no chain claim, nothing asked of staging, no AWS call."""
    cfg, d, _ = _project(tmp_path, chain="", alarms=())
    g = gate(cfg, parse_reference(d), "prod", provider)
    assert g.decision.allow, g.decision.reasons
    assert (g.evidence.chain.configured, g.evidence.chain.reason) == (False, "not configured")


@pytest.mark.aws
def test_verify_and_audit_show_the_chain(aws_env: dict[str, str], tmp_path: Path) -> None:
    from release.audit import render
    from release.audit.collect import collect

    cfg, d, _ = _project(tmp_path)
    alarm(ERRORS)
    alarm(LATENCY)
    t0, att = to_staging(cfg, d)
    promote(cfg, parse_reference(d), "prod", provider, actor="ci", now=at(t0 + DAY))

    def rows(now: datetime) -> dict[str, tuple[bool, str]]:
        v = verify_release(cfg, d, "prod", now=at(now))
        return {c.name: (c.ok, c.detail) for c in v.checks if c.name.startswith("chain ")}

    later = rows(t0 + DAY + timedelta(minutes=1))
    assert sorted(later) == ["chain alarms", "chain promotion", "chain rollback", "chain soak"]
    assert all(ok for ok, _ in later.values()), later
    assert later["chain promotion"][1].startswith("promoted to staging at ")
    early = rows(t0 + timedelta(hours=1))
    assert early["chain soak"] == (False, f"prod requires {d} soaked in staging for 24h: 23h left")

    report = collect(cfg, env="prod", digest=d, now=at(t0 + DAY + timedelta(minutes=1)))
    [rec] = report.releases
    assert rec.chain is not None and rec.chain.ok
    assert (rec.chain.after, rec.chain.soak, rec.chain.statement) == (
        "staging",
        "24h",
        str(att.referrer),
    )
    assert [c.name for c in rec.chain.checks] == ["promotion", "soak", "rollback", "alarms"]
    md = render.to_markdown(report)
    assert "- **environment chain**: ✅ prod after staging, soak 24h" in md
    assert "Environment chain" in render.to_html(report)
    assert json.loads(render.to_json(report))["releases"][0]["chain"]["after"] == "staging"

    # the CLI, at the real time: promoted to staging moments ago, so not soaked yet
    r = run_cli("verify", d, "--env", "prod", "--json", cwd=tmp_path, env=aws_env)
    assert r.code == 1, r.stderr
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["chain promotion"]["ok"] is True
    assert checks["chain soak"]["ok"] is False
    assert checks["chain soak"]["detail"].startswith(
        f"prod requires {d} soaked in staging for 24h: "
    )
    assert checks["chain soak"]["detail"].endswith(" left")


def test_the_second_platform_gets_the_rule_from_the_shipped_policy(tmp_path: Path) -> None:
    """tests/platforms/tickets (package `svc`, no policy directory, no staging alarms)."""
    (tmp_path / "release.toml").write_text(
        f"""
[model]
path = "ml/urgency"
[image]
base = "oci:base@{digest_of("0")}"
registry = "{LOCAL}"
[signing]
mode = "key:keys/signing.pem"
[code]
package = "svc"
[functions]
classify = "svc.classify.handler"
health = "svc.health.handler"
[environments.staging]
functions = {{ classify = "tickets-classify-staging" }}
[environments.prod]
functions = {{ classify = "tickets-classify", health = "tickets-health" }}
after = "staging"
soak = "2d"
"""
    )
    sign.KeySigner(tmp_path / "keys" / "signing.pem")
    cfg = load(tmp_path / "release.toml")
    assert cfg.gate.policy is None
    d = str(build_image(open_registry(LOCAL, tmp_path), seed=b"tickets"))
    t0, _ = to_staging(cfg, d)
    assert denied(cfg, d, t0 + DAY) == [f"prod requires {d} soaked in staging for 2d: 24h left"]
    g = gate(cfg, parse_reference(d), "prod", provider, now=at(t0 + 2 * DAY))
    assert g.decision.allow, g.decision.reasons
    assert g.evidence.chain.alarms.reason == "staging has no alarms ([environments.staging].alarms)"


PROMOTE_WORKFLOW = """
on: push
jobs:
  promote:
    runs-on: ubuntu-latest
    steps:
      - run: release promote --env prod "$DIGEST"
"""


def test_the_promote_job_may_read_the_alarms_of_after(tmp_path: Path) -> None:
    from release.iam.jobs import job_policy

    def statements(root: Path, **kw: Any) -> list[dict[str, Any]]:
        cfg, _, _ = _project(root, **kw)
        wf = root / ".github" / "workflows" / "release.yml"
        wf.parent.mkdir(parents=True)
        wf.write_text(PROMOTE_WORKFLOW)
        return list(job_policy(cfg, "promote", account=ACCOUNT)["Statement"])

    [soak] = [s for s in statements(tmp_path) if s["Sid"] == "SoakAlarms"]
    assert soak["Action"] == ["cloudwatch:DescribeAlarmHistory", "cloudwatch:DescribeAlarms"]
    assert soak["Resource"] == [
        f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:alarm:{a}" for a in (ERRORS, LATENCY)
    ]
    (tmp_path / "x").mkdir()
    assert "SoakAlarms" not in {s["Sid"] for s in statements(tmp_path / "x", chain="")}
