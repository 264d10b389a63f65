"""`release guard check|rules`: the drift guard from a laptop or CI, and its EventBridge rules."""

from __future__ import annotations

import json
from pathlib import Path

import click

from release.cli import Out, cli, common, load_config

_ENV = click.option(
    "--env",
    "env",
    required=True,
    envvar="RELEASE_ENV",
    help="Environment from [environments.ENV] (a lambda target) [env: RELEASE_ENV].",
)


@cli.group()
def guard() -> None:
    """The drift guard: catch a deployment that bypassed the gate (see docs/promotion.md)."""


@guard.command("check")
@_ENV
@common
def guard_check(config_path: Path | None, out: Out, env: str) -> None:
    """Make the guard's decision now, as its Lambda function does on an event: resolve
    what every alias of ENV serves (both versions of a weighted alias) to image digests,
    compare with the ledger's promoted digest, verify that digest's signed promotion
    statement and build attestations offline ([signing] key or pinned trust root).

    A mismatch is published to [environments.ENV.guard].topic and, with rollback = true,
    every drifted alias is moved back to the promoted version (guard.rollback in the
    ledger). The decision is recorded as a guard.check ledger event. Exit 1 on a
    mismatch (also when it was undone), 0 when everything matches or a promotion holds
    the lease (deferred).
    """
    from release.errors import CheckFailed
    from release.guard import Guard, check

    cfg = load_config(config_path)
    report = check(Guard(cfg, env), trigger="manual")
    out.status(f"{env}: {report.result} (promoted {report.promoted or 'nothing'})")
    if report.deferred:
        out.status(f"  deferred: {report.deferred}")
    for name, routes in report.served.items():
        for r in routes:
            out.status(
                f"  {name}: version {r['version']} {r['weight']:.0%}: "
                f"{r['digest'] or 'unknown: ' + r.get('problem', '')}"
            )
    for rb in report.rollbacks:
        out.status(f"  rolled back {rb.function}: {rb.detail}")
    if report.alarm:
        out.status(f"  alarm published: message {report.alarm}")
    out.data(report.to_dict())
    if report.findings:
        n = len(report.findings)
        raise CheckFailed(
            f"{env}: the guard found {n} mismatch{'es' if n != 1 else ''} with the ledger",
            details=[f"{f.function or env}: {f.kind}: {f.detail}" for f in report.findings],
        )


@guard.command("rules")
@_ENV
@common
def guard_rules(config_path: Path | None, out: Out, env: str) -> None:
    """Print the EventBridge rules that trigger the guard of ENV, as PutRule arguments
    (a JSON list): CloudTrail's UpdateFunctionCode*, UpdateAlias* and PublishVersion*
    calls on ENV's functions, and [environments.ENV.guard].schedule. The document always
    goes to stdout; target each rule at the guard's function.
    """
    from release.guard import rules

    cfg = load_config(config_path)
    click.echo(json.dumps(rules(cfg, env), indent=2, sort_keys=True))
