"""Benchmark: `release build` (native) against `docker build` of the equivalent Dockerfile.

One run, same inputs (a copy of this repo's release.toml, handlers/, policy/ and the
example model plus a random `--model-mb` weights file, pinned in the copy):

  1. native clean build   (empty layer cache; uv's own wheel cache may be warm)
  2. native rebuild       after a one-line change in a handler
  3. native clean build   again, in another directory with another empty cache -> same digest?
  3b. native build      with only the deps layer cached and the model fetched (what
                         docker's prepared context has): packs model, policy, code
  4. docker build         of the generated Dockerfile; the context preparation (uv, .pyc,
                          model: what the native clean build also does) timed separately
  5. docker build         again with nocache -> same image id?
  6. end to end, both pushing to a local docker-registry from an empty cache (uv, model
     fetch, build, compress, push): `release build --push` vs `release build --backend
     docker --push` (docker compresses at push time)

and the image's size (27.3, the weights once) from the native clean build: uncompressed
bytes of base + deps + model + policy + code against base + deps + ONE copy of the pinned
model (+ policy + code), and what shipping the source ONNX beside the runtime model
(before 27.3) would add.

--weights-in onnx (default): the --model-mb go into the example ONNX itself (embedding rows
no token reaches, model/examples/generate.py --pad-mb), so the runtime model the build
derives carries them too, as a real model's do; file: a separate random weights.bin next
to it (what this bench used before).

Needs: mmdebstrap (the base rootfs is cached under ~/.cache/release-tests/), dockerd (a
private one is started and stopped). Run:

    .venv/bin/python bench/build.py [--model-mb 256] [--weights-in onnx|file] [--size-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.docker import make_rootfs  # noqa: E402
from tests.image.conftest import copy_project  # noqa: E402


def run(*args: str, cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "release", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    dt = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"release {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return dt, p.stdout.strip().splitlines()[-1]


def project(dest: Path, model_mb: int, weights_in: str = "file") -> Path:
    p = copy_project(dest)
    if model_mb and weights_in == "onnx":
        model = p / "model" / "examples" / "sst2-tiny"
        subprocess.run(
            [
                sys.executable,
                str(p / "model" / "examples" / "generate.py"),
                "--out",
                str(model),
                "--pad-mb",
                str(model_mb),
            ],
            check=True,
            capture_output=True,
        )
    elif model_mb:
        big = p / "model" / "examples" / "sst2-tiny" / "onnx" / "weights.bin"
        with open(big, "wb") as f:
            rnd = __import__("random").Random(42)
            for _ in range(model_mb):
                f.write(rnd.randbytes(1 << 20))
        toml = (p / "release.toml").read_text()
        (p / "release.toml").write_text(
            toml.replace('"onnx/model.onnx"]', '"onnx/model.onnx", "onnx/weights.bin"]')
        )
    return p


def size_report(proj: Path, ref: str, mb: int) -> None:
    """The image's uncompressed size against base + deps + one copy of the pinned model."""
    from release import modelpin
    from release.image.inspect import open_image
    from release.image.layers import gunzip_size
    from release.image.registry import open_registry

    loc, _, digest = ref.rpartition("@")
    reg = open_registry(loc, proj)
    img = open_image(reg, digest)  # type: ignore[arg-type]
    by_role: dict[str, int] = {}
    for la in img.layers:
        by_role[la.role] = by_role.get(la.role, 0) + gunzip_size(reg.blob_path(la.digest))
    lock = modelpin.read_lock(proj / "model" / "model.lock.json")
    model_files = {p: n for p, n, _ in img.iter_files("model")}
    runtime = sum(n for p, n in model_files.items() if "/runtime/" in p)
    one = by_role["base"] + by_role["deps"] + lock.total_size
    rest = by_role.get("policy", 0) + by_role.get("code", 0)
    image = sum(by_role.values())
    src = lock.by_path().get("onnx/model.onnx")
    twice = image + (src.size if src is not None and runtime else 0)
    rows = [
        ("base", by_role["base"]),
        ("deps", by_role["deps"]),
        ("one copy of the pinned model (lock total)", lock.total_size),
        ("policy + code", rest),
        ("= base + deps + one model + policy + code", one + rest),
        ("image (every layer, uncompressed tar)", image),
        ("  of which model layer (tar)", by_role["model"]),
        ("  of which runtime model files", runtime),
        ("image before 27.3 (source ONNX shipped too)", twice),
    ]
    print(f"\nimage size vs base + deps + one model copy  (example + {mb} MiB of weights)\n")
    print(f"{'':<46} {'MiB':>9} {'x one copy':>11}")
    for label, n in rows:
        print(f"{label:<46} {n / 2**20:>9.1f} {n / (one + rest):>11.3f}")
    print(
        f"\nmodel bytes in the image: {sum(model_files.values()) / 2**20:.1f} MiB for a "
        f"{lock.total_size / 2**20:.1f} MiB model "
        f"({sum(model_files.values()) / lock.total_size:.3f} copies)"
    )


