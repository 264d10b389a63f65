"""Vulnerability evidence for the gate: ECR scan findings (moto server), CycloneDX VEX and
SARIF files, each turned into the Evidence's claim and judged by the real Rego policy."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from release import gate
from release.config import load
from release.digest import parse_reference
from release.evidence import Evidence
from release.vulnerabilities import from_ecr, from_file, vulnerability_claim
from tests.deploy.conftest import ACCOUNT, REGION, boto, digest_of, good_evidence, write_config

POLICY = gate.default_policy()
D = digest_of("b")


def _decide(claim: Any) -> tuple[bool, tuple[str, ...]]:
    doc = good_evidence(D)
    doc["vulnerabilities"] = claim.model_dump(mode="json")
    d = gate.evaluate(Evidence.model_validate(doc), POLICY)
    return d.allow, d.reasons


def vex(subject: str = D) -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "metadata": {
            "component": {
                "type": "container",
                "name": "app",
                "hashes": [{"alg": "SHA-256", "content": subject.split(":")[1]}],
            }
        },
        "vulnerabilities": [
            {
                "id": "CVE-2024-0001",
                "ratings": [{"score": 9.8, "method": "CVSSv31"}],
                "affects": [{"ref": "pkg:pypi/onnxruntime@1.17.0"}],
            },
            {
                "id": "CVE-2024-0002",
                "ratings": [{"severity": "high"}],
                "analysis": {"state": "not_affected", "justification": "code_not_reachable"},
            },
            {"id": "CVE-2024-0003", "ratings": [{"severity": "medium"}]},
        ],
    }


def sarif(subject: str = D) -> dict[str, Any]:
    return {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "Trivy",
                        "rules": [
                            {"id": "CVE-2024-1000", "properties": {"security-severity": "9.1"}},
                            {"id": "CVE-2024-1001", "properties": {"security-severity": "7.5"}},
                            {"id": "CVE-2024-1002", "defaultConfiguration": {"level": "note"}},
                        ],
                    }
                },
                "properties": {"imageDigest": f"app@{subject}"},
                "results": [
                    {
                        "ruleId": "CVE-2024-1000",
                        "level": "error",
                        "locations": [
                            {"physicalLocation": {"artifactLocation": {"uri": "opt/deps/numpy"}}}
                        ],
                    },
                    {
                        "ruleId": "CVE-2024-1001",
                        "level": "error",
                        "suppressions": [{"kind": "external", "status": "accepted"}],
                    },
                    {"ruleId": "CVE-2024-1002"},
                ],
            }
        ],
    }


def test_cyclonedx_vex_counts_what_is_not_waived(tmp_path: Path) -> None:
    p = tmp_path / "vex.json"
    p.write_text(json.dumps(vex()))
    c = from_file(p, D)
    assert (c.ok, c.source, c.critical, c.high, c.medium, c.low) == (
        True,
        "CycloneDX VEX vex.json",
        1,
        0,
        1,
        0,
    )
    assert [(f.id, f.severity, f.package) for f in c.findings] == [
        ("CVE-2024-0001", "critical", "pkg:pypi/onnxruntime@1.17.0"),
        ("CVE-2024-0003", "medium", None),
    ]
    assert _decide(c) == (
        False,
        ("vulnerabilities: 1 critical findings (at most 0 allowed): CVE-2024-0001",),
    )


def test_a_report_about_another_image_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "vex.json"
    p.write_text(json.dumps(vex(digest_of("c"))))
    c = from_file(p, D)
    assert (c.ok, c.reason) == (
        False,
        f"vulnerability report vex.json is about another image, not {D}",
    )
    assert _decide(c) == (
        False,
        (f"vulnerabilities: vulnerability report vex.json is about another image, not {D}",),
    )


def test_sarif_severity_from_the_score_and_suppressions(tmp_path: Path) -> None:
    p = tmp_path / "scan.sarif"
    p.write_text(json.dumps(sarif()))
    c = from_file(p, D)
    assert (c.ok, c.critical, c.high, c.medium, c.low) == (True, 1, 0, 0, 1)
    assert c.findings[0].package == "opt/deps/numpy"
    assert _decide(c)[0] is False


def test_unreadable_or_unknown_reports_are_failed_claims(tmp_path: Path) -> None:
    assert from_file(tmp_path / "nope.json", D).reason == "vulnerability report nope.json not found"
    (tmp_path / "x.json").write_text('{"hello": 1}')
    assert from_file(tmp_path / "x.json", D).reason == (
        "vulnerability report x.json is neither CycloneDX nor SARIF 2.1"
    )
    (tmp_path / "y.json").write_text("{")
    assert from_file(tmp_path / "y.json", D).ok is False


def test_config_path_template_per_digest(tmp_path: Path) -> None:
    cfg_path = write_config(tmp_path)
    cfg_path.write_text(
        cfg_path.read_text() + '\n[gate]\nvulnerabilities = "scans/{hex}.vex.json"\n'
    )
    (tmp_path / "scans").mkdir()
    doc = vex()
    doc["vulnerabilities"] = doc["vulnerabilities"][1:]  # only the waived and the medium one
    (tmp_path / "scans" / f"{D.split(':')[1]}.vex.json").write_text(json.dumps(doc))
    c = vulnerability_claim(load(cfg_path), parse_reference(D), "oci:.release/registry")
    assert (c.configured, c.ok, c.critical, c.medium) == (True, True, 0, 1)
    assert _decide(c) == (True, ())
    c = vulnerability_claim(
        load(cfg_path), parse_reference(digest_of("d")), "oci:.release/registry"
    )
    assert c.ok is False and c.reason.endswith("not found")


# --- ECR (moto server) ------------------------------------------------------------------
ECR_REPO = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/app"


def _push_scanned_image(moto_url: str, findings: list[dict[str, Any]] | None) -> str:
    ecr = boto("ecr")
    ecr.create_repository(repositoryName="app")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of("0"),
                "size": 2,
            },
            "layers": [],
        }
    )
    digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    ecr.put_image(
        repositoryName="app",
        imageManifest=manifest,
        imageDigest=digest,
        imageManifestMediaType="application/vnd.oci.image.manifest.v1+json",
    )
    if findings is None:
        return digest
    ecr.start_image_scan(repositoryName="app", imageId={"imageDigest": digest})
    result = {
        "registryId": ACCOUNT,
        "repositoryName": "app",
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": "COMPLETE", "description": "done"},
        "imageScanFindings": {"findings": findings},
    }
    req = urllib.request.Request(
        moto_url + "/moto-api/static/ecr/scan-finding-results",
        data=json.dumps({"results": [result], "region": REGION}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=10).close()
    return digest


@pytest.mark.aws
def test_ecr_scan_findings(moto_url: str, aws_env: dict[str, str]) -> None:
    digest = _push_scanned_image(
        moto_url,
        [
            {
                "name": "CVE-2024-7",
                "severity": "CRITICAL",
                "attributes": [{"key": "package_name", "value": "openssl"}],
            },
            {"name": "CVE-2024-8", "severity": "LOW"},
            {"name": "CVE-2024-9", "severity": "INFORMATIONAL"},
        ],
    )
    c = from_ecr(ECR_REPO, digest)
    assert (c.ok, c.source, c.critical, c.low) == (True, "ECR scan app", 1, 1)
    assert [(f.id, f.package) for f in c.findings[:1]] == [("CVE-2024-7", "openssl")]
    allow, reasons = _decide(c)
    assert allow is False
    assert reasons == ("vulnerabilities: 1 critical findings (at most 0 allowed): CVE-2024-7",)


@pytest.mark.aws
def test_ecr_without_a_scan_is_a_failed_claim(moto_url: str, aws_env: dict[str, str]) -> None:
    digest = _push_scanned_image(moto_url, None)
    c = from_ecr(ECR_REPO, digest)
    assert (c.ok, c.reason) == (False, "ECR scan findings unavailable: ScanNotFoundException")
    assert from_ecr("127.0.0.1:5000/app", digest).reason == (
        "image scan findings need an ECR repository, not 127.0.0.1:5000/app"
    )
