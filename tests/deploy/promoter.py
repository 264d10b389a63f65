"""A promoter process for the deploy tests (a second promoter, or one that gets killed).

`python -m tests.deploy.promoter CONFIG DIGEST [--hold-canary]` promotes DIGEST to `prod`
with the tests' evidence provider (a Python argument, as in-process tests pass it) and
exits like the CLI: 0 and `promoted DIGEST` on stdout, or `release: error: ...` on stderr
and the error's exit code. `--hold-canary`: the live canary's watch prints `canary` on
stdout and then waits for stdin to close - the test kills the process there.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from release.config import load
from release.deploy.lambda_ import LambdaTarget
from release.digest import parse_reference
from release.errors import ReleaseError
from release.promote import promote
from tests.deploy.conftest import file_provider


def _hold(shifts: Any, on_step: Any = None) -> None:
    print("canary", flush=True)
    sys.stdin.read()  # the test kills us while we wait here
    raise SystemExit(9)


def main(argv: list[str]) -> int:
    cfg = load(Path(argv[0]))
    ref = parse_reference(argv[1])
    target = LambdaTarget(cfg, "prod", watch=_hold) if "--hold-canary" in argv[2:] else None
    try:
        res = promote(cfg, ref, "prod", file_provider, target=target, actor="promoter")
    except ReleaseError as exc:
        print(f"release: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    print(f"promoted {res.digest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
