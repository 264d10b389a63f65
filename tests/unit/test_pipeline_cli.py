"""The pipeline command's stage list is the library's."""

from __future__ import annotations

from pathlib import Path

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


def _platform(tmp_path: Path, code: str, gate: str = "") -> Path:
    (tmp_path / "m").mkdir()
    (tmp_path / "svc").mkdir()
    (tmp_path / "release.toml").write_text(
        f'[model]\npath = "m"\n[image]\nbase = "oci:b@sha256:{"0" * 64}"\n'
        f'[functions]\nf = "svc.f.handler"\n[code]\npackage = "svc"\n{code}\n'
        f'[environments.local]\ntarget = "local"\n{gate}'
    )
    return tmp_path


def test_a_pipeline_without_the_canary_entry_point_stops_before_building(tmp_path: Path) -> None:
    r = run_cli("pipeline", cwd=_platform(tmp_path, ""))
    assert r.code == 2
    assert r.stderr.splitlines() == [
        "release: error: [code].predict is not set: the canary stage calls MODULE:CALLABLE of "
        "your code to score the corpus (docs/migrating.md; or run --through attest)"
    ]
    assert not (tmp_path / ".release").exists()  # nothing built, nothing written


def test_a_missing_gate_policy_stops_the_pipeline_before_building(tmp_path: Path) -> None:
    p = _platform(tmp_path, 'predict = "svc.m:load"', '[gate]\npolicy = "gate"\n')
    r = run_cli("pipeline", cwd=p)
    assert r.code == 2
    assert r.stderr.splitlines() == [
        f"release: error: [gate].policy: policy directory {p / 'gate'} not found"
    ]
    assert not (tmp_path / ".release").exists()


def test_a_code_policy_directory_that_is_missing_names_its_key(tmp_path: Path) -> None:
    p = _platform(tmp_path, 'predict = "svc.m:load"\npolicy = "data"')
    r = run_cli("build", "--base", f"oci:{tmp_path}/b@sha256:{'0' * 64}", cwd=p)
    assert r.code == 2, r.stderr
    assert r.stderr.splitlines() == [
        "release: error: [code].policy: directory data/ not found next to release.toml "
        "(unset the key when your handlers read no data files)"
    ]
