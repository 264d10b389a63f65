"""The runtime model (docs/model-format.md) in the evidence: the SBOM lists it as a model
derived from the pinned one, the provenance names its digest, source and converter, and
`release verify`'s model-layer check re-hashes it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from release import config, sbom
from release.attest import statements
from release.errors import VerificationFailed
from release.image.inspect import open_image
from release.image.registry import open_registry
from release.modelpin import root_digest
from tests.attest.conftest import build_image, lock_for, model_files
from tests.fixtures.tools import copy_project

GRAPH, WEIGHTS = b"optimized graph", b"\x01\x02" * 4096


def _image(root: Path, *, weights: bytes = WEIGHTS) -> tuple[Any, str, dict[str, Any]]:
    from types import SimpleNamespace

    mf = model_files()
    lock = lock_for(mf)
    files = [
        {"path": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in (("model.onnx", GRAPH), ("model.weights", WEIGHTS))
    ]
    src = next(f for f in lock["files"] if f["path"] == "onnx/model.onnx")
    lock["runtime"] = {
        "format": "onnx-external-data-v1",
        "dir": "runtime",
        "files": files,
        "digest": root_digest([SimpleNamespace(**f) for f in files]),  # type: ignore[arg-type]
        "source": {"path": src["path"], "sha256": src["sha256"]},
        "converter": {
            "onnxruntime": "1.32.0",
            "optimization": "extended",
            "external_min_bytes": 1024,
        },
    }
    reg = open_registry("oci:reg", root)
    digest = build_image(
        reg,
        lock=lock,
        extra_model={
            "opt/release/runtime/model.onnx": GRAPH,
            "opt/release/runtime/model.weights": weights,
        },
    )
    return reg, digest, lock


def test_sbom_lists_the_runtime_model_derived_from_the_pinned_one(tmp_path: Path) -> None:
    reg, digest, lock = _image(tmp_path)
    doc = sbom.generate(reg, digest)
    sbom.validate(doc)
    models = [c for c in doc["components"] if c["type"] == "machine-learning-model"]
    assert [m["bom-ref"] for m in models] == [models[0]["purl"], models[0]["purl"] + "#runtime"]
    rt = models[1]
    assert rt["hashes"][0]["content"] == lock["runtime"]["digest"].removeprefix("sha256:")
    assert {c["name"]: c["hashes"][0]["content"] for c in rt["components"]} == {
        "/opt/release/runtime/model.onnx": hashlib.sha256(GRAPH).hexdigest(),
        "/opt/release/runtime/model.weights": hashlib.sha256(WEIGHTS).hexdigest(),
    }
    props = {p["name"]: p["value"] for p in rt["properties"]}
    src = lock["runtime"]["source"]
    assert props["release:runtime-source"] == f"onnx/model.onnx@sha256:{src['sha256']}"
    assert props["release:converter"] == "onnxruntime 1.32.0"
    deps = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    assert deps[rt["bom-ref"]] == [models[0]["purl"]]
    assert rt["bom-ref"] in deps[doc["metadata"]["component"]["bom-ref"]]
    # the pinned model's own file list is unchanged
    assert {c["name"] for c in models[0]["components"]} == {f["path"] for f in lock["files"]}


def test_sbom_refuses_a_runtime_file_that_differs_from_the_lock(tmp_path: Path) -> None:
    reg, digest, _ = _image(tmp_path, weights=b"\x01\x03" * 4096)
    with pytest.raises(
        VerificationFailed, match=r"runtime model file /opt/release/runtime/model\.weights"
    ):
        sbom.generate(reg, digest)


def test_provenance_names_runtime_digest_source_and_converter(tmp_path: Path) -> None:
    reg, digest, lock = _image(tmp_path)
    cfg = config.load(copy_project(tmp_path / "p") / "release.toml")
    [(_, prov)] = statements.build(cfg, reg, digest, only={"provenance"})
    bd = prov["buildDefinition"]
    named = {d["name"]: d for d in bd["resolvedDependencies"] if d.get("name")}
    assert named["model-runtime"]["digest"] == {
        "sha256": lock["runtime"]["digest"].removeprefix("sha256:")
    }
    assert (
        named["model-runtime"]["annotations"]["path"] == "/opt/release/runtime/"
    )  # no uri: no local path
    assert named["model-converter"]["uri"] == "pkg:pypi/onnxruntime@1.32.0"
    assert bd["internalParameters"]["modelRuntime"] == {
        k: lock["runtime"][k] for k in ("format", "digest", "source", "converter")
    }
    assert open_image(reg, digest).labels["dev.release.model"].endswith(lock["commit"])
