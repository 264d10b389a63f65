"""Hash-pin a model: resolve, lock, fetch and verify every file by SHA-256.

Flow (see ARCHITECTURE.md): `pin` resolves `[model].revision` to an immutable commit,
downloads the files selected by `include`/`exclude` at that commit, hashes every byte,
cross-checks each file against the source's own metadata (the hub's LFS sha256, or the
git blob sha1 for non-LFS files) and writes `model/model.lock.json` atomically. `fetch`
materialises exactly the locked files from a content-addressed cache, verifying each
before it becomes visible. `verify` reports every missing, changed and extra file of a
directory.

Per-file digests and the root digest are those of OpenSSF model-signing (file
serialization, sha256): the root is sha256 over the concatenated raw file digests in
path order, so a model signature made later agrees with the lock.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from release._io import atomic_write_bytes, hash_file, staging_dir
from release._progress import NullProgress, Progress
from release.config import Config, ModelConfig
from release.errors import ConfigError, RemoteError, UsageError, VerificationFailed

LOCK_SCHEMA: Literal[1] = 1
#: paths model-signing ignores by default; never part of a model
IGNORED = (".git", ".gitattributes", ".github", ".gitignore")


def _workers() -> int:
    return max(2, os.cpu_count() or 2)


def path_key(path: str) -> tuple[str, ...]:
    """Sort key matching model-signing's manifest order (PurePosixPath parts)."""
    return PurePosixPath(path).parts


