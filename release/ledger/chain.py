"""The hash chain: events, how each is chained to the one before and verified
(`Ledger.verify_chain`), and the anchors by which signed promotion statements pin its
tail (`promotion_anchors`, `check_anchors`).

Every event is `{seq, time, actor, env, action, digest, evidence, decision, prev_hash,
hash}`. `hash` is `sha256:` over the canonical JSON of every other field, and `prev_hash`
is the hash of the event before it (`GENESIS` for the first), so editing, inserting or
deleting an event anywhere but at the tail breaks the chain: `verify_chain` names the
first event that no longer fits. The events live in a `release.ledger.LedgerStore`.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from release import lease as _lease
from release._io import canonical_json
from release.errors import RemoteError, VerificationFailed
from release.lease import Holder, Lease

if TYPE_CHECKING:
    from release.ledger import LedgerStore

GENESIS = "sha256:" + "0" * 64
#: actions that change what is live in an environment
LIVE_ACTIONS = frozenset({"promote", "rollback"})
_APPEND_RETRIES = 20


class LedgerBroken(VerificationFailed):
    """The ledger's chain does not verify (or a row cannot be read): nothing may act on it."""


def row_json(location: str, seq: Any, column: str, raw: Any) -> Any:
    """One JSON column of a stored row; garbage -> LedgerBroken naming the row."""
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        raise LedgerBroken(
            f"ledger {location}: event row seq {seq!r}: column {column} is not JSON "
            "(the row was edited outside the tool)"
        ) from None


