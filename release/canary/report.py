"""The canary report: the wire format (predicate `release.evidence.CANARY`, version 2),
how one is built from a model run, and how two are compared.

A report records what the model returns (`output`: its type - label, multilabel, score or
vector - and the model's own label set) and every item's output (`items: [{id, label,
confidence, probs, logits, score, vector, expected}]`, the fields of its type), so any
later run can be compared with it item by item (`release canary compare`), the summaries
a reviewer reads (label shares, confidence / score / cosine histograms, latency
percentiles, accuracy) and every check with its statistic, threshold and verdict. Its
JSON Schema is generated from the models below into attestations/canary-report.schema.json.

Version 1 reports (a binary label model, predicate `.../canary-report/v1`, schema
attestations/canary-report-v1.schema.json) are still read: validated against their schema
(exactly two labels, whatever their names: the tool names no platform's labels), then read
as a version 2 label report over the labels they name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from release._io import atomic_write_bytes, dumps_json
from release.checks import Check
from release.errors import CanaryFailed, UsageError
from release.evidence import CANARY
from release.inputs import read_input

if TYPE_CHECKING:  # numpy (and the checks, on it) load only where a report is computed
    import numpy as np

    from release.canary import checks as ck

PREDICATE_TYPE = CANARY
OutputType = Literal["label", "multilabel", "score", "vector"]
_DIGEST = r"^sha256:[0-9a-f]{64}$"
#: the bins of a cosine-similarity histogram (vector outputs)
COSINE_EDGES = [-1.0, 0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(_M):
    """What the model returns per input: its type and, for labels, the label set in the
    model's order (`[canary].labels` or the model's config.json `id2label`)."""

    type: OutputType
    labels: list[str] | None = None
    #: multilabel: a label is on at probability >= threshold
    threshold: float | None = Field(default=None, gt=0, lt=1)
    #: vector: the dimension
    dim: int | None = Field(default=None, ge=1)


Expected = str | list[str] | float


class Item(_M):
    """One corpus item's output: `label` + `confidence` (and optionally `probs` or
    `logits`, one per label) for a label model; `probs` for a multi-label one; `score`;
    `vector`. `expected` is typed like the output (vector outputs have none)."""

    id: str
    label: str | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    probs: list[float] | None = None
    logits: list[float] | None = None
    score: float | None = None
    vector: list[float] | None = None
    expected: Expected | None = None


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
    """Counts per bin of the candidate, and of the baseline over the same bins when the
    report was compared with one."""

    edges: list[float]
    counts: list[int]
    baseline_counts: list[int] | None = None


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

    schema_version: Literal[2] = 2
    output: Output
    subject: Subject
    corpus: Corpus
    n: int = Field(ge=1)
    items: list[Item]
    #: label: the share of items per label; multilabel: the share of items with it on
    label_shares: dict[str, float] | None = None
    baseline_label_shares: dict[str, float] | None = None
    #: label: the winning label's probability; multilabel: every label's probability
    confidence_histogram: Histogram | None = None
    score_histogram: Histogram | None = None
    #: vector, compared with a baseline: cos(candidate_i, baseline_i)
    cosine_histogram: Histogram | None = None
    low_confidence_rate: float | None = Field(default=None, ge=0, le=1)
    accuracy: Accuracy | None = None
    latency: Latency | None = None
    baseline: Baseline | None = None
    checks: list[Check]  # the verdict is `passed` on the wire
    passed: bool
    failed_checks: list[str]
    #: when the report was made (UTC, RFC 3339); signed with it, it orders a digest's
    #: reports (`release.evidence.newest_canary`) - the referrers index order is nobody's signature
    created: str | None = Field(default=None, pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
    #: the sha256 of the bytes it was read from (a version 1 report is upgraded on read)
    _source_sha256: str | None = PrivateAttr(default=None)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_bytes(self) -> bytes:
        return dumps_json(self.to_json()).encode()

    @property
    def sha256(self) -> str:
        """Of the bytes it was read from, else of its canonical bytes."""
        return self._source_sha256 or hashlib.sha256(self.to_bytes()).hexdigest()

    @property
    def labels(self) -> list[str]:
        return list(self.output.labels or [])


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
V1_SCHEMA = "canary-report-v1.schema.json"


def _upgrade_v1(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A version 1 report (validated against its frozen schema) as a version 2 document:
    a label report over the labels it names (its `label_shares` keys, in that order)."""
    import jsonschema

    from release.attest.statements import load_schema

    err = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(load_schema(V1_SCHEMA)).iter_errors(doc)
    )
    if err is not None:
        where = "/".join(map(str, err.absolute_path)) or "(top level)"
        raise UsageError(
            f"{name}: not a canary report (version 1): {where}: {err.message} "
            f"(see attestations/{V1_SCHEMA})"
        )
    labels = list(doc["label_shares"])
    hist = doc["confidence_histogram"]
    return {
        **doc,
        "schema_version": 2,
        "output": {"type": "label", "labels": labels},
        "items": [
            {k: v for k, v in it.items() if v is not None or k == "id"} for it in doc["items"]
        ],
        "confidence_histogram": hist,
    }


