"""Render an `AuditReport` as self-contained HTML (inline SVG, no network, printable),
Markdown (GitHub Actions job summary) or JSON.

The HTML comes from the Jinja2 template `templates/audit.html.j2` (package data) with
autoescape on, so no value from the ledger or an attestation can inject markup; this
module only computes the chart geometry."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache

import jinja2

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
            shares = ", ".join(f"{k} {v:.1%}" for k, v in c.candidate_shares.items())
            out.append(f"- **canary**: {_mark(c.passed)} n={c.n} ({c.output}); {shares}")
            for ch in c.checks:
                out.append(f"  - {_mark(ch.ok)} {ch.name}: {_check_text(ch)}")
        if r.decision_allow is not None:
            out.append(
                f"- **gate**: {'allow' if r.decision_allow else 'deny'}"
                f" (policy {r.decision_policy}, `{r.decision_policy_digest}`)"
            )
            for reason in r.decision_reasons:
                out.append(f"  - {reason}")
        if r.chain:
            ch_ = r.chain
            out.append(
                f"- **environment chain**: {_mark(ch_.ok)} {ch_.env} after {ch_.after}, soak "
                f"{ch_.soak}; promoted to {ch_.after} at {ch_.promoted_at or '—'} "
                f"(statement `{ch_.statement or '—'}`), live there {ch_.soaked}"
            )
            for ch in ch_.checks:
                out.append(f"  - {_mark(ch.ok)} {ch.name}: {ch.detail}")
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


# --- SVG charts (geometry here, markup in the template) ----------------------------------
@dataclass(frozen=True)
class GridLine:
    y: float
    label: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    fill: str
    tip: str


@dataclass(frozen=True)
class BarGroup:
    bars: list[Bar]
    label_x: float
    label: str | None  # None: not labelled (thinned out when there are many groups)


@dataclass(frozen=True)
class Legend:
    x: int
    color: str
    name: str


@dataclass(frozen=True)
class BarChart:
    title: str
    width: int
    height: int
    pad_l: int
    label_y: int
    grid: list[GridLine]
    groups: list[BarGroup]
    legend: list[Legend]


def bar_chart(
    title: str,
    labels: list[str],
    series: list[tuple[str, str, list[float]]],
    *,
    width: int = 460,
    height: int = 220,
    percent: bool = True,
) -> BarChart:
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
    grid = [
        GridLine(
            pad_t + plot_h - plot_h * i / 4,
            f"{vmax * i / 4:.0%}" if percent else f"{vmax * i / 4:.2g}",
        )
        for i in range(5)
    ]
    groups = []
    for gi, lab in enumerate(labels):
        x0 = pad_l + gi * group_w + group_w * 0.1
        bars = []
        for si, (name, color, vals) in enumerate(series):
            v = vals[gi] if gi < len(vals) else 0.0
            h = plot_h * (v / vmax if vmax else 0)
            bars.append(
                Bar(x0 + si * bar_w, pad_t + plot_h - h, bar_w, h, color, f"{name} {lab}: {v:.1%}")
            )
        shown = n <= 12 or gi % max(1, n // 10) == 0
        groups.append(BarGroup(bars, pad_l + gi * group_w + group_w / 2, lab if shown else None))
    legend, lx = [], pad_l
    for name, color, _ in series:
        legend.append(Legend(lx, color, name))
        lx += 14 + 8 * len(name) + 16
    return BarChart(title, width, height, pad_l, pad_t + plot_h + 14, grid, groups, legend)


def canary_charts(c: CanarySummary) -> list[BarChart]:
    """The label-share chart (the model's own labels, in its order; label and multilabel
    outputs) and the histogram of the output type, baseline beside candidate."""
    charts = []
    labels = list(c.labels) or sorted(c.candidate_shares)
    labels += sorted(
        k for k in set(c.candidate_shares) | set(c.baseline_shares or {}) if k not in labels
    )
    if c.candidate_shares:
        series: list[tuple[str, str, list[float]]] = []
        if c.baseline_shares is not None:
            series.append(("baseline", BASE_COLOR, [c.baseline_shares.get(k, 0.0) for k in labels]))
        series.append(("candidate", CAND_COLOR, [c.candidate_shares.get(k, 0.0) for k in labels]))
        title = "Label shares" if c.output != "multilabel" else "Share of items per label"
        charts.append(bar_chart(title, labels, series))
    if c.bin_edges:
        bins = [f"{c.bin_edges[i]:.3g}" for i in range(len(c.bin_edges) - 1)]
        hs: list[tuple[str, str, list[float]]] = []
        if c.baseline_hist is not None:
            hs.append(("baseline", BASE_COLOR, c.baseline_hist))
        hs.append(("candidate", CAND_COLOR, c.candidate_hist))
        charts.append(bar_chart(c.histogram, bins, hs, percent=True))
    return charts


# --- HTML -----------------------------------------------------------------------------
@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("release.audit", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["pct"] = lambda v: f"{v:.1%}"
    env.globals.update(charts=canary_charts, check_text=_check_text)
    return env.get_template("audit.html.j2")


def to_html(report: AuditReport) -> str:
    return _template().render(report=report)


RENDERERS = {"html": to_html, "md": to_markdown, "json": to_json}
