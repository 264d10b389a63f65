"""CycloneDX 1.6 SBOM (an ML-BOM) of one image, read from the image itself.

`generate(registry, digest, cfg=...) -> dict` reads the image's MERGED filesystem once
(`release.image.fs`: every layer in order, whiteouts applied, each blob verified against
its digest as it streams) and builds:

- the image as `metadata.component` (container, purl `pkg:oci/NAME@sha256:...`);
- every Python package installed in /opt/deps (`*.dist-info/METADATA`): name, version,
  purl `pkg:pypi/NAME@VERSION` (as packageurl-python and cyclonedx-py spell it),
  licences as SPDX `license.id` or `expression` (free-text `name` only for what is not
  SPDX), and the SHA-256 of the wheel uv installed: uv checked it against the
  requirements lock at build time and `release build` recorded it in
  /opt/release/wheels.json (release/image/deps.py; no record: no hash);
- the model as a `machine-learning-model` component (purl `pkg:huggingface/REPO@COMMIT`,
  or `pkg:generic/NAME@COMMIT` for a local model) from the lock baked at
  /opt/release/model.lock.json, every model file as a nested `file` component with its
  SHA-256; the merged model directory must be exactly what the lock says ships
  (`modelpin.shipped`), written by the model layer only (else VerificationFailed), and
  `modelCard` from README.md front matter; the runtime model the build derived from it
  (/opt/model/runtime/*, in place of the source ONNX: docs/model-format.md) as a second
  machine-learning-model component that depends on the pinned one (file hashes checked
  against the image's merged filesystem, source digest and converter version as properties);
- the base image as a `container` component with its digest (label
  org.opencontainers.image.base.digest, else the base layers' digests), its operating
  system (`operating-system`, from etc/os-release) and every OS package of dpkg's
  database (`var/lib/dpkg/status`, or `status.d/` of distroless bases) as
  `pkg:deb/ID/NAME@VERSION?arch=ARCH&distro=ID-VERSION_ID` with the licences of a
  machine-readable (DEP-5) `usr/share/doc/NAME/copyright`; an rpm database is not read
  (a property on the base component says so);
- the files under `[image].workdir` as `application` components (`policy`, `code`)
  with nested files + hashes;
- the dependency graph: image -> base, model, code, policy, top-level packages; base ->
  its OS and packages; package -> every installed package its Requires-Dist names
  (markers and extras not evaluated: what is installed is what the target platform
  needed), as `cyclonedx-py environment` gives it.

Reproducible: serialNumber is uuid5 of the image digest, timestamp is the image
config's `created`, every list is sorted. `validate` checks a document against the
official 1.6 JSON schema (cyclonedx-python-lib's strict validator); the tests run it
on every shape we emit and `release sbom --validate` on demand.
"""

from __future__ import annotations

import json
import re
import uuid
from email.parser import BytesHeaderParser
from pathlib import PurePosixPath
from typing import Any

from release.digest import Digest
from release.errors import VerificationFailed

DEPS_PREFIX = "opt/deps/"
MODEL_LOCK = "opt/release/model.lock.json"
WHEELS = "opt/release/wheels.json"
#: a runtime model next to the lock (images built before it replaced its source ONNX in
#: the model directory: release/image/modeltree.py)
RUNTIME_PREFIX = "opt/release/runtime/"
BASE_DIGEST_LABEL = "org.opencontainers.image.base.digest"
BASE_NAME_LABEL = "org.opencontainers.image.base.name"
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
RPM_DBS = ("var/lib/rpm/rpmdb.sqlite", "var/lib/rpm/Packages", "usr/lib/sysimage/rpm/rpmdb.sqlite")
_NS = uuid.UUID("6f1c1a52-2f1e-4d4e-9a43-2b8e6c0c1b70")
_META = re.compile(re.escape(DEPS_PREFIX) + r"[^/]+\.dist-info/(METADATA|RECORD)")
_COPYRIGHT = re.compile(r"usr/share/doc/[^/]+/copyright")


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _dirs(view: Any, cfg: Any) -> tuple[str, str]:
    """(model dir, workdir) without slashes: `[image]` of the config when given, else
    what the image's config says (MODEL_DIR, WorkingDir), else the config defaults."""
    from release.config import ImageConfig

    if cfg is not None:
        return cfg.image.model_dir.strip("/"), cfg.image.workdir.strip("/")
    c = view.config.get("config") or {}
    env = dict(e.split("=", 1) for e in c.get("Env") or [] if "=" in e)
    fields = ImageConfig.model_fields
    model_dir = env.get("MODEL_DIR") or str(fields["model_dir"].default)
    workdir = c.get("WorkingDir") or str(fields["workdir"].default)
    return model_dir.strip("/"), str(workdir).strip("/")


