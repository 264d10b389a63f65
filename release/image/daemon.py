"""`docker-daemon:` base images: an image in the local Docker engine, pinned by its image ID.

    docker-daemon:NAME@sha256:<image id>     NAME must resolve to exactly that image
    docker-daemon:sha256:<image id>

The image ID is the sha256 of the image config, so the pin is content-addressed like any
digest; a bare `docker-daemon:NAME` is refused (exit 2) - names move, as tags do.
`docker image inspect --format '{{.Id}}' NAME` prints the ID to pin.

The image is exported once (`docker save`, through the docker SDK and `DOCKER_HOST`),
its config checked against the ID and every layer against the config's `diff_ids`, each
layer gzip-compressed reproducibly, and the result kept as an OCI layout in the cache
(`$RELEASE_CACHE_DIR/docker-daemon/<id>`): the build then reads it like any `oci:` base.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

from release.digest import Digest, is_digest, parse_digest
from release.errors import NotADigest, UsageError, VerificationFailed
from release.image import engine
from release.image.layers import GzipWriter
from release.image.layout import LayoutRegistry
from release.image.oci import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ImageRef,
    canonical,
    digest_of,
)

PREFIX = "docker-daemon:"
TAG = "base"


def is_daemon_ref(value: str) -> bool:
    return value.startswith(PREFIX)


def parse_daemon_ref(value: str) -> tuple[str | None, Digest]:
    """`docker-daemon:NAME@sha256:ID` or `docker-daemon:sha256:ID` -> (NAME or None, ID)."""
    rest = value[len(PREFIX) :]
    if is_digest(rest):
        return None, Digest(rest)
    name, sep, dig = rest.rpartition("@")
    if sep and name and is_digest(dig):
        return name, Digest(dig)
    raise NotADigest(
        f"base image {value!r} is not pinned: give docker-daemon:NAME@sha256:<image id> "
        "(docker image inspect --format '{{.Id}}' NAME prints it)"
    )


def materialize(value: str, cache_root: Path) -> ImageRef:
    """The daemon image as an OCI layout in the cache; `oci:DIR@sha256:<manifest>`."""
    name, image_id = parse_daemon_ref(value)
    dest = cache_root / "docker-daemon" / image_id.removeprefix("sha256:")
    if (dest / "index.json").is_file():
        reg = LayoutRegistry(dest, f"oci:{dest}")
        tagged = reg.tags().get(TAG)
        if tagged is not None:
            return ImageRef(f"oci:{dest}", tagged)
    import docker.errors

    client = engine.client()
    try:
        image = client.images.get(name or image_id)
    except docker.errors.ImageNotFound:
        raise UsageError(
            f"base image {value!r}: {name or image_id} is not in the Docker engine"
        ) from None
    except docker.errors.DockerException as exc:
        from release.errors import RemoteError

        raise RemoteError(f"Docker engine: lookup of {name or image_id} failed: {exc}") from None
    if image.id != image_id:
        raise VerificationFailed(
            f"base image docker-daemon:{name} is {image.id} in the engine, not the pinned {image_id}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=dest.parent))
    try:
        archive = staging / "image.tar"
        with open(archive, "wb") as f:
            for chunk in engine.call("save of the base", image.save, named=False):
                f.write(chunk)
        layout = staging / "layout"
        manifest_digest = _convert(archive, layout, image_id)
        archive.unlink()
        if dest.exists():
            shutil.rmtree(dest)
        layout.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ImageRef(f"oci:{dest}", manifest_digest)


def _convert(archive: Path, layout: Path, image_id: Digest) -> Digest:
    """A `docker save` archive (legacy or OCI flavour) -> OCI layout with gzip layers."""
    reg = LayoutRegistry(layout, f"oci:{layout}")
    with tarfile.open(archive, "r:") as tf:
        try:
            entries = json.loads(_read(tf, "manifest.json"))
        except KeyError:
            raise VerificationFailed("docker save output has no manifest.json") from None
        if len(entries) != 1:
            raise VerificationFailed(f"docker save output holds {len(entries)} images, expected 1")
        entry = entries[0]
        config = _read(tf, entry["Config"])
        if digest_of(config) != image_id:
            raise VerificationFailed(
                f"the engine exported config {digest_of(config)}, not image {image_id}"
            )
        diff_ids = [parse_digest(d) for d in json.loads(config)["rootfs"]["diff_ids"]]
        if len(diff_ids) != len(entry["Layers"]):
            raise VerificationFailed(
                "docker save output: layer count differs from the config's diff_ids"
            )
        layers = []
        for path, want in zip(entry["Layers"], diff_ids, strict=True):
            member = tf.extractfile(path)
            if member is None:
                raise VerificationFailed(f"docker save output: layer {path} missing")
            layers.append(_gzip_layer(member, reg, want))
    reg.put_blob(config, digest_of(config))
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": d, "size": n} for d, n in layers],
        }
    )
    return reg.put_manifest(manifest, OCI_MANIFEST, tag=TAG)


def _read(tf: tarfile.TarFile, name: str) -> bytes:
    f = tf.extractfile(name)
    if f is None:
        raise KeyError(name)
    return f.read()


def _gzip_layer(src: IO[bytes], reg: LayoutRegistry, diff_id: Digest) -> tuple[Digest, int]:
    """Compress one layer (it may already be gzip) and check its uncompressed digest."""
    head = src.read(2)
    stream: Any = src
    if head == b"\x1f\x8b":
        src.seek(0)
        stream = gzip.GzipFile(fileobj=src)
        head = b""
    reg.path.mkdir(parents=True, exist_ok=True)
    fd, tmpname = tempfile.mkstemp(prefix=".layer.", dir=reg.path)
    tmp = Path(tmpname)
    try:
        with open(fd, "wb") as raw:
            gz = GzipWriter(raw)
            if head:
                gz.write(head)
            while chunk := stream.read(1 << 20):
                gz.write(chunk)
            digest, got = gz.finish()
        if got != diff_id:
            raise VerificationFailed(f"exported layer has diff_id {got}, the config says {diff_id}")
        size = tmp.stat().st_size
        reg.put_blob(tmp, digest)
    finally:
        tmp.unlink(missing_ok=True)
    return digest, size
