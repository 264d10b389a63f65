"""The readiness report: one row per thing the platform's readiness review asks of an
environment, each pass or fail with the reason (what was found against what is needed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail"]


@dataclass(frozen=True)
class Row:
    kind: str  # one of release.config.READINESS_ROWS
    subject: str  # the function, queue, topic, alarm metric or repository checked
    status: Status
    why: str
    required: bool = True

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.subject}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "subject": self.subject,
            "status": self.status,
            "why": self.why,
            "required": self.required,
        }


@dataclass(frozen=True)
class ReadinessReport:
    env: str
    generated: str
    live_digest: str | None
    namespace: str
    rows: tuple[Row, ...] = field(default_factory=tuple)

    @property
    def failed_required(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.required and r.status == "fail")

    @property
    def ready(self) -> bool:
        return not self.failed_required

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "generated": self.generated,
            "live_digest": self.live_digest,
            "metrics_namespace": self.namespace,
            "ready": self.ready,
            "summary": {
                "rows": len(self.rows),
                "passed": sum(r.status == "pass" for r in self.rows),
                "failed": sum(r.status == "fail" for r in self.rows),
                "failed_required": len(self.failed_required),
            },
            "rows": [r.to_dict() for r in self.rows],
        }
