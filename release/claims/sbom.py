"""Verify the signed SBOM against the image: every listed package installed at its
version (and none unlisted), and the model component listing exactly the locked files.
"""

from __future__ import annotations

import re
from typing import Any

from release.claims.checklist import Verification
from release.evidence import SbomClaim
from release.modelpin import ModelLock, shipped


def dist_infos(merged: Any) -> dict[str, str]:
    """name (normalised) -> version of every distribution installed in the deps
    directory of the merged filesystem, from its `*.dist-info/METADATA`."""
    out: dict[str, str] = {}
    for path, data in merged.data.items():
        if not path.endswith(".dist-info/METADATA"):
            continue
        dist = version = None
        for raw in data.decode("utf-8", "replace").splitlines():
            if raw.startswith("Name:"):
                dist = raw.split(":", 1)[1].strip()
            elif raw.startswith("Version:"):
                version = raw.split(":", 1)[1].strip()
            elif not raw.strip():
                break
        if dist and version:
            out[re.sub(r"[-_.]+", "-", dist).lower()] = version
    return out


def check_sbom(v: Verification, merged: Any) -> SbomClaim:
    """The signed SBOM's packages are exactly the image's installed distributions, at
    their versions, and its model component lists exactly the baked lock's files."""
    att = v.attestations.get("sbom")
    if att is None or not att.present:
        return SbomClaim(
            ok=False,
            reason="missing",
            present=False,
            subject_ok=False,
            model_files_match_lock=False,
        )
    if not att.ok or att.predicate is None:
        return SbomClaim(
            ok=False,
            reason=att.reason,
            present=True,
            subject_ok=False,
            model_files_match_lock=False,
        )
    bom = att.predicate
    comps = all_components(bom.get("components") or [])
    problems: list[str] = []
    # packages: every library listed is installed in the deps layer at that version
    installed = dist_infos(merged)
    libs = [
        c
        for c in comps
        if c.get("type") == "library" and str(c.get("purl", "")).startswith("pkg:pypi/")
    ]
    for c in libs:
        key = re.sub(r"[-_.]+", "-", str(c.get("name", ""))).lower()
        have = installed.get(key)
        if have is None:
            problems.append(f"package {c.get('name')} {c.get('version')} is not in the image")
        elif have != c.get("version"):
            problems.append(
                f"package {c.get('name')}: SBOM says {c.get('version')}, image has {have}"
            )
    listed = {re.sub(r"[-_.]+", "-", str(c.get("name", ""))).lower() for c in libs}
    unlisted = sorted(set(installed) - listed)
    if unlisted:
        problems.append(
            f"{len(unlisted)} installed packages not in the SBOM: {', '.join(unlisted[:5])}"
        )
    v.add(
        "sbom packages",
        not problems,
        f"{len(libs)} packages, each installed in the image at the listed version"
        if not problems
        else "; ".join(problems[:3]),
    )
    # the model: every file with the lock's hash, nothing else
    model_ok, model_reason = sbom_model_matches(comps, v.lock)
    v.add(
        "sbom model",
        model_ok,
        f"model components list the {len(shipped(v.lock).files) if v.lock else 0} shipped model "
        "files with their sha256"
        if model_ok
        else model_reason,
    )
    ok = not problems and model_ok
    return SbomClaim(
        ok=ok,
        reason="; ".join(problems[:3]) or model_reason,
        present=True,
        subject_ok=True,
        model_files_match_lock=model_ok,
    )


def all_components(comps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every component of a CycloneDX component list, nested ones included."""
    out: list[dict[str, Any]] = []
    for c in comps:
        out.append(c)
        out.extend(all_components(c.get("components") or []))
    return out


def sbom_model_matches(comps: list[dict[str, Any]], lock: ModelLock | None) -> tuple[bool, str]:
    models = [c for c in comps if c.get("type") == "machine-learning-model"]
    if not models:
        return False, "no machine-learning-model component"
    if lock is None:
        return False, "the image has no readable model lock to compare with"
    model = models[0]
    rt = lock.runtime
    replaced = rt.source.path if rt is not None and rt.placement == "replaces-source" else None
    # the pinned files the image ships (a source the runtime model replaces is not one)
    want = {f.path: f.sha256 for f in lock.files if f.path != replaced}
    parts = _diff(_file_hashes(model), want)
    if rt is not None:
        runtime = next((c for c in models if str(c.get("bom-ref", "")).endswith("#runtime")), None)
        if runtime is None:
            parts.append("no runtime model component")
        else:
            got = {n.rsplit("/", 1)[-1]: h for n, h in _file_hashes(runtime).items()}
            parts += [f"runtime {p}" for p in _diff(got, {f.path: f.sha256 for f in rt.files})]
    if not parts:
        return True, ""
    return False, "model files: " + "; ".join(parts)


def _file_hashes(component: dict[str, Any]) -> dict[str, str]:
    files: dict[str, str] = {}
    for sub in component.get("components") or []:
        if sub.get("type") != "file":
            continue
        for h in sub.get("hashes") or []:
            if h.get("alg") == "SHA-256":
                files[str(sub.get("name"))] = str(h.get("content"))
    return files


def _diff(files: dict[str, str], want: dict[str, str]) -> list[str]:
    missing = sorted(set(want) - set(files))
    extra = sorted(set(files) - set(want))
    changed = sorted(p for p in set(want) & set(files) if want[p] != files[p])
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:3])}")
    if extra:
        parts.append(f"not in the lock: {', '.join(extra[:3])}")
    if changed:
        parts.append(f"hash differs from the lock: {', '.join(changed[:3])}")
    return parts
