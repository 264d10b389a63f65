"""Liveness: the model directory and lock the image carries."""

from __future__ import annotations

import json
import os


def handler(event, context):
    with open(os.environ["MODEL_LOCK"], encoding="utf-8") as f:
        lock = json.load(f)
    present = [
        e["path"]
        for e in lock["files"]
        if os.path.isfile(os.path.join(os.environ["MODEL_DIR"], e["path"]))
    ]
    return {
        "ok": len(present) == len(lock["files"]),
        "model": lock["digest"],
        "files": len(present),
    }
