"""`release verify DIGEST` and `release audit`."""

from __future__ import annotations

from pathlib import Path

import click

from release.cli import Out, cli, common, load_config


@cli.command("verify")
@click.argument("digest")
@click.option(
    "--env",
    "env",
    envvar="RELEASE_ENV",
    help="Also check the gate decision and promotion in this environment's ledger [env: RELEASE_ENV].",
)
@click.option(
    "--offline",
    is_flag=True,
    envvar="RELEASE_OFFLINE",
    help="Assert that no network is needed: the trust root must be pinned in the config "
    "([signing].trusted_root) or signing is by key [env: RELEASE_OFFLINE].",
)
@common
def verify_cmd(
    config_path: Path | None, out: Out, digest: str, env: str | None, offline: bool
) -> None:
    """Re-verify every claim about DIGEST (`sha256:...` in the configured registry, or
    REPO@sha256:...): each attestation's signature and signer, subjects, SBOM against the
    image's real layers, provenance against the image config, the baked model lock against
    the model layer, the signed canary verdict and - with --env - the gate decision and
    promotion in the ledger, whose hash chain is re-computed, and when ENV has `after` the
    environment chain (`chain promotion|soak|rollback|alarms`, docs/promotion.md).

    Prints a checklist; exits 1 naming each failed claim. Verification itself never uses the
    network (bundles are checked against the pinned trust root or the public key).
    """
    from release.claims import verify_release
    from release.digest import parse_reference
    from release.errors import UsageError, VerificationFailed

    cfg = load_config(config_path)
    ref = parse_reference(digest)
    if env is not None:
        cfg.environment(env)
    if offline and cfg.signing.mode == "sigstore" and not cfg.signing.trusted_root:
        raise UsageError(
            "--offline with keyless signing needs [signing].trusted_root (a pinned trusted_root.json)"
        )
    v = verify_release(cfg, ref, env)
    for c in v.checks:
        out.info(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<22} {c.detail}")
    out.data(v.to_dict())
    failed = v.failed()
    if failed:
        raise VerificationFailed(
            f"{ref.digest}: {len(failed)} of {len(v.checks)} claims failed: "
            + ", ".join(c.name for c in failed)
        )
    out.status(f"verified {ref.digest}: {len(v.checks)} claims hold")


@cli.command("audit")
@click.option(
    "--env", "env", envvar="RELEASE_ENV", help="Only this environment [env: RELEASE_ENV]."
)
@click.option("--since", help="Only events on or after this date (YYYY-MM-DD or ISO time).")
@click.option("--digest", help="Only this release (sha256:...).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md", "json"]),
    default="md",
    show_default=True,
    help="html: self-contained, printable, inline SVG charts; md: GitHub job summary; json: for tools.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report here (atomically) instead of stdout.",
)
@click.option(
    "--verify-chain",
    is_flag=True,
    help="Only re-compute the ledger's hash chain; exit 1 if an event was edited, inserted or deleted.",
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Report from the ledger only; do not re-verify each release's attestations.",
)
@common
def audit_cmd(
    config_path: Path | None,
    out: Out,
    env: str | None,
    since: str | None,
    digest: str | None,
    fmt: str,
    output: Path | None,
    verify_chain: bool,
    no_verify: bool,
) -> None:
    """What was released, when, by whom, on what evidence: per release the digest, signer
    and workflow run, source commit, model repo@commit and file hashes, SBOM summary (and
    packages added/removed since the previous release), canary charts (baseline vs
    candidate), gate decision with reasons, the promotion/rollback timeline and the ledger
    chain status. Exit 1 when the ledger chain is broken.
    """
    from release._io import atomic_write_bytes
    from release.audit import render
    from release.audit.collect import collect
    from release.errors import VerificationFailed
    from release.ledger import open_ledger

    cfg = load_config(config_path)
    if verify_chain:
        st = open_ledger(cfg).verify_chain()
        out.data({"ok": st.ok, "events": st.events, "head": st.head, "problems": list(st.problems)})
        if not st.ok:
            raise VerificationFailed(
                f"ledger chain broken: {st.problems[0]}", details=list(st.problems[1:])
            )
        out.status(st.detail)
        return
    report = collect(cfg, env=env, since=since, digest=digest, verify=not no_verify)
    text = {"html": render.to_html, "md": render.to_markdown, "json": render.to_json}[fmt](report)
    if output is not None:
        atomic_write_bytes(output, text.encode())
        out.status(f"audit: {len(report.releases)} releases -> {output}")
        out.data(
            {"path": str(output), "releases": len(report.releases), "chain_ok": report.chain_ok}
        )
    else:
        click.echo(text, nl=False)
    if not report.chain_ok:
        raise VerificationFailed(f"ledger chain broken: {report.chain_detail}")
