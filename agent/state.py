"""The agent's own small state: seen nonces and the stock request ledger, in SQLite under ``state_dir``.

gunicorn runs several worker processes that share no memory, so anything that must hold across requests
(a nonce used once, a stock request answered once) lives in one SQLite file in WAL mode. A connection is
opened per operation: cheap for SQLite, and safe across fork and threads.
"""

from __future__ import annotations

import json
import sqlite3
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


class AgentState:
    """Shared, durable agent state (one SQLite file per agent)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self.path = self.dir / FILE_NAME
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA synchronous = NORMAL")
            yield conn
        finally:
            conn.close()

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
                conn.execute("ROLLBACK")
                raise
            return cur.rowcount == 1
