"""The ledger: an append-only, hash-chained record of every gate, promotion and rollback.

Every event is `{seq, time, actor, env, action, digest, evidence, decision, prev_hash,
hash}`. `hash` is `sha256:` over the canonical JSON of every other field, and `prev_hash`
is the hash of the event before it (`GENESIS` for the first), so editing, inserting or
deleting an event anywhere but at the tail breaks the chain: `verify_chain` names the
first event that no longer fits.

Backends (`[ledger].url`): `sqlite:PATH` (default, a file next to the config) and
`dynamodb:TABLE` (teams; every append is a conditional write on `seq`, so two writers can
never both claim the same place in the chain). Both also hold the per-environment
promotion lease (`release.lease`: holder, expiry, takeover of a dead holder's lease) and
notes: the latest state of something, overwritten and outside the chain (the drift
guard's last check, `Ledger.note`), never used to decide anything.

The live digest of an environment is the digest of its latest `promote` or `rollback`
event (`Ledger.current`). Nothing acts on a broken chain: `current` and `previous`
re-verify it first and refuse (`LedgerBroken`, exit 1), so promote, rollback, invoke,
status and the canary's baseline never trust an edited history.

A hash chain cannot see its tail cut off. Signed promotion statements anchor it: each
names its `promote` event (seq, hash), the event that one extends and the gate event it
acted on; `check_anchors` finds each named event in the ledger or says which is missing.

The package: `chain` (events, the hash chain, anchors, `Ledger`), one file per
backend (`sqlite`, `dynamodb`) behind the `LedgerStore` protocol, and `open_ledger`.
"""

from __future__ import annotations

from typing import Any, Protocol

from release.config import Config
from release.errors import ConfigError, UsageError
from release.ledger.chain import (
    GENESIS,
    LIVE_ACTIONS,
    Anchor,
    ChainStatus,
    Event,
    Ledger,
    LedgerBroken,
    check_anchors,
    default_actor,
    promotion_anchors,
)
from release.ledger.dynamodb import DynamoStore
from release.ledger.sqlite import SqliteStore


class LedgerStore(Protocol):
    """Where events live. `insert` must fail (return False) if `seq` is already taken."""

    location: str

    def read_all(self) -> list[dict[str, Any]]: ...

    def last(self) -> dict[str, Any] | None: ...

    def insert(self, row: dict[str, Any]) -> bool: ...

    # the promotion lease (release.lease)
    def read_lease(self, env: str) -> dict[str, Any] | None: ...

    def write_lease(
        self, env: str, row: dict[str, Any], *, replace: str | None, now: float
    ) -> bool: ...

    def drop_lease(self, env: str, token: str) -> None: ...

    # notes: the latest state of something, outside the hash chain (overwritten, never
    # verified: for display, e.g. the drift guard's last check)
    def read_note(self, key: str) -> dict[str, Any] | None: ...

    def write_note(self, key: str, row: dict[str, Any]) -> None: ...


def open_ledger(cfg: Config, *, dynamodb_client: Any = None) -> Ledger:
    """The ledger `[ledger].url` names (sqlite paths are relative to the config)."""
    url = cfg.ledger.url
    scheme, _, rest = url.partition(":")
    if not rest:
        raise ConfigError(f"[ledger].url {url!r} names no path or table")
    if scheme == "sqlite":
        return Ledger(SqliteStore(cfg.resolve(rest)))
    if scheme == "dynamodb":
        return Ledger(DynamoStore(rest, client=dynamodb_client))
    raise UsageError(f"[ledger].url {url!r}: unknown scheme {scheme!r}")


__all__ = [
    "GENESIS",
    "LIVE_ACTIONS",
    "Anchor",
    "ChainStatus",
    "DynamoStore",
    "Event",
    "Ledger",
    "LedgerBroken",
    "LedgerStore",
    "SqliteStore",
    "check_anchors",
    "default_actor",
    "open_ledger",
    "promotion_anchors",
]
