"""The ledger: hash chain, tamper detection (sqlite edited by hand), locks, DynamoDB."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from release.config import load
from release.errors import PromotionLocked
from release.ledger import GENESIS, Ledger, SqliteStore, open_ledger
from tests.deploy.conftest import digest_of, write_config
from tests.fixtures.tools import run_cli


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger(SqliteStore(tmp_path / "ledger.db"))


def test_events_chain_and_current(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    a = led.append(
        "prod", "gate", digest_of("a"), actor="ci", decision={"allow": True, "reasons": []}
    )
    b = led.append(
        "prod", "promote", digest_of("a"), actor="ci", evidence={"evidence": digest_of("1")}
    )
    c = led.append("prod", "promote", digest_of("b"), actor="ci")
    led.append("dev", "promote", digest_of("c"), actor="ci")
    assert (a.seq, b.seq, c.seq) == (1, 2, 3)
    assert a.prev_hash == GENESIS and b.prev_hash == a.hash and c.prev_hash == b.hash
    assert led.current("prod") == c
    assert led.previous("prod") == b
    assert led.current("staging") is None
    assert [e.seq for e in led.events(env="prod", digest=digest_of("a"))] == [1, 2]
    st = led.verify_chain()
    assert st.ok and st.events == 4 and st.problems == ()


class _Racing(SqliteStore):
    """A store whose second and later reads see a forged event another writer slipped in
    after the first read (a row with a made-up hash: no chain would verify it)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = 0

    def read_all(self) -> list[dict[str, object]]:
        rows = super().read_all()
        self.reads += 1
        if self.reads > 1:
            last = rows[-1]
            rows = [*rows, {**last, "seq": int(str(last["seq"])) + 1, "digest": digest_of("e")}]
        return rows


def test_current_acts_on_the_one_read_it_verified(tmp_path: Path) -> None:
    """`current` reads the store once and acts on exactly the rows it verified: a forged
    event slipped in after that read is not what is live (with a verify read and then an
    events read, the second would have named it); the next read sees it and refuses."""
    from release.ledger.chain import LedgerBroken

    store = _Racing(tmp_path / "ledger.db")
    led = Ledger(store)
    for ch in "ab":
        led.append("prod", "promote", digest_of(ch), actor="ci")
    store.reads = 0
    assert led.current("prod").digest == digest_of("b")  # type: ignore[union-attr]
    assert store.reads == 1
    with pytest.raises(LedgerBroken, match="event seq 3: prev_hash does not match"):
        led.previous("prod")


def _sql(db: Path, stmt: str) -> None:
    con = sqlite3.connect(db)
    con.execute(stmt)
    con.commit()
    con.close()


def _three(tmp_path: Path) -> Ledger:
    led = _ledger(tmp_path)
    for ch in "abc":
        led.append("prod", "promote", digest_of(ch), actor="ci")
    return led


def test_edited_event_is_detected(tmp_path: Path) -> None:
    led = _three(tmp_path)
    _sql(tmp_path / "ledger.db", f"UPDATE events SET digest = '{digest_of('f')}' WHERE seq = 2")
    st = led.verify_chain()
    assert not st.ok
    assert st.problems == ("event seq 2: contents do not match its hash (edited)",)


def test_edited_and_rehashed_event_is_detected(tmp_path: Path) -> None:
    led = _three(tmp_path)
    ev = led.events()[1]
    from dataclasses import replace

    forged = replace(ev, actor="someone-else")
    forged = replace(forged, hash=forged.compute_hash())
    _sql(
        tmp_path / "ledger.db",
        f"UPDATE events SET actor = 'someone-else', hash = '{forged.hash}' WHERE seq = 2",
    )
    st = led.verify_chain()
    assert st.problems == (
        "event seq 3: prev_hash does not match the hash of the event before it "
        "(an event was inserted, deleted or edited)",
    )


