"""Build the audit report from the ledger, re-verifying every release it names.

Releases are the digests that reached a gate (or were promoted/rolled back) in the
ledger, oldest first. For each one the verification library re-checks every claim, and
the report shows what the *verified* statements say (signer, commit, model, SBOM, canary);
nothing is read from an unverified bundle.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from release.audit.model import (
    AuditReport,
    CanarySummary,
    ChainSummary,
    ReleaseRecord,
    SbomSummary,
    TimelineEntry,
)
from release.checks import Check
from release.claims.chain import Clock
from release.config import Config
from release.digest import Reference, parse_digest
from release.errors import ReleaseError, UsageError
from release.evidence import ChainClaim
from release.ledger import Event, open_ledger

RELEASE_ACTIONS = frozenset({"gate", "promote", "rollback"})


def parse_since(value: str | None) -> str | None:
    """`YYYY-MM-DD` or an ISO timestamp -> ISO string comparable with ledger times."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--since {value!r}: expected a date (YYYY-MM-DD) or ISO timestamp"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def collect(
    cfg: Config,
    *,
    env: str | None = None,
    since: str | None = None,
    digest: str | None = None,
    verify: bool = True,
    now: Clock | None = None,
) -> AuditReport:
    """The audit report; `now`: the clock of the environment chain's soak (default: the
    real time)."""
    if env is not None:
        cfg.environment(env)
    if digest is not None:
        digest = parse_digest(digest)
    led = open_ledger(cfg)
    chain, events = led.snapshot(env)
    since_iso = parse_since(since)
    if since_iso:
        events = [e for e in events if e.time[:19] >= since_iso]
    order: list[str] = []
    for e in events:
        if e.action in RELEASE_ACTIONS and e.digest not in order:
            order.append(e.digest)
    if digest is not None:
        order = [d for d in order if d == digest] or [digest]
    releases: list[ReleaseRecord] = []
    prev_packages: set[str] | None = None
    prev_canary: dict[str, Any] | None = None
    for d in order:
        mine = [e for e in events if e.digest == d]
        rec, packages, canary = _record(
            cfg, d, env, mine, prev_packages, prev_canary, verify=verify, now=now
        )
        releases.append(rec)
        if packages is not None:
            prev_packages = packages
        if canary is not None:
            prev_canary = canary
    return AuditReport(
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        env=env,
        chain_ok=chain.ok,
        chain_detail=chain.detail,
        events=chain.events,
        releases=releases,
    )


def _record(
    cfg: Config,
    digest: str,
    env: str | None,
    events: list[Event],
    prev_packages: set[str] | None,
    prev_canary: dict[str, Any] | None,
    *,
    verify: bool,
    now: Clock | None = None,
) -> tuple[ReleaseRecord, set[str] | None, dict[str, Any] | None]:
    from release.claims import verify_release

    checks: list[Check] = []
    atts: dict[str, Any] = {}
    lock = None
    chain = None
    if verify:
        try:
            v = verify_release(
                cfg, Reference("", parse_digest(digest)), env, ledger=bool(env), now=now
            )
            checks = list(v.checks)
            atts = {n: a for n, a in v.attestations.items() if a.ok}
            lock = v.lock
            chain = _chain_summary(env, v.evidence.chain if v.evidence else None)
        except ReleaseError as exc:
            checks = [Check("verify", False, exc.message)]
    prov = atts["provenance"].predicate if "provenance" in atts else None
    bom = atts["sbom"].predicate if "sbom" in atts else None
    canary = atts["canary"].predicate if "canary" in atts else None
    gates = [e for e in events if e.action == "gate"]
    last_gate = gates[-1] if gates else None
    first = events[0] if events else None
    sbom, packages = _sbom_summary(bom, prev_packages)
    run = None
    commit = None
    if prov:
        meta = (prov.get("runDetails") or {}).get("metadata") or {}
        run = meta.get("invocationId")
        for dep in (prov.get("buildDefinition") or {}).get("resolvedDependencies") or []:
            if "gitCommit" in (dep.get("digest") or {}):
                commit = dep["digest"]["gitCommit"]
                break
    signer = atts["provenance"].signer if "provenance" in atts else None
    rec = ReleaseRecord(
        digest=digest,
        time=first.time if first else "",
        actor=first.actor if first else "",
        signer=signer,
        workflow_run=run,
        source_commit=commit,
        model_repo=lock.repo if lock else None,
        model_commit=lock.commit if lock else None,
        model_digest=lock.digest if lock else None,
        model_files=[(f.path, f.sha256) for f in lock.files] if lock else [],
        sbom=sbom,
        canary=_canary_summary(canary, prev_canary),
        decision_allow=bool((last_gate.decision or {}).get("allow")) if last_gate else None,
        decision_reasons=[str(r) for r in (last_gate.decision or {}).get("reasons", [])]
        if last_gate
        else [],
        decision_policy=str(last_gate.evidence.get("policy_name") or "default")
        if last_gate
        else None,
        decision_policy_digest=str(last_gate.evidence.get("policy") or "") or None
        if last_gate
        else None,
        verification=checks,
        timeline=[
            TimelineEntry(e.seq, e.time, e.action, e.env, e.actor, e.digest, _detail(e))
            for e in events
        ],
        chain=chain,
    )
    return rec, packages, canary


