"""The fast-loading model format `release build` makes from the locked ONNX (docs/model-format.md).

    runtime_for(cfg, lock, cache) -> (RuntimeModel, {name: blob path}) | None

Format `onnx-external-data-v1`: the locked ONNX graph, optimized once by ONNX Runtime at
build time (graph level "extended": fusions that are portable across CPUs, no layout
transforms tied to this machine) and saved as two files:

    model.onnx     the optimized graph, small (tens of KB for DistilBERT)
    model.weights  every initializer of >= 1 KiB, raw, each at a 4 KiB-aligned offset

At cold start ONNX Runtime memory-maps model.weights instead of parsing 268 MB of
protobuf and skips the graph optimizations it would otherwise run on every start. The
conversion runs in a child process of the build's own interpreter (onnxruntime from
requirements.lock); its output is deterministic (same source + same onnxruntime => same
bytes, see tests/unit/test_modelformat.py) and cached in the model cache by the source's
digest, the onnxruntime version and the options. The converter's onnxruntime must be the
one the image ships (`onnxruntime==` in [image].requirements), else the build refuses.

The image ships the weights once: the runtime model REPLACES the source ONNX in the model
directory (`placement = "replaces-source"`: <model_dir>/runtime/{model.onnx,model.weights},
no <model_dir>/onnx/model.onnx). `modelpin.shipped(lock)` is what that directory holds;
every verifier (release verify, the SBOM, model-signing, the canary, the handler) checks
the image against it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Literal

from release._io import atomic_write_bytes, hash_file
from release.config import Config
from release.errors import ConfigError, UsageError, VerificationFailed
from release.modelpin import (
    Cache,
    LockedFile,
    ModelLock,
    RuntimeConverter,
    RuntimeModel,
    RuntimeSource,
    root_digest,
)

FORMAT: Literal["onnx-external-data-v1"] = "onnx-external-data-v1"
#: the runtime files' directory: inside the model directory in an image (replaces-source),
#: next to the lock for `bake` (beside-lock)
RUNTIME_DIR = "runtime"
PLACEMENT: Literal["replaces-source"] = "replaces-source"
GRAPH = "model.onnx"
WEIGHTS = "model.weights"
OPTIMIZATION: Literal["basic", "extended"] = "extended"
EXTERNAL_MIN_BYTES = 1024
#: the locked ONNX files the handler would load, in its order of preference
SOURCES = ("onnx/model.onnx", "model.onnx")

_CONVERT = r"""
import json, sys
import onnxruntime as ort
src, out, level, min_bytes = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
o = ort.SessionOptions()
o.intra_op_num_threads = 1
o.inter_op_num_threads = 1
o.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[level]
o.optimized_model_filepath = out + "/model.onnx"
o.add_session_config_entry("session.optimized_model_external_initializers_file_name", "model.weights")
o.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", min_bytes)
ort.InferenceSession(src, o, providers=["CPUExecutionProvider"], read_config_from_model=0)
print(json.dumps({"onnxruntime": ort.__version__}))
"""


def source_file(lock: ModelLock) -> LockedFile | None:
    """The locked ONNX the runtime format is made from (None: the lock has no ONNX)."""
    by = lock.by_path()
    for p in SOURCES:
        if p in by:
            return by[p]
    return None


def pinned_onnxruntime(cfg: Config) -> str | None:
    """The `onnxruntime==X` of the image's requirements lock (None when not pinned)."""
    try:
        text = cfg.resolve(cfg.image.requirements).read_text()
    except OSError:
        return None
    m = re.search(r"^onnxruntime==([^\s;\\]+)", text, re.MULTILINE | re.IGNORECASE)
    return m.group(1) if m else None


def converter_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnxruntime")
    except PackageNotFoundError:
        raise ConfigError(
            "onnxruntime is not installed: `release build` needs it to convert the model"
        ) from None


def _key(src: LockedFile, ort_version: str) -> str:
    h = hashlib.sha256(
        json.dumps([FORMAT, src.sha256, ort_version, OPTIMIZATION, EXTERNAL_MIN_BYTES]).encode()
    )
    return h.hexdigest()


