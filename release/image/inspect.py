"""Reading an image by digest: manifest, config, layers with their roles, safe extraction.

`open_image(registry, digest) -> ImageView` (contract 3). Every byte read is verified
against its digest (manifest, config, each layer blob before it is unpacked). Layer
roles come from the manifest layer annotation `dev.release.layer.role` ("base" when a
layer has none). Extraction refuses absolute paths, `..`, links leaving the destination
and device files (VerificationFailed, exit 1) and applies whiteouts.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from release._io import CHUNK, hash_file
from release.digest import Digest, parse_digest
from release.errors import UsageError, VerificationFailed
from release.image.layerscan import clean
from release.image.layout import LayoutRegistry
from release.image.oci import (
    FUNCTIONS_LABEL,
    GZIP_LAYERS,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_LAYER_TAR,
    ROLE_ANNOTATION,
    json_object,
)
from release.image.oci import field as json_field
from release.image.referrers import index_manifests
from release.image.registry import Registry


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
            raise VerificationFailed(
                f"image {self.digest}: label {FUNCTIONS_LABEL} is not an object"
            )
        return {str(k): str(v) for k, v in doc.items()}

    @property
    def size(self) -> int:
        """Compressed size: manifest + config + layers."""
        return (
            len(self.manifest_bytes) + len(self.config_bytes) + sum(la.size for la in self.layers)
        )

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
            try:
                with tarfile.open(fileobj=raw, mode=mode) as tf:  # type: ignore[call-overload]
                    yield tf
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
                kind = "gzip-compressed tar" if mode == "r|gz" else "tar"
                raise VerificationFailed(
                    f"layer {layer.digest} ({layer.role}) is not a readable {kind}: "
                    f"{str(exc) or type(exc).__name__}"
                ) from None

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
    what = f"image manifest {digest}"
    manifest = json_object(data, what)
    cdesc = json_field(manifest, "config", dict, what)
    config_digest = json_field(cdesc, "digest", Digest, f"{what} config")
    config_bytes = registry.get_blob(config_digest)
    cwhat = f"image config {config_digest}"
    config = json_object(config_bytes, cwhat)
    if not isinstance(config.get("config") or {}, dict) or not isinstance(
        (config.get("config") or {}).get("Labels") or {}, dict
    ):
        raise VerificationFailed(f"{cwhat}: config.Labels is not an object")
    rootfs = json_field(config, "rootfs", dict, cwhat)
    diff_ids = json_field(rootfs, "diff_ids", list, f"{cwhat} rootfs")
    layers_doc = json_field(manifest, "layers", list, what)
    if len(diff_ids) != len(layers_doc):
        raise VerificationFailed(
            f"{registry.name}@{digest}: {len(layers_doc)} layers but {len(diff_ids)} diff_ids"
        )
    layers = []
    for i, ld in enumerate(layers_doc):
        lw = f"{what} layers[{i}]"
        ann = json_field(ld, "annotations", dict, lw, required=False) or {}
        role = ann.get(ROLE_ANNOTATION, "base")
        if not isinstance(diff_ids[i], str) or not isinstance(role, str):
            raise VerificationFailed(f"{lw}: diff_id or role is not a string")
        layers.append(
            LayerInfo(
                digest=json_field(ld, "digest", Digest, lw),
                size=json_field(ld, "size", int, lw),
                diff_id=diff_ids[i],
                role=role,
                media_type=json_field(ld, "mediaType", str, lw),
            )
        )
    return ImageView(registry, digest, data, mt, manifest, config_bytes, config, layers)


def resolve_platform(registry: Registry, digest: Digest, platform: str) -> Digest:
    """If `digest` is an index, the digest of its `platform` (os/arch) manifest; else itself."""
    data, mt = registry.get_manifest(digest)
    if mt not in INDEX_TYPES:
        return digest
    os_, _, arch = platform.partition("/")
    for m in index_manifests(data, f"image index {digest}"):
        p: dict[str, Any] = m["platform"] if isinstance(m.get("platform"), dict) else {}
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
    return clean(name, f"layer {layer.digest}")


def _extract_member(
    tf: tarfile.TarFile, member: tarfile.TarInfo, root: Path, layer: LayerInfo
) -> None:
    name = _clean_name(member.name, layer)
    if not name:
        return
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise VerificationFailed(f"layer {layer.digest} has a device or fifo {name!r}: refusing it")
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
    if (
        target.is_symlink()
        or (target.exists() and not target.is_dir())
        or (target.is_dir() and not member.isdir())
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
