"""Gate, promote, roll back and report an environment - by digest, every function at once.

`promote(cfg, ref, env, evidence_provider)`:
1. the provider collects and re-verifies the Evidence for the digest (`release.claims.collect`;
   tests pass their own as a Python argument - nothing in the environment can replace it)
   and the gate evaluates the release
   policy over it; the decision is a ledger event. Deny: `GateDenied` (exit 1), nothing
   touched.
2. the environment's promotion lease is taken (`release.lease`: held by another live
   promotion: `PromotionLocked`, exit 1; a dead holder's lease is taken over - at once for
   a process of this host, after its expiry for another host - and the takeover recorded
   in `promote.start`);
3. the target moves every function to the digest, recording each step in the ledger and
   renewing the lease with each; a failure part-way puts every function back and the
   `promote.failed` event records where every function was left (`left:NAME`, read back
   from the target), then the error is re-raised;
4. the `promote` event makes the digest the environment's live digest.

`rollback` promotes the previous live digest again, re-verified and gated like any other.

`attest_promotion` signs the promotion predicate and attaches it to the digest. It anchors
the ledger: it names the `promote` event (seq, hash), the event that event extends and the
gate event it acted on, so `release verify` and `release ledger verify` see a ledger cut
after any of them.

`status` compares what the target really serves with the ledger: for Lambda, per
function, every version the alias routes to (weighted routing included) and the digest
each one's image resolves to; a split, another digest, another version or CMD is drift.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from release.config import Config
from release.deploy import FunctionState, Route, Target, target_for
from release.digest import Reference, parse_reference
from release.errors import GateDenied, ReleaseError, UsageError, VerificationFailed
from release.evidence import Evidence, ReadinessClaim
from release.gate import Decision, evaluate, policy_for
from release.lease import LEASE_SECONDS, Lease
from release.ledger import Event, Ledger, open_ledger

log = logging.getLogger(__name__)

#: (config, image reference, environment) -> verified Evidence
EvidenceProvider = Callable[[Config, Reference, str], Evidence]
#: the wall clock of the environment chain's soak (an aware datetime)
Clock = Callable[[], datetime]


def default_provider() -> EvidenceProvider:
    """The one evidence provider of the product: `release.claims.collect`."""
    from release.claims import collect

    return collect


@dataclass(frozen=True)
class GateResult:
    decision: Decision
    evidence: Evidence
    event: Event | None


def gate(
    cfg: Config,
    ref: Reference,
    env: str,
    provider: EvidenceProvider,
    *,
    ledger: Ledger | None = None,
    actor: str | None = None,
    now: Clock | None = None,
    rollback: bool = False,
) -> GateResult:
    """Collect the Evidence, evaluate the policy, record the decision. Never raises on deny.
    An environment with `after` gets the chain claim (`release.claims.chain`) checked
    here, whatever the provider gave, at `now()` (default: the real time); not for a
    `rollback` (to a digest that passed it when it was promoted to `env`)."""
    cfg.environment(env)  # unknown environment: ConfigError before any work
    evidence = provider(cfg, ref, env)
    if evidence.digest != ref.digest or evidence.env != env:
        raise VerificationFailed(
            f"evidence is about {evidence.digest} in {evidence.env!r}, not {ref.digest} in {env!r}"
        )
    if cfg.readiness.gate:
        evidence = evidence.model_copy(update={"readiness": readiness_claim(cfg, env)})
    led = ledger or open_ledger(cfg)
    if cfg.environment(env).after is not None:
        from release.claims.chain import check_chain, rollback_claim

        chain = (
            rollback_claim(env)
            if rollback
            else check_chain(cfg, ref.digest, env, repository=ref.repository, ledger=led, now=now)
        )
        evidence = evidence.model_copy(update={"chain": chain})
    decision = evaluate(evidence, policy_for(cfg))
    log.debug(
        "gate %s for %s: %s (%d reasons, policy %s)",
        ref.digest,
        env,
        "allow" if decision.allow else "deny",
        len(decision.reasons),
        decision.policy_digest,
    )
    event = led.append(
        env,
        "gate",
        ref.digest,
        actor=actor,
        evidence={
            **evidence.digests(),
            "policy": decision.policy_digest,
            "policy_name": decision.policy_name,
        },
        decision={"allow": decision.allow, "reasons": list(decision.reasons)},
    )
    return GateResult(decision, evidence, event)


def readiness_claim(cfg: Config, env: str, **kw: Any) -> ReadinessClaim:
    """The readiness review of `env` as a claim of the Evidence (`[readiness].gate`)."""
    from release.readiness import collect

    report = collect(cfg, env, **kw)
    failed = [f"{r.id}: {r.why}" for r in report.failed_required]
    n = len(failed)
    return ReadinessClaim(
        ok=report.ready,
        configured=True,
        reason="" if report.ready else f"{n} required row{'s' if n != 1 else ''} fail",
        failed=failed,
    )


def denied(decision: Decision) -> GateDenied:
    n = len(decision.reasons)
    return GateDenied(
        f"gate denied {decision.digest} for {decision.env}: {n} reason{'s' if n != 1 else ''}",
        details=list(decision.reasons),
    )


@dataclass(frozen=True)
class PromotionResult:
    env: str
    digest: str
    reference: str
    action: str
    previous: str | None
    decision: Decision
    functions: tuple[FunctionState, ...]
    event: Event
    gate_event: Event | None = None
    #: the pre-traffic check's result (`[canary.pretraffic]`), signed with the promotion
    pretraffic: dict[str, Any] | None = None
    #: what the live canary saw before the alias moved, signed with the promotion
    live_canary: dict[str, Any] | None = None

    def predicate(self) -> dict[str, Any]:
        """The promotion predicate (attestations/promotion.schema.json)."""
        return {
            "env": self.env,
            "action": self.action,
            "digest": self.digest,
            "reference": self.reference,
            "previous": self.previous,
            "functions": {
                f.name: {"function": f.target_name, "version": f.version or ""}
                for f in self.functions
            },
            "decision": {
                "allow": self.decision.allow,
                "reasons": list(self.decision.reasons),
                "policy_name": self.decision.policy_name,
                "policy_digest": self.decision.policy_digest,
                "evidence_digest": self.decision.evidence_digest,
                **(
                    {"ledger": {"seq": self.gate_event.seq, "hash": self.gate_event.hash}}
                    if self.gate_event is not None
                    else {}
                ),
            },
            "ledger": {
                "seq": self.event.seq,
                "hash": self.event.hash,
                "time": self.event.time,
                "extends": {"seq": self.event.seq - 1, "hash": self.event.prev_hash},
            },
            "actor": self.event.actor,
            **({"pretraffic": self.pretraffic} if self.pretraffic is not None else {}),
            **({"live_canary": self.live_canary} if self.live_canary is not None else {}),
        }


def promote(
    cfg: Config,
    ref: Reference,
    env: str,
    provider: EvidenceProvider,
    *,
    target: Target | None = None,
    ledger: Ledger | None = None,
    actor: str | None = None,
    action: str = "promote",
    now: Clock | None = None,
) -> PromotionResult:
    """Gate, then every function of `env` to `ref`, or nothing (see module docstring).
    `now`: the gate's clock for the environment chain's soak (tests pass one)."""
    led = ledger or open_ledger(cfg)
    g = gate(
        cfg, ref, env, provider, ledger=led, actor=actor, now=now, rollback=action == "rollback"
    )
    if not g.decision.allow:
        raise denied(g.decision)
    tgt = target or target_for(cfg, env)
    pretraffic = getattr(tgt, "pretraffic", None)
    if pretraffic is not None and action == "rollback":
        pretraffic.compare = False  # it restores earlier behaviour: run, not compared
    traffic = cfg.environment(env).traffic
    ttl = LEASE_SECONDS + traffic.bake_seconds / traffic.looks  # outlasts one canary look
    with led.lock(env, ttl=ttl) as lease:
        cur = led.current(env)
        previous = cur.digest if cur else None
        held: list[Lease] = [lease]
        led.append(
            env,
            f"{action}.start",
            ref.digest,
            actor=actor,
            evidence={
                "from": previous or "",
                "target": tgt.kind,
                "lease": f"{lease.holder} until {lease.until}",
                **({"lease_took_over": lease.took_over} if lease.took_over else {}),
            },
        )

        log.debug("%s lease taken: %s until %s", env, lease.holder, lease.until)

        def on_step(step: str, detail: dict[str, str]) -> None:
            log.debug("%s %s: %s", env, step, detail)
            led.append(env, step, ref.digest, actor=actor, evidence=detail)
            held[0] = led.renew(held[0], ttl=ttl)

        try:
            result = tgt.deploy(ref, on_step)
        except ReleaseError as exc:
            led.append(
                env,
                f"{action}.failed",
                ref.digest,
                actor=actor,
                evidence={"error": exc.message, "live": previous or "", **_left(tgt)},
            )
            raise
        evidence = {
            **g.evidence.digests(),
            "policy": g.decision.policy_digest,
            "policy_name": g.decision.policy_name,
            "reference": result.reference,
            "from": previous or "",
            **{f"version:{f.name}": f.version or "" for f in result.functions},
            **_pretraffic_summary(result.pretraffic),
            **_live_summary(result.live_canary),
        }
        event = led.append(
            env,
            action,
            ref.digest,
            actor=actor,
            evidence=evidence,
            decision={"allow": True, "reasons": list(g.decision.reasons)},
        )
    return PromotionResult(
        env,
        ref.digest,
        result.reference,
        action,
        previous,
        g.decision,
        result.functions,
        event,
        g.event,
        result.pretraffic,
        result.live_canary,
    )


def _pretraffic_summary(pt: dict[str, Any] | None) -> dict[str, str]:
    """The pre-traffic result in the `promote` event (the predicate has all of it)."""
    if pt is None:
        return {}
    return {"pretraffic": f"{'passed' if pt['passed'] else 'failed'}, {pt['items']} items"}


def _live_summary(live: dict[str, Any] | None) -> dict[str, str]:
    """The live canary's outcome in the `promote` event (the predicate has all of it)."""
    if live is None:
        return {}
    looks = live.get("looks") or []
    return {
        "live_canary": f"{'passed' if live.get('passed') else 'failed'} after {len(looks)} "
        f"look(s) over {live.get('bake_seconds')}s"
    }


