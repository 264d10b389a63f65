"""The OCI distribution API backend: one repository on a registry (docker-registry, ECR,
any OCI 1.1 registry) over HTTP(S), with Bearer/Basic auth (`release.image.auth`).

Every read is verified against the digest asked for; manifests are pushed as exact bytes
and the digest the registry reports is checked. Blobs that exist are skipped; a blob is
uploaded with one streamed PATCH (ECR drops the data of every PATCH but the first) or a
monolithic PUT.

Transient failures are retried by urllib3 (`RETRY`): 429 and 5xx answers and connection
errors, honouring `Retry-After`, for every method except PATCH (docs/internals.md,
"Registry retries", says why a chunk upload is not repeated).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin

from urllib3.util.retry import Retry

from release._progress import Progress
from release.digest import Digest, parse_digest
from release.errors import NotFound, RemoteError, VerificationFailed
from release.image import auth as _auth
from release.image import referrers
from release.image.blobs import check_bytes, stream_verified
from release.image.oci import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_of,
    referrers_tag,
    sniff_media_type,
)

log = logging.getLogger(__name__)

ACCEPT_MANIFESTS = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
#: how registry requests are retried: 5 more tries, 0/0.5/1/2/4 s apart (or what a 429/503
#: `Retry-After` says), on 429/500/502/503/504 and connection errors. PATCH (a chunk of a
#: blob upload: the session's offset moved with the bytes the registry took) is never
#: repeated; HEAD/GET, POST (opens a fresh upload session), PUT (a blob by its digest, a
#: manifest by its bytes) and DELETE are safe to repeat.
RETRY = Retry(
    total=5,
    connect=3,
    read=2,
    status=5,
    backoff_factor=0.25,
    status_forcelist=(429, 500, 502, 503, 504),
    allowed_methods=frozenset({"HEAD", "GET", "POST", "PUT", "DELETE"}),
    respect_retry_after_header=True,
    raise_on_status=False,
)


class _Counted:
    """A file read by requests for an upload body, advancing a progress bar as it goes."""

    def __init__(self, f: BinaryIO, size: int, progress: Progress) -> None:
        self._f = f
        self._size = size
        self._progress = progress

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._progress.advance(len(data))
        return data

    def seek(self, pos: int) -> int:
        return self._f.seek(pos)


class DistributionRegistry:
    """One repository on a registry speaking the OCI distribution API."""

    def __init__(self, host: str, repo: str, auth: _auth.Auth) -> None:
        import requests
        from requests.adapters import HTTPAdapter

        self.host = host
        self.repo = repo
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        scheme = "http" if hostname in LOOPBACK else "https"
        self.base = f"{scheme}://{host}"
        self._auth = auth
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=RETRY)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
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
            if (authz := _auth.authorization(self._auth, self._token)) is not None:
                headers["Authorization"] = authz
            try:
                resp = self._session.request(method, url, headers=headers, **kw)
            except requests.ConnectionError:
                raise RemoteError(
                    f"registry {self.host} is unreachable ({what}): is it running and is the "
                    "address right?"
                ) from None
            except requests.RequestException as exc:
                raise RemoteError(f"registry {self.host}: {what} failed: {exc}") from None
            if resp.status_code == 401 and attempt == 0:
                token = _auth.bearer_token(
                    self._session, resp.headers.get("WWW-Authenticate", ""), self.repo, self._auth
                )
                if token:
                    self._token = token
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

    # blobs
    def has_blob(self, digest: Digest) -> bool:
        r = self._request(
            "HEAD", self._url(f"blobs/{digest}"), ok=(200, 404), what=f"HEAD blob {digest}"
        )
        return bool(r.status_code == 200)

    def _fetch_blob(self, digest: Digest, *, stream: bool) -> Any:
        """GET a blob (the response, streamed or not); a missing blob is `NotFound`."""
        r = self._request(
            "GET",
            self._url(f"blobs/{digest}"),
            ok=(200, 404),
            what=f"GET blob {digest}",
            stream=stream,
        )
        if r.status_code == 404:
            raise NotFound(f"blob {digest} not found in {self.name}")
        return r

    def get_blob(self, digest: Digest) -> bytes:
        return check_bytes(self._fetch_blob(digest, stream=False).content, digest, "blob")

    def copy_blob_to(self, digest: Digest, dest: Path) -> Path:
        r = self._fetch_blob(digest, stream=True)
        total = int(r.headers.get("Content-Length") or 0)
        log.debug("pull %s (%d bytes) from %s", digest, total, self.name)
        with r, Progress(f"pull {digest[7:19]}", total) as prog:
            r.raw.decode_content = False
            return stream_verified(r.raw, digest, dest, prog)

    @contextlib.contextmanager
    def open_blob(self, digest: Digest) -> Iterator[BinaryIO]:
        r = self._fetch_blob(digest, stream=True)
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
            check_bytes(data, digest, "blob to push")
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
            log.debug("push %s (%d bytes) to %s", digest, size, self.name)
            with open(data, "rb") as f, Progress(f"push {digest[7:19]}", size) as prog:
                r = self._request(
                    "PATCH",
                    location,
                    ok=(202,),
                    what=f"upload blob {digest}",
                    data=_Counted(f, size, prog),
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
        return check_bytes(data, digest, "manifest"), mt

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
                return referrers.listed(r.content, f"referrers index of {digest}", artifact_type)
            self._referrers_api = False
        data, _ = self._get_manifest_ref(referrers_tag(digest))
        if data is None:
            return []
        return referrers.listed(data, f"referrers index of {digest}", artifact_type)

    def attach(
        self,
        subject_digest: Digest,
        artifact_type: str,
        payload: bytes,
        payload_media_type: str,
        annotations: dict[str, str],
    ) -> Digest:
        return referrers.attach(
            self, subject_digest, artifact_type, payload, payload_media_type, annotations
        )

    def put_referrer(self, manifest: bytes, subject: Digest, desc: dict[str, Any]) -> Digest:
        """Push the artifact manifest; a registry with the Referrers API lists it by its
        `subject` (it answers `OCI-Subject`), else it is added to the fallback index."""
        self._referrers_api = None
        digest = self.put_manifest(manifest, OCI_MANIFEST)
        if self._referrers_api:
            return digest
        tag = referrers_tag(subject)
        # read-modify-write of the fallback index; re-check so a concurrent attach that
        # overwrote ours is noticed and redone
        for _ in range(5):
            old, _mt = self._get_manifest_ref(tag)
            self.put_manifest(referrers.merge_index(old, desc), OCI_INDEX, tag=tag)
            now, _mt = self._get_manifest_ref(tag)
            if now is not None and any(
                m.get("digest") == digest
                for m in referrers.index_manifests(now, f"referrers index {tag}")
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
