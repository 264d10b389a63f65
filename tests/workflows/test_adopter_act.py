"""An adopter's release workflow, run by nektos/act in host mode through the Action pinned by
commit SHA: the second platform (tests/platforms/tickets: package `svc`, its own model, corpus
and lock, no `policy/`) as its own repository `acme/tickets`, released to `prod` on the stand-ins
of tests/workflows/act_run.py.

The Action is `uses: release-platform/release@<SHA of this checkout's HEAD>`, mapped by act's
`--local-repository` to a clean copy of this work tree's tracked files (the Action by local
path: the run cannot read anything untracked, nor this checkout's .venv). The adopter's
repository holds what an adopter commits: its platform, the model lock `release model pin`
wrote, `release.prod.toml` (ECR registry, DynamoDB ledger, keyless signing pinned to its
workflow) and the workflow `release init --action-ref release-platform/release@SHA
--ci-config release.prod.toml` wrote: build -> attest -> canary -> promote, each job
`uses:` the Action and then runs `release ...`.

1. Every job succeeds; each ran `release` from the Action's venv in the runner's tool cache
   (no other `release` is on the jobs' PATH): the first job installed it, the others found
   it cached. From a fresh clone `release verify DIGEST --env prod` passes every check and
   `release status --env prod` shows both functions on the digest.
2. A second act run (the build job) installs nothing: the Action reports the cached venv,
   and the build gives the same digest. Both runs' Action times are printed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from release._build import REPOSITORY
from tests.adoption.conftest import INIT as ADOPTER_INIT
from tests.adoption.conftest import copy_platform
from tests.fixtures.tools import REPO, run_cli
from tests.workflows.act_run import (
    ECR_HOST,
    HOST_PATH,
    PROMOTE_ROLE,
    PUSH_ROLE,
    ActResult,
    WorkflowRun,
    boto,
    copy_tracked,
    step_seconds,
)

pytestmark = [pytest.mark.slow, pytest.mark.aws, pytest.mark.registry, pytest.mark.timeout(2400)]

JOBS = ("build", "attest", "canary", "promote")
ADOPTER = "acme/tickets"
FUNCTIONS = {"classify": "tickets-classify", "health": "tickets-health"}
#: the live canary in the test's config commit: seconds instead of minutes; no minimum of
#: predictions (this platform publishes no sentiment metrics, only Lambda's own)
TRAFFIC = (
    "traffic = { canary_weight = 0.1, bake_seconds = 8, min_samples = 0, "
    "looks = 2, deadline_seconds = 90 }"
)

PROD_CONFIG = f"""\
# The tickets platform in production: what .github/workflows/release.yml releases.
[model]
path = "ml/urgency"
lock = "ml/urgency.lock.json"

[image]
base = "public.ecr.aws/lambda/python:3.11@sha256:{"0" * 64}"
registry = "{ECR_HOST}/tickets"
requirements = "requirements.lock"
model_dir = "/opt/ml/urgency"

[functions]
classify = "svc.classify.handler"
health = "svc.health.handler"

[code]
package = "svc"
predict = "svc.urgency:load"

[signing]
mode = "sigstore"
identity = "https://github.com/{ADOPTER}/.github/workflows/release.yml@refs/heads/main"
issuer = "https://token.actions.githubusercontent.com"

[canary]
corpus = "data/tickets.jsonl"

[environments.prod]
target = "lambda"
region = "us-east-1"
functions = {{ classify = "{FUNCTIONS["classify"]}", health = "{FUNCTIONS["health"]}" }}
alias = "live"
traffic = {{ canary_weight = 0.1, bake_seconds = 600, min_samples = 0, looks = 3, deadline_seconds = 3600 }}
alarms = []

[ledger]
url = "dynamodb:tickets-ledger"

