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


def _image(
    root: Path, *, weights: bytes = WEIGHTS, replaces: bool = False, source_too: bool = False
) -> tuple[Any, str, dict[str, Any]]:
    """An image with a runtime model next to the lock (images built before 27.3), or with
    `replaces` as `release build` lays it out now: in /opt/model/runtime/ in place of the
    source ONNX (`source_too`: the source shipped as well, which verify must refuse)."""
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
    if replaces:
        lock["runtime"]["placement"] = "replaces-source"
    where = "opt/model/runtime" if replaces else "opt/release/runtime"
    reg = open_registry("oci:reg", root)
    digest = build_image(
        reg,
        lock=lock,
        extra_model={f"{where}/model.onnx": GRAPH, f"{where}/model.weights": weights},
        omit_model=frozenset({"onnx/model.onnx"}) if replaces and not source_too else frozenset(),
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
        VerificationFailed, match=r"runtime model /opt/release/runtime: changed: model\.weights"
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
        **{k: lock["runtime"][k] for k in ("format", "digest", "source", "converter")},
        "placement": "beside-lock",
    }
    assert open_image(reg, digest).labels["dev.release.model"].endswith(lock["commit"])


# --- the weights once (27.3): the runtime model in place of the source ONNX --------------
def test_sbom_names_what_ships_when_the_runtime_model_replaces_its_source(
    tmp_path: Path,
) -> None:
    reg, digest, lock = _image(tmp_path, replaces=True)
    doc = sbom.generate(reg, digest)
    sbom.validate(doc)
    models = [c for c in doc["components"] if c["type"] == "machine-learning-model"]
    pinned, rt = models
    # the pinned model's component lists the files shipped as pinned: not the source
    assert {c["name"] for c in pinned["components"]} == {
        f["path"] for f in lock["files"] if f["path"] != "onnx/model.onnx"
    }
    assert pinned["hashes"][0]["content"] == lock["digest"].removeprefix("sha256:")
    assert {c["name"]: c["hashes"][0]["content"] for c in rt["components"]} == {
        "/opt/model/runtime/model.onnx": hashlib.sha256(GRAPH).hexdigest(),
        "/opt/model/runtime/model.weights": hashlib.sha256(WEIGHTS).hexdigest(),
    }
    props = {p["name"]: p["value"] for p in rt["properties"]}
    assert props["release:runtime-placement"] == "replaces-source"
    assert props["release:runtime-source"].startswith("onnx/model.onnx@sha256:")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"weights": b"\x01\x03" * 4096}, r"differ from the baked lock: runtime/model\.weights"),
        ({"source_too": True}, r"onnx/model\.onnx"),  # two copies of the weights: refused
    ],
)
def test_sbom_refuses_a_model_directory_other_than_what_the_lock_ships(
    tmp_path: Path, kw: dict[str, Any], match: str
) -> None:
    reg, digest, _ = _image(tmp_path, replaces=True, **kw)
    with pytest.raises(VerificationFailed, match=match):
        sbom.generate(reg, digest)


def test_provenance_names_the_runtime_model_where_it_replaces_its_source(tmp_path: Path) -> None:
    reg, digest, lock = _image(tmp_path, replaces=True)
    cfg = config.load(copy_project(tmp_path / "p") / "release.toml")
    [(_, prov)] = statements.build(cfg, reg, digest, only={"provenance"})
    bd = prov["buildDefinition"]
    named = {d["name"]: d for d in bd["resolvedDependencies"] if d.get("name")}
    assert named["model-runtime"]["annotations"] == {
        "path": "/opt/model/runtime/",
        "replaces": "/opt/model/onnx/model.onnx",
    }
    assert named["model-lock"]["digest"] == {"sha256": lock["digest"].removeprefix("sha256:")}
    assert bd["internalParameters"]["modelRuntime"]["placement"] == "replaces-source"


def test_model_signature_names_the_files_the_model_directory_ships(tmp_path: Path) -> None:
    """model-signing's manifest is of /opt/model as shipped: the runtime files, not the
    source ONNX; its subject is that directory's root digest (what `model_signing verify`
    computes over it)."""
    reg, digest, lock = _image(tmp_path, replaces=True)
    cfg = config.load(copy_project(tmp_path / "p") / "release.toml")
    [(_, pred)] = statements.build(cfg, reg, digest, only={"model"})
    names = {r["name"]: r["digest"] for r in pred["resources"]}
    want = {f["path"]: f["sha256"] for f in lock["files"] if f["path"] != "onnx/model.onnx"}
    want["runtime/model.onnx"] = hashlib.sha256(GRAPH).hexdigest()
    want["runtime/model.weights"] = hashlib.sha256(WEIGHTS).hexdigest()
    assert names == want


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({}, None),
        ({"weights": b"\x01\x03" * 4096}, "changed: runtime/model.weights"),
        ({"source_too": True}, "onnx/model.onnx"),  # the weights twice: not what the lock ships
    ],
)
def test_verify_checks_every_shipped_model_byte_against_the_lock(
    tmp_path: Path, kw: dict[str, Any], problem: str | None
) -> None:
    """`release verify`'s model-layer claim (release/claims/model_layer.py) on the merged
    filesystem, as verify_release runs it."""
    from release.claims.checklist import Verification
    from release.claims.image import merged_view
    from release.claims.model_layer import check_model_layer
    from release.digest import parse_reference

    reg, digest, lock = _image(tmp_path, replaces=True, **kw)
    cfg = config.load(copy_project(tmp_path / "p") / "release.toml")
    image = open_image(reg, digest)
    v = Verification(parse_reference(f"oci:{tmp_path / 'reg'}@{digest}"), reg.name, "")
    check_model_layer(cfg, v, merged_view(cfg, image), image)
    check = next(c for c in v.checks if c.name == "model layer")
    if problem is None:
        assert check.ok, check.detail
        n = len(lock["files"]) - 1 + 2  # the source out, the two runtime files in
        assert check.detail.startswith(f"{n} files match the baked lock {lock['digest']}")
        assert "in place of onnx/model.onnx" in check.detail
    else:
        assert not check.ok and problem in check.detail, check.detail
