"""`release build` / `release base` against real parts: docker-registry, skopeo, dockerd."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from urllib.request import Request, urlopen

import pytest

from release.image import layers as L
from release.image.inspect import open_image
from release.image.registry import open_registry
from tests.fixtures.registry import RegistryProxy, Seen
from tests.fixtures.tools import copy_project, require_binary, run_cli

ROLES = ["base", "deps", "model", "policy", "code"]


# --- the pieces -----------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, L.BLOCK - 1, L.BLOCK, 3 * L.BLOCK + 17])
def test_gzip_writer_is_valid_gzip_and_independent_of_write_sizes(n: int) -> None:
    data = (os.urandom(n // 3) + b"the same words again " * (n // 20 + 1))[:n]
    outs = []
    for step in (1000, 65536, max(n, 1)):
        buf = io.BytesIO()
        g = L.GzipWriter(buf)
        for i in range(0, len(data), step):
            g.write(data[i : i + step])
        digest, diff_id = g.finish()
        assert gzip.decompress(buf.getvalue()) == data
        assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
        outs.append((buf.getvalue(), digest))
    assert len({o for o, _ in outs}) == 1


def test_layer_tar_is_normalised(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "b").mkdir(parents=True)
    (src / "b" / "x.py").write_text("x = 1\n")
    (src / "a.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "a.sh", 0o700)
    os.chmod(src / "b" / "x.py", 0o600)
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.pyc").write_bytes(b"junk")
    entries = L.with_parents(L.tree_entries(src, "var/task/app", skip=lambda r: "__pycache__" in r))
    cache = L.LayerCache(tmp_path / "cache")
    layer = cache.build(None, "code", entries, 1234)
    with tarfile.open(layer.path) as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == [
        "var",
        "var/task",
        "var/task/app",
        "var/task/app/a.sh",
        "var/task/app/b",
        "var/task/app/b/x.py",
    ]
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 1234)}
    modes = {m.name: m.mode for m in members}
    assert modes["var/task/app/a.sh"] == 0o755 and modes["var/task/app/b/x.py"] == 0o644
    os.utime(src / "b" / "x.py", (1, 1))
    again = cache.build(
        None,
        "code",
        L.with_parents(L.tree_entries(src, "var/task/app", skip=lambda r: "__pycache__" in r)),
        1234,
    )
    assert again.digest == layer.digest


def test_base_is_reproducible(rootfs_tarball: Path, base_image: str, tmp_path: Path) -> None:
    r = run_cli("base", "--rootfs", rootfs_tarball, "--out", f"oci:{tmp_path / 'b2'}", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["digest"] == base_image.rpartition("@")[2]
    reg = open_registry(f"oci:{tmp_path / 'b2'}", tmp_path)
    img = open_image(reg, doc["digest"])
    assert [la.role for la in img.layers] == ["base"]
    assert all(h.get("created") for h in img.config["history"])


# --- build ------------------------------------------------------------------------------
def test_build_into_layout_json_shape_and_contract(
    build_cli: Callable[..., Any], project: Path
) -> None:
    r, doc = build_cli()  # [image].registry = oci:.release/registry
    assert r.code == 0, r.stderr
    assert r.stdout.count("\n") > 3  # one JSON document
    assert {"digest", "size", "base", "layers", "functions"} <= set(doc)
    assert [la["role"] for la in doc["layers"]] == ROLES
    assert all({"digest", "size", "role"} <= set(la) for la in doc["layers"])
    assert doc["size"] == pytest.approx(sum(la["size"] for la in doc["layers"]), rel=0.01)
    reg = open_registry("oci:.release/registry", project)
    img = open_image(reg, doc["digest"])
    cfg = img.config["config"]
    assert cfg["WorkingDir"] == "/var/task"
    env = dict(e.split("=", 1) for e in cfg["Env"])
    assert env["MODEL_DIR"] == "/opt/model"
    assert env["MODEL_LOCK"] == "/opt/release/model.lock.json"
    assert env["PYTHONPATH"] == "/opt/deps:/var/task"
    assert img.functions == doc["functions"]
    lock = json.loads((project / "model" / "model.lock.json").read_bytes())
    assert img.labels["dev.release.model"] == f"{lock['repo']}@{lock['commit']}"
    assert img.labels["dev.release.model.digest"] == lock["digest"]
    assert img.labels["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    files = {p: sha for p, _, sha in img.iter_files("model")}
    for f in lock["files"]:  # every locked file but the ONNX its runtime model replaces
        if f["path"] != "onnx/model.onnx":
            assert files["/opt/model/" + f["path"]] == f["sha256"]
    assert "/opt/model/onnx/model.onnx" not in files
    assert {"/opt/model/runtime/model.onnx", "/opt/model/runtime/model.weights"} <= set(files)
    assert "/opt/release/model.lock.json" in files
    code = {p for p, _, _ in img.iter_files("code")}
    assert "/var/task/handlers/common/model.py" in code
    # bytecode beside every module (tests/image/test_bytecode.py), nothing from the checkout
    assert {p for p in code if "__pycache__" in p} == {
        f"{p.rsplit('/', 1)[0]}/__pycache__/{p.rsplit('/', 1)[1][:-3]}.{sys.implementation.cache_tag}.pyc"
        for p in code
        if p.endswith(".py")
    }
    assert any(p.startswith("/var/task/policy/") for p, _, _ in img.iter_files("policy"))
    deps = {p for p, _, _ in img.iter_files("deps")}
    assert "/opt/deps/onnxruntime/__init__.py" in deps
    assert not any(p.startswith("/opt/deps/bin/") for p in deps)
    # cold starts: the build compiles with the interpreter that runs it (run_cli's)
    tag = sys.implementation.cache_tag
    assert f"/opt/deps/numpy/__pycache__/__init__.{tag}.pyc" in deps
    # which wheel pip installed for each package, with its sha256 (one the lock pins)
    assert "/opt/release/wheels.json" in deps
    reg_lock = (project / "handlers" / "requirements.lock").read_text()
    with img._tar(img.layers_with(["deps"])[0]) as tf:
        for m in tf:
            if m.name == "opt/release/wheels.json":
                wheels = json.loads(tf.extractfile(m).read())["wheels"]  # type: ignore[union-attr]
                break
    onnx = next(w for w in wheels if w["name"] == "onnxruntime")
    assert onnx["filename"].startswith("onnxruntime-") and onnx["filename"].endswith(".whl")
    assert f"--hash=sha256:{onnx['sha256']}" in reg_lock
    # the base-history rule: every entry has `created`
    assert all(h.get("created") for h in img.config["history"])
    # a second build is served from the layer cache and gives the same digest
    r2, doc2 = build_cli()
    assert r2.code == 0, r2.stderr
    assert doc2["digest"] == doc["digest"]
    assert [la["cached"] for la in doc2["layers"]][1:3] == [True, True]


def test_two_clean_builds_in_different_dirs_and_clocks_are_identical(
    build_cli: Callable[..., Any], tmp_path: Path, project: Path
) -> None:
    r1, doc1 = build_cli("--push", "oci:out")
    assert r1.code == 0, r1.stderr
    other = copy_project(tmp_path / "elsewhere" / "checkout")
    for p in other.rglob("*"):  # a different clock: every file has another mtime
        os.utime(p, (1_500_000_000, 1_500_000_000), follow_symlinks=False)
    os.chmod(other / "handlers" / "__init__.py", 0o600)  # and another umask
    r2, doc2 = build_cli(
        "--push",
        "oci:out",
        cwd=other,
        env={"RELEASE_CACHE_DIR": str(tmp_path / "fresh-cache"), "TZ": "Asia/Tokyo"},
    )
    assert r2.code == 0, r2.stderr
    assert not any(la["cached"] for la in doc2["layers"][1:])  # really built from scratch
    assert doc2["digest"] == doc1["digest"]
    assert [la["digest"] for la in doc2["layers"]] == [la["digest"] for la in doc1["layers"]]


def test_tampered_model_file_in_cache_fails(
    build_env: dict[str, str], project: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    r = run_cli(
        "model",
        "fetch",
        "--dest",
        tmp_path / "m",
        cwd=project,
        env={**build_env, "RELEASE_CACHE_DIR": str(cache)},
    )
    assert r.code == 0, r.stderr
    lock = json.loads((project / "model" / "model.lock.json").read_bytes())
    onnx = next(f for f in lock["files"] if f["path"].endswith(".onnx"))
    blob = cache / "blobs" / "sha256" / onnx["sha256"]
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    r = run_cli(
        "build",
        "--push",
        "oci:tampered",
        cwd=project,
        env={**build_env, "RELEASE_CACHE_DIR": str(cache)},
    )
    assert r.code == 1, r.stderr
    assert f"opt/model/{onnx['path']}: sha256 " in r.stderr
    assert f"the lock says {onnx['sha256']}" in r.stderr
    assert not (project / "tampered").exists() or not list(
        (project / "tampered" / "blobs" / "sha256").glob("*")
    )


def test_base_by_tag_is_refused(build_cli: Callable[..., Any], base_image: str) -> None:
    tagged = base_image.rpartition("@")[0] + ":latest"
    r, doc = build_cli("--base", tagged)
    assert r.code == 2
    assert f"release: error: base image {tagged!r} is not pinned by digest" in r.stderr
    assert doc["exit_code"] == 2


def test_registry_down_exits_3(build_cli: Callable[..., Any], dead_registry: str) -> None:
    r, doc = build_cli("--push", f"{dead_registry}/platform")
    assert r.code == 3
    assert f"registry {dead_registry} is unreachable" in r.stderr
    assert doc["exit_code"] == 3


def test_size_gate(build_cli: Callable[..., Any], project: Path, tmp_path: Path) -> None:
    p = copy_project(tmp_path / "small")
    toml = (p / "release.toml").read_text()
    (p / "release.toml").write_text(
        toml.replace('requirements = "', 'max_size = 1000000\nrequirements = "', 1)
    )
    r, _ = build_cli("--push", "oci:out", cwd=p)
    assert r.code == 1, r.stderr
    assert "over [image].max_size (1000000 bytes)" in r.stderr
    assert not (p / "out").exists()


# --- org.opencontainers.image.source: the repository's URL, never a path ----------------
SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"


def _clone(tmp_path: Path, origin: str | None = None) -> Path:
    """A `git clone` of a one-commit checkout of the example project (so `origin` is the
    upstream's local path), its origin then set to `origin` when given."""
    upstream = copy_project(tmp_path / "upstream", git=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(upstream), str(clone)], check=True)
    if origin is not None:
        subprocess.run(["git", "-C", str(clone), "remote", "set-url", "origin", origin], check=True)
    return clone


