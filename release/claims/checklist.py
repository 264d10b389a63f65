"""The checklist one verification fills: `Verification` (every claim's `Check`, the
verified attestations, what the image says about itself) and `Attestation` (the outcome
of verifying one predicate type's stored bundles).

Every claim module of `release.claims` takes a `Verification`, adds its checks and
returns its typed claim for the gate's Evidence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from release.attest.signatures import VerifiedStatement
from release.checks import Check
from release.digest import Reference
from release.evidence import Evidence, Signature
from release.modelpin import ModelLock

log = logging.getLogger(__name__)


@dataclass
class Attestation:
    """The outcome of verifying the stored bundles of one predicate type."""

    name: str
    predicate_type: str
    present: bool
    ok: bool
    reason: str = ""
    predicate: dict[str, Any] | None = None
    signer: str | None = None
    issuer: str | None = None
    bundle_digest: str | None = None

    def signature(self) -> Signature:
        return Signature(
            ok=self.ok,
            reason=self.reason,
            predicate_type=self.predicate_type,
            present=self.present,
            signer=self.signer,
            issuer=self.issuer,
            bundle_digest=self.bundle_digest,
        )


@dataclass
class Verification:
    """Everything verified about one digest: a checklist and the gate's Evidence."""

    reference: Reference
    repository: str
    env: str
    checks: list[Check] = field(default_factory=list)
    attestations: dict[str, Attestation] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    functions: dict[str, str] = field(default_factory=dict)
    lock: ModelLock | None = None  # the lock baked in the image
    evidence: Evidence | None = None
    #: every verified promotion statement about the digest (any environment)
    promotions: list[VerifiedStatement] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return self.reference.digest

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, ok, detail))
        log.debug("%s %s: %s", "PASS" if ok else "FAIL", name, detail)
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "repository": self.repository,
            "env": self.env or None,
            "ok": self.ok,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "signers": {
                n: {"signer": a.signer, "issuer": a.issuer, "bundle": a.bundle_digest}
                for n, a in sorted(self.attestations.items())
                if a.ok
            },
            "functions": self.functions,
        }