def _runtime_component(
    lock: dict[str, Any],
    rt: dict[str, Any],
    purl: str,
    merged: Any,
    components: list[dict[str, Any]],
    digest: str,
    rt_dir: str,
) -> str:
    """The runtime model (docs/model-format.md) as its own machine-learning-model
    component: its files (in `rt_dir` of the image) with hashes checked against the
    image, its source (and whether it replaces it in the image) and converter."""
    ref = f"{purl}#runtime"
    parts = []
    for f in rt["files"]:
        got = merged.get(f"{rt_dir}/{f['path']}")
        if got is None or got.kind != "file" or got.sha256 != f["sha256"]:
            raise VerificationFailed(
                f"image {digest}: runtime model file /{rt_dir}/{f['path']} differs from the baked lock"
            )
        parts.append(
            {
                "type": "file",
                "bom-ref": f"{ref}/{f['path']}",
                "name": f"/{rt_dir}/{f['path']}",
                "hashes": [{"alg": "SHA-256", "content": f["sha256"]}],
            }
        )
    conv = rt["converter"]
    components.append(
        {
            "type": "machine-learning-model",
            "bom-ref": ref,
            "name": f"{lock['repo']} ({rt['format']})",
            "version": str(lock["commit"]),
            "hashes": [{"alg": "SHA-256", "content": str(rt["digest"]).removeprefix("sha256:")}],
            "properties": [
                {"name": "release:runtime-format", "value": str(rt["format"])},
                {
                    "name": "release:runtime-source",
                    "value": f"{rt['source']['path']}@sha256:{rt['source']['sha256']}",
                },
                {"name": "release:converter", "value": f"onnxruntime {conv['onnxruntime']}"},
                {"name": "release:converter-optimization", "value": str(conv["optimization"])},
                {
                    "name": "release:runtime-placement",
                    "value": str(rt.get("placement", "beside-lock")),
                },
            ],
            "components": parts,
        }
    )
    return ref


def _scan(view: Any, cfg: Any = None) -> Any:
    """One pass over every layer: the merged filesystem (`release.image.fs.MergedFS`)
    with the model directory and workdir hashed, and the small files we parse kept."""
    from release.image import fs

    model_dir, workdir = _dirs(view, cfg)

    def keep(p: str) -> bool:
        return (
            p in (MODEL_LOCK, WHEELS, DPKG_STATUS, f"{model_dir}/README.md", *OS_RELEASE)
            or p.startswith(DPKG_STATUS_D)
            or bool(_META.fullmatch(p) or _COPYRIGHT.fullmatch(p))
        )

    return fs.scan(
        view,
        keep=keep,
        hash=lambda p: p.startswith((model_dir + "/", workdir + "/", RUNTIME_PREFIX)),
        watch=[model_dir, MODEL_LOCK],
        cache=fs.ScanCache(),
    )


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pypi_purl(name: str, version: str) -> str:
    from packageurl import PackageURL

    return str(PackageURL(type="pypi", name=name, version=version).to_string())


