"""The audit report's data: what was released, when, by whom, on what evidence.

Built by `release.audit.collect` from the ledger, the registry's attestations and the
verification library; rendered by `release.audit.render` as self-contained HTML (inline
SVG charts, printable), Markdown (the GitHub Actions job summary) or JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from release.checks import Check


@dataclass(frozen=True)
class CanarySummary:
    """A canary report as charted: the label shares (label and multilabel outputs, in the
    model's label order) and one histogram - confidences (label, multilabel), scores
    (score) or per-item cosine similarity with the baseline (vector)."""

    passed: bool
    n: int
    candidate_shares: dict[str, float]
    baseline_shares: dict[str, float] | None
    bin_edges: list[float]
    candidate_hist: list[float]  # fractions per bin
    baseline_hist: list[float] | None
    checks: list[Check] = field(default_factory=list)
    accuracy: float | None = None
    output: str = "label"
    labels: list[str] = field(default_factory=list)
    histogram: str = "Confidence histogram"


@dataclass(frozen=True)
class SbomSummary:
    components: int
    packages: int
    licenses: dict[str, int]
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ChainSummary:
    """The environment chain of a release for the audited environment (`after`, `soak`):
    the promotion to `after` it soaked in (the signed statement's time and referrer) and
    the four claims (promotion, soak, rollback, alarms) as re-checked now."""

    env: str
    after: str
    soak: str
    promoted_at: str | None
    statement: str | None
    soaked: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    time: str
    action: str
    env: str
    actor: str
    digest: str
    detail: str = ""


@dataclass(frozen=True)
class ReleaseRecord:
    digest: str
    time: str
    actor: str
    signer: str | None
    workflow_run: str | None
    source_commit: str | None
    model_repo: str | None
    model_commit: str | None
    model_digest: str | None
    model_files: list[tuple[str, str]]  # (path, sha256)
    sbom: SbomSummary | None
    canary: CanarySummary | None
    decision_allow: bool | None
    decision_reasons: list[str]
    #: the gate policy that decided (name and digest, from the gate's ledger event)
    decision_policy: str | None
    decision_policy_digest: str | None
    verification: list[Check]
    timeline: list[TimelineEntry]
    #: the environment chain, when the audited environment has `after`
    chain: ChainSummary | None = None

    @property
    def failed_claims(self) -> list[Check]:
        return [c for c in self.verification if not c.ok]

    @property
    def verdict(self) -> str:
        """One line a reviewer reads first: pass / N of M claims failed / not re-verified."""
        if not self.verification:
            return "not re-verified"
        n, m = len(self.failed_claims), len(self.verification)
        return f"pass: all {m} claims verified" if n == 0 else f"FAIL: {n} of {m} claims failed"


@dataclass(frozen=True)
class AuditReport:
    generated: str
    env: str | None
    chain_ok: bool
    chain_detail: str
    events: int
    releases: list[ReleaseRecord]

    @property
    def claims(self) -> tuple[int, int]:
        """(failed, total) over every release's re-verified claims plus the ledger chain."""
        checks = [c for r in self.releases for c in r.verification]
        return sum(not c.ok for c in checks) + (not self.chain_ok), len(checks) + 1

    @property
    def ok(self) -> bool:
        return self.claims[0] == 0

    @property
    def verdict(self) -> str:
        failed, total = self.claims
        unverified = sum(1 for r in self.releases if not r.verification)
        tail = f" ({unverified} release(s) not re-verified)" if unverified else ""
        if failed == 0:
            return f"pass: all {total} claims verified{tail}"
        return f"FAIL: {failed} of {total} claims failed{tail}"

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        failed, total = self.claims
        doc["verdict"] = {
            "ok": failed == 0,
            "failed": failed,
            "claims": total,
            "text": self.verdict,
        }
        for rec, r in zip(doc["releases"], self.releases, strict=True):
            rec["verdict"] = r.verdict
        return doc
