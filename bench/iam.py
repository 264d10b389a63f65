"""`release iam --function NAME` for every function of the example and of the second
platform, and `release iam --job NAME` for every job of the workflow (this repository's
.github/workflows/release.yml) over both, measured as a user runs it (a fresh process each:
start-up, config, the ast analysis of the package or the workflow, botocore's models, the
shipped IAM data) - target <= 2 s each.

    .venv/bin/python bench/iam.py [--runs 5]

Prints a table (median and max of the runs per function); the numbers go to
bench/RESULTS.md with this command.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.tools import copy_project  # noqa: E402
from tests.unit.test_iam import CONFIG, TICKETS_CONFIG  # noqa: E402

TARGET = 2.0


def _time(project: Path, kind: str, name: str) -> float:
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "release", "iam", kind, name, "--env", "prod"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise SystemExit(f"release iam {kind} {name}: {p.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    runs = ap.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="bench-iam-") as tmp:
        example = copy_project(Path(tmp) / "example")
        (example / "release.toml").write_text(CONFIG)
        tickets = Path(tmp) / "tickets"
        shutil.copytree(REPO / "tests" / "platforms" / "tickets", tickets)
        (tickets / "release.toml").write_text(TICKETS_CONFIG)
        for p in (example, tickets):
            (p / ".github" / "workflows").mkdir(parents=True)
            shutil.copy(REPO / ".github" / "workflows" / "release.yml", p / ".github" / "workflows")
        fns = ("analysis", "onboarding", "scorer", "remediator")
        jobs = ("build", "attest", "canary", "promote")
        rows = [(f"example {f}", example, "--function", f) for f in fns]
        rows += [(f"tickets {f}", tickets, "--function", f) for f in ("classify", "health")]
        rows += [(f"example job {j}", example, "--job", j) for j in jobs]
        rows += [(f"tickets job {j}", tickets, "--job", j) for j in jobs]
        print(f"release iam --function/--job NAME --env prod, {runs} runs each (fresh process)")
        print(f"{'function or job':<24}{'median s':>10}{'max s':>9}{'max/target':>12}")
        worst = 0.0
        for label, project, kind, name in rows:
            times = [_time(project, kind, name) for _ in range(runs)]
            worst = max(worst, max(times))
            print(
                f"{label:<24}{statistics.median(times):>10.2f}{max(times):>9.2f}"
                f"{max(times) / TARGET:>12.2f}"
            )
        print(f"worst: {worst:.2f} s ({'within' if worst <= TARGET else 'OVER'} the target)")
        return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