# --- licences -----------------------------------------------------------------------------
#: trove classifiers -> SPDX (the common ones; others are kept as free-text names)
_CLASSIFIERS = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "BSD License": None,  # which BSD is not said
    "Apache Software License": "Apache-2.0",
    "ISC License (ISCL)": "ISC",
    "Python Software Foundation License": "PSF-2.0",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "The Unlicense (Unlicense)": "Unlicense",
    "zlib/libpng License": "Zlib",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "Universal Permissive License (UPL)": "UPL-1.0",
}

#: Debian copyright-format 1.0 short names that SPDX spells differently
#: (https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/#license-short-name).
#: Spelled as SPDX in any case (BSD-3-clause, ISC, MPL-1.1, CC-BY-4.0, Zlib, Zope-2.1...):
#: cyclonedx.spdx.fixup_id finds those. The GNU family with Debian's versions (GPL-2,
#: LGPL-2.1+, GFDL-NIV-1.3) is _GNU's; a version without `.0` (Apache-2, Artistic-2) is
#: tried with it.
_DEBIAN = {
    "expat": "MIT",
    # Debian's common-licenses/Artistic is the Perl Artistic License 1.0
    "artistic": "Artistic-1.0-Perl",
    "cc0": "CC0-1.0",
    # Debian's "Perl" is Perl's own terms: GPL-1+ or Artistic (an expression, not an id)
    "perl": "GPL-1.0-or-later OR Artistic-1.0-Perl",
}
#: Debian's GNU names: FAMILY[-VERSION][+]; `+` is SPDX's -or-later, none is -only. No
#: version at all: the licence itself says any version ever published may be chosen
#: (GPL, LGPL, GFDL: "If the Program does not specify a version number..."), so the first
#: version or later - as license-expression reads a bare "GPL" too.
_GNU = re.compile(r"(L?GPL|AGPL|GFDL(?:-NIV)?)(?:-?v?(\d)(?:\.(\d))?)?(\+)?", re.IGNORECASE)
_GNU_FIRST = {"GPL": "1.0", "LGPL": "2.0", "GFDL": "1.1", "GFDL-NIV": "1.1"}
#: Debian's operators: `and` binds tighter than `or` (as SPDX's AND and OR do); a comma
#: before one lowers it below both ("GPL-1+ or Artistic, and Expat")
_COMMA_OP = re.compile(r",\s*(or|and)\s+", re.IGNORECASE)


def _gnu_id(m: re.Match[str]) -> str | None:
    from cyclonedx.spdx import fixup_id

    fam, major, minor, plus = m.groups()
    fam = fam.upper()
    if major is None:
        first = _GNU_FIRST.get(fam)
        if first is None:
            return None
        (major, minor), plus = first.split("."), "+"
    version = f"{major}.{minor or '0'}"
    later = "or-later" if plus else "only"
    if fam == "GFDL-NIV":
        cand = f"GFDL-{version}-no-invariants-{later}"
    else:
        cand = f"{fam}-{version}-{later}"
    return fixup_id(cand)


def _spdx_id(name: str) -> str | None:
    """The SPDX id `name` stands for (an SPDX id in any case, or a Debian short name)."""
    from cyclonedx.spdx import fixup_id

    name = name.strip()
    if not name:
        return None
    m = _GNU.fullmatch(name)  # before the SPDX list: it still holds deprecated "GPL-2.0+"
    if m:
        return _gnu_id(m)
    got = fixup_id(name) or _DEBIAN.get(name.lower())
    if got is None and re.fullmatch(r".+-\d+", name):  # Apache-2, Artistic-2
        got = fixup_id(name + ".0")
    return got if got and " " not in got else None


def _par(expr: str) -> str:
    return f"({expr})" if " " in expr else expr


def _operand(name: str) -> str | None:
    """One operand as SPDX: an id, or the expression a Debian name stands for (Perl)."""
    return _spdx_id(name) or _DEBIAN.get(name.lower())


