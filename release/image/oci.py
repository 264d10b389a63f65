"""OCI data model: media types, descriptors, manifests and image references.

Manifests and configs are serialised once (`canonical`) and from then on handled as exact
bytes: re-serialising a manifest changes its digest, so every push, read and signature
works on the bytes, never on a re-dumped dict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from release.digest import Digest, is_digest, parse_digest
from release.errors import NotADigest, VerificationFailed

# --- media types ----------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
GZIP_LAYERS = (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP)

EMPTY_JSON = b"{}"
EMPTY_DIGEST = Digest("sha256:" + hashlib.sha256(EMPTY_JSON).hexdigest())

# --- our annotations and labels (contract 1) -----------------------------------------
ROLE_ANNOTATION = "dev.release.layer.role"
FUNCTIONS_LABEL = "dev.release.functions"
MODEL_LABEL = "dev.release.model"
MODEL_DIGEST_LABEL = "dev.release.model.digest"
REF_NAME = "org.opencontainers.image.ref.name"
TITLE = "org.opencontainers.image.title"
ROLES = ("base", "deps", "model", "policy", "code")
#: where a built image carries its model lock (both builders write it there)
MODEL_LOCK_PATH = "opt/release/model.lock.json"


def canonical(obj: Any) -> bytes:
    """The one serialisation of a manifest/config/index we create: sorted keys, compact."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_of(data: bytes) -> Digest:
    return Digest("sha256:" + hashlib.sha256(data).hexdigest())


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}
    d.update({k: v for k, v in extra.items() if v is not None})
    return d


# --- reading stored documents ----------------------------------------------------------
def json_object(data: bytes, what: str) -> dict[str, Any]:
    """A stored JSON document that must be an object; anything else is a failed check
    (exit 1) naming `what` (e.g. `manifest sha256:...`)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise VerificationFailed(f"{what} is not JSON") from None
    if not isinstance(doc, dict):
        raise VerificationFailed(f"{what} is a JSON {json_type(doc)}, not an object")
    return doc


def json_type(v: Any) -> str:
    """The JSON name of a parsed value's type (`array`, `string`, `null`, ...)."""
    return {
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        dict: "object",
        type(None): "null",
    }.get(type(v), type(v).__name__)


_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer"}


def field(doc: Any, key: str, kind: Any, what: str, *, required: bool = True) -> Any:
    """`doc[key]` checked to be of `kind` (dict, list, str, int, or `Digest` for a
    `sha256:<64 hex>` string); missing or wrong -> VerificationFailed naming `what`."""
    if not isinstance(doc, dict):
        raise VerificationFailed(f"{what} is not a JSON object")
    if key not in doc or doc[key] is None:
        if not required:
            return None
        raise VerificationFailed(f"{what} has no {key!r}")
    v = doc[key]
    if kind is Digest:
        if not isinstance(v, str) or not is_digest(v):
            raise VerificationFailed(f"{what}: {key!r} is not a sha256:<64 hex> digest")
        return Digest(v)
    if (kind is int and isinstance(v, bool)) or not isinstance(v, kind):
        raise VerificationFailed(f"{what}: {key!r} is not {_JSON_NAMES.get(kind, kind.__name__)}")
    return v


def referrers_tag(digest: Digest) -> str:
    """The OCI 1.1 fallback tag under which a subject's referrers index is kept."""
    return digest.replace(":", "-")


def sniff_media_type(data: bytes, what: str = "manifest") -> str:
    """Media type of a manifest whose transport did not say (OCI layout, bad servers)."""
    doc = json_object(data, what)
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


# --- image references ------------------------------------------------------------------
@dataclass(frozen=True)
class ImageRef:
    """`LOCATION@sha256:...` where LOCATION is what `open_registry` takes
    (`oci:DIR`, `HOST[:PORT]/REPO`, an ECR repository)."""

    location: str
    digest: Digest

    def __str__(self) -> str:
        return f"{self.location}@{self.digest}"


def parse_image_ref(value: str, *, what: str = "image") -> ImageRef:
    """Parse `LOCATION@sha256:<hex>`; a tag or a missing digest -> NotADigest (exit 2)."""
    loc, sep, dig = value.rpartition("@")
    if not sep or not loc:
        raise NotADigest(
            f"{what} {value!r} is not pinned by digest: give LOCATION@sha256:<64 hex> "
            "(tags never decide anything)"
        )
    try:
        d = parse_digest(dig)
    except NotADigest:
        raise NotADigest(
            f"{what} {value!r} is not pinned by digest: give LOCATION@sha256:<64 hex> "
            "(tags never decide anything)"
        ) from None
    return ImageRef(loc, d)
