"""Render a `ReadinessReport` as Markdown (a job summary), self-contained HTML or JSON."""

from __future__ import annotations

import json
from html import escape

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


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#1f2933}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #d3d8de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f5}.pass{color:#137333;font-weight:600}.fail{color:#b3261e;font-weight:600}
.verdict{font-size:1.2em;font-weight:700}.ready{color:#137333}.notready{color:#b3261e}code{font-size:12px}
"""


def to_html(report: ReadinessReport) -> str:
    rows = "\n".join(
        f'<tr><td class="{r.status}">{r.status}</td><td>{escape(r.kind)}</td>'
        f"<td><code>{escape(r.subject)}</code></td><td>{escape(r.why)}</td>"
        f"<td>{'yes' if r.required else 'no'}</td></tr>"
        for r in report.rows
    )
    cls = "ready" if report.ready else "notready"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Readiness: {escape(report.env)}</title>
<style>{_CSS}</style></head><body>
<h1>Readiness: {escape(report.env)}</h1>
<p class="verdict {cls}">{escape(_verdict(report))}</p>
<p>Generated {escape(report.generated)}; live digest <code>{escape(report.live_digest or "none")}</code>;
metric namespace <code>{escape(report.namespace)}</code>.</p>
<table><thead><tr><th>status</th><th>check</th><th>subject</th><th>why</th><th>required</th></tr></thead>
<tbody>
{rows}
</tbody></table></body></html>
"""


RENDERERS = {"md": to_markdown, "html": to_html, "json": to_json}


def render(report: ReadinessReport, fmt: str) -> str:
    return RENDERERS[fmt](report)
