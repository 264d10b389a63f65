"""The HTML reports (audit, readiness) escape every value and ship their templates.

Both pages come from Jinja2 templates with autoescape on; a hostile string in any field
(a function name from AWS, a signer identity from a certificate, a model file name from the
hub) must come out as text, never as markup."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

from release.audit.model import AuditReport, CanarySummary, ReleaseRecord, TimelineEntry
from release.audit.render import to_html as audit_html
from release.checks import Check
from release.readiness.model import ReadinessReport, Row
from release.readiness.render import to_html as readiness_html

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class _Elements(HTMLParser):
    """Every element and every text node, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Elements:
    p = _Elements()
    p.feed(html)
    p.close()
    return p


def _audit(x: str) -> AuditReport:
    d = "sha256:" + "1" * 64
    rec = ReleaseRecord(
        digest=d,
        time="2026-01-01T00:00:00Z",
        actor="ci" + x,
        signer="https://github.com/org/repo" + x,
        workflow_run=None,
        source_commit="c" * 40,
        model_repo="org/m" + x,
        model_commit="d" * 40,
        model_digest=None,
        model_files=[("model" + x + ".safetensors", "f" * 64)],
        sbom=None,
        canary=CanarySummary(
            passed=True,
            n=10,
            candidate_shares={"POSITIVE" + x: 0.5, "NEGATIVE": 0.5},
            baseline_shares=None,
            bin_edges=[0.0, 0.5, 1.0],
            candidate_hist=[0.4, 0.6],
            baseline_hist=None,
            checks=[Check("flip-rate" + x, True, "detail" + x, value=0.01, threshold=0.05)],
        ),
        decision_allow=True,
        decision_reasons=["reason" + x],
        decision_policy="default",
        decision_policy_digest="sha256:" + "0" * 64,
        verification=[Check("provenance", False, "signed by" + x)],
        timeline=[TimelineEntry(1, "t", "promote", "prod", "ci" + x, d, "d" + x)],
    )
    return AuditReport("now", "prod" + x, True, "intact", 1, [rec])


def test_audit_html_escapes_a_hostile_signer_function_and_file_name() -> None:
    html = audit_html(_audit(HOSTILE))
    parsed = _parse(html)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    text = "".join(parsed.text)
    # each hostile field reaches the page as readable text
    for field in ("https://github.com/org/repo", "flip-rate", "model", "signed by", "reason"):
        assert field + HOSTILE in text
    # the same report with harmless strings has the same elements: nothing was added
    assert parsed.tags == _parse(audit_html(_audit("-x"))).tags


def test_readiness_html_escapes_a_hostile_function_name() -> None:
    report = ReadinessReport(
        "prod", "now", None, "ns", (Row("memory", "fn" + HOSTILE, "fail", "why" + HOSTILE),)
    )
    html = readiness_html(report)
    parsed = _parse(html)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert "fn" + HOSTILE in parsed.text and "why" + HOSTILE in parsed.text
    assert "<td><code>fn&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img" in html


def test_an_installed_wheel_carries_the_templates(tmp_path: Path) -> None:
    """Build the wheel from a copy of the tree (no network, the venv's setuptools), then
    render both reports and `release init`'s workflow from the unpacked wheel alone."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(ROOT / "release", src / "release", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path / "dist"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(dist),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    [wheel] = dist.glob("lambda_release-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "release/audit/templates/audit.html.j2",
        "release/readiness/templates/readiness.html.j2",
        "release/init/templates/release.toml.j2",
        "release/init/templates/release.yml.j2",
        "release/init/templates/canary.jsonl.j2",
        "release/init/templates/requirements.in.j2",
    } <= names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import release, sys\n"
        f"assert release.__file__.startswith({str(site)!r}), release.__file__\n"
        "from release.audit.model import AuditReport\n"
        "from release.audit.render import to_html\n"
        "from release.readiness.model import ReadinessReport\n"
        "from release.readiness import render\n"
        "print(to_html(AuditReport('now', 'prod', True, 'ok', 0, [])))\n"
        "print(render.to_html(ReadinessReport('prod', 'now', None, 'ns')))\n"
        "from release.init import render_workflow\n"
        f"print(render_workflow('o/r@{'a' * 40}', 'release.toml'))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=site,
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "<h1>Release audit — prod</h1>" in r.stdout and "<h1>Readiness: prod</h1>" in r.stdout
    assert f"- uses: o/r@{'a' * 40} # lambda-release" in r.stdout
