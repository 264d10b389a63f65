"""Files planted by another layer (issue 14.1), on images built by `release build`.

A clean release goes through `release pipeline` (build, sbom, attest, canary, gate,
promote) and `release verify` passes. Then:
- a base image (by digest, made from the real mmdebstrap base plus one layer) that puts
  `evil.py` into the model directory: the image built on it fails `release verify`
  (exit 1, the "model layer" claim naming the base layer and the file), the gate denies,
  promote refuses (nothing moves), and the SBOM, the canary and `release invoke` refuse;
- the clean image with one more layer on top that whites-out a model file, replaces one,
  or makes the model directory opaque: `release verify` exit 1 naming that layer, in
  the OCI layout and in a real docker-registry.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from release.image.oci import OCI_MANIFEST, ROLE_ANNOTATION, canonical, digest_of
from release.image.registry import open_registry
from tests.fixtures.tools import copy_project, run_cli

# the module fixture runs a whole pipeline and a second build: more than the default 600 s
# on a shared 2-core machine
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(1800)]


def _layer(items: list[tuple[str, bytes | None]]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in items:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                tf.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), "sha256:" + hashlib.sha256(tar).hexdigest()


def with_layer(
    src: Any, digest: str, items: list[tuple[str, bytes | None]], dst: Any, role: str | None
) -> str:
    """The image `digest` of `src` with one more layer on top, written to `dst`."""
    manifest = json.loads(src.get_manifest(digest)[0])
    config = json.loads(src.get_blob(manifest["config"]["digest"]))
    for d in [manifest["config"]["digest"], *(la["digest"] for la in manifest["layers"])]:
        if not dst.has_blob(d):
            dst.put_blob(src.get_blob(d), d)
    blob, diff_id = _layer(items)
    dst.put_blob(blob, digest_of(blob))
    desc: dict[str, Any] = {
        "mediaType": manifest["layers"][-1]["mediaType"],
        "digest": digest_of(blob),
        "size": len(blob),
    }
    if role:
        desc["annotations"] = {ROLE_ANNOTATION: role}
    manifest["layers"].append(desc)
    config["rootfs"]["diff_ids"].append(diff_id)
    cbytes = canonical(config)
    dst.put_blob(cbytes, digest_of(cbytes))
    manifest["config"] = {**manifest["config"], "digest": digest_of(cbytes), "size": len(cbytes)}
    return str(dst.put_manifest(canonical(manifest), OCI_MANIFEST))


@pytest.fixture(scope="module")
def release(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A clean release through the whole pipeline, and an image built on a base that plants
    a file in the model directory (same project, same cache)."""
    root = tmp_path_factory.mktemp("merged")
    project = copy_project(root / "project", git=True)
    env = {"RELEASE_BASE": base_image, "RELEASE_CACHE_DIR": str(root / "cache")}
    r = run_cli("pipeline", "--json", cwd=project, env=env)
    assert r.code == 0, r.stderr
    clean = json.loads(r.stdout)["digest"]
    # the evil base: the real base plus one layer, in its own layout, by digest
    layout, _, base_digest = base_image.removeprefix("oci:").rpartition("@")
    src = open_registry(f"oci:{layout}", project)
    evil_dir = root / "evil-base"
    evil = with_layer(
        src,
        base_digest,
        [
            ("opt/", None),
            ("opt/model/", None),
            ("opt/model/evil.py", b"import os; os.system('id')\n"),
        ],
        open_registry(f"oci:{evil_dir}", project),
        role=None,
    )
    r = run_cli(
        "build", "--json", cwd=project, env={**env, "RELEASE_BASE": f"oci:{evil_dir}@{evil}"}
    )
    assert r.code == 0, r.stderr
    planted = json.loads(r.stdout)["digest"]
    return {"project": project, "env": env, "clean": clean, "planted": planted}


def _verify(
    rel: dict[str, Any], ref: str, *extra: str
) -> tuple[int, dict[str, dict[str, Any]], str]:
    r = run_cli("verify", ref, "--json", *extra, cwd=rel["project"], env=rel["env"])
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]} if r.stdout.strip() else {}
    return r.code, checks, r.stderr


def test_clean_release_passes(release: dict[str, Any]) -> None:
    code, checks, err = _verify(release, release["clean"], "--env", "local")
    assert code == 0, (err, {k: v for k, v in checks.items() if not v["ok"]})
    assert checks["model layer"]["ok"]
    assert "holds nothing else and only the model layer wrote it" in checks["model layer"]["detail"]


