"""Verify the canary claim: the newest signed canary report is about this image and
model, compares with what is live in the environment, pairs enough of its corpus, and
passed.
"""

from __future__ import annotations

import hashlib
import math

from release._io import canonical_json
from release.attest.signatures import VerifiedStatement
from release.claims.checklist import Verification
from release.config import Config
from release.errors import VerificationFailed
from release.evidence import CanaryClaim, newest_canary


def expected_baselines(cfg: Config, v: Verification) -> tuple[set[str | None] | None, str]:
    """The baselines a canary report of `v.digest` may have been compared with in `v.env`:
    the digest live there now (when that is not this digest), and what was live when this
    digest was itself made live (a rollback re-promotes it). None: anything (no `--env`,
    or nothing live yet - a first release has no baseline to roll back to).
    The ledger's chain is verified first (LedgerBroken otherwise)."""
    from release.ledger import open_ledger

    if not v.env:
        return None, ""
    led = open_ledger(cfg)
    cur = led.current(v.env)
    if cur is None:
        return None, ""
    ok: set[str | None] = set()
    if cur.digest != v.digest:
        ok.add(cur.digest)
    for e in led.events(env=v.env, digest=v.digest):
        if e.action in ("promote", "rollback"):
            ok.add(e.evidence.get("from") or None)
    return ok, cur.digest


def check_canary(cfg: Config, v: Verification, statements: list[VerifiedStatement]) -> CanaryClaim:
    """The report that counts is the newest by the signed `created` time (a failing one
    wins ties); it must be about this image and model, compare with the digest live in
    the environment, and pair at least [canary].min_paired_fraction of its corpus."""
    att = v.attestations.get("canary")
    chosen = newest_canary(statements)
    if chosen is None:
        return CanaryClaim(ok=False, reason=att.reason if att else "missing", passed=False)
    rep = chosen.predicate
    report_digest = "sha256:" + hashlib.sha256(canonical_json(rep)).hexdigest()

    def fail(reason: str) -> CanaryClaim:
        v.add("canary", False, reason)
        return CanaryClaim(ok=False, reason=reason, passed=False, report_digest=report_digest)

    passed = rep.get("passed") is True
    failed = (
        [str(x) for x in rep.get("failed_checks") or []]
        if isinstance(rep.get("failed_checks"), list)
        else []
    )
    subj = rep.get("subject") if isinstance(rep.get("subject"), dict) else {}
    subject = subj.get("digest")
    if subject and subject != v.digest:
        return fail(f"canary report is about {subject}, not this image")
    if v.lock is not None:
        md = subj.get("model_digest")
        if md and md != v.lock.digest:
            return fail(f"canary ran model {md}, the image has {v.lock.digest}")
    base = rep.get("baseline") if isinstance(rep.get("baseline"), dict) else None
    n = rep.get("n")
    if base is not None:
        paired, need = base.get("paired_items"), cfg.canary.min_paired_fraction
        if not isinstance(paired, int) or not isinstance(n, int) or paired < math.ceil(need * n):
            return fail(
                f"canary report {chosen.bundle_digest} pairs {paired} of {n} items with its baseline: "
                f"fewer than [canary].min_paired_fraction = {need:g} of the corpus"
            )
    try:
        accepted, live = expected_baselines(cfg, v)
    except VerificationFailed as exc:
        return fail(f"cannot tell what is live in {v.env!r}: {exc.message}")
    if accepted is not None:
        got = base.get("digest") if base is not None else None
        if got not in accepted:
            return fail(
                f"the newest canary report ({rep.get('created') or 'undated'}, {chosen.bundle_digest}) "
                f"compares with {got or 'no baseline'}, but {v.env} runs {live}: "
                f"run the canary against the live release (release canary DIGEST --env {v.env})"
            )
    v.add(
        "canary",
        passed,
        f"passed on {n} items (report of {rep.get('created') or 'undated'})"
        if passed
        else f"failed: {', '.join(failed) or 'see report'}",
    )
    return CanaryClaim(
        ok=True,
        reason="" if passed else ", ".join(failed),
        passed=passed,
        report_digest=report_digest,
        failed_checks=failed,
    )
