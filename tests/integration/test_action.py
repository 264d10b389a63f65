"""The adopters' Action (action.yml -> .ci/action-install) run as a runner runs it, without
act: a clean copy of the tracked files as the Action's checkout, an empty tool cache, no
network (PIP_NO_INDEX with the uv wheel in PIP_FIND_LINKS, UV_OFFLINE with this machine's uv
cache). It installs `release` and puts only that on PATH; the next run finds the venv; a lock
whose hash was changed fails with nothing installed; a missing interpreter is named.
(tests/workflows/test_adopter_act.py runs the Action inside whole workflows.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.tools import REPO
from tests.workflows.act_run import HOST_PATH, copy_tracked, offline_wheels

pytestmark = pytest.mark.slow


@dataclass
class Runner:
    root: Path

    @property
    def tool_cache(self) -> Path:
        return self.root / "tool_cache"

    def run(self, action: Path, **extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
        (self.root / "temp").mkdir(exist_ok=True)
        uv_cache = subprocess.run(
            [str(Path(sys.executable).with_name("uv")), "cache", "dir"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        env = {
            "PATH": HOST_PATH,
            "HOME": os.environ.get("HOME", "/root"),
            "GITHUB_ACTION_PATH": str(action),
            "RUNNER_TEMP": str(self.root / "temp"),
            "RUNNER_TOOL_CACHE": str(self.tool_cache),
            "GITHUB_PATH": str(self.root / "path"),
            "GITHUB_OUTPUT": str(self.root / "output"),
            "PIP_NO_INDEX": "1",
            "PIP_FIND_LINKS": str(offline_wheels()),
            "UV_OFFLINE": "1",
            "UV_CACHE_DIR": uv_cache,
            **extra,
        }
        start = time.monotonic()
        p = subprocess.run(
            ["bash", str(action / ".ci" / "action-install")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return p, time.monotonic() - start

    def lines(self, name: str) -> list[str]:
        f = self.root / name
        return f.read_text().splitlines() if f.exists() else []


@pytest.fixture(scope="module")
def action(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_tracked(REPO, tmp_path_factory.mktemp("action"))


def test_installs_release_then_finds_it_cached(action: Path, tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    p, first = runner.run(action)
    assert p.returncode == 0, p.stderr[-3000:]
    for step in ("1/3 the installer: uv==", "2/3 the dependencies", "3/3 the tool"):
        assert step in p.stderr
    [bindir] = runner.lines("path")
    assert Path(bindir).parent.parent == runner.tool_cache / "lambda-release"
    assert sorted(p.name for p in Path(bindir).iterdir()) == ["release"]  # not python, pip
    assert runner.lines("output") == ["version=0.1.0"]
    v = subprocess.run(
        [str(Path(bindir) / "release"), "--version"], capture_output=True, text=True, check=True
    )
    assert v.stdout.strip() == "release, version 0.1.0"
    # the temporary bootstrap (uv's venv, the source copy) is gone
    assert list((tmp_path / "temp").iterdir()) == []

    p, cached = runner.run(action)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "nothing to install" in p.stderr and "installing into" not in p.stderr
    assert runner.lines("path") == [bindir, bindir]
    print(f"\nthe Action: install {first:.1f} s, cached {cached:.1f} s")
    assert cached < first


def test_a_changed_hash_fails_and_installs_nothing(action: Path, tmp_path: Path) -> None:
    bad = copy_tracked(REPO, tmp_path / "action")
    lock = bad / "release" / "runtime.lock"
    text = lock.read_text()
    i = text.index("--hash=sha256:", text.index("\nclick==")) + len("--hash=sha256:")
    lock.write_text(text[:i] + ("0" if text[i] != "0" else "1") + text[i + 1 :])
    runner = Runner(tmp_path / "runner")
    runner.root.mkdir()
    p, _ = runner.run(bad)
    assert p.returncode != 0
    assert "hash" in p.stderr.lower() and "click" in p.stderr, p.stderr[-2000:]
    assert runner.lines("path") == [] and runner.lines("output") == []
    assert not list((runner.tool_cache / "lambda-release").glob("*/complete"))


def test_a_missing_interpreter_is_named(action: Path, tmp_path: Path) -> None:
    runner = Runner(tmp_path)
    p, _ = runner.run(action, RELEASE_ACTION_PYTHON="python3.99")
    assert p.returncode == 2
    assert p.stderr.splitlines()[-1] == (
        "lambda-release: no interpreter 'python3.99' on PATH (the Action's `python` input; "
        "actions/setup-python can provide one)"
    )
