"""`release build --backend docker`: the same content, built by the Docker engine.

The engine (DOCKER_HOST, via the docker SDK) gets the base image by digest - loaded from
the OCI layout as a docker-archive when the base is `oci:DIR@sha256:...`, else pulled by
digest - and builds a generated Dockerfile whose four COPY steps are the four layers of
the native build (deps, model + model lock, policy, code) with the same config (ENV,
WORKDIR, labels, ENTRYPOINT/CMD). The image is pushed to a registry and the digest the
registry reports is verified by reading the manifest back. The same config and layer
blobs are then published under an OCI manifest whose layers carry the role annotations
(contract 1); that manifest's digest is the one reported (docker's own is kept in its
`dev.release.docker.digest` annotation and in `--json` as `docker_digest`).

Docker's image is not reproducible (the config records build times, files keep their
mtimes); the native backend is the one whose digest is stable. This backend exists for
teams that must build with the engine, and as the benchmark's reference.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from release import modelpin
from release.config import Config
from release.digest import Digest, parse_digest
from release.errors import ConfigError, RemoteError, UsageError
from release.image import engine
from release.image.bytecode import compile_tree, image_python
from release.image.deps import DEPS_DIR, WHEELS_PATH, install_deps
from release.image.distribution import DistributionRegistry
from release.image.inspect import local_blob, open_image, resolve_platform
from release.image.layout import LayoutRegistry
from release.image.oci import (
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
)
from release.image.registry import open_registry
from release.image.result import BuiltImage, LayerReport, size_gate

ROLES = ("deps", "model", "policy", "code")


def roles_of(cfg: Config) -> tuple[str, ...]:
    """The layers this config adds to the base, in order (no policy layer without
    `[code].policy`)."""
    return tuple(r for r in ROLES if r != "policy" or cfg.code.policy)


def load_base(client: Any, cfg: Config, bref: ImageRef) -> str:
    """Get the base into the engine; returns a local name to use in FROM."""
    reg = open_registry(bref.location, cfg.root)
    digest = resolve_platform(reg, bref.digest, cfg.image.platform)
    name = f"release-base:{digest.removeprefix('sha256:')[:20]}"
    import docker.errors

    try:
        client.images.get(name)
        return name
    except docker.errors.ImageNotFound:
        pass  # loaded below
    if not isinstance(reg, LayoutRegistry):
        engine.call("pull of the base", client.images.pull, f"{bref.location}@{digest}")
        engine.call(
            "tag of the base",
            client.api.tag,
            f"{bref.location}@{digest}",
            "release-base",
            digest.removeprefix("sha256:")[:20],
        )
        return name
    img = open_image(reg, digest)
    # a docker-archive (`docker save` format) of the base, layers streamed from the layout
    with tempfile.TemporaryDirectory(prefix="release-base-") as tmp:
        archive = Path(tmp) / "base.tar"
        with tarfile.open(archive, "w") as tf:
            cfg_name = f"{img.manifest['config']['digest'].removeprefix('sha256:')}.json"
            _add_bytes(tf, cfg_name, img.config_bytes)
            layer_names = []
            for la in img.layers:
                ln = f"{la.digest.removeprefix('sha256:')}.tar.gz"
                with local_blob(reg, la.digest) as p:
                    tf.add(p, arcname=ln)
                layer_names.append(ln)
            manifest = [{"Config": cfg_name, "RepoTags": [name], "Layers": layer_names}]
            _add_bytes(tf, "manifest.json", json.dumps(manifest).encode())
        with open(archive, "rb") as f:
            engine.call("load of the base", client.images.load, f)
    return name


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tf.addfile(ti, io.BytesIO(data))


def _copytree(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))


def dockerfile(
    cfg: Config, base_name: str, lock: modelpin.ModelLock, labels: dict[str, str]
) -> str:
    first = next(iter(cfg.functions.values()))
    env = {
        "PYTHONPATH": f"/{DEPS_DIR}:{cfg.image.workdir}",
        "MODEL_DIR": cfg.image.model_dir,
        "MODEL_LOCK": "/" + MODEL_LOCK_PATH,
    }
    lines = [
        f"FROM {base_name}",
        "COPY deps/ /",
        "COPY model/ /",
        *(["COPY policy/ /"] if cfg.code.policy else []),
        "COPY code/ /",
        "ENV " + " ".join(f"{k}={v}" for k, v in env.items()),
        f"WORKDIR {cfg.image.workdir}",
    ]
    for k, v in sorted(labels.items()):
        lines.append(f"LABEL {k}={json.dumps(v)}")
    lines.append('ENTRYPOINT ["python3", "-m", "awslambdaric"]')
    lines.append(f"CMD {json.dumps([first])}")
    return "\n".join(lines) + "\n"


def prepare_context(cfg: Config, lock: modelpin.ModelLock, ctx: Path) -> None:
    """The build context: one directory per layer, laid out from `/`."""
    workdir = cfg.image.workdir.strip("/")
    wheels = install_deps(cfg, ctx / "deps" / DEPS_DIR)
    (ctx / "deps" / WHEELS_PATH).parent.mkdir(parents=True, exist_ok=True)
    (ctx / "deps" / WHEELS_PATH).write_bytes(wheels)
    model_dest = ctx / "model" / cfg.image.model_dir.strip("/")
    modelpin.fetch(cfg, dest=model_dest, lock=lock, progress=False)  # verified copy
    from release import modelformat

    mcache = modelpin.Cache()
    runtime = modelformat.runtime_for(cfg, lock, mcache)  # fetch above filled the cache
    lock_file = ctx / "model" / MODEL_LOCK_PATH
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock_file.write_bytes(
        modelpin.lock_bytes(modelformat.with_runtime(lock, runtime[0] if runtime else None))
    )
    if runtime is not None:
        # the runtime model in place of its source (modelpin.shipped): the weights once
        rt, blobs = runtime
        (model_dest / rt.source.path).unlink()
        for parent in (model_dest / rt.source.path).parents:
            if parent == model_dest or any(parent.iterdir()):
                break
            parent.rmdir()
        (model_dest / rt.dir).mkdir(parents=True, exist_ok=True)
        for f in rt.files:
            shutil.copyfile(blobs[f.path], model_dest / rt.dir / f.path)
    for key, src, dest in (
        ("[code].policy", cfg.code.policy, ctx / "policy" / workdir / "policy"),
        ("[code].package", cfg.code.package, ctx / "code" / workdir / cfg.code.package),
    ):
        if src is None:
            continue
        if not cfg.resolve(src).is_dir():
            raise ConfigError(f"{key}: directory {src}/ not found next to {cfg.path.name}")
        _copytree(cfg.resolve(src), dest)
    # the code layer's bytecode, as the native build makes it (bytecode.py)
    py = image_python(cfg)
    if py is not None:
        code = ctx / "code"
        for e in compile_tree(
            cfg.resolve(cfg.code.package),
            f"{workdir}/{cfg.code.package}",
            py,
            {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"},
        ):
            assert e.data is not None
            (code / e.path).parent.mkdir(parents=True, exist_ok=True)
            (code / e.path).write_bytes(e.data)


def build_docker(
    cfg: Config, bref: ImageRef, target_name: str, lock: modelpin.ModelLock
) -> BuiltImage:
    target = open_registry(target_name, cfg.root)
    if not isinstance(target, DistributionRegistry):
        raise UsageError(
            f"--backend docker pushes to a registry: give --push HOST[:PORT]/REPO (not {target_name})"
        )
    t0 = time.perf_counter()
    client = engine.client()
    base_name = load_base(client, cfg, bref)
    labels = {
        FUNCTIONS_LABEL: canonical(cfg.functions).decode(),
        MODEL_LABEL: f"{lock.repo}@{lock.commit}",
        MODEL_DIGEST_LABEL: lock.digest,
    }
    tag = f"{target.name}:release-docker"
    with tempfile.TemporaryDirectory(prefix="release-ctx-") as tmp:
        ctx = Path(tmp)
        prepare_context(cfg, lock, ctx)
        (ctx / "Dockerfile").write_text(dockerfile(cfg, base_name, lock, labels))
        t_build = time.perf_counter()
        for chunk in engine.call(
            "build", client.api.build, path=str(ctx), tag=tag, rm=True, forcerm=True, decode=True
        ):
            if "error" in chunk:
                raise RemoteError(f"Docker engine: build failed: {chunk['error'].strip()[:300]}")
        build_s = time.perf_counter() - t_build
    # the size gate before anything is pushed: the engine knows the uncompressed size
    usize = int(engine.call("inspect", client.images.get, tag).attrs.get("Size") or 0)
    size_gate(cfg, usize, [])
    reported: str | None = None
    for chunk in engine.call(
        "push", client.api.push, target.name, tag="release-docker", stream=True, decode=True
    ):
        if "error" in chunk:
            raise RemoteError(f"Docker engine: push failed: {chunk['error'].strip()[:300]}")
        aux = chunk.get("aux") or {}
        if aux.get("Digest"):
            reported = aux["Digest"]
    if reported is None:
        raise RemoteError("Docker engine: push reported no digest")
    docker_digest: Digest = parse_digest(reported)
    dimg = open_image(target, docker_digest)  # verifies the bytes the registry holds
    ours = roles_of(cfg)
    base_count = len(dimg.layers) - len(ours)
    if base_count < 1:
        raise RemoteError(
            f"Docker engine built {len(dimg.layers)} layers; expected the base plus {len(ours)}"
        )
    roles = ["base"] * base_count + list(ours)
    # the same blobs under an OCI manifest carrying the layer roles (contract 1), so the
    # rest of the pipeline (sbom, canary) reads a docker-built image like a native one
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": dimg.manifest["config"]["digest"],
                "size": len(dimg.config_bytes),
            },
            "layers": [
                {
                    "mediaType": OCI_LAYER_GZIP,
                    "digest": la.digest,
                    "size": la.size,
                    "annotations": {ROLE_ANNOTATION: r},
                }
                for r, la in zip(roles, dimg.layers, strict=True)
            ],
            "annotations": {"dev.release.docker.digest": docker_digest},
        }
    )
    digest = target.put_manifest(manifest, OCI_MANIFEST)
    img = open_image(target, digest)
    layers = [LayerReport(la.role, la.digest, la.size, 0) for la in img.layers]
    return BuiltImage(
        digest=digest,
        registry=target.name,
        base=str(bref),
        layers=layers,
        functions=dict(cfg.functions),
        size=img.size,
        usize=usize,
        backend="docker",
        created=str(img.config.get("created", "")),
        model=f"{lock.repo}@{lock.commit}",
        timings={"docker_build": build_s, "total": time.perf_counter() - t0},
        docker_digest=docker_digest,
    )
