"""The layer scan cache (`release.image.layerscan`): a warm scan reads the cache instead
of inflating the blobs and gives the same merged view; a blob swapped after a warm run is
refused (the blob is hashed before its cached scan is used); a corrupt or foreign cache
file is read again from the blob; a kept file the cache lacks is fetched from its layer;
and `release verify` cold and warm on an OCI layout: the same checklist, then a swapped
blob fails it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from release.errors import VerificationFailed
from release.image import fs
from release.image.inspect import open_image
from release.image.registry import open_registry
from tests.fixtures.tools import run_cli
from tests.image.test_fs import BASE, MODEL, _tar, push

CODE = [("var/", None), ("var/task/", None), ("var/task/h.py", b"print('h')\n")]
LOCK = "opt/release/model.lock.json"


def _image(tmp_path: Path, layers: list[tuple[str, Any]] | None = None) -> Any:
    reg = open_registry("oci:reg", tmp_path)
    return open_image(reg, push(reg, layers or [("base", BASE), ("model", MODEL), ("code", CODE)]))


def _scan(img: Any, cache: fs.ScanCache | None, **kw: Any) -> fs.MergedFS:
    return fs.scan(img, keep=lambda p: p == LOCK, watch=["opt/model", LOCK], cache=cache, **kw)


def _same(a: fs.MergedFS, b: fs.MergedFS) -> None:
    assert a.nodes == b.nodes
    assert a.data == b.data
    assert a.touches == b.touches


def test_a_warm_scan_reads_the_cache_and_gives_the_same_view(tmp_path: Path) -> None:
    img = _image(tmp_path)
    digests = sorted(la.digest for la in img.layers)
    cold_cache = fs.ScanCache(tmp_path / "cache")
    cold = _scan(img, cold_cache)
    assert sorted(cold_cache.scanned) == digests and cold_cache.reused == []
    assert sorted(p.name for p in (tmp_path / "cache/scans/sha256").iterdir()) == [
        d.removeprefix("sha256:") + ".json" for d in digests
    ]
    warm_cache = fs.ScanCache(tmp_path / "cache")
    warm = _scan(img, warm_cache)
    assert warm_cache.scanned == [] and sorted(warm_cache.reused) == digests
    _same(cold, warm)
    _same(cold, _scan(img, None))  # and the same as a scan without any cache
    assert warm.read(LOCK) == b"{}"
    assert warm.get("opt/model/sub/b.bin") is not None
    assert warm.get("opt/model/sub/b.bin").sha256 == cold.get("opt/model/sub/b.bin").sha256  # type: ignore[union-attr]


def test_a_blob_swapped_after_a_warm_run_is_refused(tmp_path: Path) -> None:
    img = _image(tmp_path)
    _scan(img, fs.ScanCache(tmp_path / "cache"))
    warm = fs.ScanCache(tmp_path / "cache")
    _scan(img, warm)
    assert len(warm.reused) == 3
    # the model layer's blob replaced by another readable layer planting a file
    evil, _ = _tar([*MODEL, ("opt/model/evil.bin", b"EVIL")])
    (tmp_path / "reg/blobs/sha256" / img.layers[1].digest.removeprefix("sha256:")).write_bytes(evil)
    again = fs.ScanCache(tmp_path / "cache")
    with pytest.raises(
        VerificationFailed, match=r"^layer 2 \(model, sha256:[0-9a-f]{12}\): blob has sha256 "
    ):
        _scan(img, again)
    assert img.layers[1].digest not in again.reused


def test_a_corrupt_or_foreign_cache_file_is_read_again(tmp_path: Path) -> None:
    img = _image(tmp_path)
    cold = _scan(img, fs.ScanCache(tmp_path / "cache"))
    base, model, code = (la.digest for la in img.layers)
    c = fs.ScanCache(tmp_path / "cache")
    c.path(model).write_bytes(b'{"schema": "release/layer-scan/v1", "digest": ')  # truncated
    c.path(code).write_bytes(c.path(base).read_bytes())  # another layer's scan
    doc = json.loads(c.path(base).read_bytes())
    doc["entries"][0][0] = "../../etc/passwd"  # an entry no tar reader would give
    c.path(base).write_text(json.dumps(doc))
    warm = fs.ScanCache(tmp_path / "cache")
    _same(cold, _scan(img, warm))
    assert sorted(warm.scanned) == sorted([base, model, code]) and warm.reused == []
    assert json.loads(c.path(code).read_bytes())["digest"] == code  # rewritten
    again = fs.ScanCache(tmp_path / "cache")
    _scan(img, again)
    assert sorted(again.reused) == sorted([base, model, code])


def test_a_kept_file_the_cache_lacks_is_read_from_its_layer(tmp_path: Path) -> None:
    """A first scan kept nothing; a second keeps the lock and a file under a symlinked
    parent (`lib/x` lands at `usr/lib/x`): both layers are read again, the rest reused."""
    layers = [("base", BASE), ("model", MODEL), ("code", [("lib/x", b"via the link")])]
    img = _image(tmp_path, layers)
    fs.scan(img, cache=fs.ScanCache(tmp_path / "cache"))
    c = fs.ScanCache(tmp_path / "cache")
    m = fs.scan(img, keep=lambda p: p in (LOCK, "usr/lib/x"), cache=c)
    assert m.read(LOCK) == b"{}" and m.read("usr/lib/x") == b"via the link"
    assert m.get("usr/lib/x") is not None and m.get("lib/x") is None
    assert sorted(c.scanned) == sorted(la.digest for la in img.layers[1:])
    assert c.reused[:1] == [img.layers[0].digest]
    warm = fs.ScanCache(tmp_path / "cache")
    _same(m, fs.scan(img, keep=lambda p: p in (LOCK, "usr/lib/x"), cache=warm))
    assert len(warm.reused) == 3 and warm.scanned == []


# --- `release verify`, cold and warm ---------------------------------------------------
@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, str]:
    """A project whose registry is an OCI layout holding an image with its 5 key-signed
    attestations (the image of tests/attest)."""
    from release import sbom
    from release.attest import sign, statements
    from tests.attest.conftest import build_image

    reg = open_registry("oci:reg", tmp_path)
    digest = build_image(reg)
    view = open_image(reg, digest)
    scan = sbom._scan(view)
    lock = statements.baked_lock(scan)
    assert lock is not None
    preds = [
        (
            "https://slsa.dev/provenance/v1",
            {"buildDefinition": {}, "runDetails": {"builder": {"id": "local"}}},
        ),
        ("https://cyclonedx.org/bom", sbom.generate(reg, digest, view=view, scan=scan)),
        ("https://model_signing/signature/v1.0", statements.model_signature(lock)),
        (
            "https://github.com/release-platform/release/attestations/canary-report/v2",
            {"passed": True},
        ),
        ("https://github.com/release-platform/release/attestations/promotion/v1", {"env": "prod"}),
    ]
    sign.attest(reg, digest, preds, sign.KeySigner(tmp_path / "k.pem"))
    (tmp_path / "release.toml").write_text(
        '[model]\nrepo = "example/sst2-tiny"\n[image]\n'
        f'base = "oci:base@sha256:{"0" * 64}"\nregistry = "oci:reg"\n'
        '[functions]\nscorer = "handlers.scorer.lambda_handler"\n'
        '[signing]\nmode = "key:k.pem"\n'
    )
    return tmp_path, digest


def test_verify_cold_then_warm_then_a_swapped_blob(signed: tuple[Path, str]) -> None:
    proj, digest = signed
    env = {"RELEASE_CACHE_DIR": str(proj / "scan-cache")}
    cold = run_cli("verify", digest, "--offline", "--json", cwd=proj, env=env)
    assert cold.code == 0, cold.stderr
    layers = open_image(open_registry("oci:reg", proj), digest).layers
    cache = fs.ScanCache(proj / "scan-cache")
    stamps = {la.digest: cache.path(la.digest).stat().st_mtime_ns for la in layers}
    warm = run_cli("verify", digest, "--offline", "--json", cwd=proj, env=env)
    assert warm.code == 0, warm.stderr
    assert json.loads(warm.stdout) == json.loads(cold.stdout)
    # read, not written again: every layer's scan came from the cache
    assert {la.digest: cache.path(la.digest).stat().st_mtime_ns for la in layers} == stamps

    code = layers[-1]
    evil, _ = _tar([("var/task/handlers/evil.py", b"import os\n")])
    (proj / "reg/blobs/sha256" / code.digest.removeprefix("sha256:")).write_bytes(evil)
    r = run_cli("verify", digest, "--offline", "--json", cwd=proj, env=env)
    assert r.code == 1
    doc = json.loads(r.stdout)
    image = next(c for c in doc["checks"] if c["name"] == "image")
    assert image["ok"] is False
    assert image["detail"].startswith(
        f"layer {len(layers)} (code, {code.digest[:19]}): blob has sha256 "
    )
    assert "FAIL  image" in r.stderr
