"""The urgency model: a keyword logistic model read from its own weights file.

`load(model_dir, lock_path=None)` is the platform's canary entry point (`[code].predict`).
It re-hashes every file the lock names before it uses any (fail closed).
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
    logits: list[float]


class UrgencyModel:
    def __init__(self, weights: dict[str, float], bias: float, labels: list[str]) -> None:
        self.weights, self.bias, self.labels = weights, bias, labels

    def score(self, text: str) -> float:
        words = _WORD.findall(text.lower())
        pairs = [f"{a} {b}" for a, b in itertools.pairwise(words)]
        return self.bias + sum(self.weights.get(t, 0.0) for t in words + pairs)

    def predict(self, texts: list[str], batch_size: int = 64) -> list[Prediction]:
        out = []
        for text in texts:
            z = self.score(text)
            p = 1.0 / (1.0 + math.exp(-z))
            urgent = p >= 0.5
            out.append(
                Prediction(
                    self.labels[1] if urgent else self.labels[0], p if urgent else 1 - p, [0.0, z]
                )
            )
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
    with open(os.path.join(model_dir, "weights.json"), encoding="utf-8") as f:
        doc = json.load(f)
    return UrgencyModel(doc["weights"], doc["bias"], doc["labels"])