def convert(src: Path, out_dir: Path) -> str:
    """Convert one ONNX file into out_dir/{model.onnx, model.weights}; returns the
    onnxruntime version that did it. VerificationFailed when ONNX Runtime cannot load it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ORT_"))}
    env["OMP_NUM_THREADS"] = "1"
    p = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            _CONVERT,
            str(src),
            str(out_dir),
            OPTIMIZATION,
            str(EXTERNAL_MIN_BYTES),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        raise VerificationFailed(
            f"the locked ONNX model could not be converted: {lines[-1] if lines else f'exit {p.returncode}'}"
        )
    if not (out_dir / GRAPH).is_file():
        raise VerificationFailed("the model converter wrote no graph")
    if not (out_dir / WEIGHTS).is_file():
        # a model without initializers of >= 1 KiB: an empty weights file keeps the format fixed
        (out_dir / WEIGHTS).write_bytes(b"")
    return str(json.loads(p.stdout.strip().splitlines()[-1])["onnxruntime"])


def runtime_for(
    cfg: Config, lock: ModelLock, cache: Cache
) -> tuple[RuntimeModel, dict[str, Path]] | None:
    """The runtime model of `lock` (converted now, or from the cache, re-hashed either
    way) and its files as cache blobs; None when the lock has no ONNX file."""
    src = source_file(lock)
    if src is None:
        return None
    ort_version = converter_version()
    pinned = pinned_onnxruntime(cfg)
    if pinned is not None and pinned != ort_version:
        raise ConfigError(
            f"[image].requirements: the image ships onnxruntime {pinned} but the converter is "
            f"onnxruntime {ort_version}: "
            "a pre-optimized model must be made by the runtime that loads it (align the locks)"
        )
    key = _key(src, ort_version)
    index = cache.root / "runtime" / f"{key}.json"
    files: list[LockedFile] | None = None
    if index.is_file():
        try:
            files = [LockedFile(**f) for f in json.loads(index.read_bytes())["files"]]
        except (ValueError, TypeError, KeyError):
            files = None
        if files is not None and not all(cache.blob(f.sha256).is_file() for f in files):
            files = None
    if files is None:
        cache.ensure()
        src_blob = cache.blob(src.sha256)
        size, sha, _ = hash_file(src_blob)
        if sha != src.sha256 or size != src.size:
            where = f"{cfg.image.model_dir.strip('/')}/{src.path}"
            raise VerificationFailed(
                f"{where}: sha256 {sha}, the lock says {src.sha256} "
                f"(cached model file {src_blob} is corrupt); nothing was built"
            )
        with tempfile.TemporaryDirectory(prefix="convert-", dir=cache.tmp) as tmp:
            out = Path(tmp) / "out"
            got = convert(src_blob, out)
            if got != ort_version:
                raise ConfigError(f"the converter ran onnxruntime {got}, expected {ort_version}")
            files = []
            for name in (GRAPH, WEIGHTS):
                size, sha, _ = hash_file(out / name)
                files.append(LockedFile(path=name, size=size, sha256=sha))
                if not cache.blob(sha).is_file():
                    cache.put(out / name, sha)
        atomic_write_bytes(index, json.dumps({"files": [f.model_dump() for f in files]}).encode())
    rt = _runtime_model(files, src, ort_version, PLACEMENT)
    top = RUNTIME_DIR.split("/", 1)[0]
    clash = [f.path for f in lock.files if f.path.split("/", 1)[0] == top]
    if clash:
        raise ConfigError(
            f"the model lock has {clash[0]}: the runtime model's {RUNTIME_DIR}/ directory in "
            f"{cfg.image.model_dir} would mix with it (leave {top}/ out of [model].include)"
        )
    return rt, {f.path: cache.blob(f.sha256) for f in files}


def _runtime_model(
    files: list[LockedFile],
    src: LockedFile,
    ort_version: str,
    placement: Literal["beside-lock", "replaces-source"],
) -> RuntimeModel:
    return RuntimeModel(
        placement=placement,
        format=FORMAT,
        dir=RUNTIME_DIR,
        files=files,
        digest=root_digest(files),
        source=RuntimeSource(path=src.path, sha256=src.sha256),
        converter=RuntimeConverter(
            onnxruntime=ort_version,
            optimization=OPTIMIZATION,
            external_min_bytes=EXTERNAL_MIN_BYTES,
        ),
    )


def bake(
    lock: ModelLock,
    model_dir: Path,
    lock_dir: Path,
    placement: Literal["beside-lock", "replaces-source"] = "beside-lock",
) -> ModelLock:
    """What the build bakes, for a model directory outside an image: converts the locked
    ONNX of `model_dir` (verified against `lock` first) and writes the image lock to
    lock_dir/model.lock.json. `beside-lock`: the runtime files go to lock_dir/runtime/;
    `replaces-source`: to model_dir/runtime/ and the source file is removed from
    `model_dir`, as in an image. Used by bench/coldstart.py and tests."""
    from release.modelpin import lock_bytes, verify_dir

    res = verify_dir(model_dir, lock, progress=False)
    if not res.ok:
        raise VerificationFailed(f"{model_dir} does not match the lock", details=res.problems())
    src = source_file(lock)
    if src is None:
        raise UsageError("the lock names no ONNX file (onnx/model.onnx or model.onnx)")
    out = (model_dir if placement == "replaces-source" else lock_dir) / RUNTIME_DIR
    version = convert(model_dir / src.path, out)
    files = []
    for name in (GRAPH, WEIGHTS):
        size, sha, _ = hash_file(out / name)
        files.append(LockedFile(path=name, size=size, sha256=sha))
    image_lock = with_runtime(lock, _runtime_model(files, src, version, placement))
    if placement == "replaces-source":
        (model_dir / src.path).unlink()
        parent = (model_dir / src.path).parent
        while parent != model_dir and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    lock_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(lock_dir / "model.lock.json", lock_bytes(image_lock))
    return image_lock


def with_runtime(lock: ModelLock, rt: RuntimeModel | None) -> ModelLock:
    """The image's lock: the project's lock plus its runtime model."""
    return lock if rt is None else lock.model_copy(update={"runtime": rt})


def verify_runtime(lock_dir: Path, lock: ModelLock) -> list[str]:
    """Every problem of the runtime files next to an image lock (`lock_dir`/runtime/, a
    `beside-lock` runtime model) against `lock.runtime`, each file re-hashed; empty when
    verified or when there is none there (a `replaces-source` model is checked as part of
    the model directory: `modelpin.shipped`). Used by the canary's pre-check."""
    from release.modelpin import verify_dir

    rt = lock.runtime
    if rt is None or rt.placement != "beside-lock":
        return []
    d = lock_dir / rt.dir
    if not d.is_dir():
        return [f"missing: {rt.dir}/ (the runtime model the lock names)"]
    res = verify_dir(
        d, lock.model_copy(update={"files": rt.files, "runtime": None}), progress=False
    )
    return [
        f"{kind}: {rt.dir}/{rest}" for kind, _, rest in (p.partition(": ") for p in res.problems())
    ]