def attest_promotion(
    cfg: Config, res: PromotionResult, *, signer: Any = None, registry: Any = None
) -> Any:
    """Sign the promotion predicate (validated against attestations/promotion.schema.json)
    and attach it to the promoted digest in its registry; the Attestation back."""
    import json
    import tempfile
    from pathlib import Path

    from release.attest import sign, statements
    from release.image.registry import open_registry

    ref = parse_reference(res.reference)
    reg = registry or open_registry(ref.repository or cfg.image.registry, cfg.root)
    sgn = signer or sign.make_signer(cfg.signing.mode, cfg.root)
    with tempfile.TemporaryDirectory(prefix="release-promotion-") as tmp:
        path = Path(tmp) / f"promotion-{res.env}.json"
        path.write_text(json.dumps(res.predicate(), indent=2, sort_keys=True))
        pred = statements.load_predicate("promotion", path)
    return sign.attest(reg, ref.digest, [pred], sgn)[0]


def rollback(
    cfg: Config,
    env: str,
    provider: EvidenceProvider,
    *,
    target: Target | None = None,
    ledger: Ledger | None = None,
    actor: str | None = None,
    now: Clock | None = None,
) -> PromotionResult:
    """Promote the previous live digest again (re-verified and gated first)."""
    led = ledger or open_ledger(cfg)
    cfg.environment(env)
    prev = led.previous(env)
    if prev is None:
        raise UsageError(f"environment {env!r} has no earlier promoted digest to roll back to")
    ref = parse_reference(prev.evidence.get("reference") or prev.digest)
    if ref.digest != prev.digest:
        raise VerificationFailed(
            f"ledger event {prev.seq}: reference {ref} does not match digest {prev.digest}"
        )
    return promote(
        cfg, ref, env, provider, target=target, ledger=led, actor=actor, action="rollback", now=now
    )


