"""handlers.common.model: lock verification at load (fail closed), labels, truncation, batching."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from handlers.common import model as mm
from tests.handlers.conftest import MODEL_DIR, MODEL_LOCK

CLEAR = [
    ("This movie was wonderful, I loved every minute of it.", "POSITIVE"),
    ("An excellent, brilliant and delightful experience.", "POSITIVE"),
    ("Great service and a fantastic team, highly recommended.", "POSITIVE"),
    ("Terrible, awful film. A complete waste of time.", "NEGATIVE"),
    ("The product is broken and the support was horrible.", "NEGATIVE"),
    ("I hate this, it is the worst purchase I have ever made.", "NEGATIVE"),
]


@pytest.fixture(scope="module")
def model() -> mm.SentimentModel:
    return mm.SentimentModel.load(MODEL_DIR, MODEL_LOCK)


def test_loads_verified_model_with_labels_from_config(model: mm.SentimentModel) -> None:
    cfg = json.loads((MODEL_DIR / "config.json").read_text())
    assert model.labels == [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    assert model.digest == json.loads(MODEL_LOCK.read_text())["digest"]
    assert model.max_tokens == 512


@pytest.mark.parametrize(("text", "label"), CLEAR)
def test_clear_sentences_are_labelled_correctly(
    model: mm.SentimentModel, text: str, label: str
) -> None:
    [p] = model.predict([text])
    assert p.label == label
    assert 0.5 < p.confidence <= 1.0
    assert len(p.logits) == 2 and not p.truncated


def test_batched_predict_equals_one_by_one(model: mm.SentimentModel) -> None:
    texts = [t for t, _ in CLEAR] * 3
    batched = model.predict(texts, batch_size=4)
    single = [model.predict([t])[0] for t in texts]
    assert [p.label for p in batched] == [p.label for p in single]
    for a, b in zip(batched, single, strict=True):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-6)


def test_input_is_truncated_to_512_tokens(model: mm.SentimentModel) -> None:
    # 600 positive words then 600 negative ones: only the first 510 words (+CLS/SEP) count
    text = "wonderful " * 600 + "terrible " * 600
    [p] = model.predict([text])
    assert p.truncated and p.label == "POSITIVE"
    enc = model._tokenizer.encode(text)
    assert len(enc.ids) == 512


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("changed", "changed: config.json (sha256 differs)"),
        ("extra", "extra: evil.py"),
        ("missing", "missing: tokenizer.json"),
    ],
)
def test_tampered_model_is_refused(
    tampered_model: Callable[[str], tuple[Path, Path]], kind: str, problem: str
) -> None:
    d, lock = tampered_model(kind)
    with pytest.raises(mm.ModelLoadError, match="refusing to serve it") as ei:
        mm.SentimentModel.load(d, lock)
    assert ei.value.problems == [problem]


def test_size_change_and_symlink_are_refused(
    tampered_model: Callable[[str], tuple[Path, Path]],
) -> None:
    d, lock = tampered_model("none")
    with open(d / "vocab.txt", "ab") as f:
        f.write(b"extra\n")
    os.symlink(d / "README.md", d / "link.md")
    with pytest.raises(mm.ModelLoadError) as ei:
        mm.SentimentModel.load(d, lock)
    assert ei.value.problems == ["changed: vocab.txt (size 2758 != 2752)", "symlink: link.md"]


def test_missing_or_inconsistent_lock_is_refused(tmp_path: Path) -> None:
    with pytest.raises(mm.ModelLoadError, match="not found; refusing to load an unverified model"):
        mm.SentimentModel.load(MODEL_DIR, tmp_path / "nope.json")
    doc = json.loads(MODEL_LOCK.read_text())
    doc["files"][0]["sha256"] = "0" * 64  # edited lock: its root digest no longer agrees
    bad = tmp_path / "lock.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(mm.ModelLoadError, match="inconsistent"):
        mm.SentimentModel.load(MODEL_DIR, bad)


def test_default_lock_comes_from_model_lock_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODEL_LOCK", str(tmp_path / "absent.json"))
    with pytest.raises(mm.ModelLoadError, match=r"absent\.json not found"):
        mm.SentimentModel.load(MODEL_DIR)
    monkeypatch.setenv("MODEL_LOCK", str(MODEL_LOCK))
    assert mm.SentimentModel.load(MODEL_DIR).labels == ["NEGATIVE", "POSITIVE"]


def test_get_model_loads_once_per_container() -> None:
    mm.clear_cache()
    m1, fresh1 = mm.get_model(str(MODEL_DIR), str(MODEL_LOCK))
    m2, fresh2 = mm.get_model(str(MODEL_DIR), str(MODEL_LOCK))
    assert (fresh1, fresh2) == (True, False) and m1 is m2
