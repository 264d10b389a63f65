"""CycloneDX 1.6 SBOM (an ML-BOM) of one image, read from the image itself.

`generate(registry, digest) -> dict` reads every non-base layer once (each blob verified
against its digest), hashing every file as it streams, and builds:

- the image as `metadata.component` (container, purl `pkg:oci/NAME@sha256:...`);
- every Python package of the `deps` layer (`/opt/deps/*.dist-info`): name, version,
  purl `pkg:pypi/...`, licenses from METADATA, and a SHA-256 of its RECORD (which lists
  the hash of every installed file);
- the model as a `machine-learning-model` component (purl `pkg:huggingface/REPO@COMMIT`,
  or `pkg:generic/NAME@COMMIT` for a local model) from the lock baked at
  /opt/release/model.lock.json, every model file as a nested `file` component with its
  SHA-256 (the image's bytes must equal the lock, else VerificationFailed), and
  `modelCard` from the README.md front matter when present; the runtime model the build
  derived from it (/opt/release/runtime/*, docs/model-format.md) as a second
  machine-learning-model component that depends on the pinned one (file hashes checked
  against the image, source digest and converter version as properties);
- the base image as a `container` component with its digest (label
  org.opencontainers.image.base.digest, else the base layers' digests);
- the policy and handler trees as `application` components with nested files + hashes;
- the dependency graph (image -> base, model, code, policy, top-level packages;
  package -> the packages its Requires-Dist names, markers evaluated for Python 3.11).

Reproducible: serialNumber is uuid5 of the image digest, timestamp is the image
config's `created`. `validate` checks a document against the official 1.6 JSON schema
(cyclonedx-python-lib's strict validator); the tests run it on every shape we emit and
`release sbom --validate` on demand.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import uuid
from email.parser import BytesHeaderParser
from typing import Any

from release.digest import Digest
from release.errors import VerificationFailed

DEPS_PREFIX = "opt/deps/"
MODEL_LOCK = "opt/release/model.lock.json"
BASE_DIGEST_LABEL = "org.opencontainers.image.base.digest"
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
_NS = uuid.UUID("6f1c1a52-2f1e-4d4e-9a43-2b8e6c0c1b70")


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _scan(view: Any) -> tuple[dict[str, tuple[int, str]], dict[str, bytes], dict[str, str]]:
    """One pass over the non-base layers: {path: (size, sha256)}, contents of the small
    files we parse, {path: role}."""
    from release.image.inspect import local_blob
    from release.image.oci import GZIP_LAYERS

    files: dict[str, tuple[int, str]] = {}
    keep: dict[str, bytes] = {}
    roles: dict[str, str] = {}
    for layer in view.layers:
        if layer.role == "base":
            continue
        mode = "r|gz" if layer.media_type in GZIP_LAYERS else "r|"
        with local_blob(view.registry, layer.digest) as path, open(path, "rb") as raw, tarfile.open(
            fileobj=raw, mode=mode  # type: ignore[call-overload]
        ) as tf:
            for m in tf:
                name = m.name.lstrip("./").lstrip("/")
                if ".." in name.split("/"):
                    raise VerificationFailed(f"layer {layer.digest} has an unsafe path {m.name!r}")
                if not m.isfile():
                    continue
                f = tf.extractfile(m)
                assert f is not None
                want = _wanted(name)
                h = hashlib.sha256()
                buf = bytearray()
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                    if want:
                        buf += chunk
                files[name] = (m.size, h.hexdigest())
                roles[name] = layer.role
                if want:
                    keep[name] = bytes(buf)
    return files, keep, roles


def _runtime_component(
    lock: dict[str, Any], rt: dict[str, Any], purl: str, files: dict[str, tuple[int, str]],
    components: list[dict[str, Any]], digest: str,
) -> str:
    """The runtime model (docs/model-format.md) as its own machine-learning-model
    component: its files with hashes (checked against the image), source and converter."""
    rt_dir = f"{MODEL_LOCK.rsplit('/', 1)[0]}/{rt['dir']}"
    ref = f"{purl}#runtime"
    parts = []
    for f in rt["files"]:
        got = files.get(f"{rt_dir}/{f['path']}")
        if got is None or got[1] != f["sha256"]:
            raise VerificationFailed(
                f"image {digest}: runtime model file /{rt_dir}/{f['path']} differs from the baked lock"
            )
        parts.append({"type": "file", "bom-ref": f"{ref}/{f['path']}", "name": f"/{rt_dir}/{f['path']}",
                      "hashes": [{"alg": "SHA-256", "content": f["sha256"]}]})
    conv = rt["converter"]
    components.append({
        "type": "machine-learning-model",
        "bom-ref": ref,
        "name": f"{lock['repo']} ({rt['format']})",
        "version": str(lock["commit"]),
        "hashes": [{"alg": "SHA-256", "content": str(rt["digest"]).removeprefix("sha256:")}],
        "properties": [
            {"name": "release:runtime-format", "value": str(rt["format"])},
            {"name": "release:runtime-source", "value": f"{rt['source']['path']}@sha256:{rt['source']['sha256']}"},
            {"name": "release:converter", "value": f"onnxruntime {conv['onnxruntime']}"},
            {"name": "release:converter-optimization", "value": str(conv["optimization"])},
        ],
        "components": parts,
    })
    return ref


def _wanted(name: str) -> bool:
    if name == MODEL_LOCK or name.endswith("/README.md"):
        return True
    return name.startswith(DEPS_PREFIX) and (
        name.endswith(".dist-info/METADATA") or name.endswith(".dist-info/RECORD")
    )


def _norm(name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", name).lower()


def _packages(keep: dict[str, bytes]) -> list[dict[str, Any]]:
    from packaging.requirements import InvalidRequirement, Requirement

    env = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    out = []
    for path, data in sorted(keep.items()):
        if not path.endswith(".dist-info/METADATA"):
            continue
        msg = BytesHeaderParser().parsebytes(data)
        name, version = str(msg.get("Name", "")), str(msg.get("Version", ""))
        if not name:
            continue
        requires = []
        for r in msg.get_all("Requires-Dist") or []:
            try:
                req = Requirement(str(r))
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate(env):
                requires.append(_norm(req.name))
        lic = str(msg.get("License-Expression") or "").strip()
        licenses: list[dict[str, Any]] = []
        if lic:
            licenses = [{"expression": lic}]
        else:
            raw = str(msg.get("License") or "").strip()
            classifiers = [
                str(c).split("::")[-1].strip()
                for c in msg.get_all("Classifier") or []
                if str(c).startswith("License ::")
            ]
            if raw and len(raw) < 100 and "\n" not in raw:
                licenses = [{"license": {"name": raw}}]
            elif classifiers:
                licenses = [{"license": {"name": c}} for c in classifiers]
        record = keep.get(path[: -len("METADATA")] + "RECORD")
        comp: dict[str, Any] = {
            "type": "library",
            "bom-ref": f"pkg:pypi/{_norm(name)}@{version}",
            "name": name,
            "version": version,
            "purl": f"pkg:pypi/{_norm(name)}@{version}",
        }
        if record is not None:
            comp["hashes"] = [{"alg": "SHA-256", "content": hashlib.sha256(record).hexdigest()}]
            comp["properties"] = [{"name": "release:hash-of", "value": "dist-info/RECORD"}]
        if licenses:
            comp["licenses"] = licenses
        out.append((comp, requires))
    by_name = {_norm(c["name"]): c["bom-ref"] for c, _ in out}
    comps = []
    for comp, requires in out:
        comp["_depends"] = sorted({by_name[r] for r in requires if r in by_name})
        comps.append(comp)
    return comps


def _front_matter(readme: bytes | None) -> dict[str, Any]:
    if not readme:
        return {}
    text = readme.decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    import yaml

    try:
        doc = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _model_card(fm: dict[str, Any]) -> dict[str, Any] | None:
    if not fm:
        return None
    card: dict[str, Any] = {}
    params: dict[str, Any] = {}
    if isinstance(fm.get("pipeline_tag"), str):
        params["task"] = fm["pipeline_tag"]
    if isinstance(fm.get("library_name"), str):
        params["architectureFamily"] = fm["library_name"]
    ds = fm.get("datasets")
    if isinstance(ds, str):
        ds = [ds]
    if isinstance(ds, list) and ds:
        params["datasets"] = [{"type": "dataset", "name": str(d)} for d in ds]
    if params:
        card["modelParameters"] = params
    props = []
    for key in ("license", "language", "tags", "base_model", "metrics"):
        v = fm.get(key)
        if v is None:
            continue
        vals = v if isinstance(v, list) else [v]
        props += [{"name": f"huggingface:{key}", "value": str(x)} for x in vals]
    if props:
        card["properties"] = props
    return card or None


def generate(
    registry: Any, digest: Digest, *, check: bool = False, view: Any = None, scan: Any = None
) -> dict[str, Any]:
    """The CycloneDX 1.6 document (a dict) for the image `digest` in `registry`.
    `check` validates it against the 1.6 schema (slow: importing jsonschema costs
    seconds, so only `release sbom --validate` and the tests do)."""
    from release.image.inspect import open_image

    view = view or open_image(registry, digest)
    files, keep, roles = scan or _scan(view)
    labels = view.labels
    name = registry.name
    import re

    short = re.sub(r"[^a-z0-9._-]+", "-", name.removeprefix("oci:").rstrip("/").rsplit("/", 1)[-1].lower())
    image_ref = f"pkg:oci/{short or 'image'}@{digest.replace(':', '%3A')}"
    components: list[dict[str, Any]] = []
    deps: dict[str, list[str]] = {}

    # base image
    base_layers = [la.digest for la in view.layers if la.role == "base"]
    base_digest = labels.get(BASE_DIGEST_LABEL)
    base: dict[str, Any] = {
        "type": "container",
        "bom-ref": "base-image",
        "name": labels.get(BASE_NAME_LABEL, "base"),
        "version": base_digest or (base_layers[0] if base_layers else "none"),
        "properties": [{"name": "oci:layer", "value": d} for d in base_layers],
    }
    if base_digest:
        base["hashes"] = [{"alg": "SHA-256", "content": base_digest.removeprefix("sha256:")}]
    components.append(base)
    deps["base-image"] = []

    # python packages
    pkgs = _packages(keep)
    top = set()
    required = {d for p in pkgs for d in p["_depends"]}
    for p in pkgs:
        deps[p["bom-ref"]] = p.pop("_depends")
        components.append(p)
        if p["bom-ref"] not in required:
            top.add(p["bom-ref"])

    # model
    model_ref = None
    extra_refs: list[str] = []
    if MODEL_LOCK in keep:
        lock = json.loads(keep[MODEL_LOCK])
        model_dir = (dict(e.split("=", 1) for e in (view.config.get("config") or {}).get("Env") or [] if "=" in e).get("MODEL_DIR", "/opt/model")).strip("/")
        repo, commit = str(lock["repo"]), str(lock["commit"])
        src = lock.get("source", "hub")
        purl = (
            f"pkg:huggingface/{repo}@{commit}"
            if src == "hub"
            else f"pkg:generic/{repo.rstrip('/').rsplit('/', 1)[-1]}@{commit}"
        )
        model_ref = purl
        mfiles = []
        bad = []
        for f in lock["files"]:
            got = files.get(f"{model_dir}/{f['path']}")
            if got is None or got[1] != f["sha256"]:
                bad.append(f["path"])
            mfiles.append(
                {
                    "type": "file",
                    "bom-ref": f"{purl}#{f['path']}",
                    "name": f["path"],
                    "hashes": [{"alg": "SHA-256", "content": f["sha256"]}],
                }
            )
        if bad:
            raise VerificationFailed(
                f"image {digest}: model files differ from the baked lock: {', '.join(bad[:5])}"
            )
        model: dict[str, Any] = {
            "type": "machine-learning-model",
            "bom-ref": purl,
            "name": repo,
            "version": commit,
            "purl": purl,
            "hashes": [{"alg": "SHA-256", "content": str(lock.get("digest", "")).removeprefix("sha256:")}]
            if str(lock.get("digest", "")).startswith("sha256:")
            else [],
            "properties": [{"name": "release:model-lock", "value": "/" + MODEL_LOCK}],
            "components": mfiles,
        }
        if not model["hashes"]:
            del model["hashes"]
        card = _model_card(_front_matter(keep.get(f"{model_dir}/README.md")))
        if card:
            model["modelCard"] = card
        components.append(model)
        deps[purl] = []
        rt = lock.get("runtime")
        if rt:  # the pre-optimized model the handler runs, derived from the pinned one
            runtime_ref = _runtime_component(lock, rt, purl, files, components, digest)
            deps[runtime_ref] = [purl]
            extra_refs.append(runtime_ref)  # the image runs it

    # policy and handler code
    for role, title in (("policy", "policy"), ("code", "handlers")):
        paths = sorted(p for p, r in roles.items() if r == role)
        if not paths:
            continue
        components.append(
            {
                "type": "application",
                "bom-ref": f"app:{title}",
                "name": title,
                "components": [
                    {
                        "type": "file",
                        "bom-ref": f"file:/{p}",
                        "name": "/" + p,
                        "hashes": [{"alg": "SHA-256", "content": files[p][1]}],
                    }
                    for p in paths
                ],
            }
        )
        deps[f"app:{title}"] = sorted(top) if role == "code" else []

    root_deps = ["base-image", *([model_ref] if model_ref else []), *extra_refs, *[
        f"app:{t}" for t in ("policy", "handlers") if f"app:{t}" in deps
    ], *sorted(top)]
    dependencies = [{"ref": image_ref, "dependsOn": root_deps}] + [
        {"ref": k, "dependsOn": v} for k, v in sorted(deps.items())
    ]
    created = str(view.config.get("created") or "1970-01-01T00:00:00Z")
    doc: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": f"urn:uuid:{uuid.uuid5(_NS, digest)}",
        "version": 1,
        "metadata": {
            "timestamp": created,
            "tools": {"components": [{"type": "application", "name": "release"}]},
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": name,
                "version": digest,
                "purl": image_ref,
                "hashes": [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}],
            },
        },
        "components": components,
        "dependencies": dependencies,
    }
    if check:
        validate(doc)
    return doc


def validate(doc: dict[str, Any]) -> None:
    """Validate against the official CycloneDX 1.6 JSON schema; VerificationFailed if not."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(doc))
    if err is not None:
        raise VerificationFailed(f"SBOM is not valid CycloneDX 1.6: {err}")
