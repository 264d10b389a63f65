"""Where images live: an OCI image layout directory or any OCI distribution registry.

`open_registry(ref, root)` returns a `Registry` (contract 3 in ARCHITECTURE/brief):

- `oci:DIR` - an OCI image layout (DIR relative to `root`), created on first write;
- `HOST[:PORT]/REPO` - the OCI distribution API (plain http only for 127.0.0.1 /
  localhost / ::1; Bearer and Basic auth, credentials from RELEASE_REGISTRY_USERNAME /
  RELEASE_REGISTRY_PASSWORD);
- `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO` - the same API with credentials from boto3
  `ecr.get_authorization_token`.

Every read is verified: a blob or manifest whose sha256 is not the digest asked for is a
`VerificationFailed` (exit 1). Manifests are pushed as exact bytes and the digest the
registry reports is checked. Blobs that exist are skipped; a blob is uploaded with one
streamed PATCH (ECR drops the data of every PATCH but the first) or a monolithic PUT.
Referrers use the OCI 1.1 Referrers API when the registry has it, else the fallback tag
`sha256-<hex>` holding an image index (distribution 2.8 has no Referrers API; the layout
always uses the fallback).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import urljoin

from release._io import CHUNK, atomic_write_bytes
from release.digest import Digest, parse_digest
from release.errors import RemoteError, UsageError, VerificationFailed
from release.image.oci import (
    EMPTY_DIGEST,
    EMPTY_JSON,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    REF_NAME,
    TITLE,
    canonical,
    digest_of,
    field,
    json_object,
    referrers_tag,
    sniff_media_type,
)

ACCEPT_MANIFESTS = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
_ECR_HOST = re.compile(r"^(\d{12})\.dkr\.ecr(-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


class NotFound(UsageError):
    """A digest or repository named by the user does not exist where it was looked for."""


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
    m = _ECR_HOST.fullmatch(host)
    auth: _Auth = _EcrAuth(m.group(1), m.group(3)) if m else _EnvAuth()
    return DistributionRegistry(host, repo, auth)


# --- shared pieces ---------------------------------------------------------------------
def _check_bytes(data: bytes, digest: Digest, what: str) -> bytes:
    got = digest_of(data)
    if got != digest:
        raise VerificationFailed(f"{what} {digest} has sha256 {got}: the store is corrupt or lying")
    return data


def artifact_manifest(
    subject: dict[str, Any],
    artifact_type: str,
    payload: bytes,
    payload_media_type: str,
    annotations: dict[str, str],
) -> bytes:
    """An OCI 1.1 artifact manifest (image manifest with artifactType and subject)."""
    layer: dict[str, Any] = {
        "mediaType": payload_media_type,
        "digest": digest_of(payload),
        "size": len(payload),
    }
    if payload_media_type.startswith("application/vnd.dev.sigstore.bundle"):
        # the file name cosign gives a bundle layer (oras pulls it under this name)
        layer["annotations"] = {TITLE: digest_of(payload).replace(":", "-") + ".sigstore.json"}
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": len(EMPTY_JSON)},
        "layers": [layer],
        "subject": subject,
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return canonical(doc)


def _referrer_descriptor(
    manifest: bytes, artifact_type: str, annotations: dict[str, str]
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "mediaType": OCI_MANIFEST,
        "digest": digest_of(manifest),
        "size": len(manifest),
        "artifactType": artifact_type,
    }
    if annotations:
        d["annotations"] = dict(annotations)
    return d


def _filter(descs: list[dict[str, Any]], artifact_type: str | None) -> list[dict[str, Any]]:
    if artifact_type is None:
        return descs
    return [d for d in descs if d.get("artifactType") == artifact_type]


def index_manifests(data: bytes, what: str) -> list[dict[str, Any]]:
    """The `manifests` of an OCI index (referrers index, image index), each a descriptor
    object; garbage, a wrong JSON type or a missing field -> VerificationFailed naming it."""
    doc = json_object(data, what)
    manifests = field(doc, "manifests", list, what, required=False) or []
    for i, m in enumerate(manifests):
        field(m, "digest", Digest, f"{what} manifests[{i}]")
    return list(manifests)


def _merge_index(old: bytes | None, desc: dict[str, Any]) -> bytes:
    manifests: list[dict[str, Any]] = []
    if old is not None:
        manifests = index_manifests(old, "the referrers index")
    manifests = [m for m in manifests if m.get("digest") != desc["digest"]] + [desc]
    return canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


# --- OCI image layout ------------------------------------------------------------------
def image_ref_name(digest: Digest) -> str:
    """The `org.opencontainers.image.ref.name` of an image in an OCI layout: the hex of its
    digest (immutable; `sha256-<hex>` is taken by the referrers fallback index, and skopeo
    refuses a `:` in a name): `skopeo inspect oci:DIR:<hex>`."""
    return parse_digest(digest).removeprefix("sha256:")


def _is_artifact(manifest: bytes) -> bool:
    """A referrer (artifact manifest with a subject): listed in index.json unnamed."""
    try:
        doc = json.loads(manifest)
    except ValueError:
        return False
    return isinstance(doc, dict) and "subject" in doc


class LayoutRegistry:
    """An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    # layout plumbing
    def _blob(self, digest: Digest) -> Path:
        return self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")

    def _ensure(self) -> None:
        marker = self.path / "oci-layout"
        if not marker.exists():
            atomic_write_bytes(marker, b'{"imageLayoutVersion":"1.0.0"}')
        if not (self.path / "index.json").exists():
            atomic_write_bytes(
                self.path / "index.json",
                canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
            )
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def _require(self) -> None:
        if not (self.path / "oci-layout").is_file():
            raise NotFound(f"no OCI image layout at {self.path} (registry {self._name})")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._ensure()
        with open(self.path / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _index(self) -> dict[str, Any]:
        p = self.path / "index.json"
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        w = f"{self._name} index.json"
        try:
            doc = json_object(data, w)
            ms = field(doc, "manifests", list, w, required=False) or []
            for i, m in enumerate(ms):
                field(m, "digest", Digest, f"{w} manifests[{i}]")
                ann = field(m, "annotations", dict, f"{w} manifests[{i}]", required=False)
                if ann is not None and not isinstance(ann.get(REF_NAME, ""), str):
                    raise VerificationFailed(f"{w} manifests[{i}]: {REF_NAME!r} is not a string")
                field(m, "mediaType", str, f"{w} manifests[{i}]", required=False)
        except VerificationFailed as exc:
            raise UsageError(f"broken OCI layout: {exc.message}") from None
        return doc

    def _write_index(self, index: dict[str, Any]) -> None:
        atomic_write_bytes(self.path / "index.json", canonical(index))

    def tags(self) -> dict[str, Digest]:
        out: dict[str, Digest] = {}
        for m in self._index().get("manifests", []):
            tag = (m.get("annotations") or {}).get(REF_NAME)
            if tag:
                out[tag] = Digest(m["digest"])
        return out

    # blobs
    def has_blob(self, digest: Digest) -> bool:
        return self._blob(digest).is_file()

    def get_blob(self, digest: Digest) -> bytes:
        self._require()
        try:
            data = self._blob(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in {self._name}") from None
        return _check_bytes(data, digest, "blob")

    def blob_path(self, digest: Digest) -> Path:
        """The file of a blob (unverified: readers that hash as they go use this)."""
        p = self._blob(digest)
        if not p.is_file():
            raise NotFound(f"blob {digest} not found in {self._name}")
        return p

    def copy_blob_to(self, digest: Digest, dest: Path) -> Path:
        with open(self.blob_path(digest), "rb") as src:
            return _stream_verified(src, digest, dest)

    @contextlib.contextmanager
    def open_blob(self, digest: Digest) -> Iterator[BinaryIO]:
        with open(self.blob_path(digest), "rb") as f:
            yield f

    def put_blob(self, data: bytes | Path, digest: Digest) -> None:
        self._ensure()
        target = self._blob(digest)
        if target.is_file():
            return
        if isinstance(data, bytes):
            _check_bytes(data, digest, "blob to store")
            atomic_write_bytes(target, data)
            return
        with open(data, "rb") as src:
            _stream_verified(src, digest, target)

    # manifests
    def get_manifest(self, digest: Digest) -> tuple[bytes, str]:
        self._require()
        try:
            data = self._blob(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"manifest {digest} not found in {self._name}") from None
        _check_bytes(data, digest, "manifest")
        for m in self._index().get("manifests", []):
            if m.get("digest") == digest and m.get("mediaType"):
                return data, str(m["mediaType"])
        return data, sniff_media_type(data, f"manifest {digest}")

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Digest:
        """Store a manifest and list it in index.json. An image (or image index) stored
        without a tag is named by `image_ref_name` (its digest's hex), so tools that select
        by `org.opencontainers.image.ref.name` (skopeo `oci:DIR:NAME`, umoci `DIR:NAME`)
        find it among its referrers."""
        digest = digest_of(data)
        if tag is None and not _is_artifact(data):
            tag = image_ref_name(digest)
        with self._locked():
            self.put_blob(data, digest)
            self._add_to_index(digest, len(data), media_type, tag)
        return digest

    def _add_to_index(self, digest: Digest, size: int, media_type: str, tag: str | None) -> None:
        index = self._index()
        manifests = list(index.get("manifests", []))
        if tag is not None:
            manifests = [
                m
                for m in manifests
                if (m.get("annotations") or {}).get(REF_NAME) != tag
                and not (m.get("digest") == digest and not m.get("annotations"))
            ]
        elif any(m.get("digest") == digest for m in manifests):
            return
        entry: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
        if tag is not None:
            entry["annotations"] = {REF_NAME: tag}
        manifests.append(entry)
        index["manifests"] = manifests
        self._write_index(index)

    # referrers (fallback tag scheme)
    def referrers(self, digest: Digest, artifact_type: str | None = None) -> list[dict[str, Any]]:
        parse_digest(digest)
        if not (self.path / "oci-layout").is_file():
            return []
        tagged = self.tags().get(referrers_tag(digest))
        if tagged is None:
            return []
        data, _ = self.get_manifest(tagged)
        return _filter(
            index_manifests(data, f"referrers index {tagged} of {digest}"), artifact_type
        )

    def attach(
        self,
        subject_digest: Digest,
        artifact_type: str,
        payload: bytes,
        payload_media_type: str,
        annotations: dict[str, str],
    ) -> Digest:
        subj_bytes, subj_type = self.get_manifest(parse_digest(subject_digest))
        subject = {"mediaType": subj_type, "digest": subject_digest, "size": len(subj_bytes)}
        manifest = artifact_manifest(
            subject, artifact_type, payload, payload_media_type, annotations
        )
        with self._locked():
            self.put_blob(EMPTY_JSON, EMPTY_DIGEST)
            self.put_blob(payload, digest_of(payload))
            digest = digest_of(manifest)
            self.put_blob(manifest, digest)
            self._add_to_index(digest, len(manifest), OCI_MANIFEST, None)
            tag = referrers_tag(subject_digest)
            old_digest = self.tags().get(tag)
            old = self._blob(old_digest).read_bytes() if old_digest else None
            index = _merge_index(old, _referrer_descriptor(manifest, artifact_type, annotations))
            self.put_blob(index, digest_of(index))
            self._add_to_index(digest_of(index), len(index), OCI_INDEX, tag)
        return digest


def _stream_verified(src: BinaryIO, digest: Digest, dest: Path) -> Path:
    """Copy `src` to `dest` through a temp file, hashing as it goes; rename only if the
    bytes are `digest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name[:16]}.", suffix=".tmp", dir=dest.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
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


# --- OCI distribution API ----------------------------------------------------------------
class _Auth(Protocol):
    def basic(self) -> tuple[str, str] | None: ...


class _EnvAuth:
    def basic(self) -> tuple[str, str] | None:
        user = os.environ.get("RELEASE_REGISTRY_USERNAME")
        pw = os.environ.get("RELEASE_REGISTRY_PASSWORD")
        return (user, pw) if user and pw is not None else None


class _EcrAuth:
    """ECR's registry password from boto3 `get_authorization_token` (12 h lifetime)."""

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region
        self._cached: tuple[str, str] | None = None

    def basic(self) -> tuple[str, str] | None:
        if self._cached is None:
            import boto3
            import botocore.exceptions

            try:
                ecr = boto3.client("ecr", region_name=self.region)
                data = ecr.get_authorization_token(registryIds=[self.account])
                token = data["authorizationData"][0]["authorizationToken"]
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                raise RemoteError(
                    f"ECR get_authorization_token for {self.account} in {self.region} failed: "
                    f"{exc}; check AWS credentials"
                ) from None
            user, _, pw = base64.b64decode(token).decode().partition(":")
            self._cached = (user, pw)
        return self._cached


class DistributionRegistry:
    """One repository on a registry speaking the OCI distribution API."""

    def __init__(self, host: str, repo: str, auth: _Auth) -> None:
        import requests

        self.host = host
        self.repo = repo
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        scheme = "http" if hostname in _LOOPBACK else "https"
        self.base = f"{scheme}://{host}"
        self._auth = auth
        self._session = requests.Session()
        self._token: str | None = None
        self._referrers_api: bool | None = None

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repo}"

    # http plumbing
    def _url(self, path: str) -> str:
        return f"{self.base}/v2/{self.repo}/{path}"

    def _request(self, method: str, url: str, *, ok: tuple[int, ...], what: str, **kw: Any) -> Any:
        import requests

        kw.setdefault("timeout", (10, 600))
        headers = dict(kw.pop("headers", {}) or {})
        for attempt in range(2):
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            elif (b := self._auth.basic()) is not None:
                headers["Authorization"] = (
                    "Basic " + base64.b64encode(f"{b[0]}:{b[1]}".encode()).decode()
                )
            try:
                resp = self._session.request(method, url, headers=headers, **kw)
            except requests.ConnectionError:
                raise RemoteError(
                    f"registry {self.host} is unreachable ({what}): is it running and is the "
                    "address right?"
                ) from None
            except requests.RequestException as exc:
                raise RemoteError(f"registry {self.host}: {what} failed: {exc}") from None
            if resp.status_code == 401 and attempt == 0 and self._login(resp):
                if hasattr(kw.get("data"), "seek"):
                    kw["data"].seek(0)
                continue
            break
        if resp.status_code in ok:
            return resp
        detail = _error_detail(resp)
        if resp.status_code in (401, 403):
            raise RemoteError(
                f"registry {self.host} denied {what} ({resp.status_code}{detail}): check "
                "credentials (RELEASE_REGISTRY_USERNAME/PASSWORD or AWS)"
            )
        if resp.status_code == 400 and "DIGEST_INVALID" in detail:
            raise VerificationFailed(
                f"registry {self.host} rejected {what}: digest mismatch{detail}"
            )
        raise RemoteError(
            f"registry {self.host}: {what} failed with HTTP {resp.status_code}{detail}"
        )

    def _login(self, resp: Any) -> bool:
        challenge = resp.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("bearer"):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            realm = params.pop("realm", None)
            if not realm:
                return False
            params.setdefault("scope", f"repository:{self.repo}:pull,push")
            basic = self._auth.basic()
            import requests

            try:
                r = self._session.get(realm, params=params, auth=basic, timeout=(10, 60))
            except requests.RequestException as exc:
                raise RemoteError(f"registry token service {realm} failed: {exc}") from None
            if r.status_code != 200:
                return False
            body = r.json()
            self._token = body.get("token") or body.get("access_token")
            return bool(self._token)
        return False

    # blobs
    def has_blob(self, digest: Digest) -> bool:
        r = self._request(
            "HEAD", self._url(f"blobs/{digest}"), ok=(200, 404), what=f"HEAD blob {digest}"
        )
        return bool(r.status_code == 200)

    def get_blob(self, digest: Digest) -> bytes:
        r = self._request(
            "GET", self._url(f"blobs/{digest}"), ok=(200, 404), what=f"GET blob {digest}"
        )
        if r.status_code == 404:
            raise NotFound(f"blob {digest} not found in {self.name}")
        return _check_bytes(r.content, digest, "blob")

    def copy_blob_to(self, digest: Digest, dest: Path) -> Path:
        r = self._request(
            "GET",
            self._url(f"blobs/{digest}"),
            ok=(200, 404),
            what=f"GET blob {digest}",
            stream=True,
        )
        if r.status_code == 404:
            raise NotFound(f"blob {digest} not found in {self.name}")
        with r:
            r.raw.decode_content = False
            return _stream_verified(r.raw, digest, dest)

    @contextlib.contextmanager
    def open_blob(self, digest: Digest) -> Iterator[BinaryIO]:
        r = self._request(
            "GET",
            self._url(f"blobs/{digest}"),
            ok=(200, 404),
            what=f"GET blob {digest}",
            stream=True,
        )
        if r.status_code == 404:
            raise NotFound(f"blob {digest} not found in {self.name}")
        with r:
            r.raw.decode_content = False
            yield r.raw

    def put_blob(self, data: bytes | Path, digest: Digest) -> None:
        if self.has_blob(digest):
            return
        r = self._request(
            "POST", self._url("blobs/uploads/"), ok=(202,), what=f"start upload of {digest}"
        )
        location = urljoin(self.base + "/", r.headers["Location"])
        sep = "&" if "?" in location else "?"
        if isinstance(data, bytes):
            _check_bytes(data, digest, "blob to push")
            r = self._request(
                "PUT",
                f"{location}{sep}digest={digest}",
                ok=(201,),
                what=f"PUT blob {digest}",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
        else:
            size = data.stat().st_size
            with open(data, "rb") as f:
                r = self._request(
                    "PATCH",
                    location,
                    ok=(202,),
                    what=f"upload blob {digest}",
                    data=f,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(size),
                    },
                )
            location = urljoin(self.base + "/", r.headers["Location"])
            sep = "&" if "?" in location else "?"
            r = self._request(
                "PUT", f"{location}{sep}digest={digest}", ok=(201,), what=f"commit blob {digest}"
            )
        reported = r.headers.get("Docker-Content-Digest")
        if reported and reported != digest:
            raise VerificationFailed(
                f"registry {self.host} stored blob {digest} as {reported}: refusing to continue"
            )

    # manifests
    def get_manifest(self, digest: Digest) -> tuple[bytes, str]:
        data, mt = self._get_manifest_ref(parse_digest(digest))
        if data is None:
            raise NotFound(f"manifest {digest} not found in {self.name}")
        return _check_bytes(data, digest, "manifest"), mt

    def _get_manifest_ref(self, ref: str) -> tuple[bytes | None, str]:
        r = self._request(
            "GET",
            self._url(f"manifests/{ref}"),
            ok=(200, 404),
            what=f"GET manifest {ref}",
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        if r.status_code == 404:
            return None, ""
        data = r.content
        mt = r.headers.get("Content-Type", "").split(";")[0].strip()
        if mt not in (*MANIFEST_TYPES, *INDEX_TYPES):
            mt = sniff_media_type(data, f"manifest {ref}")
        return data, mt

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Digest:
        digest = digest_of(data)
        r = self._request(
            "PUT",
            self._url(f"manifests/{tag or digest}"),
            ok=(201,),
            what=f"PUT manifest {digest}",
            data=data,
            headers={"Content-Type": media_type},
        )
        reported = r.headers.get("Docker-Content-Digest")
        if reported and reported != digest:
            raise VerificationFailed(
                f"registry {self.host} stored manifest {digest} as {reported}: it re-serialised "
                "the bytes; refusing to use it"
            )
        if r.headers.get("OCI-Subject"):
            self._referrers_api = True
        return digest

    # referrers
    def referrers(self, digest: Digest, artifact_type: str | None = None) -> list[dict[str, Any]]:
        parse_digest(digest)
        if self._referrers_api is not False:
            params = {"artifactType": artifact_type} if artifact_type else None
            r = self._request(
                "GET",
                self._url(f"referrers/{digest}"),
                ok=(200, 404),
                what=f"GET referrers of {digest}",
                params=params,
                headers={"Accept": OCI_INDEX},
            )
            ctype = r.headers.get("Content-Type", "").split(";")[0].strip()
            if r.status_code == 200 and ctype == OCI_INDEX:
                self._referrers_api = True
                return _filter(
                    index_manifests(r.content, f"referrers index of {digest}"), artifact_type
                )
            self._referrers_api = False
        data, _ = self._get_manifest_ref(referrers_tag(digest))
        if data is None:
            return []
        return _filter(index_manifests(data, f"referrers index of {digest}"), artifact_type)

    def attach(
        self,
        subject_digest: Digest,
        artifact_type: str,
        payload: bytes,
        payload_media_type: str,
        annotations: dict[str, str],
    ) -> Digest:
        subj_bytes, subj_type = self.get_manifest(parse_digest(subject_digest))
        subject = {"mediaType": subj_type, "digest": subject_digest, "size": len(subj_bytes)}
        manifest = artifact_manifest(
            subject, artifact_type, payload, payload_media_type, annotations
        )
        self.put_blob(EMPTY_JSON, EMPTY_DIGEST)
        self.put_blob(payload, digest_of(payload))
        self._referrers_api = None
        digest = self.put_manifest(manifest, OCI_MANIFEST)
        if self._referrers_api:
            return digest
        desc = _referrer_descriptor(manifest, artifact_type, annotations)
        tag = referrers_tag(subject_digest)
        # read-modify-write of the fallback index; re-check so a concurrent attach that
        # overwrote ours is noticed and redone
        for _ in range(5):
            old, _mt = self._get_manifest_ref(tag)
            self.put_manifest(_merge_index(old, desc), OCI_INDEX, tag=tag)
            now, _mt = self._get_manifest_ref(tag)
            if now is not None and any(
                m.get("digest") == digest for m in index_manifests(now, f"referrers index {tag}")
            ):
                return digest
        raise RemoteError(
            f"registry {self.host}: could not record referrer {digest} under tag {tag} "
            "(concurrent writers); retry"
        )


def _error_detail(resp: Any) -> str:
    try:
        errs = resp.json().get("errors") or []
    except ValueError:
        return ""
    if not errs:
        return ""
    e = errs[0]
    return f": {e.get('code', '')} {e.get('message', '')}".rstrip()
