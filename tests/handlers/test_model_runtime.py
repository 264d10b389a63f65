"""handlers.common.model on the runtime format `release build` bakes (docs/model-format.md):
same outputs as the source ONNX, and fail closed on one changed byte of any file it serves."""

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
def baked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model_dir, image lock) laid out as in the image: /opt/model + /opt/release/{model.lock.json, runtime/}."""
    root = tmp_path_factory.mktemp("image")
    model_dir = root / "opt" / "model"
    shutil.copytree(MODEL_DIR, model_dir)
    modelformat.bake(modelpin.read_lock(MODEL_LOCK), model_dir, root / "opt" / "release")
    return model_dir, root / "opt" / "release" / "model.lock.json"


@pytest.fixture
def copy(baked: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the baked layout (to tamper with)."""
    src_root = baked[1].parents[2]
    shutil.copytree(src_root, tmp_path / "image")
    return (
        tmp_path / "image" / "opt" / "model",
        tmp_path / "image" / "opt" / "release" / "model.lock.json",
    )


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_runtime_model_gives_the_source_models_outputs(baked: tuple[Path, Path]) -> None:
    model_dir, lock = baked
    doc = json.loads(lock.read_text())
    assert doc["runtime"]["format"] == "onnx-external-data-v1"
    assert doc["digest"] == json.loads(MODEL_LOCK.read_text())["digest"]  # the pin is unchanged
    fast = mm.SentimentModel.load(model_dir, lock)
    assert fast.lock.runtime is not None and fast.lock.runtime.digest == doc["runtime"]["digest"]
    slow = mm.SentimentModel.load(MODEL_DIR, MODEL_LOCK)
    assert slow.lock.runtime is None
    for a, b in zip(fast.predict(TEXTS), slow.predict(TEXTS), strict=True):
        assert a.label == b.label and a.truncated == b.truncated
        assert a.logits == pytest.approx(b.logits, abs=1e-5)


@pytest.mark.parametrize(
    ("target", "offset", "problem"),
    [
        ("weights", 0, "changed: runtime/model.weights (sha256"),
        ("weights", -1, "changed: runtime/model.weights (sha256"),
        ("graph", 100, "changed: runtime/model.onnx (sha256 differs)"),
        ("config", 5, "changed: config.json (sha256 differs)"),
    ],
)
def test_one_changed_byte_is_a_model_load_error(
    copy: tuple[Path, Path], target: str, offset: int, problem: str
) -> None:
    model_dir, lock = copy
    path = {
        "weights": lock.parent / "runtime" / "model.weights",
        "graph": lock.parent / "runtime" / "model.onnx",
        "config": model_dir / "config.json",
    }[target]
    _flip(path, offset % path.stat().st_size)
    with pytest.raises(mm.ModelLoadError, match="refusing to serve it") as ei:
        mm.SentimentModel.load(model_dir, lock)
    assert len(ei.value.problems) == 1 and ei.value.problems[0].startswith(problem)


def test_runtime_dir_must_hold_exactly_the_locked_files(copy: tuple[Path, Path]) -> None:
    model_dir, lock = copy
    rt = lock.parent / "runtime"
    (rt / "evil.so").write_bytes(b"x")
    with open(rt / "model.weights", "ab") as f:
        f.write(b"\0")
    with pytest.raises(mm.ModelLoadError) as ei:
        mm.SentimentModel.load(model_dir, lock)
    size = json.loads(lock.read_text())["runtime"]["files"][1]["size"]
    assert ei.value.problems == [
        f"changed: runtime/model.weights (size {size + 1} != {size})",
        "extra: runtime/evil.so",
    ]
    shutil.rmtree(rt)
    with pytest.raises(mm.ModelLoadError, match="missing: runtime directory runtime"):
        mm.SentimentModel.load(model_dir, lock)


def test_source_onnx_is_checked_by_size_and_never_served(copy: tuple[Path, Path]) -> None:
    model_dir, lock = copy
    src = model_dir / "onnx" / "model.onnx"
    src.write_bytes(src.read_bytes() + b"\0")
    with pytest.raises(mm.ModelLoadError, match=r"changed: onnx/model.onnx \(size"):
        mm.SentimentModel.load(model_dir, lock)
    # same size, other bytes: never read at run time (`release verify` and the canary's
    # pre-check re-hash it); the runtime model alone is served
    src.write_bytes(b"\0" * (src.stat().st_size - 1))
    m = mm.SentimentModel.load(model_dir, lock)
    assert m.predict(TEXTS[:1])[0].label == "POSITIVE"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda rt: rt["files"][1].update(sha256="0" * 64), "runtime digest does not match"),
        (lambda rt: rt.update(format="ort-v9"), "unknown runtime model format"),
        (lambda rt: rt.update(dir="../../etc"), "runtime dir"),
        (lambda rt: rt["source"].update(sha256="1" * 64), "is not a locked file"),
    ],
)
def test_edited_runtime_section_is_refused(copy: tuple[Path, Path], edit, match: str) -> None:  # type: ignore[no-untyped-def]
    model_dir, lock = copy
    doc = json.loads(lock.read_text())
    edit(doc["runtime"])
    lock.write_text(json.dumps(doc))
    with pytest.raises(mm.ModelLoadError, match=match):
        mm.SentimentModel.load(model_dir, lock)


def test_long_batches_run_in_slices_of_bounded_tokens(baked: tuple[Path, Path]) -> None:
    """Activation memory is bounded: no session run sees more than MAX_BATCH_TOKENS padded
    tokens, whatever batch_size says; the predictions are those of one text at a time."""
    m = mm.SentimentModel.load(*baked)
    real = m._session
    shapes: list[tuple[int, int]] = []

    class Recording:  # the real session, with each run's input shape noted
        def run(self, names, feed):  # type: ignore[no-untyped-def]
            shapes.append(feed["input_ids"].shape)
            return real.run(names, feed)

    texts = [
        "wonderful " * 600,
        "terrible film",
        *(["a fine and good day " * 30] * 20),
        "awful " * 300,
    ]
    one_by_one = [m.predict([t])[0] for t in texts]
    m._session = Recording()
    got = m.predict(texts, batch_size=64)
    assert [p.label for p in got] == [p.label for p in one_by_one]
    for a, b in zip(got, one_by_one, strict=True):
        assert (
            a.logits == pytest.approx(b.logits, rel=1e-5, abs=1e-5) and a.truncated == b.truncated
        )
    assert len(shapes) > 1 and all(r * w <= mm.MAX_BATCH_TOKENS or r == 1 for r, w in shapes)
    assert sum(r for r, _ in shapes) == len(texts)
