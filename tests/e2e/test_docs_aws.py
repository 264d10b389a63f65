"""The done-criterion of the adoption docs: a new user follows docs/aws-setup.md alone.

Every ```sh block of docs/aws-setup.md is run, in order, as one bash script in a clean copy
of the project (the commands come from the doc, not from this test): it starts moto,
writes the production config of a 4-function platform, generates every IAM policy,
creates the platform (ledger table, ECR repository policy, roles with the generated
function policies, image functions with the alias), promotes a release to the `trial`
environment with the live canary watching generated traffic, and prints status and the
ledger. The test checks what those commands printed and wrote.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO, copy_project, free_port

pytestmark = [pytest.mark.slow, pytest.mark.aws]

DOC = REPO / "docs" / "aws-setup.md"
NEW = "sha256:" + "b" * 64


def doc_steps() -> str:
    blocks = re.findall(r"^```sh\n(.*?)^```", DOC.read_text(), re.S | re.M)
    assert len(blocks) >= 6, "docs/aws-setup.md lost its walkthrough"
    return "\n".join(blocks)


def test_following_aws_setup_promotes_with_a_live_canary(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "clone")
    # a clone has the workflow `release iam --job` reads the jobs' commands from
    shutil.copytree(REPO / ".github" / "workflows", project / ".github" / "workflows")
    (project / ".venv").symlink_to(REPO / ".venv")
    script = "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + doc_steps()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RELEASE_", "PYTHON"))}
    env["MOTO_PORT"] = str(free_port())
    p = subprocess.run(
        ["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-5000:]
    # the IAM policies the doc generated, one per job and function
    for name in (
        "build",
        "attest",
        "canary",
        "promote",
        "scorer",
        "remediator",
        "onboarding",
        "analysis",
    ):
        doc = json.loads((project / "iam" / f"{name}.json").read_text())
        assert doc["Version"] == "2012-10-17" and doc["Statement"], name
    promote = json.loads((project / "iam" / "promote.json").read_text())
    actions = {a for s in promote["Statement"] for a in s["Action"]}
    assert {
        "lambda:UpdateFunctionCode",
        "lambda:UpdateAlias",
        "cloudwatch:GetMetricData",
    } <= actions
    # the gate allowed, the live canary looked twice and passed, every function moved
    assert f"gate: allow; promoted {NEW} in trial" in p.stdout, out[-3000:]
    for fn in ("scorer", "remediator", "onboarding", "analysis"):
        assert f"  {fn}: ma-{fn} version 2\n" in p.stdout, p.stdout[-3000:]
    events = [line.split() for line in p.stdout.splitlines() if " trial " in line]
    actions_seen = [e[3] for e in events]
    assert actions_seen.count("canary.look") == 2, p.stdout
    assert actions_seen[0] == "gate" and "promote" in actions_seen
    assert f"trial: {NEW} since" in p.stderr
