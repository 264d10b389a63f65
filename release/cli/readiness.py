"""`release readiness --env ENV`: the live environment against the readiness review."""

from __future__ import annotations

from pathlib import Path

import click

from release.cli import Out, cli, common, load_config


@cli.command("readiness")
@click.option(
    "--env",
    "env",
    required=True,
    envvar="RELEASE_ENV",
    help="Environment from [environments.ENV] (a lambda target) [env: RELEASE_ENV].",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "html", "json"]),
    default="md",
    show_default=True,
    help="md: GitHub job summary; html: self-contained page; json: for tools.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report here (atomically) instead of stdout.",
)
@common
def readiness_cmd(
    config_path: Path | None, out: Out, env: str, fmt: str, output: Path | None
) -> None:
    """Read the live environment (Lambda, SQS, SNS, CloudWatch, ECR) and write the
    readiness report: every row pass or fail with why. Thresholds from [readiness] in
    release.toml (docs/readiness.md). Exit 1 when a required row fails, 3 when AWS cannot
    be read.
    """
    from release._io import atomic_write_bytes
    from release.errors import CheckFailed
    from release.readiness import collect
    from release.readiness.render import render

    cfg = load_config(config_path)
    report = collect(cfg, env)
    text = render(report, fmt)
    if output is not None:
        atomic_write_bytes(output, text.encode())
        out.status(f"readiness: {len(report.rows)} rows -> {output}")
        out.data({"path": str(output), **report.to_dict()})
    elif out.as_json:
        out.data(report.to_dict())
    else:
        click.echo(text, nl=False)
    failed = report.failed_required
    if not failed:
        out.status(f"readiness: {env} is ready ({len(report.rows)} rows pass)")
        return
    lines = [f"{r.id}: {r.why}" for r in failed]
    if out.as_json:  # the report is the one JSON document; the verdict goes to stderr
        out.status(f"release: error: {env} is not ready: {len(failed)} required row(s) fail")
        for line in lines:
            out.status(f"  {line}")
        click.get_current_context().exit(1)
    raise CheckFailed(f"{env} is not ready: {len(failed)} required row(s) fail", details=lines)
