"""The model lock file (`model/model.lock.json`): its format, the per-file and root
digests (OpenSSF model-signing's file serialization, sha256), reading and checking it.

The root is sha256 over the concatenated raw file digests in path order, so a model
signature made later agrees with the lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from release.config import Config
from release.errors import ConfigError, VerificationFailed

LOCK_SCHEMA: Literal[1] = 1
#: paths model-signing ignores by default; never part of a model
IGNORED = (".git", ".gitattributes", ".github", ".gitignore")


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
    image's lock (/opt/release/model.lock.json), never in the project's. `digest` is the
    root digest of `files`. `placement` says where `dir` is and whether the source ships:
    `replaces-source` (what `release build` makes): `dir` is inside the model directory
    and the source file is not in the image, the runtime files take its place (the
    weights ship once); `beside-lock` (images built before, and `modelformat.bake`):
    `dir` is relative to the lock file's directory and the source ships as pinned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["onnx-external-data-v1"]
    dir: str
    files: list[LockedFile]
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    source: RuntimeSource
    converter: RuntimeConverter
    placement: Literal["beside-lock", "replaces-source"] = "beside-lock"


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
        rt = out.get("runtime")
        if rt is None:
            out.pop("runtime", None)
        elif rt.get("placement") == "beside-lock":
            del rt["placement"]  # the default: the bytes of locks made before the field
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
        check_relpath(p)
    if root_digest(lock.files) != lock.digest:
        raise VerificationFailed(
            f"{name}: root digest {lock.digest} does not match its files "
            f"({root_digest(lock.files)}); the lock was edited"
        )
    rt = lock.runtime
    if rt is not None:
        for p in [rt.dir, *(f.path for f in rt.files)]:
            check_relpath(p)
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
        if rt.placement == "replaces-source":
            clash = [f.path for f in lock.files if PurePosixPath(f.path).parts[0] == rt.dir]
            if "/" in rt.dir or clash:
                raise VerificationFailed(
                    f"{name}: runtime model directory {rt.dir}/ is not a directory of its own "
                    "in the model directory" + (f" (locked file {clash[0]})" if clash else "")
                )
    return lock


def shipped(lock: ModelLock) -> ModelLock:
    """What the image's model directory holds, as a lock (files and their root digest):
    the locked files, except a source the runtime model replaces, plus that runtime
    model's files under its `dir`. The lock itself when nothing is replaced."""
    rt = lock.runtime
    if rt is None or rt.placement != "replaces-source":
        return lock
    files = [f for f in lock.files if f.path != rt.source.path] + [
        LockedFile(path=f"{rt.dir}/{f.path}", size=f.size, sha256=f.sha256) for f in rt.files
    ]
    files.sort(key=lambda f: path_key(f.path))
    return lock.model_copy(update={"files": files, "digest": root_digest(files), "runtime": None})


def check_relpath(p: str) -> None:
    pp = PurePosixPath(p)
    if pp.is_absolute() or ".." in pp.parts or not pp.parts or "\\" in p:
        raise VerificationFailed(f"unsafe path in model file list: {p!r}")


def check_lock_matches_config(cfg: Config, lock: ModelLock) -> None:
    m = cfg.model
    want = ("hub", m.repo) if m.repo is not None else ("local", m.path)
    if (lock.source, lock.repo) != want:
        raise ConfigError(
            f"{cfg.lock_path.name} pins {lock.source}:{lock.repo} but [model] names "
            f"{want[0]}:{want[1]}: run `release model pin`"
        )
