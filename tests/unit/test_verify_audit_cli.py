"""`release verify` and `release audit` on bad input and on an empty project: one clear
line and the documented exit code, nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO, run_cli

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy2(REPO / "release.toml", tmp_path / "release.toml")
    return tmp_path


def test_verify_refuses_a_tag(project: Path) -> None:
    r = run_cli("verify", "registry.invalid/app:latest", cwd=project)
    assert r.code == 2
    assert "digest" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_verify_unknown_digest_fails_the_image_claim(project: Path) -> None:
    r = run_cli("verify", DIGEST, "--json", cwd=project)
    assert r.code == 1, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["digest"] == DIGEST
    assert [c["name"] for c in doc["checks"] if not c["ok"]] == ["image"]


def test_verify_unknown_environment_is_config_error(project: Path) -> None:
    r = run_cli("verify", DIGEST, "--env", "nope", cwd=project)
    assert r.code == 2
    assert "nope" in r.stderr


def test_audit_bad_since_is_usage_error(project: Path) -> None:
    r = run_cli("audit", "--since", "last tuesday", cwd=project)
    assert r.code == 2
    assert "--since" in r.stderr


def test_audit_of_an_empty_ledger(project: Path) -> None:
    r = run_cli("audit", "--format", "json", cwd=project)
    assert r.code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["releases"] == [] and doc["chain_ok"] is True and doc["events"] == 0
    out = project / "reports" / "audit.md"
    out.parent.mkdir()
    r = run_cli("audit", "--format", "md", "-o", str(out), cwd=project)
    assert r.code == 0 and "No releases match" in out.read_text()
    assert [p.name for p in out.parent.iterdir()] == ["audit.md"]  # no temp file left behind


def test_audit_since_parses_dates_and_times() -> None:
    from release.audit.collect import parse_since

    assert parse_since("2026-11-01") == "2026-11-01T00:00:00"
    assert parse_since("2026-11-01T10:00:00+02:00") == "2026-11-01T08:00:00"
    assert parse_since(None) is None


def test_workflow_is_read_from_the_builder_id() -> None:
    """The gate's [gate].workflow is compared with the workflow path of the signed builder id."""
    from release.claims.provenance import workflow_of

    assert workflow_of(
        "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main"
    ) == (".github/workflows/release.yml")
    assert workflow_of("local") == "local"
    assert workflow_of("https://builder.example/other") is None