def test_base_planting_a_model_file_fails_verify_gate_and_promote(release: dict[str, Any]) -> None:
    from release.image.inspect import open_image

    p, env, d = release["project"], release["env"], release["planted"]
    # the base is the real base's one layer plus the planting one: layer 2 of the image
    planting = open_image(open_registry("oci:.release/registry", p), d).layers[1]
    assert planting.role == "base"
    named = f"layer 2 (base, {planting.digest[:19]}) touches /opt/model: adds /opt/model/evil.py"
    code, checks, _ = _verify(release, d)
    assert code == 1
    assert not checks["model layer"]["ok"]
    assert checks["model layer"]["detail"].startswith(named), checks["model layer"]
    assert "not in the lock: evil.py" in checks["model layer"]["detail"]
    # the SBOM, hence the attestations, are refused for it
    r = run_cli("attest", d, cwd=p, env=env)
    assert r.code == 1 and "evil.py" in r.stderr, r.stderr
    # the canary refuses to run it
    r = run_cli("canary", d, cwd=p, env=env)
    assert r.code == 1, r.stderr
    assert f"image {d[:19]}: model does not match the lock baked in the image" in r.stderr
    assert named in r.stderr
    # the gate denies, naming the model claim and the layer
    r = run_cli("gate", d, "--env", "local", cwd=p, env=env)
    assert r.code == 1
    assert f"model layer: does not match the lock ({named}" in r.stderr, r.stderr
    # promote refuses and nothing moves
    before = json.loads(run_cli("status", "--env", "local", "--json", cwd=p, env=env).stdout)
    r = run_cli("promote", d, "--env", "local", cwd=p, env=env)
    assert r.code == 1, r.stderr
    assert named in r.stderr
    after = json.loads(run_cli("status", "--env", "local", "--json", cwd=p, env=env).stdout)
    assert after == before and release["clean"] in json.dumps(after)


@pytest.mark.parametrize(
    ("items", "says", "problem"),
    [
        (
            [("opt/model/.wh.config.json", b"")],
            "deletes /opt/model/config.json",
            "missing: config.json",
        ),
        ([("opt/model/config.json", b"{}")], "adds /opt/model/config.json", "changed: config.json"),
        ([("opt/model/.wh..wh..opq", b"")], "empties /opt/model", "missing: README.md"),
    ],
    ids=["whiteout", "replace", "opaque"],
)
def test_a_later_layer_touching_the_model_dir(
    release: dict[str, Any],
    registry: str,
    items: list[tuple[str, bytes | None]],
    says: str,
    problem: str,
) -> None:
    p = release["project"]
    src = open_registry("oci:.release/registry", p)
    for where in ("oci:.release/registry", f"{registry}/merged"):
        dst = open_registry(where, p)
        d = with_layer(src, release["clean"], items, dst, role="code")
        ref = d if where.startswith("oci:") else f"{where}@{d}"
        code, checks, err = _verify(release, ref)
        assert code == 1, err
        detail = checks["model layer"]["detail"]
        assert not checks["model layer"]["ok"]
        n = len(json.loads(dst.get_manifest(d)[0])["layers"])
        assert detail.startswith(f"layer {n} (code, sha256:"), detail
        assert f"touches /opt/model: {says}" in detail and problem in detail, detail


# --- the SBOM of the merged filesystem, next to cyclonedx-py's ----------------------------
CYCLONEDX_PY = [
    "cyclonedx-py",
    "environment",
    "-S",
    "--sv",
    "1.6",
    "--of",
    "JSON",
    "--output-reproducible",
]


@pytest.fixture(scope="module")
def sbom_doc(release: dict[str, Any]) -> dict[str, Any]:
    r = run_cli("sbom", release["clean"], "--validate", cwd=release["project"], env=release["env"])
    assert r.code == 0, r.stderr
    return dict(json.loads(r.stdout))