# --- events ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    seq: int
    time: str
    actor: str
    env: str
    action: str
    digest: str
    evidence: dict[str, str] = field(default_factory=dict)
    decision: dict[str, Any] | None = None
    prev_hash: str = GENESIS
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """Every field the hash covers (all but `hash`)."""
        d = asdict(self)
        del d["hash"]
        return d

    def compute_hash(self) -> str:
        import hashlib

        return "sha256:" + hashlib.sha256(canonical_json(self.body())).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        """An event as stored; every field of its JSON type (a string is never taken for a
        number or the other way round: the hash covers the typed values)."""
        if not isinstance(d, dict):
            raise TypeError(f"an event is a JSON object, not {type(d).__name__}")
        seq = d["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise TypeError("seq is not an integer")
        for k in ("time", "actor", "env", "action", "digest", "prev_hash", "hash"):
            if not isinstance(d[k], str):
                raise TypeError(f"{k} is not a string")
        evidence = d.get("evidence") or {}
        if not isinstance(evidence, dict) or not all(isinstance(v, str) for v in evidence.values()):
            raise TypeError("evidence is not an object of strings")
        decision = d.get("decision")
        if decision is not None and not isinstance(decision, dict):
            raise TypeError("decision is not an object")
        return cls(
            seq=seq,
            time=d["time"],
            actor=d["actor"],
            env=d["env"],
            action=d["action"],
            digest=d["digest"],
            evidence=dict(evidence),
            decision=decision,
            prev_hash=d["prev_hash"],
            hash=d["hash"],
        )


@dataclass(frozen=True)
class ChainStatus:
    ok: bool
    events: int
    head: str | None
    problems: tuple[str, ...] = ()

    @property
    def detail(self) -> str:
        if self.ok:
            return f"chain intact: {self.events} events, head {self.head or GENESIS}"
        return self.problems[0]


@dataclass(frozen=True)
class Anchor:
    """A ledger event a signed statement names: it must be in the ledger, unchanged."""

    seq: int
    hash: str
    what: str


def promotion_anchors(predicate: Any, statement: str | None) -> list[Anchor]:
    """The events a promotion predicate names: its promote/rollback event, the event that
    one extends and the gate decision it acted on (genesis is no event)."""
    if not isinstance(predicate, dict):
        return []
    who = (
        f"{predicate.get('action', 'promotion')} of {str(predicate.get('digest'))[:19]} "
        f"in {predicate.get('env')!r}"
    )
    src = f"signed promotion statement {statement}" if statement else "a signed promotion statement"
    out = []
    led: dict[str, Any] = predicate["ledger"] if isinstance(predicate.get("ledger"), dict) else {}
    dec: dict[str, Any] = (
        predicate["decision"] if isinstance(predicate.get("decision"), dict) else {}
    )
    for doc, what in (
        (led, f"the {who}"),
        (led.get("extends"), f"the event the {who} extends"),
        (dec.get("ledger"), f"the gate decision of the {who}"),
    ):
        if not isinstance(doc, dict):
            continue
        seq, h = doc.get("seq"), doc.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(h, str):
            continue
        if seq == 0 and h == GENESIS:
            continue
        out.append(Anchor(seq, h, f"{what} ({src})"))
    return out


def check_anchors(events: list[Event], anchors: list[Anchor]) -> list[str]:
    """One problem per anchor whose event is missing from `events` or differs."""
    by_seq = {e.seq: e for e in events}
    problems = []
    for a in sorted(set(anchors), key=lambda a: a.seq):
        ev = by_seq.get(a.seq)
        if ev is None:
            problems.append(
                f"ledger event seq {a.seq} is missing: {a.what} names it "
                "(the ledger was truncated or rewritten)"
            )
        elif ev.hash != a.hash:
            problems.append(
                f"ledger event seq {a.seq} has hash {ev.hash}, but {a.what} names {a.hash} "
                "(the ledger was rewritten)"
            )
    return problems


def default_actor() -> str:
    """Who is acting: $RELEASE_ACTOR, else the CI actor, else user@host."""
    for var in ("RELEASE_ACTOR", "GITHUB_ACTOR"):
        if os.environ.get(var):
            return os.environ[var]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- the ledger -----------------------------------------------------------------------
class Ledger:
    """Append-only, hash-chained events over a `LedgerStore`."""

    def __init__(self, store: LedgerStore, *, clock: Callable[[], float] = _time.time) -> None:
        self.store = store
        self.clock = clock  # wall-clock seconds, for the promotion lease (tests pass a fake)

    @property
    def location(self) -> str:
        return self.store.location

    def append(
        self,
        env: str,
        action: str,
        digest: str,
        actor: str | None = None,
        evidence: dict[str, str] | None = None,
        decision: dict[str, Any] | None = None,
    ) -> Event:
        """Add one event at the tail. A concurrent writer that took the same `seq` makes
        this retry on top of it; the chain never forks."""
        who = actor or default_actor()
        for _ in range(_APPEND_RETRIES):
            last = self.store.last()
            seq = int(last["seq"]) + 1 if last else 1
            prev = str(last["hash"]) if last else GENESIS
            ev = Event(
                seq=seq,
                time=_now(),
                actor=who,
                env=env,
                action=action,
                digest=digest,
                evidence=dict(evidence or {}),
                decision=json.loads(json.dumps(decision)) if decision is not None else None,
                prev_hash=prev,
            )
            ev = Event(**{**ev.body(), "hash": ev.compute_hash()})
            if self.store.insert(ev.to_dict()):
                return ev
            _time.sleep(0.01)
        raise RemoteError(
            f"ledger {self.location}: could not append after {_APPEND_RETRIES} attempts "
            "(too many concurrent writers); run the command again"
        )

    def events(self, env: str | None = None, digest: str | None = None) -> list[Event]:
        return self._parse(self.store.read_all(), env, digest)

    def _parse(
        self, rows: list[dict[str, Any]], env: str | None = None, digest: str | None = None
    ) -> list[Event]:
        out = []
        for r in rows:
            try:
                out.append(Event.from_dict(r))
            except (KeyError, TypeError, ValueError) as exc:
                seq = r.get("seq") if isinstance(r, dict) else None
                raise LedgerBroken(
                    f"ledger {self.location}: event seq {seq!r} is malformed: {exc}"
                ) from None
        if env is not None:
            out = [e for e in out if e.env == env]
        if digest is not None:
            out = [e for e in out if e.digest == digest]
        return out

    def snapshot(self, env: str | None = None) -> tuple[ChainStatus, list[Event]]:
        """The chain's status and its events (of `env`), from ONE read of the store: what
        a caller reports or acts on is exactly what was verified. A malformed row raises
        LedgerBroken, as `events` does."""
        rows = self.store.read_all()
        return self._verify_rows(rows), self._parse(rows, env)

    def _live(self, env: str) -> list[Event]:
        """The live events of `env`, from a chain that verifies (else LedgerBroken): one
        read of the store, verified and then used, so what is acted on is exactly what was
        verified (an event appended between two reads could not slip in unverified)."""
        rows = self.store.read_all()
        chain = self._verify_rows(rows)
        if not chain.ok:
            raise LedgerBroken(
                f"ledger {self.location} chain broken: {chain.problems[0]}; refusing to act on "
                f"what it says is live in {env!r} (run `release ledger verify`)"
            )
        return [e for e in self._parse(rows, env=env) if e.action in LIVE_ACTIONS]

    def current(self, env: str) -> Event | None:
        """The event that made the environment's live digest live (None: never promoted).
        The chain is verified first: a broken one raises LedgerBroken (exit 1)."""
        live = self._live(env)
        return live[-1] if live else None

    def previous(self, env: str) -> Event | None:
        """The last live event before the current one whose digest differs from it."""
        live = self._live(env)
        if not live:
            return None
        cur = live[-1].digest
        for e in reversed(live[:-1]):
            if e.digest != cur:
                return e
        return None

    def verify_chain(self) -> ChainStatus:
        """Recompute every hash and link; name the first event that does not fit."""
        return self._verify_rows(self.store.read_all())

    def _verify_rows(self, rows: list[dict[str, Any]]) -> ChainStatus:
        problems: list[str] = []
        prev = GENESIS
        expected_seq = 1
        for r in rows:
            try:
                ev = Event.from_dict(r)
                ev.compute_hash()
            except (KeyError, TypeError, ValueError) as exc:
                seq = r.get("seq") if isinstance(r, dict) else None
                problems.append(f"event at seq {seq!r} is malformed: {exc}")
                break
            if ev.seq != expected_seq:
                problems.append(
                    f"event seq {ev.seq} follows seq {expected_seq - 1}: "
                    f"{'an event was deleted' if ev.seq > expected_seq else 'an event was inserted'}"
                )
            if ev.prev_hash != prev:
                problems.append(
                    f"event seq {ev.seq}: prev_hash does not match the hash of the event before it "
                    "(an event was inserted, deleted or edited)"
                )
            if ev.compute_hash() != ev.hash:
                problems.append(f"event seq {ev.seq}: contents do not match its hash (edited)")
            prev = ev.hash
            expected_seq = ev.seq + 1
        head = str(rows[-1].get("hash")) if rows and isinstance(rows[-1], dict) else None
        return ChainStatus(ok=not problems, events=len(rows), head=head, problems=tuple(problems))

    # --- the promotion lease (release.lease) -------------------------------------------
    @contextlib.contextmanager
    def lock(
        self, env: str, *, ttl: float = _lease.LEASE_SECONDS, holder: Holder | None = None
    ) -> Iterator[Lease]:
        """Hold the promotion lease of `env`; PromotionLocked if another promotion has it."""
        held = _lease.acquire(self.store, env, now=self.clock(), ttl=ttl, holder=holder)
        try:
            yield held
        finally:
            _lease.release(self.store, held)

    def renew(self, lease: Lease, *, ttl: float = _lease.LEASE_SECONDS) -> Lease:
        """Extend a lease we hold; LeaseLost if another promotion took it over."""
        return _lease.renew(self.store, lease, now=self.clock(), ttl=ttl)

    def lease(self, env: str) -> Lease | None:
        """The promotion lease of `env` as stored (None: nobody holds one)."""
        return _lease.read(self.store, env)

    # --- notes: the latest state of something, outside the chain --------------------------
    def note(self, key: str) -> dict[str, Any] | None:
        """The note stored under `key` (None: none). Not hash-chained: for display only."""
        return self.store.read_note(key)

    def set_note(self, key: str, row: dict[str, Any]) -> None:
        """Overwrite the note under `key`."""
        self.store.write_note(key, row)
