"""The GitHub Actions workflows and the adopters' Action (action.yml): actionlint and zizmor
report nothing; the release workflow keeps its security properties (pinned actions, least
privilege, digests) and installs `release` with this commit's Action."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.fixtures.tools import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTION = REPO / "action.yml"
BIN = Path(sys.executable).parent


def test_actionlint_clean() -> None:
    p = subprocess.run(
        [str(BIN / "actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_zizmor_clean() -> None:
    p = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", *map(str, WORKFLOWS), str(ACTION)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No findings to report" in p.stdout + p.stderr


def test_actionlint_catches_an_injection(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: issues\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.event.issue.title }}\n"
    )
    p = subprocess.run([str(BIN / "actionlint"), str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and "potentially untrusted" in p.stdout


def test_every_action_pinned_by_full_sha() -> None:
    """Another repository's action by commit SHA; `./` is this commit's own Action."""
    for wf in WORKFLOWS:
        jobs = yaml.safe_load(wf.read_text())["jobs"].values()
        for uses in (s["uses"] for job in jobs for s in job.get("steps", []) if "uses" in s):
            assert uses == "./" or re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), (
                f"{wf.name}: {uses}"
            )


def test_the_action_is_composite_with_no_required_input() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    assert not any(i.get("required") for i in action["inputs"].values())
    assert action["inputs"]["python"]["default"] == "python3"
    assert "version" in action["outputs"]
    [step] = action["runs"]["steps"]
    # the input reaches the script through the environment, never spliced into the shell
    assert "${{" not in step["run"] and step["env"]["RELEASE_ACTION_PYTHON"] == (
        "${{ inputs.python }}"
    )
    assert (REPO / step["run"].strip("'\"").replace("$GITHUB_ACTION_PATH/", "")).is_file()


def test_release_workflow_installs_release_with_this_commits_action() -> None:
    """Every job: checkout, setup-python, then `uses: ./`; `release` from PATH, never a
    checkout's .venv or .ci/setup."""
    wf = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    for name, job in wf["jobs"].items():
        uses = [s.get("uses", "").split("@")[0] for s in job["steps"]]
        assert uses[:3] == ["actions/checkout", "actions/setup-python", "./"], name
        for step in job["steps"]:
            assert ".venv" not in step.get("run", "") and ".ci/setup" not in step.get("run", "")


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


def test_release_workflow_roles_dispatch_and_config() -> None:
    """The promote role is used by the environment's job only; the other jobs use the push
    role; a dispatch runs only from the default branch; the production config is used."""
    from release.config import load

    wf = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    jobs = wf["jobs"]
    roles = {}
    for name, job in jobs.items():
        [aws] = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
        roles[name] = aws["with"]["role-to-assume"]
    assert roles == {
        "build": "${{ vars.RELEASE_AWS_PUSH_ROLE_ARN }}",
        "attest": "${{ vars.RELEASE_AWS_PUSH_ROLE_ARN }}",
        "canary": "${{ vars.RELEASE_AWS_PUSH_ROLE_ARN }}",
        "promote": "${{ vars.RELEASE_AWS_PROMOTE_ROLE_ARN }}",
    }
    assert [n for n, j in jobs.items() if "environment" in j] == ["promote"]
    assert (
        jobs["build"]["if"]
        == "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
    )
    assert all(
        "build" in ([j["needs"]] if isinstance(j["needs"], str) else j["needs"])
        for n, j in jobs.items()
        if n != "build"
    )
    assert wf["env"]["RELEASE_CONFIG"] == "release.prod.toml"
    cfg = load(REPO / wf["env"]["RELEASE_CONFIG"])
    env = cfg.environment(wf["env"]["RELEASE_ENV"])
    assert env.target == "lambda" and set(env.functions) == set(cfg.functions) and env.alias
    assert env.traffic.bake_seconds > 0  # the live canary is on
    assert (
        cfg.signing.mode == "sigstore"
        and cfg.signing.issuer == "https://token.actions.githubusercontent.com"
    )
    assert cfg.signing.identity and cfg.signing.identity.endswith(
        "/.github/workflows/release.yml@refs/heads/main"
    )
    assert cfg.image.registry.split("/")[0].endswith(
        ".amazonaws.com"
    ) and cfg.ledger.url.startswith("dynamodb:")
    assert cfg.gate.workflow == ".github/workflows/release.yml"


def test_example_config_still_offline() -> None:
    from release.config import load

    cfg = load(REPO / "release.toml")
    assert cfg.image.registry.startswith("oci:") and cfg.ledger.url.startswith("sqlite:")
    assert cfg.environment("local").target == "local"
