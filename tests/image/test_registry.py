"""release.image.registry against a real docker-registry (distribution 2.8) and moto ECR."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from release.errors import NotADigest, RemoteError, UsageError, VerificationFailed
from release.image.distribution import DistributionRegistry
from release.image.layout import LayoutRegistry
from release.image.oci import OCI_MANIFEST, canonical, digest_of, referrers_tag
from release.image.registry import open_registry
from tests.fixtures.registry import RegistryProxy
from tests.fixtures.tty import run_on_pty

BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def _tiny_image(reg: Any) -> tuple[bytes, bytes]:
    layer = os.urandom(3 << 20)  # > one chunk: streamed PATCH path when given as a file
    cfg = canonical(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    reg.put_blob(cfg, digest_of(cfg))
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(cfg),
                "size": len(cfg),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(layer),
                    "size": len(layer),
                }
            ],
        }
    )
    return manifest, layer


@pytest.fixture(params=["layout", pytest.param("registry", marks=pytest.mark.registry)])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "layout":
        return open_registry("oci:layout", tmp_path)
    host = request.getfixturevalue("registry")
    return open_registry(f"{host}/t{os.urandom(4).hex()}", tmp_path)


def test_blobs_manifests_and_referrers_fallback(reg: Any, tmp_path: Path) -> None:
    manifest, layer = _tiny_image(reg)
    f = tmp_path / "layer"
    f.write_bytes(layer)
    ld = digest_of(layer)
    assert not reg.has_blob(ld)
    reg.put_blob(f, ld)
    assert reg.has_blob(ld)
    reg.put_blob(f, ld)  # exists: skipped
    assert reg.get_blob(ld) == layer
    d = reg.put_manifest(manifest, OCI_MANIFEST)
    assert d == digest_of(manifest)
    data, mt = reg.get_manifest(d)
    assert (data, mt) == (manifest, OCI_MANIFEST)  # exact bytes back
    assert reg.referrers(d) == []
    a = reg.attach(d, BUNDLE, b'{"b":1}', BUNDLE, {"dev.sigstore.bundle.predicateType": "p1"})
    b = reg.attach(d, "application/x-other", b'{"b":2}', "application/json", {})
    refs = reg.referrers(d)
    assert [r["digest"] for r in refs] == [a, b]
    assert [r["digest"] for r in reg.referrers(d, BUNDLE)] == [a]
    assert refs[0]["annotations"] == {"dev.sigstore.bundle.predicateType": "p1"}
    # distribution 2.8 has no Referrers API: the fallback tag holds the index
    if isinstance(reg, DistributionRegistry):
        assert reg._referrers_api is False
        idx, _ = reg._get_manifest_ref(referrers_tag(d))
    else:
        idx, _ = reg.get_manifest(reg.tags()[referrers_tag(d)])
    assert {m["digest"] for m in json.loads(idx)["manifests"]} == {a, b}
    art = json.loads(reg.get_manifest(a)[0])
    assert art["subject"]["digest"] == d and art["artifactType"] == BUNDLE


def test_wrong_digest_is_refused(reg: Any) -> None:
    with pytest.raises(VerificationFailed):
        reg.put_blob(b"abc", digest_of(b"abd"))


def test_corrupt_layout_blob_is_detected(tmp_path: Path) -> None:
    reg = open_registry("oci:l", tmp_path)
    assert isinstance(reg, LayoutRegistry)
    reg.put_blob(b"hello", digest_of(b"hello"))
    reg.blob_path(digest_of(b"hello")).write_bytes(b"jello")
    with pytest.raises(VerificationFailed, match="the store is corrupt or lying"):
        reg.get_blob(digest_of(b"hello"))


def test_references_are_validated(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        open_registry("localhost:5000/Repo:tag", tmp_path)
    with pytest.raises(UsageError):
        open_registry("oci:x@sha256:" + "0" * 64, tmp_path)
    with pytest.raises(NotADigest):
        open_registry("oci:x", tmp_path).referrers("latest")  # type: ignore[arg-type]
    r = open_registry("127.0.0.1:1/x", tmp_path)
    assert isinstance(r, DistributionRegistry) and r.base == "http://127.0.0.1:1"
    r = open_registry("registry.example/x", tmp_path)
    assert isinstance(r, DistributionRegistry) and r.base.startswith("https://")


def test_dead_registry_is_a_remote_error(dead_registry: str, tmp_path: Path) -> None:
    with pytest.raises(RemoteError, match=f"registry {dead_registry} is unreachable"):
        open_registry(f"{dead_registry}/x", tmp_path).has_blob(digest_of(b""))


def test_ecr_credentials_come_from_get_authorization_token(
    aws_env: dict[str, str], tmp_path: Path
) -> None:
    r = open_registry("123456789012.dkr.ecr.us-east-1.amazonaws.com/platform", tmp_path)
    assert isinstance(r, DistributionRegistry) and r.base.startswith("https://")
    user, pw = r._auth.basic()  # type: ignore[misc]
    assert user == "AWS" and pw


# --- retries (a faulting proxy in front of the real registry) ------------------------
def test_a_failed_chunk_upload_is_not_repeated(
    registry_proxy: RegistryProxy, tmp_path: Path
) -> None:
    p = registry_proxy
    reg = open_registry(f"{p.host}/patch{os.urandom(3).hex()}", tmp_path)
    layer = os.urandom(1 << 20)
    f = tmp_path / "layer"
    f.write_bytes(layer)
    p.fail("PATCH", r"/blobs/uploads/", 503, times=1)
    with pytest.raises(
        RemoteError,
        match=rf"^registry {re.escape(p.host)}: upload blob {digest_of(layer)} failed with HTTP 503$",
    ):
        reg.put_blob(f, digest_of(layer))
    assert [s.status for s in p.requests("PATCH", r"/blobs/uploads/")] == [503]
    reg.put_blob(f, digest_of(layer))  # the next push starts a fresh upload session
    assert [s.status for s in p.requests("PATCH", r"/blobs/uploads/")] == [503, 202]
    assert reg.get_blob(digest_of(layer)) == layer


# --- progress ------------------------------------------------------------------------
PUSH_PULL = """
import os, sys
from pathlib import Path
from release.image.oci import digest_of
from release.image.registry import open_registry
reg = open_registry(sys.argv[1], Path(sys.argv[2]))
data = os.urandom(5 << 20)
f = Path(sys.argv[2]) / "blob"
f.write_bytes(data)
reg.put_blob(f, digest_of(data))
reg.copy_blob_to(digest_of(data), Path(sys.argv[2]) / "back")
assert (Path(sys.argv[2]) / "back").read_bytes() == data
"""


def test_push_and_pull_draw_a_bar_on_a_tty_and_nothing_on_a_pipe(
    registry: str, tmp_path: Path
) -> None:
    cmd = [sys.executable, "-c", PUSH_PULL]
    piped = subprocess.run(
        [*cmd, f"{registry}/bar{os.urandom(3).hex()}", str(tmp_path)],
        capture_output=True,
        timeout=120,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == b""
    (tmp_path / "back").unlink()
    out = run_on_pty([*cmd, f"{registry}/bar{os.urandom(3).hex()}", str(tmp_path)])
    assert "push " in out and "pull " in out, out
    assert "5.00M/5.00M" in out and "100%" in out, out
