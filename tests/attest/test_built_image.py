"""Evidence on an image made by `release build` (the real thing, not the test image):
attest with a generated key, SBOM lists every locked model file and the deps packages,
every statement verifies against the image digest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release import evidence
from release.attest.signatures import Policy, verify_stored
from release.image.registry import open_registry
from tests.fixtures.tools import copy_project, run_cli
from tests.image.conftest import EPOCH


@pytest.fixture(scope="module")
def built(
    base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, dict[str, str]]:
    proj = copy_project(tmp_path_factory.mktemp("evproj") / "p")
    env = {
        "RELEASE_BASE": base_image,
        "RELEASE_CACHE_DIR": str(tmp_path_factory.mktemp("evcache")),
        "SOURCE_DATE_EPOCH": EPOCH,
    }
    r = run_cli("build", "--push", "oci:.release/registry", "--json", cwd=proj, env=env)
    assert r.code == 0, r.stderr
    digest = json.loads(r.stdout)["digest"]
    return proj, digest, env


def test_attest_and_verify_built_image(built: tuple[Path, str, dict[str, str]]) -> None:
    proj, digest, env = built
    r = run_cli("attest", digest, "--signer", "key:.release/keys/signing.pem", cwd=proj, env=env)
    assert r.code == 0, r.stderr
    assert "generated signing key" in r.stderr
    reg = open_registry("oci:.release/registry", proj)
    pol = Policy.from_key_file(proj / ".release" / "keys" / "signing.pem.pub")
    bom = verify_stored(reg, digest, evidence.SBOM, pol).predicate
    lock = json.loads((proj / "model" / "model.lock.json").read_text())
    model = next(c for c in bom["components"] if c["type"] == "machine-learning-model")
    assert {c["name"]: c["hashes"][0]["content"] for c in model["components"]} == {
        f["path"]: f["sha256"] for f in lock["files"]
    }
    names = {c["name"].lower() for c in bom["components"] if c["type"] == "library"}
    assert {"numpy", "onnxruntime", "tokenizers"} <= names
    prov = verify_stored(reg, digest, evidence.PROVENANCE, pol).predicate
    deps = prov["buildDefinition"]["resolvedDependencies"]
    assert any(
        d.get("name") == "model" and d["digest"]["gitCommit"] == lock["commit"] for d in deps
    )
    base = next(
        d for d in deps if d.get("name") == "base"
    )  # the base actually given (RELEASE_BASE)
    layout, _, base_digest = env["RELEASE_BASE"].rpartition("@")
    # a base in a local layout is named by a purl (no path of this machine in the provenance)
    assert (
        base["uri"]
        == f"pkg:oci/{Path(layout.removeprefix('oci:')).name}@sha256%3A{base_digest[7:]}"
    )
    assert base["digest"] == {"sha256": base_digest[7:]}
    assert prov["buildDefinition"]["externalParameters"]["base"] == env["RELEASE_BASE"]
    ms = verify_stored(reg, digest, evidence.MODEL_SIGNATURE, pol, subject=lock["digest"]).predicate
    assert len(ms["resources"]) == len(lock["files"])
