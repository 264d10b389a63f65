"""Deploy targets: put one digest live on every function of an environment, or nothing.

A `Target` moves all of an environment's functions to `REPO@DIGEST` together and, on any
failure part-way, puts every function back where it was before raising. Each step is
reported through `on_step` so that the promotion records it in the ledger.

- `lambda` (`release.deploy.lambda_`): update code + CMD, wait, publish a version, move the
  alias; rollback of every function on any failure.
- `local` (`release.deploy.local`): nothing to move; the environment's live digest is the
  one the ledger records (`release invoke` runs it from the image's own layers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from release.config import Config
from release.digest import Reference

#: on_step(action, detail): called for every step (recorded in the ledger)
StepCallback = Callable[[str, dict[str, str]], None]


@dataclass(frozen=True)
class Route:
    """One version an alias sends traffic to, and what that version really runs: the
    digest resolved through the version's image (None: it cannot be told, `problem` says
    why) and its CMD."""

    version: str
    weight: float
    digest: str | None
    command: tuple[str, ...] = ()
    problem: str = ""


@dataclass(frozen=True)
class FunctionState:
    name: str  # the function's name in [functions]
    target_name: str  # its name on the target (Lambda function name)
    version: str | None = None
    image_uri: str | None = None
    #: lambda: every version the alias routes to (the alias's own version first)
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True)
class DeployResult:
    reference: str
    functions: tuple[FunctionState, ...] = field(default_factory=tuple)
    #: the pre-traffic check's result (lambda, `[canary.pretraffic]`), for the predicate
    pretraffic: dict[str, Any] | None = None
    #: what the live canary saw (lambda, `traffic.bake_seconds > 0`), for the predicate
    live_canary: dict[str, Any] | None = None

    def versions(self) -> dict[str, str]:
        return {f.name: f.version or "" for f in self.functions}


class Target(Protocol):
    kind: str

    def deploy(self, ref: Reference, on_step: StepCallback) -> DeployResult: ...

    def live(self) -> list[FunctionState]: ...


def target_for(cfg: Config, env: str, *, client: Any = None) -> Target:
    """The deploy target `[environments.ENV].target` names."""
    e = cfg.environment(env)
    if e.target == "lambda":
        from release.deploy.lambda_ import LambdaTarget

        return LambdaTarget(cfg, env, client=client)
    from release.deploy.local import LocalTarget

    return LocalTarget(cfg, env)
