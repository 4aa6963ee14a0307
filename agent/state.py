"""The agent's own small state: seen nonces and the stock request ledger, in SQLite under ``state_dir``.

gunicorn runs several worker processes that share no memory, so anything that must hold across requests
(a nonce used once, a stock request answered once) lives in one SQLite file in WAL mode, which every
process opens; each write is one ``BEGIN IMMEDIATE`` transaction, so two workers inserting the same nonce
are serialised by SQLite's write lock (waiting up to BUSY_TIMEOUT_MS) and only one of them succeeds.

Each thread keeps its own connection (gthread workers reuse their threads): opening one per operation cost
about a millisecond per request. A connection is never used in another thread or carried across fork: it
belongs to the thread and process that opened it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.protocol import MAX_CLOCK_SKEW_SECONDS

FILE_NAME = "agent-state.sqlite"
# A nonce only has to be remembered while its timestamp could still be accepted (±skew); keep a margin.
NONCE_KEEP_SECONDS = 2 * MAX_CLOCK_SKEW_SECONDS + 60
REQUEST_KEEP_SECONDS = 30 * 86400
BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX IF NOT EXISTS nonces_ts ON nonces (ts);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    body_hash TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_created ON requests (created_at);
"""


def _set_up(conn: sqlite3.Connection) -> None:
    """WAL mode and the tables, by whichever worker comes first.

    gunicorn boots its workers together and each sets the file up. Switching to WAL needs the file to itself, and
    SQLite refuses it at once ("database is locked") instead of waiting while another worker is doing the same;
    a worker that fails to boot makes gunicorn stop the agent. So the switch is tried again until the busy
    timeout, and skipped once the file is in WAL mode (the mode is kept in the file)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class AgentState:
    """Shared, durable agent state (one SQLite file per agent)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / FILE_NAME
        self.dir.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._inherited: list[sqlite3.Connection] = []
        # Set up with a connection of its own, closed again: serve checks the folder in gunicorn's master
        # process, before the fork, and the workers must not inherit an open connection.
        conn = self._open()
        try:
            _set_up(conn)
        finally:
            conn.close()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (opened on first use); dropped when an operation fails on it."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid != os.getpid():
            # Inherited through fork: SQLite must not touch it here, not even to close it (closing may
            # checkpoint or unlock on the parent's behalf). Kept referenced so it is never collected.
            self._inherited.append(conn)
            conn = None
        if conn is None:
            conn = self._open()
            local.conn, local.pid = conn, os.getpid()
        try:
            yield conn
        except sqlite3.Error:
            # The next operation starts on a fresh connection rather than on one in an unknown state.
            local.conn = None
            try:
                conn.close()
            except sqlite3.Error:
                pass
            raise

    def remember_nonce(self, key_id: str, nonce: str, ts: int, *, now: float | None = None) -> bool:
        """Record a nonce; False when this key used it before (a replay)."""
        now = time.time() if now is None else now
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM nonces WHERE ts < ?", (int(now) - NONCE_KEEP_SECONDS,))
                cur = conn.execute(
                    "INSERT OR IGNORE INTO nonces (key_id, nonce, ts) VALUES (?, ?, ?)",
                    (key_id, nonce, int(ts)),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return cur.rowcount == 1

    def get_request(self, request_id: str) -> tuple[str, dict[str, Any]] | None:
        """The body hash and stored answer of an earlier request with this id, if any."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT body_hash, answer FROM requests WHERE request_id = ?", (request_id,)
            ).fetchone()
        if row is None:
            return None
        return row[0], json.loads(row[1])

    def store_request(self, request_id: str, body_hash: str, answer: dict[str, Any]) -> bool:
        """Store the answer to a request; False (nothing changed) when the id was already stored."""
        now = int(time.time())
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM requests WHERE created_at < ?", (now - REQUEST_KEEP_SECONDS,))
                cur = conn.execute(
                    "INSERT OR IGNORE INTO requests (request_id, body_hash, answer, created_at) VALUES (?, ?, ?, ?)",
                    (request_id, body_hash, json.dumps(answer, separators=(",", ":"), default=str), now),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return cur.rowcount == 1
