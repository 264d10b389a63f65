"""Verify the stored attestations of a digest, one predicate type at a time: the newest
bundle of each type whose signature, signer, subject and predicate type hold.
"""

from __future__ import annotations

from typing import Any

from release.attest.signatures import NoAttestation, Policy, verify_stored
from release.claims.checklist import Attestation
from release.digest import Reference
from release.errors import ReleaseError, RemoteError, VerificationFailed
from release.evidence import PREDICATES, PROMOTION

#: every attestation a release carries; promotion is optional (written at promote time)
ALL_PREDICATES: dict[str, str] = {**PREDICATES, "promotion": PROMOTION}


def verify_attestation(
    registry: Any,
    ref: Reference,
    name: str,
    predicate_type: str,
    policy: Policy,
    model: str | None = None,
) -> Attestation:
    """The newest stored bundle of one predicate type that verifies (`verify_stored`);
    `model`: the statement must be about this model root digest instead of the image."""
    try:
        if name == "model" and model is None:
            raise VerificationFailed(
                "no readable model lock in the image to check the model signature against"
            )
        if model:
            vs = verify_stored(
                registry,
                ref.digest,
                predicate_type,
                policy,
                subject=model,
                about="the image's model",
            )
        else:
            vs = verify_stored(registry, ref.digest, predicate_type, policy)
    except NoAttestation:
        return Attestation(name, predicate_type, present=False, ok=False, reason="missing")
    except RemoteError:
        raise
    except ReleaseError as exc:
        return Attestation(name, predicate_type, present=True, ok=False, reason=exc.message)
    return Attestation(
        name,
        predicate_type,
        present=True,
        ok=True,
        predicate=vs.predicate,
        signer=vs.signer,
        issuer=vs.issuer,
        bundle_digest=vs.bundle_digest,
    )
