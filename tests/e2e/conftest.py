"""Shared by the evidence and fuzz tests: one real `release pipeline` run per session."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.tools import copy_project, run_cli

#: a second local environment the tests promote to (nothing live there after the pipeline)
STAGING = """
[environments.staging]
target = "local"
functions = { scorer = "scorer", remediator = "remediator", onboarding = "onboarding", analysis = "analysis" }
"""


@pytest.fixture(scope="session")
def evidence_release(base_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example project through `release pipeline` (built, attested, canaried, gated,
    promoted to `local`, promotion signed). Tests work on copies of it."""
    project = copy_project(tmp_path_factory.mktemp("evidence") / "project", git=True)
    with open(project / "release.toml", "a") as f:
        f.write(STAGING)
    env = {"RELEASE_BASE": base_image, "RELEASE_CACHE_DIR": str(project / ".cache")}
    r = run_cli("pipeline", "--json", cwd=project, env=env)
    assert r.code == 0, r.stderr
    return {"project": project, "env": env, "digest": json.loads(r.stdout)["digest"]}
