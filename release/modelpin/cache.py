"""The content-addressed cache of model files (`blobs/sha256/<hex>`): verified
files in, quarantined on a mismatch.
"""

from __future__ import annotations

import os
from pathlib import Path


def workers() -> int:
    return max(2, os.cpu_count() or 2)


# --- the content-addressed cache ------------------------------------------------------
class Cache:
    """`blobs/sha256/<hex>` under $RELEASE_CACHE_DIR (default ~/.cache/release)."""

    def __init__(self, root: Path | None = None) -> None:
        env = os.environ.get("RELEASE_CACHE_DIR")
        base = root or (
            Path(env)
            if env
            else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "release"
        )
        self.root = base
        self.blobs = base / "blobs" / "sha256"
        self.tmp = base / "tmp"
        self.quarantine = base / "quarantine"

    def ensure(self) -> None:
        for d in (self.blobs, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def blob(self, sha256: str) -> Path:
        return self.blobs / sha256

    def put(self, src: Path, sha256: str) -> Path:
        """Move an already verified file into the cache (atomic)."""
        dst = self.blob(sha256)
        os.chmod(src, 0o444)
        os.replace(src, dst)
        return dst

    def quarantine_blob(self, sha256: str) -> Path:
        self.quarantine.mkdir(parents=True, exist_ok=True)
        dst = self.quarantine / f"{sha256}.{os.getpid()}"
        os.replace(self.blob(sha256), dst)
        return dst