def test_sbom_matches_cyclonedx_py_on_the_extracted_deps(
    release: dict[str, Any], sbom_doc: dict[str, Any], tmp_path: Path
) -> None:
    """`cyclonedx-py environment` over the image's /opt/deps (extracted from the merged
    filesystem; an interpreter run with -S and PYTHONPATH=<deps>, so nothing else is on
    its path) lists the same packages, versions and purls, and the same dependency graph."""
    import os
    import subprocess
    import sys

    from release.image import fs
    from release.image.inspect import open_image
    from tests.fixtures.tools import require_binary

    image = open_image(open_registry("oci:.release/registry", release["project"]), release["clean"])
    fs.scan(image, hash=lambda _p: False, extract=["opt/deps"], dest=tmp_path / "root")
    deps = tmp_path / "root" / "opt" / "deps"
    venv_exe = Path(sys.executable).parent / "cyclonedx-py"  # installed from the lock
    exe = str(venv_exe) if venv_exe.exists() else require_binary("cyclonedx-py")
    out = tmp_path / "theirs.cdx.json"
    p = subprocess.run(
        [exe, *CYCLONEDX_PY[1:], "-o", str(out), sys.executable],
        env={**os.environ, "PYTHONPATH": str(deps)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    theirs = json.loads(out.read_text())

    def pkgs(comps: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
        return {
            (c["name"], c["version"], c["purl"])
            for c in comps
            if str(c.get("purl", "")).startswith("pkg:pypi/")
        }

    ours_pkgs = pkgs(sbom_doc["components"])
    assert len(ours_pkgs) > 20
    assert ours_pkgs == pkgs(theirs["components"])

    def graph(doc: dict[str, Any]) -> set[tuple[str, str]]:
        name = {
            c["bom-ref"]: c["name"].lower()
            for c in doc["components"]
            if str(c.get("purl", "")).startswith("pkg:pypi/")
        }
        return {
            (name[d["ref"]], name[x])
            for d in doc["dependencies"]
            if d["ref"] in name
            for x in d.get("dependsOn", [])
            if x in name
        }

    assert graph(sbom_doc) and graph(sbom_doc) == graph(theirs)


def _pinned(lock: str) -> dict[tuple[str, str], set[str]]:
    """(normalised name, version) -> the sha256 hashes a hash-pinned requirements file gives."""
    import re

    out: dict[tuple[str, str], set[str]] = {}
    cur: tuple[str, str] | None = None
    for line in lock.splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        if m:
            cur = (re.sub(r"[-_.]+", "-", m.group(1)).lower(), m.group(2))
            out[cur] = set()
        elif cur and (h := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            out[cur].add(h.group(1))
    return out


def test_sbom_of_the_real_image(release: dict[str, Any], sbom_doc: dict[str, Any]) -> None:
    comps = sbom_doc["components"]
    # the Debian base's packages, from the merged filesystem's dpkg database
    debs = {c["name"]: c for c in comps if str(c.get("purl", "")).startswith("pkg:deb/")}
    assert len(debs) > 50 and "python3" in debs and "libc6" in debs
    libc = debs["libc6"]
    # the version percent-encoded as the purl spec asks ("+" -> "%2B"), and read back
    assert "+" in libc["version"]
    version = libc["version"].replace("+", "%2B")
    assert libc["purl"] == f"pkg:deb/debian/libc6@{version}?arch=amd64&distro=debian-12"
    from packageurl import PackageURL

    assert PackageURL.from_string(libc["purl"]).version == libc["version"]
    osc = next(c for c in comps if c["type"] == "operating-system")
    assert (osc["name"], osc["version"]) == ("debian", "12")
    base_deps = next(d for d in sbom_doc["dependencies"] if d["ref"] == "base-image")["dependsOn"]
    assert libc["bom-ref"] in base_deps
    # licences of DEP-5 copyright files, as SPDX where they are SPDX
    with_ids = [
        c
        for c in debs.values()
        if any("id" in (x.get("license") or {}) for x in c.get("licenses", []))
    ]
    assert len(with_ids) > 20
    # no free-text name that is an SPDX id or expression
    from cyclonedx.spdx import fixup_id, is_expression

    for c in comps:
        for x in c.get("licenses", []):
            n = (x.get("license") or {}).get("name")
            assert n is None or not (fixup_id(n) or is_expression(n)), (c["name"], n)
    # every wheel hash is one the requirements lock pins for that package
    import re

    pinned = _pinned((release["project"] / "handlers" / "requirements.lock").read_text())
    pys = [c for c in comps if str(c.get("purl", "")).startswith("pkg:pypi/")]
    for c in pys:
        [h] = c["hashes"]
        key = (re.sub(r"[-_.]+", "-", c["name"]).lower(), c["version"])
        assert h["content"] in pinned[key], c["name"]
    # reproducible: the same image gives the same bytes
    r = run_cli("sbom", release["clean"], cwd=release["project"], env=release["env"])
    assert json.loads(r.stdout) == sbom_doc
    assert (
        r.stdout.encode()
        == run_cli(
            "sbom", release["clean"], cwd=release["project"], env=release["env"]
        ).stdout.encode()
    )
