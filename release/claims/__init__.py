"""Re-verify every claim about one image digest: the library behind `release verify`, the
gate (`collect` is the default evidence provider of `release.promote`) and the audit.

Nothing is trusted because it is stored: the image is read by digest and every blob is
re-hashed; each attestation's Sigstore bundle is verified offline against the pinned
trust root (or the signing public key) and the signer policy; subjects must name this
digest; the SBOM is compared with the image's real files; provenance with the image
config; the model directory of the image's MERGED filesystem (every layer, whiteouts
applied: `release.image.fs`) with the lock baked in the image - exactly its files, and
no layer but the model layer touching them; the canary report's
verdict is read from the signed statement; the ledger's hash chain is re-computed.

A claim that cannot be checked is a failed claim with the reason, never a skipped one.

The claims, one module each: `image` (the merged filesystem every claim reads),
`model_layer`, `attestations`, `sbom`, `provenance`, `canary`, `ledger` and
`promotion`; `checklist` holds the `Verification` they fill. This module runs them in
order (`verify_release`) and assembles the gate's Evidence (`collect`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from release.attest.signatures import policy_from_config, verify_all_stored
from release.claims.attestations import ALL_PREDICATES, verify_attestation
from release.claims.canary import check_canary
from release.claims.checklist import Attestation, Verification
from release.claims.image import merged_view
from release.claims.ledger import LedgerCheck, check_ledger, verify_ledger
from release.claims.model_layer import check_model_layer
from release.claims.promotion import check_promotion
from release.claims.provenance import check_provenance
from release.claims.sbom import check_sbom
from release.config import Config
from release.digest import Reference, parse_reference
from release.errors import ReleaseError, RemoteError, UsageError
from release.evidence import (
    CANARY_TYPES,
    CANARY_V1,
    PREDICATES,
    PROMOTION,
    CanaryClaim,
    Evidence,
    ModelLayerClaim,
    ProvenanceClaim,
    SbomClaim,
    Signature,
    VulnerabilityClaim,
)
from release.modelpin import shipped

if TYPE_CHECKING:
    from release.claims.chain import Clock


def collect(cfg: Config, ref: Reference, env: str) -> Evidence:
    """The gate's evidence provider: the Evidence of `ref` for `env`, every claim re-verified."""
    v = verify_release(cfg, ref, env, ledger=False)
    assert v.evidence is not None
    return v.evidence


