"""`release base`: a single-layer base image from a rootfs tarball, reproducibly.

The rootfs (e.g. `mmdebstrap --variant=apt --include=python3 --format=tar bookworm
out.tar`) is rewritten as one normalised layer: entries sorted by path, mtimes clamped to
SOURCE_DATE_EPOCH (default: the newest mtime in the tarball, so the same tarball always
gives the same image), user/group names and extended attributes dropped, device nodes
and fifos dropped (the engine creates /dev), ownership and modes kept (setuid tools need
them). The image goes into an OCI layout (tag `latest` there for humans) and its
`oci:DIR@sha256:...` reference is returned.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from release.digest import Digest
from release.errors import UsageError
from release.image.layers import GzipWriter
from release.image.layout import LayoutRegistry
from release.image.oci import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ROLE_ANNOTATION,
    canonical,
    descriptor,
)
from release.image.registry import open_registry

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class BaseImage:
    ref: str  # oci:DIR@sha256:...
    digest: Digest
    layer: Digest
    size: int
    usize: int


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _norm(name: str) -> str:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"rootfs member {name!r} has '..': refusing it")
    return "/".join(parts)


def make_base(rootfs: Path, out: str, root: Path, *, epoch: int | None = None) -> BaseImage:
    """Rootfs tarball -> one-layer image in the layout `out` (`oci:DIR`)."""
    if not out.startswith("oci:"):
        raise UsageError(f"--out {out!r}: give oci:DIR (an OCI layout directory)")
    reg = open_registry(out, root)
    assert isinstance(reg, LayoutRegistry)
    try:
        tf = tarfile.open(rootfs, mode="r:*")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise UsageError(f"--rootfs {rootfs}: not a readable tar archive ({exc})") from None
    with tf:
        members = [m for m in tf.getmembers() if _norm(m.name)]
        if epoch is None:
            env = os.environ.get("SOURCE_DATE_EPOCH")
            epoch = int(env) if env else max((int(m.mtime) for m in members), default=0)
        by_name: dict[str, tarfile.TarInfo] = {}
        for m in members:
            if m.ischr() or m.isblk() or m.isfifo():
                continue
            by_name[_norm(m.name)] = m
        order = sorted(by_name, key=lambda n: PurePosixPath(n).parts)
        # hard links: the first name of a group in sorted order carries the data
        groups: dict[str, list[str]] = {}
        for n in order:
            m = by_name[n]
            if m.islnk():
                target = _norm(m.linkname)
                groups.setdefault(target, [target]).append(n)
        data_of: dict[str, str] = {}  # name -> member whose bytes it has
        link_to: dict[str, str] = {}  # name -> earlier name it hard-links to
        for target, names in groups.items():
            if target not in by_name:
                raise UsageError(f"rootfs hard link to missing {target!r}")
            first = min(names, key=lambda n: PurePosixPath(n).parts)
            data_of[first] = target
            for n in names:
                if n != first:
                    link_to[n] = first
        reg._ensure()
        fd, tmpname = tempfile.mkstemp(prefix=".base.", suffix=".tmp", dir=reg.path)
        os.close(fd)
        tmp = Path(tmpname)
        try:
            with open(tmp, "wb") as raw:
                gz = GzipWriter(raw)
                with tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as w:
                    for n in order:
                        src = by_name[n]
                        if n in data_of:
                            src = by_name[data_of[n]]
                        ti = tarfile.TarInfo(n + ("/" if src.isdir() else ""))
                        ti.mode = src.mode & 0o7777
                        ti.uid, ti.gid = src.uid, src.gid
                        ti.uname = ti.gname = ""
                        ti.mtime = min(int(src.mtime), epoch)
                        if n in link_to:
                            ti.type = tarfile.LNKTYPE
                            ti.linkname = link_to[n]
                            w.addfile(ti)
                        elif src.isreg():
                            ti.type = tarfile.REGTYPE
                            ti.size = src.size
                            w.addfile(ti, tf.extractfile(src))
                        elif src.issym():
                            ti.type = tarfile.SYMTYPE
                            ti.linkname = src.linkname
                            w.addfile(ti)
                        elif src.isdir():
                            ti.type = tarfile.DIRTYPE
                            w.addfile(ti)
                layer, diff_id = gz.finish()
            reg.put_blob(tmp, layer)
        finally:
            tmp.unlink(missing_ok=True)
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": iso(epoch),
            "config": {"Env": [DEFAULT_PATH]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [
                {"created": iso(epoch), "created_by": f"release base --rootfs {rootfs.name}"}
            ],
        }
    )
    cdesc = descriptor(OCI_CONFIG, config)
    reg.put_blob(config, cdesc["digest"])
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": cdesc,
            "layers": [
                {
                    "mediaType": OCI_LAYER_GZIP,
                    "digest": layer,
                    "size": gz.csize,
                    "annotations": {ROLE_ANNOTATION: "base"},
                }
            ],
        }
    )
    digest = reg.put_manifest(manifest, OCI_MANIFEST, tag="latest")
    return BaseImage(f"{out}@{digest}", digest, layer, gz.csize, gz.size)