def _spdx_expression(text: str) -> str | None:
    """`text` (a Debian `License:` short-name line, or a Python `License-Expression`) as
    an SPDX id or expression, every operand translated, parentheses kept; None when one
    is not SPDX (an exception clause, `and/or`, free text) or the result is not a valid
    SPDX expression (cyclonedx.spdx.is_expression)."""
    from cyclonedx.spdx import is_expression

    groups = _COMMA_OP.split(text.strip())
    out = ""
    for i in range(0, len(groups), 2):
        tokens = re.findall(r"[()]|[^\s()]+", groups[i])
        words = []
        for tok in tokens:
            if tok in ("(", ")"):
                words.append(tok)
            elif tok.lower() in ("and", "or"):
                words.append(tok.upper())
            else:
                sid = _operand(tok)
                if sid is None:
                    return None
                words.append(_par(sid) if len(tokens) > 1 else sid)
        group = re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", " ".join(words)))
        out = group if i == 0 else f"{_par(out)} {groups[i - 1].upper()} {_par(group)}"
    return out if out and is_expression(out) else None


def _leaves(expr: str) -> list[str]:
    """The SPDX ids an expression names."""
    return sorted({w for w in re.findall(r"[^\s()]+", expr) if w not in ("AND", "OR")})


def licence_entries(terms: list[str]) -> list[dict[str, Any]]:
    """CycloneDX `licenses` for the distinct licence `terms` of one component.

    Every term SPDX (ids translated from Debian short names): one `license.id` each, or,
    when a term is compound, ONE `expression` of them all ANDed (a package's copyright
    stanzas all apply). Some term not SPDX: CycloneDX 1.6 allows no expression beside a
    `license.name`, so the list holds every SPDX id the SPDX terms name (an `or` choice
    lists both licences), then a free-text `license.name` for each term that is not SPDX.
    """
    terms = sorted({t.strip() for t in terms if t.strip()})
    exprs = {t: _spdx_expression(t) for t in terms}
    spdx = sorted({e for e in exprs.values() if e})
    names = [t for t in terms if exprs[t] is None]
    if not names and any(" " in e for e in spdx):
        if len(spdx) == 1:
            return [{"expression": spdx[0]}]
        return [{"expression": " AND ".join(f"({e})" if " " in e else e for e in spdx)}]
    ids = sorted({i for e in spdx for i in _leaves(e)})
    return [{"license": {"id": i}} for i in ids] + [{"license": {"name": n}} for n in names]


def _python_licences(msg: Any) -> list[dict[str, Any]]:
    expr = str(msg.get("License-Expression") or "").strip()
    if expr:
        return licence_entries([expr])
    raw = str(msg.get("License") or "").strip()
    if raw and len(raw) < 100 and "\n" not in raw:
        return licence_entries([raw])
    out = []
    for c in msg.get_all("Classifier") or []:
        c = str(c)
        if not c.startswith("License ::"):
            continue
        leaf = c.split("::")[-1].strip()
        sid = _CLASSIFIERS.get(leaf)
        out.append({"license": {"id": sid}} if sid else {"license": {"name": leaf}})
    uniq = {json.dumps(x, sort_keys=True): x for x in out}
    return [uniq[k] for k in sorted(uniq)]


# --- python packages ----------------------------------------------------------------------
def _wheels(data: bytes | None) -> dict[tuple[str, str], dict[str, str]]:
    if not data:
        return {}
    try:
        doc = json.loads(data)
        return {(_norm(w["name"]), str(w["version"])): w for w in doc["wheels"]}
    except (ValueError, KeyError, TypeError):
        raise VerificationFailed(f"/{WHEELS} in the image is not a wheels record") from None


