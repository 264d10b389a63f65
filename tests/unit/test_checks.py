"""The one check type (`release.checks.Check`) on its two wires, and the one way a file
the user named is read (`release.inputs.read_input`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from release.checks import Check
from release.errors import UsageError
from release.inputs import read_input


def test_a_check_is_passed_in_a_canary_report_and_ok_in_verify_and_audit() -> None:
    wire = {"name": "flip-rate", "passed": False, "statistic": "s", "value": 0.2, "threshold": 0.1}
    c = TypeAdapter(Check).validate_python(wire)
    assert (c.name, c.ok, c.value, c.threshold) == ("flip-rate", False, 0.2, 0.1)
    # the signed canary report keeps `passed` (its schema since version 1) ...
    dumped = TypeAdapter(Check).dump_python(c, mode="json", by_alias=True)
    assert dumped["passed"] is False and "ok" not in dumped
    # ... the audit's JSON (dataclasses.asdict) says `ok`, like `release verify --json`
    assert asdict(c)["ok"] is False and "passed" not in asdict(c)
    with pytest.raises(ValidationError):
        TypeAdapter(Check).validate_python({**wire, "verdict": "x"})


def test_a_canary_report_check_without_its_statistic_is_refused(tmp_path: Path) -> None:
    from release.canary.report import parse_report
    from tests.canary.test_compare import make_report

    doc = make_report(tmp_path / "a.json", flip_neg=0).to_json()
    del doc["checks"][0]["value"]
    with pytest.raises(UsageError) as info:
        parse_report(json.dumps(doc).encode(), "a.json")
    name = doc["checks"][0]["name"]
    assert info.value.message == f"a.json: check {name!r} has no statistic, value or threshold"


def test_read_input_names_what_and_why(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_bytes(b"{}")
    assert read_input(tmp_path / "r.json", "canary report") == b"{}"
    with pytest.raises(UsageError) as info:
        read_input(tmp_path / "gone.json", "canary corpus", hint="set [canary].corpus")
    assert info.value.message == (
        f"canary corpus {tmp_path / 'gone.json'} not found (set [canary].corpus)"
    )
    with pytest.raises(UsageError) as info:
        read_input(tmp_path, "bundle")
    assert info.value.message == f"cannot read bundle {tmp_path}: Is a directory"
