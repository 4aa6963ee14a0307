"""The state store: cursor, ledger, deferred/failed lists, log retention, migrations, multi-process use."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import sqlite3

import pytest

from client.state import LOG_RETENTION, SCHEMA_VERSION, StateError, StateStore


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path, clock) -> StateStore:
    with StateStore(tmp_path / "state.sqlite", now=clock) as s:
        yield s


def test_new_file_is_wal_with_current_schema(tmp_path):
    path = tmp_path / "s.sqlite"
    StateStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_connect_gives_pragmas_for_other_modules(store):
    conn = store.connect()
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    conn.execute("CREATE TABLE IF NOT EXISTS other_owner (x INTEGER)")
    conn.execute("INSERT INTO other_owner VALUES (1)")
    assert conn.execute("SELECT count(*) FROM other_owner").fetchone()[0] == 1
    conn.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    StateStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(StateError, match="newer koppel"):
        StateStore(path)


def test_not_a_state_file_is_refused(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StateError, match="cannot"):
        StateStore(path)


def test_reopen_keeps_data(tmp_path):
    path = tmp_path / "s.sqlite"
    with StateStore(path) as s:
        s.set_cursor("shop", "abc")
    with StateStore(path) as s:
        assert s.get_cursor("shop") == "abc"
        assert s.schema_version == SCHEMA_VERSION


def test_cursor_per_profile(store):
    assert store.get_cursor("a") is None
    store.set_cursor("a", "c1")
    store.set_cursor("b", "x")
    store.set_cursor("a", "c2")
    assert store.get_cursor("a") == "c2"
    assert store.get_cursor("b") == "x"
    with pytest.raises(ValueError):
        store.set_cursor("a", "")
    store.reset_cursor("a")
    assert store.get_cursor("a") is None


def test_ledger_pending_then_done(store, clock):
    assert store.ledger_get("shop", 7) is None
    store.ledger_mark_pending("shop", 7, number="100000007", betalingskenmerk="100000007")
    entry = store.ledger_get("shop", 7)
    assert entry.state == "pending" and entry.snelstart_id is None and entry.number == "100000007"
    clock.now += dt.timedelta(seconds=5)
    store.ledger_mark_done(
        "shop",
        7,
        number="100000007",
        snelstart_id="so-1",
        snelstart_nummer=12,
        relatiecode=1005,
        how="created",
    )
    entry = store.ledger_get("shop", 7)
    assert (entry.state, entry.snelstart_id, entry.snelstart_nummer, entry.relatiecode) == (
        "done",
        "so-1",
        12,
        1005,
    )
    assert entry.betalingskenmerk == "100000007"
    assert entry.updated_at - entry.created_at == dt.timedelta(seconds=5)
    assert store.ledger_by_snelstart_id("shop", "so-1").entity_id == 7
    assert store.ledger_by_snelstart_id("other", "so-1") is None
    # same entity id under another profile is another order
    assert store.ledger_get("other", 7) is None
    with pytest.raises(StateError, match="already imported"):
        store.ledger_mark_pending("shop", 7, number="100000007", betalingskenmerk="100000007")
    assert [e.entity_id for e in store.ledger_entries("shop", state="done")] == [7]


def test_ledger_clear_pending_leaves_done(store):
    store.ledger_mark_pending("p", 1, number="1", betalingskenmerk="1")
    store.ledger_mark_done("p", 2, number="2", snelstart_id="x", snelstart_nummer=1)
    store.ledger_clear_pending("p", 1)
    store.ledger_clear_pending("p", 2)
    assert store.ledger_get("p", 1) is None
    assert store.ledger_get("p", 2).state == "done"


def test_failed_attempts_and_done_clears_failed_and_deferred(store, clock):
    first = store.failed_record("p", 5, number="5", reason="ambiguous customer")
    assert first.attempts == 1
    clock.now += dt.timedelta(hours=1)
    second = store.failed_record("p", 5, number="5", reason="unknown article X")
    assert second.attempts == 2 and second.reason == "unknown article X"
    assert second.last_try - second.first_failed == dt.timedelta(hours=1)
    store.deferred_add("p", 6, number="6", state="pending_payment", created_at=clock.now)
    assert [f.entity_id for f in store.failed_list("p")] == [5]
    assert store.failed_list("q") == []
    store.ledger_mark_done("p", 5, number="5", snelstart_id="a", snelstart_nummer=1)
    store.ledger_mark_done("p", 6, number="6", snelstart_id="b", snelstart_nummer=2)
    assert store.failed_list("p") == [] and store.deferred_list("p") == []


def test_deferred_keeps_first_seen(store, clock):
    created = clock.now - dt.timedelta(days=1)
    store.deferred_add("p", 9, number="9", state="pending_payment", created_at=created)
    clock.now += dt.timedelta(hours=3)
    store.deferred_add("p", 9, number="9", state="payment_review", created_at=None)
    (d,) = store.deferred_list("p")
    assert d.state == "payment_review"
    assert d.created_at == created
    assert d.last_checked - d.first_seen == dt.timedelta(hours=3)
    store.deferred_remove("p", 9)
    assert store.deferred_list("p") == []


def test_failed_record_removes_deferred(store, clock):
    store.deferred_add("p", 3, number="3", state="pending_payment", created_at=clock.now)
    store.failed_record("p", 3, number="3", reason="x")
    assert store.deferred_list("p") == []
    store.failed_remove("p", 3)
    assert store.failed_get("p", 3) is None


def test_log_filters_and_clear(store, clock):
    store.log("a", "info", "order 1 created", essential=True, order="1", task="import_orders")
    store.log("a", "debug", "matched by e-mail", essential=False, detail="step email", order="1")
    store.log("b", "error", "agent down", essential=True)
    assert [e.message for e in store.log_entries("a")] == ["order 1 created", "matched by e-mail"]
    assert [e.message for e in store.log_entries(essential_only=True)] == ["order 1 created", "agent down"]
    assert store.log_entries("a", task="import_orders")[0].order == "1"
    assert [e.message for e in store.log_entries(limit=1)] == ["agent down"]
    assert store.log_entries("a")[1].detail == "step email"
    with pytest.raises(ValueError, match="log level"):
        store.log("a", "loud", "x", essential=True)
    assert store.clear_log("b") == 1
    assert store.clear_log() == 2
    assert store.log_entries() == []


def test_log_older_than_four_weeks_disappears(tmp_path, clock):
    path = tmp_path / "s.sqlite"
    with StateStore(path, now=clock) as s:
        s.log("a", "info", "old", essential=True)
        clock.now += dt.timedelta(days=10)
        s.log("a", "info", "newer", essential=True)
    clock.now += LOG_RETENTION - dt.timedelta(days=5)
    with StateStore(path, now=clock) as s:
        # reopening pruned "old" (33 days) but not "newer" (23 days)
        assert [e.message for e in s.log_entries()] == ["newer"]
        clock.now += dt.timedelta(days=6)
        assert s.log_entries() == []


def test_naive_datetimes_are_refused(store):
    with pytest.raises(ValueError, match="timezone-aware"):
        store.deferred_add("p", 1, number="1", state="x", created_at=dt.datetime(2026, 1, 1))


def test_values(store):
    assert store.get_value("p", "stock.last_push") is None
    assert store.get_value("p", "k", "dflt") == "dflt"
    store.set_value("p", "k", '{"a": 1}')
    assert store.get_value("p", "k") == '{"a": 1}'
    assert store.get_value("q", "k") is None
    store.set_value("p", "k", None)
    assert store.get_value("p", "k") is None


def _hammer(path: str, worker: int) -> None:
    with StateStore(path) as s:
        for i in range(50):
            s.failed_record("p", 1, number="1", reason=f"w{worker}-{i}")
            s.log("p", "info", f"w{worker}", essential=False)


def test_several_processes_write_at_once(tmp_path):
    path = str(tmp_path / "s.sqlite")
    StateStore(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with StateStore(path) as s:
        assert s.failed_get("p", 1).attempts == 150
        assert len(s.log_entries("p")) == 150
