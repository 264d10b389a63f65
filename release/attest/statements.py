"""The predicates `release attest` signs about an image digest.

- SLSA provenance v1: in GitHub Actions the actions/buildtypes `workflow/v1` build type
  (builder id = the workflow identity GITHUB_SERVER_URL/GITHUB_WORKFLOW_REF), elsewhere
  our documented local build type and builder; resolvedDependencies by URI: the source
  (`git+https://...@REF`), the base image (`oci://...@sha256:` or a `pkg:oci` purl), the
  model (`pkg:huggingface/REPO@COMMIT`), the model lock root digest, requirements.lock, the runtime model the build derived (digest,
  source digest, converter version).
  Checked against attestations/slsa-provenance-v1.schema.json in the tests.
- CycloneDX SBOM (`https://cyclonedx.org/bom`): release.sbom.generate.
- OpenSSF model signing v1.0: the statement model-signing itself signs (built with its
  library): subject = the model (name + root digest of the image's model directory:
  `modelpin.shipped(lock).digest`, the lock's digest when no runtime model replaces a
  file), predicate = the files that directory holds (name, sha256), read from the
  image's baked lock. `model_signing
  verify` accepts the bundle for the image's model directory.
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
from release.gitremote import repo_url
from release.inputs import read_input

_SHORT = {
    "canary": evidence.CANARY,
    "promotion": evidence.PROMOTION,
    "provenance": evidence.PROVENANCE,
    "sbom": evidence.SBOM,
    "model": evidence.MODEL_SIGNATURE,
}
_SCHEMAS = {
    evidence.CANARY: "canary-report.schema.json",
    evidence.CANARY_V1: "canary-report-v1.schema.json",
    evidence.PROMOTION: "promotion.schema.json",
}


def load_schema(name: str) -> dict[str, Any]:
    """One of the JSON Schemas shipped in the package (`release/schemas/NAME`)."""
    from importlib.resources import files

    doc: dict[str, Any] = json.loads(files("release.schemas").joinpath(name).read_bytes())
    return doc


def _file_digest(p: Path) -> str | None:
    try:
        return hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError:
        return None


#: the buildType and builder of a build outside GitHub Actions (docs/verifying.md)
LOCAL_BUILD_TYPE = evidence.PREDICATE_BASE + "/buildtypes/local/v1"
LOCAL_BUILDER_ID = evidence.PROJECT_URL + "/builders/local/v1"
#: GitHub's build type for a top-level Actions workflow (actions/buildtypes workflow/v1)
GITHUB_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"


def _github() -> dict[str, str] | None:
    """The GitHub Actions context the build type reads, or None outside Actions."""
    keys = ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_WORKFLOW_REF", "GITHUB_REF")
    env = {k: os.environ.get(k, "") for k in keys}
    if not (os.environ.get("GITHUB_ACTIONS") == "true" and all(env.values())):
        return None
    for k in (
        "GITHUB_EVENT_NAME",
        "GITHUB_REPOSITORY_ID",
        "GITHUB_REPOSITORY_OWNER_ID",
        "RUNNER_ENVIRONMENT",
        "GITHUB_RUN_ID",
        "GITHUB_RUN_ATTEMPT",
    ):
        env[k] = os.environ.get(k, "")
    return env


def builder_id() -> str:
    """The workflow identity on GitHub (`https://github.com/OWNER/REPO/.github/workflows/
    release.yml@REF`, what the keyless certificate names), else LOCAL_BUILDER_ID."""
    gh = _github()
    if gh:
        return f"{gh['GITHUB_SERVER_URL']}/{gh['GITHUB_WORKFLOW_REF']}"
    return LOCAL_BUILDER_ID


def _base_uri(location: str, digest: str) -> str:
    """`oci://HOST/REPO@sha256:...` for a registry base; a `pkg:oci` purl (no
    repository_url) for a base in a local layout or the local Docker engine."""
    hexd = digest.removeprefix("sha256:")
    if location.startswith(("oci:", "docker-daemon:")):
        name = location.partition(":")[2].rstrip("/").rsplit("/", 1)[-1].split(":")[0] or "base"
        return f"pkg:oci/{name.lower()}@sha256%3A{hexd}"
    repo = location
    if ":" in repo.rsplit("/", 1)[-1]:  # drop a tag; the digest names the image
        repo = repo.rsplit(":", 1)[0]
    return f"oci://{repo}@sha256:{hexd}"


def provenance(cfg: Any, view: Any, lock: dict[str, Any] | None) -> dict[str, Any]:
    """SLSA provenance v1 (https://slsa.dev/provenance/v1) for the image `view`: on GitHub
    Actions the `workflow/v1` build type of actions/buildtypes, elsewhere LOCAL_BUILD_TYPE.
    Every dependency is named by a URI (git+https, purl, oci://) and a digest."""
    gh = _github()
    labels = view.labels
    rev = labels.get("org.opencontainers.image.revision")
    repo = (
        f"{gh['GITHUB_SERVER_URL']}/{gh['GITHUB_REPOSITORY']}"
        if gh
        else repo_url(labels.get("org.opencontainers.image.source"))
    )
    deps: list[dict[str, Any]] = []
    if rev:
        src: dict[str, Any] = {"name": "source", "digest": {"gitCommit": rev}}
        if repo:
            src["uri"] = f"git+{repo}@{gh['GITHUB_REF'] if gh else rev}"
        deps.append(src)

    def in_source(path: str) -> dict[str, str]:
        return {"uri": f"git+{repo}@{rev}#{path}"} if repo and rev else {}

    base = labels.get("org.opencontainers.image.base.digest")
    # the base the build was given (RELEASE_BASE overrides [image].base, as in the build)
    base_given = os.environ.get("RELEASE_BASE") or cfg.image.base
    base_loc = base_given.rpartition("@")[0] or base_given
    if base:
        deps.append(
            {
                "uri": _base_uri(base_loc, base),
                "digest": {"sha256": base.removeprefix("sha256:")},
                "name": "base",
            }
        )
    if lock:
        model: dict[str, Any] = {"name": "model", "digest": {"gitCommit": lock["commit"]}}
        if lock.get("source", "hub") == "hub":
            model["uri"] = f"pkg:huggingface/{lock['repo']}@{lock['commit']}"
        else:
            model.update(in_source(str(lock["repo"])))
        deps.append(model)
        if str(lock.get("digest", "")).startswith("sha256:"):
            deps.append(
                {
                    "name": "model-lock",
                    "digest": {"sha256": lock["digest"][7:]},
                    "annotations": {
                        "digestOf": "OpenSSF model-signing root digest of the locked model files",
                        "path": "/opt/release/model.lock.json",
                    },
                }
            )
    runtime = (lock or {}).get("runtime")
    if runtime:  # the pre-optimized model the build derived (docs/model-format.md)
        deps.append(
            {
                "name": "model-runtime",
                "digest": {"sha256": runtime["digest"][7:]},
                "annotations": (
                    {
                        "path": f"/{cfg.image.model_dir.strip('/')}/{runtime['dir']}/",
                        "replaces": f"/{cfg.image.model_dir.strip('/')}/{runtime['source']['path']}",
                    }
                    if runtime.get("placement") == "replaces-source"
                    else {"path": f"/opt/release/{runtime['dir']}/"}
                ),
            }
        )
        deps.append(
            {
                "uri": f"pkg:pypi/onnxruntime@{runtime['converter']['onnxruntime']}",
                "name": "model-converter",
            }
        )
    req = cfg.resolve(cfg.image.requirements)
    rd = _file_digest(req)
    if rd:
        deps.append(
            {
                "name": "requirements.lock",
                "digest": {"sha256": rd},
                **in_source(str(cfg.image.requirements)),
            }
        )
    release_params = {
        "functions": view.functions,
        "registry": cfg.image.registry,
        "platform": cfg.image.platform,
        "base": f"{base_loc}@{base}" if base else base_given,
        "model": labels.get("dev.release.model", ""),
    }
    meta: dict[str, Any] = {}
    created = view.config.get("created")
    if created:
        meta["finishedOn"] = created
    if gh:
        build_type = GITHUB_BUILD_TYPE
        wf_path = (
            gh["GITHUB_WORKFLOW_REF"].removeprefix(gh["GITHUB_REPOSITORY"] + "/").rsplit("@", 1)[0]
        )
        external: dict[str, Any] = {
            "workflow": {"ref": gh["GITHUB_REF"], "repository": repo, "path": wf_path},
        }
        if gh["RUNNER_ENVIRONMENT"]:
            external["runner_environment"] = gh["RUNNER_ENVIRONMENT"]
        github = {
            k: gh[e]
            for k, e in (
                ("event_name", "GITHUB_EVENT_NAME"),
                ("repository_id", "GITHUB_REPOSITORY_ID"),
                ("repository_owner_id", "GITHUB_REPOSITORY_OWNER_ID"),
            )
            if gh[e]
        }
        internal: dict[str, Any] = {"github": github, "release": release_params}
        if gh["GITHUB_RUN_ID"]:
            meta["invocationId"] = (
                f"{repo}/actions/runs/{gh['GITHUB_RUN_ID']}/attempts/{gh['GITHUB_RUN_ATTEMPT'] or '1'}"
            )
    else:
        build_type = LOCAL_BUILD_TYPE
        external = {**release_params}
        if repo:
            external["source"] = repo
        internal = {}
    if runtime:
        internal["modelRuntime"] = {
            k: runtime[k] for k in ("format", "digest", "source", "converter")
        } | {"placement": runtime.get("placement", "beside-lock")}
    from release import __version__

    return {
        "buildDefinition": {
            "buildType": build_type,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": deps,
        },
        "runDetails": {
            "builder": {"id": builder_id(), "version": {"release": __version__}},
            "metadata": meta,
        },
    }


#: model-signing names a model by its directory; in the image that is /opt/model
MODEL_NAME = "model"


def model_signature(lock: dict[str, Any]) -> dict[str, Any]:
    """The OpenSSF model-signing v1.0 predicate of the locked files, as model-signing's own
    `sign` writes it for the image's model directory (its default ignore paths; the lock
    holds the same per-file sha256 and the same root digest)."""
    return dict(json.loads(model_statement(_model_predicate(lock)))["predicate"])


def _model_predicate(lock: dict[str, Any]) -> dict[str, Any]:
    from release.modelpin import IGNORED, ModelLock, shipped

    # what the image's model directory holds: the runtime model in place of the source
    # it replaces (docs/model-format.md), so `model_signing verify` of /opt/model passes
    files = shipped(ModelLock.model_validate(lock)).files

    return {
        "serialization": {
            "method": "files",
            "hash_type": "sha256",
            "allow_symlinks": False,
            "ignore_paths": list(IGNORED),
        },
        "resources": [{"name": f.path, "algorithm": "sha256", "digest": f.sha256} for f in files],
    }


def model_statement(predicate: dict[str, Any]) -> bytes:
    """The exact statement bytes model-signing signs for a manifest (its `Payload`,
    serialised by protobuf's `MessageToJson`): subject = the model name and the root
    digest (sha256 over the file digests in model-signing's path order)."""
    from google.protobuf import json_format
    from model_signing import manifest as ms_manifest
    from model_signing._hashing import hashing as ms_hashing
    from model_signing._signing import signing as ms_signing

    try:
        ser = ms_manifest.SerializationType.from_args(predicate["serialization"])
        items = [
            ser.new_item(r["name"], ms_hashing.Digest(r["algorithm"], bytes.fromhex(r["digest"])))
            for r in predicate["resources"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"model-signing predicate is malformed: {exc}") from None
    payload = ms_signing.Payload(ms_manifest.Manifest(MODEL_NAME, items, ser))
    data: bytes = json_format.MessageToJson(payload.statement.pb).encode("utf-8")
    return data


def baked_lock(scan: Any) -> dict[str, Any] | None:
    from release.sbom import MODEL_LOCK

    raw = scan.read(MODEL_LOCK)
    return json.loads(raw) if raw else None


def build(
    cfg: Any, registry: Any, digest: Digest, only: set[str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
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
            raise UsageError(
                f"image {digest} has no /opt/release/model.lock.json: no model to attest"
            )
        out.append((evidence.MODEL_SIGNATURE, model_signature(lock)))
    return out


def load_predicate(ptype: str, path: Path) -> tuple[str, dict[str, Any]]:
    """A predicate from a JSON file; our own types are validated against their schema."""
    full = _SHORT.get(ptype, ptype)
    if "://" not in full:
        raise UsageError(f"predicate type {ptype!r}: give canary, promotion or a full URI")
    raw = read_input(path, "predicate file")
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"predicate file {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"predicate file {path} must hold a JSON object")
    if full == evidence.CANARY and doc.get("schema_version") == 1:
        full = evidence.CANARY_V1  # a version 1 report is attested as what it is
    schema = _SCHEMAS.get(full)
    if schema:
        import jsonschema

        s = load_schema(schema)
        err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(s).iter_errors(doc))
        if err is not None:
            where = "/".join(map(str, err.absolute_path)) or "(top)"
            raise UsageError(
                f"predicate file {path} does not match {schema}: {where}: {err.message}"
            )
    return full, doc
