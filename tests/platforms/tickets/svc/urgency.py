"""The urgency model: a keyword softmax model over the labels of its own config.json.

`load(model_dir, lock_path=None)` is the platform's canary entry point (`[code].predict`).
It re-hashes every file the lock names before it uses any (fail closed). Labels are the
model's `id2label` (ROUTINE, URGENT, CRITICAL); the first label's logit is 0, each other
label's is its bias plus the weights of the words and word pairs of the text.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass

_WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probs: list[float]
    logits: list[float]


class UrgencyModel:
    def __init__(
        self, labels: list[str], bias: dict[str, float], weights: dict[str, dict[str, float]]
    ) -> None:
        self.labels, self.bias, self.weights = labels, bias, weights

    def logits(self, text: str) -> list[float]:
        words = _WORD.findall(text.lower())
        tokens = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        out = [0.0]
        for label in self.labels[1:]:
            w = self.weights.get(label, {})
            out.append(self.bias.get(label, 0.0) + sum(w.get(t, 0.0) for t in tokens))
        return out

    def predict(self, texts: list[str], batch_size: int = 64) -> list[Prediction]:
        out = []
        for text in texts:
            z = self.logits(text)
            top = max(z)
            e = [math.exp(v - top) for v in z]
            probs = [v / sum(e) for v in e]
            k = max(range(len(z)), key=lambda i: z[i])
            out.append(Prediction(self.labels[k], probs[k], probs, z))
        return out


def _verify(model_dir: str, lock_path: str) -> None:
    with open(lock_path, encoding="utf-8") as f:
        lock = json.load(f)
    for entry in lock["files"]:
        h = hashlib.sha256()
        with open(os.path.join(model_dir, entry["path"]), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != entry["sha256"]:
            raise ValueError(f"model file {entry['path']} does not match the lock")


def load(model_dir: str, lock_path: str | None = None) -> UrgencyModel:
    if lock_path:
        _verify(model_dir, lock_path)
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        id2label = json.load(f)["id2label"]
    labels = [id2label[str(i)] for i in range(len(id2label))]
    with open(os.path.join(model_dir, "weights.json"), encoding="utf-8") as f:
        doc = json.load(f)
    return UrgencyModel(labels, doc["bias"], doc["weights"])
