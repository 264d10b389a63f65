"""A small real image for the evidence tests, written with the registry/oci modules:
deps layer = the .venv's own installed `six` and `idna` (files listed in their RECORD),
model layer = the example model files + a generated ONNX stand-in + the baked lock,
policy and code layers = the repo's policy/ and handlers/ trees."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sysconfig
import tarfile
from pathlib import Path
from typing import Any

import pytest

from release.digest import Digest
from release.image.oci import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    ROLE_ANNOTATION,
    canonical,
    digest_of,
)
from release.image.registry import open_registry
from tests.fixtures.tools import REPO

SITE = Path(sysconfig.get_paths()["purelib"])
CREATED = "2026-01-02T03:04:05Z"


def _layer(entries: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(entries):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    gz = gzip.compress(tar, mtime=0)
    return gz, "sha256:" + hashlib.sha256(tar).hexdigest()


def _dist_files(dist: str) -> list[tuple[str, bytes]]:
    info = next(SITE.glob(f"{dist}-*.dist-info"))
    out = []
    for line in (info / "RECORD").read_text().splitlines():
        rel = line.split(",")[0]
        p = SITE / rel
        if rel and p.is_file() and "__pycache__" not in rel and not rel.startswith(".."):
            out.append((f"opt/deps/{rel}", p.read_bytes()))
    return out


def model_files(seed: bytes = b"") -> dict[str, bytes]:
    src = REPO / "model" / "examples" / "sst2-tiny"
    files = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    files["onnx/model.onnx"] = b"ONNX stand-in " + seed + bytes(range(256)) * 8
    return files


def lock_for(files: dict[str, bytes], commit: str = "ab" * 20) -> dict[str, Any]:
    entries = [
        {"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for p, d in sorted(files.items())
    ]
    body = {
        "schema": 1,
        "source": "hub",
        "repo": "example/sst2-tiny",
        "revision": "main",
        "commit": commit,
        "files": entries,
    }
    from types import SimpleNamespace

    from release.modelpin import root_digest

    # the lock's root digest is model-signing's (sha256 over the file digests in path order)
    body["digest"] = root_digest([SimpleNamespace(**e) for e in entries])  # type: ignore[arg-type]
    return body


def wheels_record() -> dict[str, Any]:
    """What `release build` records for the deps layer: the wheel pip installed for each
    package (here: the first hash the repository's requirements.lock pins for it)."""
    lock = (REPO / "requirements.lock").read_text()
    out = []
    for name in ("idna", "six"):
        version = (
            next(SITE.glob(f"{name}-*.dist-info")).name.removesuffix(".dist-info").split("-")[1]
        )
        block = lock.split(f"\n{name}=={version} ", 1)[1]
        sha = block.split("--hash=sha256:", 1)[1][:64]
        out.append(
            {
                "name": name,
                "version": version,
                "filename": f"{name}-{version}-py3-none-any.whl",
                "sha256": sha,
            }
        )
    return {"schema": 1, "wheels": out}


def build_image(
    registry: Any,
    *,
    seed: bytes = b"",
    lock: dict[str, Any] | None = None,
    base: list[tuple[str, bytes]] | None = None,
    after: list[list[tuple[str, bytes]]] | None = None,
    extra_model: dict[str, bytes] | None = None,
    omit_model: frozenset[str] = frozenset(),
) -> Digest:
    """Push a 5-layer image (base, deps, model, policy, code) and return its digest.
    `base` replaces the base layer's entries; `after` adds layers (role "code") on top;
    `extra_model`: more files of the model layer, by image path; `omit_model`: locked
    files (by lock path) the model layer leaves out."""
    mf = model_files(seed)
    lk = lock or lock_for(mf)
    layers = [
        ("base", base if base is not None else [("etc/os-release", b"ID=test\n" + seed)]),
        (
            "deps",
            _dist_files("six")
            + _dist_files("idna")
            + [("opt/release/wheels.json", json.dumps(wheels_record()).encode())],
        ),
        (
            "model",
            [(f"opt/model/{p}", d) for p, d in mf.items() if p not in omit_model]
            + [("opt/release/model.lock.json", json.dumps(lk).encode())]
            + sorted((extra_model or {}).items()),
        ),
        (
            "policy",
            [
                (f"var/task/policy/{p.relative_to(REPO / 'policy').as_posix()}", p.read_bytes())
                for p in sorted((REPO / "policy").rglob("*.rego"))
            ],
        ),
        (
            "code",
            [
                (f"var/task/handlers/{p.relative_to(REPO / 'handlers').as_posix()}", p.read_bytes())
                for p in sorted((REPO / "handlers").rglob("*.py"))
            ],
        ),
        *(("code", extra) for extra in after or []),
    ]
    descs, diff_ids = [], []
    for role, entries in layers:
        blob, diff_id = _layer(entries)
        d = digest_of(blob)
        registry.put_blob(blob, d)
        descs.append(
            {
                "mediaType": OCI_LAYER_GZIP,
                "digest": d,
                "size": len(blob),
                "annotations": {ROLE_ANNOTATION: role},
            }
        )
        diff_ids.append(diff_id)
    config = canonical(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": CREATED,
            "config": {
                "Env": ["MODEL_DIR=/opt/model"],
                "Labels": {
                    "dev.release.functions": json.dumps(
                        {"scorer": "handlers.scorer.lambda_handler"}
                    ),
                    "dev.release.model": f"{lk['repo']}@{lk['commit']}",
                    "org.opencontainers.image.revision": "cd" * 20,
                    "org.opencontainers.image.base.digest": "sha256:" + "ef" * 32,
                },
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    )
    registry.put_blob(config, digest_of(config))
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
            "layers": descs,
        }
    )
    return registry.put_manifest(manifest, OCI_MANIFEST)


@pytest.fixture(scope="session")
def layout_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Digest, Digest]:
    """(layout registry, image digest, a second image's digest)."""
    root = tmp_path_factory.mktemp("layout")
    reg = open_registry("oci:reg", root)
    return reg, build_image(reg), build_image(reg, seed=b"other")


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from release.attest.sign import KeySigner

    p = tmp_path_factory.mktemp("keys") / "signing.pem"
    KeySigner(p)
    return p
