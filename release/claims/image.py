"""Where `release build` puts things in the image, and the one read of the image's
merged filesystem (every layer, whiteouts applied: `release.image.fs`) that the model,
SBOM and runtime-model claims share.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from release.config import Config

if TYPE_CHECKING:
    from release.image.fs import MergedFS

#: where `release build` puts things in the image (contract 1)
IMAGE_MODEL_DIR = "opt/model"
IMAGE_LOCK = "opt/release/model.lock.json"
IMAGE_DEPS_DIR = "opt/deps"
IMAGE_CODE_DIR = "var/task"


def image_model_dir(cfg: Config, image: Any) -> str:
    """`[image].model_dir` without slashes: where the model lives in the image."""
    return cfg.image.model_dir.strip("/")


#: a runtime model next to the lock (images built before it replaced its source in the
#: model directory: release.image.modeltree); watched so that one is still checked
RUNTIME_DIR = IMAGE_LOCK.rsplit("/", 1)[0] + "/runtime"


def merged_view(cfg: Config, image: Any) -> MergedFS:
    """One read of every layer: the merged filesystem with the model directory hashed and
    watched, the baked lock and the deps' METADATA kept (`release.image.fs`). Each layer's
    scan comes from the user's scan cache when it holds it, after the blob is hashed."""
    from release.image import fs

    model_dir = image_model_dir(cfg, image)
    meta = re.compile(re.escape(IMAGE_DEPS_DIR) + r"/[^/]+\.dist-info/METADATA")
    return fs.scan(
        image,
        keep=lambda p: p == IMAGE_LOCK or bool(meta.fullmatch(p)),
        hash=lambda p: p.startswith((model_dir + "/", RUNTIME_DIR + "/")),
        watch=[model_dir, IMAGE_LOCK, RUNTIME_DIR],
        cache=fs.ScanCache(),
    )
