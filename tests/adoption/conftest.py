"""The tool as an adopter gets it: built into a wheel by `.ci/dist`, installed with the
published lock (hash-checked, uv) into a NEW venv made by the machine's own
`python3 -m venv`, and run from a copy of the second platform (tests/platforms/tickets:
package `svc`, its own model, corpus and lock, plain boto3, no `policy/`) outside this
checkout, under an audit hook that fails the run if any file under the checkout is opened.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO, Result

PLATFORM = REPO / "tests" / "platforms" / "tickets"

#: `release init` as the adopter runs it in the platform's repository (docs/migrating.md)
INIT = (
    "init",
    "--package",
    "svc",
    "--model-path",
    "ml/urgency",
    "--lock",
    "ml/urgency.lock.json",
    "--model-dir",
    "/opt/ml/urgency",
    "--corpus",
    "data/tickets.jsonl",
    "--requirements",
    "requirements.lock",
    "--predict",
    "svc.urgency:load",
)

#: runs `release.cli.main(ARGS)` with an audit hook on `open`: any path under the checkout
#: (argv[1]) is recorded and written to argv[2]; the checkout must not be on sys.path and
#: `release` must come from the venv
AUDITED = r"""
import os, sys
repo, log = os.path.abspath(sys.argv[1]), sys.argv[2]
inside = lambda p: p == repo or p.startswith(repo + os.sep)
bad = [p for p in sys.path if p and inside(os.path.abspath(p))]
opened = []
def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        p = os.path.abspath(os.fsdecode(args[0]))
        if inside(p):
            opened.append(p)
sys.addaudithook(hook)
import release
if inside(os.path.abspath(release.__file__)):
    bad.append("release imported from " + release.__file__)
from release.cli import main
try:
    main(sys.argv[3:])
finally:
    with open(log, "w") as f:
        f.write("\n".join(bad + opened))
"""


_RUNS = itertools.count()


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    lock: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def run(
        self, *args: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None
    ) -> Result:
        """`release ARGS` from the installed wheel, audited: fails the test when the run
        opened a file of this checkout or found it on sys.path."""
        log = cwd.parent / f".audit-{next(_RUNS)}.log"
        full = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        full.update(env or {})
        p = subprocess.run(
            [str(self.python), "-c", AUDITED, str(REPO), str(log), *map(str, args)],
            cwd=cwd,
            env=full,
            capture_output=True,
            text=True,
            timeout=900,
        )
        found = log.read_text().splitlines() if log.exists() else ["(no audit log written)"]
        assert found == [], (
            f"release {args[0]} read this checkout: {found[:10]}\n{p.stderr[-2000:]}"
        )
        return Result(p.returncode, p.stdout, p.stderr)


def adopter_install_command() -> str:
    """The README's adopter install command (the block after `<!-- adopter-install -->`)."""
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- adopter-install -->", 1)[1]
    return block.split("```bash\n", 1)[1].split("```", 1)[0].strip()


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """`.ci/dist`, then the README's adopter install command, run as written in the
    directory holding the two files, with HOME in a temporary directory (so `~/...` is a
    NEW venv) and uv's cache the user's (warm: the cold install is bench/install.py's)."""
    root = tmp_path_factory.mktemp("adopter-install")
    dist = root / "dist"
    p = subprocess.run(
        [str(REPO / ".ci" / "dist"), str(dist)], capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-3000:]
    wheel, lock = (Path(x) for x in p.stdout.split())
    uv = Path(sys.executable).parent / "uv"
    cache = subprocess.run([str(uv), "cache", "dir"], capture_output=True, text=True, check=True)
    tools = root / "bin"  # uv alone: this venv's python3 must not be found on PATH
    tools.mkdir()
    (tools / "uv").symlink_to(uv)
    home = root / "home"
    home.mkdir()
    path = [str(tools)] + [
        d for d in os.environ.get("PATH", "").split(os.pathsep) if not d.startswith(str(REPO))
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), PATH=os.pathsep.join(path), UV_CACHE_DIR=cache.stdout.strip())
    cmd = adopter_install_command()
    p = subprocess.run(
        ["bash", "-c", cmd], cwd=dist, env=env, capture_output=True, text=True, timeout=900
    )
    assert p.returncode == 0, f"{cmd}\n{p.stderr[-3000:]}"
    return Installed(home / ".lambda-release", wheel, lock)


def copy_platform(dest: Path) -> Path:
    """The second platform as its own one-commit git repository (what an adopter has)."""
    shutil.copytree(PLATFORM, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    git = [
        "git",
        "-c",
        "user.name=adopter",
        "-c",
        "user.email=adopter@example.invalid",
        "-C",
        str(dest),
    ]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "tickets platform"], check=True)
    return dest
