"""The environment chain: `[environments.ENV].after = "staging"` and `soak = "24h"`.

Before a digest may go to ENV it must have been promoted to `after`, stayed live there
at least `soak`, not been rolled back there, and the alarms of `after`
(`[environments.AFTER].alarms`) must not have been in ALARM since. Four claims, each with
its reason, in one `ChainClaim` of the Evidence (the default gate policy denies on each,
`release verify --env ENV` lists them as `chain NAME` rows, the audit shows them):

- `promotion`: the newest promotion statement about the digest for `after` (a signed
  in-toto statement attached to the digest, verified with `[signing]` like every other
  attestation; `action` promote or rollback, allowed) - never the ledger alone. The
  ledger event it names (seq and hash) must be in the ledger, whose chain must verify.
- `soak`: the time it names (`ledger.time`, signed) is at least `soak` before now, and
  the digest was live in `after` that long: a later promotion of another digest there
  ends its soak.
- `rollback`: no rollback in `after` away from the digest since (ledger events after the
  statement's; the chain must verify).
- `alarms`: each alarm of `after` exists, is not in ALARM now (while the digest is still
  live there), and CloudWatch's alarm history (`describe_alarm_history`, StateUpdate,
  from the promotion until now or until the digest was replaced) has no update into or
  out of ALARM. CloudWatch keeps 30 days of history: an older promotion cannot show it,
  and is a failed claim (promote the digest to `after` again).

The clock is a Python argument (`now`, a callable returning an aware datetime); unset:
the real time. Nothing in the environment replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from release.attest.signatures import VerifiedStatement
from release.config import Config, format_duration
from release.errors import ReleaseError
from release.evidence import ChainClaim, Claim
from release.ledger import LIVE_ACTIONS, Event, Ledger

#: how far back CloudWatch keeps an alarm's history
ALARM_HISTORY_DAYS = 30

Clock = Callable[[], datetime]


def real_now() -> datetime:
    return datetime.now(UTC)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class _Promotion:
    statement: VerifiedStatement
    seq: int
    hash: str
    time: datetime


def _promotions_to(statements: list[VerifiedStatement], digest: str, env: str) -> list[_Promotion]:
    """The verified statements that made `digest` live in `env`, oldest first."""
    out = []
    for vs in statements:
        p = vs.predicate
        led: dict[str, Any] = p["ledger"] if isinstance(p.get("ledger"), dict) else {}
        dec: dict[str, Any] = p["decision"] if isinstance(p.get("decision"), dict) else {}
        when = _parse_time(led.get("time"))
        seq = led.get("seq")
        if (
            p.get("env") == env
            and p.get("digest") == digest
            and p.get("action") in LIVE_ACTIONS
            and dec.get("allow") is True
            and isinstance(seq, int)
            and when is not None
        ):
            out.append(_Promotion(vs, seq, str(led.get("hash") or ""), when))
    return sorted(out, key=lambda x: x.seq)


def check_chain(
    cfg: Config,
    digest: str,
    env: str,
    *,
    statements: list[VerifiedStatement] | None = None,
    registry: Any = None,
    repository: str | None = None,
    ledger: Ledger | None = None,
    cloudwatch: Any = None,
    now: Clock | None = None,
) -> ChainClaim:
    """The chain claim of `digest` for `env` (not configured: `configured = false`).

    `statements`: the verified promotion statements about the digest when the caller has
    them (`release verify`); else they are fetched from `registry` (default: the one of
    `repository` or `[image].registry`) and verified with `[signing]`. `cloudwatch`: a
    boto3 client for the region of `after` (default: made here). `now`: the clock."""
    e = cfg.environment(env)
    if e.after is None:
        return ChainClaim(ok=False, configured=False, reason="not configured")
    after = e.after
    soak = e.soak or "0s"
    soak_s = e.soak_seconds
    t_now = _aware((now or real_now)())
    base: dict[str, Any] = {
        "configured": True,
        "after": after,
        "soak": soak,
        "soak_seconds": soak_s,
    }
    wants = f"{env} requires {digest}"

    if statements is None:
        statements = _fetch_statements(cfg, digest, registry, repository)
    found = _promotions_to(statements, digest, after)
    if not found:
        why = f"{wants} promoted to {after} first: no verified promotion statement of it to {after}"
        return _failed(base, promotion=Claim(ok=False, reason=why))
    p = found[-1]
    base.update(promoted_at=_iso(p.time), statement=p.statement.bundle_digest)

    led = ledger
    if led is None:
        from release.ledger import open_ledger

        led = open_ledger(cfg)
    from release.ledger import LedgerBroken

    try:
        chain, events = led.snapshot(after)
        problem = None if chain.ok else chain.problems[0]
    except LedgerBroken as exc:  # a row that does not even parse
        problem, events = exc.message, []
    if problem is not None:
        why = (
            f"{wants} promoted to {after}: the ledger chain is broken ({problem}); "
            "cannot show what happened there since"
        )
        return _failed(base, promotion=Claim(ok=False, reason=why))
    named = [x for x in events if x.seq == p.seq]
    if (
        not named
        or named[0].hash != p.hash
        or named[0].digest != digest
        or _parse_time(named[0].time) != p.time
    ):
        why = (
            f"{wants} promoted to {after}: its promotion statement names ledger event "
            f"{p.seq} at {_iso(p.time)}, which the ledger does not hold for {digest[:19]} in "
            f"{after}"
        )
        return _failed(base, promotion=Claim(ok=False, reason=why))
    promotion = Claim(
        ok=True,
        reason=f"promoted to {after} at {_iso(p.time)} (ledger seq {p.seq}), "
        f"statement {p.statement.bundle_digest} signed by {p.statement.signer}",
    )

    # what happened in `after` since: the first live event of another digest ends the soak
    later = [x for x in events if x.seq > p.seq and x.action in LIVE_ACTIONS]
    ended: Event | None = next((x for x in later if x.digest != digest), None)
    rolled = [x for x in later if x.action == "rollback" and x.evidence.get("from") == digest]
    if rolled:
        r = rolled[0]
        rollback = Claim(
            ok=False,
            reason=f"{wants} not rolled back in {after}: rolled back there at {r.time} "
            f"by {r.actor} (ledger seq {r.seq})",
        )
    else:
        rollback = Claim(ok=True, reason=f"no rollback of it in {after} since {_iso(p.time)}")

    end = min(t_now, _parse_time(ended.time) or t_now) if ended is not None else t_now
    soaked_s = max(0, int((end - p.time).total_seconds()))
    left = ""
    if soaked_s >= soak_s:
        soaked = Claim(
            ok=True,
            reason=f"live in {after} {format_duration(soaked_s)} (soak {soak})",
        )
    elif ended is not None:
        soaked = Claim(
            ok=False,
            reason=f"{wants} soaked in {after} for {soak}: it was live there "
            f"{format_duration(soaked_s)} (replaced by {ended.digest[:19]} at {ended.time}, "
            f"ledger seq {ended.seq})",
        )
    else:
        left = format_duration(soak_s - soaked_s)
        soaked = Claim(ok=False, reason=f"{wants} soaked in {after} for {soak}: {left} left")
    base.update(soaked_seconds=soaked_s, left=left)

    alarms = _alarms(
        cfg, after, wants, p.time, end, still_live=ended is None, t_now=t_now, client=cloudwatch
    )
    bad = [c.reason for c in (promotion, soaked, rollback, alarms) if not c.ok]
    return ChainClaim(
        ok=not bad,
        reason="; ".join(bad),
        promotion=promotion,
        soaked=soaked,
        rollback=rollback,
        alarms=alarms,
        **base,
    )


def rollback_claim(env: str) -> ChainClaim:
    """The chain claim of a rollback of `env`: not checked (the digest passed the chain
    when it was promoted to `env`; a rollback must not wait for a soak)."""
    return ChainClaim(
        ok=False,
        configured=False,
        reason=f"a rollback in {env}: the digest passed the chain when it was promoted there",
    )


def _failed(base: dict[str, Any], *, promotion: Claim) -> ChainClaim:
    skipped = Claim(ok=False, reason="not checked: no verified promotion to check it against")
    return ChainClaim(
        ok=False,
        reason=promotion.reason,
        **base,
        promotion=promotion,
        soaked=skipped,
        rollback=skipped,
        alarms=skipped,
    )


def _fetch_statements(
    cfg: Config, digest: str, registry: Any, repository: str | None
) -> list[VerifiedStatement]:
    from release.attest.signatures import policy_from_config, verify_all_stored
    from release.evidence import PROMOTION
    from release.image.registry import open_registry

    reg = registry or open_registry(repository or cfg.image.registry, cfg.root)
    return verify_all_stored(reg, digest, PROMOTION, policy_from_config(cfg.signing, cfg.root))


def _cloudwatch(cfg: Config, env: str) -> Any:
    import boto3

    region = cfg.environment(env).region
    return boto3.client("cloudwatch", region_name=region) if region else boto3.client("cloudwatch")


def _alarms(
    cfg: Config,
    after: str,
    wants: str,
    start: datetime,
    end: datetime,
    *,
    still_live: bool,
    t_now: datetime,
    client: Any,
) -> Claim:
    names = list(cfg.environment(after).alarms)
    since = _iso(start)
    if not names:
        return Claim(ok=True, reason=f"{after} has no alarms ([environments.{after}].alarms)")
    head = f"{wants} with {after}'s alarms never in ALARM since it was promoted there ({since})"
    if start < t_now - timedelta(days=ALARM_HISTORY_DAYS):
        return Claim(
            ok=False,
            reason=f"{head}: CloudWatch keeps {ALARM_HISTORY_DAYS} days of alarm history and "
            f"the promotion is older; promote it to {after} again",
        )
    from release.canary.live import cloudwatch_call

    try:
        cw = client or _cloudwatch(cfg, after)
        resp = cloudwatch_call(cw, "describe_alarms", AlarmNames=names)
        states = {
            a["AlarmName"]: str(a.get("StateValue", ""))
            for kind in ("MetricAlarms", "CompositeAlarms")
            for a in resp.get(kind, [])
        }
        problems: list[str] = []
        for name in names:
            if name not in states:
                problems.append(f"alarm {name} does not exist")
                continue
            if still_live and states[name] == "ALARM":
                problems.append(f"{name} is in ALARM")
            problems.extend(_history(cw, name, start, end))
    except ReleaseError as exc:
        why = " ".join(exc.message.split())  # one line
        return Claim(ok=False, reason=f"{head}: cannot read the alarms: {why}")
    if problems:
        return Claim(ok=False, reason=f"{head}: {'; '.join(problems)}")
    return Claim(
        ok=True,
        reason=f"{len(names)} alarm{'s' if len(names) != 1 else ''} of {after} not in ALARM "
        f"since {since} ({', '.join(names)})",
    )


def _history(cw: Any, name: str, start: datetime, end: datetime) -> list[str]:
    """Each state update of alarm `name` between `start` and `end` into or out of ALARM."""
    from release.canary.live import cloudwatch_call

    out: list[str] = []
    token: str | None = None
    while True:
        kw: dict[str, Any] = {
            "AlarmName": name,
            "HistoryItemType": "StateUpdate",
            "StartDate": start,
            "EndDate": end,
            "ScanBy": "TimestampAscending",
            "MaxRecords": 100,
        }
        if token:
            kw["NextToken"] = token
        resp = cloudwatch_call(cw, "describe_alarm_history", **kw)
        for item in resp.get("AlarmHistoryItems", []):
            old, new = _states(item)
            when = item.get("Timestamp")
            at = _iso(_aware(when)) if isinstance(when, datetime) else str(when)
            if new == "ALARM":
                out.append(f"{name} went to ALARM at {at}")
            elif old == "ALARM":
                out.append(f"{name} was in ALARM until {at}")
        token = resp.get("NextToken")
        if not token:
            return out


def _states(item: dict[str, Any]) -> tuple[str, str]:
    """(old, new) state of a StateUpdate history item: from HistoryData, else the summary
    ("Alarm updated from OK to ALARM")."""
    try:
        data = json.loads(item.get("HistoryData") or "{}")
        old = str(((data.get("oldState") or {}).get("stateValue")) or "")
        new = str(((data.get("newState") or {}).get("stateValue")) or "")
        if old or new:
            return old, new
    except (ValueError, AttributeError):
        pass
    summary = str(item.get("HistorySummary") or "")
    words = summary.split()
    old = words[words.index("from") + 1] if "from" in words[:-1] else ""
    new = words[words.index("to") + 1] if "to" in words[:-1] else ""
    return old, new