def verify_release(
    cfg: Config,
    ref: Reference | str,
    env: str | None = None,
    *,
    ledger: bool = True,
    now: Clock | None = None,
) -> Verification:
    """Every claim about the digest, as a checklist (`Verification.checks`) and Evidence.
    With an environment that has `after` (and `ledger`), the environment chain's claims
    too (`release.claims.chain`, at `now()`: default the real time)."""
    from release.errors import NotFound
    from release.image.inspect import open_image
    from release.image.registry import open_registry

    if isinstance(ref, str):
        ref = parse_reference(ref)
    repo_ref = ref.repository or cfg.image.registry
    registry = open_registry(repo_ref, cfg.root)
    v = Verification(ref, registry.name, env or "")
    try:
        image = open_image(registry, ref.digest)
    except RemoteError:
        raise
    except NotFound as exc:  # not there: a failed claim
        v.add("image", False, exc.message)
        v.evidence = assemble_evidence(cfg, v, None, None, None)
        return v
    except UsageError:  # a broken layout, an index given for an image: bad input (exit 2)
        raise
    except ReleaseError as exc:
        v.add("image", False, exc.message)
        v.evidence = assemble_evidence(cfg, v, None, None, None)
        return v
    try:
        merged = merged_view(cfg, image)
    except RemoteError:
        raise
    except ReleaseError as exc:
        v.add("image", False, exc.message)
        v.evidence = assemble_evidence(cfg, v, None, None, None)
        return v
    v.add("image", True, f"{len(image.layers)} layers, every blob matches its digest")
    v.labels = image.labels
    v.functions = image.functions

    model_claim = check_model_layer(cfg, v, merged, image)
    policy = policy_from_config(cfg.signing, cfg.root)  # once: a KMS key is fetched once
    v.promotions = verify_all_stored(registry, ref.digest, PROMOTION, policy)
    # canary reports of either version (a version 1 report is read as version 2)
    canaries = [
        vs for t in CANARY_TYPES for vs in verify_all_stored(registry, ref.digest, t, policy)
    ]
    for name, pt in ALL_PREDICATES.items():
        # the model signature is model-signing's: about the image's model directory (its
        # root digest: the lock's, with the runtime model in place of the source it replaces)
        model = shipped(v.lock).digest if name == "model" and v.lock is not None else None
        att = verify_attestation(registry, ref, name, pt, policy, model)
        if name == "canary" and not att.present:
            att = verify_attestation(registry, ref, name, CANARY_V1, policy, model)
            if not att.present:
                att = verify_attestation(registry, ref, name, pt, policy, model)
        v.attestations[name] = att
        if name == "promotion" and not att.present:
            continue  # written at promote time; absent before the first promotion
        v.add(
            f"attestation {name}",
            att.ok,
            (f"signed by {att.signer}" + (f" ({att.issuer})" if att.issuer else ""))
            if att.ok
            else att.reason,
        )
    sbom_claim = check_sbom(v, merged)
    prov_claim = check_provenance(cfg, v)
    canary_claim = check_canary(cfg, v, canaries)
    chain = None
    if ledger:
        events = check_ledger(cfg, v)
        if events is not None:
            check_promotion(v, events)
        if env and cfg.environment(env).after is not None:
            from release.claims.chain import check_chain  # an environment chain's claims only

            chain = check_chain(
                cfg, ref.digest, env, statements=v.promotions, registry=registry, now=now
            )
            for name, claim in chain.parts().items():
                v.add(f"chain {name}", claim.ok, claim.reason)
    v.evidence = assemble_evidence(cfg, v, model_claim, sbom_claim, prov_claim, canary_claim)
    if chain is not None:
        v.evidence = v.evidence.model_copy(update={"chain": chain})
    return v


def vulnerability_check(cfg: Config, v: Verification) -> VulnerabilityClaim:
    """The gate's vulnerability claim for the digest (`[gate].vulnerabilities`)."""
    from release.gate import vulnerability_claim

    claim: VulnerabilityClaim = vulnerability_claim(cfg, v.reference, v.repository)
    return claim


def assemble_evidence(
    cfg: Config,
    v: Verification,
    model: ModelLayerClaim | None,
    sbom: SbomClaim | None,
    prov: ProvenanceClaim | None,
    canary: CanaryClaim | None = None,
) -> Evidence:
    """The gate's Evidence from the claims checked so far (a claim not reached is a
    failed one: "not checked"), with the vulnerability claim added."""
    sigs = {}
    for name in PREDICATES:
        att = v.attestations.get(name)
        sigs[name] = (
            att.signature()
            if att
            else Signature(
                ok=False, reason="not checked", predicate_type=PREDICATES[name], present=False
            )
        )
    vuln = vulnerability_check(cfg, v)
    if vuln.configured:
        v.add(
            "vulnerabilities",
            vuln.ok,
            vuln.reason or f"{vuln.critical} critical, {vuln.high} high ({vuln.source})",
        )
    return Evidence(
        digest=v.digest,
        repository=v.repository,
        env=v.env,
        signatures=sigs,
        sbom=sbom
        or SbomClaim(
            ok=False,
            reason="not checked",
            present=False,
            subject_ok=False,
            model_files_match_lock=False,
        ),
        provenance=prov or ProvenanceClaim(ok=False, reason="not checked"),
        model_layer=model or ModelLayerClaim(ok=False, reason="not checked"),
        canary=canary or CanaryClaim(ok=False, reason="not checked", passed=False),
        vulnerabilities=vuln,
    )


__all__ = [
    "Attestation",
    "LedgerCheck",
    "Verification",
    "collect",
    "merged_view",
    "verify_ledger",
    "verify_release",
]
