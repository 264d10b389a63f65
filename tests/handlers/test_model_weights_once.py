"""handlers.common.model on the layout `release build` ships now (docs/model-format.md,
issue 27 item 3): the runtime model in the model directory in place of the source ONNX
(placement "replaces-source"), the weights once. Same outputs as the source ONNX; every
shipped byte still verified before anything is served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from handlers.common import model as mm
from release import modelformat, modelpin
from tests.handlers.conftest import MODEL_DIR, MODEL_LOCK

TEXTS = [
    "This movie was wonderful, I loved every minute of it.",
    "Terrible, awful film. A complete waste of time.",
    "The meeting is on Tuesday at the office.",
    "wonderful " * 600 + "terrible " * 600,
]


@pytest.fixture(scope="module")
def once(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model_dir, image lock) as in the image: /opt/model with runtime/ in place of
    onnx/model.onnx, and /opt/release/model.lock.json."""
    root = tmp_path_factory.mktemp("image")
    model_dir = root / "opt" / "model"
    shutil.copytree(MODEL_DIR, model_dir)
    modelformat.bake(
        modelpin.read_lock(MODEL_LOCK),
        model_dir,
        root / "opt" / "release",
        placement="replaces-source",
    )
    return model_dir, root / "opt" / "release" / "model.lock.json"


@pytest.fixture
def copy(once: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    shutil.copytree(once[1].parents[2], tmp_path / "image")
    return tmp_path / "image" / "opt" / "model", tmp_path / "image" / "opt" / "release" / (
        "model.lock.json"
    )


def test_the_model_directory_holds_one_copy_of_the_weights(once: tuple[Path, Path]) -> None:
    model_dir, lock_path = once
    lock = modelpin.read_lock(lock_path)
    src = lock.by_path()["onnx/model.onnx"]
    assert not (model_dir / "onnx").exists()  # the source is not shipped
    assert not (lock_path.parent / "runtime").exists()
    on_disk = {
        p.relative_to(model_dir).as_posix(): p.stat().st_size
        for p in model_dir.rglob("*")
        if p.is_file()
    }
    assert on_disk == {f.path: f.size for f in modelpin.shipped(lock).files}
    rt = lock.runtime
    assert rt is not None and rt.placement == "replaces-source"
    weights = on_disk["runtime/model.weights"]
    others = sum(on_disk.values()) - weights - on_disk["runtime/model.onnx"]
    # one copy: the shipped model is the pinned one minus its ONNX plus the runtime form,
    # whose weights file is no bigger than the source's initializers (plus alignment)
    assert sum(on_disk.values()) < lock.total_size + on_disk["runtime/model.onnx"] + 64 * 4096
    assert sum(on_disk.values()) - others < src.size + 64 * 4096
    assert weights > src.size // 2


def test_outputs_match_the_source_onnx(once: tuple[Path, Path]) -> None:
    model_dir, lock = once
    fast = mm.SentimentModel.load(model_dir, lock)
    assert fast.lock.runtime is not None and fast.lock.runtime.replaces
    slow = mm.SentimentModel.load(MODEL_DIR, MODEL_LOCK)  # the pinned source ONNX
    for a, b in zip(fast.predict(TEXTS), slow.predict(TEXTS), strict=True):
        assert a.label == b.label and a.truncated == b.truncated
        assert a.logits == pytest.approx(b.logits, abs=1e-5)


@pytest.mark.parametrize("offset", [0, -1])
def test_a_changed_byte_of_the_shipped_weights_is_refused(
    copy: tuple[Path, Path], offset: int
) -> None:
    model_dir, lock = copy
    w = model_dir / "runtime" / "model.weights"
    data = bytearray(w.read_bytes())
    data[offset] ^= 0x01
    w.write_bytes(bytes(data))
    with pytest.raises(mm.ModelLoadError, match=r"changed: runtime/model.weights \(sha256"):
        mm.SentimentModel.load(model_dir, lock)


def test_a_shipped_source_or_a_stray_runtime_file_is_refused(copy: tuple[Path, Path]) -> None:
    model_dir, lock = copy
    (model_dir / "onnx").mkdir()
    shutil.copyfile(MODEL_DIR / "onnx" / "model.onnx", model_dir / "onnx" / "model.onnx")
    with pytest.raises(mm.ModelLoadError, match=r"extra: onnx/model\.onnx"):
        mm.SentimentModel.load(model_dir, lock)
    shutil.rmtree(model_dir / "onnx")
    (model_dir / "runtime" / "evil.so").write_bytes(b"x")
    with pytest.raises(mm.ModelLoadError, match=r"extra: runtime/evil\.so"):
        mm.SentimentModel.load(model_dir, lock)
    (model_dir / "runtime" / "evil.so").unlink()
    assert mm.SentimentModel.load(model_dir, lock).predict(TEXTS[:1])[0].label == "POSITIVE"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda rt: rt.update(placement="elsewhere"), "unknown runtime placement"),
        (lambda rt: rt.update(dir="onnx"), "not a directory of its own"),
        (lambda rt: rt.update(dir="runtime/x"), "not a directory of its own"),
    ],
)
def test_an_edited_placement_is_refused(copy: tuple[Path, Path], edit, match: str) -> None:  # type: ignore[no-untyped-def]
    model_dir, lock = copy
    doc = json.loads(lock.read_text())
    edit(doc["runtime"])
    lock.write_text(json.dumps(doc))
    with pytest.raises(mm.ModelLoadError, match=match):
        mm.SentimentModel.load(model_dir, lock)


def test_the_tools_lock_reader_agrees(copy: tuple[Path, Path]) -> None:
    """modelpin.read_lock refuses the same clash (the tool and the handler read one format)."""
    from release.errors import VerificationFailed

    _, lock = copy
    doc = json.loads(lock.read_text())
    doc["runtime"]["dir"] = "onnx"
    lock.write_text(json.dumps(doc))
    with pytest.raises(VerificationFailed, match="not a directory of its own"):
        modelpin.read_lock(lock)
