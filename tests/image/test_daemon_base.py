"""`docker-daemon:NAME@sha256:<image id>` as the base: exported from a real Docker engine,
checked against its ID, and built from; a bare name or a wrong ID is refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def daemon_base(docker_engine: Any, base_image: str, project: Path) -> str:
    """The test base image loaded into the engine; its `docker-daemon:` reference."""
    from release.config import load
    from release.image.docker import load_base
    from release.image.oci import parse_image_ref

    cfg = load(project / "release.toml")
    name = load_base(docker_engine, cfg, parse_image_ref(base_image))
    image_id = docker_engine.images.get(name).id
    return f"docker-daemon:{name}@{image_id}"


def test_build_from_a_daemon_image(
    build_cli: Callable[..., Any], daemon_base: str, docker_host: str, base_image: str
) -> None:
    r, doc = build_cli("--base", daemon_base, env={"DOCKER_HOST": docker_host})
    assert r.code == 0, r.stderr
    assert doc["base"].startswith("oci:") and "docker-daemon" in doc["base"]
    roles = [la["role"] for la in doc["layers"]]
    assert roles[-4:] == ["deps", "model", "policy", "code"] and roles.count("base") >= 1
    # the same engine image exported again (cache hit) gives the same image
    r2, doc2 = build_cli("--base", daemon_base, env={"DOCKER_HOST": docker_host})
    assert r2.code == 0, r2.stderr
    assert doc2["digest"] == doc["digest"]


def test_bare_daemon_name_is_refused(
    build_cli: Callable[..., Any], daemon_base: str, docker_host: str
) -> None:
    bare = daemon_base.rpartition("@")[0]
    r, doc = build_cli("--base", bare, env={"DOCKER_HOST": docker_host})
    assert r.code == 2
    assert "is not pinned" in r.stderr and doc["exit_code"] == 2


def test_daemon_name_with_another_id_is_refused(
    build_cli: Callable[..., Any], daemon_base: str, docker_host: str
) -> None:
    wrong = daemon_base.rpartition("@")[0] + "@sha256:" + "0" * 64
    r, _ = build_cli("--base", wrong, env={"DOCKER_HOST": docker_host})
    assert r.code == 1
    assert "not the pinned sha256:" + "0" * 64 in r.stderr


def test_engine_down_exits_3(
    build_cli: Callable[..., Any], daemon_base: str, tmp_path: Path
) -> None:
    other_cache = tmp_path / "cache"  # no cached export: the engine must be asked
    r, doc = build_cli(
        "--base",
        daemon_base,
        env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock", "RELEASE_CACHE_DIR": str(other_cache)},
    )
    assert r.code == 3, r.stderr
    assert doc is not None and doc["exit_code"] == 3
    assert "Docker engine" in r.stderr
