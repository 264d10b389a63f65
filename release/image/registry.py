"""Where images live: the `Registry` Protocol and `open_registry`, which picks a backend.

`open_registry(ref, root)` returns a `Registry` (contract 3 in ARCHITECTURE/brief):

- `oci:DIR` - an OCI image layout (DIR relative to `root`), created on first write
  (`release.image.layout`);
- `HOST[:PORT]/REPO` - the OCI distribution API (`release.image.distribution`; plain http
  only for 127.0.0.1 / localhost / ::1; Bearer and Basic auth, credentials from
  RELEASE_REGISTRY_USERNAME / RELEASE_REGISTRY_PASSWORD, `release.image.auth`);
- `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO` - the same API with credentials from boto3
  `ecr.get_authorization_token`.

Every read is verified: a blob or manifest whose sha256 is not the digest asked for is a
`VerificationFailed` (exit 1). Referrers use the OCI 1.1 Referrers API when the registry
has it, else the fallback tag `sha256-<hex>` holding an image index
(`release.image.referrers`; distribution 2.8 has no Referrers API; the layout always uses
the fallback).
"""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

from release.digest import Digest
from release.errors import UsageError
from release.image.layout import LayoutRegistry

if TYPE_CHECKING:
    from release.image.auth import Auth

_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


@runtime_checkable
class Registry(Protocol):
    """One repository of images (contract 3)."""

    @property
    def name(self) -> str:
        """The repository name (also the in-toto subject name)."""
        ...

    def has_blob(self, digest: Digest) -> bool: ...

    def get_blob(self, digest: Digest) -> bytes: ...

    def copy_blob_to(self, digest: Digest, dest: Path) -> Path:
        """Stream a blob to `dest` (verified before it is renamed into place)."""
        ...

    def open_blob(self, digest: Digest) -> contextlib.AbstractContextManager[BinaryIO]:
        """The blob as a stream, UNVERIFIED: the reader hashes as it reads
        (`release.image.fs` checks the digest before anything read is used)."""
        ...

    def put_blob(self, data: bytes | Path, digest: Digest) -> None: ...

    def get_manifest(self, digest: Digest) -> tuple[bytes, str]: ...

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Digest: ...

    def referrers(
        self, digest: Digest, artifact_type: str | None = None
    ) -> list[dict[str, Any]]: ...

    def attach(
        self,
        subject_digest: Digest,
        artifact_type: str,
        payload: bytes,
        payload_media_type: str,
        annotations: dict[str, str],
    ) -> Digest: ...


def open_registry(ref: str, root: Path) -> Registry:
    """`oci:DIR` | `HOST[:PORT]/REPO` | ECR repository -> a Registry (nothing is contacted
    yet). A reference with `@sha256:` or `:tag` is refused: this names a repository."""
    if ref.startswith("oci:"):
        d = ref[4:]
        if not d or "@" in d:
            raise UsageError(f"registry {ref!r}: give oci:DIR (a directory, no @digest)")
        p = Path(d)
        return LayoutRegistry(p if p.is_absolute() else root / p, name=ref)
    if "@" in ref or "/" not in ref:
        raise UsageError(f"registry {ref!r} is not a repository: give oci:DIR or HOST[:PORT]/REPO")
    host, _, repo = ref.partition("/")
    if ":" in repo or not re.fullmatch(r"[a-z0-9]+([._/-][a-z0-9]+)*", repo):
        raise UsageError(
            f"registry {ref!r}: repository {repo!r} must be lowercase path components "
            "(no :tag here)"
        )
    # the HTTP backend (urllib3) is imported only for a remote registry
    from release.image.auth import EcrAuth, EnvAuth
    from release.image.distribution import DistributionRegistry

    m = _ECR_HOST.fullmatch(host)
    auth: Auth = EcrAuth(m.group(1), m.group(3)) if m else EnvAuth()
    return DistributionRegistry(host, repo, auth)


def transport_errors() -> tuple[type[BaseException], ...]:
    """What a remote registry's blob stream may raise while it is read (urllib3's
    `HTTPError`), for the `except` clause that reports it as a RemoteError. Empty while no
    remote registry was opened: urllib3 is then not imported, and nothing raises its errors."""
    mod = sys.modules.get("urllib3.exceptions")
    return () if mod is None else (mod.HTTPError,)
