"""Small file helpers: atomic writes, canonical JSON, and hashing at disk speed.

Nothing is ever half-written: every file goes to a temporary sibling first and is renamed
into place (`os.replace` is atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 4 * 1024 * 1024


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def dumps_json(obj: Any) -> str:
    """Stable, human-diffable JSON (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def canonical_json(obj: Any) -> bytes:
    """Compact canonical bytes (sorted keys, no spaces) for hashing and signing."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, dumps_json(obj).encode())


@contextlib.contextmanager
def staging_dir(beside: Path) -> Iterator[Path]:
    """A temporary directory next to `beside` (same filesystem, so renames are atomic);
    removed on exit unless it was renamed away."""
    import shutil

    beside.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{beside.name}.", suffix=".staging", dir=beside.parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, progress: Any = None) -> str:
    return hash_file(path, progress=progress)[1]


def hash_file(
    path: Path,
    *,
    git_blob: bool = False,
    copy_to: Path | None = None,
    progress: Any = None,
) -> tuple[int, str, str | None]:
    """Read `path` once: (size, sha256 hex, git blob sha1 hex or None).

    With `copy_to`, the exact bytes hashed are also written there, so a copy is verified
    by the same read that produced it. hashlib releases the GIL on large updates, so
    calling this from several threads hashes several files in parallel.
    """
    h = hashlib.sha256()
    size = path.stat().st_size
    g = None
    if git_blob:
        g = hashlib.sha1(usedforsecurity=False)
        g.update(b"blob %d\0" % size)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    out = open(copy_to, "wb") if copy_to is not None else None  # noqa: SIM115
    try:
        with open(path, "rb", buffering=0) as f:
            read = 0
            while n := f.readinto(buf):
                chunk = view[:n]
                h.update(chunk)
                if g is not None:
                    g.update(chunk)
                if out is not None:
                    out.write(chunk)
                read += n
                if progress is not None:
                    progress.advance(n)
    finally:
        if out is not None:
            out.close()
    if read != size:
        size = read
        if g is not None:  # file changed size under us: blob header was wrong
            g = hashlib.sha1(usedforsecurity=False)
            g.update(b"blob %d\0" % size)
            return size, h.hexdigest(), None
    return size, h.hexdigest(), g.hexdigest() if g is not None else None


class HashingReader:
    """Reads `f`, hashing (sha256) and counting every byte handed out: the bytes a tar
    reader parses are the bytes that are hashed, in one read."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.h = hashlib.sha256()
        self.n = 0

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        self.h.update(b)
        self.n += len(b)
        return b

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        readinto = getattr(self._f, "readinto", None)
        if readinto is None:
            b = self.read(len(view))
            view[: len(b)] = b
            return len(b)
        n = readinto(view) or 0  # straight into the caller's buffer, hashed there
        self.h.update(view[:n])
        self.n += n
        return n

    def drain(self) -> None:
        """Read to the end (tar stops at its end-of-archive marker; the digest covers all)."""
        while self.read(CHUNK):
            pass
