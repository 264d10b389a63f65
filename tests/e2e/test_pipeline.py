"""End to end on the example config, as a new user runs it: `release pipeline` in a clean
copy of the project (real base image from mmdebstrap, OCI layout registry, generated key,
SQLite ledger, `local` environment), then `release verify` and `release audit` on the
result; then the tamper matrix of `release verify` and a run with a changed model file.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import REPO, copy_project, require_binary, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.docker]

ARTIFACTS = REPO / "tests" / "artifacts"


def cli(project: Path, env: dict[str, str], *args: str) -> Any:
    return run_cli(*args, cwd=project, env=env)


@pytest.fixture(scope="module")
def released(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One full pipeline run; the tests below read (copies of) its result."""
    project = copy_project(tmp_path_factory.mktemp("e2e") / "project", git=True)
    env = {"RELEASE_BASE": base_image, "RELEASE_CACHE_DIR": str(project / ".cache")}
    r = cli(project, env, "pipeline", "--json")
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    for stage in ("lock", "build", "sbom", "attest", "canary", "gate", "promote"):
        assert f"{stage}:" in r.stderr, f"no progress line for {stage}: {r.stderr}"
    return {"project": project, "env": env, "doc": doc, "stderr": r.stderr}


def test_pipeline_promotes_and_summarises(released: dict[str, Any]) -> None:
    doc = released["doc"]
    assert doc["digest"].startswith("sha256:") and len(doc["digest"]) == 71
    assert doc["decision"]["allow"] is True
    types = {a["predicate_type"] for a in doc["attestations"]}
    assert {
        "https://slsa.dev/provenance/v1",
        "https://cyclonedx.org/bom",
        "https://model_signing/signature/v1.0",
        "https://github.com/release-platform/release/attestations/canary-report/v2",
        "https://github.com/release-platform/release/attestations/promotion/v1",
    } <= types
    assert Path(doc["report"]).is_file()
    assert doc["digest"] in Path(doc["report"]).read_text()
    st = cli(released["project"], released["env"], "status", "--env", "local", "--json")
    assert st.code == 0, st.stderr
    assert doc["digest"] in st.stdout


def test_verify_passes_on_pipeline_result(released: dict[str, Any]) -> None:
    p, env, digest = released["project"], released["env"], released["doc"]["digest"]
    r = cli(p, env, "verify", digest, "--env", "local", "--offline", "--json")
    assert r.code == 0, r.stderr + r.stdout
    v = json.loads(r.stdout)
    names = {c["name"]: c for c in v["checks"]}
    for claim in (
        "image",
        "model layer",
        "attestation provenance",
        "attestation sbom",
        "attestation model",
        "attestation canary",
        "attestation promotion",
        "sbom packages",
        "sbom model",
        "provenance",
        "canary",
        "ledger chain",
        "gate decision",
        "promotion",
    ):
        assert claim in names, f"claim {claim!r} not checked: {sorted(names)}"
        assert names[claim]["ok"], names[claim]
    human = cli(p, env, "verify", digest, "--env", "local")
    assert human.code == 0
    assert "FAIL" not in human.stdout and human.stdout.count("PASS") == len(v["checks"])


def test_audit_html_in_chromium(released: dict[str, Any], tmp_path: Path) -> None:
    p, env, digest = released["project"], released["env"], released["doc"]["digest"]
    out = tmp_path / "audit.html"
    r = cli(p, env, "audit", "--env", "local", "--format", "html", "-o", str(out))
    assert r.code == 0, r.stderr
    html = out.read_text()
    assert digest in html
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    md = cli(p, env, "audit", "--env", "local", "--format", "md")
    assert md.code == 0 and digest in md.stdout and "allow" in md.stdout
    js = cli(p, env, "audit", "--env", "local", "--format", "json")
    rel = json.loads(js.stdout)["releases"]
    assert [x["digest"] for x in rel] == [digest]
    assert rel[0]["decision_allow"] is True and rel[0]["canary"]["passed"] is True
    assert rel[0]["model_files"] and rel[0]["sbom"]["packages"] > 10
    # rendered by a real browser
    chromium = require_binary("chromium")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "audit.png"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert digest in dom.stdout and "allow" in dom.stdout.lower() and "<svg" in dom.stdout
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--screenshot={shot}",
            "--window-size=1280,2400",
            out.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 10_000


