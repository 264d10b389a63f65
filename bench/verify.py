"""Offline verification of an image with 5 attestations, end to end including process start.

    .venv/bin/python bench/verify.py [--runs N] [--big-mib 1024] [--no-small]

Part 1 (verify speed, issue 27.1): `release verify` against `gzip -dc` of the same layer
blobs, each in a fresh process, in one run, on two images built here (5 layers, key-signed
attestations, every claim passes):

  quickstart-like  ~160 MiB of gzip layers (~440 MiB inflated), the shape of the quickstart
                   image: a base of ~4,000 small text files (~60 MiB), a layer of 384 MiB
                   of binary data (deflating ~2.5x, as shared objects do), the small
                   deps, policy and code layers
  big              the same with --big-mib MiB of binary data (default 1024: a 1.1 GiB
                   image, ~450 MiB of gzip; 0 skips it; building it takes about a
                   minute, its rows about two more on a 2-core machine)

  gzip -dc         `gzip -dc BLOB... > /dev/null` over the image's layer blobs
  cold             `release verify D --offline` with an empty scan cache
                   (RELEASE_CACHE_DIR, a new one per run; bytecode already compiled)
  warm             the same, the scan cache filled by a previous run

Prints median wall and CPU (user + sys of the child) seconds and each verify's ratio to
gzip -dc (targets: cold <= 0.6x, warm <= 0.25x).

Part 2 (--no-small skips it): the small image of tests/attest:

Builds a small 5-layer image in a temporary OCI layout (the test image of
tests/attest), attaches 5 key-signed bundles (provenance, SBOM, model signature,
canary, promotion) as referrers, then times, each from a fresh process:

  release verify   `release verify sha256:D --offline` in a project whose release.toml
                   points at that layout and key: every claim (layers re-hashed, the 5
                   bundles verified, SBOM vs layers, provenance, model lock, ledger)
  library   `python bench/verify.py --inner ...`: open the layout, fetch the 5 referrers,
            verify each (signature, subject == digest, predicate type) with
            release.attest.signatures.verify_stored - what `release verify` runs
  cli x5    5 x `release verify-bundle --bundle F --key PUB sha256:D` (5 CLI starts)
  cli x1    1 x `release verify-bundle` (one bundle, for the per-process cost)

Target: < 1 s for the whole image. Prints median seconds and the ratio to the target.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TYPES = [
    "https://slsa.dev/provenance/v1",
    "https://cyclonedx.org/bom",
    "https://model_signing/signature/v1.0",
    "https://github.com/release-platform/release/attestations/canary-report/v2",
    "https://github.com/release-platform/release/attestations/promotion/v1",
]


def inner(root: str, digest: str, pub: str) -> int:
    from release.attest.signatures import Policy, verify_stored
    from release.image.registry import open_registry

    reg = open_registry("oci:reg", Path(root))
    pol = Policy.from_key_file(Path(pub))
    from release.attest import statements
    from release.image.inspect import open_image
    from release.sbom import _scan

    lock = statements.baked_lock(_scan(open_image(reg, digest)))  # type: ignore[arg-type]
    assert lock is not None
    for t in TYPES:
        # the model signature is model-signing's statement: about the model's root digest
        verify_stored(reg, digest, t, pol, subject=lock["digest"] if t == TYPES[2] else None)
    return 0


def _gzip_layer(entries: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A layer as `release build` compresses it (block-parallel gzip, level 6)."""
    import io
    import tarfile

    from release.image.layers import GzipWriter

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(entries):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
            tf.addfile(ti, io.BytesIO(data))
    out = io.BytesIO()
    gz = GzipWriter(out)
    gz.write(raw.getbuffer())
    _, diff_id = gz.finish()
    return out.getvalue(), diff_id


