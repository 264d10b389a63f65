"""The per-environment promotion lease: of two promotions of one environment, one proceeds.

A lease is a row in the ledger's store (`LedgerStore.read_lease/write_lease/drop_lease`,
SQLite table `leases` or DynamoDB item `lease#ENV`) naming its holder - user, host and
process id - when it was taken and when it expires. The holder renews it at every step it
records in the ledger (`renew`); a renewal that finds another holder's token stops the
promotion (`LeaseLost`) before it touches anything more.

Taking a lease that is held:
- by a live holder, not yet expired: refused (`PromotionLocked`, exit 1), naming the holder
  and the expiry;
- by a process of this host that no longer exists: taken over at once;
- by a holder on another host (whose process cannot be checked from here): taken over
  only after its expiry. A promoter killed on another host therefore blocks the
  environment until its lease runs out (`LEASE_SECONDS` after its last step, plus one
  canary look interval); the takeover is recorded with the promotion that made it.

Every write is conditional (SQLite: inside `BEGIN IMMEDIATE`; DynamoDB: a condition
expression on `expires` or the holder's `token`), so two promoters racing for an expired
lease cannot both win.
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from release.errors import CheckFailed, LeaseLost, PromotionLocked

#: how long a lease lasts after it was taken or last renewed
LEASE_SECONDS = 900


class LeaseStore(Protocol):
    location: str

    def read_lease(self, env: str) -> dict[str, Any] | None: ...

    def write_lease(
        self, env: str, row: dict[str, Any], *, replace: str | None, now: float
    ) -> bool:
        """Write `row` if (replace is None) no lease exists or it expired before `now`, or
        (replace = a token) the stored lease still has that token. False otherwise."""
        ...

    def drop_lease(self, env: str, token: str) -> None: ...


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: user, host, process id."""

    user: str
    host: str
    pid: int

    @classmethod
    def current(cls) -> Holder:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        return cls(user, socket.gethostname(), os.getpid())

    def __str__(self) -> str:
        return f"{self.user}@{self.host} pid {self.pid}"

    def gone(self) -> bool:
        """True only when this holder is a process of this host that no longer exists."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


@dataclass(frozen=True)
class Lease:
    env: str
    token: str
    holder: Holder
    since: float
    expires: float
    #: the lease this one took over ("" = none): holder and why
    took_over: str = ""

    @property
    def until(self) -> str:
        return _iso(self.expires)

    def to_row(self) -> dict[str, Any]:
        return {**asdict(self), "holder": asdict(self.holder)}

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str) -> Lease:
        try:
            h = row["holder"]
            return cls(
                env=str(row["env"]),
                token=str(row["token"]),
                holder=Holder(str(h["user"]), str(h["host"]), int(h["pid"])),
                since=float(row["since"]),
                expires=float(row["expires"]),
                took_over=str(row.get("took_over", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckFailed(f"{where}: the promotion lease row is malformed ({exc!r})") from None

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "holder": str(self.holder),
            "user": self.holder.user,
            "host": self.holder.host,
            "pid": self.holder.pid,
            "since": _iso(self.since),
            "expires": self.until,
            "expired": self.expires <= now,
            "took_over": self.took_over,
        }


def locked(lease: Lease) -> PromotionLocked:
    """The error for a lease held by a live holder: who holds it, since when, until when."""
    return PromotionLocked(
        f"environment {lease.env!r} is locked by another promotion ({lease.holder}, since "
        f"{_iso(lease.since)}, lease expires {lease.until}); wait for it to finish, or for the "
        "lease to expire if that promoter is dead, then run the command again"
    )


def read(store: LeaseStore, env: str) -> Lease | None:
    row = store.read_lease(env)
    return Lease.from_row(row, store.location) if row is not None else None


def acquire(
    store: LeaseStore, env: str, *, now: float, ttl: float, holder: Holder | None = None
) -> Lease:
    """Take the lease of `env` (see the module docstring for when a held one is taken over)."""
    held = read(store, env)
    took_over = ""
    replacing: str | None = None
    if held is not None:
        if held.holder.gone():
            took_over = f"{held.holder} (process gone)"
        elif held.expires <= now:
            took_over = f"{held.holder} (lease expired {held.until})"
        else:
            raise locked(held)
        replacing = held.token
    lease = Lease(env, uuid.uuid4().hex, holder or Holder.current(), now, now + ttl, took_over)
    if not store.write_lease(env, lease.to_row(), replace=replacing, now=now):
        cur = read(store, env)
        if cur is not None:
            raise locked(cur)
        raise PromotionLocked(
            f"environment {env!r}: another promotion raced for the lease; run the command again"
        )
    return lease


def renew(store: LeaseStore, lease: Lease, *, now: float, ttl: float) -> Lease:
    """Extend our lease; LeaseLost if another promoter holds it now."""
    new = replace(lease, expires=now + ttl)
    if store.write_lease(lease.env, new.to_row(), replace=lease.token, now=now):
        return new
    cur = read(store, lease.env)
    who = f"{cur.holder}" if cur is not None else "nobody (it was removed)"
    raise LeaseLost(
        f"the promotion lease of {lease.env!r} is now held by {who}: this promotion stopped "
        "without touching anything more; run `release status` to see where every function is"
    )


def release(store: LeaseStore, lease: Lease) -> None:
    store.drop_lease(lease.env, lease.token)