# --- the lock file --------------------------------------------------------------------
class LockedFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class RuntimeSource(BaseModel):
    """The locked file a runtime format was made from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class RuntimeConverter(BaseModel):
    """What made the runtime format (see release/modelformat.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    onnxruntime: str
    optimization: Literal["basic", "extended"]
    external_min_bytes: int = Field(ge=0)


class RuntimeModel(BaseModel):
    """The fast-loading model `release build` derives from the locked ONNX: only in the
    image's lock (/opt/release/model.lock.json), never in the project's. `dir` is relative
    to the lock file's directory; `digest` is the root digest of `files`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["onnx-external-data-v1"]
    dir: str
    files: list[LockedFile]
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    source: RuntimeSource
    converter: RuntimeConverter


class ModelLock(BaseModel):
    """`model/model.lock.json`: the model, pinned."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: Literal[1] = Field(alias="schema")
    source: Literal["hub", "local"]
    repo: str
    revision: str
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    files: list[LockedFile]
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    #: the image's lock only: the runtime format made from the locked ONNX at build time
    runtime: RuntimeModel | None = None

    def to_json(self) -> dict[str, object]:
        out = self.model_dump(by_alias=True, mode="json")
        if out.get("runtime") is None:
            out.pop("runtime", None)
        return out

    def by_path(self) -> dict[str, LockedFile]:
        return {f.path: f for f in self.files}

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def purl(self) -> str:
        return f"pkg:huggingface/{self.repo}@{self.commit}"


def lock_bytes(lock: ModelLock) -> bytes:
    """The lock file's bytes: keys in schema order, 2-space indent, trailing newline."""
    import json

    return (json.dumps(lock.to_json(), indent=2, ensure_ascii=False) + "\n").encode()


def root_digest(files: Iterable[LockedFile]) -> str:
    """model-signing's root digest: sha256 over raw file digests in path order."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: path_key(f.path)):
        h.update(bytes.fromhex(f.sha256))
    return "sha256:" + h.hexdigest()


def read_lock(path: Path) -> ModelLock:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"model lock {path.name} not found in {path.parent}: run `release model pin`"
        ) from None
    return parse_lock(raw, path.name)


def parse_lock(raw: bytes, name: str) -> ModelLock:
    """A lock from its bytes (`name` says where they came from in messages)."""
    try:
        lock = ModelLock.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{name}: invalid lock at {where}: {first['msg']}") from None
    paths = [f.path for f in lock.files]
    if paths != sorted(paths, key=path_key) or len(set(paths)) != len(paths):
        raise ConfigError(f"{name}: files must be unique and sorted by path")
    for p in paths:
        _check_relpath(p)
    if root_digest(lock.files) != lock.digest:
        raise VerificationFailed(
            f"{name}: root digest {lock.digest} does not match its files "
            f"({root_digest(lock.files)}); the lock was edited"
        )
    rt = lock.runtime
    if rt is not None:
        for p in [rt.dir, *(f.path for f in rt.files)]:
            _check_relpath(p)
        if root_digest(rt.files) != rt.digest:
            raise VerificationFailed(
                f"{name}: runtime digest {rt.digest} does not match its files; the lock was edited"
            )
        src = lock.by_path().get(rt.source.path)
        if src is None or src.sha256 != rt.source.sha256:
            raise VerificationFailed(
                f"{name}: runtime model names source {rt.source.path} ({rt.source.sha256[:12]}), "
                "which is not a locked file"
            )
    return lock


def _check_relpath(p: str) -> None:
    pp = PurePosixPath(p)
    if pp.is_absolute() or ".." in pp.parts or not pp.parts or "\\" in p:
        raise VerificationFailed(f"unsafe path in model file list: {p!r}")


# --- sources --------------------------------------------------------------------------
@dataclass(frozen=True)
class RemoteFile:
    """A file as the source describes it at a commit."""

    path: str
    size: int | None
    lfs_sha256: str | None = None  # hub: LFS files
    blob_sha1: str | None = None  # hub: git blob id (for non-LFS files)


@dataclass(frozen=True)
class Resolved:
    commit: str | None  # None: computed from content (local directories)
    files: list[RemoteFile]


class ModelSource(Protocol):
    @property
    def kind(self) -> Literal["hub", "local"]: ...

    @property
    def name(self) -> str: ...

    def resolve(self, revision: str) -> Resolved: ...

    def download(self, commit: str, path: str, dest: Path) -> None:
        """Write the bytes of `path` at `commit` to `dest` (any existing file replaced)."""
        ...


class HubSource:
    """A HuggingFace hub model repository, through `huggingface_hub` (honours HF_ENDPOINT,
    HF_TOKEN)."""

    kind: Literal["hub"] = "hub"

    def __init__(self, repo: str, endpoint: str | None = None, token: str | None = None) -> None:
        self.name = repo
        self.endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
        self.token = token or os.environ.get("HF_TOKEN") or None

    def _wrap(self, exc: BaseException, what: str) -> Exception:
        from huggingface_hub import errors as hfe

        if isinstance(exc, hfe.RevisionNotFoundError):
            return ConfigError(f"hub: revision not found in {self.name}: {what}")
        if isinstance(exc, hfe.RepositoryNotFoundError):
            return ConfigError(f"hub: repository {self.name} not found (or HF_TOKEN lacks access)")
        if isinstance(exc, hfe.EntryNotFoundError):
            return RemoteError(f"hub: {what} not found in {self.name}")
        return RemoteError(f"hub: {what} failed: {_short(exc)}")

    def resolve(self, revision: str) -> Resolved:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=self.endpoint, token=self.token)
        try:
            info = api.model_info(self.name, revision=revision, files_metadata=True)
        except _hub_errors() as exc:  # what the hub client raises; anything else is our bug
            raise self._wrap(exc, f"resolving {revision!r}") from exc
        commit = info.sha
        if not commit or len(commit) != 40:
            raise RemoteError(f"hub: {self.name}@{revision} did not resolve to a commit")
        files = []
        for s in info.siblings or []:
            lfs = s.lfs
            files.append(
                RemoteFile(
                    path=s.rfilename,
                    size=s.size,
                    lfs_sha256=lfs.sha256 if lfs is not None else None,
                    blob_sha1=s.blob_id if lfs is None else None,
                )
            )
        return Resolved(commit, files)

    def download(self, commit: str, path: str, dest: Path) -> None:
        from huggingface_hub import hf_hub_download

        with tempfile.TemporaryDirectory(prefix="hfdl-", dir=dest.parent) as tmp:
            try:
                got = hf_hub_download(
                    self.name,
                    path,
                    revision=commit,
                    local_dir=tmp,
                    endpoint=self.endpoint,
                    token=self.token,
                )
            except _hub_errors() as exc:
                raise self._wrap(exc, f"downloading {path}") from exc
            os.replace(got, dest)


def _hub_errors() -> tuple[type[BaseException], ...]:
    """The exceptions huggingface_hub raises for the hub's answers and the network: its own
    errors (HTTP ones are OSErrors), invalid repo ids (ValueError subclass), the HTTP
    client's transport errors, and OSError for the local files it writes."""
    from huggingface_hub import errors as hfe
    from huggingface_hub.errors import HTTPError  # type: ignore[attr-defined]  # its HTTP client's

    return (
        OSError,
        hfe.HfHubHTTPError,
        hfe.HFValidationError,
        HTTPError,
        hfe.EntryNotFoundError,
        hfe.XetDownloadError,
    )


class LocalSource:
    """A directory on disk (the example model, air-gapped mirrors). Its "commit" is the git
    tree id of the selected files, computed from their content."""

    kind: Literal["local"] = "local"

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name

    def resolve(self, revision: str) -> Resolved:
        self.require_dir()
        files = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in IGNORED)
            for fn in filenames:
                full = Path(dirpath, fn)
                rel = full.relative_to(self.root).as_posix()
                if fn in IGNORED or full.is_symlink():
                    continue
                files.append(RemoteFile(rel, full.stat().st_size))
        return Resolved(None, files)

    def require_dir(self) -> None:
        """UsageError (exit 2) naming the directory and what makes it, when it is absent."""
        if not self.root.is_dir():
            raise missing_model_dir(self.root, self.name)

    def download(self, commit: str, path: str, dest: Path) -> None:
        self.require_dir()
        try:
            shutil.copyfile(self.root / path, dest)
        except FileNotFoundError:
            raise UsageError(
                f"[model].path: {self.name}/{path} is locked but missing from the model "
                f"directory; restore it, or re-pin with `release model pin` if it was removed "
                "on purpose"
            ) from None


