"""The OCI image layout backend: a directory with `oci-layout`, `index.json` and
`blobs/sha256/`, created on first write, written under an flock (one writer at a time).

Referrers always use the fallback tag `sha256-<hex>`; an image stored without a tag is
named by `image_ref_name` so skopeo and umoci can select it.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from release._io import atomic_write_bytes
from release.digest import Digest, parse_digest
from release.errors import NotFound, UsageError, VerificationFailed
from release.image import referrers
from release.image.blobs import check_bytes, stream_verified
from release.image.oci import (
    OCI_INDEX,
    REF_NAME,
    canonical,
    digest_of,
    field,
    json_object,
    referrers_tag,
    sniff_media_type,
)


def image_ref_name(digest: Digest) -> str:
    """The `org.opencontainers.image.ref.name` of an image in an OCI layout: the hex of its
    digest (immutable; `sha256-<hex>` is taken by the referrers fallback index, and skopeo
    refuses a `:` in a name): `skopeo inspect oci:DIR:<hex>`."""
    return parse_digest(digest).removeprefix("sha256:")


class LayoutRegistry:
    """An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    # layout plumbing
    def _blob(self, digest: Digest) -> Path:
        return self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def _ensure(self) -> None:
        marker = self.path / "oci-layout"
        if not marker.exists():
            atomic_write_bytes(marker, b'{"imageLayoutVersion":"1.0.0"}')
        if not (self.path / "index.json").exists():
            atomic_write_bytes(
                self.path / "index.json",
                canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
            )
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def _require(self) -> None:
        if not (self.path / "oci-layout").is_file():
            raise NotFound(f"no OCI image layout at {self.path} (registry {self._name})")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure()
        with open(self.path / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _index(self) -> dict[str, Any]:
        p = self.path / "index.json"
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        w = f"{self._name} index.json"
        try:
            doc = json_object(data, w)
            ms = field(doc, "manifests", list, w, required=False) or []
            for i, m in enumerate(ms):
                field(m, "digest", Digest, f"{w} manifests[{i}]")
                ann = field(m, "annotations", dict, f"{w} manifests[{i}]", required=False)
                if ann is not None and not isinstance(ann.get(REF_NAME, ""), str):
                    raise VerificationFailed(f"{w} manifests[{i}]: {REF_NAME!r} is not a string")
                field(m, "mediaType", str, f"{w} manifests[{i}]", required=False)
        except VerificationFailed as exc:
            raise UsageError(f"broken OCI layout: {exc.message}") from None
        return doc

    def _write_index(self, index: dict[str, Any]) -> None:
        atomic_write_bytes(self.path / "index.json", canonical(index))

    def tags(self) -> dict[str, Digest]:
        out: dict[str, Digest] = {}
        for m in self._index().get("manifests", []):
            tag = (m.get("annotations") or {}).get(REF_NAME)
            if tag:
                out[tag] = Digest(m["digest"])
        return out

    # blobs
    def has_blob(self, digest: Digest) -> bool:
        return self._blob(digest).is_file()

    def get_blob(self, digest: Digest) -> bytes:
        self._require()
        try:
            data = self._blob(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in {self._name}") from None
        return check_bytes(data, digest, "blob")

    def blob_path(self, digest: Digest) -> Path:
        """The file of a blob (unverified: readers that hash as they go use this)."""
        p = self._blob(digest)
        if not p.is_file():
            raise NotFound(f"blob {digest} not found in {self._name}")
        return p

    def copy_blob_to(self, digest: Digest, dest: Path) -> Path:
        with open(self.blob_path(digest), "rb") as src:
            return stream_verified(src, digest, dest)

    @contextlib.contextmanager
    def open_blob(self, digest: Digest) -> Iterator[BinaryIO]:
        with open(self.blob_path(digest), "rb") as f:
            yield f

    def put_blob(self, data: bytes | Path, digest: Digest) -> None:
        self._ensure()
        target = self._blob(digest)
        if target.is_file():
            return
        if isinstance(data, bytes):
            check_bytes(data, digest, "blob to store")
            atomic_write_bytes(target, data)
            return
        with open(data, "rb") as src:
            stream_verified(src, digest, target)

    # manifests
    def get_manifest(self, digest: Digest) -> tuple[bytes, str]:
        self._require()
        try:
            data = self._blob(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"manifest {digest} not found in {self._name}") from None
        check_bytes(data, digest, "manifest")
        for m in self._index().get("manifests", []):
            if m.get("digest") == digest and m.get("mediaType"):
                return data, str(m["mediaType"])
        return data, sniff_media_type(data, f"manifest {digest}")

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Digest:
        """Store a manifest and list it in index.json. An image (or image index) stored
        without a tag is named by `image_ref_name` (its digest's hex), so tools that select
        by `org.opencontainers.image.ref.name` (skopeo `oci:DIR:NAME`, umoci `DIR:NAME`)
        find it among its referrers."""
        digest = digest_of(data)
        if tag is None and not referrers.is_artifact(data):
            tag = image_ref_name(digest)
        with self._locked():
            self.put_blob(data, digest)
            self._add_to_index(digest, len(data), media_type, tag)
        return digest

    def _add_to_index(self, digest: Digest, size: int, media_type: str, tag: str | None) -> None:
        index = self._index()
        manifests = list(index.get("manifests", []))
        if tag is not None:
            manifests = [
                m
                for m in manifests
                if (m.get("annotations") or {}).get(REF_NAME) != tag
                and not (m.get("digest") == digest and not m.get("annotations"))
            ]
        elif any(m.get("digest") == digest for m in manifests):
            return
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
        if tag is not None:
            entry["annotations"] = {REF_NAME: tag}
        manifests.append(entry)
        index["manifests"] = manifests
        self._write_index(index)

    # referrers (fallback tag scheme)
    def referrers(self, digest: Digest, artifact_type: str | None = None) -> list[dict[str, Any]]:
        parse_digest(digest)
        if not (self.path / "oci-layout").is_file():
            return []
        tagged = self.tags().get(referrers_tag(digest))
        if tagged is None:
            return []
        data, _ = self.get_manifest(tagged)
        return referrers.listed(data, f"referrers index {tagged} of {digest}", artifact_type)

    def attach(
        self,
        subject_digest: Digest,
        artifact_type: str,
        payload: bytes,
        payload_media_type: str,
        annotations: dict[str, str],
    ) -> Digest:
        return referrers.attach(
            self, subject_digest, artifact_type, payload, payload_media_type, annotations
        )

    def put_referrer(self, manifest: bytes, subject: Digest, desc: dict[str, Any]) -> Digest:
        """The artifact manifest, listed unnamed in index.json, and added to the subject's
        fallback index, all under the layout lock."""
        digest = digest_of(manifest)
        with self._locked():
            self.put_blob(manifest, digest)
            self._add_to_index(digest, len(manifest), str(desc["mediaType"]), None)
            tag = referrers_tag(subject)
            old_digest = self.tags().get(tag)
            old = self._blob(old_digest).read_bytes() if old_digest else None
            index = referrers.merge_index(old, desc)
            self.put_blob(index, digest_of(index))
            self._add_to_index(digest_of(index), len(index), OCI_INDEX, tag)
        return digest
