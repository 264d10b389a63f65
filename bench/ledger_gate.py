"""Ledger and gate costs: what a promotion spends on bookkeeping and on the policy.

Prints one table: per-operation time of
- ledger append (sqlite, hash-chained, one connection and transaction per event) vs a bare
  sqlite INSERT of the same row into the same kind of table (no hashing, one connection);
- ledger verify_chain per event;
- gate.evaluate (loads and compiles policy/release, evaluates one Evidence) vs a query on
  an interpreter that already holds the compiled policy.

Usage: .venv/bin/python bench/ledger_gate.py [--events N] [--decisions N]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from release import gate  # noqa: E402
from release.evidence import PREDICATES, Evidence  # noqa: E402
from release.ledger import Ledger, SqliteStore  # noqa: E402


def _evidence() -> Evidence:
    d = "sha256:" + "b" * 64
    sig = {"ok": True, "present": True, "signer": "wf", "issuer": "iss"}
    return Evidence.model_validate(
        {
            "digest": d,
            "repository": "r",
            "env": "prod",
            "signatures": {n: {**sig, "predicate_type": t} for n, t in PREDICATES.items()},
            "sbom": {
                "ok": True,
                "present": True,
                "subject_ok": True,
                "model_files_match_lock": True,
            },
            "provenance": {"ok": True},
            "model_layer": {"ok": True},
            "canary": {"ok": True, "passed": True},
            "vulnerabilities": {"ok": True, "configured": False},
        }
    )


def bench_ledger(n: int, tmp: Path) -> tuple[float, float, float]:
    led = Ledger(SqliteStore(tmp / "ledger.db"))
    ev = {"evidence": "sha256:" + "1" * 64, "policy": "sha256:" + "2" * 64}
    t0 = time.perf_counter()
    for i in range(n):
        led.append("prod", "deploy.update", "sha256:" + f"{i:064x}", actor="bench", evidence=ev)
    append = (time.perf_counter() - t0) / n

    db = sqlite3.connect(tmp / "bare.db", isolation_level=None)
    db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, body TEXT)")
    t0 = time.perf_counter()
    for i in range(n):
        db.execute(
            "INSERT INTO events VALUES (?, ?)", (i + 1, json.dumps({"evidence": ev, "i": i}))
        )
    bare = (time.perf_counter() - t0) / n
    db.close()

    t0 = time.perf_counter()
    st = led.verify_chain()
    verify = (time.perf_counter() - t0) / n
    assert st.ok and st.events == n
    return append, bare, verify


def bench_gate(n: int) -> tuple[float, float]:
    import regopy

    policy = gate.default_policy()
    ev = _evidence()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        d = gate.evaluate(ev, policy)
        times.append(time.perf_counter() - t0)
        assert d.allow
    full = statistics.median(times)

    rego = regopy.Interpreter()
    for name, src in policy.modules:
        rego.add_module(name, src)
    rego.set_input(regopy.Input(ev.to_input()))
    rego.query("data.release.gate")  # warm
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        out = rego.query("data.release.gate")
        times.append(time.perf_counter() - t0)
        assert '"allow":true' in str(out)
    warm = statistics.median(times)
    return full, warm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--decisions", type=int, default=30)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        append, bare, verify = bench_ledger(a.events, Path(d))
    full, warm = bench_gate(a.decisions)
    print(f"ledger: {a.events} events (sqlite); gate: median of {a.decisions} decisions")
    print(f"{'operation':<46} {'ms/op':>9} {'baseline':>10} {'ratio':>7}")
    rows = [
        ("ledger append (hash-chained, own txn)", append, bare, "bare INSERT"),
        ("ledger verify_chain (per event)", verify, append, "ledger append"),
        ("gate.evaluate (compile + evaluate)", full, warm, "warm query"),
    ]
    for name, v, base, base_name in rows:
        print(f"{name:<46} {v * 1e3:>9.3f} {base * 1e3:>10.3f} {v / base:>6.2f}x  (vs {base_name})")


if __name__ == "__main__":
    main()