def _route_text(r: Route) -> str:
    return f"version {r.version} {r.weight:.0%} {r.digest or '? (' + r.problem + ')'}"


def _where(f: FunctionState) -> str:
    if f.routes:
        return f"{f.target_name}: " + "; ".join(_route_text(r) for r in f.routes)
    return f"{f.target_name}: {f.version or 'nothing live'}"


def _left(tgt: Target) -> dict[str, str]:
    """Where every function was left after a failed promotion, read back from the target
    (`left:NAME`), for the `promote.failed` event."""
    try:
        return {f"left:{f.name}": _where(f) for f in tgt.live()}
    except ReleaseError as exc:
        return {"left": f"could not be read back: {exc.message}"}


@dataclass(frozen=True)
class EnvStatus:
    env: str
    target: str
    live: Event | None
    functions: tuple[FunctionState, ...]
    drift: tuple[str, ...]
    lease: dict[str, Any] | None = None  # the promotion lease, if one is held

    def to_dict(self) -> dict[str, Any]:
        live = self.live
        return {
            "env": self.env,
            "target": self.target,
            "digest": live.digest if live else None,
            "reference": live.evidence.get("reference") if live else None,
            "since": live.time if live else None,
            "by": live.actor if live else None,
            "action": live.action if live else None,
            "functions": {f.name: _function_dict(f) for f in self.functions},
            "drift": list(self.drift),
            "lease": self.lease,
        }


