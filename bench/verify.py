"""Offline verification of an image with 5 attestations, end to end including process start.

    .venv/bin/python bench/verify.py [--runs N]

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

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def setup(tmp: Path) -> tuple[str, Path, list[tuple[Path, str]]]:
    from release.attest import sign, statements, store
    from release.image.registry import open_registry
    from tests.attest.conftest import build_image

    reg = open_registry("oci:reg", tmp)
    digest = build_image(reg)
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


def timed(cmds: list[list[str]], cwd: Path | None = None) -> float:
    t = time.perf_counter()
    for c in cmds:
        subprocess.run(c, check=True, capture_output=True, cwd=cwd)
    return time.perf_counter() - t


def main() -> int:
    if sys.argv[1:2] == ["--inner"]:
        return inner(*sys.argv[2:5])
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    py = sys.executable
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
