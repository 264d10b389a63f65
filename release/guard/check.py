"""One guard decision: what every alias of an environment serves, against the ledger's
promoted digest and that digest's signed evidence; on a mismatch an alarm (SNS) and, when
`[environments.ENV.guard].rollback` is on, every drifted alias moved back.

`check(cfg, env, ...)` is the whole decision; the Lambda entry (release.guard.handler) and
`release guard check` both call it. Every client is a Python argument (tests pass moto's;
defaults are boto3's), as is the clock.

Order (each step's result is in the report):
1. the ledger's chain is verified and its live event for `env` read (`Ledger.current`);
   while another promotion holds the environment's lease the check is `deferred` (a
   promotion moves aliases through versions the ledger does not name yet; the schedule
   checks again after it);
2. the promoted digest's evidence is verified offline with `[signing]`'s key or pinned
   trust root: a signed promotion statement for `env` naming the live ledger event
   (seq and hash), and valid provenance, SBOM and canary attestations about the digest;
3. per function, the alias's routing (both versions of a weighted alias) and the digest
   each routed version's image resolves to (`Code.ResolvedImageUri`, cross-checked with
   `CodeSha256`) and its CMD: any other digest, an unresolvable image, another CMD or a
   missing alias is a finding;
4. findings -> one JSON message to the topic; with rollback on (and the promoted digest's
   evidence verified), each drifted alias is pointed at the version the ledger's live
   event names (or else the newest published version that runs the promoted digest and
   CMD) with its routing cleared, read back, and a `guard.rollback` event appended. The
   guard never publishes a version or changes code: when no version runs the promoted
   digest it says so and only alarms (`release promote` / `release rollback` repair it);
5. a `guard.check` event records the decision (`release status` shows the last one).
"""

from __future__ import annotations

import json
import logging
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from release.attest.signatures import (
    NoAttestation,
    Policy,
    policy_from_config,
    verify_all_stored,
    verify_stored,
)
from release.config import Config, GuardConfig
from release.deploy import FunctionState, Route
from release.errors import (
    ConfigError,
    RemoteError,
    StepFailed,
    UsageError,
    VerificationFailed,
    aws_error_message,
)
from release.evidence import CANARY_TYPES, PREDICATES, PROMOTION
from release.ledger import Event, Ledger, open_ledger

log = logging.getLogger(__name__)

CHECK = "guard.check"
ROLLBACK = "guard.rollback"
#: the build attestations the guard re-verifies (the model signature is about the
#: model's root digest, read from the image's layers: `release verify` checks it)
BUILD_ATTESTATIONS: dict[str, tuple[str, ...]] = {
    "provenance": (PREDICATES["provenance"],),
    "sbom": (PREDICATES["sbom"],),
    "canary": CANARY_TYPES,
}


@dataclass(frozen=True)
class Finding:
    """One thing that does not match: `kind` is `digest`, `command`, `alias` or `evidence`."""

    function: str  # the Lambda function ("" for the environment's evidence)
    kind: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"function": self.function, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class Rollback:
    function: str
    from_version: str
    to_version: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "from": self.from_version,
            "to": self.to_version,
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class GuardReport:
    env: str
    trigger: str
    checked_at: str
    promoted: str | None  # the ledger's live digest (None: never promoted)
    ledger_seq: int | None
    deferred: str = ""  # why the check was deferred ("" = it was made)
    evidence_ok: bool = False
    served: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    rollbacks: tuple[Rollback, ...] = ()
    alarm: str = ""  # the SNS message id ("" = none sent)
    rollback_on: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def result(self) -> str:
        if self.deferred:
            return "deferred"
        if self.ok:
            return "ok"
        if self.rollbacks and all(r.ok for r in self.rollbacks) and self.evidence_ok:
            return "drift-undone"
        return "drift"

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "trigger": self.trigger,
            "checked_at": self.checked_at,
            "result": self.result,
            "ok": self.ok,
            "promoted": self.promoted,
            "ledger_seq": self.ledger_seq,
            "deferred": self.deferred,
            "evidence_ok": self.evidence_ok,
            "served": self.served,
            "findings": [f.to_dict() for f in self.findings],
            "rollback": self.rollback_on,
            "rollbacks": [r.to_dict() for r in self.rollbacks],
            "alarm": self.alarm,
        }


