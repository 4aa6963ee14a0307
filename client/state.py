"""The client's own state in one SQLite file: cursor, ledger, deferred and failed orders, log, key/values.

Everything that decides "was this Magento order already imported?" lives here and nowhere else. The ledger
keys on (profile, Magento entity_id) because Magento 2 order numbers are unique per store only.

The file is opened by several processes (the scheduler, a manual ``koppel run``, ``koppel status``), so it runs
in WAL mode with a busy timeout. The write the exactly-once promise depends on (the ``pending`` mark before a SnelStart
create) waits for the disk: a committed mark survives a crash of the process and of the machine.
Other modules add their own tables through ``StateStore.connect()``; this module owns only the tables below.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOG_RETENTION = dt.timedelta(days=28)
BUSY_TIMEOUT_MS = 30_000
LOG_LEVELS = ("debug", "info", "warning", "error")

# Migrations by version: each entry brings the schema from version i to i + 1. Never edit a released one;
# append a new one instead (an old state file must open with a newer koppel).
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE cursors (
        profile TEXT PRIMARY KEY,
        cursor TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE ledger (
        profile TEXT NOT NULL,
        entity_id INTEGER NOT NULL,
        number TEXT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
        betalingskenmerk TEXT,
        snelstart_id TEXT,
        snelstart_nummer INTEGER,
        relatiecode INTEGER,
        how TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (profile, entity_id)
    );
    CREATE INDEX ledger_snelstart_id ON ledger (profile, snelstart_id);
    CREATE TABLE deferred (
        profile TEXT NOT NULL,
        entity_id INTEGER NOT NULL,
        number TEXT,
        state TEXT,
        created_at TEXT,
        first_seen TEXT NOT NULL,
        last_checked TEXT NOT NULL,
        PRIMARY KEY (profile, entity_id)
    );
    CREATE TABLE failed (
        profile TEXT NOT NULL,
        entity_id INTEGER NOT NULL,
        number TEXT,
        reason TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        first_failed TEXT NOT NULL,
        last_try TEXT NOT NULL,
        PRIMARY KEY (profile, entity_id)
    );
    CREATE TABLE log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts TEXT NOT NULL,
        profile TEXT,
        level TEXT NOT NULL,
        essential INTEGER NOT NULL,
        message TEXT NOT NULL,
        detail TEXT,
        order_ref TEXT,
        task TEXT
    );
    CREATE INDEX log_ts ON log (ts);
    CREATE TABLE kv (
        profile TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (profile, key)
    );
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


class StateError(Exception):
    """The state file cannot be used (newer schema, not a koppel state file, unreadable).

    ``setting`` is True when the ``state`` setting itself is at fault (a folder that is missing or may not be
    written): a configuration error, which the command line ends with exit code 2."""

    def __init__(self, message: str, *, setting: bool = False) -> None:
        super().__init__(message)
        self.setting = setting


def _not_writable(path: Path) -> StateError | None:
    """The error for a state file this user may not write (the file, or the folder for its side files)."""
    fix = "give `state` in client.yml a folder this user may write to, or give the user that right"
    folder = path.parent.resolve()
    if not os.access(folder, os.W_OK | os.X_OK):
        # SQLite keeps side files (-wal, -shm) next to the state file, so even an existing file needs this.
        return StateError(
            f"the state file {path} cannot be written: the folder {folder} is not writable; {fix}",
            setting=True,
        )
    if path.exists() and not os.access(path, os.W_OK):
        return StateError(f"the state file {path} is read-only; {fix}", setting=True)
    return None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(value: dt.datetime) -> str:
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: state times must be timezone-aware")
    # Fixed width, so that text comparison in SQL is time order.
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_ts(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class LedgerEntry:
    profile: str
    entity_id: int
    number: str | None
    state: str  # "pending" (create started, outcome unknown) | "done"
    betalingskenmerk: str | None
    snelstart_id: str | None
    snelstart_nummer: int | None
    relatiecode: int | None
    how: str | None  # "created" | "adopted" (found after an unknown outcome) | "already_imported"
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class DeferredOrder:
    profile: str
    entity_id: int
    number: str | None
    state: str | None
    created_at: dt.datetime | None  # Magento's creation time of the order
    first_seen: dt.datetime
    last_checked: dt.datetime


@dataclass(frozen=True)
class FailedOrder:
    profile: str
    entity_id: int
    number: str | None
    reason: str
    attempts: int
    first_failed: dt.datetime
    last_try: dt.datetime


@dataclass(frozen=True)
class LogEntry:
    id: int
    ts: dt.datetime
    profile: str | None
    level: str
    essential: bool
    message: str
    detail: str | None
    order: str | None
    task: str | None


class StateStore:
    """One state file. Safe to share between threads; open one per process."""

    def __init__(self, path: str | Path, *, now=utcnow) -> None:  # noqa: ANN001 - clock injectable for tests
        self.path = Path(path)
        self._now = now
        self._lock = threading.RLock()
        if self.path.parent and not self.path.parent.exists():
            raise StateError(
                f"the folder of the state file {self.path} does not exist (setting `state`)", setting=True
            )
        self._conn = self.connect()
        self._migrate()
        self.prune_log()

    # -- connection ------------------------------------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        """A new connection to the state file with koppel's pragmas, in autocommit mode.

        Use ``with conn:`` or explicit BEGIN/COMMIT for transactions; close it when done.
        """
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise _not_writable(self.path) or StateError(
                f"cannot open the state file {self.path}: {exc}"
            ) from exc
        return conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two processes never both read-then-write.
        # Only a durable transaction waits for the disk (fsync). The others survive a crash of the process
        # anyway (WAL); after a power cut they may be lost, which is safe: a lost "done" leaves "pending"
        # (looked up again), a lost cursor re-reads a page the ledger skips. A durable commit also makes
        # every earlier commit durable, because the WAL is written in order.
        with self._lock:
            self._conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        try:
            with self._tx() as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StateError(
                        f"the state file {self.path} was written by a newer koppel "
                        f"(schema {version}, this koppel knows {SCHEMA_VERSION}); update koppel"
                    )
                for index in range(version, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[index].split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {index + 1}")
        except sqlite3.DatabaseError as exc:
            raise _not_writable(self.path) or StateError(
                f"the state file {self.path} cannot be used: {exc}"
            ) from exc

    @property
    def schema_version(self) -> int:
        return self._query("PRAGMA user_version")[0][0]

    # -- cursor ----------------------------------------------------------------------------------------
    def get_cursor(self, profile: str) -> str | None:
        rows = self._query("SELECT cursor FROM cursors WHERE profile = ?", (profile,))
        return rows[0][0] if rows else None

    # The magento.import_from a cursor was started from: ISO UTC, "" for the first order; absent when unknown.
    CURSOR_START_KEY = "cursor.import_from"

    def get_cursor_start(self, profile: str) -> str | None:
        return self.get_value(profile, self.CURSOR_START_KEY)

    def set_cursor(self, profile: str, cursor: str, *, started_from: str | None = None) -> None:
        """Store the cursor; with ``started_from``, also the import_from it was started from (one transaction)."""
        if not cursor:
            raise ValueError("an empty cursor cannot be stored")
        with self._tx() as conn:
            now = _ts(self._now())
            conn.execute(
                "INSERT INTO cursors (profile, cursor, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (profile) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                (profile, cursor, now),
            )
            if started_from is not None:
                conn.execute(
                    "INSERT INTO kv (profile, key, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT "
                    "(profile, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    (profile, self.CURSOR_START_KEY, started_from, now),
                )

    def reset_cursor(self, profile: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM cursors WHERE profile = ?", (profile,))
            conn.execute("DELETE FROM kv WHERE profile = ? AND key = ?", (profile, self.CURSOR_START_KEY))

    # -- ledger ----------------------------------------------------------------------------------------
    _LEDGER_COLS = (
        "profile, entity_id, number, state, betalingskenmerk, snelstart_id, snelstart_nummer, relatiecode, "
        "how, created_at, updated_at"
    )

    @staticmethod
    def _ledger_row(row: tuple) -> LedgerEntry:
        return LedgerEntry(*row[:9], created_at=_parse_ts(row[9]), updated_at=_parse_ts(row[10]))

    def ledger_get(self, profile: str, entity_id: int) -> LedgerEntry | None:
        rows = self._query(
            f"SELECT {self._LEDGER_COLS} FROM ledger WHERE profile = ? AND entity_id = ?",
            (profile, entity_id),
        )
        return self._ledger_row(rows[0]) if rows else None

    def ledger_by_snelstart_id(self, profile: str, snelstart_id: str) -> LedgerEntry | None:
        """The ledger entry that already owns a SnelStart order, if any."""
        rows = self._query(
            f"SELECT {self._LEDGER_COLS} FROM ledger WHERE profile = ? AND snelstart_id = ?",
            (profile, snelstart_id),
        )
        return self._ledger_row(rows[0]) if rows else None

    def ledger_entries(self, profile: str, *, state: str | None = None) -> list[LedgerEntry]:
        sql = f"SELECT {self._LEDGER_COLS} FROM ledger WHERE profile = ?"
        params: list[object] = [profile]
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        return [self._ledger_row(r) for r in self._query(sql + " ORDER BY entity_id", params)]

    def ledger_mark_pending(
        self, profile: str, entity_id: int, *, number: str | None, betalingskenmerk: str | None
    ) -> None:
        """Record that a SnelStart create is about to start. Refuses to downgrade a ``done`` entry.

        Durable on disk before it returns: the create that follows must never be forgotten."""
        now = _ts(self._now())
        with self._tx(durable=True) as conn:
            row = conn.execute(
                "SELECT state FROM ledger WHERE profile = ? AND entity_id = ?", (profile, entity_id)
            ).fetchone()
            if row and row[0] == "done":
                raise StateError(f"Magento order {number} (entity_id {entity_id}) is already imported")
            conn.execute(
                "INSERT INTO ledger (profile, entity_id, number, state, betalingskenmerk, created_at, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (profile, entity_id) DO UPDATE SET "
                "number = excluded.number, betalingskenmerk = excluded.betalingskenmerk, "
                "updated_at = excluded.updated_at",
                (profile, entity_id, number, betalingskenmerk, now, now),
            )

    def ledger_mark_done(
        self,
        profile: str,
        entity_id: int,
        *,
        number: str | None,
        snelstart_id: str,
        snelstart_nummer: int | None,
        betalingskenmerk: str | None = None,
        relatiecode: int | None = None,
        how: str = "created",
    ) -> None:
        now = _ts(self._now())
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO ledger (profile, entity_id, number, state, betalingskenmerk, snelstart_id, "
                "snelstart_nummer, relatiecode, how, created_at, updated_at) "
                "VALUES (?, ?, ?, 'done', ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (profile, entity_id) DO UPDATE SET "
                "state = 'done', number = excluded.number, "
                "betalingskenmerk = COALESCE(excluded.betalingskenmerk, ledger.betalingskenmerk), "
                "snelstart_id = excluded.snelstart_id, snelstart_nummer = excluded.snelstart_nummer, "
                "relatiecode = excluded.relatiecode, how = excluded.how, updated_at = excluded.updated_at",
                (
                    profile,
                    entity_id,
                    number,
                    betalingskenmerk,
                    snelstart_id,
                    snelstart_nummer,
                    relatiecode,
                    how,
                    now,
                    now,
                ),
            )
            # An order that made it is no longer failed or deferred, whichever path brought it in.
            conn.execute("DELETE FROM failed WHERE profile = ? AND entity_id = ?", (profile, entity_id))
            conn.execute("DELETE FROM deferred WHERE profile = ? AND entity_id = ?", (profile, entity_id))

    def ledger_clear_pending(self, profile: str, entity_id: int) -> None:
        """Forget a pending mark whose create is known not to have happened (SnelStart refused it)."""
        with self._tx() as conn:
            conn.execute(
                "DELETE FROM ledger WHERE profile = ? AND entity_id = ? AND state = 'pending'",
                (profile, entity_id),
            )

    # -- deferred orders -------------------------------------------------------------------------------
    def deferred_add(
        self,
        profile: str,
        entity_id: int,
        *,
        number: str | None,
        state: str | None,
        created_at: dt.datetime | None,
    ) -> None:
        """Remember (or refresh) a deferred order; ``first_seen`` keeps the first time."""
        now = _ts(self._now())
        created = _ts(created_at) if created_at else None
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO deferred (profile, entity_id, number, state, created_at, first_seen, last_checked) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (profile, entity_id) DO UPDATE SET "
                "number = excluded.number, state = excluded.state, "
                "created_at = COALESCE(excluded.created_at, deferred.created_at), "
                "last_checked = excluded.last_checked",
                (profile, entity_id, number, state, created, now, now),
            )

    def deferred_list(self, profile: str) -> list[DeferredOrder]:
        rows = self._query(
            "SELECT profile, entity_id, number, state, created_at, first_seen, last_checked FROM deferred "
            "WHERE profile = ? ORDER BY entity_id",
            (profile,),
        )
        return [
            DeferredOrder(r[0], r[1], r[2], r[3], _parse_ts(r[4]), _parse_ts(r[5]), _parse_ts(r[6]))
            for r in rows
        ]

    def deferred_remove(self, profile: str, entity_id: int) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM deferred WHERE profile = ? AND entity_id = ?", (profile, entity_id))

    # -- failed orders ---------------------------------------------------------------------------------
    def failed_record(self, profile: str, entity_id: int, *, number: str | None, reason: str) -> FailedOrder:
        """Record one more failed attempt (attempts counts every try, the first included)."""
        now = _ts(self._now())
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO failed (profile, entity_id, number, reason, attempts, first_failed, last_try) "
                "VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (profile, entity_id) DO UPDATE SET "
                "number = excluded.number, reason = excluded.reason, attempts = failed.attempts + 1, "
                "last_try = excluded.last_try",
                (profile, entity_id, number, reason, now, now),
            )
            conn.execute("DELETE FROM deferred WHERE profile = ? AND entity_id = ?", (profile, entity_id))
        found = self.failed_get(profile, entity_id)
        assert found is not None
        return found

    def failed_get(self, profile: str, entity_id: int) -> FailedOrder | None:
        rows = self._query(
            "SELECT profile, entity_id, number, reason, attempts, first_failed, last_try FROM failed "
            "WHERE profile = ? AND entity_id = ?",
            (profile, entity_id),
        )
        return self._failed_row(rows[0]) if rows else None

    @staticmethod
    def _failed_row(r: tuple) -> FailedOrder:
        return FailedOrder(r[0], r[1], r[2], r[3], r[4], _parse_ts(r[5]), _parse_ts(r[6]))

    def failed_list(self, profile: str | None = None) -> list[FailedOrder]:
        sql = "SELECT profile, entity_id, number, reason, attempts, first_failed, last_try FROM failed"
        params: tuple = ()
        if profile is not None:
            sql += " WHERE profile = ?"
            params = (profile,)
        return [self._failed_row(r) for r in self._query(sql + " ORDER BY profile, entity_id", params)]

    def failed_remove(self, profile: str, entity_id: int) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM failed WHERE profile = ? AND entity_id = ?", (profile, entity_id))

    # -- log -------------------------------------------------------------------------------------------
    def log(
        self,
        profile: str | None,
        level: str,
        message: str,
        *,
        essential: bool,
        detail: str | None = None,
        order: str | None = None,
        task: str | None = None,
    ) -> None:
        if level not in LOG_LEVELS:
            raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO log (ts, profile, level, essential, message, detail, order_ref, task) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (_ts(self._now()), profile, level, int(essential), message, detail, order, task),
            )

    def log_entries(
        self,
        profile: str | None = None,
        *,
        essential_only: bool = False,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        task: str | None = None,
        limit: int | None = None,
    ) -> list[LogEntry]:
        """Entries oldest first; with ``limit``, the newest ``limit`` entries (still oldest first)."""
        self.prune_log()
        where, params = ["1 = 1"], []
        if profile is not None:
            where.append("profile = ?")
            params.append(profile)
        if essential_only:
            where.append("essential = 1")
        if since is not None:
            where.append("ts >= ?")
            params.append(_ts(since))
        if until is not None:
            where.append("ts < ?")
            params.append(_ts(until))
        if task is not None:
            where.append("task = ?")
            params.append(task)
        sql = (
            "SELECT id, ts, profile, level, essential, message, detail, order_ref, task FROM log "
            f"WHERE {' AND '.join(where)} ORDER BY id DESC"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = self._query(sql, params)
        return [
            LogEntry(r[0], _parse_ts(r[1]), r[2], r[3], bool(r[4]), r[5], r[6], r[7], r[8])
            for r in reversed(rows)
        ]

    def clear_log(self, profile: str | None = None, *, up_to_id: int | None = None) -> int:
        """Empty the log (of one profile, or all; with ``up_to_id`` only entries up to that id, e.g. the ones
        just exported); returns the number of entries removed."""
        where, params = ["1 = 1"], []
        if profile is not None:
            where.append("profile = ?")
            params.append(profile)
        if up_to_id is not None:
            where.append("id <= ?")
            params.append(int(up_to_id))
        with self._tx() as conn:
            return conn.execute(f"DELETE FROM log WHERE {' AND '.join(where)}", params).rowcount

    def prune_log(self) -> int:
        """Remove entries older than four weeks; called on open and on every read of the log."""
        cutoff = _ts(self._now() - LOG_RETENTION)
        with self._tx() as conn:
            return conn.execute("DELETE FROM log WHERE ts < ?", (cutoff,)).rowcount

    # -- generic values per profile --------------------------------------------------------------------
    def get_value(self, profile: str, key: str, default: str | None = None) -> str | None:
        rows = self._query("SELECT value FROM kv WHERE profile = ? AND key = ?", (profile, key))
        return rows[0][0] if rows else default

    def set_value(self, profile: str, key: str, value: str | None) -> None:
        """Store a text value (callers serialise JSON themselves); None removes the key."""
        with self._tx() as conn:
            if value is None:
                conn.execute("DELETE FROM kv WHERE profile = ? AND key = ?", (profile, key))
                return
            conn.execute(
                "INSERT INTO kv (profile, key, value, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (profile, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (profile, key, value, _ts(self._now())),
            )
