"""Reading an image by digest: manifest, config, layers with their roles, safe extraction.

`open_image(registry, digest) -> ImageView` (contract 3). Every byte read is verified
against its digest (manifest, config, each layer blob before it is unpacked). Layer
roles come from the manifest layer annotation `dev.release.layer.role` ("base" when a
layer has none). Extraction refuses absolute paths, `..`, links leaving the destination
and device files (VerificationFailed, exit 1) and applies whiteouts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from release._io import CHUNK, hash_file
from release.digest import Digest, parse_digest
from release.errors import UsageError, VerificationFailed
from release.image.oci import (
    FUNCTIONS_LABEL,
    GZIP_LAYERS,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_LAYER_TAR,
    ROLE_ANNOTATION,
)
from release.image.registry import LayoutRegistry, Registry


@dataclass(frozen=True)
class LayerInfo:
    digest: Digest
    size: int
    diff_id: str
    role: str
    media_type: str


@dataclass(frozen=True)
class ImageView:
    """One single-platform image, read and verified."""

    registry: Registry
    digest: Digest
    manifest_bytes: bytes
    media_type: str
    manifest: dict[str, Any]
    config_bytes: bytes
    config: dict[str, Any]
    layers: list[LayerInfo] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})

    @property
    def functions(self) -> dict[str, str]:
        raw = self.labels.get(FUNCTIONS_LABEL)
        if not raw:
            return {}
        try:
            doc = json.loads(raw)
        except ValueError:
            raise VerificationFailed(
                f"image {self.digest}: label {FUNCTIONS_LABEL} is not JSON"
            ) from None
        if not isinstance(doc, dict):
            raise VerificationFailed(f"image {self.digest}: label {FUNCTIONS_LABEL} is not an object")
        return {str(k): str(v) for k, v in doc.items()}

    @property
    def size(self) -> int:
        """Compressed size: manifest + config + layers."""
        return len(self.manifest_bytes) + len(self.config_bytes) + sum(la.size for la in self.layers)

    def layers_with(self, roles: Iterable[str]) -> list[LayerInfo]:
        want = set(roles)
        return [la for la in self.layers if la.role in want]

    @contextlib.contextmanager
    def _tar(self, layer: LayerInfo) -> Iterator[tarfile.TarFile]:
        with local_blob(self.registry, layer.digest) as path, open(path, "rb") as raw:
            if layer.media_type in GZIP_LAYERS:
                mode = "r|gz"
            elif layer.media_type == OCI_LAYER_TAR or layer.media_type.endswith(".tar"):
                mode = "r|"
            else:
                raise UsageError(
                    f"layer {layer.digest} has media type {layer.media_type}: only gzip or "
                    "uncompressed tar layers can be read"
                )
            with tarfile.open(fileobj=raw, mode=mode) as tf:  # type: ignore[call-overload]
                yield tf

    def extract(self, roles: Iterable[str], dest: Path) -> Path:
        """Unpack the layers with these roles, in order, into `dest` (created)."""
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for layer in self.layers_with(roles):
            with self._tar(layer) as tf:
                for member in tf:
                    _extract_member(tf, member, root, layer)
        return dest

    def iter_files(self, role: str) -> Iterator[tuple[str, int, str]]:
        """(absolute image path, size, sha256 hex) of every regular file in the layers
        with `role`, in layer then archive order."""
        for layer in self.layers_with([role]):
            with self._tar(layer) as tf:
                for member in tf:
                    name = _clean_name(member.name, layer)
                    if not member.isfile():
                        continue
                    f = tf.extractfile(member)
                    assert f is not None
                    h = hashlib.sha256()
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                    yield "/" + name, member.size, h.hexdigest()


def open_image(registry: Registry, digest: Digest) -> ImageView:
    """Read and verify a single-platform image; an index is refused (exit 2)."""
    digest = parse_digest(digest)
    data, mt = registry.get_manifest(digest)
    if mt in INDEX_TYPES:
        raise UsageError(
            f"{registry.name}@{digest} is an image index, not one image: give the digest of "
            "the single-platform manifest (Lambda rejects an index)"
        )
    if mt not in MANIFEST_TYPES:
        raise UsageError(f"{registry.name}@{digest} is a {mt}, not an image manifest")
    manifest = json.loads(data)
    cdesc = manifest["config"]
    config_bytes = registry.get_blob(parse_digest(cdesc["digest"]))
    config = json.loads(config_bytes)
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    layers_doc = manifest.get("layers") or []
    if len(diff_ids) != len(layers_doc):
        raise VerificationFailed(
            f"{registry.name}@{digest}: {len(layers_doc)} layers but {len(diff_ids)} diff_ids"
        )
    layers = [
        LayerInfo(
            digest=parse_digest(ld["digest"]),
            size=int(ld["size"]),
            diff_id=diff_ids[i],
            role=(ld.get("annotations") or {}).get(ROLE_ANNOTATION, "base"),
            media_type=ld["mediaType"],
        )
        for i, ld in enumerate(layers_doc)
    ]
    return ImageView(registry, digest, data, mt, manifest, config_bytes, config, layers)


def resolve_platform(registry: Registry, digest: Digest, platform: str) -> Digest:
    """If `digest` is an index, the digest of its `platform` (os/arch) manifest; else itself."""
    data, mt = registry.get_manifest(digest)
    if mt not in INDEX_TYPES:
        return digest
    os_, _, arch = platform.partition("/")
    for m in json.loads(data).get("manifests", []):
        p = m.get("platform") or {}
        if p.get("os") == os_ and p.get("architecture") == arch:
            return parse_digest(m["digest"])
    raise UsageError(f"{registry.name}@{digest} is an index without a {platform} image")


@contextlib.contextmanager
def local_blob(registry: Registry, digest: Digest) -> Iterator[Path]:
    """A verified local file holding the blob (the layout's own file, or a download)."""
    if isinstance(registry, LayoutRegistry):
        path = registry.blob_path(digest)
        _, sha, _ = hash_file(path)
        if "sha256:" + sha != digest:
            raise VerificationFailed(
                f"blob {digest} in {registry.name} has sha256 {sha}: the layout is corrupt"
            )
        yield path
        return
    tmp = Path(tempfile.mkdtemp(prefix="release-blob-"))
    try:
        yield registry.copy_blob_to(digest, tmp / "blob")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _clean_name(name: str, layer: LayerInfo) -> str:
    n = name
    while n.startswith("./"):
        n = n[2:]
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise VerificationFailed(f"layer {layer.digest} has an unsafe path {name!r}: refusing it")
    return "/".join(parts)


def _extract_member(tf: tarfile.TarFile, member: tarfile.TarInfo, root: Path, layer: LayerInfo) -> None:
    name = _clean_name(member.name, layer)
    if not name:
        return
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise VerificationFailed(
            f"layer {layer.digest} has a device or fifo {name!r}: refusing it"
        )
    head, _, base = name.rpartition("/")
    if base.startswith(".wh."):
        parent = root / head
        if base == ".wh..wh..opq":
            if parent.is_dir():
                for child in parent.iterdir():
                    _remove(child)
        else:
            _remove(parent / base[4:])
        return
    member.name = name
    target = root / name
    if target.is_symlink() or (target.exists() and not target.is_dir()) or (
        target.is_dir() and not member.isdir()
    ):
        _remove(target)
    try:
        tf.extract(member, root, set_attrs=True, filter="data")
    except tarfile.FilterError as exc:
        raise VerificationFailed(f"layer {layer.digest}: unsafe entry {name!r}: {exc}") from None


def _remove(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink()
    elif p.is_dir():
        shutil.rmtree(p)


def read_stream(f: IO[bytes]) -> bytes:  # small helper for tests and callers
    return f.read()


__all__ = ["ImageView", "LayerInfo", "local_blob", "open_image", "os", "resolve_platform"]
