"""`release iam --function NAME` for every function of the example and of the second
platform, measured as a user runs it (a fresh process each: start-up, config, the ast
analysis of the package, botocore's models, the shipped IAM data) - target <= 2 s each.

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


def _time(project: Path, function: str) -> float:
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "release", "iam", "--function", function, "--env", "prod"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    if p.returncode != 0:
        raise SystemExit(f"release iam --function {function}: {p.stderr[-2000:]}")
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
        rows = [
            (f"example {f}", example, f) for f in ("analysis", "onboarding", "scorer", "remediator")
        ] + [(f"tickets {f}", tickets, f) for f in ("classify", "health")]
        print(f"release iam --function NAME --env prod, {runs} runs each (fresh process)")
        print(f"{'function':<22}{'median s':>10}{'max s':>9}  target {TARGET} s")
        worst = 0.0
        for label, project, fn in rows:
            times = [_time(project, fn) for _ in range(runs)]
            worst = max(worst, max(times))
            print(f"{label:<22}{statistics.median(times):>10.2f}{max(times):>9.2f}")
        print(f"worst: {worst:.2f} s ({'within' if worst <= TARGET else 'OVER'} the target)")
        return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