def _packages(merged: Any) -> list[dict[str, Any]]:
    from packaging.requirements import InvalidRequirement, Requirement

    wheels = _wheels(merged.read(WHEELS))
    found = []
    for path, data in sorted(merged.data.items()):
        if not (path.startswith(DEPS_PREFIX) and path.endswith(".dist-info/METADATA")):
            continue
        msg = BytesHeaderParser().parsebytes(data)
        name, version = str(msg.get("Name", "")), str(msg.get("Version", ""))
        if not name:
            continue
        requires = []
        for r in msg.get_all("Requires-Dist") or []:
            try:
                requires.append(_norm(Requirement(str(r)).name))
            except InvalidRequirement:
                continue
        purl = _pypi_purl(name, version)
        comp: dict[str, Any] = {
            "type": "library",
            "bom-ref": purl,
            "name": name,
            "version": version,
            "purl": purl,
        }
        wheel = wheels.get((_norm(name), version))
        if wheel is not None:
            comp["hashes"] = [{"alg": "SHA-256", "content": wheel["sha256"]}]
            comp["properties"] = [
                {"name": "release:hash-of", "value": f"wheel:{wheel['filename']}"}
            ]
        licenses = _python_licences(msg)
        if licenses:
            comp["licenses"] = licenses
        found.append((comp, requires))
    by_name = {_norm(c["name"]): c["bom-ref"] for c, _ in found}
    comps = []
    for comp, requires in found:
        me = comp["bom-ref"]
        comp["_depends"] = sorted({by_name[r] for r in requires if r in by_name} - {me})
        comps.append(comp)
    return comps


