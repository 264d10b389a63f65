"""Evidence: everything verified about one digest, typed; the input document of the gate.

`release.claims.collect` (the same code `release verify` and the audit use) builds one
`Evidence` per digest from the registry, the stored Sigstore bundles and the lock; the
gate hands it unchanged (as JSON) to the Rego policy in `policy/release/` as `input`.

Every claim is a value with `ok` and, when not ok, a one-line `reason` saying what was
found; the policy decides what must hold. A claim that could not be checked is `ok =
false` with the reason, never missing: absence of evidence is a failed claim.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from release._io import canonical_json

PROVENANCE = "https://slsa.dev/provenance/v1"
SBOM = "https://cyclonedx.org/bom"
MODEL_SIGNATURE = "https://model_signing/signature/v1.0"
#: Our own predicate types are named under the project's repository (the home of their
#: JSON Schemas, attestations/NAME.schema.json), one path segment per major version:
#: `<PREDICATE_BASE>/NAME/vN`. Verification accepts exactly these URIs (docs/verifying.md).
PROJECT_URL = "https://github.com/release-platform/release"
PREDICATE_BASE = PROJECT_URL + "/attestations"
CANARY = PREDICATE_BASE + "/canary-report/v2"
#: version 1 canary reports (a binary label model) are still read and verified
CANARY_V1 = PREDICATE_BASE + "/canary-report/v1"
#: every canary report type verification accepts, newest first
CANARY_TYPES = (CANARY, CANARY_V1)
PROMOTION = PREDICATE_BASE + "/promotion/v1"

#: short names the policy uses for the predicate types it requires
PREDICATES: dict[str, str] = {
    "provenance": PROVENANCE,
    "sbom": SBOM,
    "model": MODEL_SIGNATURE,
    "canary": CANARY,
}

_DIGEST = r"^sha256:[0-9a-f]{64}$"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Claim(_Doc):
    """One checked claim: ok, or not ok with the reason."""

    ok: bool
    reason: str = ""


class Signature(Claim):
    """A stored attestation of one predicate type: signature verified, signer as expected."""

    predicate_type: str
    present: bool
    signer: str | None = None
    issuer: str | None = None
    #: the bundle's manifest digest in the registry (recorded in the ledger)
    bundle_digest: str | None = Field(default=None, pattern=_DIGEST)


class SbomClaim(Claim):
    present: bool
    subject_ok: bool
    #: every model file listed with the locked sha256, and nothing else
    model_files_match_lock: bool


class ProvenanceClaim(Claim):
    workflow: str | None = None
    expected_workflow: str | None = None
    commit: str | None = None
    expected_commit: str | None = None


class ModelLayerClaim(Claim):
    """The image's model layer, re-hashed, against model.lock.json."""

    lock_digest: str | None = Field(default=None, pattern=_DIGEST)
    missing: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    extra: list[str] = Field(default_factory=list)


class CanaryClaim(Claim):
    passed: bool
    report_digest: str | None = Field(default=None, pattern=_DIGEST)
    failed_checks: list[str] = Field(default_factory=list)


class VulnerabilityFinding(_Doc):
    """One finding not waived by the report itself (the policy may still waive it by id)."""

    id: str
    severity: Literal["critical", "high", "medium", "low", "unknown"]
    package: str | None = None


class VulnerabilityClaim(Claim):
    """A vulnerability report (ECR scan, CycloneDX VEX or SARIF) when configured
    (`release.vulnerabilities`); the counts are of `findings`."""

    configured: bool
    source: str | None = None
    critical: int = Field(default=0, ge=0)
    high: int = Field(default=0, ge=0)
    medium: int = Field(default=0, ge=0)
    low: int = Field(default=0, ge=0)
    findings: list[VulnerabilityFinding] = Field(default_factory=list)


