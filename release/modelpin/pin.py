"""Pin a model: resolve `[model].revision` to an immutable commit, download the
selected files, hash every byte, cross-check each against the source's own metadata (the
hub's LFS sha256, or the git blob sha1 for non-LFS files) and write the lock atomically.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from release._io import atomic_write_bytes, hash_file
from release._progress import NullProgress, Progress
from release.config import Config, ModelConfig
from release.errors import ConfigError, VerificationFailed
from release.modelpin.cache import Cache, workers
from release.modelpin.lock import (
    LOCK_SCHEMA,
    LockedFile,
    ModelLock,
    check_relpath,
    lock_bytes,
    root_digest,
)
from release.modelpin.sources import ModelSource, RemoteFile, git_tree_id, select, source_for


@dataclass(frozen=True)
class PinResult:
    lock: ModelLock
    lock_path: Path
    changed: bool  # the lock file content changed


# --- pin ------------------------------------------------------------------------------
def pin(
    cfg: Config,
    *,
    revision: str | None = None,
    include: Sequence[str] | None = None,
    source: ModelSource | None = None,
    cache: Cache | None = None,
    progress: bool = True,
) -> PinResult:
    """Resolve, download, hash and cross-check; write the lock only if every file agrees."""
    m: ModelConfig = cfg.model
    src = source or source_for(cfg)
    rev = revision or m.revision
    globs = list(include) if include else m.include
    resolved = src.resolve(rev)
    chosen = select(resolved.files, globs, m.exclude)
    if not chosen:
        raise ConfigError(
            f"[model].include {globs} matches no file of {src.name}@{rev} "
            f"({len(resolved.files)} files there)"
        )
    for f in chosen:
        check_relpath(f.path)
    cache = cache or Cache()
    cache.ensure()
    total = sum(f.size or 0 for f in chosen)
    prog = Progress(f"pin {src.name}", total) if progress else NullProgress()
    commit_for_download = resolved.commit or ""

    def one(f: RemoteFile) -> tuple[LockedFile, str | None, str | None]:
        fd, tmpname = tempfile.mkstemp(dir=cache.tmp, prefix="pin-")
        os.close(fd)
        tmp = Path(tmpname)
        try:
            src.download(commit_for_download, f.path, tmp)
            size, sha, sha1 = hash_file(tmp, git_blob=True, progress=prog)
            problem = None
            if f.size is not None and f.size != size:
                problem = f"{f.path}: size {size} but the source says {f.size}"
            elif f.lfs_sha256 is not None and f.lfs_sha256 != sha:
                problem = f"{f.path}: sha256 {sha} but the hub's LFS metadata says {f.lfs_sha256}"
            elif f.blob_sha1 is not None and f.blob_sha1 != sha1:
                problem = f"{f.path}: git blob {sha1} but the hub says {f.blob_sha1}"
            if problem is None:
                cache.put(tmp, sha)
            return LockedFile(path=f.path, size=size, sha256=sha), sha1, problem
        finally:
            if tmp.exists():
                tmp.unlink()

    try:
        with ThreadPoolExecutor(workers()) as pool:
            results = list(pool.map(one, chosen))
    finally:
        prog.close()
    problems = [p for _, _, p in results if p]
    if problems:
        raise VerificationFailed(
            f"{len(problems)} file(s) of {src.name} disagree with the source's metadata; "
            "no lock written",
            details=problems,
        )
    files = [lf for lf, _, _ in results]
    commit = resolved.commit
    if commit is None:  # local directory: the git tree id of exactly these files
        commit = git_tree_id([(lf.path, sha1 or "") for lf, sha1, _ in results])
    lock = ModelLock(
        schema=LOCK_SCHEMA,
        source=src.kind,
        repo=src.name,
        revision=rev,
        commit=commit,
        files=files,
        digest=root_digest(files),
    )
    path = cfg.lock_path
    before = path.read_bytes() if path.exists() else None
    atomic_write_bytes(path, lock_bytes(lock))
    return PinResult(lock, path, before != path.read_bytes())
