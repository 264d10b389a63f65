"""The code's shape a new maintainer relies on: every module says its one job, and the
README's module map names every module of the release package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_module_starts_with_a_one_line_job() -> None:
    missing = []
    for path in _modules("release") + _modules("handlers"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        if not doc or not doc.splitlines()[0].strip():
            missing.append(str(path.relative_to(ROOT)))
    assert missing == [], f"modules without a first docstring line: {missing}"


def test_readme_module_map_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Development") :]
    section = section[: section.index("\n## ", 1)]
    mapped = set(re.findall(r"[A-Za-z_]+", section))
    absent = []
    for path in _modules("release"):
        rel = path.relative_to(ROOT / "release")
        name = rel.stem if rel.stem != "__init__" else rel.parent.name
        if name in ("", "release") or rel.stem == "__main__":
            continue
        if name not in mapped:
            absent.append(str(rel))
    assert absent == [], f"README Development module map does not name: {absent}"


def test_readme_stage_paths_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Development") :]
    section = section[: section.index("\n## ", 1)]
    paths = re.findall(r"`((?:release|handlers)/[\w/.]*)`", section)
    assert len(paths) >= 9, paths
    assert [p for p in paths if not (ROOT / p).exists()] == []
