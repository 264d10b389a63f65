"""Image test fixtures: a project copy to build from, one shared layer cache, one build
pushed to the real registry (shared by the read-back tests)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tools import copy_project, run_cli

EPOCH = "1700000000"


@pytest.fixture(scope="session")
def layer_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RELEASE_CACHE_DIR for the session: pip runs once, the model is fetched once."""
    return tmp_path_factory.mktemp("release-cache")


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("proj") / "p")


@pytest.fixture(scope="session")
def build_env(base_image: str, layer_cache: Path) -> dict[str, str]:
    return {
        "RELEASE_BASE": base_image,
        "RELEASE_CACHE_DIR": str(layer_cache),
        "SOURCE_DATE_EPOCH": EPOCH,
    }


@pytest.fixture(scope="session")
def build_cli(project: Path, build_env: dict[str, str]) -> Callable[..., Any]:
    """Run `release build ARGS --json` in the project; returns (Result, doc or None)."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
        r = run_cli("build", *args, "--json", cwd=cwd or project, env={**build_env, **(env or {})})
        doc = json.loads(r.stdout) if r.stdout.strip() else None
        return r, doc

    return run


@pytest.fixture(scope="session")
def pushed(build_cli: Callable[..., Any], registry: str) -> dict[str, Any]:
    """One image pushed to the real registry: its --json document."""
    r, doc = build_cli("--push", f"{registry}/platform")
    assert r.code == 0, r.stderr
    return dict(doc)


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}