[gate]
vulnerabilities = "ecr"
workflow = ".github/workflows/release.yml"
"""

#: `release init` as the adopter runs it (tests/adoption), the workflow pinned to the
#: Action by `--action-ref` and using the production config
INIT = (*ADOPTER_INIT, "--ci-config", "release.prod.toml")


@dataclass
class AdopterRun:
    w: WorkflowRun
    uses: str  # release-platform/release@SHA
    first: ActResult
    second: ActResult  # the build job again
    first_roles: list[tuple[str, str, bool]]  # (role, sub, allowed) the first run assumed


def adopter_repository(dest: Path, uses: str) -> Path:
    """The tickets platform as an adopter commits it: its files, what `release init` wrote
    (release.toml, .gitignore, the release workflow pinned to `uses`), the production config
    and the model lock `release model pin` wrote."""
    project = copy_platform(dest)
    git = ["git", "-c", "user.name=adopter", "-c", "user.email=adopter@example.invalid"]
    git += ["-C", str(project)]
    subprocess.run([*git, "remote", "add", "origin", f"https://github.com/{ADOPTER}"], check=True)
    init = run_cli(*INIT, "--action-ref", uses, "--json", cwd=project)
    assert init.code == 0, init.stderr
    assert json.loads(init.stdout)["action_ref"] == uses
    (project / "release.prod.toml").write_text(PROD_CONFIG)
    pin = run_cli("model", "pin", "--config", "release.prod.toml", cwd=project)
    assert pin.code == 0, pin.stderr
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run(
        [*git, "commit", "-q", "-m", "release init, production config, model lock"], check=True
    )
    return project


@pytest.fixture(scope="module")
def adopter(
    moto_url: str, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdopterRun]:
    root = tmp_path_factory.mktemp("act-adopter")
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    uses = f"{REPOSITORY}@{sha}"
    action = copy_tracked(REPO, root / "action")
    project = adopter_repository(root / "tickets", uses)
    (root / "run").mkdir()
    w = WorkflowRun(
        root / "run",
        moto_url,
        base_image,
        project=project,
        github_repository=ADOPTER,
        traffic=TRAFFIC,
        metrics_function=None,
        actions={uses: action},
        act_cache=root / "act",  # a runner whose tool cache starts empty
    )
    w.hooks["build"] = lambda w: w.mirror_to_ecr_api()
    try:
        w.start()
        first = w.run()
        first_roles = list(w.sts.calls)
        w.hooks.clear()
        second = w.run("-j", "build") if first.code == 0 else first
        times = {
            job: step_seconds(first.log, job, f"Main {uses}") for job in JOBS if job in first.jobs
        }
        print(
            f"\nadopter workflow under act: {first.seconds:.1f} s, jobs {first.jobs}; "
            f"the Action per job {times}; second run (build): {second.seconds:.1f} s, "
            f"the Action {step_seconds(second.log, 'build', f'Main {uses}')}"
        )
        yield AdopterRun(w, uses, first, second, first_roles)
    finally:
        w.close()


def action_lines(res: ActResult, job: str) -> list[str]:
    return re.findall(rf"^\[{job}\]\s+\|\s+(lambda-release: .*)$", res.log, re.M)


def test_every_job_succeeds_with_release_from_the_actions_venv(adopter: AdopterRun) -> None:
    w, res = adopter.w, adopter.first
    assert res.code == 0, res.log[-6000:]
    assert res.jobs == dict.fromkeys(JOBS, "succeeded")
    # nothing but the Action puts `release` on the jobs' PATH
    assert shutil.which("release", path=HOST_PATH) is None
    assert not (w.origin / ".venv").exists()
    venvs = w.act_cache / "tool_cache" / "lambda-release"
    for job in JOBS:
        lines = action_lines(res, job)
        m = re.search(
            r"release 0\.1\.0 on PATH: (\S+)/bin/release -> (\S+)/venv/bin/release$", lines[-1]
        )
        assert m and Path(m.group(1)).parent == venvs and m.group(1) == m.group(2), lines
        assert f"[{job}]   ⚙  ::add-path:: {m.group(1)}/bin" in res.log
    # the first job installed it, hash-checked, from the Action's own checkout
    build = "\n".join(action_lines(res, "build"))
    assert "1/3 the installer: uv==" in build and "release/runtime.lock (hash-checked" in build
    for job in JOBS[1:]:
        assert any("nothing to install" in ln for ln in action_lines(res, job)), job


def test_each_job_assumed_its_role_with_its_own_sub(adopter: AdopterRun) -> None:
    """The documented trust policies, for the adopter's repository, hold for its jobs."""
    push = (PUSH_ROLE, f"repo:{ADOPTER}:ref:refs/heads/main", True)
    promote = (PROMOTE_ROLE, f"repo:{ADOPTER}:environment:production", True)
    assert sorted(adopter.first_roles) == sorted([push, push, push, promote])


def test_the_release_verifies_from_a_fresh_clone(adopter: AdopterRun, tmp_path: Path) -> None:
    w = adopter.w
    digest = w.digest
    assert f"[build]   ⚙  ::set-output:: digest={digest}" in adopter.first.log
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(w.origin), str(clone)], check=True)
    v = run_cli("verify", digest, "--env", "prod", "--json", cwd=clone, env=w.cli_env())
    assert v.code == 0, v.stderr + v.stdout
    checks = {c["name"]: c["ok"] for c in json.loads(v.stdout)["checks"]}
    assert checks and all(checks.values()), checks
    for name in ("attestation provenance", "attestation canary", "attestation promotion"):
        assert name in checks
    st = run_cli("status", "--env", "prod", "--json", cwd=clone, env=w.cli_env())
    assert st.code == 0, st.stderr
    doc = json.loads(st.stdout)
    assert doc["digest"] == digest and doc["drift"] == []
    assert {f: s["function"] for f, s in doc["functions"].items()} == FUNCTIONS
    lam = boto(w.moto_url, "lambda")
    for fn in FUNCTIONS.values():
        alias = lam.get_alias(FunctionName=fn, Name="live")
        code = lam.get_function(FunctionName=fn, Qualifier=alias["FunctionVersion"])["Code"]
        assert code["ImageUri"] == f"{ECR_HOST}/tickets@{digest}", fn


def test_a_second_run_reuses_the_cached_venv(adopter: AdopterRun) -> None:
    res = adopter.second
    assert res.code == 0 and res.jobs == {"build": "succeeded"}, res.log[-6000:]
    lines = action_lines(res, "build")
    assert any("nothing to install" in ln for ln in lines), lines
    assert not any("installing into" in ln for ln in lines), lines
    # same commit, same image
    assert f"[build]   ⚙  ::set-output:: digest={adopter.w.digest}" in res.log
