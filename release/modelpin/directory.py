"""Verify a model directory against the lock: every missing, changed and extra
file, named.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from release._io import hash_file
from release._progress import NullProgress, Progress
from release.config import Config
from release.errors import UsageError, VerificationFailed
from release.modelpin.cache import workers
from release.modelpin.lock import ModelLock, path_key, read_lock


@dataclass(frozen=True)
class VerifyResult:
    dir: Path
    lock: ModelLock
    missing: list[str] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    def problems(self) -> list[str]:
        return (
            [f"missing: {p}" for p in self.missing]
            + [f"changed: {p} ({why})" for p, why in self.changed]
            + [f"extra: {p}" for p in self.extra]
        )


# --- verify ---------------------------------------------------------------------------
def verify_dir(directory: Path, lock: ModelLock, *, progress: bool = True) -> VerifyResult:
    """Every missing, changed and extra file of `directory` against the lock (each file
    read once; files of the wrong size are not hashed)."""
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    present: dict[str, Path] = {}
    odd: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=False):
        for name in list(dirnames):
            full = Path(dirpath, name)
            if full.is_symlink():
                odd.append((full.relative_to(directory).as_posix(), "symlink, not allowed"))
                dirnames.remove(name)
        for fn in filenames:
            full = Path(dirpath, fn)
            rel = full.relative_to(directory).as_posix()
            present[rel] = full
    locked = lock.by_path()
    missing = sorted((p for p in locked if p not in present), key=path_key)
    extra = sorted((p for p in present if p not in locked), key=path_key)
    to_hash = []
    changed = list(odd)
    for p, lf in locked.items():
        if p not in present:
            continue
        full = present[p]
        if full.is_symlink() or not full.is_file():
            changed.append((p, "not a regular file"))
            continue
        size = full.stat().st_size
        if size != lf.size:
            changed.append((p, f"size {size}, lock says {lf.size}"))
            continue
        to_hash.append((p, full, lf))
    prog = Progress("verify", sum(lf.size for _, _, lf in to_hash)) if progress else NullProgress()
    try:
        with ThreadPoolExecutor(workers()) as pool:
            hashes = list(pool.map(lambda t: hash_file(t[1], progress=prog)[1], to_hash))
    finally:
        prog.close()
    for (p, _, lf), sha in zip(to_hash, hashes, strict=True):
        if sha != lf.sha256:
            changed.append((p, f"sha256 {sha}, lock says {lf.sha256}"))
    changed.sort(key=lambda t: path_key(t[0]))
    return VerifyResult(directory, lock, missing, changed, extra)


def verify(cfg: Config, directory: Path, *, progress: bool = True) -> VerifyResult:
    """`release model verify DIR`: raise VerificationFailed listing every problem."""
    lock = read_lock(cfg.lock_path)
    result = verify_dir(directory, lock, progress=progress)
    if not result.ok:
        n = len(result.problems())
        raise VerificationFailed(
            f"{directory} does not match {cfg.lock_path.name}: {n} problem(s)",
            details=result.problems(),
        )
    return result