def parse_report(data: bytes, name: str) -> CanaryReport:
    """A report (version 2, or version 1 read as version 2); UsageError naming the first
    problem."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{name}: not a canary report: not JSON ({exc})") from None
    if isinstance(doc, dict) and doc.get("schema_version") == 1:
        doc = _upgrade_v1(doc, name)
    try:
        report = CanaryReport.model_validate(doc)
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
    from release.canary.outputs import check_items

    check_items(report.output, report.items, name)
    report._source_sha256 = hashlib.sha256(data).hexdigest()
    return report


def read_report(path: Path) -> CanaryReport:
    return parse_report(read_input(path, "canary report"), path.name)


def write_report(path: Path, report: CanaryReport) -> None:
    atomic_write_bytes(path, report.to_bytes())


# --- building -------------------------------------------------------------------------
def thresholds(canary_cfg: Any) -> ck.Thresholds:
    """checks.Thresholds from a `[canary]` section (release.config.CanaryConfig)."""
    from release.canary import checks as ck

    fields = ck.Thresholds.__dataclass_fields__
    return ck.Thresholds(**{k: getattr(canary_cfg, k) for k in fields})


def outputs(output: Output, items: list[Item]) -> ck.Outputs:
    """The items as aligned arrays of their output type (`parse_report` / `check_items`
    have checked every item has its type's fields)."""
    import numpy as np

    from release.canary import checks as ck

    ids = tuple(i.id for i in items)
    labels = tuple(output.labels or ())
    if output.type == "label":
        raw = None
        vals = [i.probs if i.probs is not None else i.logits for i in items]
        if items and all(v is not None for v in vals):
            raw = np.asarray(vals, dtype=np.float64)
        return ck.label_outputs(
            ids,
            labels,
            [str(i.label) for i in items],
            [float(i.confidence or 0.0) for i in items],
            raw=raw,
            correct=[None if i.expected is None else i.expected == i.label for i in items],
        )
    if output.type == "multilabel":
        probs = np.asarray([i.probs for i in items], dtype=np.float64).reshape(len(items), -1)
        on = probs >= (output.threshold or 0.5)
        correct: list[bool | None] = []
        for i, row in zip(items, on, strict=True):
            exp = i.expected
            got = {x for x, o in zip(labels, row, strict=True) if o}
            correct.append(None if not isinstance(exp, list) else set(exp) == got)
        return ck.Outputs("multilabel", ids, labels, raw=probs, on=on, correct=tuple(correct))
    if output.type == "score":
        return ck.Outputs(
            "score",
            ids,
            raw=np.asarray([i.score for i in items], dtype=np.float64),
            correct=(None,) * len(items),
        )
    dim = len(items[0].vector or []) if items else 0
    return ck.Outputs(
        "vector",
        ids,
        raw=np.asarray([i.vector for i in items], dtype=np.float64).reshape(len(items), dim),
        correct=(None,) * len(items),
    )


def confidence_edges(k: int) -> list[float]:
    """10 bins from 1/K (the least a winning label can have) to 1; K = 2: 0.5, 0.55, ..."""
    lo = 1.0 / k if k >= 2 else 0.0
    return [round(lo + (1.0 - lo) * j / 10, 6) for j in range(11)]


def histogram(
    values: np.ndarray, edges: list[float], baseline: np.ndarray | None = None
) -> Histogram:
    import numpy as np

    def count(v: np.ndarray) -> list[int]:
        c, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
        return [int(x) for x in c]

    return Histogram(
        edges=list(edges),
        counts=count(values),
        baseline_counts=None if baseline is None else count(baseline),
    )


def _score_edges(*arrays: np.ndarray) -> list[float]:
    import numpy as np

    lo = min(float(np.min(a)) for a in arrays)
    hi = max(float(np.max(a)) for a in arrays)
    if hi <= lo:
        hi = lo + 1.0
    return [float(x) for x in np.linspace(lo, hi, 11)]


def _shares(o: ck.Outputs) -> dict[str, float] | None:
    import numpy as np

    if o.kind == "label" and o.label is not None:
        counts = np.bincount(o.label, minlength=len(o.labels))
        return {x: float(c) / max(o.n, 1) for x, c in zip(o.labels, counts, strict=True)}
    if o.kind == "multilabel" and o.on is not None:
        return {x: float(s) for x, s in zip(o.labels, o.on.mean(axis=0), strict=True)}
    return None


def _summaries(
    output: Output, cand: ck.Outputs, base: ck.Outputs | None, t: ck.Thresholds
) -> dict[str, Any]:
    """The report's summaries of `cand` (and of the paired `base`, over the same bins)."""
    import numpy as np

    out: dict[str, Any] = {"label_shares": _shares(cand)}
    if base is not None:
        out["baseline_label_shares"] = _shares(base)
    if output.type == "label":
        assert cand.confidence is not None
        out["confidence_histogram"] = histogram(
            cand.confidence,
            confidence_edges(len(cand.labels)),
            None if base is None else base.confidence,
        )
        out["low_confidence_rate"] = float(np.mean(cand.confidence < t.low_confidence))
    elif output.type == "multilabel":
        assert cand.raw is not None
        out["confidence_histogram"] = histogram(
            cand.raw.ravel(),
            [j / 10 for j in range(11)],
            None if base is None or base.raw is None else base.raw.ravel(),
        )
    elif output.type == "score":
        assert cand.raw is not None
        arrays = [cand.raw] + ([base.raw] if base is not None and base.raw is not None else [])
        out["score_histogram"] = histogram(
            cand.raw, _score_edges(*arrays), None if base is None else base.raw
        )
    elif (
        base is not None
        and base.raw is not None
        and cand.raw is not None
        and base.raw.shape == cand.raw.shape
    ):
        from release.canary.stats import cosine

        out["cosine_histogram"] = histogram(cosine(base.raw, cand.raw), COSINE_EDGES)
    return out


def build(
    *,
    subject: Subject,
    corpus: Corpus,
    items: list[Item],
    t: ck.Thresholds,
    output: Output,
    latency: Latency | None = None,
    baseline: CanaryReport | None = None,
    baseline_source: Literal["report", "digest", "promoted"] = "report",
    created: str | None = None,
) -> CanaryReport:
    """A report for `items` (outputs of type `output`), with every check that applies
    (absolute checks always; paired checks against `baseline` when given). `created`
    defaults to now."""
    from release.canary import checks as ck

    if not items:
        raise UsageError("the canary corpus is empty")
    cand = outputs(output, items)
    base_out = None
    base_ref = None
    if baseline is not None:
        if baseline.output.type != output.type:
            raise UsageError(
                f"the baseline report's outputs are {baseline.output.type!r}, the candidate's "
                f"{output.type!r}: [canary].output changed; compare like with like"
            )
        base_out = outputs(baseline.output, baseline.items)
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
    checks = ck.run_checks(cand, base_out, t, same_weights=same)
    paired_base = paired_cand = None
    if base_out is not None:
        paired_base, paired_cand = ck.align(base_out, cand)
    labelled = [c for c in cand.correct if c is not None]
    summaries = _summaries(output, cand, None, t)
    if paired_base is not None and paired_cand is not None:
        paired = _summaries(output, paired_cand, paired_base, t)
        summaries["baseline_label_shares"] = paired.get("baseline_label_shares")
        for key in ("confidence_histogram", "score_histogram", "cosine_histogram"):
            if key in paired:
                summaries[key] = (
                    paired[key]
                    if key == "cosine_histogram"
                    else _with_base(summaries[key], paired[key], output, cand)
                )
    return CanaryReport(
        output=output,
        subject=subject,
        corpus=corpus,
        n=len(items),
        items=items,
        **summaries,
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


def _with_base(mine: Histogram, paired: Histogram, output: Output, cand: ck.Outputs) -> Histogram:
    """The candidate's histogram over all its items, with the baseline's paired counts
    over the same bins (scores: both over the bins spanning both runs)."""
    if output.type == "score":
        assert cand.raw is not None
        return histogram(cand.raw, paired.edges).model_copy(
            update={"baseline_counts": paired.baseline_counts}
        )
    return mine.model_copy(update={"baseline_counts": paired.baseline_counts})


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def compare(
    baseline: CanaryReport,
    candidate: CanaryReport,
    t: ck.Thresholds,
    source: Literal["report", "digest", "promoted"] = "report",
) -> CanaryReport:
    """The candidate report with its checks recomputed against `baseline`."""
    return build(
        subject=candidate.subject,
        corpus=candidate.corpus,
        items=list(candidate.items),
        t=t,
        output=candidate.output,
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

    kind = {
        "accuracy": "minimum",
        "cosine-floor": "minimum",
        "share-shift": "|shift| threshold",
        "label-shift": "|shift| threshold",
        "score-shift": "|shift| threshold",
    }.get(c.name, "threshold")
    signed = c.name in ("share-shift", "label-shift", "score-shift")
    text = f"{c.name}: value {fmt(c.value, signed)}, {kind} {fmt(c.threshold)}"
    if c.p_value is not None and c.p_threshold is not None:
        text += f", p = {c.p_value:.3g} (alpha {c.p_threshold:g})"
    return text


_PERCENT = frozenset(
    {
        "share-shift",
        "label-shift",
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