def contents(binary_mib: int) -> dict[str, Any]:
    """build_image arguments: ~4,000 text files in the base (~60 MiB), `binary_mib` MiB
    of binary data (32 MiB files) in the model layer, outside the model directory."""
    import numpy as np

    rng = np.random.default_rng(27)
    words = np.array(
        [
            "def",
            "return",
            "self",
            "import",
            "from",
            "class",
            "if",
            "else",
            "for",
            "in",
            "not",
            "None",
            "True",
            "False",
            "None",
            "value",
            "result",
            "config",
            "path",
            "name",
            "data",
            "items",
            "len",
            "str",
            "int",
            "dict",
            "list",
            "raise",
            "with",
            "as",
            "lambda",
            "yield",
            "async",
            "await",
            "try",
            "except",
            "finally",
            "pass",
            "break",
            "continue",
            "while",
        ]
    )
    text = " ".join(rng.choice(words, 4_000_000)).encode()
    base = []
    for i in range(4000):
        n = int(rng.integers(2_000, 28_000))
        at = int(rng.integers(0, len(text) - n))
        base.append((f"usr/lib/python3/pkg{i // 100}/mod{i}.py", text[at : at + n]))
    base.append(("etc/os-release", b"ID=bench\n"))
    extra = {}
    left = binary_mib << 20
    while left > 0:  # bytes of a skewed distribution: deflate ~2.5x, as shared objects
        n = min(left, 32 << 20)
        b = rng.geometric(0.25, n).clip(max=255).astype(np.uint8).tobytes()
        extra[f"opt/lib/part{len(extra)}.so"] = b
        left -= n
    return {"base": base, "extra_model": extra}


def setup(
    tmp: Path, image: dict[str, Any] | None = None
) -> tuple[str, Path, list[tuple[Path, str]]]:
    from release.attest import sign, statements, store
    from release.image.registry import open_registry
    from tests.attest import conftest
    from tests.attest.conftest import build_image

    reg = open_registry("oci:reg", tmp)
    if image is not None:
        conftest._layer = _gzip_layer  # type: ignore[assignment]  # large layers: as build does
    digest = build_image(reg, **(image or {}))
    signer = sign.KeySigner(tmp / "k.pem")
    from release import sbom
    from release.image.inspect import open_image

    view = open_image(reg, digest)
    scan = sbom._scan(view)
    lock = statements.baked_lock(scan)
    assert lock is not None
    preds = [
        (TYPES[0], {"buildDefinition": {}, "runDetails": {"builder": {"id": "local"}}}),
        (TYPES[1], sbom.generate(reg, digest, view=view, scan=scan)),
        (TYPES[2], statements.model_signature(lock)),
        (TYPES[3], {"passed": True}),
        (TYPES[4], {"env": "prod"}),
    ]
    sign.attest(reg, digest, preds, signer)
    (tmp / "release.toml").write_text(
        '[model]\nrepo = "example/sst2-tiny"\n[image]\n'
        f'base = "oci:base@sha256:{"0" * 64}"\nregistry = "oci:reg"\n'
        '[functions]\nscorer = "handlers.scorer.lambda_handler"\n'
        '[signing]\nmode = "key:k.pem"\n'
    )
    files = []
    for i, b in enumerate(store.fetch_bundles(reg, digest)):
        f = tmp / f"b{i}.json"
        f.write_bytes(b.bundle)
        files.append((f, lock["digest"] if b.predicate_type == TYPES[2] else digest))
    return digest, tmp / "k.pem.pub", files


