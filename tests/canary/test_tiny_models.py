"""Tiny models of every output type, generated here (hashed bag of words -> one linear
layer, weights in JSON, a predict module as an adopter writes it), run by the real
offline canary (`run_on_model_dir`: lock check, child process, type check) and compared
by the real report: per type an unchanged candidate (weights re-rounded: new lock, same
behaviour) passes, a real behaviour change is caught, a label-order permutation is
caught."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from release.canary import report as rpt
from release.canary.offline import read_corpus, run_on_model_dir
from release.config import CanaryConfig
from tests.attest.conftest import lock_for

#: the adopter's predict module: dicts out, labels from the model's config.json
TINY = r"""
import hashlib, json, math, os, re

WORD = re.compile(r"[a-z]+")


def feats(text, f):
    v = [0.0] * f
    for w in WORD.findall(text.lower()):
        v[int(hashlib.sha256(w.encode()).hexdigest(), 16) % f] += 1.0
    return v


class Model:
    def __init__(self, cfg, w):
        self.cfg, self.w, self.b = cfg, w["W"], w["b"]
        ids = cfg.get("id2label", {})
        self.labels = [ids[str(i)] for i in range(len(ids))]

    def predict(self, texts, batch_size=64):
        out = []
        for t in texts:
            x = feats(t, len(self.w[0]))
            z = [b + sum(a * xi for a, xi in zip(row, x)) for row, b in zip(self.w, self.b)]
            kind = self.cfg["kind"]
            if kind == "label":
                m = max(z)
                e = [math.exp(v - m) for v in z]
                p = [v / sum(e) for v in e]
                k = max(range(len(p)), key=p.__getitem__)
                out.append({"label": self.labels[k], "probs": p, "logits": z})
            elif kind == "multilabel":
                out.append({"probs": [1 / (1 + math.exp(-v)) for v in z]})
            elif kind == "score":
                out.append({"score": z[self.cfg["score_index"]]})
            else:
                out.append({"vector": z})
        return out


def load(model_dir, lock_path=None):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(model_dir, "weights.json")) as f:
        return Model(cfg, json.load(f))
