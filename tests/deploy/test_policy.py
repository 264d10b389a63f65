"""The release policy: its own Rego unit tests, and the gate's decisions on Evidence."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from release import gate
from release.errors import ConfigError
from tests.deploy.conftest import digest_of, evidence, good_evidence, write_config
from tests.fixtures.tools import REPO, run_cli

POLICY = gate.load_policy(REPO / "policy" / "release")


def _rego_tests() -> list[str]:
    return [
        t for _, src in POLICY.tests for t in __import__("re").findall(r"^(test_\w+)\s+if", src, 8)
    ]


@functools.cache
def _rego_results() -> dict[str, gate.PolicyTest]:
    return {t.name: t for t in gate.run_policy_tests(POLICY)}


@pytest.mark.parametrize("name", _rego_tests())
def test_rego_unit_test(name: str) -> None:
    results = _rego_results()
    assert results[name].passed, results[name].detail


def test_a_failing_rego_test_is_reported(tmp_path: Path) -> None:
    d = tmp_path / "policy"
    d.mkdir()
    (d / "release.rego").write_text((REPO / "policy/release/release.rego").read_text())
    (d / "x_test.rego").write_text(
        "package x_test\nimport rego.v1\nimport data.release.gate\n"
        'test_wrong if { "nope" in gate.reasons({}) }\n'
    )
    [res] = gate.run_policy_tests(gate.load_policy(d))
    assert (res.name, res.passed) == ("test_wrong", False)


def _patch(doc: dict[str, Any], section: str, **kw: Any) -> dict[str, Any]:
    return {**doc, section: {**doc[section], **kw}}


D = digest_of("b")


def test_good_evidence_is_allowed() -> None:
    d = gate.evaluate(evidence(good_evidence(D)), POLICY)
    assert (d.allow, d.reasons) == (True, ())
    assert d.policy_digest == POLICY.digest and d.digest == D


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (
            lambda g: {
                **g,
                "signatures": {k: v for k, v in g["signatures"].items() if k != "provenance"},
            },
            "provenance attestation: missing",
        ),
        (
            lambda g: {
                **g,
                "signatures": {
                    **g["signatures"],
                    "sbom": {**g["signatures"]["sbom"], "present": False, "ok": False},
                },
            },
            "sbom attestation: missing",
        ),
        (
            lambda g: {
                **g,
                "signatures": {
                    **g["signatures"],
                    "canary": {
                        **g["signatures"]["canary"],
                        "ok": False,
                        "reason": "signed by mallory@example.com, expected the release workflow",
                    },
                },
            },
            "canary attestation: signed by mallory@example.com, expected the release workflow",
        ),
        (
            lambda g: _patch(g, "canary", ok=False, passed=False, reason="flip rate 0.12 > 0.05"),
            "canary: failed (flip rate 0.12 > 0.05)",
        ),
        (
            lambda g: _patch(g, "model_layer", ok=False, reason="changed: onnx/model.onnx"),
            "model layer: does not match the lock (changed: onnx/model.onnx)",
        ),
        (
            lambda g: _patch(
                g,
                "sbom",
                ok=False,
                present=False,
                subject_ok=False,
                model_files_match_lock=False,
                reason="no SBOM",
            ),
            "sbom: missing",
        ),
        (
            lambda g: _patch(g, "sbom", ok=False, subject_ok=False, reason="subject sha256:00"),
            "sbom: subject is not this image (subject sha256:00)",
        ),
        (
            lambda g: _patch(g, "vulnerabilities", configured=True, high=3),
            "vulnerabilities: 3 high findings (at most 0 allowed)",
        ),
    ],
    ids=[
        "unsigned",
        "sbom-unsigned",
        "wrong-identity",
        "canary-failed",
        "model-mismatch",
        "sbom-missing",
        "sbom-subject",
        "vulns",
    ],
)
def test_deny_cases(doc: Any, reason: str) -> None:
    d = gate.evaluate(evidence(doc(good_evidence(D))), POLICY)
    assert d.allow is False
    assert d.reasons == (reason,)


def test_every_reason_is_given() -> None:
    doc = _patch(
        _patch(good_evidence(D), "canary", ok=False, passed=False, reason="x"),
        "model_layer",
        ok=False,
        reason="y",
    )
    d = gate.evaluate(evidence(doc), POLICY)
    assert d.reasons == ("canary: failed (x)", "model layer: does not match the lock (y)")


def test_broken_policy_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package release.gate\nallow if {\n")
    with pytest.raises(ConfigError) as info:
        gate.evaluate(evidence(good_evidence(D)), gate.load_policy(tmp_path))
    assert info.value.message == "release policy bad.rego does not compile: this is unclosed"


def test_gate_cli_on_an_evidence_document(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(good_evidence(D)))
    r = run_cli("gate", D, "--env", "prod", "--evidence", good, "--config", cfg)
    assert r.code == 0, r.stderr
    assert r.stderr.splitlines() == [f"allow: {D} for prod"]
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            _patch(
                good_evidence(D), "canary", ok=False, passed=False, reason="flip rate 0.12 > 0.05"
            )
        )
    )
    r = run_cli("gate", D, "--env", "prod", "--evidence", bad, "--config", cfg)
    assert r.code == 1
    assert r.stderr.splitlines() == [
        f"release: error: gate denied {D} for prod: 1 reason",
        "  canary: failed (flip rate 0.12 > 0.05)",
    ]
    r = run_cli("gate", D, "--env", "prod", "--evidence", bad, "--config", cfg, "--json")
    assert r.code == 1
    doc = json.loads(r.stdout)
    assert (doc["allow"], doc["reasons"]) == (False, ["canary: failed (flip rate 0.12 > 0.05)"])


def test_gate_refuses_a_tag(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    r = run_cli("gate", "app:latest", "--env", "prod", "--config", cfg)
    assert r.code == 2
    assert r.stderr.splitlines()[0] == (
        "release: error: 'app:latest' is not a digest: give sha256:<64 hex> or "
        "REPO@sha256:<64 hex> (tags never decide anything)"
    )
