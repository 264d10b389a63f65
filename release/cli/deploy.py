"""`release gate|promote|rollback|status|invoke` and `release ledger verify|events`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from release.cli import Out, cli, common, evidence_provider, load_config

_ENV = click.option(
    "--env",
    "env",
    required=True,
    envvar="RELEASE_ENV",
    help="Environment from [environments.ENV] [env: RELEASE_ENV].",
)
_ACTOR = click.option(
    "--actor",
    envvar="RELEASE_ACTOR",
    help="Who is acting, for the ledger [env: RELEASE_ACTOR; default: $GITHUB_ACTOR or user@host].",
)


def _decision_lines(out: Out, decision: Any) -> None:
    verdict = "allow" if decision.allow else "deny"
    out.status(f"{verdict}: {decision.digest} for {decision.env} (policy {decision.policy_name})")
    for r in decision.reasons:
        out.status(f"  - {r}")


@cli.command("gate")
@click.argument("digest")
@_ENV
@click.option(
    "--evidence",
    "evidence_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="RELEASE_GATE_EVIDENCE",
    help="Evaluate the policy over this Evidence JSON document instead of collecting it "
    "(a policy dry run; not recorded in the ledger) [env: RELEASE_GATE_EVIDENCE].",
)
@click.option(
    "--save-evidence",
    "save_evidence",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the Evidence document the decision was made on here (JSON; input of a "
    "later `release gate --evidence` dry run).",
)
@_ACTOR
@common
def gate_cmd(
    config_path: Path | None,
    out: Out,
    digest: str,
    env: str,
    evidence_file: Path | None,
    save_evidence: Path | None,
    actor: str | None,
) -> None:
    """Collect and verify the Evidence for DIGEST and evaluate the release policy over it
    (the default shipped with release, or [gate].policy: `release policy show`). Prints allow or deny with every reason; exit 1 on deny.

    DIGEST is sha256:<64 hex> or REPO@sha256:<64 hex>; a tag exits 2.
    """
    from pydantic import ValidationError

    from release import gate, promote
    from release.digest import parse_reference
    from release.errors import UsageError
    from release.evidence import Evidence

    ref = parse_reference(digest)
    cfg = load_config(config_path)
    cfg.environment(env)
    if evidence_file is not None:
        try:
            ev = Evidence.model_validate_json(evidence_file.read_bytes())
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise UsageError(
                f"{evidence_file.name}: not an Evidence document: {where}: {first['msg']}"
            ) from None
        if ev.digest != ref.digest:
            raise UsageError(f"{evidence_file.name} is about {ev.digest}, not {ref.digest}")
        decision = gate.evaluate(ev, gate.policy_for(cfg))
    else:
        res = promote.gate(cfg, ref, env, evidence_provider()[0], actor=actor)
        decision, ev = res.decision, res.evidence
    if save_evidence is not None:
        from release._io import atomic_write_bytes

        atomic_write_bytes(save_evidence, ev.model_dump_json(indent=2).encode() + b"\n")
        out.status(f"evidence written to {save_evidence}")
    out.data(decision.to_dict())
    if not decision.allow:
        raise promote.denied(decision)  # `main` prints it with every reason
    _decision_lines(out, decision)


@cli.command("promote")
@click.argument("digest")
@_ENV
@_ACTOR
@common
def promote_cmd(
    config_path: Path | None, out: Out, digest: str, env: str, actor: str | None
) -> None:
    """Gate DIGEST, then move every function of ENV to it together - or none; then sign
    the promotion statement ([signing].mode) and attach it to DIGEST.

    Deny: exit 1, nothing touched. Another promotion of ENV holds its lease: exit 1. A
    function changed by another writer between our update and publish (Lambda): every
    function put back, exit 1. A failed pre-traffic check ([canary.pretraffic]: the new
    versions invoked against the live ones before any traffic) or live canary: every
    function put back, exit 1. A target failure part-way puts every function back on its
    previous version: exit 3. Every step is a ledger event. See docs/promotion.md.
    """
    from release import promote
    from release.digest import parse_reference

    ref = parse_reference(digest)
    cfg = load_config(config_path)
    provider, real = evidence_provider()
    res = promote.promote(cfg, ref, env, provider, actor=actor)
    _promoted(out, res, cfg if real else None)


def _promoted(out: Out, res: Any, cfg: Any) -> None:
    if cfg is not None:
        from release import promote
        from release.errors import ReleaseError

        try:
            att = promote.attest_promotion(cfg, res)
        except ReleaseError as exc:
            exc.message = (
                f"{res.digest} is live in {res.env} (ledger seq {res.event.seq}) but its promotion "
                f"statement could not be signed: {exc.message}; `release verify --env {res.env}` "
                "fails until it is (release attest DIGEST --predicate promotion FILE)"
            )
            raise
        out.status(f"promotion statement signed: {att.referrer}")
    _decision_lines(out, res.decision)
    verb = "promoted" if res.action == "promote" else "rolled back to"
    out.status(f"{verb} {res.digest} in {res.env} (ledger seq {res.event.seq})")
    for f in res.functions:
        out.status(f"  {f.name}: {f.target_name} version {f.version}")
    pt = res.pretraffic
    if pt is not None:
        out.status(
            f"pre-traffic: {'passed' if pt['passed'] else 'failed'} "
            f"({', '.join(sorted(pt['functions']))}; {pt['items']} items per version)"
        )
    out.info(res.digest)
    out.data(res.predicate())


@cli.command("rollback")
@_ENV
@_ACTOR
@common
def rollback_cmd(config_path: Path | None, out: Out, env: str, actor: str | None) -> None:
    """Put ENV back on its previous promoted digest, re-verified and gated first; every
    function together, like a promotion."""
    from release import promote

    cfg = load_config(config_path)
    provider, real = evidence_provider()
    res = promote.rollback(cfg, env, provider, actor=actor)
    _promoted(out, res, cfg if real else None)


@cli.command("status")
@_ENV
@common
def status_cmd(config_path: Path | None, out: Out, env: str) -> None:
    """The live digest of ENV, since when and by whom, and what every function really
    serves: for Lambda, every version its alias routes to (weights included) and the
    digest each version's image resolves to. Exit 1 on drift from the ledger (another
    digest, version or CMD, or traffic split between versions). See docs/promotion.md.
    """
    from release import promote
    from release.errors import CheckFailed
    from release.guard import last_check
    from release.ledger import open_ledger

    cfg = load_config(config_path)
    led = open_ledger(cfg)
    st = promote.status(cfg, env, ledger=led)
    doc = st.to_dict()
    guard = last_check(led, env)
    doc["guard"] = guard
    if st.live is None:
        out.status(f"{env}: nothing promoted yet")
    else:
        out.status(
            f"{env}: {st.live.digest} since {st.live.time} by {st.live.actor} ({st.live.action})"
        )
        for f in st.functions:
            out.status(f"  {f.name}: {f.target_name} {f.version or '-'}")
            for r in f.routes:
                out.status(
                    f"    version {r.version} {r.weight:.0%}: {r.digest or 'unknown: ' + r.problem}"
                )
        out.info(st.live.digest)
    if st.lease is not None:
        state = "expired" if st.lease["expired"] else "held"
        out.status(
            f"  promotion lease {state}: {st.lease['holder']} since {st.lease['since']}, "
            f"expires {st.lease['expires']}"
        )
    if guard is not None:
        out.status(
            f"  guard: {guard.get('result')} at {guard.get('checked_at')} "
            f"({guard.get('trigger')}; recorded as ledger event {guard.get('event')})"
        )
    out.data(doc)
    if st.drift:
        n = len(st.drift)
        raise CheckFailed(
            f"{env} drifted from the ledger: {n} difference{'s' if n != 1 else ''}",
            details=[f"drift: {d}" for d in st.drift],
        )


@cli.command("invoke")
@click.argument("function")
@click.argument("event", type=click.File("rb"))
@_ENV
@common
def invoke_cmd(config_path: Path | None, out: Out, function: str, event: Any, env: str) -> None:
    """Run FUNCTION of the image promoted to ENV (a local environment) from that image's
    own layers, with the event in EVENT (a JSON file, or - for stdin).

    The function gets the environment it has in Lambda ([environments.ENV].variables and
    .function_variables.FUNCTION) plus your AWS_* settings (credentials, AWS_PROFILE,
    AWS_CA_BUNDLE, AWS_ENDPOINT_URL). The handler's JSON result goes to stdout (with
    --json too: the result is the document). Exit 1 when the handler raised (its
    Lambda-style error document is printed) or returned a statusCode >= 500; a 4xx is an
    answer (exit 0). Exit 2 for a bad event or usage.
    """
    from release.deploy.local import invoke
    from release.errors import CheckFailed

    cfg = load_config(config_path)
    res = invoke(cfg, env, function, event.read())
    for line in res.stderr.splitlines()[-200:] if res.returncode != 0 else []:
        out.status(line)
    click.echo(json.dumps(res.result, indent=None if out.as_json else 2, sort_keys=True))
    how = "raised" if res.returncode != 0 else "returned"
    if isinstance(res.result, dict) and "statusCode" in res.result:
        how += f" statusCode {res.result['statusCode']}"
    if res.failed:
        raise CheckFailed(f"{function} ({res.handler}) from {res.digest} in {env}: {how}")
    out.status(f"{function} ({res.handler}) from {res.digest} in {env}: {how}")


@cli.group("ledger")
def ledger_group() -> None:
    """The append-only, hash-chained ledger of gates, promotions and rollbacks."""


@ledger_group.command("verify")
@common
def ledger_verify(config_path: Path | None, out: Out) -> None:
    """Recompute every event's hash and link, and check the ledger against every signed
    promotion statement found (each names its ledger events): exit 1 naming the first
    edited, inserted or deleted event, or an event a signed statement names that is gone
    (a cut tail)."""
    from release.claims import verify_ledger

    cfg = load_config(config_path)
    res = verify_ledger(cfg)
    st = res.chain
    problems = [*st.problems, *res.problems]
    out.data(
        {
            "ok": res.ok,
            "events": st.events,
            "head": st.head,
            "anchors": res.anchors,
            "statements": res.statements,
            "problems": problems,
        }
    )
    if not res.ok:
        from release.errors import VerificationFailed

        what = (
            "ledger chain broken"
            if not st.ok
            else "ledger does not hold what signed statements name"
        )
        raise VerificationFailed(f"{what}: {problems[0]}", details=problems[1:])
    out.status(
        f"{st.detail}; {res.anchors} events named by {res.statements} signed "
        "promotion statements all present"
    )


@ledger_group.command("events")
@click.option(
    "--env", "env", envvar="RELEASE_ENV", help="Only this environment [env: RELEASE_ENV]."
)
@click.option("--digest", help="Only this digest.")
@common
def ledger_events(config_path: Path | None, out: Out, env: str | None, digest: str | None) -> None:
    """List ledger events, oldest first."""
    from release.digest import parse_reference
    from release.ledger import open_ledger

    cfg = load_config(config_path)
    dig = parse_reference(digest).digest if digest else None
    evs = open_ledger(cfg).events(env=env, digest=dig)
    for e in evs:
        out.info(f"{e.seq:>5} {e.time} {e.env:<10} {e.action:<16} {e.digest} {e.actor}")
    out.data([e.to_dict() for e in evs])
