"""The audit report's overall verdict (top of HTML and Markdown, in JSON) and the
one-screen summary per release, over report data with known failed claims."""

from __future__ import annotations

import json

from release.audit.model import AuditReport, ReleaseRecord
from release.audit.render import to_html, to_json, to_markdown
from release.checks import Check


def release(digest: str, failed: set[str]) -> ReleaseRecord:
    names = ["image", "model layer", "attestation sbom", "provenance", "canary"]
    return ReleaseRecord(
        digest=digest,
        time="2026-01-01T00:00:00Z",
        actor="ci",
        signer="https://id",
        workflow_run=None,
        source_commit="c" * 40,
        model_repo="org/m",
        model_commit="d" * 40,
        model_digest="sha256:" + "e" * 64,
        model_files=[],
        sbom=None,
        canary=None,
        decision_allow=True,
        decision_reasons=[],
        decision_policy=None,
        decision_policy_digest=None,
        verification=[
            Check(n, n not in failed, f"{n} broke" if n in failed else "") for n in names
        ],
        timeline=[],
    )


def report(*releases: ReleaseRecord, chain_ok: bool = True) -> AuditReport:
    return AuditReport(
        generated="now",
        env="prod",
        chain_ok=chain_ok,
        chain_detail="x",
        events=3,
        releases=list(releases),
    )


GOOD, BAD = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def test_failed_claims_are_counted_at_the_top() -> None:
    r = report(release(GOOD, set()), release(BAD, {"provenance", "attestation sbom"}))
    md = to_markdown(r)
    # 5 + 5 release claims and the ledger chain
    assert md.splitlines()[2] == "**Verdict: ❌ FAIL: 2 of 11 claims failed**"
    html = to_html(r)
    assert html.index("FAIL: 2 of 11 claims failed") < html.index("<section")
    doc = json.loads(to_json(r))
    assert doc["verdict"] == {
        "ok": False,
        "failed": 2,
        "claims": 11,
        "text": "FAIL: 2 of 11 claims failed",
    }


def test_each_release_opens_with_its_summary_naming_the_failed_claims() -> None:
    md = to_markdown(report(release(GOOD, set()), release(BAD, {"provenance"})))
    bad = md[md.index(f"## `{BAD}`") :]
    lines = bad.splitlines()
    assert lines[2].startswith("> **❌ FAIL: 1 of 5 claims failed** · gate allow")
    assert lines[3] == ">  - ❌ provenance: provenance broke"
    good = md[md.index(f"## `{GOOD}`") : md.index(f"## `{BAD}`")]
    assert "> **✅ pass: all 5 claims verified**" in good


def test_all_verified_passes_and_a_broken_chain_fails() -> None:
    assert "**Verdict: ✅ pass: all 6 claims verified**" in to_markdown(
        report(release(GOOD, set()))
    )
    broken = report(release(GOOD, set()), chain_ok=False)
    assert broken.verdict == "FAIL: 1 of 6 claims failed"
    assert "FAIL: 1 of 6 claims failed" in to_html(broken)
