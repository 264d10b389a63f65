"""What a new user does first: a clean clone, `.ci/setup` with the interpreter's own pip
(never upgraded), then `release --help`; for each supported Python (3.11, 3.12, 3.13).

No network: uv runs with UV_OFFLINE and pip with PIP_NO_INDEX, so everything comes from
the local package caches (`.ci/warm-caches`, which `.ci/test` runs, fills them). Every
package is still hash-checked: a lock whose hash for one package is changed fails the
set-up and installs nothing of the project.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO

pytestmark = pytest.mark.slow

VERSIONS = ("3.11", "3.12", "3.13")


def _pythons() -> dict[str, str]:
    out = subprocess.run(
        [str(REPO / ".ci" / "pythons")], capture_output=True, text=True, check=True
    )
    return dict(line.split(" ", 1) for line in out.stdout.splitlines() if line.strip())


def _clean_clone(dest: Path) -> Path:
    """`git clone` of the repository as committed (what a new user gets)."""
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
    # the test is about the committed set-up scripts; refuse to test a stale clone of them
    for f in (".ci/setup", "requirements.lock", "pyproject.toml"):
        if (REPO / f).read_bytes() != (dest / f).read_bytes():
            pytest.fail(
                f"{f} has uncommitted changes: commit them, the clone tests what is committed"
            )
    return dest


def _offline_env(python: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "UV_", "PIP_"))}
    env.update(PYTHON=python, UV_OFFLINE="1", PIP_NO_INDEX="1")
    return env


def _lock_pins() -> dict[str, str]:
    pins = {}
    for m in re.finditer(
        r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^ \\\n]+)",
        (REPO / "requirements.lock").read_text(),
        re.M,
    ):
        pins[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return pins


@pytest.mark.parametrize("version", VERSIONS)
def test_new_user_setup_then_help(version: str, tmp_path: Path) -> None:
    pythons = _pythons()
    if version not in pythons:
        pytest.fail(
            f"Python {version} not found on this machine (.ci/pythons); the set-up must work with it"
        )
    python = pythons[version]
    # pip is a dev dependency (the tests' offline wheels): the lock's pip, hash-checked,
    # replaces the one the interpreter bundles (which only bootstraps uv)
    locked_pip = re.search(r"^pip==(\S+)", (REPO / "requirements.lock").read_text(), re.M)
    assert locked_pip, "requirements.lock pins no pip"
    clone = _clean_clone(tmp_path / "clone")
    assert not (clone / ".venv").exists()

    p = subprocess.run(
        [".ci/setup"],
        cwd=clone,
        env=_offline_env(python),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    venv_py = clone / ".venv" / "bin" / "python"
    got = subprocess.run(
        [str(venv_py), "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert got == version
    # the venv's pip is the lock's
    pip_v = subprocess.run(
        [str(venv_py), "-m", "pip", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert pip_v.split()[1] == locked_pip.group(1)

    # every locked package is installed at exactly its locked version
    freeze = subprocess.run(
        [str(clone / ".venv" / "bin" / "uv"), "pip", "freeze", "--python", str(venv_py)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {}
    for line in freeze.splitlines():
        if "==" in line:
            name, ver = line.split("==", 1)
            installed[re.sub(r"[-_.]+", "-", name).lower()] = ver.strip()
    pins = _lock_pins()
    wrong = {n: (v, installed.get(n)) for n, v in pins.items() if installed.get(n) != v}
    assert not wrong, (
        f"installed versions differ from requirements.lock: {sorted(wrong.items())[:5]}"
    )

    h = subprocess.run(
        [str(clone / ".venv" / "bin" / "release"), "--help"],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert h.returncode == 0, h.stderr
    for cmd in ("build", "verify", "promote", "audit", "pipeline"):
        assert re.search(rf"^\s+{cmd}\s", h.stdout, re.M), f"`{cmd}` missing from release --help"
    assert (clone / "model" / "examples" / "sst2-tiny" / "onnx" / "model.onnx").is_file()

    # a re-run with nothing changed installs nothing (the stamp), and is fast
    p2 = subprocess.run(
        [".ci/setup"],
        cwd=clone,
        env=_offline_env(python),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p2.returncode == 0, p2.stderr[-2000:]
    assert "installing requirements.lock" not in p2.stderr


def test_a_changed_hash_in_the_lock_fails_setup(tmp_path: Path) -> None:
    """The lock is enforced, not decorative: flip one hash of a package the cache holds and
    the set-up stops with uv's hash error, exit non-zero, no stamp written."""
    python = _pythons().get("3.11")
    if python is None:
        pytest.fail("Python 3.11 not found on this machine (.ci/pythons)")
    clone = _clean_clone(tmp_path / "clone")
    lock = clone / "requirements.lock"
    text = lock.read_text()
    m = re.search(r"^click==[^\n]*\n((?:    --hash=sha256:[0-9a-f]{64}[ \\]*\n)+)", text, re.M)
    assert m, "click is not in requirements.lock"
    block = m.group(1)
    flipped = re.sub(
        r"sha256:([0-9a-f])", lambda h: "sha256:" + ("0" if h.group(1) != "0" else "1"), block
    )
    lock.write_text(text.replace(block, flipped))
    p = subprocess.run(
        [".ci/setup"],
        cwd=clone,
        env=_offline_env(python),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode != 0
    assert "click" in p.stderr and "hash" in p.stderr.lower(), p.stderr[-2000:]
    assert not (clone / ".venv" / ".requirements.sha256").exists()
    assert not (clone / ".venv" / "bin" / "release").exists()


@pytest.mark.parametrize(
    "command", [["build"], ["model", "fetch"], ["model", "pin"], ["pipeline", "--through", "build"]]
)
def test_missing_example_model_is_one_line_exit_2(command: list[str], tmp_path: Path) -> None:
    """A fresh clone whose example model was not generated: every command that reads
    `[model].path` names the directory and the command that makes it; exit 2, no traceback
    (an empty cache, so nothing can come from an earlier run)."""
    from tests.fixtures.tools import copy_project, run_cli

    proj = copy_project(tmp_path / "p", git=True)
    import shutil

    shutil.rmtree(proj / "model" / "examples" / "sst2-tiny")
    env = {
        "RELEASE_CACHE_DIR": str(tmp_path / "cache"),
        "RELEASE_BASE": "oci:" + str(tmp_path / "no-base") + "@sha256:" + "0" * 64,
    }
    r = run_cli(*command, cwd=proj, env=env)
    assert r.code == 2, (r.code, r.stderr)
    assert "Traceback" not in r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("release: error:")]
    assert len(err) == 1, r.stderr
    assert "model directory model/examples/sst2-tiny does not exist" in err[0]
    assert "python model/examples/generate.py" in err[0]


def test_locked_file_missing_from_local_model_is_exit_2(tmp_path: Path) -> None:
    from tests.fixtures.tools import copy_project, run_cli

    proj = copy_project(tmp_path / "p", git=True)
    (proj / "model" / "examples" / "sst2-tiny" / "README.md").unlink()
    r = run_cli("model", "fetch", cwd=proj, env={"RELEASE_CACHE_DIR": str(tmp_path / "cache")})
    assert r.code == 2, (r.code, r.stderr)
    assert "Traceback" not in r.stderr
    assert "sst2-tiny/README.md is locked but missing" in r.stderr
