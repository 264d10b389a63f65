"""The Docker engine (DOCKER_HOST, via the docker SDK): one client, one call wrapper that
turns the SDK's exceptions into `RemoteError` (exit 3)."""

from __future__ import annotations

from typing import Any


def client() -> Any:
    """A docker SDK client that answered a ping; RemoteError when the engine is not there."""
    import docker
    import docker.errors

    from release.errors import RemoteError

    try:
        c = docker.from_env(timeout=900)
        c.ping()
    except docker.errors.DockerException as exc:
        raise RemoteError(
            f"Docker engine unreachable ({exc.__class__.__name__}): is dockerd running and "
            "DOCKER_HOST right?"
        ) from None
    return c


def call(what: str, fn: Any, *args: Any, **kw: Any) -> Any:
    """`fn(*args, **kw)`; a docker SDK error -> RemoteError naming `what`."""
    import docker.errors

    from release.errors import RemoteError

    try:
        return fn(*args, **kw)
    except docker.errors.DockerException as exc:
        raise RemoteError(
            f"Docker engine: {what} failed: {str(exc).splitlines()[0][:300]}"
        ) from None
