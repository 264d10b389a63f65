"""`release build`: ONE reproducible Lambda image holding every handler and the model.

    build(cfg, base=..., push=..., backend="native") -> BuiltImage

Inputs: the base image **by digest** (`[image].base`, `$RELEASE_BASE` or `--base`), the
handlers' `requirements.lock` installed by uv for the target platform and Python, the
model fetched per `model.lock.json` and re-hashed as it is packed, `policy/` and
`handlers/`. Layers, ordered by change rate (contract 1):

    deps    /opt/deps                        uv pip install --target, cached by the
                                             lock's digest and the installer's version
            /opt/release/wheels.json         the wheel uv installed for each package and
                                             its sha256 (deps.py; see docs/sbom.md)
    model   /opt/model + /opt/release/model.lock.json   cached by the model lock's digest
            /opt/model/runtime/ (the pre-optimized model, docs/model-format.md) in
            place of the source ONNX it was made from: the weights ship once
    policy  /var/task/policy
    code    /var/task/handlers (+ __pycache__/*.pyc of the image's Python, bytecode.py)

Same inputs => same manifest digest: tars are normalised (see layers.py), the config's
`created` and the code/policy mtimes come from SOURCE_DATE_EPOCH or the git commit time,
and the content-addressed layers (deps, model) use a fixed mtime (1980-01-01) so a new
commit does not invalidate them. Dependencies and every module of the code layer ship
unchecked-hash .pyc files (no mtimes, image paths; bytecode.py), compiled only by an
interpreter of the image's Python. The image is written to `[image].registry` or `--push
REF` (OCI layout, any OCI registry, ECR): blobs that exist are skipped, the manifest is
put as exact bytes and the digest the registry reports is checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from release import modelpin
from release._io import hash_file
from release.config import Config
from release.digest import Digest
from release.errors import ConfigError, UsageError, VerificationFailed
from release.gitremote import git as _git
from release.gitremote import repo_url
from release.image.base import iso
from release.image.bytecode import ImagePython, compile_tree, image_python, no_bytecode_reason
from release.image.deps import (
    DEPS_DIR,
    DEPS_LEVEL,
    WHEELS_PATH,
    compiles,
    install_deps,
    installer,
)
from release.image.inspect import ImageView, local_blob, open_image, resolve_platform
from release.image.layers import (
    Entry,
    Layer,
    LayerCache,
    gunzip_size,
    key_of,
    tree_entries,
    with_parents,
)
from release.image.layout import LayoutRegistry
from release.image.oci import (
    DOCKER_LAYER_GZIP,
    FUNCTIONS_LABEL,
    MODEL_DIGEST_LABEL,
    MODEL_LABEL,
    MODEL_LOCK_PATH,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ROLE_ANNOTATION,
    ImageRef,
    canonical,
    descriptor,
    parse_image_ref,
)
from release.image.registry import Registry, open_registry
from release.image.result import BuiltImage, LayerReport, size_gate

#: mtime of every entry of the content-addressed layers (deps, model): 1980-01-01
CONTENT_MTIME = 315532800
_SKIP_NAMES = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


# --- inputs ---------------------------------------------------------------------------
def base_ref(cfg: Config, override: str | None = None) -> ImageRef:
    """--base, else $RELEASE_BASE, else [image].base; always by digest (else exit 2):
    `LOCATION@sha256:...` or `docker-daemon:NAME@sha256:<image id>`."""
    value = override or os.environ.get("RELEASE_BASE") or cfg.image.base
    from release.image import daemon

    if daemon.is_daemon_ref(value):
        # an image in the local Docker engine, pinned by its image ID: exported once into
        # the cache as an OCI layout, then read like any other base
        return daemon.materialize(value, modelpin.Cache().root)
    return parse_image_ref(value, what="base image")


def source_epoch(root: Path) -> int:
    """SOURCE_DATE_EPOCH, else the commit time of HEAD."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            return int(env)
        except ValueError:
            raise UsageError(f"SOURCE_DATE_EPOCH={env!r} is not an integer") from None
    t = _git(root, "log", "-1", "--format=%ct")
    if t is None:
        raise UsageError(
            f"{root} is not a git checkout with a commit: set SOURCE_DATE_EPOCH so the build "
            "is reproducible"
        )
    return int(t)