def _function_dict(f: FunctionState) -> dict[str, Any]:
    d: dict[str, Any] = {"function": f.target_name, "version": f.version}
    if f.routes:
        d["routing"] = [
            {
                "version": r.version,
                "weight": r.weight,
                "digest": r.digest,
                "command": list(r.command),
                **({"problem": r.problem} if r.problem else {}),
            }
            for r in f.routes
        ]
        digests = {r.digest for r in f.routes}
        d["digest"] = digests.pop() if len(digests) == 1 else None  # one digest served, or a split
    return d


def status(
    cfg: Config, env: str, *, target: Target | None = None, ledger: Ledger | None = None
) -> EnvStatus:
    """The live digest (from the ledger) and, per function, what the target really serves;
    any difference between the two is reported as drift."""
    led = ledger or open_ledger(cfg)
    tgt = target or target_for(cfg, env)
    live = led.current(env)
    fns = tuple(tgt.live())
    drift: list[str] = []
    if live is not None and tgt.kind == "lambda":
        alias = cfg.environment(env).alias
        for f in fns:
            drift.extend(_drift(f, live, alias, cfg.functions.get(f.name, "")))
    lease = led.lease(env)
    return EnvStatus(
        env,
        tgt.kind,
        live,
        fns,
        tuple(drift),
        lease.to_dict(led.clock()) if lease is not None else None,
    )


def _drift(f: FunctionState, live: Event, alias: str, handler: str) -> list[str]:
    want = live.evidence.get(f"version:{f.name}")
    if f.version is None:
        return [
            f"{f.target_name}: alias {alias} does not exist; the ledger says {live.digest} is live"
        ]
    out = []
    if want and f.version != want:
        out.append(f"{f.target_name}: alias points at version {f.version}, the ledger says {want}")
    if len(f.routes) > 1:
        split = ", ".join(f"version {r.version} {r.weight:.0%}" for r in f.routes)
        out.append(f"{f.target_name}: alias {alias} splits traffic: {split}")
    for r in f.routes:
        if r.digest is None:
            out.append(
                f"{f.target_name}: cannot tell what version {r.version} "
                f"({r.weight:.0%} of requests) runs: {r.problem}"
            )
        elif r.digest != live.digest:
            out.append(
                f"{f.target_name}: version {r.version} ({r.weight:.0%} of requests) runs "
                f"{r.digest}, not the live digest {live.digest}"
            )
        if handler and r.command and r.command != (handler,):
            out.append(
                f"{f.target_name}: version {r.version} runs CMD {list(r.command)}, "
                f"[functions] says {handler}"
            )
    return out