def _head(checkout: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.parametrize(
    ("origin", "source"),
    [
        (None, None),  # the clone's origin: a local path of this machine
        ("git@github.com:acme/platform.git", "https://github.com/acme/platform"),
    ],
)
def test_build_names_the_repository_url_as_source_never_a_path(
    build_cli: Callable[..., Any], tmp_path: Path, origin: str | None, source: str | None
) -> None:
    clone = _clone(tmp_path, origin)
    r, doc = build_cli("--push", "oci:out", cwd=clone)
    assert r.code == 0, r.stderr
    img = open_image(open_registry("oci:out", clone), doc["digest"])
    for notes in (img.manifest["annotations"], img.labels):
        assert notes.get(SOURCE) == source
        assert notes[REVISION] == _head(clone)


def test_image_annotations_is_what_the_build_writes(tmp_path: Path) -> None:
    from release.image.build import image_annotations

    digest = "sha256:" + "ab" * 32
    clone = _clone(tmp_path, "https://x-access-token:ghs_secret@github.com/acme/platform.git")
    assert image_annotations(clone, 1_700_000_000, digest) == {
        "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
        REVISION: _head(clone),
        SOURCE: "https://github.com/acme/platform",
        "org.opencontainers.image.base.digest": digest,
    }
    subprocess.run(["git", "-C", str(clone), "remote", "remove", "origin"], check=True)
    assert SOURCE not in image_annotations(clone, 0, digest)
    plain = copy_project(tmp_path / "not-git")  # not a checkout: no revision, no source
    assert set(image_annotations(plain, 0, digest)) == {
        "org.opencontainers.image.created",
        "org.opencontainers.image.base.digest",
    }


# --- read back by independent clients ----------------------------------------------------------
def test_pushed_image_read_back_by_skopeo(
    pushed: dict[str, Any], registry: str, tmp_path: Path
) -> None:
    skopeo = require_binary("skopeo")
    ref = f"docker://{registry}/platform@{pushed['digest']}"
    raw = subprocess.run(
        [skopeo, "inspect", "--tls-verify=false", "--raw", ref], capture_output=True, check=True
    )
    manifest = json.loads(raw.stdout)
    assert "sha256:" + hashlib.sha256(raw.stdout).hexdigest() == pushed["digest"]
    assert [la["annotations"]["dev.release.layer.role"] for la in manifest["layers"]] == ROLES
    info = json.loads(
        subprocess.run(
            [skopeo, "inspect", "--no-tags", "--tls-verify=false", ref],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert json.loads(info["Labels"]["dev.release.functions"]) == pushed["functions"]
    assert info["Architecture"] == "amd64"
    out = tmp_path / "copy"
    subprocess.run(
        [skopeo, "copy", "--src-tls-verify=false", ref, f"oci:{out}:x"],
        capture_output=True,
        check=True,
    )
    copied = json.loads((out / "index.json").read_text())["manifests"][0]["digest"]
    assert copied == pushed["digest"]  # copied without re-serialising: same bytes
    # umoci reads the history (an entry without `created` crashes it)
    umoci = require_binary("umoci")
    stat = subprocess.run(
        [umoci, "stat", "--json", "--image", f"{out}:x"], capture_output=True, text=True
    )
    assert stat.returncode == 0, stat.stderr
    history = json.loads(stat.stdout)["history"]
    assert [h["created_by"] for h in history][-4:] == [
        f"release build: {r} layer" for r in ("deps", "model", "policy", "code")
    ]


def _committed_blobs(proxy: RegistryProxy, seen: list[Seen]) -> list[str]:
    """The digest of every blob upload the registry completed (201 to the PUT that closes
    an upload session: `PUT /v2/REPO/blobs/uploads/ID?digest=...`)."""
    out = []
    for s in seen:
        url = urlsplit(s.path)
        if s.method == "PUT" and "/blobs/uploads/" in url.path and s.status == 201:
            out.extend(parse_qs(url.query)["digest"])
    return out


def test_pushed_twice_skips_every_blob(
    build_cli: Callable[..., Any],
    pushed: dict[str, Any],
    registry: str,
    registry_proxy: RegistryProxy,
) -> None:
    p = registry_proxy
    repo = f"counted{os.urandom(3).hex()}"
    r, doc = build_cli("--push", f"{p.host}/{repo}")
    assert r.code == 0, r.stderr
    assert doc["digest"] == pushed["digest"]
    # what the image is made of, from the manifest as the registry serves it
    req = Request(
        f"http://{registry}/v2/{repo}/manifests/{doc['digest']}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    with urlopen(req, timeout=30) as resp:
        manifest = json.loads(resp.read())
    blobs = {manifest["config"]["digest"], *(la["digest"] for la in manifest["layers"])}
    first = list(p.log)
    assert sorted(_committed_blobs(p, first)) == sorted(blobs)  # each blob exactly once
    r, doc2 = build_cli("--push", f"{p.host}/{repo}")
    assert r.code == 0, r.stderr
    assert doc2["digest"] == doc["digest"]
    second = p.log[len(first) :]
    assert _committed_blobs(p, second) == []
    assert [s for s in second if s.method in ("POST", "PATCH")] == []  # no upload started
    assert {s.method for s in second} <= {"HEAD", "GET", "PUT"}


def _served(proxy: RegistryProxy) -> list[tuple[str, int]]:
    """(method, status) of every failure the proxy answered instead of the registry."""
    return sorted((s.method, s.status) for s in proxy.log if not s.forwarded)


def test_transient_503_and_429_are_retried_and_the_push_succeeds(
    build_cli: Callable[..., Any], pushed: dict[str, Any], registry_proxy: RegistryProxy
) -> None:
    p = registry_proxy
    p.fail("HEAD", r"/blobs/sha256:", 503, times=1)
    p.fail("POST", r"/blobs/uploads/$", 503, times=2)
    p.fail("PUT", r"/manifests/", 429, times=2, Retry_After="0")
    r, doc = build_cli("--push", f"{p.host}/retried{os.urandom(3).hex()}")
    assert r.code == 0, r.stderr
    assert doc["digest"] == pushed["digest"]
    assert _served(p) == [("HEAD", 503), ("POST", 503), ("POST", 503), ("PUT", 429), ("PUT", 429)]
    # each refused request was sent again and then reached the registry
    assert [s.status for s in p.requests("PUT", r"/manifests/")] == [429, 429, 201]
    assert [s.status for s in p.requests("POST", r"/blobs/uploads/$")][:3] == [503, 503, 202]


def test_a_registry_that_keeps_failing_is_exit_3_naming_it(
    build_cli: Callable[..., Any], registry_proxy: RegistryProxy
) -> None:
    p = registry_proxy
    p.fail("POST", r"/blobs/uploads/$", 500, times=None)
    r, _ = build_cli("--push", f"{p.host}/broken")
    assert r.code == 3, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(err) == 1, r.stderr
    assert re.fullmatch(
        rf"release: error: registry {re.escape(p.host)}: start upload of sha256:[0-9a-f]{{64}} "
        "failed with HTTP 500",
        err[0],
    ), r.stderr
    # the first try and RETRY.total retries, no more
    assert [s.status for s in p.requests("POST", r"/blobs/uploads/$")] == [500] * (1 + 5)


def test_docker_pulls_by_digest_and_runs_each_function(
    pushed: dict[str, Any], registry: str, docker_engine: Any
) -> None:
    ref = f"{registry}/platform@{pushed['digest']}"
    img = docker_engine.images.pull(ref)
    assert f"{registry}/platform@{pushed['digest']}" in img.attrs["RepoDigests"]
    out = docker_engine.containers.run(
        ref,
        entrypoint=[
            "python3",
            "-c",
            "import json,os,onnxruntime,tokenizers;"
            "print(json.dumps({'dir': os.environ['MODEL_DIR'], 'cwd': os.getcwd(), 'uid': os.getuid()}))",
        ],
        network_mode="none",
        remove=True,
        user="1000:1000",
    )
    assert json.loads(out) == {"dir": "/opt/model", "cwd": "/var/task", "uid": 1000}


def test_tampered_model_file_fails_even_when_the_model_layer_is_cached(
    build_cli: Callable[..., Any], project: Path, layer_cache: Path
) -> None:
    r, _ = build_cli("--push", "oci:warm")
    assert r.code == 0, r.stderr
    lock = json.loads((project / "model" / "model.lock.json").read_bytes())
    cfg_file = next(f for f in lock["files"] if f["path"] == "config.json")
    blob = layer_cache / "blobs" / "sha256" / cfg_file["sha256"]
    good = blob.read_bytes()
    os.chmod(blob, 0o644)
    try:
        blob.write_bytes(good.replace(b"{", b"{ ", 1))
        r2, doc2 = build_cli("--push", "oci:warm2")
        assert r2.code == 1, r2.stderr
        assert "opt/model/config.json: sha256 " in r2.stderr and "cached model file" in r2.stderr
        assert doc2["exit_code"] == 1
        assert not (project / "warm2").exists()
    finally:
        blob.write_bytes(good)
        os.chmod(blob, 0o444)


def test_model_layer_carries_the_runtime_model_named_in_the_image_lock(
    build_cli: Callable[..., Any], project: Path, tmp_path: Path
) -> None:
    """docs/model-format.md: the pre-optimized model sits in the model directory in place
    of the source ONNX it was made from; the image's lock records its digests, its source
    and its converter; the pin is unchanged."""
    import onnxruntime

    from handlers.common import model as mm
    from release import modelpin

    r, doc = build_cli()
    assert r.code == 0, r.stderr
    img = open_image(open_registry("oci:.release/registry", project), doc["digest"])
    img.extract(["model"], tmp_path)
    image_lock = modelpin.read_lock(tmp_path / "opt" / "release" / "model.lock.json")
    project_lock = modelpin.read_lock(project / "model" / "model.lock.json")
    assert image_lock.digest == project_lock.digest and image_lock.files == project_lock.files
    rt = image_lock.runtime
    assert rt is not None and rt.format == "onnx-external-data-v1" and rt.dir == "runtime"
    assert rt.placement == "replaces-source"
    assert rt.source.path == "onnx/model.onnx"
    assert rt.source.sha256 == project_lock.by_path()["onnx/model.onnx"].sha256
    assert rt.converter.onnxruntime == onnxruntime.__version__
    assert (
        f"onnxruntime=={onnxruntime.__version__} "
        in (project / "handlers" / "requirements.lock").read_text()
    )
    runtime = tmp_path / "opt" / "model" / "runtime"
    for f in rt.files:
        data = (runtime / f.path).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f.size, f.sha256)
    assert sorted(p.name for p in runtime.iterdir()) == ["model.onnx", "model.weights"]
    # the weights once: the source ONNX is not shipped, nothing sits next to the lock
    assert not (tmp_path / "opt" / "model" / "onnx").exists()
    assert sorted(p.name for p in (tmp_path / "opt" / "release").iterdir()) == ["model.lock.json"]
    # the handler's loader serves exactly these files
    m = mm.SentimentModel.load(
        tmp_path / "opt" / "model", tmp_path / "opt" / "release" / "model.lock.json"
    )
    assert m.lock.runtime is not None and m.lock.runtime.digest == rt.digest
    assert m.predict(["a wonderful, brilliant film"])[0].label == "POSITIVE"