def image_annotations(root: Path, epoch: int, base_digest: str) -> dict[str, str]:
    """The image's `org.opencontainers.image.*` annotations (also its labels): created,
    the checkout's HEAD commit as revision, the repository URL of its `origin` as source
    (`release.gitremote.repo_url`: absent when origin is a local path or there is none),
    the base's digest."""
    out = {"org.opencontainers.image.created": iso(epoch)}
    revision = _git(root, "rev-parse", "HEAD")
    if revision:
        out["org.opencontainers.image.revision"] = revision
    source = repo_url(_git(root, "remote", "get-url", "origin"))
    if source:
        out["org.opencontainers.image.source"] = source
    out["org.opencontainers.image.base.digest"] = base_digest
    return out


def _skip(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return name in _SKIP_NAMES or name.endswith((".pyc", ".pyo"))


# --- layers ---------------------------------------------------------------------------
def deps_layer(cfg: Config, cache: LayerCache) -> Layer:
    lock = cfg.resolve(cfg.image.requirements)
    try:
        lock_sha = hashlib.sha256(lock.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise ConfigError(f"[image].requirements: {lock.name} not found in {lock.parent}") from None
    pyc = sys.version if compiles(cfg) else "no-pyc"
    key = key_of(
        "deps",
        lock_sha,
        cfg.image.platform,
        cfg.image.python,
        pyc,
        str(CONTENT_MTIME),
        WHEELS_PATH,
        installer(),  # a new installer (pip before, another uv) may lay files out otherwise
        f"gzip-{DEPS_LEVEL}",
    )
    hit = cache.lookup(key)
    if hit is not None:
        return hit
    with tempfile.TemporaryDirectory(prefix="release-deps-") as tmp:
        target = Path(tmp) / "deps"
        wheels = install_deps(cfg, target)
        entries = with_parents(
            [*tree_entries(target, DEPS_DIR), Entry(WHEELS_PATH, "file", 0o644, data=wheels)]
        )
        return cache.build(key, "deps", entries, CONTENT_MTIME, level=DEPS_LEVEL)


def _ensure_model_cached(cfg: Config, lock: modelpin.ModelLock, mcache: modelpin.Cache) -> None:
    if all(mcache.blob(f.sha256).is_file() for f in lock.files):
        return
    with tempfile.TemporaryDirectory(prefix="release-model-") as tmp:
        modelpin.fetch(cfg, dest=Path(tmp) / "m", lock=lock, cache=mcache, progress=False)


def model_layer(cfg: Config, cache: LayerCache, lock: modelpin.ModelLock) -> Layer:
    """The model files straight from the content-addressed cache, each re-hashed: what
    `modelpin.shipped` says the image's model directory holds (the runtime model in place
    of the source ONNX it was made from: the weights once, docs/model-format.md)."""
    from release import modelformat

    mcache = modelpin.Cache()
    _ensure_model_cached(cfg, lock, mcache)
    # the fast-loading runtime model (docs/model-format.md), recorded in the image's lock
    runtime = modelformat.runtime_for(cfg, lock, mcache)
    image_lock = modelformat.with_runtime(lock, runtime[0] if runtime else None)
    lock_bytes = modelpin.lock_bytes(image_lock)
    model_dir = cfg.image.model_dir.strip("/")
    blobs = {f.path: mcache.blob(f.sha256) for f in lock.files}
    if runtime is not None:
        rt, rt_blobs = runtime
        blobs.update({f"{rt.dir}/{name}": path for name, path in rt_blobs.items()})
    entries = [
        Entry(
            f"{model_dir}/{f.path}",
            "file",
            0o644,
            source=blobs[f.path],
            size=f.size,
            sha256=f.sha256,
        )
        for f in modelpin.shipped(image_lock).files
    ]
    entries.append(Entry(MODEL_LOCK_PATH, "file", 0o644, data=lock_bytes))
    entries = with_parents(entries)
    key = key_of(
        "model", lock.digest, hashlib.sha256(lock_bytes).hexdigest(), model_dir, str(CONTENT_MTIME)
    )
    hit = cache.lookup(key)
    if hit is not None:
        # verify before use: the bytes the lock names are still the bytes we have
        for e in entries:
            if e.source is None:
                continue
            size, sha, _ = hash_file(e.source)
            if sha != e.sha256 or size != e.size:
                raise VerificationFailed(
                    f"{e.path}: sha256 {sha}, the lock says {e.sha256} "
                    f"(cached model file {e.source} is corrupt); nothing was built"
                )
        return hit
    return cache.build(key, "model", entries, CONTENT_MTIME)


def missing_tree(cfg: Config, key: str, src: str) -> ConfigError:
    """The one line for a [code] directory that is not there."""
    hint = (
        " (unset the key when your handlers read no data files)" if key == "[code].policy" else ""
    )
    return ConfigError(f"{key}: directory {src}/ not found next to {cfg.path.name}{hint}")


def tree_layer(
    cfg: Config,
    cache: LayerCache,
    role: str,
    src: str,
    dest: str,
    mtime: int,
    py: ImagePython | None = None,
) -> Layer:
    """A directory of the project as a layer at `/dest`; with `py` (the code layer) an
    unchecked-hash .pyc beside every module, compiled by the image's Python (bytecode.py)."""
    d = cfg.resolve(src)
    if not d.is_dir():
        raise missing_tree(cfg, "[code].policy" if role == "policy" else "[code].package", src)
    entries = tree_entries(d, dest, skip=_skip)
    if py is not None:
        entries += compile_tree(d, dest, py, _SKIP_NAMES)
    return cache.build(None, role, with_parents(entries), mtime)


# --- config and manifest ----------------------------------------------------------------
def _env(base_env: list[str], extra: dict[str, str]) -> list[str]:
    out = [e for e in base_env if e.split("=", 1)[0] not in extra]
    return out + [f"{k}={v}" for k, v in extra.items()]


def image_config(
    cfg: Config,
    base: ImageView,
    layers: list[Layer],
    lock: modelpin.ModelLock,
    epoch: int,
    annotations: dict[str, str],
) -> bytes:
    bc = base.config.get("config") or {}
    workdir = cfg.image.workdir
    env = _env(
        list(bc.get("Env") or []),
        {
            "PYTHONPATH": f"/{DEPS_DIR}:{workdir}",
            "MODEL_DIR": cfg.image.model_dir,
            "MODEL_LOCK": "/" + MODEL_LOCK_PATH,
        },
    )
    labels = dict(bc.get("Labels") or {})
    labels.update(annotations)
    labels[FUNCTIONS_LABEL] = canonical(cfg.functions).decode()
    labels[MODEL_LABEL] = f"{lock.repo}@{lock.commit}"
    labels[MODEL_DIGEST_LABEL] = lock.digest
    entrypoint = bc.get("Entrypoint") or ["python3", "-m", "awslambdaric"]
    first = next(iter(cfg.functions.values()))
    created = iso(epoch)
    history = []
    for h in base.config.get("history") or []:
        h = dict(h)
        h.setdefault("created", created)  # some tools crash on a history entry without it
        history.append(h)
    for la in layers:
        history.append({"created": created, "created_by": f"release build: {la.role} layer"})
    arch = cfg.image.platform.split("/")[1]
    doc = {
        "architecture": arch,
        "os": "linux",
        "created": created,
        "config": {
            "Env": env,
            "Entrypoint": entrypoint,
            "Cmd": [first],
            "WorkingDir": workdir,
            "Labels": labels,
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": [la.diff_id for la in base.layers] + [la.diff_id for la in layers],
        },
        "history": history,
    }
    return canonical(doc)


def _manifest(
    base: ImageView, config: bytes, layers: list[Layer], annotations: dict[str, str]
) -> bytes:
    descs = []
    for bl in base.layers:
        mt = (
            OCI_LAYER_GZIP
            if bl.media_type in (DOCKER_LAYER_GZIP, OCI_LAYER_GZIP)
            else bl.media_type
        )
        descs.append(
            {
                "mediaType": mt,
                "digest": bl.digest,
                "size": bl.size,
                "annotations": {ROLE_ANNOTATION: "base"},
            }
        )
    for la in layers:
        descs.append(
            {
                "mediaType": OCI_LAYER_GZIP,
                "digest": la.digest,
                "size": la.size,
                "annotations": {ROLE_ANNOTATION: la.role},
            }
        )
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": descs,
            "annotations": annotations,
        }
    )


