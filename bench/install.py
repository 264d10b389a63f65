"""The adopter's install, measured (issue: install `release` in your own repository).

    .venv/bin/python bench/install.py

1. `.ci/dist` builds the wheel and its lock.
2. The README's adopter install command (tests/adoption/conftest.py runs the same one)
   into a new venv with EMPTY uv caches (a fresh UV_CACHE_DIR: every wheel downloaded
   from the index and hash-checked) - target <= 30 s - and again with the cache warm.
3. `release --help` from the installed wheel, median of 7 runs - target <= 0.5 s - and
   the first run in a venv installed without `--compile-bytecode` (it compiles on start).

Prints a table; the numbers go to bench/RESULTS.md with this command.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.adoption.conftest import adopter_install_command  # noqa: E402


def _timed(cmd: list[str], **kw: object) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed: {p.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        root = Path(tmp)
        p = subprocess.run(
            [str(REPO / ".ci" / "dist"), str(root / "dist")], capture_output=True, text=True
        )
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        tools = root / "bin"
        tools.mkdir()
        (tools / "uv").symlink_to(Path(sys.executable).parent / "uv")
        path = [str(tools)] + [
            d for d in os.environ["PATH"].split(os.pathsep) if not d.startswith(str(REPO))
        ]
        cmd = adopter_install_command()
        rows: list[tuple[str, float, str]] = []
        cache = root / "uv-cache"
        for label, home in (("cold", root / "home-cold"), ("warm", root / "home-warm")):
            home.mkdir()
            env = {
                k: v
                for k, v in os.environ.items()
                if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV", "PYTHON"))
            }
            env.update(HOME=str(home), PATH=os.pathsep.join(path), UV_CACHE_DIR=str(cache))
            s = _timed(["bash", "-c", cmd], cwd=root / "dist", env=env)
            rows.append(
                (
                    f"install, {label} uv cache (README command, new venv)",
                    s,
                    "<= 30 s" if label == "cold" else "-",
                )
            )
        release = root / "home-warm" / ".lambda-release" / "bin" / "release"
        helps = [_timed([str(release), "--help"], cwd=root) for _ in range(7)]
        rows.append(
            ("release --help, installed wheel (median of 7)", statistics.median(helps), "<= 0.5 s")
        )
        # the same install without --compile-bytecode: its first command compiles
        nocompile = cmd.replace(" --compile-bytecode", "").replace("~/.lambda-release", "~/.nc")
        home = root / "home-warm"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("UV_", "PIP_", "VIRTUAL_ENV", "PYTHON"))
        }
        env.update(HOME=str(home), PATH=os.pathsep.join(path), UV_CACHE_DIR=str(cache))
        _timed(["bash", "-c", nocompile], cwd=root / "dist", env=env)
        first = _timed([str(home / ".nc" / "bin" / "release"), "--help"], cwd=root)
        rows.append(("release --help, first run, installed WITHOUT --compile-bytecode", first, "-"))
    print(f"{'measure':<66}{'seconds':>9}  target")
    for name, s, target in rows:
        print(f"{name:<66}{s:>9.2f}  {target}")
    print(
        f"cold install {rows[0][1] / rows[1][1]:.1f}x the warm one; first --help without "
        f"bytecode {first / rows[2][1]:.1f}x the compiled one"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
