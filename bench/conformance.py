"""Run `release verify-bundle` over the Sigstore bundle-verification conformance corpus.

    .venv/bin/python bench/conformance.py ../shared/conformance/sigstore-bundle-verify

Each case folder holds bundle.sigstore.json, optional artifact (else ../a.txt), identity,
issuer, key.pub, trusted_root.json; a folder named *_fail must NOT verify (exit 1). The
default trust root is Sigstore public good production (as shipped in sigstore-python).
Prints a table expected vs got, with the one-line reason; exit 1 if any case differs.
The corpus is read in place, never copied.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"


def command(case: Path) -> list[str]:
    artifact = case / "artifact"
    if not artifact.exists():
        artifact = case.parent / "a.txt"
    cmd = [
        sys.executable,
        "-m",
        "release",
        "verify-bundle",
        "--bundle",
        str(case / "bundle.sigstore.json"),
    ]
    if (case / "key.pub").exists():
        cmd += ["--key", str(case / "key.pub")]
    else:
        ident = (
            (case / "identity").read_text().strip()
            if (case / "identity").exists()
            else DEFAULT_IDENTITY
        )
        iss = (
            (case / "issuer").read_text().strip() if (case / "issuer").exists() else DEFAULT_ISSUER
        )
        cmd += ["--certificate-identity", ident, "--certificate-oidc-issuer", iss]
    if (case / "trusted_root.json").exists():
        cmd += ["--trusted-root", str(case / "trusted_root.json")]
    return [*cmd, str(artifact)]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    root = Path(argv[0])
    cases = sorted(p for p in root.iterdir() if (p / "bundle.sigstore.json").exists())
    rows = []
    t0 = time.perf_counter()
    for case in cases:
        want = "fail" if case.name.endswith("_fail") else "pass"
        p = subprocess.run(command(case), capture_output=True, text=True)
        got = {0: "pass", 1: "fail"}.get(p.returncode, f"exit {p.returncode}")
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        reason = lines[-1] if lines else ""
        rows.append((case.name, want, got, reason))
    dt = time.perf_counter() - t0
    w = max(len(r[0]) for r in rows)
    print(f"{'case':<{w}}  expected  got     ok  reason")
    bad = 0
    for name, want, got, reason in rows:
        ok = want == got
        bad += not ok
        print(f"{name:<{w}}  {want:<8}  {got:<6}  {'ok' if ok else 'XX'}  {reason[:110]}")
    print(
        f"\n{len(rows) - bad}/{len(rows)} as expected ({dt:.1f} s, {dt / len(rows) * 1000:.0f} ms/case)"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
