"""`release pipeline`."""

from __future__ import annotations

from pathlib import Path

import click

from release.cli import Out, cli, common, evidence_provider, load_config

#: the stages of release.pipeline.STAGES (kept here so registering the command imports
#: nothing heavy; tests/unit/test_pipeline_cli.py checks they agree)
STAGES = ("lock", "build", "sbom", "attest", "canary", "gate", "promote")


@cli.command("pipeline")
@click.option(
    "--through",
    type=click.Choice(STAGES),
    default="promote",
    show_default=True,
    envvar="RELEASE_THROUGH",
    help="Stop after this stage [env: RELEASE_THROUGH].",
)
@click.option(
    "--env",
    "env",
    envvar="RELEASE_ENV",
    help="Environment to gate and promote to (default: `local` if configured, else the first) "
    "[env: RELEASE_ENV].",
)
@click.option(
    "--actor",
    envvar="RELEASE_ACTOR",
    help="Who is releasing, for the ledger (default: CI identity or $USER) [env: RELEASE_ACTOR].",
)
@common
def pipeline_cmd(
    config_path: Path | None, out: Out, through: str, env: str | None, actor: str | None
) -> None:
    """Run every stage in order - model lock check, build, sbom, attest, canary, gate,
    promote - stopping at the first failure with that stage's exit code. One progress line
    per stage on stderr (before and after it); a final summary (digest, evidence, decision, report path).

    \b
    Stages and the commands they equal:
      lock     release model verify (local source) / release model fetch (hub)
      build    release build
      sbom     release sbom DIGEST -o .release/out/<id>/sbom.cdx.json
      attest   release attest DIGEST
      canary   release canary DIGEST --baseline <live digest's signed report>; signed
      gate     release gate DIGEST --env ENV
      promote  release promote DIGEST --env ENV; promotion signed; audit summary written
    """
    from release import pipeline

    cfg = load_config(config_path)
    provider, real = evidence_provider()
    res = pipeline.run(
        cfg,
        env=env,
        through=through,
        actor=actor,
        evidence_provider=None if real else provider,
    )
    out.status("")
    out.status(f"release {res.digest} ({res.env})")
    out.status(f"  image       {res.reference}")
    out.status(f"  evidence    {len(res.attestations)} signed attestations attached")
    if res.decision is not None:
        out.status(f"  decision    {'allow' if res.decision.allow else 'deny'}")
    if res.out_dir is not None:
        out.status(f"  outputs     {res.out_dir}")
    if res.report is not None:
        out.status(f"  report      {res.report}")
    out.info(res.reference or "")
    out.data(res.to_dict())
