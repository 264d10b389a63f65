"""Fetch a pinned model: materialise exactly the locked files from the
content-addressed cache, each verified before it becomes visible.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from release._io import hash_file, staging_dir
from release._progress import NullProgress, Progress
from release.config import Config
from release.errors import RemoteError, UsageError, VerificationFailed
from release.modelpin.cache import Cache, workers
from release.modelpin.lock import LockedFile, ModelLock, check_lock_matches_config, read_lock
from release.modelpin.sources import ModelSource, source_for


@dataclass(frozen=True)
class FetchResult:
    lock: ModelLock
    dest: Path
    cached: int
    downloaded: int


# --- fetch ----------------------------------------------------------------------------
def fetch(
    cfg: Config,
    *,
    dest: Path | None = None,
    offline: bool = False,
    source: ModelSource | None = None,
    cache: Cache | None = None,
    lock: ModelLock | None = None,
    progress: bool = True,
) -> FetchResult:
    """Materialise exactly the locked files at `dest`, each verified before it is visible.

    Cached blobs are re-hashed as they are copied (one read); a corrupt blob is moved to
    the cache's quarantine and the fetch fails with DEST untouched.
    """
    lock = lock or read_lock(cfg.lock_path)
    check_lock_matches_config(cfg, lock)
    cache = cache or Cache()
    cache.ensure()
    dest = (dest or default_model_dir(cfg, lock)).absolute()
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"--dest {dest} exists and is not a directory")
    src: ModelSource | None = source
    prog = Progress("fetch", lock.total_size) if progress else NullProgress()
    counts = {"cached": 0, "downloaded": 0}

    def one(f: LockedFile, staging: Path) -> str | None:
        out = staging / f.path
        out.parent.mkdir(parents=True, exist_ok=True)
        blob = cache.blob(f.sha256)
        if blob.exists():
            size, sha, _ = hash_file(blob, copy_to=out, progress=prog)
            if sha != f.sha256 or size != f.size:
                q = cache.quarantine_blob(f.sha256)
                return (
                    f"{f.path}: cached blob is corrupt (sha256 {sha}, lock says {f.sha256}); "
                    f"moved to {q}"
                )
            counts["cached"] += 1
            return None
        if offline:
            return f"{f.path}: not in the cache and --offline was given"
        nonlocal src
        if src is None:
            src = source_for(cfg)
        fd, tmpname = tempfile.mkstemp(dir=cache.tmp, prefix="fetch-")
        os.close(fd)
        tmp = Path(tmpname)
        try:
            src.download(lock.commit, f.path, tmp)
            size, sha, _ = hash_file(tmp, copy_to=out, progress=prog)
            if sha != f.sha256 or size != f.size:
                return (
                    f"{f.path}: the source served sha256 {sha} ({size} bytes) but the lock "
                    f"says {f.sha256} ({f.size} bytes)"
                )
            cache.put(tmp, sha)
            counts["downloaded"] += 1
            return None
        finally:
            if tmp.exists():
                tmp.unlink()

    with staging_dir(dest) as staging:
        try:
            with ThreadPoolExecutor(workers()) as pool:
                problems = [p for p in pool.map(lambda f: one(f, staging), lock.files) if p]
        finally:
            prog.close()
        offline_miss = [p for p in problems if p.endswith("--offline was given")]
        if offline_miss and len(offline_miss) == len(problems):
            raise RemoteError(
                f"{len(offline_miss)} locked file(s) are not cached and --offline forbids "
                "the network; DEST untouched",
                details=offline_miss,
            )
        if problems:
            raise VerificationFailed(
                f"{len(problems)} file(s) failed verification; {dest} untouched",
                details=problems,
            )
        for p in staging.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        _swap_into_place(staging, dest)
    return FetchResult(lock, dest, counts["cached"], counts["downloaded"])


def default_model_dir(cfg: Config, lock: ModelLock) -> Path:
    return cfg.state_dir / "model" / lock.digest.removeprefix("sha256:")[:16]


def _swap_into_place(staging: Path, dest: Path) -> None:
    """Replace `dest` by the fully verified `staging` directory."""
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(staging, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, dest)
