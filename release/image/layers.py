"""Reproducible layers: normalised tar streams, block-parallel gzip, a layer cache.

A layer is a list of `Entry` (archive path, kind, mode, source) written as a PAX tar in
sorted path order with a fixed mtime, uid/gid 0, empty user/group names, normalised
modes (directories 0755, files 0644 or 0755 when any execute bit was set) and no
extended attributes. The tar stream is compressed as it is written by `GzipWriter`:
1 MiB blocks deflated in parallel (each primed with the previous block's last 32 KiB,
as pigz does), joined into one gzip member with a fixed header (mtime 0, no name). The
output depends only on the bytes and the level, never on the number of threads.

`LayerCache` keeps finished layers by a key the caller derives from the layer's inputs
(the requirements lock digest, the model lock digest, ...): an unchanged model is not
re-tarred or re-compressed. A cached blob is re-hashed before it is used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from release._io import CHUNK, HashingReader, atomic_write_bytes, hash_file
from release.digest import Digest
from release.errors import VerificationFailed

BLOCK = 1 << 20
WINDOW = 32 * 1024
LEVEL = 6
#: bumped whenever the layer format changes, so old cache entries are not reused
FORMAT = "release-layer-v1"
#: gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS "unknown"
_GZ_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def compress_pool() -> ThreadPoolExecutor:
    """One process-wide pool for deflate blocks (zlib releases the GIL)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="gzip")
        return _pool


def _deflate(block: bytes, zdict: bytes, last: bool, level: int) -> bytes:
    if zdict:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict)
    else:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY)
    return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class GzipWriter(io.RawIOBase):
    """A write-only stream: bytes in, one gzip member out to `out`; hashes both sides."""

    def __init__(self, out: BinaryIO, *, level: int = LEVEL) -> None:
        super().__init__()
        self._out = out
        self._level = level
        self._pool = compress_pool()
        self._buf = bytearray()
        self._prev_tail = b""
        self._pending: deque[Future[bytes]] = deque()
        self._crc = 0
        self.size = 0  # uncompressed bytes
        self.csize = 0  # compressed bytes
        self._diff = hashlib.sha256()
        self._comp = hashlib.sha256()
        self._emit(_GZ_HEADER)
        self._max_pending = 2 * max(2, os.cpu_count() or 2)

    def writable(self) -> bool:
        return True

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self._comp.update(data)
        self.csize += len(data)

    def _drain(self, limit: int) -> None:
        while len(self._pending) > limit:
            self._emit(self._pending.popleft().result())

    def _submit(self, block: bytes, last: bool) -> None:
        self._pending.append(self._pool.submit(_deflate, block, self._prev_tail, last, self._level))
        self._prev_tail = block[-WINDOW:]
        self._drain(self._max_pending)

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        b = bytes(data)
        self._diff.update(b)
        self._crc = zlib.crc32(b, self._crc)
        self.size += len(b)
        self._buf += b
        while len(self._buf) >= BLOCK:
            block = bytes(self._buf[:BLOCK])
            del self._buf[:BLOCK]
            self._submit(block, False)
        return len(b)

    def finish(self) -> tuple[Digest, Digest]:
        """Flush everything; (compressed digest, uncompressed digest = diff_id)."""
        self._submit(bytes(self._buf), True)
        self._buf.clear()
        self._drain(0)
        self._emit(self._crc.to_bytes(4, "little") + (self.size & 0xFFFFFFFF).to_bytes(4, "little"))
        return (
            Digest("sha256:" + self._comp.hexdigest()),
            Digest("sha256:" + self._diff.hexdigest()),
        )