def _no_watch(shifts: Any, on_step: Any = None) -> None:  # the guard never shifts traffic
    raise AssertionError("the guard does not deploy")


def guard_config(cfg: Config, env: str) -> GuardConfig:
    e = cfg.environment(env)
    if e.target != "lambda":
        raise UsageError(
            f"release guard: [environments.{env}] is a {e.target} target; the guard watches "
            "Lambda aliases"
        )
    return e.guard


def offline_policy(cfg: Config) -> Policy:
    """The verify policy of `[signing]`, refused unless verification needs no network:
    a public key (key or KMS mode, or `public_key`) or a pinned `trusted_root`."""
    s = cfg.signing
    if not (s.public_key or s.mode.startswith(("key:", "awskms:")) or s.trusted_root):
        raise ConfigError(
            "release guard verifies offline: keyless signing needs [signing].trusted_root "
            "(a pinned trusted_root.json shipped with the guard's config)"
        )
    return policy_from_config(s, cfg.root)


class Guard:
    """The clients and settings of one environment's guard, built once (a warm Lambda
    keeps it between events)."""

    def __init__(
        self,
        cfg: Config,
        env: str,
        *,
        lambda_client: Any = None,
        sns: Any = None,
        ledger: Ledger | None = None,
        registry: Any = None,
        policy: Policy | None = None,
        clock: Callable[[], float] = _time.time,
    ) -> None:
        from release.deploy.lambda_ import LambdaTarget

        self.cfg = cfg
        self.env = env
        self.settings = guard_config(cfg, env)
        e = cfg.environment(env)
        self.alias = e.alias
        self.target = LambdaTarget(cfg, env, client=lambda_client, watch=_no_watch)
        self.lam = self.target.client
        self.ledger = ledger or open_ledger(cfg)
        self.policy = policy or offline_policy(cfg)
        self._registry = registry
        self._sns = sns
        self.clock = clock

    @property
    def functions(self) -> dict[str, str]:
        """[functions] name -> Lambda function name, of this environment."""
        return dict(self.target.functions)

    def registry(self, live: Event) -> Any:
        if self._registry is None:
            from release.image.registry import open_registry

            ref = live.evidence.get("reference") or ""
            repo = ref.rpartition("@")[0] if "@" in ref else ""
            self._registry = open_registry(repo or self.cfg.image.registry, self.cfg.root)
        return self._registry

    def sns(self) -> Any:
        if self._sns is None:
            import boto3

            region = self.cfg.environment(self.env).region
            self._sns = boto3.client("sns", region_name=region) if region else boto3.client("sns")
        return self._sns


# --- 2. the promoted digest's evidence -----------------------------------------------
def verify_evidence(guard: Guard, live: Event) -> list[str]:
    """What does not verify about the live digest's signed evidence ([] = all of it)."""
    reg = guard.registry(live)
    problems = []
    promos = verify_all_stored(reg, live.digest, PROMOTION, guard.policy)
    named = [
        vs
        for vs in promos
        if vs.predicate.get("env") == guard.env
        and (vs.predicate.get("ledger") or {}).get("seq") == live.seq
        and (vs.predicate.get("ledger") or {}).get("hash") == live.hash
    ]
    if not named:
        problems.append(
            f"no signed promotion statement names ledger event {live.seq} ({live.action} of "
            f"{live.digest} to {guard.env!r}; {len(promos)} valid promotion statement(s) stored)"
        )
    for name, types in BUILD_ATTESTATIONS.items():
        reason = "missing"
        for t in types:
            try:
                verify_stored(reg, live.digest, t, guard.policy)
                break
            except NoAttestation:
                continue
            except VerificationFailed as exc:
                reason = exc.message
        else:
            problems.append(f"{name} attestation of {live.digest}: {reason}")
    return problems