# --- tamper matrix: each names the exact claim --------------------------------------------
def _copy(released: dict[str, Any], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    dst = tmp_path / "project"
    shutil.copytree(
        released["project"], dst, symlinks=True, ignore=shutil.ignore_patterns(".cache")
    )
    env = {**released["env"], "RELEASE_CACHE_DIR": str(released["project"] / ".cache")}
    return dst, env


def _failed(project: Path, env: dict[str, str], digest: str) -> dict[str, str]:
    r = cli(project, env, "verify", digest, "--env", "local", "--json")
    assert r.code == 1, r.stderr + r.stdout
    return {c["name"]: c["detail"] for c in json.loads(r.stdout)["checks"] if not c["ok"]}


def _registry(project: Path) -> Any:
    from release.image.registry import open_registry

    return open_registry("oci:.release/registry", project)


def _replace_referrer(project: Path, digest: str, predicate_type: str, bundle: bytes) -> None:
    """Drop the stored bundle of `predicate_type` and attach `bundle` in its place."""
    from release.attest.bundle import ARTIFACT_TYPE, BUNDLE_MEDIA_TYPE, PREDICATE_ANNOTATION
    from release.image.oci import OCI_INDEX, canonical, digest_of, referrers_tag

    reg = _registry(project)
    tag = referrers_tag(digest)
    index_digest = reg.tags()[tag]
    index = json.loads(reg.get_manifest(index_digest)[0])
    index["manifests"] = [
        m
        for m in index["manifests"]
        if (m.get("annotations") or {}).get(PREDICATE_ANNOTATION) != predicate_type
    ]
    data = canonical(index)
    reg.put_blob(data, digest_of(data))
    reg._add_to_index(digest_of(data), len(data), OCI_INDEX, tag)
    reg.attach(
        digest, ARTIFACT_TYPE, bundle, BUNDLE_MEDIA_TYPE, {PREDICATE_ANNOTATION: predicate_type}
    )


def _bundle(project: Path, digest: str, predicate_type: str) -> bytes:
    from release.attest.store import fetch_bundles

    found = fetch_bundles(_registry(project), digest, predicate_type)
    assert found
    return found[-1].bundle


def test_verify_attestation_swapped_for_another_images(
    released: dict[str, Any], tmp_path: Path
) -> None:
    """The SBOM bundle replaced by a validly signed one about another digest."""
    from release.attest import sign

    project, env = _copy(released, tmp_path)
    digest = released["doc"]["digest"]
    other = "sha256:" + "ab" * 32
    signer = sign.make_signer("key:.release/keys/signing.pem", project)
    stmt = json.loads(
        base64.b64decode(
            json.loads(_bundle(project, digest, "https://cyclonedx.org/bom"))["dsseEnvelope"][
                "payload"
            ]
        )
    )
    stmt["subject"][0]["digest"] = {"sha256": other.split(":")[1]}
    forged = signer.sign(json.dumps(stmt).encode())
    _replace_referrer(project, digest, "https://cyclonedx.org/bom", forged)
    failed = _failed(project, env, digest)
    assert (
        "attestation sbom" in failed and other.split(":")[1][:12] in failed["attestation sbom"]
    ), failed
    assert "attestation provenance" not in failed


def test_verify_sbom_edited(released: dict[str, Any], tmp_path: Path) -> None:
    """A package version edited inside the signed SBOM payload: the signature no longer holds."""
    project, env = _copy(released, tmp_path)
    digest = released["doc"]["digest"]
    b = json.loads(_bundle(project, digest, "https://cyclonedx.org/bom"))
    stmt = json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))
    lib = next(c for c in stmt["predicate"]["components"] if c.get("type") == "library")
    lib["version"] = "999.0"
    b["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()
    _replace_referrer(project, digest, "https://cyclonedx.org/bom", json.dumps(b).encode())
    failed = _failed(project, env, digest)
    assert "attestation sbom" in failed and "signature" in failed["attestation sbom"].lower(), (
        failed
    )


def test_verify_model_layer_swapped(released: dict[str, Any], tmp_path: Path) -> None:
    """The model layer's blob replaced in the registry storage."""
    from release.image.inspect import open_image

    project, env = _copy(released, tmp_path)
    digest = released["doc"]["digest"]
    reg = _registry(project)
    image = open_image(reg, digest)
    model = next(la for la in image.layers if la.role == "model")
    blob = project / ".release/registry/blobs/sha256" / model.digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.unlink()
    blob.write_bytes(bytes(data))
    failed = _failed(project, env, digest)
    assert "image" in failed and "model" in failed["image"], failed


def test_verify_ledger_row_edited(released: dict[str, Any], tmp_path: Path) -> None:
    project, env = _copy(released, tmp_path)
    digest = released["doc"]["digest"]
    db = project / ".release/ledger.db"
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        table = next(t for t in tables if "event" in t)
        cols = [r[1] for r in con.execute(f"pragma table_info({table})")]
        assert "actor" in cols
        con.execute(f"update {table} set actor = 'mallory' where seq = 1")
    failed = _failed(project, env, digest)
    assert "ledger chain" in failed and "1" in failed["ledger chain"], failed
    r = cli(project, env, "audit", "--verify-chain")
    assert r.code == 1 and "ledger chain broken" in r.stderr


def test_changed_model_file_stops_pipeline(released: dict[str, Any], tmp_path: Path) -> None:
    """A second run with one model file changed is stopped with exit 1; nothing promoted."""
    project, env = _copy(released, tmp_path)
    before = cli(project, env, "status", "--env", "local", "--json")
    cfg = project / "model/examples/sst2-tiny/config.json"
    cfg.write_text(cfg.read_text().replace("POSITIVE", "P0SITIVE"))
    r = cli(project, env, "pipeline")
    assert r.code == 1, r.stderr
    assert "config.json" in r.stderr and "lock" in r.stderr
    after = cli(project, env, "status", "--env", "local", "--json")
    assert json.loads(after.stdout) == json.loads(before.stdout)


def test_second_release_is_compared_with_the_first_then_rolled_back(
    released: dict[str, Any], tmp_path: Path
) -> None:
    """A code change: the canary runs against the live release's signed report (paired),
    the audit shows both releases with baseline charts, and rollback restores the first."""
    project, env = _copy(released, tmp_path)
    first = released["doc"]["digest"]
    handler = project / "handlers" / "remediator.py"
    handler.write_text(handler.read_text() + "\n# second release\n")
    git = [
        "git",
        "-c",
        "user.name=test",
        "-c",
        "user.email=test@example.invalid",
        "-C",
        str(project),
    ]
    subprocess.run([*git, "commit", "-qam", "second release"], check=True)
    r = cli(project, env, "pipeline", "--json")
    assert r.code == 0, r.stderr
    second = json.loads(r.stdout)["digest"]
    assert second != first
    assert f"vs promoted {first[:19]}" in r.stderr
    rel = json.loads(cli(project, env, "audit", "--env", "local", "--format", "json").stdout)[
        "releases"
    ]
    assert [x["digest"] for x in rel] == [first, second]
    assert rel[1]["canary"]["baseline_shares"] == rel[0]["canary"]["candidate_shares"]
    checks = {c["name"]: c["ok"] for c in rel[1]["canary"]["checks"]}
    # paired checks against the first release ran (and passed: same model, same code path)
    assert {"share-shift", "flip-rate", "confident-flips", "confidence-ks", "accuracy-drop"} <= set(
        checks
    ), checks
    assert all(checks.values()), checks
    back = cli(project, env, "rollback", "--env", "local", "--json")
    assert back.code == 0, back.stderr
    st = json.loads(cli(project, env, "status", "--env", "local", "--json").stdout)
    assert first in json.dumps(st) and second not in json.dumps(st.get("digest", ""))
    v = cli(project, env, "verify", first, "--env", "local")
    assert v.code == 0, v.stdout + v.stderr