"""

F = 48
#: 300 words of letters only (the model's tokenizer reads [a-z]+)
VOCAB = [
    "".join("abcdefghijklmnopqrstuvwxyz"[(i * 7 + j * 11) % 26] for j in range(3 + i % 4))
    + "abcdefghij"[i % 10]
    + "klmnopqrst"[(i // 10) % 10]
    + "uvwxyz"[(i // 100) % 6]
    for i in range(300)
]
TYPES: dict[str, dict[str, Any]] = {
    "label": {"labels": ["anger", "joy", "fear"], "rows": 3},
    "multilabel": {"labels": ["toxic", "insult", "threat", "spam"], "rows": 4},
    "score": {"labels": None, "rows": 2},
    "vector": {"labels": None, "rows": 16},
}


def _corpus(path: Path, n: int = 500) -> Path:
    rng = np.random.default_rng(7)
    with path.open("w") as f:
        for i in range(n):
            words = rng.choice(VOCAB, size=int(rng.integers(4, 12)))
            f.write(json.dumps({"id": f"x{i:04d}", "text": " ".join(words)}) + "\n")
    return path


def _model(
    dest: Path, kind: str, w: np.ndarray, b: np.ndarray, labels: list[str] | None, index: int = 0
) -> tuple[Path, Path]:
    """A model directory (config.json, weights.json) and its lock, as `release model pin`
    would write it."""
    cfg: dict[str, Any] = {"kind": kind}
    if labels:
        cfg["id2label"] = {str(i): x for i, x in enumerate(labels)}
    if kind == "score":
        cfg["score_index"] = index
    files = {
        "config.json": json.dumps(cfg).encode(),
        "weights.json": json.dumps({"W": w.tolist(), "b": b.tolist()}).encode(),
    }
    dest.mkdir(parents=True)
    for name, data in files.items():
        (dest / name).write_bytes(data)
    lock = dest.parent / f"{dest.name}.lock.json"
    lock.write_text(json.dumps(lock_for(files, commit=dest.name[:2].encode().hex() * 10)))
    return dest, lock


def _variants(
    kind: str, rng: np.random.Generator
) -> dict[str, tuple[np.ndarray, np.ndarray, Any, int]]:
    spec = TYPES[kind]
    w = rng.normal(0, 0.6, (spec["rows"], F))
    b = rng.normal(0, 0.3, spec["rows"])
    if kind == "multilabel":
        b = b - 1.0
    labels = spec["labels"]
    same = (np.round(w, 3), np.round(b, 3), labels, 0)  # re-rounded: a new file, same behaviour
    if kind == "label":
        changed = (w, b + np.array([0.0, 0.0, 0.8]), labels, 0)  # towards "fear"
        permuted = (w, b, labels[1:] + labels[:1], 0)  # id2label rotated, weights not
    elif kind == "multilabel":
        changed = (w, b + np.array([0.0, 0.0, 1.0, 0.0]), labels, 0)  # "threat" more often
        permuted = (w, b, [labels[1], labels[0], *labels[2:]], 0)
    elif kind == "score":
        changed = (w, b + np.array([0.4, 0.0]), labels, 0)  # scores shifted up
        permuted = (w, b, labels, 1)  # the other output read as the score
    else:
        changed = (w * 1.0 + rng.normal(0, 0.25, w.shape), b, labels, 0)  # retrained layer
        permuted = (w[::-1], b[::-1], labels, 0)  # dimension order reversed
    return {"base": (w, b, labels, 0), "same": same, "changed": changed, "permuted": permuted}


#: the checks a change or a permutation must fail, per type
CAUGHT = {
    ("label", "changed"): {"share-shift"},
    ("label", "permuted"): {"share-shift", "flip-rate", "confident-flips"},
    ("multilabel", "changed"): {"label-shift"},
    ("multilabel", "permuted"): {"label-shift", "flip-rate"},
    ("score", "changed"): {"score-shift", "score-median-abs-diff"},
    ("score", "permuted"): {"score-median-abs-diff"},
    ("vector", "changed"): {"cosine-floor"},
    ("vector", "permuted"): {"cosine-floor"},
}


@pytest.mark.parametrize("kind", list(TYPES))
def test_unchanged_passes_change_and_permutation_are_caught(kind: str, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "tiny.py").write_text(TINY)
    corpus = read_corpus(_corpus(tmp_path / "corpus.jsonl"))
    # a random 3-label model is less sure than the example's binary one: its
    # low-confidence bar is set for 3 labels (the least a winner can have is 1/3)
    cfg = CanaryConfig(output=kind, low_confidence=0.45)
    t = rpt.thresholds(cfg)
    reports = {}
    for name, (w, b, labels, index) in _variants(kind, np.random.default_rng(11)).items():
        model, lock = _model(tmp_path / f"{name}-{kind}", kind, w, b, labels, index)
        run = run_on_model_dir(
            model, lock, code, corpus.items, predict="tiny:load", canary=cfg, where=name
        )
        reports[name] = rpt.build(
            subject=rpt.Subject(model=run.model, model_digest=run.model_digest),
            corpus=corpus.meta,
            items=run.items,
            t=t,
            output=run.output,
            baseline=reports.get("base"),
        )
    base = reports["base"]
    assert base.output.type == kind and base.output.labels == TYPES[kind]["labels"]
    assert reports["same"].passed, [c for c in reports["same"].checks if not c.ok]
    for case in ("changed", "permuted"):
        failed = set(reports[case].failed_checks)
        assert CAUGHT[(kind, case)] <= failed, (case, failed)


def test_the_report_and_audit_chart_each_type(tmp_path: Path) -> None:
    """Label shares in the model's own label order; the histogram of the type: confidences,
    scores (baseline over the same bins), cosine similarity to the baseline per item."""
    from release.audit.collect import _canary_summary
    from release.audit.render import canary_charts

    rng = np.random.default_rng(5)
    meta = rpt.Corpus(path="c.jsonl", sha256="0" * 64, items=200)
    ids = [f"x{i}" for i in range(200)]
    labels = ["joy", "anger", "fear"]  # not sorted: the model's order is kept
    cases: dict[str, tuple[rpt.Output, list[rpt.Item], list[rpt.Item]]] = {
        "label": (
            rpt.Output(type="label", labels=labels),
            [rpt.Item(id=i, label=labels[k % 3], confidence=0.9) for k, i in enumerate(ids)],
            [rpt.Item(id=i, label=labels[k % 2], confidence=0.8) for k, i in enumerate(ids)],
        ),
        "score": (
            rpt.Output(type="score"),
            [
                rpt.Item(id=i, score=float(v))
                for i, v in zip(ids, rng.normal(0, 1, 200), strict=True)
            ],
            [
                rpt.Item(id=i, score=float(v))
                for i, v in zip(ids, rng.normal(1, 1, 200), strict=True)
            ],
        ),
        "vector": (
            rpt.Output(type="vector", dim=4),
            [rpt.Item(id=i, vector=[1.0, 0.0, 0.0, 0.0]) for i in ids],
            [rpt.Item(id=i, vector=[1.0, float(k % 2), 0.0, 0.0]) for k, i in enumerate(ids)],
        ),
    }
    t = rpt.thresholds(CanaryConfig())
    titles = {}
    for kind, (out, base_items, cand_items) in cases.items():
        base = rpt.build(subject=rpt.Subject(), corpus=meta, items=base_items, t=t, output=out)
        cand = rpt.build(
            subject=rpt.Subject(), corpus=meta, items=cand_items, t=t, output=out, baseline=base
        )
        summary = _canary_summary(cand.to_json(), None)
        assert summary is not None and summary.output == kind
        charts = canary_charts(summary)
        titles[kind] = [c.title for c in charts]
        # baseline beside candidate (the cosine of each pair is one series)
        assert [len(c.legend) for c in charts] == ([1] if kind == "vector" else [2] * len(charts))
        if kind == "label":
            assert [g.label for g in charts[0].groups] == labels
            assert summary.candidate_shares == {"joy": 0.5, "anger": 0.5, "fear": 0.0}
            assert summary.baseline_shares == pytest.approx(
                {"joy": 0.335, "anger": 0.335, "fear": 0.33}
            )
        if kind == "vector":
            # half the items at cosine 1, half at 1/sqrt(2) = 0.707 (bin 0.5 - 0.8)
            assert summary.candidate_hist[2] == 0.5 and summary.candidate_hist[-1] == 0.5
    assert titles == {
        "label": ["Label shares", "Confidence histogram"],
        "score": ["Score histogram"],
        "vector": ["Cosine similarity to the baseline, per item"],
    }
