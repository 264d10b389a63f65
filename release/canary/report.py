"""The canary report: the wire format (predicate `release.evidence.CANARY`),
how one is built from a model run, and how two are compared.

A report holds every item's output (`items: [{id, label, confidence, logits, expected}]`)
so any later run can be compared with it item by item (`release canary compare`), the
summaries a reviewer reads (label shares, confidence histogram, latency percentiles,
accuracy) and every check with its statistic, threshold and verdict. Its JSON Schema is
generated from the models below into attestations/canary-report.schema.json.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from release._io import atomic_write_bytes, dumps_json
from release.canary import stats
from release.checks import Check
from release.errors import CanaryFailed, UsageError
from release.evidence import CANARY
from release.inputs import read_input

PREDICATE_TYPE = CANARY
LABELS = ("NEGATIVE", "POSITIVE")
#: confidence histogram bin edges (binary classifier: confidence is in [0.5, 1])
BIN_EDGES = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
_DIGEST = r"^sha256:[0-9a-f]{64}$"
Label = Literal["NEGATIVE", "POSITIVE"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Item(_M):
    """One corpus item's output."""

    id: str
    label: Label
    confidence: float = Field(ge=0, le=1)
    logits: tuple[float, float] | None = None
    expected: Label | None = None


class Subject(_M):
    """What was run: the image (when run from one) and its model."""

    digest: str | None = Field(default=None, pattern=_DIGEST)
    model: str | None = None  # "<repo>@<commit>"
    model_digest: str | None = Field(default=None, pattern=_DIGEST)  # lock root digest


class Corpus(_M):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    items: int = Field(ge=1)


class Histogram(_M):
    edges: list[float]
    counts: list[int]


class Latency(_M):
    """Inference time, per batch (the model is loaded once, then batched)."""

    batch_size: int = Field(ge=1)
    batches: int = Field(ge=0)
    load_ms: float = Field(ge=0)
    p50_ms: float = Field(ge=0)
    p90_ms: float = Field(ge=0)
    p99_ms: float = Field(ge=0)
    items_per_second: float = Field(ge=0)


class Accuracy(_M):
    labelled: int = Field(ge=1)
    correct: int = Field(ge=0)
    accuracy: float = Field(ge=0, le=1)


class Baseline(_M):
    """What the candidate was compared with."""

    source: Literal["report", "digest", "promoted"]
    digest: str | None = Field(default=None, pattern=_DIGEST)
    model_digest: str | None = Field(default=None, pattern=_DIGEST)
    report_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    paired_items: int = Field(ge=0)


class CanaryReport(_M):
    """A canary report (the predicate of a canary attestation)."""

    schema_version: Literal[1] = 1
    subject: Subject
    corpus: Corpus
    n: int = Field(ge=1)
    items: list[Item]
    label_shares: dict[Label, float]
    confidence_histogram: Histogram
    low_confidence_rate: float = Field(ge=0, le=1)
    accuracy: Accuracy | None = None
    latency: Latency | None = None
    baseline: Baseline | None = None
    checks: list[Check]  # the verdict is `passed` on the wire
    passed: bool
    failed_checks: list[str]
    #: when the report was made (UTC, RFC 3339); signed with it, it orders a digest's
    #: reports (`newest`) - the referrers index order is nobody's signature
    created: str | None = Field(default=None, pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_bytes(self) -> bytes:
        return dumps_json(self.to_json()).encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_bytes()).hexdigest()