def require_local_source(cfg: Config, lock: ModelLock, cache: Cache | None = None) -> None:
    """Before any slow work: a local `[model].path` that is absent fails now (exit 2), unless
    the content-addressed cache already holds every locked file (each re-hashed on use)."""
    if cfg.model.path is None:
        return
    root = cfg.resolve(cfg.model.path)
    if root.is_dir():
        return
    cache = cache or Cache()
    if all(cache.blob(f.sha256).is_file() for f in lock.files):
        return
    raise missing_model_dir(root, cfg.model.path)


def missing_model_dir(root: Path, name: str) -> UsageError:
    """The one message for a `[model].path` directory that does not exist: its name, and
    the command that makes it (a `generate.py` beside it, as the example model has; else
    where the files come from)."""
    what = "does not exist" if not root.exists() else "is not a directory"
    gen = root.parent / "generate.py"
    if gen.is_file():
        hint = f"make it with `python {Path(name).parent / 'generate.py'}` (.ci/setup does)"
    else:
        hint = "put the model's files there, or pin a hub model ([model].repo)"
    return UsageError(f"[model].path: model directory {name} {what}: {hint}")


def source_for(cfg: Config) -> ModelSource:
    m = cfg.model
    if m.repo is not None:
        return HubSource(m.repo)
    assert m.path is not None
    return LocalSource(cfg.resolve(m.path), m.path)


def git_tree_id(files: Sequence[tuple[str, str]]) -> str:
    """Git tree object id for (path, blob sha1) pairs, all as regular 100644 files: the id
    `git write-tree` would give for exactly these files."""
    tree: dict[str, object] = {}
    for path, sha1 in files:
        node = tree
        *dirs, name = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})  # type: ignore[assignment]
        node[name] = sha1

    def write(node: dict[str, object]) -> str:
        entries = []
        for name, child in node.items():
            if isinstance(child, dict):
                entries.append(
                    (name + "/", b"40000 " + name.encode() + b"\0" + bytes.fromhex(write(child)))
                )
            else:
                assert isinstance(child, str)
                entries.append((name, b"100644 " + name.encode() + b"\0" + bytes.fromhex(child)))
        body = b"".join(e for _, e in sorted(entries))
        return hashlib.sha1(b"tree %d\0" % len(body) + body, usedforsecurity=False).hexdigest()

    return write(tree)


# --- selection ------------------------------------------------------------------------
def select(
    files: Iterable[RemoteFile], include: Sequence[str], exclude: Sequence[str]
) -> list[RemoteFile]:
    """Files whose path matches an include glob and no exclude glob (fnmatch on the full
    posix path; `*` also matches `/`). Paths model-signing ignores are never selected."""
    out = []
    for f in files:
        parts = PurePosixPath(f.path).parts
        if any(p in IGNORED for p in parts):
            continue
        if any(fnmatch.fnmatchcase(f.path, g) for g in include) and not any(
            fnmatch.fnmatchcase(f.path, g) for g in exclude
        ):
            out.append(f)
    return sorted(out, key=lambda f: path_key(f.path))


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


# --- results --------------------------------------------------------------------------
@dataclass(frozen=True)
class PinResult:
    lock: ModelLock
    lock_path: Path
    changed: bool  # the lock file content changed


@dataclass(frozen=True)
class FetchResult:
    lock: ModelLock
    dest: Path
    cached: int
    downloaded: int


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
        _check_relpath(f.path)
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
        with ThreadPoolExecutor(_workers()) as pool:
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


def check_lock_matches_config(cfg: Config, lock: ModelLock) -> None:
    m = cfg.model
    want = ("hub", m.repo) if m.repo is not None else ("local", m.path)
    if (lock.source, lock.repo) != want:
        raise ConfigError(
            f"{cfg.lock_path.name} pins {lock.source}:{lock.repo} but [model] names "
            f"{want[0]}:{want[1]}: run `release model pin`"
        )


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
            with ThreadPoolExecutor(_workers()) as pool:
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
        with ThreadPoolExecutor(_workers()) as pool:
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


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
