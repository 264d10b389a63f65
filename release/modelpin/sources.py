"""Where model files come from (`ModelSource`: the HuggingFace hub, a local
directory), resolved to a commit and selected by `[model].include`/`exclude`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, Protocol

from release.config import Config
from release.errors import ConfigError, RemoteError, UsageError
from release.modelpin.cache import Cache
from release.modelpin.lock import IGNORED, ModelLock, path_key


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
        return RemoteError(f"hub: {what} failed: {short_error(exc)}")

    def resolve(self, revision: str) -> Resolved:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=self.endpoint, token=self.token)
        try:
            info = api.model_info(self.name, revision=revision, files_metadata=True)
        except hub_errors() as exc:  # what the hub client raises; anything else is our bug
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
            except hub_errors() as exc:
                raise self._wrap(exc, f"downloading {path}") from exc
            os.replace(got, dest)


def hub_errors() -> tuple[type[BaseException], ...]:
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


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
