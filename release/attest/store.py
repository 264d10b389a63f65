"""Bundles stored with the image: OCI 1.1 referrers (or the `sha256-<hex>` fallback tag).

Each bundle is one artifact manifest whose subject is the image, artifactType
`application/vnd.dev.sigstore.bundle.v0.3+json`, one layer holding the bundle JSON (titled
`sha256-<hex>.sigstore.json`) and the annotations cosign writes,
`dev.sigstore.bundle.content`, `dev.sigstore.bundle.predicateType` and
`org.opencontainers.image.created`, on the manifest and its referrers-index entry - the
layout cosign v3 and `gh attestation verify --bundle-from-oci` read. The registry plumbing (Referrers API or
fallback tag, OCI layout) is the `Registry` `attach`/`referrers` (`release.image.referrers`).

The annotation only selects; the predicate type that counts is the one inside the
signed statement (verify.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from release.attest.bundle import ARTIFACT_TYPE, BUNDLE_MEDIA_TYPE, PREDICATE_ANNOTATION
from release.digest import Digest, parse_digest
from release.errors import VerificationFailed

CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
CREATED_ANNOTATION = "org.opencontainers.image.created"


@dataclass(frozen=True)
class StoredBundle:
    #: the referrer manifest digest (recorded in the ledger as the bundle digest)
    referrer: Digest
    predicate_type: str
    bundle: bytes


def bundle_annotations(
    bundle: bytes, predicate_type: str, created: str | None = None
) -> dict[str, str]:
    """The annotations cosign writes on a bundle referrer (cosign specs/BUNDLE_SPEC.md):
    content kind, predicate type, creation time (RFC 3339, UTC)."""
    import datetime as dt

    from release.attest.bundle import parse_bundle

    kind = "dsse-envelope" if parse_bundle(bundle).kind == "dsse" else "message-signature"
    when = created or dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {
        CONTENT_ANNOTATION: kind,
        PREDICATE_ANNOTATION: predicate_type,
        CREATED_ANNOTATION: when,
    }


def attach_bundle(registry: Any, digest: Digest, bundle: bytes, predicate_type: str) -> Digest:
    return Digest(
        registry.attach(
            parse_digest(digest),
            ARTIFACT_TYPE,
            bundle,
            BUNDLE_MEDIA_TYPE,
            bundle_annotations(bundle, predicate_type),
        )
    )


def fetch_bundles(
    registry: Any, digest: Digest, predicate_type: str | None = None
) -> list[StoredBundle]:
    """Every stored bundle about `digest` (optionally of one predicate type), verified to
    be the bytes its manifest names; newest last (the referrers index order)."""
    from release.image.oci import field, json_object

    out = []
    for desc in registry.referrers(parse_digest(digest), ARTIFACT_TYPE):
        ann = field(desc, "annotations", dict, "referrers index entry", required=False) or {}
        ptype = ann.get(PREDICATE_ANNOTATION, "")
        if predicate_type is not None and ptype != predicate_type:
            continue
        ref = field(desc, "digest", Digest, "referrers index entry")
        what = f"referrer manifest {ref}"
        data, _ = registry.get_manifest(ref)
        manifest = json_object(data, what)
        layers = field(manifest, "layers", list, what)
        if len(layers) != 1:
            raise VerificationFailed(f"referrer {ref} has {len(layers)} layers, expected 1 bundle")
        subject = field(manifest, "subject", dict, what)
        if subject.get("digest") != digest:
            raise VerificationFailed(f"referrer {ref} has another subject than {digest}")
        layer = layers[0] if isinstance(layers[0], dict) else {}
        bundle = registry.get_blob(field(layer, "digest", Digest, f"{what} layer"))
        out.append(StoredBundle(ref, ptype, bundle))
    return out
