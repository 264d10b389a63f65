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

POLICY = gate.default_policy()


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
    (d / "release.rego").write_text((REPO / "release/policy/release.rego").read_text())
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
    assert info.value.message == (
        "[gate].policy: release policy bad.rego does not compile: this is unclosed"
    )


def test_gate_cli_on_an_evidence_document(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(good_evidence(D)))
    r = run_cli("gate", D, "--env", "prod", "--evidence", good, "--config", cfg)
    assert r.code == 0, r.stderr
    assert r.stderr.splitlines() == [f"allow: {D} for prod (policy default)"]
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


# --- [gate].policy: the shipped default, extended or replaced by the adopter's directory --
def _cfg_with_policy(tmp_path: Path, files: dict[str, str] | None) -> Any:
    from release.config import load

    cfg = write_config(tmp_path)
    if files is not None:
        d = tmp_path / "gate"
        d.mkdir()
        for name, src in files.items():
            (d / name).write_text(src)
        cfg.write_text(cfg.read_text() + '\n[gate]\npolicy = "gate"\n')
    return load(cfg)


CUSTOM = """package release.custom
import rego.v1
import data.release.gate
deny contains "provenance: built outside the release workflow" if {
	input.provenance.workflow != ".github/workflows/release.yml"
}
"""


def test_unset_gate_policy_is_the_default_shipped_in_the_package(tmp_path: Path) -> None:
    pol = gate.policy_for(_cfg_with_policy(tmp_path, None))
    assert pol.name == "default" and pol.digest == POLICY.digest
    assert [n for n, _ in pol.modules] == ["release.rego"]
    d = gate.evaluate(evidence(good_evidence(D)), pol)
    assert d.allow and d.to_dict()["policy_name"] == "default"


def test_a_release_custom_package_extends_the_default(tmp_path: Path) -> None:
    pol = gate.policy_for(_cfg_with_policy(tmp_path, {"mine.rego": CUSTOM}))
    assert pol.name == "default + gate" and pol.digest not in (POLICY.digest,)
    ok = gate.evaluate(evidence(good_evidence(D)), pol)
    assert ok.allow, ok.reasons
    other = ".github/workflows/other.yml"  # the default accepts it: it is the expected one
    small = _patch(good_evidence(D), "provenance", workflow=other, expected_workflow=other)
    d = gate.evaluate(evidence(small), pol)
    assert (d.allow, d.reasons, d.policy_name) == (
        False,
        ("provenance: built outside the release workflow",),
        "default + gate",
    )
    # and the default's own reasons still apply
    bad = _patch(small, "canary", ok=False, passed=False, reason="x")
    assert gate.evaluate(evidence(bad), pol).reasons == (
        "canary: failed (x)",
        "provenance: built outside the release workflow",
    )


def test_a_release_gate_package_replaces_the_default(tmp_path: Path) -> None:
    mine = "package release.gate\nimport rego.v1\ndefault allow := true\ndeny := set()\n"
    pol = gate.policy_for(_cfg_with_policy(tmp_path, {"gate.rego": mine}))
    assert pol.name == "gate" and [n for n, _ in pol.modules] == ["gate.rego"]
    broken = _patch(good_evidence(D), "canary", ok=False, passed=False, reason="x")
    assert gate.evaluate(evidence(broken), pol).allow is True  # only the adopter's rules


def test_a_policy_directory_in_another_package_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        gate.policy_for(_cfg_with_policy(tmp_path, {"x.rego": "package acme\nallow := true\n"}))
    assert e.value.message == (
        "[gate].policy: gate declares neither package release.gate (replaces the default "
        "policy) nor release.custom (adds deny reasons to it); it has acme"
    )
    (tmp_path / "p").mkdir()
    cfg = write_config(tmp_path / "p")
    cfg.write_text(cfg.read_text() + '\n[gate]\npolicy = "nowhere"\n')
    from release.config import load

    with pytest.raises(ConfigError) as e:
        gate.policy_for(load(cfg))
    assert e.value.message.startswith("[gate].policy: policy directory ")
    assert e.value.message.endswith("nowhere not found")


def test_policy_cli_show_test_and_export(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    r = run_cli("policy", "show", "--json", "--config", cfg)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["name"], doc["digest"], doc["packages"]) == (
        "default",
        POLICY.digest,
        ["release.gate"],
    )
    t = run_cli("policy", "test", "--json", "--config", cfg)
    assert t.code == 0, t.stderr
    res = json.loads(t.stdout)
    assert res["passed"] and len(res["tests"]) == len(_rego_tests()) > 10
    out = tmp_path / "mine"
    e = run_cli("policy", "export", out, "--config", cfg)
    assert e.code == 0, e.stderr
    assert (out / "release.rego").read_text() == dict(POLICY.modules)["release.rego"]
    again = run_cli("policy", "export", out, "--config", cfg)
    assert again.code == 2 and "exists; export into an empty directory" in again.stderr
    # the exported copy, configured, replaces the default; a failing test of it is exit 1
    (out / "zz_test.rego").write_text(
        "package zz_test\nimport rego.v1\nimport data.release.gate\n"
        'test_wrong if { "nope" in gate.reasons({}) }\n'
    )
    cfg.write_text(cfg.read_text() + '\n[gate]\npolicy = "mine"\n')
    f = run_cli("policy", "test", "--config", cfg)
    assert f.code == 1
    assert f.stderr.splitlines()[0] == (
        f"release: error: 1 of {len(_rego_tests()) + 1} policy tests failed (mine)"
    )
