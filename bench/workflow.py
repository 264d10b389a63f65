"""The release workflow under act: one whole run (build -> attest -> canary -> promote)
against the local stand-ins of tests/workflows/act_run.py, timed per job and per step.

    .venv/bin/python bench/workflow.py

Prints a table: each job's wall time with its share of the run, the steps that take
longer than a second, and the total against the 5-minute budget. Also reports the load
average, since the machine is shared.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fixtures.docker import make_rootfs
from tests.fixtures.tools import free_port, run_cli, wait_for_http
from tests.workflows.act_run import WorkflowRun

BUDGET = 300.0
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9}


def seconds(go: str) -> float:
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"([\d.]+)(h|ms|µs|ns|m|s)", go))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-workflow-") as tmp:
        root = Path(tmp)
        port = free_port()
        log = root / "moto.log"
        moto = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("moto_server")),
                "-H",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            stdout=open(log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_LAMBDA_STUB_ECR": "false"},
        )  # as tests/fixtures/aws.py
        url = f"http://127.0.0.1:{port}"
        try:
            for attempt in range(6):  # a loaded machine starts moto slowly
                try:
                    wait_for_http(url + "/moto-api/", moto, log, "moto_server")
                    break
                except RuntimeError:
                    if attempt == 5 or moto.poll() is not None:
                        raise
            r = run_cli("base", "--rootfs", make_rootfs(), "--out", f"oci:{root / 'base'}")
            if r.code != 0:
                print(r.stderr, file=sys.stderr)
                return 1
            base = r.stdout.strip().splitlines()[-1]
            w = WorkflowRun(root / "run", url, base)
            (root / "run").mkdir()
            w.hooks["build"] = lambda w: w.mirror_to_ecr_api()
            w.start()
            load0 = os.getloadavg()[0]
            try:
                res = w.run()
            finally:
                w.close()
            load1 = os.getloadavg()[0]
        finally:
            moto.terminate()
            moto.wait()
    steps: list[tuple[str, str, float]] = []
    for m in re.finditer(r"^\[(\w+)\]\s+✅\s+Success - Main (.*?) \[([^\]]+)\]$", res.log, re.M):
        steps.append((m.group(1), m.group(2)[:60], seconds(m.group(3))))
    jobs: dict[str, float] = {}
    for job, _, s in steps:
        jobs[job] = jobs.get(job, 0.0) + s
    print(f"release workflow under act (host mode), exit {res.code}, jobs {res.jobs}")
    print(f"load average 1 min: {load0:.1f} at start, {load1:.1f} at end (2 cores)")
    print(f"{'job':<10}{'step':<62}{'seconds':>9}")
    for job, name, s in steps:
        if s >= 1.0:
            print(f"{job:<10}{name:<62}{s:9.1f}")
    print()
    print(f"{'job':<10}{'steps (s)':>10}{'share':>8}")
    total_steps = sum(jobs.values())
    for job, s in jobs.items():
        print(f"{job:<10}{s:10.1f}{s / total_steps:8.0%}")
    setup = sum(s for _, name, s in steps if name == "./")
    print(f"\nthe Action (`uses: ./`: install or cached venv) in all jobs: {setup:.1f} s")
    print(
        f"whole run (act start to exit): {res.seconds:.1f} s = {res.seconds / BUDGET:.2f}x the {BUDGET:.0f} s budget"
    )
    return 0 if res.code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