# --- schema ---------------------------------------------------------------------------
#: where the schema lives in the repository (shipped in the package: release/schemas)
SCHEMA_PATH = Path("release/schemas/canary-report.schema.json")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the report (committed as attestations/canary-report.schema.json)."""
    schema = CanaryReport.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": PREDICATE_TYPE,
        **schema,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


# --- reading and writing --------------------------------------------------------------
def parse_report(data: bytes, name: str) -> CanaryReport:
    try:
        report = CanaryReport.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise UsageError(
            f"{name}: not a canary report: {where}: {first['msg']} "
            f"(see attestations/canary-report.schema.json)"
        ) from None
    if report.n != len(report.items):
        raise UsageError(f"{name}: n = {report.n} but {len(report.items)} items")
    if len({i.id for i in report.items}) != len(report.items):
        raise UsageError(f"{name}: item ids are not unique")
    for c in report.checks:  # a canary check is a statistical one (`release.checks.Check`)
        if c.statistic is None or c.value is None or c.threshold is None:
            raise UsageError(f"{name}: check {c.name!r} has no statistic, value or threshold")
    return report


def read_report(path: Path) -> CanaryReport:
    return parse_report(read_input(path, "canary report"), path.name)


def write_report(path: Path, report: CanaryReport) -> None:
    atomic_write_bytes(path, report.to_bytes())


# --- building -------------------------------------------------------------------------
def thresholds(canary_cfg: Any) -> stats.Thresholds:
    """stats.Thresholds from a `[canary]` section (release.config.CanaryConfig)."""
    fields = stats.Thresholds.__dataclass_fields__
    return stats.Thresholds(**{k: getattr(canary_cfg, k) for k in fields})


def outputs(items: list[Item]) -> stats.Outputs:
    logits = None
    if items and all(i.logits is not None for i in items):
        logits = np.asarray([i.logits for i in items], dtype=np.float64)
    return stats.Outputs(
        ids=tuple(i.id for i in items),
        positive=np.asarray([i.label == "POSITIVE" for i in items], dtype=bool),
        confidence=np.asarray([i.confidence for i in items], dtype=np.float64),
        logits=logits,
        correct=tuple(None if i.expected is None else i.expected == i.label for i in items),
    )


def histogram(conf: np.ndarray) -> Histogram:
    counts, _ = np.histogram(np.clip(conf, BIN_EDGES[0], BIN_EDGES[-1]), bins=BIN_EDGES)
    return Histogram(edges=list(BIN_EDGES), counts=[int(c) for c in counts])


def build(
    *,
    subject: Subject,
    corpus: Corpus,
    items: list[Item],
    t: stats.Thresholds,
    latency: Latency | None = None,
    baseline: CanaryReport | None = None,
    baseline_source: Literal["report", "digest", "promoted"] = "report",
    created: str | None = None,
) -> CanaryReport:
    """A report for `items`, with every check that applies (absolute checks always;
    paired checks against `baseline` when given). `created` defaults to now."""
    if not items:
        raise UsageError("the canary corpus is empty")
    cand = outputs(items)
    base_out = None
    base_ref = None
    if baseline is not None:
        base_out = outputs(baseline.items)
        common = set(cand.ids) & set(base_out.ids)
        if not common:
            raise UsageError(
                "the baseline report shares no item ids with this corpus: "
                "run both on the same canary corpus"
            )
        base_ref = Baseline(
            source=baseline_source,
            digest=baseline.subject.digest,
            model_digest=baseline.subject.model_digest,
            report_sha256=baseline.sha256,
            paired_items=len(common),
        )
    same = (
        baseline is not None
        and subject.model_digest is not None
        and subject.model_digest == baseline.subject.model_digest
    )
    checks = stats.run_checks(cand, base_out, t, same_weights=same)
    labelled = [c for c in cand.correct if c is not None]
    pos = float(cand.positive.mean())
    return CanaryReport(
        subject=subject,
        corpus=corpus,
        n=len(items),
        items=items,
        label_shares={"NEGATIVE": 1.0 - pos, "POSITIVE": pos},
        confidence_histogram=histogram(cand.confidence),
        low_confidence_rate=float(np.mean(cand.confidence < t.low_confidence)),
        accuracy=(
            Accuracy(
                labelled=len(labelled),
                correct=sum(labelled),
                accuracy=sum(labelled) / len(labelled),
            )
            if labelled
            else None
        ),
        latency=latency,
        baseline=base_ref,
        checks=checks,
        passed=all(c.ok for c in checks),
        failed_checks=[c.name for c in checks if not c.ok],
        created=created or _now(),
    )


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def newest(statements: list[Any]) -> Any:
    """The report that counts among a digest's verified canary statements: the newest by
    the `created` time inside the signed predicate (reports without one rank oldest); at
    equal times a failing report wins, so a failing report is never outranked by a passing
    one that is not newer. None when the list is empty."""

    def key(vs: Any) -> tuple[str, bool]:
        pred = vs.predicate if isinstance(vs.predicate, dict) else {}
        created = pred.get("created")
        return (created if isinstance(created, str) else "", pred.get("passed") is not True)

    return max(statements, key=key) if statements else None


def compare(
    baseline: CanaryReport,
    candidate: CanaryReport,
    t: stats.Thresholds,
    source: Literal["report", "digest", "promoted"] = "report",
) -> CanaryReport:
    """The candidate report with its checks recomputed against `baseline`."""
    return build(
        subject=candidate.subject,
        corpus=candidate.corpus,
        items=list(candidate.items),
        t=t,
        latency=candidate.latency,
        baseline=baseline,
        baseline_source=source,
    )


# --- verdicts -------------------------------------------------------------------------
def describe(c: Check) -> str:
    """`name: value V, threshold T[, p = P (alpha A)]`; shares and rates in percent."""
    pct = c.name in _PERCENT

    def fmt(v: float | None, signed: bool = False) -> str:
        if v is None:
            return "none"
        if pct:
            return f"{v * 100:{'+' if signed else ''}.2f}%"
        return f"{v:.4g}"

    kind = {"accuracy": "minimum", "share-shift": "|shift| threshold"}.get(c.name, "threshold")
    text = f"{c.name}: value {fmt(c.value, c.name == 'share-shift')}, {kind} {fmt(c.threshold)}"
    if c.p_value is not None and c.p_threshold is not None:
        text += f", p = {c.p_value:.3g} (alpha {c.p_threshold:g})"
    return text


_PERCENT = frozenset(
    {
        "share-shift",
        "flip-rate",
        "confident-flips",
        "accuracy-drop",
        "accuracy",
        "low-confidence",
        "paired-items",
    }
)


def failure(report: CanaryReport) -> CanaryFailed:
    failed = [c for c in report.checks if not c.ok]
    details = []
    for c in failed:
        line = describe(c)
        if c.name == "confident-flips" and c.items:
            shown = ", ".join(c.items[:20]) + (" ..." if len(c.items) > 20 else "")
            line += f"; flipped: {shown}"
        details.append(line)
    return CanaryFailed(
        f"canary failed {len(failed)} of {len(report.checks)} checks: "
        + ", ".join(c.name for c in failed),
        details=details,
    )