# --- entries ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One archive member. `source` is a file to copy, or `data` its bytes; `sha256`,
    when set, is checked against the bytes as they are written."""

    path: str  # relative, no leading slash
    kind: str  # "dir" | "file" | "symlink"
    mode: int = 0o644
    source: Path | None = None
    data: bytes | None = None
    size: int = 0
    link: str = ""
    sha256: str | None = None


def normal_mode(st_mode: int, is_dir: bool) -> int:
    if is_dir:
        return 0o755
    return 0o755 if st_mode & 0o111 else 0o644


def parents(path: str) -> list[str]:
    parts = PurePosixPath(path).parts
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """Entries plus a 0755 directory for every missing ancestor, sorted by path."""
    by_path: dict[str, Entry] = {}
    for e in entries:
        by_path[e.path] = e
        for p in parents(e.path):
            by_path.setdefault(p, Entry(p, "dir", 0o755))
    return [by_path[k] for k in sorted(by_path, key=lambda p: PurePosixPath(p).parts)]


def tree_entries(
    src: Path, prefix: str, *, skip: Callable[[str], bool] | None = None
) -> list[Entry]:
    """Every directory, regular file and symlink under `src`, mapped under `prefix`."""
    out: list[Entry] = [Entry(prefix, "dir", 0o755)]
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(src).as_posix()
        for name in list(dirnames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            full = Path(dirpath, name)
            if skip is not None and skip(rel):
                dirnames.remove(name)
                continue
            if full.is_symlink():
                out.append(Entry(f"{prefix}/{rel}", "symlink", 0o777, link=os.readlink(full)))
                dirnames.remove(name)
                continue
            out.append(Entry(f"{prefix}/{rel}", "dir", 0o755))
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if skip is not None and skip(rel):
                continue
            full = Path(dirpath, name)
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                out.append(Entry(f"{prefix}/{rel}", "symlink", 0o777, link=os.readlink(full)))
            elif stat.S_ISREG(st.st_mode):
                out.append(
                    Entry(
                        f"{prefix}/{rel}",
                        "file",
                        normal_mode(st.st_mode, False),
                        source=full,
                        size=st.st_size,
                    )
                )
    return out


def _tarinfo(e: Entry, mtime: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(e.path + ("/" if e.kind == "dir" else ""))
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.mode = e.mode
    if e.kind == "dir":
        ti.type = tarfile.DIRTYPE
    elif e.kind == "symlink":
        ti.type = tarfile.SYMTYPE
        ti.linkname = e.link
    else:
        ti.type = tarfile.REGTYPE
        ti.size = len(e.data) if e.data is not None else e.size
    return ti


def write_tar(entries: list[Entry], mtime: int, out: BinaryIO) -> None:
    """The reproducible tar of `entries` (already sorted) to `out`."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti = _tarinfo(e, mtime)
            if e.kind != "file":
                tf.addfile(ti)
            elif e.data is not None:
                tf.addfile(ti, io.BytesIO(e.data))
            else:
                assert e.source is not None
                with open(e.source, "rb") as f:
                    r = HashingReader(f)
                    try:
                        tf.addfile(ti, r)  # type: ignore[arg-type,unused-ignore]
                    except tarfile.ReadError:
                        raise VerificationFailed(
                            f"{e.source} changed size while it was being packed"
                        ) from None
                    if r.n != ti.size:
                        raise VerificationFailed(f"{e.source} changed size while it was packed")
                    if e.sha256 is not None and r.h.hexdigest() != e.sha256:
                        raise VerificationFailed(
                            f"{e.path}: sha256 {r.h.hexdigest()}, the lock says {e.sha256} "
                            f"(source {e.source} is corrupt); nothing was built"
                        )


# --- the layer cache ----------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """A finished, compressed layer blob on disk."""

    role: str
    digest: Digest  # of the gzip blob
    diff_id: Digest  # of the uncompressed tar
    size: int  # compressed
    usize: int  # uncompressed
    path: Path
    cached: bool = False

    def meta(self) -> dict[str, object]:
        return {
            "role": self.role,
            "digest": self.digest,
            "diff_id": self.diff_id,
            "size": self.size,
            "usize": self.usize,
        }


class LayerCache:
    """`<root>/layers/keys/<key>.json` -> `<root>/layers/blobs/<hex>`; blobs are written
    through a temp file and renamed once complete."""

    def __init__(self, root: Path) -> None:
        self.root = root / "layers"
        self.keys = self.root / "keys"
        self.blobs = self.root / "blobs"
        self.tmp = self.root / "tmp"

    def _ensure(self) -> None:
        for d in (self.keys, self.blobs, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def blob(self, digest: str) -> Path:
        return self.blobs / digest.removeprefix("sha256:")

    def lookup(self, key: str) -> Layer | None:
        """The cached layer for `key`, its blob re-hashed; a corrupt blob is dropped."""
        try:
            meta = json.loads((self.keys / f"{key}.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        path = self.blob(meta["digest"])
        if not path.is_file():
            return None
        size, sha, _ = hash_file(path)
        if "sha256:" + sha != meta["digest"] or size != meta["size"]:
            path.unlink(missing_ok=True)
            return None
        return Layer(
            meta["role"],
            Digest(meta["digest"]),
            Digest(meta["diff_id"]),
            int(meta["size"]),
            int(meta["usize"]),
            path,
            cached=True,
        )

    def build(
        self, key: str | None, role: str, entries: list[Entry], mtime: int, *, level: int = LEVEL
    ) -> Layer:
        """Tar + compress `entries` into the cache (recorded under `key` when given, which
        must name `level` when it is not LEVEL)."""
        self._ensure()
        tmp = self.tmp / f"{role}-{os.getpid()}-{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as raw:
                gz = GzipWriter(raw, level=level)
                write_tar(entries, mtime, gz)  # type: ignore[arg-type]
                digest, diff_id = gz.finish()
            layer = Layer(role, digest, diff_id, gz.csize, gz.size, self.blob(digest))
            os.replace(tmp, layer.path)
        finally:
            tmp.unlink(missing_ok=True)
        if key is not None:
            atomic_write_bytes(self.keys / f"{key}.json", json.dumps(layer.meta()).encode())
        return layer

    def usize_of(self, digest: str) -> int | None:
        try:
            return int(
                json.loads(
                    (self.keys / f"usize-{digest.removeprefix('sha256:')}.json").read_bytes()
                )
            )
        except (FileNotFoundError, ValueError):
            return None

    def remember_usize(self, digest: str, usize: int) -> None:
        self._ensure()
        atomic_write_bytes(
            self.keys / f"usize-{digest.removeprefix('sha256:')}.json", str(usize).encode()
        )


def gunzip_size(path: Path) -> int:
    """Uncompressed size of a gzip file (streamed)."""
    d = zlib.decompressobj(31)
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            n += len(d.decompress(chunk))
            while d.unused_data:  # concatenated members
                rest = d.unused_data
                d = zlib.decompressobj(31)
                n += len(d.decompress(rest))
    n += len(d.flush())
    return n


def key_of(*parts: str) -> str:
    h = hashlib.sha256(FORMAT.encode())
    for p in parts:
        h.update(b"\0" + p.encode())
    return h.hexdigest()