def _base_usize(base: ImageView, cache: LayerCache) -> list[int]:
    out = []
    for la in base.layers:
        n = cache.usize_of(la.digest)
        if n is None:
            with local_blob(base.registry, la.digest) as p:
                n = gunzip_size(p)
            cache.remember_usize(la.digest, n)
        out.append(n)
    return out


def _copy_blob(src: Registry, dst: Registry, digest: Digest) -> bool:
    """Copy one blob unless the destination has it; True when bytes moved."""
    if dst.has_blob(digest):
        return False
    if isinstance(src, LayoutRegistry):
        dst.put_blob(src.blob_path(digest), digest)
        return True
    with local_blob(src, digest) as p:
        dst.put_blob(p, digest)
    return True


# --- the build ----------------------------------------------------------------------------
def build(
    cfg: Config,
    *,
    base: str | None = None,
    push: str | None = None,
    backend: Literal["native", "docker"] = "native",
    cache_root: Path | None = None,
) -> BuiltImage:
    """Build the image and write it to `push` (default `[image].registry`)."""
    import time

    bref = base_ref(cfg, base)
    target_name = push or cfg.image.registry
    target = open_registry(target_name, cfg.root)  # validates the reference early
    for key, src in (("[code].package", cfg.code.package), ("[code].policy", cfg.code.policy)):
        if src is not None and not cfg.resolve(src).is_dir():
            raise missing_tree(cfg, key, src)
    lock = modelpin.read_lock(cfg.lock_path)
    modelpin.check_lock_matches_config(cfg, lock)
    modelpin.require_local_source(cfg, lock)
    if backend == "docker":
        from release.image.docker import build_docker

        return build_docker(cfg, bref, target_name, lock)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    epoch = source_epoch(cfg.root)
    cache = LayerCache(cache_root or modelpin.Cache().root)
    base_reg = open_registry(bref.location, cfg.root)
    base_digest = resolve_platform(base_reg, bref.digest, cfg.image.platform)
    base_img = open_image(base_reg, base_digest)
    py = image_python(cfg)
    bytecode = (
        {"python": py.version, "magic": py.magic, "invalidation": "unchecked-hash"}
        if py is not None
        else {"python": cfg.image.python, "skipped": no_bytecode_reason(cfg)}
    )
    timings["base"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    with ThreadPoolExecutor(4, thread_name_prefix="layer") as pool:
        futs = [
            pool.submit(deps_layer, cfg, cache),
            pool.submit(model_layer, cfg, cache, lock),
            *(
                [
                    pool.submit(
                        tree_layer,
                        cfg,
                        cache,
                        "policy",
                        cfg.code.policy,
                        f"{cfg.image.workdir.strip('/')}/policy",
                        epoch,
                    )
                ]
                if cfg.code.policy
                else []
            ),
            pool.submit(
                tree_layer,
                cfg,
                cache,
                "code",
                cfg.code.package,
                f"{cfg.image.workdir.strip('/')}/{cfg.code.package}",
                epoch,
                py,
            ),
        ]
        layers = [f.result() for f in futs]
    timings["layers"] = time.perf_counter() - t1

    notes = image_annotations(cfg.root, epoch, base_digest)
    config = image_config(cfg, base_img, layers, lock, epoch, notes)
    manifest = _manifest(base_img, config, layers, notes)

    base_usizes = _base_usize(base_img, cache)
    usize = sum(base_usizes) + sum(la.usize for la in layers)
    reports = [
        LayerReport("base", la.digest, la.size, n, True)
        for la, n in zip(base_img.layers, base_usizes, strict=True)
    ] + [LayerReport(la.role, la.digest, la.size, la.usize, la.cached) for la in layers]
    size = len(manifest) + len(config) + sum(r.size for r in reports)
    size_gate(cfg, usize, reports)

    t2 = time.perf_counter()
    pushed = skipped = 0
    for bl in base_img.layers:
        if _copy_blob(base_reg, target, bl.digest):
            pushed += 1
        else:
            skipped += 1
    for la in layers:
        if target.has_blob(la.digest):
            skipped += 1
        else:
            target.put_blob(la.path, la.digest)
            pushed += 1
    target.put_blob(config, descriptor(OCI_CONFIG, config)["digest"])
    digest = target.put_manifest(manifest, OCI_MANIFEST)
    timings["push"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return BuiltImage(
        digest=digest,
        registry=target.name,
        base=str(ImageRef(bref.location, base_digest)),
        layers=reports,
        functions=dict(cfg.functions),
        size=size,
        usize=usize,
        created=iso(epoch),
        model=f"{lock.repo}@{lock.commit}",
        pushed_blobs=pushed,
        skipped_blobs=skipped,
        timings=timings,
        bytecode=bytecode,
    )


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
