"""Render an `AuditReport` as self-contained HTML (inline SVG, no network, printable),
Markdown (GitHub Actions job summary) or JSON."""

from __future__ import annotations

import json
import math
from html import escape

from release.audit.model import AuditReport, CanarySummary, ReleaseRecord
from release.checks import Check

BASE_COLOR = "#8a94a6"
CAND_COLOR = "#2563eb"


def to_json(report: AuditReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"


# --- Markdown -------------------------------------------------------------------------
def _mark(ok: bool | None) -> str:
    return {True: "✅", False: "❌", None: "—"}[ok]


def to_markdown(report: AuditReport) -> str:
    out = [f"# Release audit{f' — {report.env}' if report.env else ''}", ""]
    out += [f"**Verdict: {_mark(report.ok)} {report.verdict}**", ""]
    out.append(
        f"Generated {report.generated}. Ledger chain: {_mark(report.chain_ok)} "
        f"{report.chain_detail} ({report.events} events)."
    )
    out.append("")
    if not report.releases:
        out.append("_No releases match._")
        return "\n".join(out) + "\n"
    out += ["| digest | time | by | decision | canary | verified |", "|---|---|---|---|---|---|"]
    for r in report.releases:
        canary = "—" if r.canary is None else _mark(r.canary.passed)
        verified = _mark(all(c.ok for c in r.verification)) if r.verification else "—"
        out.append(
            f"| `{_short(r.digest)}` | {r.time} | {r.signer or r.actor} | "
            f"{_mark(r.decision_allow)} | {canary} | {verified} |"
        )
    for r in report.releases:
        out += ["", f"## `{r.digest}`", ""]
        out += _summary_md(r)
        out.append(f"- **when**: {r.time}; **by**: {r.actor}; **signer**: {r.signer or '—'}")
        if r.workflow_run:
            out.append(f"- **workflow run**: {r.workflow_run}")
        out.append(f"- **source commit**: {r.source_commit or '—'}")
        if r.model_repo:
            out.append(f"- **model**: {r.model_repo}@{r.model_commit} ({r.model_digest})")
        if r.sbom:
            s = r.sbom
            lic = ", ".join(f"{k} ({v})" for k, v in sorted(s.licenses.items())) or "—"
            out.append(
                f"- **SBOM**: {s.components} components, {s.packages} packages; licenses: {lic}"
            )
            if s.added or s.removed:
                out.append(
                    f"  - added: {', '.join(s.added) or '—'}; removed: {', '.join(s.removed) or '—'}"
                )
        if r.canary:
            c = r.canary
            shares = ", ".join(f"{k} {v:.1%}" for k, v in sorted(c.candidate_shares.items()))
            out.append(f"- **canary**: {_mark(c.passed)} n={c.n}; {shares}")
            for ch in c.checks:
                out.append(f"  - {_mark(ch.ok)} {ch.name}: {_check_text(ch)}")
        if r.decision_allow is not None:
            out.append(f"- **gate**: {'allow' if r.decision_allow else 'deny'}")
            for reason in r.decision_reasons:
                out.append(f"  - {reason}")
        if r.verification:
            out.append("- **verification**:")
            for ch in r.verification:
                out.append(f"  - {_mark(ch.ok)} {ch.name}{': ' + ch.detail if ch.detail else ''}")
        if r.timeline:
            out += ["", "| seq | time | action | env | actor |", "|---|---|---|---|---|"]
            for t in r.timeline:
                out.append(f"| {t.seq} | {t.time} | {t.action} | {t.env} | {t.actor} |")
    return "\n".join(out) + "\n"


def _summary_md(r: ReleaseRecord) -> list[str]:
    """The one-screen summary a reviewer reads before the details."""
    ok = None if not r.verification else not r.failed_claims
    canary = "—" if r.canary is None else ("passed" if r.canary.passed else "FAILED")
    gate = "—" if r.decision_allow is None else ("allow" if r.decision_allow else "deny")
    out = [
        f"> **{_mark(ok)} {r.verdict}** · gate {gate} · canary {canary} · "
        f"model `{r.model_repo or '—'}@{(r.model_commit or '—')[:12]}` · "
        f"commit `{(r.source_commit or '—')[:12]}` · by {r.signer or r.actor}",
    ]
    for c in r.failed_claims:
        out.append(f">  - ❌ {c.name}: {c.detail}")
    return [*out, ""]


def _check_text(ch: Check) -> str:
    parts = []
    if ch.value is not None:
        parts.append(f"{ch.value:.4g}")
    if ch.threshold is not None:
        parts.append(f"threshold {ch.threshold:.4g}")
    if ch.detail:
        parts.append(ch.detail)
    return "; ".join(parts) or ("pass" if ch.ok else "fail")


def _short(digest: str) -> str:
    return digest[:19] + "…" if len(digest) > 20 else digest


# --- SVG charts -----------------------------------------------------------------------
def bar_chart(
    title: str,
    labels: list[str],
    series: list[tuple[str, str, list[float]]],
    *,
    width: int = 460,
    height: int = 220,
    percent: bool = True,
) -> str:
    """Grouped vertical bars; `series` is [(name, color, values per label)]."""
    pad_l, pad_b, pad_t = 40, 38, 28
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    vmax = max([v for _, _, vals in series for v in vals] + [1e-9])
    if percent:
        vmax = 1.0 if vmax > 0.5 else math.ceil(vmax * 1.1 * 10) / 10
    else:
        vmax *= 1.15
    n = max(len(labels), 1)
    group_w = plot_w / n
    bar_w = max(2.0, group_w * 0.8 / max(len(series), 1))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'aria-label="{escape(title)}" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f'<text x="{pad_l}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    for i in range(5):  # grid
        y = pad_t + plot_h - plot_h * i / 4
        val = vmax * i / 4
        parts.append(
            f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" class="grid"/>'
        )
        label = f"{val:.0%}" if percent else f"{val:.2g}"
        parts.append(
            f'<text x="{pad_l - 4}" y="{y + 3:.1f}" class="axis" text-anchor="end">{label}</text>'
        )
    for gi, lab in enumerate(labels):
        x0 = pad_l + gi * group_w + group_w * 0.1
        for si, (name, color, vals) in enumerate(series):
            v = vals[gi] if gi < len(vals) else 0.0
            h = plot_h * (v / vmax if vmax else 0)
            x = x0 + si * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(name)} {escape(lab)}: {v:.1%}</title></rect>'
            )
        if n <= 12 or gi % max(1, n // 10) == 0:
            parts.append(
                f'<text x="{pad_l + gi * group_w + group_w / 2:.1f}" y="{pad_t + plot_h + 14}" '
                f'class="axis" text-anchor="middle">{escape(lab)}</text>'
            )
    lx = pad_l
    for name, color, _ in series:  # legend
        parts.append(f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{lx + 14}" y="{height - 5}" class="axis">{escape(name)}</text>')
        lx += 14 + 8 * len(name) + 16
    parts.append("</svg>")
    return "".join(parts)


def canary_charts(c: CanarySummary) -> str:
    labels = sorted(set(c.candidate_shares) | set(c.baseline_shares or {}))
    series: list[tuple[str, str, list[float]]] = []
    if c.baseline_shares is not None:
        series.append(("baseline", BASE_COLOR, [c.baseline_shares.get(k, 0.0) for k in labels]))
    series.append(("candidate", CAND_COLOR, [c.candidate_shares.get(k, 0.0) for k in labels]))
    shares = bar_chart("Label shares", labels, series)
    bins = [f"{c.bin_edges[i]:.2f}" for i in range(len(c.bin_edges) - 1)]
    hs: list[tuple[str, str, list[float]]] = []
    if c.baseline_hist is not None:
        hs.append(("baseline", BASE_COLOR, c.baseline_hist))
    hs.append(("candidate", CAND_COLOR, c.candidate_hist))
    hist = bar_chart("Confidence histogram", bins, hs, percent=True)
    return f'<div class="charts">{shares}{hist}</div>'


# --- HTML -----------------------------------------------------------------------------
CSS = """
body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#111827;margin:2rem auto;max-width:1000px;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .2rem}h2{font-size:1.15rem;margin:0}h3{font-size:1rem;margin:1rem 0 .4rem}
.meta{color:#4b5563}.card{border:1px solid #e5e7eb;border-radius:8px;padding:1rem 1.2rem;margin:1.2rem 0;break-inside:avoid}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;word-break:break-all}
table{border-collapse:collapse;width:100%;margin:.3rem 0}th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #f0f1f3;vertical-align:top}
th{color:#374151;font-weight:600;width:11rem}.badge{display:inline-block;border-radius:999px;padding:.05rem .6rem;font-size:12px;font-weight:600}
.verdict .badge{font-size:1.2rem;padding:.3rem .8rem}.summary{border-left:4px solid #d1d5db;padding-left:.6rem}
.ok{background:#dcfce7;color:#166534}.bad{background:#fee2e2;color:#991b1b}.na{background:#f3f4f6;color:#4b5563}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart .grid{stroke:#eef0f3}.chart .axis{font-size:10px;fill:#6b7280}.chart-title{font-size:12px;font-weight:600;fill:#111827}
ul{margin:.2rem 0 .2rem 1.2rem;padding:0}details summary{cursor:pointer;color:#374151}
@media print{body{margin:0;max-width:none}.card{border-color:#bbb}details{display:block}details>*{display:block}}
"""


def _badge(ok: bool | None, yes: str = "pass", no: str = "fail") -> str:
    if ok is None:
        return '<span class="badge na">n/a</span>'
    return f'<span class="badge {"ok" if ok else "bad"}">{yes if ok else no}</span>'


def _release_html(r: ReleaseRecord) -> str:
    rows = [
        ("time", escape(r.time)),
        ("released by", escape(r.actor)),
        ("signer identity", escape(r.signer or "—")),
        ("workflow run", escape(r.workflow_run or "—")),
        ("source commit", f"<code>{escape(r.source_commit or '—')}</code>"),
        (
            "model",
            f"<code>{escape(r.model_repo or '—')}@{escape(r.model_commit or '—')}</code><br>"
            f"<code>{escape(r.model_digest or '')}</code>",
        ),
        ("gate decision", _badge(r.decision_allow, "allow", "deny")),
    ]
    ok = None if not r.verification else not r.failed_claims
    canary = None if r.canary is None else r.canary.passed
    summary = (
        f'<div class="summary"><p>{_badge(ok, escape(r.verdict), escape(r.verdict))} '
        f"gate {_badge(r.decision_allow, 'allow', 'deny')} canary {_badge(canary)}</p>"
        + (
            "<ul>"
            + "".join(
                f"<li><b>{escape(c.name)}</b>: {escape(c.detail)}</li>" for c in r.failed_claims
            )
            + "</ul>"
            if r.failed_claims
            else ""
        )
        + "</div>"
    )
    parts = [
        '<section class="card release">',
        f'<h2>Release <code class="digest">{escape(r.digest)}</code></h2>',
        summary,
        "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>",
    ]
    if r.decision_reasons:
        parts.append(
            "<h3>Gate reasons</h3><ul>"
            + "".join(f"<li>{escape(x)}</li>" for x in r.decision_reasons)
            + "</ul>"
        )
    if r.verification:
        parts.append("<h3>Verification</h3><table>")
        for c in r.verification:
            parts.append(
                f"<tr><th>{_badge(c.ok)}</th><td>{escape(c.name)}<br><span class=meta>{escape(c.detail)}</span></td></tr>"
            )
        parts.append("</table>")
    if r.canary:
        cs = r.canary
        acc = f", accuracy {cs.accuracy:.1%}" if cs.accuracy is not None else ""
        parts.append(f"<h3>Canary {_badge(cs.passed)} <span class=meta>n={cs.n}{acc}</span></h3>")
        parts.append(canary_charts(cs))
        if cs.checks:
            parts.append("<table><tr><th>check</th><td><b>value / threshold</b></td></tr>")
            for ch in cs.checks:
                parts.append(
                    f"<tr><th>{_badge(ch.ok)} {escape(ch.name)}</th><td>{escape(_check_text(ch))}</td></tr>"
                )
            parts.append("</table>")
    if r.sbom:
        s = r.sbom
        lic = ", ".join(f"{escape(k)} ({v})" for k, v in sorted(s.licenses.items())) or "—"
        parts.append(
            f"<h3>SBOM</h3><table><tr><th>components</th><td>{s.components} ({s.packages} packages)</td></tr>"
            f"<tr><th>licenses</th><td>{lic}</td></tr>"
            f"<tr><th>added since previous</th><td>{escape(', '.join(s.added) or '—')}</td></tr>"
            f"<tr><th>removed since previous</th><td>{escape(', '.join(s.removed) or '—')}</td></tr></table>"
        )
    if r.model_files:
        parts.append(f"<details><summary>Model files ({len(r.model_files)})</summary><table>")
        for p, sha in r.model_files:
            parts.append(
                f"<tr><th class=mono>{escape(p)}</th><td><code>{escape(sha)}</code></td></tr>"
            )
        parts.append("</table></details>")
    if r.timeline:
        parts.append("<h3>Timeline</h3><table>")
        for t in r.timeline:
            parts.append(
                f"<tr><th>#{t.seq} {escape(t.action)}</th><td>{escape(t.time)} · {escape(t.env)} · "
                f"{escape(t.actor)}{(' · ' + escape(t.detail)) if t.detail else ''}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</section>")
    return "".join(parts)


def to_html(report: AuditReport) -> str:
    title = f"Release audit{' — ' + report.env if report.env else ''}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="verdict">{_badge(report.ok, escape(report.verdict), escape(report.verdict))}</p>',
        f'<p class="meta">Generated {escape(report.generated)} · ledger chain '
        f"{_badge(report.chain_ok, 'intact', 'BROKEN')} {escape(report.chain_detail)} · "
        f"{report.events} events · {len(report.releases)} release(s)</p>",
    ]
    if not report.releases:
        body.append("<p>No releases match.</p>")
    body += [_release_html(r) for r in report.releases]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )


RENDERERS = {"html": to_html, "md": to_markdown, "json": to_json}
