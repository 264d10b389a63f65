#!/usr/bin/env python3
"""Pin-verify throughput on a 1 GiB model directory, next to sha256sum and openssl.

Makes (once) bench/.work/model-1g: four 256 MiB weight shards plus small files, a lock
for it, then times, with a warm page cache, median of --runs:
  - `release model verify` (the library call verify_dir: parallel over files, each byte
    read once), and the whole CLI process
  - `sha256sum FILES...` (one process)
  - `openssl dgst -sha256 FILES...` (one process)
and prints one table with MiB/s and the ratio to openssl.

Usage: .venv/bin/python bench/hashing.py [--size-mib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from release import modelpin  # noqa: E402
from release._io import atomic_write_bytes, hash_file  # noqa: E402


def make_model(d: Path, size_mib: int) -> modelpin.ModelLock:
    shards = 4
    shard = size_mib * 2**20 // shards
    files = {f"model-{i:05d}-of-{shards:05d}.safetensors": shard for i in range(shards)}
    files |= {"config.json": 700, "tokenizer.json": 700_000}
    d.mkdir(parents=True, exist_ok=True)
    locked = []
    for name, size in sorted(files.items()):
        p = d / name
        if not p.exists() or p.stat().st_size != size:
            block = hashlib.sha256(name.encode()).digest() * (2**20 // 32)
            with open(p, "wb") as f:
                left = size
                while left:
                    n = min(left, len(block))
                    f.write(block[:n])
                    left -= n
        locked.append(modelpin.LockedFile(path=name, size=size, sha256=_sha(p)))
    return modelpin.ModelLock(
        schema=1,
        source="local",
        repo="bench/model-1g",
        revision="main",
        commit="0" * 40,
        files=sorted(locked, key=lambda f: modelpin.path_key(f.path)),
        digest=modelpin.root_digest(locked),
    )


def _sha(p: Path) -> str:
    return hash_file(p)[1]


def timed(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm the page cache
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    work = ROOT / "bench/.work"
    d = work / "model-1g"
    lock = make_model(d, args.size_mib)
    proj = work / "hashproj"
    (proj / "model").mkdir(parents=True, exist_ok=True)
    (proj / "release.toml").write_text(
        '[model]\npath = "../model-1g"\n[image]\nbase = "oci:b@sha256:' + "0" * 64 + '"\n'
        '[functions]\na = "handlers.a.h"\n'
    )
    atomic_write_bytes(proj / "model/model.lock.json", modelpin.lock_bytes(lock))
    paths = [str(d / f.path) for f in lock.files]
    total = sum(f.size for f in lock.files) / 2**20

    def ours() -> None:
        assert modelpin.verify_dir(d, lock, progress=False).ok

    release_bin = str(Path(sys.executable).with_name("release"))

    def ours_cli() -> None:
        subprocess.run(
            [release_bin, "model", "verify", str(d)], cwd=proj, check=True, capture_output=True
        )

    def sha256sum() -> None:
        subprocess.run(["sha256sum", *paths], check=True, capture_output=True)

    def openssl() -> None:
        subprocess.run(["openssl", "dgst", "-sha256", *paths], check=True, capture_output=True)

    rows = [
        ("release verify (library)", timed(ours, args.runs)),
        ("release model verify (CLI process)", timed(ours_cli, args.runs)),
        ("sha256sum (one process)", timed(sha256sum, args.runs)),
        ("openssl dgst -sha256 (one process)", timed(openssl, args.runs)),
    ]
    base = dict(rows)["openssl dgst -sha256 (one process)"]
    print(
        f"model: {len(lock.files)} files, {total:.0f} MiB, {os.cpu_count()} cores, median of {args.runs} warm runs"
    )
    print(f"{'tool':40} {'seconds':>8} {'MiB/s':>8} {'vs openssl':>11}")
    for name, t in rows:
        print(f"{name:40} {t:8.3f} {total / t:8.0f} {base / t:10.2f}x")
    if "--keep" not in sys.argv:
        shutil.rmtree(proj, ignore_errors=True)


if __name__ == "__main__":
    main()
