"""Set-up figures, side by side in one run (issue: set-up on a fresh machine).

    .venv/bin/python bench/setup.py [--skip-pip] [--skip-quickstart]

1. Cold install of the whole requirements.lock into a new venv with EMPTY installer caches,
   hash-checked, by the two candidate installers:
     - pip: the venv's bundled pip bootstraps a hash-pinned current pip, which then runs
       `pip install --require-hashes -r requirements.lock` (the bundled pip itself cannot:
       old pips reject extras under --require-hashes);
     - uv: the bundled pip installs the hash-pinned uv wheel, uv installs the lock
       (`uv pip install --require-hashes`), which is what .ci/setup does.
2. `.ci/setup` re-run with nothing changed (target <= 5 s).
3. `.ci/quickstart` on a fresh clone with warm caches, to a promoted release (target <= 60 s).

Prints a table; the numbers go to bench/RESULTS.md with this command.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: a current pip, hash-pinned, for the pip candidate's bootstrap
PIP_PIN = (
    "pip==26.3 \\\n"
    "    --hash=sha256:6c36ae7da8695be67e3cd9f7d87919667ced53f57ce2ede75d89b5912ed2bc4c \\\n"
    "    --hash=sha256:f3b60b20ffaadd4415ed7957212a38ac63fa4c5fa375bd0f4a797777940fad13\n"
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_", "PIP_"))}
    env.update(extra)
    return env


def _run(cmd: list[str], **kw: object) -> float:
    """Seconds `cmd` took; its output is kept quiet unless it fails."""
    kw.pop("stderr", None)
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise SystemExit(
            f"bench: {' '.join(cmd[:4])} ... failed ({p.returncode}): {p.stderr[-1500:]}"
        )
    return time.perf_counter() - t


def _uv_entry() -> str:
    text = (REPO / "requirements.lock").read_text()
    m = re.search(r"^uv==.*?(?=^\s*#|^\S)", text, re.M | re.S)
    assert m, "no uv entry in requirements.lock"
    return m.group(0)


def cold_pip(tmp: Path) -> float:
    venv = tmp / "pip-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (tmp / "pip.txt").write_text(PIP_PIN)
    env = _env(PIP_CACHE_DIR=str(tmp / "pip-cache"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    py = str(venv / "bin" / "python")
    t = _run(
        [py, "-m", "pip", "install", "-q", "--require-hashes", "-r", str(tmp / "pip.txt")], env=env
    )
    t += _run(
        [
            py,
            "-m",
            "pip",
            "install",
            "-q",
            "--require-hashes",
            "-r",
            str(REPO / "requirements.lock"),
        ],
        env=env,
    )
    return t


def cold_uv(tmp: Path) -> float:
    venv = tmp / "uv-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (tmp / "uv.txt").write_text(_uv_entry())
    env = _env(UV_CACHE_DIR=str(tmp / "uv-cache"), PIP_CACHE_DIR=str(tmp / "pip-cache-uv"))
    py = str(venv / "bin" / "python")
    t = _run(
        [
            py,
            "-m",
            "pip",
            "install",
            "-q",
            "--require-hashes",
            "--no-deps",
            "-r",
            str(tmp / "uv.txt"),
        ],
        env=env,
    )
    t += _run(
        [
            str(venv / "bin" / "uv"),
            "pip",
            "install",
            "-q",
            "--python",
            py,
            "--require-hashes",
            "-r",
            str(REPO / "requirements.lock"),
        ],
        env=env,
    )
    return t


def clone(tmp: Path, name: str) -> Path:
    dest = tmp / name
    subprocess.run(["git", "clone", "-q", str(REPO), str(dest)], check=True)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-pip", action="store_true", help="skip the (slow) cold pip install")
    ap.add_argument("--skip-quickstart", action="store_true")
    a = ap.parse_args()
    rows: list[tuple[str, float | None, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as t:
        tmp = Path(t)
        uv = cold_uv(tmp)
        pip = None if a.skip_pip else cold_pip(tmp)
        rows.append(("cold install of the lock, uv (.ci/setup's installer)", uv, "<= 90 s"))
        rows.append(("cold install of the lock, bootstrapped pip 26.3", pip, "-"))
        c = clone(tmp, "setup-clone")
        first = _run([".ci/setup"], cwd=c, env=_env(), stderr=subprocess.DEVNULL)
        warm = min(
            _run([".ci/setup"], cwd=c, env=_env(), stderr=subprocess.DEVNULL) for _ in range(3)
        )
        rows.append((".ci/setup in a fresh clone, warm caches", first, "-"))
        rows.append((".ci/setup re-run, nothing changed (best of 3)", warm, "<= 5 s"))
        if not a.skip_quickstart:
            q = clone(tmp, "quickstart-clone")
            qs = _run([".ci/quickstart"], cwd=q, env=_env(), stderr=subprocess.DEVNULL)
            rows.append((".ci/quickstart, fresh clone, warm caches -> promoted", qs, "<= 60 s"))
    print(f"{'measure':58} {'seconds':>9}  target")
    for name, secs, target in rows:
        shown = "skipped" if secs is None else f"{secs:9.1f}"
        print(f"{name:58} {shown:>9}  {target}")
    if pip and uv:
        print(
            f"\nuv installs the lock {pip / uv:.1f}x faster than a bootstrapped pip (cold caches)"
        )
    print(f"(load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
