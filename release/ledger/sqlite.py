"""`sqlite:PATH`: the ledger's events and promotion leases in one SQLite file."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

from release.errors import CheckFailed, ConfigError
from release.ledger.chain import row_json


class SqliteStore:
    """`sqlite:PATH`: one file; `seq` is the primary key, leases a table keyed by env."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        from pathlib import Path

        self.path = Path(path)
        self.location = f"sqlite:{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.executescript(
                    """
                    CREATE TABLE IF NOT EXISTS events (
                      seq INTEGER PRIMARY KEY, time TEXT NOT NULL, actor TEXT NOT NULL,
                      env TEXT NOT NULL, action TEXT NOT NULL, digest TEXT NOT NULL,
                      evidence TEXT NOT NULL, decision TEXT, prev_hash TEXT NOT NULL,
                      hash TEXT NOT NULL);
                    CREATE TABLE IF NOT EXISTS leases (
                      env TEXT PRIMARY KEY, token TEXT NOT NULL, lease TEXT NOT NULL,
                      expires REAL NOT NULL);
                    CREATE TABLE IF NOT EXISTS notes (key TEXT PRIMARY KEY, note TEXT NOT NULL);
                    """
                )
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"[ledger].url: cannot open ledger {self.path}: {exc}") from None

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            yield db
        finally:
            db.close()

    def _row(self, r: tuple[Any, ...]) -> dict[str, Any]:
        seq, t, actor, env, action, digest, evidence, decision, prev, h = r
        return {
            "seq": seq,
            "time": t,
            "actor": actor,
            "env": env,
            "action": action,
            "digest": digest,
            "evidence": row_json(self.location, seq, "evidence", evidence),
            "decision": row_json(self.location, seq, "decision", decision)
            if decision is not None
            else None,
            "prev_hash": prev,
            "hash": h,
        }

    _COLS = "seq, time, actor, env, action, digest, evidence, decision, prev_hash, hash"

    def read_all(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute(f"SELECT {self._COLS} FROM events ORDER BY seq").fetchall()
        return [self._row(r) for r in rows]

    def last(self) -> dict[str, Any] | None:
        with self._connect() as db:
            r = db.execute(f"SELECT {self._COLS} FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return self._row(r) if r else None

    def insert(self, row: dict[str, Any]) -> bool:
        values = (
            row["seq"],
            row["time"],
            row["actor"],
            row["env"],
            row["action"],
            row["digest"],
            json.dumps(row["evidence"], sort_keys=True),
            json.dumps(row["decision"], sort_keys=True) if row["decision"] is not None else None,
            row["prev_hash"],
            row["hash"],
        )
        try:
            with self._connect() as db:
                db.execute(
                    f"INSERT INTO events ({self._COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)", values
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def read_lease(self, env: str) -> dict[str, Any] | None:
        with self._connect() as db:
            r = db.execute("SELECT lease FROM leases WHERE env = ?", (env,)).fetchone()
        if r is None:
            return None
        try:
            row = json.loads(r[0])
        except ValueError:
            raise CheckFailed(
                f"ledger {self.path}: the promotion lease of {env!r} is not JSON"
            ) from None
        return row if isinstance(row, dict) else {}

    def write_lease(
        self, env: str, row: dict[str, Any], *, replace: str | None, now: float
    ) -> bool:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                r = db.execute("SELECT token, expires FROM leases WHERE env = ?", (env,)).fetchone()
                ok = (
                    (r is None or r[1] <= now)
                    if replace is None
                    else (r is not None and r[0] == replace)
                )
                if ok:
                    db.execute(
                        "INSERT OR REPLACE INTO leases (env, token, lease, expires) VALUES (?,?,?,?)",
                        (env, row["token"], json.dumps(row, sort_keys=True), float(row["expires"])),
                    )
                db.execute("COMMIT")
                return ok
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def drop_lease(self, env: str, token: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM leases WHERE env = ? AND token = ?", (env, token))

    # notes: the latest state of something, outside the chain (release.guard's last check)
    def read_note(self, key: str) -> dict[str, Any] | None:
        with self._connect() as db:
            r = db.execute("SELECT note FROM notes WHERE key = ?", (key,)).fetchone()
        if r is None:
            return None
        row = row_json(self.location, key, "note", r[0])
        return row if isinstance(row, dict) else None

    def write_note(self, key: str, row: dict[str, Any]) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO notes (key, note) VALUES (?, ?)",
                (key, json.dumps(row, sort_keys=True)),
            )
