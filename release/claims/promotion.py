"""Verify the gate decision and the promotion of a digest in one environment: an
allowing gate decision before the promotion, and a signed promotion statement naming
the ledger event that made the digest live (and, when that statement has one, its
pre-traffic check).
"""

from __future__ import annotations

from release.claims.checklist import Verification
from release.ledger import Event


def check_promotion(v: Verification, all_events: list[Event]) -> None:
    """The ledger's events for `v.digest` (in `v.env`): summarised without an environment;
    with one, the last gate decision must allow, the last promotion follow an allowing
    decision, and the event that made the digest live be named by a signed statement."""
    events = [e for e in all_events if e.digest == v.digest and (not v.env or e.env == v.env)]
    gates = [e for e in events if e.action == "gate"]
    promos = [e for e in events if e.action == "promote"]
    if not v.env:
        if events:
            v.add(
                "ledger",
                True,
                f"{len(events)} events for this digest ({len(gates)} gate, {len(promos)} promote)",
            )
        return
    if not gates:
        v.add("gate decision", False, f"no gate decision for this digest in {v.env!r}")
        return
    last = gates[-1]
    allow = bool((last.decision or {}).get("allow"))
    v.add(
        "gate decision",
        allow,
        f"allowed at {last.time} by {last.actor} (event {last.seq})"
        if allow
        else f"denied at {last.time}: {'; '.join((last.decision or {}).get('reasons', [])[:3])}",
    )
    live = [e for e in events if e.action in ("promote", "rollback")]
    if live:
        last_live = live[-1]
        named = [
            vs
            for vs in v.promotions
            if vs.predicate.get("env") == v.env
            and (vs.predicate.get("ledger") or {}).get("seq") == last_live.seq
            and (vs.predicate.get("ledger") or {}).get("hash") == last_live.hash
        ]
        v.add(
            "promotion statement",
            bool(named),
            f"the {last_live.action} at ledger seq {last_live.seq} is signed ({named[0].bundle_digest})"
            if named
            else f"ledger event {last_live.seq} made {v.digest[:19]} live in {v.env!r} but no signed "
            "promotion statement names it (deleted, or never signed)",
        )
        if named:
            _pretraffic_row(v, named[0].predicate.get("pretraffic"))
            _live_canary_row(v, named[0].predicate.get("live_canary"))
    if promos:
        p = promos[-1]
        preceded = any(g.seq < p.seq and (g.decision or {}).get("allow") for g in gates)
        v.add(
            "promotion",
            preceded,
            f"promoted at {p.time} by {p.actor} (event {p.seq}) after an allowing gate decision"
            if preceded
            else f"promotion event {p.seq} has no allowing gate decision before it",
        )


def _pretraffic_row(v: Verification, pt: object) -> None:
    """The signed statement's pre-traffic check (`[canary.pretraffic]`), when it has one."""
    if not isinstance(pt, dict):
        return
    fns = pt.get("functions") or {}
    failed = sorted(n for n, f in fns.items() if not (isinstance(f, dict) and f.get("passed")))
    ok = bool(pt.get("passed")) and not failed
    v.add(
        "pre-traffic",
        ok,
        f"{len(fns)} function(s) invoked on the new version against the live one with "
        f"{pt.get('items')} corpus items before any traffic: "
        + ("passed" if ok else f"failed ({', '.join(failed) or 'not passed'})"),
    )


def _live_canary_row(v: Verification, live: object) -> None:
    """The signed statement's live canary, when one ran: it passed, its deciding look
    passed, and no check of that look failed or was left undecided."""
    if not isinstance(live, dict):
        return
    looks = [lk for lk in live.get("looks") or [] if isinstance(lk, dict)]
    checks = [c for c in live.get("checks") or [] if isinstance(c, dict)]
    bad = sorted(str(c.get("name")) for c in checks if c.get("verdict") != "pass")
    ok = bool(live.get("passed")) and bool(looks) and looks[-1].get("decision") == "pass"
    ok = ok and not bad
    what = (live.get("metrics") or {}) if isinstance(live.get("metrics"), dict) else {}
    compared = ", ".join(str(x) for x in (what.get("labels"), what.get("score")) if x) or (
        "errors and latency only"
    )
    v.add(
        "live canary",
        ok,
        f"{len(live.get('functions') or {})} function(s) at weight {live.get('weight')} for "
        f"{live.get('bake_seconds')}s, {len(looks)} look(s), comparing {compared}: "
        + ("passed" if ok else f"not passed ({', '.join(bad) or 'deciding look not a pass'})"),
    )
