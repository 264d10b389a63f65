"""Render a `ReadinessReport` as Markdown (a job summary), self-contained HTML or JSON.

The HTML comes from the Jinja2 template `templates/readiness.html.j2` (package data),
autoescaped."""

from __future__ import annotations

import json
from functools import cache

import jinja2

from release.readiness.model import ReadinessReport


def to_json(report: ReadinessReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"


def _verdict(report: ReadinessReport) -> str:
    n = len(report.failed_required)
    if report.ready:
        return "READY: every required row passes"
    return f"NOT READY: {n} required row{'s' if n != 1 else ''} failing"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: ReadinessReport) -> str:
    out = [
        f"# Readiness: {report.env}",
        "",
        f"**{_verdict(report)}**. Generated {report.generated}; live digest "
        f"`{report.live_digest or 'none'}`; metric namespace `{report.namespace}`.",
        "",
        "| status | check | subject | why | required |",
        "|---|---|---|---|---|",
    ]
    for r in report.rows:
        mark = "✅ pass" if r.status == "pass" else "❌ fail"
        out.append(
            f"| {mark} | {r.kind} | `{_cell(r.subject)}` | {_cell(r.why)} | "
            f"{'yes' if r.required else 'no'} |"
        )
    return "\n".join(out) + "\n"


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("release.readiness", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("readiness.html.j2")


def to_html(report: ReadinessReport) -> str:
    return _template().render(report=report, verdict=_verdict(report))


RENDERERS = {"md": to_markdown, "html": to_html, "json": to_json}


def render(report: ReadinessReport, fmt: str) -> str:
    return RENDERERS[fmt](report)
