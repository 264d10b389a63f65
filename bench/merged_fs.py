"""Reading the files of a real image: the merged view against the per-layer reads it replaced.

    .venv/bin/python bench/merged_fs.py [--runs N] [--image oci:DIR@sha256:...]

Builds the example platform's image (the mmdebstrap Debian base of the tests, cached,
plus `release build`; or takes --image) and times, in this process, median of N runs:

  per-layer (old)   what `release verify` did before: every blob re-hashed from its
                    file, then the model layer unpacked to a temporary directory
                    (each model blob read twice, the rest once)
  merged (verify)   `release.claims.merged_view`: every blob streamed once, hashed as it
                    is read, all layers applied (the model directory hashed, the lock
                    and the deps' METADATA kept); an empty layer scan cache each run
  merged (sbom)     `release.sbom._scan`: the same plus the workdir hashed and dpkg's
                    status + every copyright file kept
  merged (invoke)   `release.canary.offline.extract_merged` with /opt/deps: the model,
                    lock, workdir and deps written to disk

Prints seconds and the ratio to the per-layer read.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def build(tmp: Path) -> tuple[Path, str]:
    from tests.fixtures.docker import make_rootfs
    from tests.fixtures.tools import copy_project

    project = copy_project(tmp / "project")
    env = {**os.environ, "RELEASE_CACHE_DIR": str(tmp / "cache"), "SOURCE_DATE_EPOCH": "1700000000"}
    cli = [sys.executable, "-m", "release"]
    base = subprocess.run(
        [*cli, "base", "--rootfs", str(make_rootfs()), "--out", f"oci:{tmp / 'base'}"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    env["RELEASE_BASE"] = base.stdout.strip().splitlines()[-1]
    out = subprocess.run(
        [*cli, "build", "--json"], cwd=project, env=env, capture_output=True, text=True, check=True
    )
    return project, json.loads(out.stdout)["ref"]


def median(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--image", help="oci:DIR@sha256:... (default: build the example image)")
    a = ap.parse_args()
    from release.canary.offline import extract_merged
    from release.claims import merged_view
    from release.config import load as load_config
    from release.digest import parse_reference
    from release.image.inspect import local_blob, open_image
    from release.image.registry import open_registry
    from release.sbom import _scan

    with tempfile.TemporaryDirectory(prefix="bench-merged-") as t:
        tmp = Path(t)
        project, ref = (REPO, a.image) if a.image else build(tmp)
        cfg = load_config(project / "release.toml")
        r = parse_reference(ref)
        reg = open_registry(r.repository or cfg.image.registry, project)
        image = open_image(reg, r.digest)

        def old() -> None:
            for la in image.layers:
                with local_blob(reg, la.digest):
                    pass
            with tempfile.TemporaryDirectory(dir=tmp) as d:
                image.extract(["model"], Path(d))

        def invoke() -> None:
            with tempfile.TemporaryDirectory(dir=tmp) as d:
                extract_merged(cfg, image, Path(d), where="bench", extra=["opt/deps"])

        def cold(fn: Callable[[], object]) -> Callable[[], object]:
            def run() -> object:  # an empty layer scan cache each time (issue 27.1)
                os.environ["RELEASE_CACHE_DIR"] = tempfile.mkdtemp(dir=tmp)
                return fn()

            return run

        rows = [
            ("per-layer (old verify)", median(old, a.runs)),
            ("merged (verify)", median(cold(lambda: merged_view(cfg, image)), a.runs)),
            ("merged (sbom)", median(cold(lambda: _scan(image, cfg)), a.runs)),
            ("merged (invoke extract)", median(invoke, a.runs)),
        ]
        size = sum(la.size for la in image.layers)
        print(
            f"image: {len(image.layers)} layers, {size / 2**20:.0f} MiB compressed; median of {a.runs} runs"
        )
        print(f"{'read':<28}{'seconds':>9}{'vs old':>9}")
        for name, s in rows:
            print(f"{name:<28}{s:>9.2f}{s / rows[0][1]:>8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
