"""The image's model files against its baked lock, on the merged filesystem: the one
check `release verify`'s model-layer claim, the SBOM and the canary's pre-check share.

    check_model(merged, model_dir, lock) -> (TreeCheck of the model directory, problems)

The merged `model_dir` must hold exactly `modelpin.shipped(lock)` (the locked files, with
the runtime model in place of the source it replaces: the weights once), written by the
model layer only, like the lock. A runtime model of an image built before that
(`placement = "beside-lock"`) sits next to the lock and is checked there; any other
image has nothing there.
"""

from __future__ import annotations

from release.image.fs import MergedFS, TreeCheck, check_tree
from release.image.oci import MODEL_LOCK_PATH
from release.modelpin import ModelLock, shipped

#: where a `beside-lock` runtime model sits: next to the lock (images built before the
#: runtime model replaced its source)
BESIDE_LOCK_RUNTIME = MODEL_LOCK_PATH.rsplit("/", 1)[0] + "/runtime"


def check_model(merged: MergedFS, model_dir: str, lock: ModelLock) -> tuple[TreeCheck, list[str]]:
    """Every problem of the image's model files (every byte by sha256) against `lock`."""
    want = shipped(lock)
    res = check_tree(
        merged,
        model_dir,
        {f.path: f.sha256 for f in want.files},
        owner="model",
        also=[MODEL_LOCK_PATH],
    )
    problems = res.problems()
    rt = lock.runtime
    beside = rt is not None and rt.placement == "beside-lock"
    if beside or merged.get(BESIDE_LOCK_RUNTIME) is not None:
        files = {f.path: f.sha256 for f in rt.files} if rt is not None and beside else {}
        problems += [
            f"runtime model /{BESIDE_LOCK_RUNTIME}: {p}"
            for p in check_tree(merged, BESIDE_LOCK_RUNTIME, files, owner="model").problems()
        ]
    return res, problems
