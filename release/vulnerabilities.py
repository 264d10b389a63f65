"""Vulnerability findings for one digest -> the gate's `VulnerabilityClaim`.

`[gate].vulnerabilities` names the source (unset: not configured, the policy ignores it):

- `"ecr"`: Amazon ECR image scan findings of `REPO@DIGEST` (`describe_image_scan_findings`,
  every page; basic `findings` and Inspector `enhancedFindings`). The scan must be
  COMPLETE, else the claim is not ok.
- a path to a CycloneDX (1.4+) VEX/BOM with `vulnerabilities`, or a SARIF 2.1.0 log
  (Trivy, Grype, ...). The path may contain `{digest}` (`sha256:...`) or `{hex}` so each
  image has its own report. When the document names an image digest (CycloneDX
  `metadata.component` hashes/version/purl, SARIF `runs[].properties.imageDigest` or an
  artifact's sha-256) it must be this digest.

Waivers the report itself carries are honoured: a CycloneDX analysis state
`not_affected`, `false_positive`, `resolved` or `resolved_with_pedigree`, a SARIF result
with an accepted suppression. Every other finding is listed in the claim (id, severity,
package) so the Rego policy can also waive by id (`policy/release/release.rego`
`waivers`); the severity counts are of the listed findings.
A source that cannot be read is a claim with `ok = false`, never an exception: absence
of evidence is a failed claim.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

from release.config import Config
from release.digest import Reference
from release.errors import aws_error_code
from release.evidence import VulnerabilityClaim, VulnerabilityFinding

SEVERITIES = ("critical", "high", "medium", "low")
_WAIVED_VEX = {"not_affected", "false_positive", "resolved", "resolved_with_pedigree"}
_ECR = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(.+)$")
_HEX = re.compile(r"sha256[:-]([0-9a-f]{64})")


def _finding(id: str, severity: str | None, package: str | None) -> VulnerabilityFinding:
    sev = severity if severity in SEVERITIES else "unknown"
    return VulnerabilityFinding(id=id, severity=cast(Any, sev), package=package)


def _severity(s: str | None) -> str | None:
    s = (s or "").lower()
    if s in SEVERITIES:
        return s
    if s in ("moderate",):
        return "medium"
    if s in ("negligible", "info", "informational", "none", "untriaged", "unknown", ""):
        return None
    return None


def _from_score(score: float) -> str | None:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0.0:
        return "low"
    return None


def claim(
    source: str, findings: list[VulnerabilityFinding], *, ok: bool = True, reason: str = ""
) -> VulnerabilityClaim:
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    return VulnerabilityClaim(
        ok=ok, reason=reason, configured=True, source=source, findings=findings, **counts
    )


def _failed(source: str, reason: str) -> VulnerabilityClaim:
    return VulnerabilityClaim(ok=False, reason=reason, configured=True, source=source)


# --- CycloneDX VEX ------------------------------------------------------------------------
def _cyclonedx_subjects(doc: dict[str, Any]) -> set[str]:
    comp = (doc.get("metadata") or {}).get("component") or {}
    found: set[str] = set()
    for h in comp.get("hashes") or []:
        if str(h.get("alg", "")).upper() in ("SHA-256", "SHA256") and h.get("content"):
            found.add(str(h["content"]).lower())
    for key in ("version", "purl", "bom-ref"):
        for m in _HEX.finditer(str(comp.get(key) or "")):
            found.add(m.group(1))
    return found


def from_cyclonedx(doc: dict[str, Any]) -> list[VulnerabilityFinding]:
    out = []
    for v in doc.get("vulnerabilities") or []:
        state = ((v.get("analysis") or {}).get("state") or "").lower()
        if state in _WAIVED_VEX:
            continue
        sev: str | None = None
        for r in v.get("ratings") or []:
            cand = _severity(r.get("severity")) or (
                _from_score(float(r["score"])) if isinstance(r.get("score"), (int, float)) else None
            )
            if cand and (sev is None or SEVERITIES.index(cand) < SEVERITIES.index(sev)):
                sev = cand
        affects = [str(a.get("ref", "")) for a in v.get("affects") or []]
        out.append(_finding(str(v.get("id") or "?"), sev, affects[0] if affects else None))
    return out


# --- SARIF --------------------------------------------------------------------------------
def _sarif_subjects(doc: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for run in doc.get("runs") or []:
        for m in _HEX.finditer(json.dumps(run.get("properties") or {})):
            found.add(m.group(1))
        for art in run.get("artifacts") or []:
            h = (art.get("hashes") or {}).get("sha-256")
            if h:
                found.add(str(h).lower())
    return found


def from_sarif(doc: dict[str, Any]) -> list[VulnerabilityFinding]:
    out = []
    for run in doc.get("runs") or []:
        rules: dict[str, dict[str, Any]] = {}
        for r in ((run.get("tool") or {}).get("driver") or {}).get("rules") or []:
            rules[str(r.get("id"))] = r
        for res in run.get("results") or []:
            sup = res.get("suppressions") or []
            if any((s.get("status") or "accepted") == "accepted" for s in sup):
                continue
            rule = rules.get(str(res.get("ruleId")), {})
            props = {**(rule.get("properties") or {}), **(res.get("properties") or {})}
            sev: str | None = None
            if "security-severity" in props:
                try:
                    sev = _from_score(float(props["security-severity"]))
                except (TypeError, ValueError):
                    sev = None
            if sev is None:
                level = res.get("level") or (rule.get("defaultConfiguration") or {}).get("level")
                sev = {"error": "high", "warning": "medium", "note": "low"}.get(str(level))
            locs = res.get("locations") or []
            pkg = None
            if locs:
                pkg = ((locs[0].get("physicalLocation") or {}).get("artifactLocation") or {}).get(
                    "uri"
                )
            out.append(_finding(str(res.get("ruleId") or "?"), sev, pkg))
    return out


def from_file(path: Path, digest: str) -> VulnerabilityClaim:
    source = path.name
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return _failed(source, f"vulnerability report {path.name} not found")
    except (OSError, ValueError) as exc:
        return _failed(source, f"vulnerability report {path.name} is not readable JSON: {exc}")
    if not isinstance(doc, dict):
        return _failed(source, f"vulnerability report {path.name} is not a JSON object")
    hexd = digest.split(":", 1)[1]
    if doc.get("bomFormat") == "CycloneDX":
        subjects, findings, kind = _cyclonedx_subjects(doc), from_cyclonedx(doc), "CycloneDX VEX"
    elif isinstance(doc.get("runs"), list) and str(doc.get("version", "")).startswith("2.1"):
        subjects, findings, kind = _sarif_subjects(doc), from_sarif(doc), "SARIF"
    else:
        return _failed(
            source, f"vulnerability report {path.name} is neither CycloneDX nor SARIF 2.1"
        )
    if subjects and hexd not in subjects:
        return _failed(
            f"{kind} {source}",
            f"vulnerability report {path.name} is about another image, not {digest}",
        )
    return claim(f"{kind} {source}", findings)


# --- ECR ----------------------------------------------------------------------------------
def from_ecr(repository: str, digest: str, *, client: Any = None) -> VulnerabilityClaim:
    from botocore.exceptions import BotoCoreError, ClientError

    m = _ECR.match(repository)
    if not m:
        return _failed("ecr", f"image scan findings need an ECR repository, not {repository}")
    account, region, name = m.groups()
    if client is None:
        import boto3

        client = boto3.client("ecr", region_name=region)
    findings: list[VulnerabilityFinding] = []
    kw: dict[str, Any] = {
        "registryId": account,
        "repositoryName": name,
        "imageId": {"imageDigest": digest},
        "maxResults": 1000,
    }
    source = f"ECR scan {name}"
    while True:
        try:
            resp = client.describe_image_scan_findings(**kw)
        except (ClientError, BotoCoreError) as exc:
            return _failed(source, f"ECR scan findings unavailable: {aws_error_code(exc) or exc}")
        status = (resp.get("imageScanStatus") or {}).get("status")
        if status != "COMPLETE":
            desc = (resp.get("imageScanStatus") or {}).get("description") or ""
            return _failed(source, f"ECR scan of {digest[:19]} is {status}: {desc}".rstrip(": "))
        sf = resp.get("imageScanFindings") or {}
        for f in sf.get("findings") or []:
            attrs = {a.get("key"): a.get("value") for a in f.get("attributes") or []}
            findings.append(
                _finding(
                    str(f.get("name") or "?"),
                    _severity(f.get("severity")),
                    attrs.get("package_name"),
                )
            )
        for f in sf.get("enhancedFindings") or []:
            if (f.get("status") or "ACTIVE") != "ACTIVE":
                continue
            pv = f.get("packageVulnerabilityDetails") or {}
            pkgs = pv.get("vulnerablePackages") or []
            findings.append(
                _finding(
                    str(pv.get("vulnerabilityId") or f.get("title") or "?"),
                    _severity(f.get("severity")),
                    pkgs[0].get("name") if pkgs else None,
                )
            )
        token = resp.get("nextToken")
        if not token:
            return claim(source, findings)
        kw["nextToken"] = token


def vulnerability_claim(
    cfg: Config, ref: Reference, repository: str, *, client: Any = None
) -> VulnerabilityClaim:
    """The claim for `ref` from `[gate].vulnerabilities` (not configured: ok, ignored)."""
    src = cfg.gate.vulnerabilities
    if not src:
        return VulnerabilityClaim(ok=True, configured=False)
    if src == "ecr":
        return from_ecr(ref.repository or repository, ref.digest, client=client)
    path = cfg.resolve(
        src.replace("{digest}", ref.digest).replace("{hex}", ref.digest.split(":", 1)[1])
    )
    return from_file(path, ref.digest)
