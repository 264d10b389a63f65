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
    model, runtime = (c for c in bom["components"] if c["type"] == "machine-learning-model")
    # the pinned files the image ships; the ONNX ships as the runtime model (the weights once)
    assert {c["name"]: c["hashes"][0]["content"] for c in model["components"]} == {
        f["path"]: f["sha256"] for f in lock["files"] if f["path"] != "onnx/model.onnx"
    }
    assert {c["name"] for c in runtime["components"]} == {
        "/opt/model/runtime/model.onnx",
        "/opt/model/runtime/model.weights",
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
    # model-signing's manifest is of /opt/model as shipped (its subject that directory's
    # root digest): the locked files but the ONNX, and the runtime model's two files
    from release.modelpin import ModelLock, shipped

    shipped_lock = shipped(ModelLock.model_validate(bake_lock(reg, digest)))
    ms = verify_stored(
        reg, digest, evidence.MODEL_SIGNATURE, pol, subject=shipped_lock.digest
    ).predicate
    assert {r["name"] for r in ms["resources"]} == {
        *(f["path"] for f in lock["files"] if f["path"] != "onnx/model.onnx"),
        "runtime/model.onnx",
        "runtime/model.weights",
    }
    # and `release verify` passes on the image, every shipped model byte re-hashed
    r = run_cli("verify", digest, "--json", cwd=proj, env=env)
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["model layer"]["ok"], checks["model layer"]
    assert "in place of onnx/model.onnx" in checks["model layer"]["detail"]
    assert checks["sbom model"]["ok"], checks["sbom model"]
    assert checks["attestation model"]["ok"], checks["attestation model"]


def bake_lock(reg: object, digest: str) -> dict[str, object]:
    """The lock baked in the image (/opt/release/model.lock.json)."""
    from release.image.inspect import open_image

    img = open_image(reg, digest)
    with img._tar(img.layers_with(["model"])[0]) as tf:
        for m in tf:
            if m.name == "opt/release/model.lock.json":
                f = tf.extractfile(m)
                assert f is not None
                return dict(json.loads(f.read()))
    raise AssertionError("no baked lock")