def start_registry(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    from tests.fixtures.tools import free_port

    port = free_port()
    cfg = work / "registry.yml"
    cfg.write_text(
        "version: 0.1\nlog: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {work / 'registry'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    import urllib.request

    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"127.0.0.1:{port}"


def start_dockerd() -> tuple[subprocess.Popen[bytes], str, str]:
    name = "rb-" + uuid.uuid4().hex[:8]
    sock = f"/tmp/{name}.sock"
    proc = subprocess.Popen(
        [
            "dockerd",
            "--host",
            f"unix://{sock}",
            "--data-root",
            f"/tmp/{name}",
            "--exec-root",
            f"/tmp/{name}-x",
            "--pidfile",
            f"/tmp/{name}.pid",
            "--bridge=none",
            "--iptables=false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import docker

    for _ in range(300):
        try:
            docker.DockerClient(base_url=f"unix://{sock}").ping()
            break
        except Exception:  # not up yet
            time.sleep(0.1)
    return proc, f"unix://{sock}", name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-mb", type=int, default=256)
    ap.add_argument("--weights-in", choices=("onnx", "file"), default="onnx")
    ap.add_argument(
        "--size-only", action="store_true", help="one native build and the size report only"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="release-bench-"))
    proc = reg_proc = None
    try:
        rootfs = make_rootfs()
        _, base = run(
            "base", "--rootfs", str(rootfs), "--out", f"oci:{work / 'base'}", cwd=work, env={}
        )
        env = {"RELEASE_BASE": base, "SOURCE_DATE_EPOCH": "1700000000"}
        p1 = project(work / "a" / "p", args.model_mb, args.weights_in)
        run("model", "pin", cwd=p1, env={**env, "RELEASE_CACHE_DIR": str(work / "c-pin")})
        if args.size_only:
            _, ref = run("build", cwd=p1, env={**env, "RELEASE_CACHE_DIR": str(work / "c0")})
            size_report(p1, ref, args.model_mb)
            return
        p2 = work / "b" / "checkout"
        shutil.copytree(p1, p2)
        env1 = {**env, "RELEASE_CACHE_DIR": str(work / "c1")}
        env2 = {**env, "RELEASE_CACHE_DIR": str(work / "c2")}
        t_clean, d_clean = run("build", cwd=p1, env=env1)
        size_report(p1, d_clean, args.model_mb)
        with open(p1 / "handlers" / "scorer.py", "a") as f:
            f.write("# one-line change\n")
        t_re, d_re = run("build", cwd=p1, env=env1)
        t_clean2, d_clean2 = run("build", cwd=p2, env=env2)
        # like docker's "context ready": deps installed and model fetched, nothing packed
        c5 = work / "c5"
        shutil.copytree(work / "c2", c5)
        for k in (c5 / "layers" / "keys").glob("*.json"):
            if '"role": "deps"' not in k.read_text():
                k.unlink()
        t_nopip, d_nopip = run("build", cwd=p2, env={**env, "RELEASE_CACHE_DIR": str(c5)})
        assert d_nopip.rpartition("@")[2] == d_clean2.rpartition("@")[2]

        # docker build of the equivalent Dockerfile, same inputs
        proc, host, name = start_dockerd()
        os.environ["DOCKER_HOST"] = host
        from release import config as cfgmod
        from release import modelpin
        from release.image import docker as dk
        from release.image import engine
        from release.image.build import base_ref

        os.environ.update(env2)
        cfg = cfgmod.load(p2 / "release.toml")
        lock = modelpin.read_lock(cfg.lock_path)
        client = engine.client()
        base_name = dk.load_base(client, cfg, base_ref(cfg))
        ctx = work / "ctx"
        ctx.mkdir()
        t = time.perf_counter()
        dk.prepare_context(cfg, lock, ctx)  # what native's clean build also does: uv, .pyc, model
        t_ctx = time.perf_counter() - t
        (ctx / "Dockerfile").write_text(dk.dockerfile(cfg, base_name, lock, {}))
        ids, times = [], []
        for i in range(2):
            t = time.perf_counter()
            image, _ = client.images.build(path=str(ctx), tag=f"bench:{i}", nocache=True, rm=True)
            times.append(time.perf_counter() - t)
            ids.append(image.id)
            time.sleep(1.1)  # a later clock for the second build
        reg_proc, reg = start_registry(work)
        env3 = {**env, "RELEASE_CACHE_DIR": str(work / "c3"), "DOCKER_HOST": host}
        env4 = {**env, "RELEASE_CACHE_DIR": str(work / "c4"), "DOCKER_HOST": host}
        t_push, _ = run("build", "--push", f"{reg}/native", cwd=p2, env=env3)
        t_dpush, _ = run(
            "build", "--backend", "docker", "--push", f"{reg}/docker", cwd=p2, env=env4
        )
        mb = args.model_mb
        rows = [
            ("native clean build (incl. uv from its cache)", t_clean, 1.0),
            ("native rebuild after a 1-line handler change", t_re, t_re / t_clean),
            ("native clean build, other dir + empty cache", t_clean2, t_clean2 / t_clean),
            ("native build, deps cached + model fetched (no uv)", t_nopip, t_nopip / t_clean),
            ("docker build, nocache (context ready, no uv)", times[0], times[0] / t_clean),
            ("docker build, nocache, again", times[1], times[1] / t_clean),
            ("docker from scratch: context (uv, .pyc, model)", t_ctx, t_ctx / t_clean),
            (
                "docker from scratch: context + docker build",
                t_ctx + times[0],
                (t_ctx + times[0]) / t_clean,
            ),
            ("end to end + push: release build --push", t_push, t_push / t_clean),
            ("end to end + push: --backend docker --push", t_dpush, t_dpush / t_clean),
        ]
        print(
            f"\nrelease build vs docker build  (model: example + {mb} MiB weights, {os.cpu_count()} cores)\n"
        )
        print(f"{'step':<50} {'seconds':>8} {'x clean':>8}")
        for label, t, r in rows:
            print(f"{label:<50} {t:>8.2f} {r:>8.2f}")
        same = d_clean.rpartition("@")[2] == d_clean2.rpartition("@")[2]
        print(f"\nnative: two clean builds identical: {same} ({d_clean.rpartition('@')[2][:19]})")
        print(f"native: rebuild changed the digest: {d_re != d_clean}")
        print(f"docker: two builds identical: {ids[0] == ids[1]} ({ids[0][:19]} vs {ids[1][:19]})")
        scratch = t_ctx + times[0]
        print(
            f"deps install (27.5): native clean build / docker from scratch = "
            f"{t_clean:.2f} / {scratch:.2f} = {t_clean / scratch:.2f}x "
            f"(target <= 0.5x: {t_clean <= 0.5 * scratch})"
        )
        print(
            f"targets: rebuild <= 10% of clean: {t_re <= 0.1 * t_clean}; "
            f"clean faster than docker from scratch (same inputs, uv included on both sides): "
            f"{t_clean < t_ctx + times[0]} ({(t_ctx + times[0]) / t_clean:.2f}x); "
            f"with the context prepared on both sides: {t_nopip < times[0]} ({times[0] / t_nopip:.2f}x); "
            f"clean native vs bare docker build step: {t_clean < times[0]}; "
            f"end to end faster than docker: {t_push < t_dpush} ({t_dpush / t_push:.2f}x)"
        )
    finally:
        if reg_proc is not None:
            reg_proc.terminate()
            reg_proc.wait(timeout=10)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            subprocess.run(["umount", "-R", f"/tmp/{name}"], capture_output=True)
            shutil.rmtree(f"/tmp/{name}", ignore_errors=True)
            shutil.rmtree(f"/tmp/{name}-x", ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
