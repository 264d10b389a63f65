"""The one exit path (`release.cli.main`): an error is one line and its exit code; `-v`
adds debug lines and the error's traceback, with the same exit code."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.tools import run_cli

CONFIG = """
[model]
path = "m"

[image]
base = "oci:base@sha256:%s"

[functions]
analysis = "handlers.analysis.lambda_handler"

[environments.local]
target = "local"
functions = { analysis = "analysis" }
""" % ("0" * 64)

#: `status --env staging` on this config: an unknown environment, a ConfigError (exit 2)
ERROR = "release: error: release.toml: no [environments.staging] (configured: local)"


def _project(tmp_path: Path) -> Path:
    (tmp_path / "release.toml").write_text(CONFIG)
    return tmp_path


def test_error_without_verbose_is_exactly_one_line(tmp_path: Path) -> None:
    r = run_cli("status", "--env", "staging", cwd=_project(tmp_path))
    assert r.code == 2
    assert r.stderr.splitlines() == [ERROR]
    assert r.stdout == ""


def test_verbose_error_shows_the_traceback_and_keeps_the_exit_code(tmp_path: Path) -> None:
    r = run_cli("-v", "status", "--env", "staging", cwd=_project(tmp_path))
    assert r.code == 2
    lines = r.stderr.splitlines()
    start = lines.index("Traceback (most recent call last):")
    # the frames reach the code that raised: Config.environment in release/config.py
    frames = [ln.strip() for ln in lines[start:] if ln.strip().startswith("File ")]
    assert any("release/config.py" in f and "in environment" in f for f in frames), r.stderr
    assert "release.errors.ConfigError: release.toml: no [environments.staging]" in r.stderr
    # the message is still the last line, as without -v
    assert lines[-1] == ERROR


def test_debug_lines_only_with_verbose(tmp_path: Path) -> None:
    project = _project(tmp_path)
    quiet = run_cli("status", "--env", "staging", cwd=project)
    loud = run_cli("-v", "status", "--env", "staging", cwd=project)
    debug = f"debug: config {project / 'release.toml'} (paths relative to {project})"
    assert debug not in quiet.stderr and not any(
        ln.startswith("debug: ") for ln in quiet.stderr.splitlines()
    )
    assert loud.stderr.splitlines()[0] == debug


def test_verbose_with_json_still_leaves_one_document(tmp_path: Path) -> None:
    r = run_cli("-v", "status", "--env", "staging", "--json", cwd=_project(tmp_path))
    assert r.code == 2
    assert json.loads(r.stdout) == {
        "error": ERROR[len("release: error: ") :],
        "details": [],
        "exit_code": 2,
    }
    assert "Traceback (most recent call last):" in r.stderr


def test_verbose_is_documented_in_the_help() -> None:
    r = run_cli("--help")
    assert r.code == 0
    assert "-v, --verbose" in r.stdout and "traceback" in r.stdout


def test_verbose_check_failure_keeps_exit_1_and_its_document(tmp_path: Path) -> None:
    """A failed check (exit 1) under -v and --json: the traceback on stderr, the command's
    own result as the one document on stdout, the same exit code as without -v."""
    from tests.canary.test_compare import make_report

    make_report(tmp_path / "base.json")
    make_report(tmp_path / "cand.json", flip_neg=30)
    args = ("canary", "compare", "base.json", "cand.json", "--json")
    plain = run_cli(*args, cwd=tmp_path)
    loud = run_cli("-v", *args, cwd=tmp_path)
    assert (plain.code, loud.code) == (1, 1)
    assert "Traceback" not in plain.stderr
    assert "Traceback (most recent call last):" in loud.stderr
    assert "release.errors.CanaryFailed: canary failed 3 of 8 checks" in loud.stderr
    for r in (plain, loud):
        doc = json.loads(r.stdout)  # exactly one document: the report summary, no error doc
        assert doc["failed_checks"] == ["share-shift", "confident-flips", "accuracy-drop"]
        head = "release: error: canary failed 3 of 8 checks: share-shift, confident-flips, accuracy-drop"
        assert head in r.stderr.splitlines()
