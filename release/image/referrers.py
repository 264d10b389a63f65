"""Referrers: artifacts (signatures, attestations) attached to an image by its digest.

An artifact is an OCI 1.1 image manifest with `artifactType` and `subject`. A registry
with the OCI 1.1 Referrers API lists it by itself; everywhere else (distribution 2.8, an
OCI layout) it is recorded in the fallback tag `sha256-<hex>` of the subject, an image
index of referrer descriptors. `attach` is the one attach path of every backend.
"""

from __future__ import annotations

from typing import Any, Protocol

from release.digest import Digest, parse_digest
from release.errors import VerificationFailed
from release.image.oci import (
    EMPTY_DIGEST,
    EMPTY_JSON,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    TITLE,
    canonical,
    digest_of,
    field,
    json_object,
)


class ArtifactStore(Protocol):
    """What `attach` needs of a backend (both `LayoutRegistry` and `DistributionRegistry`)."""

    def get_manifest(self, digest: Digest) -> tuple[bytes, str]: ...

    def put_blob(self, data: bytes, digest: Digest) -> None: ...

    def put_referrer(self, manifest: bytes, subject: Digest, desc: dict[str, Any]) -> Digest:
        """Store the artifact manifest and make it listed among `subject`'s referrers."""
        ...


def attach(
    store: ArtifactStore,
    subject_digest: Digest,
    artifact_type: str,
    payload: bytes,
    payload_media_type: str,
    annotations: dict[str, str],
) -> Digest:
    """Attach `payload` to the image `subject_digest` (which must be in `store`) as an
    artifact; returns the artifact manifest's digest."""
    subj_bytes, subj_type = store.get_manifest(parse_digest(subject_digest))
    subject = {"mediaType": subj_type, "digest": subject_digest, "size": len(subj_bytes)}
    manifest = artifact_manifest(subject, artifact_type, payload, payload_media_type, annotations)
    store.put_blob(EMPTY_JSON, EMPTY_DIGEST)
    store.put_blob(payload, digest_of(payload))
    desc = referrer_descriptor(manifest, artifact_type, annotations)
    return store.put_referrer(manifest, subject_digest, desc)


def artifact_manifest(
    subject: dict[str, Any],
    artifact_type: str,
    payload: bytes,
    payload_media_type: str,
    annotations: dict[str, str],
) -> bytes:
    """An OCI 1.1 artifact manifest (image manifest with artifactType and subject)."""
    layer: dict[str, Any] = {
        "mediaType": payload_media_type,
        "digest": digest_of(payload),
        "size": len(payload),
    }
    if payload_media_type.startswith("application/vnd.dev.sigstore.bundle"):
        # the file name cosign gives a bundle layer (oras pulls it under this name)
        layer["annotations"] = {TITLE: digest_of(payload).replace(":", "-") + ".sigstore.json"}
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": len(EMPTY_JSON)},
        "layers": [layer],
        "subject": subject,
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical(doc)


def referrer_descriptor(
    manifest: bytes, artifact_type: str, annotations: dict[str, str]
) -> dict[str, Any]:
    """The descriptor of an artifact manifest as a referrers index lists it."""
    d: dict[str, Any] = {
        "mediaType": OCI_MANIFEST,
        "digest": digest_of(manifest),
        "size": len(manifest),
        "artifactType": artifact_type,
    }
    if annotations:
        d["annotations"] = dict(annotations)
    return d


def is_artifact(manifest: bytes) -> bool:
    """A referrer (artifact manifest with a subject); garbage is not one."""
    try:
        doc = json_object(manifest, "manifest")
    except VerificationFailed:
        return False
    return "subject" in doc


def index_manifests(data: bytes, what: str) -> list[dict[str, Any]]:
    """The `manifests` of an OCI index (referrers index, image index), each a descriptor
    object; garbage, a wrong JSON type or a missing field -> VerificationFailed naming it."""
    doc = json_object(data, what)
    manifests = field(doc, "manifests", list, what, required=False) or []
    for i, m in enumerate(manifests):
        field(m, "digest", Digest, f"{what} manifests[{i}]")
    return list(manifests)


def listed(index: bytes, what: str, artifact_type: str | None) -> list[dict[str, Any]]:
    """The referrer descriptors of a referrers index, only `artifact_type` when given."""
    descs = index_manifests(index, what)
    if artifact_type is None:
        return descs
    return [d for d in descs if d.get("artifactType") == artifact_type]


def merge_index(old: bytes | None, desc: dict[str, Any]) -> bytes:
    """The fallback referrers index `old` (None: none yet) with `desc` added (replacing an
    entry of the same digest)."""
    manifests: list[dict[str, Any]] = []
    if old is not None:
        manifests = index_manifests(old, "the referrers index")
    manifests = [m for m in manifests if m.get("digest") != desc["digest"]] + [desc]
    return canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
