"""The pipeline command's stage list is the library's."""

from __future__ import annotations

from release import pipeline
from release.cli import pipeline as cli_pipeline
from tests.fixtures.tools import run_cli


def test_stage_lists_agree() -> None:
    assert cli_pipeline.STAGES == pipeline.STAGES


def test_unknown_stage_is_usage_error() -> None:
    r = run_cli("pipeline", "--through", "deploy")
    assert r.code == 2
    assert "deploy" in r.stderr


def test_missing_config_is_one_line_exit_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = run_cli("pipeline", cwd=tmp_path)
    assert r.code == 2
    assert "release.toml" in r.stderr and len(r.stderr.strip().splitlines()) == 1
