"""release.modelformat: the runtime model the build derives from the locked ONNX
(deterministic, cached, pinned in the image's lock, made by the runtime the image ships)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from release import config, modelformat, modelpin
from release.errors import ConfigError, VerificationFailed
from tests.fixtures.tools import REPO, copy_project

SRC = REPO / "model" / "examples" / "sst2-tiny" / "onnx" / "model.onnx"


def _digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_conversion_is_deterministic_and_computes_the_same_function(tmp_path: Path) -> None:
    v1 = modelformat.convert(SRC, tmp_path / "a")
    v2 = modelformat.convert(SRC, tmp_path / "b")
    assert v1 == v2 == ort.__version__
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert set(_digests(tmp_path / "a")) == {"model.onnx", "model.weights"}
    assert (tmp_path / "a" / "model.weights").stat().st_size > 0  # the weights left the graph
    ids = np.array([[2, 10, 11, 12, 3], [2, 20, 21, 3, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    feed = {"input_ids": ids, "attention_mask": mask}
    src = ort.InferenceSession(str(SRC), providers=["CPUExecutionProvider"])
    fast = ort.InferenceSession(
        str(tmp_path / "a" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    np.testing.assert_allclose(fast.run(None, feed)[0], src.run(None, feed)[0], atol=1e-5)


def test_unloadable_source_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(VerificationFailed, match="could not be converted"):
        modelformat.convert(bad, tmp_path / "out")


@pytest.fixture
def project(tmp_path: Path) -> tuple[config.Config, modelpin.ModelLock, modelpin.Cache]:
    p = copy_project(tmp_path / "p")
    cfg = config.load(p / "release.toml")
    lock = modelpin.read_lock(cfg.lock_path)
    cache = modelpin.Cache(tmp_path / "cache")
    modelpin.fetch(cfg, dest=tmp_path / "m", lock=lock, cache=cache, progress=False)
    return cfg, lock, cache


def test_runtime_for_pins_digests_source_and_converter_and_caches(
    project: tuple[config.Config, modelpin.ModelLock, modelpin.Cache], tmp_path: Path
) -> None:
    cfg, lock, cache = project
    got = modelformat.runtime_for(cfg, lock, cache)
    assert got is not None
    rt, blobs = got
    modelformat.convert(SRC, tmp_path / "ref")
    assert {f.path: f.sha256 for f in rt.files} == _digests(tmp_path / "ref")
    assert rt.digest == modelpin.root_digest(rt.files)
    assert rt.source.path == "onnx/model.onnx"
    assert rt.source.sha256 == lock.by_path()["onnx/model.onnx"].sha256
    assert rt.converter.onnxruntime == ort.__version__ and rt.converter.optimization == "extended"
    assert all(hashlib.sha256(blobs[f.path].read_bytes()).hexdigest() == f.sha256 for f in rt.files)
    assert len(list((cache.root / "runtime").glob("*.json"))) == 1
    again = modelformat.runtime_for(cfg, lock, cache)
    assert again is not None and again[0] == rt
    # the image's lock round-trips through the pydantic lock reader; the project's lock bytes
    # stay exactly as committed (no "runtime": null)
    image_lock = modelformat.with_runtime(lock, rt)
    path = tmp_path / "image.lock.json"
    path.write_bytes(modelpin.lock_bytes(image_lock))
    assert modelpin.read_lock(path) == image_lock
    assert modelpin.lock_bytes(lock) == cfg.lock_path.read_bytes()
    assert "runtime" not in json.loads(modelpin.lock_bytes(lock))


def test_cached_source_that_changed_is_refused(
    project: tuple[config.Config, modelpin.ModelLock, modelpin.Cache],
) -> None:
    cfg, lock, cache = project
    blob = cache.blob(lock.by_path()["onnx/model.onnx"].sha256)
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[50] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(
        VerificationFailed, match=r"opt/model/onnx/model.onnx: sha256 .* is corrupt"
    ):
        modelformat.runtime_for(cfg, lock, cache)


def test_converter_must_be_the_runtime_the_image_ships(
    project: tuple[config.Config, modelpin.ModelLock, modelpin.Cache],
) -> None:
    cfg, lock, cache = project
    req = cfg.resolve(cfg.image.requirements)
    req.write_text(
        req.read_text().replace(f"onnxruntime=={ort.__version__} ", "onnxruntime==1.18.0 ")
    )
    with pytest.raises(
        ConfigError,
        match=f"image ships onnxruntime 1.18.0 but the converter is onnxruntime {ort.__version__}",
    ):
        modelformat.runtime_for(cfg, lock, cache)


def test_lock_reader_refuses_an_edited_runtime_section(
    project: tuple[config.Config, modelpin.ModelLock, modelpin.Cache], tmp_path: Path
) -> None:
    cfg, lock, cache = project
    got = modelformat.runtime_for(cfg, lock, cache)
    assert got is not None
    doc = json.loads(modelpin.lock_bytes(modelformat.with_runtime(lock, got[0])))
    edited = json.loads(json.dumps(doc))
    edited["runtime"]["files"][1]["sha256"] = "0" * 64
    (tmp_path / "a.json").write_text(json.dumps(edited))
    with pytest.raises(VerificationFailed, match="runtime digest"):
        modelpin.read_lock(tmp_path / "a.json")
    edited = json.loads(json.dumps(doc))
    edited["runtime"]["source"]["path"] = "vocab.txt"
    (tmp_path / "b.json").write_text(json.dumps(edited))
    with pytest.raises(VerificationFailed, match="not a locked file"):
        modelpin.read_lock(tmp_path / "b.json")


def test_verify_runtime_rehashes_the_files_next_to_the_image_lock(tmp_path: Path) -> None:
    """What `release verify` and the canary's pre-check add to the model-layer check."""
    lock = modelpin.read_lock(REPO / "model" / "model.lock.json")
    assert modelformat.verify_runtime(tmp_path, lock) == []  # a project lock: nothing to check
    image_lock = modelformat.bake(
        lock, REPO / "model" / "examples" / "sst2-tiny", tmp_path / "release"
    )
    assert modelpin.read_lock(tmp_path / "release" / "model.lock.json") == image_lock
    assert modelformat.verify_runtime(tmp_path / "release", image_lock) == []
    w = tmp_path / "release" / "runtime" / "model.weights"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x80
    w.write_bytes(bytes(data))
    (tmp_path / "release" / "runtime" / "x.bin").write_bytes(b"")
    problems = modelformat.verify_runtime(tmp_path / "release", image_lock)
    assert [p.split(" (")[0] for p in problems] == [
        "changed: runtime/model.weights",
        "extra: runtime/x.bin",
    ]
