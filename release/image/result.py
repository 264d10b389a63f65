"""What a build returns (`BuiltImage`, one `LayerReport` per layer) and the size gate
both builders apply before anything is pushed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from release.config import Config
from release.digest import Digest
from release.errors import SizeLimitExceeded

#: Lambda's limit on an image's uncompressed size
LAMBDA_MAX_UNCOMPRESSED = 10 * 1024**3


@dataclass(frozen=True)
class LayerReport:
    role: str
    digest: Digest
    size: int
    usize: int
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "digest": self.digest,
            "size": self.size,
            "uncompressed_size": self.usize,
            "cached": self.cached,
        }


@dataclass(frozen=True)
class BuiltImage:
    """The result of a build: where it is and what it holds."""

    digest: Digest
    registry: str
    base: str
    layers: list[LayerReport]
    functions: dict[str, str]
    size: int  # compressed: manifest + config + layers
    usize: int  # uncompressed layers
    backend: str = "native"
    created: str = ""
    model: str = ""
    pushed_blobs: int = 0
    skipped_blobs: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    docker_digest: str | None = None
    #: the code layer's .pyc: {python, magic, invalidation}, or {python, skipped: why not}
    bytecode: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.registry}@{self.digest}"

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "ref": self.ref,
            "registry": self.registry,
            "size": self.size,
            "uncompressed_size": self.usize,
            "base": self.base,
            "layers": [la.to_json() for la in self.layers],
            "functions": dict(self.functions),
            "backend": self.backend,
            "created": self.created,
            "model": self.model,
            **({"docker_digest": self.docker_digest} if self.docker_digest else {}),
            **({"bytecode": dict(self.bytecode)} if self.bytecode else {}),
        }


def size_gate(cfg: Config, usize: int, reports: list[LayerReport]) -> None:
    """Refuse (exit 1) an image over Lambda's 10 GiB uncompressed or [image].max_size."""
    limit = min(LAMBDA_MAX_UNCOMPRESSED, cfg.image.max_size or LAMBDA_MAX_UNCOMPRESSED)
    if usize <= limit:
        return
    which = (
        "[image].max_size"
        if cfg.image.max_size and cfg.image.max_size < LAMBDA_MAX_UNCOMPRESSED
        else "Lambda's 10 GiB limit"
    )
    biggest = max(reports, key=lambda r: r.usize) if reports else None
    largest = (
        f"; the largest layer is {biggest.role} ({biggest.usize} bytes)"
        if biggest and biggest.usize
        else ""
    )
    raise SizeLimitExceeded(
        f"image is {usize} bytes uncompressed, over {which} ({limit} bytes){largest}; nothing was pushed",
        details=[f"{r.role}: {r.size} compressed, {r.usize} uncompressed" for r in reports],
    )