def _chain_summary(env: str | None, c: ChainClaim | None) -> ChainSummary | None:
    if env is None or c is None or not c.configured or c.after is None:
        return None
    from release.config import format_duration

    return ChainSummary(
        env=env,
        after=c.after,
        soak=c.soak,
        promoted_at=c.promoted_at,
        statement=c.statement,
        soaked=format_duration(c.soaked_seconds),
        checks=[Check(name, p.ok, p.reason) for name, p in c.parts().items()],
    )


def _detail(e: Event) -> str:
    if e.decision is not None:
        allow = e.decision.get("allow")
        reasons = e.decision.get("reasons") or []
        if allow is not None:
            return ("allow" if allow else "deny") + (
                f": {'; '.join(map(str, reasons[:3]))}" if reasons else ""
            )
    return ", ".join(
        f"{k}={v}" for k, v in sorted(e.evidence.items()) if not k.startswith("bundle:")
    )[:200]


def _sbom_summary(
    bom: dict[str, Any] | None, prev: set[str] | None
) -> tuple[SbomSummary | None, set[str] | None]:
    if not bom:
        return None, None
    from release.claims.sbom import all_components

    comps = all_components(bom.get("components") or [])
    libs = [c for c in comps if c.get("type") == "library"]
    licenses: dict[str, int] = {}
    for c in libs:
        names = []
        for lic in c.get("licenses") or []:
            inner = lic.get("license") or {}
            name = inner.get("id") or inner.get("name") or lic.get("expression")
            if name:
                names.append(str(name))
        for n in names or ["unknown"]:
            licenses[n] = licenses.get(n, 0) + 1
    packages = {f"{c.get('name')}=={c.get('version')}" for c in libs}
    added = sorted(packages - prev) if prev is not None else []
    removed = sorted(prev - packages) if prev is not None else []
    return SbomSummary(len(comps), len(libs), licenses, added, removed), packages


def _fractions(counts: list[int]) -> list[float]:
    total = sum(counts) or 1
    return [c / total for c in counts]


_HISTOGRAMS = (
    ("confidence_histogram", "Confidence histogram"),
    ("score_histogram", "Score histogram"),
    ("cosine_histogram", "Cosine similarity to the baseline, per item"),
)


def _canary_summary(
    rep: dict[str, Any] | None, prev: dict[str, Any] | None
) -> CanarySummary | None:
    """The charts of a canary report (version 1 or 2): the label shares and the one
    histogram of its output type, each with the baseline's when known - from the report
    itself (version 2 records the paired baseline's) or else from the previous release's
    report when that is the report's baseline."""
    if not rep:
        return None
    output: dict[str, Any] = rep["output"] if isinstance(rep.get("output"), dict) else {}
    key, title = next(
        ((k, t) for k, t in _HISTOGRAMS if isinstance(rep.get(k), dict)), _HISTOGRAMS[0]
    )
    hist = rep.get(key) or {}
    base = prev
    baseline_digest = (rep.get("baseline") or {}).get("digest")
    if (
        base is not None
        and baseline_digest
        and (base.get("subject") or {}).get("digest") != baseline_digest
    ):
        base = None
    base_hist = (base or {}).get(key) or {}
    base_counts = hist.get("baseline_counts")
    if base_counts is None and base_hist.get("edges") == hist.get("edges"):
        base_counts = base_hist.get("counts")
    base_shares = (base or {}).get("label_shares") or rep.get("baseline_label_shares")
    checks = [
        Check(
            name=str(c.get("name")),
            ok=bool(c.get("passed")),
            detail=str(c.get("detail") or c.get("statistic") or ""),
            value=c.get("value"),
            threshold=c.get("threshold"),
        )
        for c in rep.get("checks") or []
    ]
    acc = rep.get("accuracy") or {}
    shares = rep.get("label_shares") or {}
    return CanarySummary(
        passed=bool(rep.get("passed")),
        n=int(rep.get("n") or 0),
        candidate_shares={str(k): float(v) for k, v in shares.items()},
        baseline_shares={str(k): float(v) for k, v in base_shares.items()} if base_shares else None,
        bin_edges=[float(x) for x in hist.get("edges") or []],
        candidate_hist=_fractions([int(x) for x in hist.get("counts") or []]),
        baseline_hist=_fractions([int(x) for x in base_counts]) if base_counts else None,
        checks=checks,
        accuracy=acc.get("accuracy"),
        output=str(output.get("type") or "label"),
        labels=[str(x) for x in output.get("labels") or shares],
        histogram=title,
    )