def run_timed(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, **kw: Any
) -> tuple[float, float]:
    """(wall, CPU of the child) seconds of one command; it must succeed."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd, env=env, **kw)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def speed(name: str, tmp: Path, image: dict[str, Any], runs: int) -> list[str]:
    """Rows of the verify-speed table for one image."""
    from release.image.inspect import open_image
    from release.image.registry import open_registry

    digest, _, _ = setup(tmp, image)
    reg = open_registry("oci:reg", tmp)
    blobs = [
        str(tmp / "reg/blobs/sha256" / la.digest.split(":")[1])
        for la in open_image(reg, digest).layers
    ]
    csize = sum(os.path.getsize(b) for b in blobs)
    py = sys.executable
    verify = [py, "-m", "release", "verify", digest, "--offline"]
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}

    def env(cache: Path) -> dict[str, str]:
        # bytecode written by the warm-up run and read after (compiling it is issue 27.2's)
        e = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        return {**e, "RELEASE_CACHE_DIR": str(cache)}

    run_timed(verify, tmp, env(tmp / "cache-warmup"), **quiet)  # bytecode, page cache
    gz, cold, warm = [], [], []
    for i in range(runs):
        gz.append(run_timed(["gzip", "-dc", *blobs], tmp, **quiet))
        cache = tmp / f"cache-{i}"
        cold.append(run_timed(verify, tmp, env(cache), **quiet))
        warm.append(run_timed(verify, tmp, env(cache), **quiet))
    med = [
        (statistics.median(w for w, _ in xs), statistics.median(c for _, c in xs))
        for xs in (gz, cold, warm)
    ]
    usize = sum(len(d) for _, d in image["base"]) + sum(
        len(d) for d in image["extra_model"].values()
    )
    head = (
        f"{name}: {len(blobs)} layers, {csize / 2**20:.0f} MiB gzip, "
        f"{usize / 2**20:.0f} MiB of files; median of {runs}"
    )
    rows = [head]
    for label, (w, c) in zip(
        ("gzip -dc (layer blobs)", "release verify, cold", "release verify, warm"), med, strict=True
    ):
        ratio = "" if label.startswith("gzip") else f"{w / med[0][0]:>9.2f}x {c / med[0][1]:>8.2f}x"
        rows.append(f"  {label:<26}{w:>8.2f}{c:>8.2f}  {ratio}")
    return rows


def timed(cmds: list[list[str]], cwd: Path | None = None) -> float:
    t = time.perf_counter()
    for c in cmds:
        subprocess.run(c, check=True, capture_output=True, cwd=cwd)
    return time.perf_counter() - t


def main() -> int:
    if sys.argv[1:2] == ["--inner"]:
        return inner(*sys.argv[2:5])
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    big = int(sys.argv[sys.argv.index("--big-mib") + 1]) if "--big-mib" in sys.argv else 1024
    # the layer scans of this bench's images: in a cache of its own, not the user's
    scans = tempfile.TemporaryDirectory(prefix="bench-verify-cache-")
    os.environ["RELEASE_CACHE_DIR"] = scans.name
    py = sys.executable
    images = [("quickstart-like", 384)] + (
        [(f"big ({big} MiB of binary data)", big)] if big else []
    )
    print(
        "verify speed (issue 27.1): seconds, and verify / gzip -dc (targets: cold <= 0.6x, warm <= 0.25x)"
    )
    print(f"  {'what':<26}{'wall':>8}{'CPU':>8}  {'wall ratio':>10} {'CPU ratio':>9}")
    for name, mib in images:
        with tempfile.TemporaryDirectory(prefix="bench-verify-") as d:
            for row in speed(
                name, Path(d), contents(mib), max(1, runs // 2 + 1) if mib > 500 else runs
            ):
                print(row, flush=True)
    if "--no-small" in sys.argv:
        return 0
    print()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        digest, pub, files = setup(tmp)
        rows = {
            "release verify --offline (12 claims)": [
                [py, "-m", "release", "verify", digest, "--offline"]
            ],
            "library (5 bundles, 1 process)": [
                [py, __file__, "--inner", str(tmp), digest, str(pub)]
            ],
            "cli x5 (verify-bundle, 5 processes)": [
                [
                    py,
                    "-m",
                    "release",
                    "verify-bundle",
                    "--bundle",
                    str(f),
                    "--key",
                    str(pub),
                    subject,
                ]
                for f, subject in files
            ],
            "cli x1 (verify-bundle, 1 bundle)": [
                [
                    py,
                    "-m",
                    "release",
                    "verify-bundle",
                    "--bundle",
                    str(files[0][0]),
                    "--key",
                    str(pub),
                    files[0][1],
                ]
            ],
            "python -c pass (interpreter floor)": [[py, "-c", "pass"]],
        }
        for cmds in rows.values():  # warm the page cache
            timed(cmds, tmp)
        print(f"{'what':<38} {'median s':>9} {'min s':>7}  {'vs 1 s target':>13}")
        for name, cmds in rows.items():
            ts = [timed(cmds, tmp) for _ in range(runs)]
            med = statistics.median(ts)
            print(f"{name:<38} {med:>9.3f} {min(ts):>7.3f}  {med / 1.0:>12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
