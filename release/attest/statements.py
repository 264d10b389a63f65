"""The predicates `release attest` signs about an image digest.

- SLSA provenance v1: builder id = the workflow identity (GITHUB_SERVER_URL/
  GITHUB_WORKFLOW_REF in Actions) or `local`; externalParameters (functions, registry,
  platform); resolvedDependencies: git commit, base image digest, model commit + lock
  digest, requirements.lock digest (from the image labels and the repo); the runtime model
  the build derived from the locked ONNX (its digest, source digest, converter version).
- CycloneDX SBOM (`https://cyclonedx.org/bom`): release.sbom.generate.
- OpenSSF model signing v1.0 manifest: the locked model files (name, sha256) in
  model_signing's `serialization`/`resources` form, read from the image's baked lock.
- Our own predicates (canary report, promotion) from files, validated against
  attestations/*.schema.json.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from release import evidence
from release.digest import Digest
from release.errors import UsageError

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "attestations"
_SHORT = {
    "canary": evidence.CANARY,
    "promotion": evidence.PROMOTION,
    "provenance": evidence.PROVENANCE,
    "sbom": evidence.SBOM,
    "model": evidence.MODEL_SIGNATURE,
}
_SCHEMAS = {evidence.CANARY: "canary-report.schema.json", evidence.PROMOTION: "promotion.schema.json"}


def _file_digest(p: Path) -> str | None:
    try:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError:
        return None


def builder_id() -> str:
    ref = os.environ.get("GITHUB_WORKFLOW_REF")
    if ref:
        return f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{ref}"
    return "local"


def provenance(cfg: Any, view: Any, lock: dict[str, Any] | None) -> dict[str, Any]:
    labels = view.labels
    deps: list[dict[str, Any]] = []
    rev = labels.get("org.opencontainers.image.revision")
    src = labels.get("org.opencontainers.image.source")
    if rev:
        deps.append({"uri": f"git+{src}" if src else "git", "digest": {"gitCommit": rev}})
    base = labels.get("org.opencontainers.image.base.digest")
    # the base the build was given (RELEASE_BASE overrides [image].base, as in the build)
    base_given = os.environ.get("RELEASE_BASE") or cfg.image.base
    base_loc = base_given.rpartition("@")[0] or base_given
    if base:
        uri = base_loc if base_loc.startswith(("oci:", "docker-daemon:")) else f"oci://{base_loc}"
        deps.append({"uri": uri, "digest": {"sha256": base.removeprefix("sha256:")}, "name": "base"})
    if lock:
        deps.append(
            {
                "uri": f"pkg:huggingface/{lock['repo']}" if lock.get("source", "hub") == "hub" else f"file:{lock['repo']}",
                "digest": {"gitCommit": lock["commit"]},
                "name": "model",
            }
        )
        if str(lock.get("digest", "")).startswith("sha256:"):
            deps.append(
                {"uri": "file:/opt/release/model.lock.json", "digest": {"sha256": lock["digest"][7:]}, "name": "model-lock"}
            )
    runtime = (lock or {}).get("runtime")
    if runtime:  # the pre-optimized model the build derived (docs/model-format.md)
        deps.append({"uri": f"file:/opt/release/{runtime['dir']}/", "digest": {"sha256": runtime["digest"][7:]}, "name": "model-runtime"})
        deps.append({"uri": f"pkg:pypi/onnxruntime@{runtime['converter']['onnxruntime']}", "name": "model-converter"})
    req = cfg.resolve(cfg.image.requirements)
    rd = _file_digest(req)
    if rd:
        deps.append({"uri": f"file:{cfg.image.requirements}", "digest": {"sha256": rd}, "name": "requirements.lock"})
    run_id = os.environ.get("GITHUB_RUN_ID")
    meta: dict[str, Any] = {}
    if run_id:
        meta["invocationId"] = (
            f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/"
            f"{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{run_id}"
        )
    created = view.config.get("created")
    if created:
        meta["finishedOn"] = created
    return {
        "buildDefinition": {
            "buildType": "https://release.dev/build/v1",
            "externalParameters": {
                "functions": view.functions,
                "registry": cfg.image.registry,
                "platform": cfg.image.platform,
                "base": f"{base_loc}@{base}" if base else base_given,
            },
            "internalParameters": {
                "model": labels.get("dev.release.model", ""),
                **({"modelRuntime": {k: runtime[k] for k in ("format", "digest", "source", "converter")}} if runtime else {}),
            },
            "resolvedDependencies": deps,
        },
        "runDetails": {"builder": {"id": builder_id()}, "metadata": meta},
    }


def model_signature(lock: dict[str, Any]) -> dict[str, Any]:
    """model_signing v1.0 predicate (files serialization, sha256 per resource)."""
    return {
        "serialization": {
            "method": "files",
            "hash_type": "sha256",
            "allow_symlinks": False,
            "ignore_paths": [],
        },
        "resources": [
            {"name": f["path"], "algorithm": "sha256", "digest": f["sha256"]}
            for f in sorted(lock["files"], key=lambda f: f["path"])
        ],
        "model": {"repo": lock["repo"], "commit": lock["commit"], "lock_digest": lock.get("digest")},
    }


def baked_lock(scan: Any) -> dict[str, Any] | None:
    from release.sbom import MODEL_LOCK

    raw = scan.read(MODEL_LOCK)
    return json.loads(raw) if raw else None


def build(cfg: Any, registry: Any, digest: Digest, only: set[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The built-in predicates for `digest`: provenance, sbom, model (or `only` these)."""
    from release import sbom
    from release.image.inspect import open_image

    want = only if only is not None else {"provenance", "sbom", "model"}
    view = open_image(registry, digest)
    scan = sbom._scan(view, cfg)  # one read of every layer serves all three
    lock = baked_lock(scan)
    out: list[tuple[str, dict[str, Any]]] = []
    if "provenance" in want:
        out.append((evidence.PROVENANCE, provenance(cfg, view, lock)))
    if "sbom" in want:
        out.append((evidence.SBOM, sbom.generate(registry, digest, cfg=cfg, view=view, scan=scan)))
    if "model" in want:
        if lock is None:
            raise UsageError(f"image {digest} has no /opt/release/model.lock.json: no model to attest")
        out.append((evidence.MODEL_SIGNATURE, model_signature(lock)))
    return out


def load_predicate(ptype: str, path: Path) -> tuple[str, dict[str, Any]]:
    """A predicate from a JSON file; our own types are validated against their schema."""
    full = _SHORT.get(ptype, ptype)
    if "://" not in full:
        raise UsageError(f"predicate type {ptype!r}: give canary, promotion or a full URI")
    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"predicate file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"predicate file {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"predicate file {path} must hold a JSON object")
    schema = _SCHEMAS.get(full)
    if schema:
        import jsonschema

        s = json.loads((SCHEMA_DIR / schema).read_bytes())
        err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(s).iter_errors(doc))
        if err is not None:
            where = "/".join(map(str, err.absolute_path)) or "(top)"
            raise UsageError(f"predicate file {path} does not match {schema}: {where}: {err.message}")
    return full, doc