class ReadinessClaim(Claim):
    """The live environment against the readiness review (`release readiness`), filled in
    by the gate when `[readiness].gate = true`; `failed` lists each failing required row
    as `KIND:SUBJECT: why`."""

    configured: bool
    failed: list[str] = Field(default_factory=list)


def _readiness_not_configured() -> ReadinessClaim:
    return ReadinessClaim(ok=False, configured=False, reason="not configured")


def _not_checked() -> Claim:
    return Claim(ok=False, reason="not checked")


class ChainClaim(Claim):
    """The environment chain (`[environments.ENV].after` and `soak`), filled in by the gate
    and `release verify --env` when the environment has `after`: the digest's promotion
    to `after`, read from its signed promotion statement (`promoted_at`: the time the
    statement names), soaked there at least `soak_seconds` (`soaked_seconds` so far;
    `left`: the time still to wait, empty once soaked or when the digest is no longer live
    there), no rollback of it there since, and the alarms of `after` never in ALARM since.
    Each part is a claim of its own; `ok` is all four."""

    configured: bool
    after: str | None = None
    #: the configured soak (`24h`) and in seconds
    soak: str = ""
    soak_seconds: int = Field(default=0, ge=0)
    promoted_at: str | None = None
    #: the promotion statement's referrer manifest
    statement: str | None = Field(default=None, pattern=_DIGEST)
    soaked_seconds: int = Field(default=0, ge=0)
    left: str = ""
    promotion: Claim = Field(default_factory=_not_checked)
    soaked: Claim = Field(default_factory=_not_checked)
    rollback: Claim = Field(default_factory=_not_checked)
    alarms: Claim = Field(default_factory=_not_checked)

    def parts(self) -> dict[str, Claim]:
        """The four claims by name (the checklist rows `chain NAME`)."""
        return {
            "promotion": self.promotion,
            "soak": self.soaked,
            "rollback": self.rollback,
            "alarms": self.alarms,
        }


def _chain_not_configured() -> ChainClaim:
    return ChainClaim(ok=False, configured=False, reason="not configured")


class Evidence(_Doc):
    """The Rego input document."""

    schema_version: Literal[1] = 1
    digest: str = Field(pattern=_DIGEST)
    repository: str
    env: str
    signatures: dict[str, Signature]
    sbom: SbomClaim
    provenance: ProvenanceClaim
    model_layer: ModelLayerClaim
    canary: CanaryClaim
    vulnerabilities: VulnerabilityClaim
    readiness: ReadinessClaim = Field(default_factory=_readiness_not_configured)
    chain: ChainClaim = Field(default_factory=_chain_not_configured)

    def to_input(self) -> dict[str, object]:
        """The JSON document the policy sees as `input`."""
        return self.model_dump(mode="json")

    @property
    def sha256(self) -> str:
        """Digest of the canonical JSON of this document (recorded in the ledger)."""
        return "sha256:" + hashlib.sha256(canonical_json(self.to_input())).hexdigest()

    def digests(self) -> dict[str, str]:
        """Evidence digests for the ledger: this document and every bundle and report."""
        out = {"evidence": self.sha256}
        for name, sig in sorted(self.signatures.items()):
            if sig.bundle_digest:
                out[f"bundle:{name}"] = sig.bundle_digest
        if self.canary.report_digest:
            out["canary-report"] = self.canary.report_digest
        if self.model_layer.lock_digest:
            out["model-lock"] = self.model_layer.lock_digest
        return out


def newest_canary(statements: list[Any]) -> Any:
    """The canary report that counts among a digest's verified canary statements: the newest by
    the `created` time inside the signed predicate (reports without one rank oldest); at
    equal times a failing report wins, so a failing report is never outranked by a passing
    one that is not newer. None when the list is empty."""

    def key(vs: Any) -> tuple[str, bool]:
        pred = vs.predicate if isinstance(vs.predicate, dict) else {}
        created = pred.get("created")
        return (created if isinstance(created, str) else "", pred.get("passed") is not True)

    return max(statements, key=key) if statements else None
