"""Verify the signed SLSA provenance against the image: source commit, model, model
lock and base image as the image's labels and baked lock say; name the workflow.
"""

from __future__ import annotations

import os

from release.claims.checklist import Verification
from release.config import Config
from release.evidence import ProvenanceClaim


def workflow_of(builder_id: str) -> str | None:
    """`.github/workflows/release.yml` of a GitHub builder id
    (`https://github.com/ORG/REPO/.github/workflows/release.yml@refs/heads/main`);
    `local` for a local build (`release.attest.statements.LOCAL_BUILDER_ID`)."""
    from release.attest.statements import LOCAL_BUILDER_ID

    if builder_id in ("local", LOCAL_BUILDER_ID):
        return "local"
    path = builder_id.partition("/.github/workflows/")[2]
    return ".github/workflows/" + path.partition("@")[0] if path else None


def check_provenance(cfg: Config, v: Verification) -> ProvenanceClaim:
    """The signed provenance agrees with the image: source commit, model, model lock and
    base digest as the image's labels and baked lock say."""
    att = v.attestations.get("provenance")
    expected = {
        "expected_workflow": cfg.gate.workflow,
        "expected_commit": os.environ.get("RELEASE_EXPECTED_COMMIT") or None,
    }
    if att is None or not att.ok or att.predicate is None:
        return ProvenanceClaim(ok=False, reason=att.reason if att else "missing", **expected)
    pred = att.predicate
    builder = str(((pred.get("runDetails") or {}).get("builder") or {}).get("id") or "")
    workflow = workflow_of(builder)
    deps = (pred.get("buildDefinition") or {}).get("resolvedDependencies") or []
    named = {str(d.get("name")): d.get("digest") or {} for d in deps if d.get("name")}
    source = [
        d.get("digest") or {}
        for d in deps
        if d.get("name") == "source" or str(d.get("uri", "")).startswith("git+")
    ]
    commit = source[0].get("gitCommit") if source else None
    labels = v.labels
    problems: list[str] = []

    def differs(what: str, claimed: str | None, actual: str | None) -> None:
        if claimed and actual and claimed != actual:
            problems.append(f"provenance {what} {claimed[:19]} != {actual[:19]} in the image")

    differs("commit", commit, labels.get("org.opencontainers.image.revision"))
    differs(
        "model commit",
        named.get("model", {}).get("gitCommit"),
        labels.get("dev.release.model", "").rpartition("@")[2],
    )
    differs(
        "base",
        named.get("base", {}).get("sha256"),
        labels.get("org.opencontainers.image.base.digest", "").removeprefix("sha256:"),
    )
    if v.lock is not None:
        # the lock is named by its root digest (model-signing's)
        differs(
            "model lock",
            named.get("model-lock", {}).get("sha256"),
            v.lock.digest.removeprefix("sha256:"),
        )
    ok = not problems
    v.add(
        "provenance",
        ok,
        f"built by {workflow or builder} from {commit[:12] if commit else 'unknown commit'}; agrees with the image"
        if ok
        else "; ".join(problems),
    )
    return ProvenanceClaim(
        ok=ok, reason="; ".join(problems), workflow=workflow, commit=commit, **expected
    )
