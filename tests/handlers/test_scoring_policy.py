"""policy/scoring: its own Rego unit tests (run through regopy), and a failing test is seen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handlers.common import policy
from tests.fixtures.tools import REPO

SCORING = REPO / "policy" / "scoring"


def _tests(path: Path) -> list[tuple[str, str]]:
    src = path.read_text()
    pkg = re.search(r"^package\s+([\w.]+)", src, re.M)
    assert pkg
    return [(pkg.group(1), t) for t in re.findall(r"^(test_\w+)\s+if\b", src, re.M)]


def _run(directory: Path, test_file: Path) -> dict[str, object]:
    mods, _ = policy.load_modules(str(directory))
    rego = policy.interpreter((*mods, (test_file.name, test_file.read_text())))
    return {name: policy.query(rego, f"data.{pkg}.{name}") for pkg, name in _tests(test_file)}


RESULTS: dict[str, object] = {}


@pytest.mark.parametrize("name", [t for _, t in _tests(SCORING / "posture_test.rego")])
def test_rego_unit_test(name: str) -> None:
    if not RESULTS:
        RESULTS.update(_run(SCORING, SCORING / "posture_test.rego"))
    assert RESULTS[name] is True, f"{name} evaluated to {RESULTS[name]!r}"


def test_a_wrong_expectation_is_reported(tmp_path: Path) -> None:
    t = tmp_path / "wrong_test.rego"
    t.write_text(
        "package scoring.wrong_test\nimport rego.v1\nimport data.scoring.posture\n"
        'test_wrong if { posture.evaluate({"posture": {}}).score == 100 }\n'
    )
    assert _run(SCORING, t) == {"test_wrong": None}  # undefined: the test failed


def test_policy_that_does_not_compile_is_a_policy_error(tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package scoring.posture\nresult := {\n")
    with pytest.raises(policy.PolicyError, match="does not compile"):
        policy.evaluate(str(tmp_path), "data.scoring.posture.result", {})