# --- OS packages --------------------------------------------------------------------------
def _stanzas(text: str) -> list[dict[str, str]]:
    """RFC 822-style paragraphs (dpkg status, DEP-5): field -> value (continuations kept)."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur, last = {}, None
            continue
        if line[0] in " \t" and last is not None:
            cur[last] += "\n" + line.strip()
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        last = key.strip()
        cur[last] = value.strip()
    if cur:
        out.append(cur)
    return out


def os_release(merged: Any) -> dict[str, str]:
    for p in OS_RELEASE:
        data = merged.read(p)
        if data is not None:
            out = {}
            for line in data.decode("utf-8", "replace").splitlines():
                k, sep, v = line.partition("=")
                if sep and k.strip() and not k.startswith("#"):
                    out[k.strip()] = v.strip().strip("\"'")
            return out
    return {}


def _copyright_licences(merged: Any, package: str) -> list[str]:
    """The License short names of a machine-readable (DEP-5) copyright file."""
    path = f"usr/share/doc/{package}/copyright"
    data = merged.read(path)
    if data is None:
        # the doc directory may be a symlink to another package's (e.g. libfoo-dev -> libfoo)
        node = merged.get(f"usr/share/doc/{package}")
        if node is not None and node.kind == "symlink":
            target = str(PurePosixPath("usr/share/doc") / node.link)
            if node.link.startswith("/"):
                target = node.link.strip("/")
            data = merged.read(f"{target}/copyright")
    if data is None:
        return []
    text = data.decode("utf-8", "replace")
    first = text.lstrip().split("\n", 1)[0]
    if not (first.startswith("Format:") and "copyright-format" in first):
        return []
    terms = []
    for st in _stanzas(text):
        lic = st.get("License")
        if lic is not None:
            short = lic.split("\n", 1)[0].strip()
            if short:
                terms.append(short)
    return terms


def os_packages(merged: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str | None]:
    """(operating-system component, deb package components, a note when the base has a
    package database we do not read)."""
    from packageurl import PackageURL

    rel = os_release(merged)
    os_id = rel.get("ID", "").lower()
    os_version = rel.get("VERSION_ID", "")
    os_comp = None
    if os_id:
        os_comp = {
            "type": "operating-system",
            "bom-ref": f"os:{os_id}@{os_version or 'unknown'}",
            "name": os_id,
            "version": os_version or "unknown",
        }
        if rel.get("PRETTY_NAME"):
            os_comp["description"] = rel["PRETTY_NAME"]
    texts = []
    status = merged.read(DPKG_STATUS)
    if status is not None:
        texts.append(status)
    texts += [merged.data[p] for p in sorted(merged.data) if p.startswith(DPKG_STATUS_D)]
    comps: dict[str, dict[str, Any]] = {}
    for raw in texts:
        for st in _stanzas(raw.decode("utf-8", "replace")):
            name, version = st.get("Package"), st.get("Version")
            if not name or not version:
                continue
            if "Status" in st and st["Status"].split()[-1:] != ["installed"]:
                continue
            quals = {}
            if st.get("Architecture"):
                quals["arch"] = st["Architecture"]
            if os_id and os_version:
                quals["distro"] = f"{os_id}-{os_version}"
            purl = PackageURL(
                type="deb",
                namespace=os_id or "debian",
                name=name,
                version=version,
                qualifiers=quals,
            ).to_string()
            comp: dict[str, Any] = {
                "type": "library",
                "bom-ref": purl,
                "name": name,
                "version": version,
                "purl": purl,
            }
            lic = licence_entries(_copyright_licences(merged, name))
            if lic:
                comp["licenses"] = lic
            if st.get("Source"):
                comp["properties"] = [
                    {"name": "release:deb:source", "value": st["Source"].split()[0]}
                ]
            comps[purl] = comp
    note = None
    if any(merged.get(p) is not None for p in RPM_DBS):
        note = "rpm database present: its packages are not listed (rpm is not read)"
    return os_comp, [comps[k] for k in sorted(comps)], note


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
    registry: Any,
    digest: Digest,
    *,
    cfg: Any = None,
    check: bool = False,
    view: Any = None,
    scan: Any = None,
) -> dict[str, Any]:
    """The CycloneDX 1.6 document (a dict) for the image `digest` in `registry`.
    `cfg` gives `[image].model_dir` and `.workdir` (else the image's own config says).
    `check` validates it against the 1.6 schema (slow: importing jsonschema costs
    seconds, so only `release sbom --validate` and the tests do)."""
    from release.image.inspect import open_image

    view = view or open_image(registry, digest)
    merged = scan if scan is not None else _scan(view, cfg)
    model_dir, workdir = _dirs(view, cfg)
    labels = view.labels
    name = registry.name

    short = re.sub(
        r"[^a-z0-9._-]+", "-", name.removeprefix("oci:").rstrip("/").rsplit("/", 1)[-1].lower()
    )
    image_ref = f"pkg:oci/{short or 'image'}@{digest.replace(':', '%3A')}"
    components: list[dict[str, Any]] = []
    deps: dict[str, list[str]] = {}

    # base image and its operating system
    base_layers = [la.digest for la in view.layers if la.role == "base"]
    base_digest = labels.get(BASE_DIGEST_LABEL)
    os_comp, debs, note = os_packages(merged)
    base: dict[str, Any] = {
        "type": "container",
        "bom-ref": "base-image",
        "name": labels.get(BASE_NAME_LABEL, "base"),
        "version": base_digest or (base_layers[0] if base_layers else "none"),
        "properties": [{"name": "oci:layer", "value": d} for d in base_layers]
        + ([{"name": "release:os-packages", "value": note}] if note else []),
    }
    if base_digest:
        base["hashes"] = [{"alg": "SHA-256", "content": base_digest.removeprefix("sha256:")}]
    components.append(base)
    deps["base-image"] = sorted(
        ([os_comp["bom-ref"]] if os_comp else []) + [d["bom-ref"] for d in debs]
    )
    if os_comp:
        components.append(os_comp)
        deps[os_comp["bom-ref"]] = []
    for d in debs:
        components.append(d)
        deps[d["bom-ref"]] = []

    # python packages
    pkgs = _packages(merged)
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
    raw_lock = merged.read(MODEL_LOCK)
    if raw_lock is not None:
        lock = json.loads(raw_lock)
        repo, commit = str(lock["repo"]), str(lock["commit"])
        src = lock.get("source", "hub")
        purl = (
            f"pkg:huggingface/{repo}@{commit}"
            if src == "hub"
            else f"pkg:generic/{repo.rstrip('/').rsplit('/', 1)[-1]}@{commit}"
        )
        model_ref = purl
        from release.image.modeltree import check_model
        from release.modelpin import parse_lock

        parsed = parse_lock(raw_lock, "/" + MODEL_LOCK)
        res, problems = check_model(merged, model_dir, parsed)
        if problems:
            bad = [
                *res.missing,
                *(c.split(":", 1)[0] for c in res.changed),
                *res.extra,
                *res.foreign,
            ] or problems
            raise VerificationFailed(
                f"image {digest}: model files differ from the baked lock: {', '.join(bad[:5])}"
            )
        rt = lock.get("runtime")
        replaced = rt["source"]["path"] if rt and rt.get("placement") == "replaces-source" else None
        mfiles = [
            {
                "type": "file",
                "bom-ref": f"{purl}#{f['path']}",
                "name": f["path"],
                "hashes": [{"alg": "SHA-256", "content": f["sha256"]}],
            }
            for f in lock["files"]
            if f["path"] != replaced  # shipped as the runtime model (its own component)
        ]
        model: dict[str, Any] = {
            "type": "machine-learning-model",
            "bom-ref": purl,
            "name": repo,
            "version": commit,
            "purl": purl,
            "hashes": [
                {"alg": "SHA-256", "content": str(lock.get("digest", "")).removeprefix("sha256:")}
            ]
            if str(lock.get("digest", "")).startswith("sha256:")
            else [],
            "properties": [{"name": "release:model-lock", "value": "/" + MODEL_LOCK}],
            "components": mfiles,
        }
        if not model["hashes"]:
            del model["hashes"]
        card = _model_card(_front_matter(merged.read(f"{model_dir}/README.md")))
        if card:
            model["modelCard"] = card
        components.append(model)
        deps[purl] = []
        if rt:  # the pre-optimized model the handler runs, derived from the pinned one
            rt_dir = (
                f"{model_dir}/{rt['dir']}"
                if replaced
                else f"{MODEL_LOCK.rsplit('/', 1)[0]}/{rt['dir']}"
            )
            runtime_ref = _runtime_component(lock, rt, purl, merged, components, digest, rt_dir)
            deps[runtime_ref] = [purl]
            extra_refs.append(runtime_ref)  # the image runs it

    # the workdir: policy and handler code (what the merged filesystem holds there)
    tree = merged.tree(workdir)
    # `policy` ([code].policy, shipped at <workdir>/policy) and `code` (everything else:
    # the [code].package); named by role, not by the example's package name
    groups: dict[str, list[str]] = {"policy": [], "code": []}
    for rel, node in sorted(tree.items()):
        if node.kind == "file":
            groups["policy" if rel.startswith("policy/") else "code"].append(rel)
    for title in ("policy", "code"):
        rels = groups[title]
        if not rels:
            continue
        components.append(
            {
                "type": "application",
                "bom-ref": f"app:{title}",
                "name": title,
                "components": [
                    {
                        "type": "file",
                        "bom-ref": f"file:/{workdir}/{r}",
                        "name": f"/{workdir}/{r}",
                        "hashes": [{"alg": "SHA-256", "content": tree[r].sha256}],
                    }
                    for r in rels
                ],
            }
        )
        deps[f"app:{title}"] = sorted(top) if title == "code" else []

    root_deps = [
        "base-image",
        *([model_ref] if model_ref else []),
        *extra_refs,
        *[f"app:{t}" for t in ("policy", "code") if f"app:{t}" in deps],
        *sorted(top),
    ]
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