# --- 3. what the aliases serve --------------------------------------------------------
def _served(f: FunctionState) -> list[dict[str, Any]]:
    return [
        {
            "version": r.version,
            "weight": r.weight,
            "digest": r.digest,
            "command": list(r.command),
            **({"problem": r.problem} if r.problem else {}),
        }
        for r in f.routes
    ]


def _findings(guard: Guard, f: FunctionState, promoted: str | None) -> list[Finding]:
    if f.version is None:
        return [Finding(f.target_name, "alias", f"alias {guard.alias} does not exist")]
    handler = guard.cfg.functions.get(f.name, "")
    out = []
    for r in f.routes:
        share = f"version {r.version} ({r.weight:.0%} of requests)"
        if r.digest is None:
            out.append(Finding(f.target_name, "digest", f"{share}: {r.problem}"))
        elif r.digest != promoted:
            want = promoted or "nothing (the ledger has no promotion)"
            out.append(
                Finding(
                    f.target_name, "digest", f"{share} runs {r.digest}, the ledger promoted {want}"
                )
            )
        if handler and r.command != (handler,):
            out.append(
                Finding(
                    f.target_name,
                    "command",
                    f"{share} runs CMD {list(r.command)}, [functions] says {handler}",
                )
            )
    return out


# --- 4. rollback ------------------------------------------------------------------------
def _runs(guard: Guard, f: FunctionState, version: str, promoted: str) -> bool:
    r: Route = guard.target.resolve(f.target_name, version)
    handler = guard.cfg.functions.get(f.name, "")
    return r.digest == promoted and (not handler or r.command == (handler,))


def _promoted_version(guard: Guard, f: FunctionState, live: Event) -> str | None:
    """The version of `f` that runs the promoted digest and CMD: the one the ledger's live
    event names, else the newest published one (None: no version does)."""
    named = live.evidence.get(f"version:{f.name}")
    if named and _runs(guard, f, named, live.digest):
        return named
    versions: list[int] = []
    for page in guard.lam.get_paginator("list_versions_by_function").paginate(
        FunctionName=f.target_name
    ):
        versions += [int(v["Version"]) for v in page["Versions"] if v["Version"].isdigit()]
    for v in sorted(versions, reverse=True):
        if str(v) != named and _runs(guard, f, str(v), live.digest):
            return str(v)
    return None


