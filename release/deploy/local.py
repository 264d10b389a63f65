"""The `local` target: the environment's live digest is the one the ledger records.

There is nothing to move: promoting writes the ledger event (done by `release.promote`)
and `release invoke FUNCTION --env ENV EVENT.json` runs the function from the promoted
image's own layers.
"""

from __future__ import annotations

from release.config import Config
from release.deploy import DeployResult, FunctionState, StepCallback
from release.digest import Reference


class LocalTarget:
    kind = "local"

    def __init__(self, cfg: Config, env: str) -> None:
        self.cfg = cfg
        self.env = env
        e = cfg.environment(env)
        self.functions = dict(e.functions) or {name: name for name in cfg.functions}

    def deploy(self, ref: Reference, on_step: StepCallback) -> DeployResult:
        fns = tuple(
            FunctionState(name, target, version=ref.digest, image_uri=str(ref))
            for name, target in sorted(self.functions.items())
        )
        return DeployResult(str(ref), fns)

    def live(self) -> list[FunctionState]:
        from release.ledger import open_ledger

        cur = open_ledger(self.cfg).current(self.env)
        return [
            FunctionState(name, target, version=cur.digest if cur else None,
                          image_uri=cur.evidence.get("reference") if cur else None)
            for name, target in sorted(self.functions.items())
        ]
