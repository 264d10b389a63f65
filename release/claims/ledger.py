"""Verify the ledger: its hash chain re-computed, and every event a signed promotion
statement names (its anchors) present with that hash; `release ledger verify`.
"""

from __future__ import annotations

from dataclasses import dataclass

from release.attest.signatures import Policy, policy_from_config, verify_all_stored
from release.claims.checklist import Verification
from release.config import Config
from release.digest import Digest, is_digest
from release.evidence import PROMOTION
from release.ledger import (
    Anchor,
    ChainStatus,
    Event,
    LedgerBroken,
    check_anchors,
    open_ledger,
    promotion_anchors,
)


def check_ledger(cfg: Config, v: Verification) -> list[Event] | None:
    """The chain re-computed and every event the digest's signed promotion statements
    name present with that hash; the ledger's events, or None when a row is unreadable
    (a failed `ledger chain` check)."""
    led = open_ledger(cfg)
    try:
        chain, all_events = led.snapshot()
    except LedgerBroken as exc:
        v.add("ledger chain", False, exc.message)
        return None
    v.add("ledger chain", chain.ok, chain.detail)
    anchors = [a for vs in v.promotions for a in promotion_anchors(vs.predicate, vs.bundle_digest)]
    missing = check_anchors(all_events, anchors)
    v.add(
        "ledger anchors",
        not missing,
        f"{len(anchors)} events named by {len(v.promotions)} signed promotion statements are in the ledger"
        if not missing
        else "; ".join(missing[:3]),
    )
    return all_events


@dataclass(frozen=True)
class LedgerCheck:
    """`release ledger verify`: the chain, and every event a signed statement names."""

    chain: ChainStatus
    anchors: int
    statements: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.problems


def verify_ledger(cfg: Config) -> LedgerCheck:
    """Re-compute the chain, then check it against every signed anchor that can be found:
    the promotion statements stored with each digest the ledger names and (an OCI layout
    registry) with every image the registry holds. A missing or different event that a
    signed statement names is a problem naming it. A row that cannot be read: LedgerBroken."""
    from release.attest.store import fetch_bundles
    from release.image.layout import LayoutRegistry
    from release.image.oci import MANIFEST_TYPES
    from release.image.registry import open_registry

    led = open_ledger(cfg)
    chain, events = led.snapshot()
    where: dict[str, set[str]] = {}
    for e in events:
        ref = e.evidence.get("reference") or ""
        repo = ref.rpartition("@")[0] if "@" in ref else ""
        if is_digest(e.digest):
            where.setdefault(repo or cfg.image.registry, set()).add(e.digest)
    default = open_registry(cfg.image.registry, cfg.root)
    if isinstance(default, LayoutRegistry):  # a layout can list every image it holds
        for m in default._index().get("manifests", []):
            if m.get("mediaType") in MANIFEST_TYPES and not m.get("artifactType"):
                where.setdefault(cfg.image.registry, set()).add(m["digest"])
    policy: Policy | None = None  # read once a statement is found (a KMS key is fetched once)
    anchors: list[Anchor] = []
    statements = 0
    for repo, digests in sorted(where.items()):
        reg = default if repo == cfg.image.registry else open_registry(repo, cfg.root)
        for d in sorted(digests):
            if not fetch_bundles(reg, Digest(d), PROMOTION):
                continue
            policy = policy or policy_from_config(cfg.signing, cfg.root)
            for vs in verify_all_stored(reg, d, PROMOTION, policy):
                statements += 1
                anchors.extend(promotion_anchors(vs.predicate, vs.bundle_digest))
    problems = tuple(check_anchors(events, anchors))
    return LedgerCheck(chain, len(anchors), statements, problems)
