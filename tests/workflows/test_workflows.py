"""The GitHub Actions workflows: actionlint and zizmor report nothing; the release
workflow keeps its security properties (pinned actions, least privilege, digests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.fixtures.tools import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def test_actionlint_clean() -> None:
    p = subprocess.run([str(BIN / "actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_zizmor_clean() -> None:
    p = subprocess.run([str(BIN / "zizmor"), "--offline", "--no-progress", *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No findings to report" in p.stdout + p.stderr


def test_actionlint_catches_an_injection(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: issues\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.event.issue.title }}\n")
    p = subprocess.run([str(BIN / "actionlint"), str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and "potentially untrusted" in p.stdout


def test_every_action_pinned_by_full_sha() -> None:
    for wf in WORKFLOWS:
        for uses in re.findall(r"uses:\s*(\S+)", wf.read_text()):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{wf.name}: {uses}"


def test_release_workflow_least_privilege_and_digest_flow() -> None:
    wf = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    assert wf["permissions"] == {}
    jobs = wf["jobs"]
    for name, job in jobs.items():
        assert set(job["permissions"]) <= {"contents", "id-token"}, name
        assert job["permissions"]["contents"] == "read", name
        for step in job["steps"]:
            if "actions/checkout" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False
    assert jobs["attest"]["permissions"]["id-token"] == "write"
    assert jobs["promote"]["environment"] == "production"
    assert jobs["build"]["outputs"]["digest"] == "${{ steps.build.outputs.digest }}"
    for name in ("attest", "canary", "promote"):
        assert jobs[name]["env"]["DIGEST"] == "${{ needs.build.outputs.digest }}"
    text = (REPO / ".github/workflows/release.yml").read_text()
    assert "--signer sigstore" in text
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert "GITHUB_STEP_SUMMARY" in text