def test_deleted_event_is_detected(tmp_path: Path) -> None:
    led = _three(tmp_path)
    _sql(tmp_path / "ledger.db", "DELETE FROM events WHERE seq = 2")
    st = led.verify_chain()
    assert st.problems[0] == "event seq 3 follows seq 1: an event was deleted"


def test_inserted_event_is_detected(tmp_path: Path) -> None:
    led = _three(tmp_path)
    _sql(tmp_path / "ledger.db", "UPDATE events SET seq = seq + 10 WHERE seq >= 2")
    _sql(tmp_path / "ledger.db", "UPDATE events SET seq = seq - 9 WHERE seq >= 12")
    first = led.events()[0]
    from dataclasses import replace

    ins = replace(first, seq=2, digest=digest_of("9"), prev_hash=first.hash)
    ins = replace(ins, hash=ins.compute_hash())
    led.store.insert(ins.to_dict())
    st = led.verify_chain()
    assert not st.ok
    assert st.problems[0] == (
        "event seq 3: prev_hash does not match the hash of the event before it "
        "(an event was inserted, deleted or edited)"
    )


def test_lock_is_exclusive_per_environment(tmp_path: Path) -> None:
    led = _ledger(tmp_path)
    with led.lock("prod"):
        with pytest.raises(PromotionLocked) as info, led.lock("prod"):
            pass
        assert info.value.exit_code == 1
        assert info.value.message.startswith("environment 'prod' is locked by another promotion (")
        with led.lock("dev"):
            pass
    with led.lock("prod"):  # released
        pass


def test_ledger_verify_cli_names_the_edited_row(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    led = open_ledger(load(cfg))
    for ch in "ab":
        led.append("prod", "promote", digest_of(ch), actor="ci")
    ok = run_cli("ledger", "verify", "--config", cfg)
    assert ok.code == 0, ok.stderr
    assert ok.stderr.startswith("chain intact: 2 events, head sha256:")
    _sql(tmp_path / ".release" / "ledger.db", "UPDATE events SET actor = 'mallory' WHERE seq = 1")
    bad = run_cli("ledger", "verify", "--config", cfg)
    assert bad.code == 1
    assert bad.stderr.splitlines()[0] == (
        "release: error: ledger chain broken: event seq 1: contents do not match its hash (edited)"
    )


@pytest.mark.aws
def test_dynamodb_ledger_conditional_writes(aws_env: dict[str, str], tmp_path: Path) -> None:
    from release.ledger import DynamoStore

    store = DynamoStore("release-ledger")
    led = Ledger(store)
    a = led.append("prod", "promote", digest_of("a"), actor="ci")
    b = led.append("prod", "promote", digest_of("b"), actor="ci")
    assert b.prev_hash == a.hash
    # a second writer that read the same tail cannot take seq 2
    assert store.insert({**b.to_dict(), "digest": digest_of("f")}) is False
    assert led.current("prod") == b
    assert led.verify_chain().ok
    # a second ledger object (another process) continues the same chain
    c = Ledger(DynamoStore("release-ledger")).append("prod", "rollback", digest_of("a"), actor="ci")
    assert (c.seq, c.prev_hash) == (3, b.hash)
    # lock: conditional put, exclusive
    other = Ledger(DynamoStore("release-ledger"))
    with led.lock("prod"), pytest.raises(PromotionLocked), other.lock("prod"):
        pass
    with led.lock("prod"):
        pass
    # edit an item behind the ledger's back
    import json

    from tests.deploy.conftest import boto

    ddb = boto("dynamodb")
    item = ddb.get_item(TableName="release-ledger", Key={"pk": {"S": "events"}, "seq": {"N": "2"}})[
        "Item"
    ]
    row = json.loads(item["event"]["S"])
    row["actor"] = "mallory"
    item["event"] = {"S": json.dumps(row)}
    ddb.put_item(TableName="release-ledger", Item=item)
    assert led.verify_chain().problems == ("event seq 2: contents do not match its hash (edited)",)
