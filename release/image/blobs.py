"""Blob bytes checked against their digest: in memory, or streamed into a file that is
renamed into place only when the bytes are right."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from release._io import CHUNK
from release.digest import Digest
from release.errors import VerificationFailed
from release.image.oci import digest_of


def check_bytes(data: bytes, digest: Digest, what: str) -> bytes:
    """`data` when its sha256 is `digest`, else VerificationFailed naming `what`."""
    got = digest_of(data)
    if got != digest:
        raise VerificationFailed(f"{what} {digest} has sha256 {got}: the store is corrupt or lying")
    return data


def stream_verified(src: BinaryIO, digest: Digest, dest: Path, progress: Any = None) -> Path:
    """Copy `src` to `dest` through a temp file, hashing as it goes; rename only if the
    bytes are `digest`. `progress` (a `release._progress.Progress`) is advanced per chunk."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:16]}.", suffix=".tmp", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
                if progress is not None:
                    progress.advance(len(chunk))
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise VerificationFailed(
                f"blob {digest} has sha256 {got}: the store is corrupt or lying"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return dest
