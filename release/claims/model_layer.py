"""Verify the model layer against the lock baked in the image: the merged model
directory holds exactly the files the lock says ship (the locked files, the runtime
model in place of the source ONNX it replaces), only the model layer wrote them, and
the baked lock is the project's lock.
"""

from __future__ import annotations

import hashlib
from typing import Any

from release.claims.checklist import Verification
from release.claims.image import IMAGE_LOCK, image_model_dir
from release.config import Config
from release.errors import ReleaseError
from release.evidence import ModelLayerClaim


def check_model_layer(cfg: Config, v: Verification, merged: Any, image: Any) -> ModelLayerClaim:
    """The model directory of the MERGED filesystem holds exactly the files of the baked
    lock (by sha256), nothing else, and no layer but the model layer touched it or the
    lock (a base or code layer adding, replacing or whiting-out a model file fails here,
    named)."""
    from release.image.modeltree import check_model
    from release.modelpin import lock_bytes, parse_lock, read_lock, shipped

    raw = merged.read(IMAGE_LOCK)
    if raw is None:
        reason = f"no model lock at /{IMAGE_LOCK} in the image"
        v.add("model layer", False, reason)
        return ModelLayerClaim(ok=False, reason=reason)
    try:
        lock = parse_lock(raw, f"/{IMAGE_LOCK}")
    except ReleaseError as exc:
        v.add("model layer", False, f"baked lock unreadable: {exc.message}")
        return ModelLayerClaim(ok=False, reason=exc.message)
    v.lock = lock
    lock_digest = "sha256:" + hashlib.sha256(lock_bytes(lock)).hexdigest()
    model_dir = image_model_dir(cfg, image)
    env = dict(
        e.split("=", 1) for e in (image.config.get("config") or {}).get("Env") or [] if "=" in e
    )
    runtime_dir = env.get("MODEL_DIR", "/" + model_dir).strip("/")
    if runtime_dir != model_dir:
        reason = f"the image's MODEL_DIR is /{runtime_dir}, [image].model_dir says /{model_dir}"
        v.add("model layer", False, reason)
        return ModelLayerClaim(ok=False, reason=reason, lock_digest=lock_digest)
    if merged.get(model_dir) is None:
        reason = f"no model directory /{model_dir} in the image"
        v.add("model layer", False, reason)
        return ModelLayerClaim(ok=False, reason=reason, lock_digest=lock_digest)
    # the model directory holds what the lock says ships (the runtime model in place of
    # the source it replaces: release.image.modeltree), every byte by sha256
    res, problems = check_model(merged, model_dir, lock)
    changed = [c.split(":", 1)[0] for c in res.changed]
    if not problems:
        ok, reason = True, ""
        v.add(
            "model layer",
            True,
            f"{len(shipped(lock).files)} files match the baked lock {lock.digest}; the merged "
            f"/{model_dir} holds nothing else and only the model layer wrote it"
            + (f"; runtime model {lock.runtime.digest[:19]}" if lock.runtime else "")
            + (
                f" in place of {lock.runtime.source.path}"
                if lock.runtime and lock.runtime.placement == "replaces-source"
                else ""
            ),
        )
    else:
        ok = False
        reason = "; ".join(problems[:5])
        v.add("model layer", False, reason)
    # the baked lock must be the project's lock when we verify from a project checkout
    label = v.labels.get("dev.release.model.digest")
    if label and label != lock.digest:
        ok = False
        reason = f"image label dev.release.model.digest {label} != baked lock {lock.digest}"
        v.add("model label", False, reason)
    project_lock = cfg.lock_path
    if project_lock.is_file():
        mine = read_lock(project_lock)
        same = mine.digest == lock.digest
        v.add(
            "model lock",
            same,
            f"baked lock is the project's lock ({lock.repo}@{lock.commit[:12]})"
            if same
            else f"image was built from model {lock.digest}, project lock {project_lock.name} says {mine.digest}",
        )
        if not same:
            ok = False
            reason = (
                reason
                or f"image model {lock.digest} is not the project's locked model {mine.digest}"
            )
    return ModelLayerClaim(
        ok=ok,
        reason=reason,
        lock_digest=lock_digest,
        missing=res.missing,
        changed=changed,
        extra=[*res.extra, *res.foreign],
    )