def _roll_back(guard: Guard, f: FunctionState, live: Event, trigger: str) -> Rollback:
    from botocore.exceptions import BotoCoreError, ClientError

    was = f.version or "-"
    try:
        to = _promoted_version(guard, f, live)
        if to is None:
            return Rollback(
                f.target_name,
                was,
                "",
                False,
                f"no published version runs {live.digest}; the guard never publishes "
                "(run release rollback or release promote)",
            )
        guard.lam.update_alias(
            FunctionName=f.target_name,
            Name=guard.alias,
            FunctionVersion=to,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        after = guard.target.live_function(f.name)
    except StepFailed as exc:  # the rollback failed: the alarm says so
        return Rollback(f.target_name, was, "", False, aws_error_message(exc.cause))
    except (ClientError, BotoCoreError) as exc:
        return Rollback(f.target_name, was, "", False, aws_error_message(exc))
    held = not _findings(guard, after, live.digest)
    guard.ledger.append(
        guard.env,
        ROLLBACK,
        live.digest,
        actor="release-guard",
        evidence={
            "function": f.target_name,
            "alias": guard.alias,
            "from": json.dumps(_served(f), sort_keys=True),
            "to": to,
            "trigger": trigger,
            "held": "yes" if held else "no",
        },
    )
    return Rollback(
        f.target_name,
        was,
        to,
        held,
        f"alias {guard.alias} -> version {to}"
        + ("" if held else ", but the alias still does not serve the promoted digest"),
    )


# --- the decision -----------------------------------------------------------------------
def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check(guard: Guard, *, trigger: str = "schedule", record: bool = True) -> GuardReport:
    """One guard decision over every function of the environment (see module docstring)."""
    now = guard.clock()
    led = guard.ledger
    live = led.current(guard.env)
    base = GuardReport(
        guard.env,
        trigger,
        _iso(now),
        live.digest if live else None,
        live.seq if live else None,
        rollback_on=guard.settings.rollback,
    )
    lease = led.lease(guard.env)
    if lease is not None and lease.expires > now:
        report = GuardReport(
            **{
                **base.__dict__,
                "deferred": f"a promotion holds the lease ({lease.holder} until {lease.until})",
            }
        )
        return _record(guard, report) if record else report
    problems = verify_evidence(guard, live) if live is not None else []
    findings = [Finding("", "evidence", p) for p in problems]
    states = guard.target.live()
    served = {f.target_name: _served(f) for f in states}
    drifted: list[FunctionState] = []
    for f in states:
        fs = _findings(guard, f, live.digest if live else None)
        findings += fs
        if fs:
            drifted.append(f)
    rollbacks: list[Rollback] = []
    if guard.settings.rollback and live is not None and not problems:
        rollbacks = [_roll_back(guard, f, live, trigger) for f in drifted]
    report = GuardReport(
        **{
            **base.__dict__,
            "evidence_ok": live is not None and not problems,
            "served": served,
            "findings": tuple(findings),
            "rollbacks": tuple(rollbacks),
        }
    )
    if findings:
        report = GuardReport(**{**report.__dict__, "alarm": _alarm(guard, report)})
    return _record(guard, report) if record else report


def _alarm(guard: Guard, report: GuardReport) -> str:
    """Publish the report to the topic (none configured: ""); its message id back."""
    topic = guard.settings.topic
    if not topic:
        return ""
    from botocore.exceptions import BotoCoreError, ClientError

    n = len(report.findings)
    subject = f"release guard: {guard.env} drifted ({n} finding{'s' if n != 1 else ''})"
    try:
        resp = guard.sns().publish(
            TopicArn=topic,
            Subject=subject[:100],
            Message=json.dumps(report.to_dict(), sort_keys=True),
        )
    except (ClientError, BotoCoreError) as exc:
        raise RemoteError(
            f"release guard: publishing to {topic} failed: {aws_error_message(exc)}"
        ) from None
    return str(resp.get("MessageId") or "")


def note_key(env: str) -> str:
    return f"guard#{env}"


def _record(guard: Guard, report: GuardReport) -> GuardReport:
    """The decision as the environment's guard note (every check: `release status` shows
    when the guard last looked) and, when it is news, as a `guard.check` event in the
    chain: every mismatch or deferral, and the first check or the first one back to ok
    after one. A steady run of ok checks keeps the chain from growing."""
    key = note_key(guard.env)
    before = guard.ledger.note(key)
    summary: dict[str, Any] = {
        "checked_at": report.checked_at,
        "result": report.result,
        "trigger": report.trigger,
        "promoted": report.promoted or "",
        "findings": [f.to_dict() for f in report.findings],
        "alarm": report.alarm,
    }
    if report.result != "ok" or before is None or before.get("result") != "ok":
        ev = guard.ledger.append(
            guard.env,
            CHECK,
            report.promoted or "",
            actor="release-guard",
            evidence={
                "trigger": report.trigger,
                "result": report.result,
                "checked_at": report.checked_at,
                "alarm": report.alarm,
            },
            decision={
                "ok": report.ok,
                "deferred": report.deferred,
                "findings": [f.to_dict() for f in report.findings],
                "rollbacks": [r.to_dict() for r in report.rollbacks],
            },
        )
        summary["event"] = ev.seq
    else:
        summary["event"] = before.get("event")
    guard.ledger.set_note(key, summary)
    return report


def last_check(ledger: Ledger, env: str) -> dict[str, Any] | None:
    """The guard's last check of `env` (its note: time, result, trigger, findings and the
    seq of the guard.check event that recorded the result); None: it never checked."""
    return ledger.note(note_key(env))
