"""`release canary DIGEST` and `release canary compare BASELINE CANDIDATE`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from release.cli import Out, cli, common, load_config


class _DigestGroup(click.Group):
    """`release canary DIGEST ...` runs the hidden `run` command; `release canary compare
    ...` the subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The help shows the options of `release canary DIGEST` too (they belong to the
        hidden `run` command)."""
        run = self.commands["run"]
        rows = [r for p in run.get_params(ctx) if (r := p.get_help_record(ctx)) is not None]
        with formatter.section("Options of release canary DIGEST"):
            formatter.write_dl(rows)
        super().format_options(ctx, formatter)


@cli.group("canary", cls=_DigestGroup)
def canary() -> None:
    """Run the candidate image's own model over the canary corpus and compare it, item by
    item, with a baseline.

    \b
    release canary DIGEST [--baseline DIGEST|REPORT | --env ENV] [-o report.json]
    release canary compare BASELINE.json CANDIDATE.json [-o report.json]

    Exit 1 when a check fails (each failed check is named with its value and threshold).
    """


_OUTPUT = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RELEASE_CANARY_OUTPUT",
    help="Write the canary report (JSON) here [env: RELEASE_CANARY_OUTPUT].",
)


@canary.command("run", hidden=True)
@click.argument("digest")
@click.option(
    "--baseline",
    envvar="RELEASE_CANARY_BASELINE",
    help="A canary report file, or the digest of an image to run as the baseline "
    "(default: the report of the digest live in --env; none: absolute checks only) "
    "[env: RELEASE_CANARY_BASELINE].",
)
@click.option(
    "--corpus",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="RELEASE_CANARY_CORPUS",
    help="Canary corpus, JSONL {id, text[, expected]} (default: [canary].corpus) "
    "[env: RELEASE_CANARY_CORPUS].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 4096),
    default=64,
    show_default=True,
    envvar="RELEASE_CANARY_BATCH_SIZE",
    help="Texts per inference batch [env: RELEASE_CANARY_BATCH_SIZE].",
)
@click.option(
    "--env",
    "env",
    envvar="RELEASE_CANARY_ENV",
    help="Without --baseline: compare with the signed canary report of the digest live in "
    "this environment (nothing live yet: absolute checks only) [env: RELEASE_CANARY_ENV].",
)
@_OUTPUT
@common
def canary_run(
    config_path: Path | None,
    out: Out,
    digest: str,
    baseline: str | None,
    corpus: Path | None,
    batch_size: int,
    env: str | None,
    output: Path | None,
) -> None:
    """Run image DIGEST's own model (re-hashed against the lock baked in the image first;
    refused on mismatch) and analysis code over the canary corpus; compare with the
    baseline; write the report."""
    from release.canary import baseline as bl
    from release.canary import offline
    from release.canary import report as rpt
    from release.digest import parse_reference

    cfg = load_config(config_path)
    parse_reference(digest)  # a tag is refused before anything runs
    t = rpt.thresholds(cfg.canary)
    cor = offline.read_corpus(corpus or cfg.resolve(cfg.canary.corpus))
    base = bl.select(cfg, cor, t, baseline=baseline, env=env, batch_size=batch_size)
    report = offline.run_image(
        cfg,
        digest,
        cor,
        t,
        baseline=base.report,
        baseline_source=base.source,
        batch_size=batch_size,
    )
    _finish(out, report, output)


@canary.command("compare")
@click.argument("baseline", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("candidate", type=click.Path(dir_okay=False, path_type=Path))
@_OUTPUT
@common
def canary_compare(
    config_path: Path | None, out: Out, baseline: Path, candidate: Path, output: Path | None
) -> None:
    """The canary checks on two existing reports, item by item (no image needed).

    Thresholds come from [canary] in the config when one is found, else the defaults.
    """
    from release.canary import report as rpt
    from release.config import CanaryConfig

    section: Any = CanaryConfig()
    if config_path is not None or Path("release.toml").is_file():
        section = load_config(config_path).canary
    t = rpt.thresholds(section)
    result = rpt.compare(rpt.read_report(baseline), rpt.read_report(candidate), t)
    _finish(out, result, output)


def _finish(out: Out, report: Any, output: Path | None) -> None:
    from release.canary import report as rpt

    if output is not None:
        rpt.write_report(output, report)
    out.info(_table(report))
    if output is not None:
        out.status(f"report -> {output} (sha256:{report.sha256})")
    out.data(_summary(report, output))
    if not report.passed:
        raise rpt.failure(report)
    out.status(f"canary passed: {len(report.checks)} checks on {report.n} items")


def _table(report: Any) -> str:
    from release.canary import report as rpt

    lines = []
    shares = (
        "; " + ", ".join(f"{k} {v:.1%}" for k, v in report.label_shares.items())
        if report.label_shares
        else ""
    )
    acc = f", accuracy {report.accuracy.accuracy:.1%}" if report.accuracy else ""
    base = (
        f" vs {report.baseline.source} {report.baseline.digest or report.baseline.report_sha256[:12]}"
        f" ({report.baseline.paired_items} paired)"
        if report.baseline
        else " (no baseline)"
    )
    lines.append(f"canary: {report.n} {report.output.type} outputs{base}{shares}{acc}")
    for c in report.checks:
        lines.append(f"  {'ok  ' if c.ok else 'FAIL'} {rpt.describe(c)}")
    return "\n".join(lines)


def _summary(report: Any, output: Path | None) -> dict[str, Any]:
    doc: dict[str, Any] = report.to_json()
    doc.pop("items")
    for c in doc["checks"]:
        c["items"] = c["items"][:50]
    doc["report_sha256"] = report.sha256
    doc["report_file"] = str(output) if output else None  # `output`: what the model returns
    return doc
