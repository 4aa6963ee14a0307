"""What the client is doing now and how its last runs went, shared between processes through the state file.

Whichever process runs a profile (the scheduler or a manual `koppel run`) writes its activity here; `koppel status`
in another window reads it. An activity row only counts while that profile's lock is held, so a run that crashed
never leaves a stale "busy" behind: the reader then shows "Gereed" (idle), like the manual's status line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.locking import is_running

IDLE = "Gereed"
KEEP_RUNS = dt.timedelta(days=28)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cli_activity (
    profile TEXT PRIMARY KEY,
    task TEXT,
    text TEXT NOT NULL,
    done INTEGER,
    total INTEGER,
    pid INTEGER,
    started_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cli_task_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    profile TEXT NOT NULL,
    task TEXT NOT NULL,
    trigger TEXT NOT NULL,
    dry_run INTEGER NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    result TEXT,
    message TEXT,
    counts TEXT
);
CREATE TABLE IF NOT EXISTS cli_schedule (
    profile TEXT NOT NULL,
    task TEXT NOT NULL,
    next_run TEXT NOT NULL,
    interval_seconds INTEGER NOT NULL,
    seed TEXT,
    seeded INTEGER NOT NULL DEFAULT 1,
    last_started TEXT,
    PRIMARY KEY (profile, task)
);
CREATE INDEX IF NOT EXISTS cli_task_runs_latest ON cli_task_runs (profile, task, started_at);
"""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def to_text(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where an aware UTC time is required")
    # Fixed width, like the state store's own times, so that text order in SQL is time order.
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_text(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


@contextmanager
def cli_db(state: Any) -> Iterator[sqlite3.Connection]:
    """One transaction on a fresh state connection, with the CLI's tables present."""
    conn = state.connect()
    try:
        # Cheap when the tables exist (IF NOT EXISTS only reads the schema), and right even when the state
        # file was replaced while a long-running scheduler kept going.
        conn.executescript(_SCHEMA)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


@dataclass
class Activity:
    profile: str
    task: str | None
    text: str
    done: int | None = None
    total: int | None = None
    started_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass
class RunRecord:
    id: int
    profile: str
    task: str
    trigger: str
    dry_run: bool
    started_at: dt.datetime
    finished_at: dt.datetime | None
    result: str | None
    message: str | None
    counts: dict[str, int] = field(default_factory=dict)


class StatusBoard:
    """Reads and writes activity and run history in the state database of one config."""

    def __init__(self, state: Any, state_path: Path) -> None:
        self.state = state
        self.state_path = Path(state_path)
        self._last_progress_write = 0.0

    # -- activity ---------------------------------------------------------------------------------------
    def set_activity(
        self,
        profile: str,
        task: str | None,
        text: str,
        done: int | None = None,
        total: int | None = None,
        *,
        throttle: float = 0.0,
    ) -> None:
        """Record what this process is doing for the profile; ``throttle`` skips writes closer than that."""
        now_mono = time.monotonic()
        if throttle and now_mono - self._last_progress_write < throttle:
            return
        self._last_progress_write = now_mono
        now = to_text(utcnow())
        with cli_db(self.state) as conn:
            conn.execute(
                "INSERT INTO cli_activity (profile, task, text, done, total, pid, started_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(profile) DO UPDATE SET task = excluded.task, text = excluded.text,"
                " done = excluded.done, total = excluded.total, pid = excluded.pid, updated_at = excluded.updated_at,"
                " started_at = CASE WHEN cli_activity.task IS excluded.task AND cli_activity.pid = excluded.pid"
                " THEN cli_activity.started_at ELSE excluded.started_at END",
                (profile, task, text, done, total, os.getpid(), now, now),
            )

    def clear_activity(self, profile: str) -> None:
        with cli_db(self.state) as conn:
            conn.execute("DELETE FROM cli_activity WHERE profile = ?", (profile,))

    def activity(self, profile: str) -> Activity:
        """What happens for the profile now; "Gereed" unless a process holds its lock."""
        if not is_running(self.state_path, profile):
            return Activity(profile, None, IDLE)
        with cli_db(self.state) as conn:
            row = conn.execute(
                "SELECT task, text, done, total, started_at, updated_at FROM cli_activity WHERE profile = ?",
                (profile,),
            ).fetchone()
        if row is None:
            return Activity(profile, None, "running")
        return Activity(profile, row[0], row[1], row[2], row[3], from_text(row[4]), from_text(row[5]))

    # -- run history ------------------------------------------------------------------------------------
    def run_started(
        self, profile: str, task: str, trigger: str, *, dry_run: bool = False, at: dt.datetime | None = None
    ) -> int:
        with cli_db(self.state) as conn:
            cur = conn.execute(
                "INSERT INTO cli_task_runs (profile, task, trigger, dry_run, started_at) VALUES (?, ?, ?, ?, ?)",
                (profile, task, trigger, int(dry_run), to_text(at or utcnow())),
            )
            conn.execute("DELETE FROM cli_task_runs WHERE started_at < ?", (to_text(utcnow() - KEEP_RUNS),))
            return int(cur.lastrowid)

    def run_finished(
        self,
        run_id: int,
        result: str,
        message: str,
        counts: dict[str, int] | None = None,
        *,
        at: dt.datetime | None = None,
    ) -> None:
        with cli_db(self.state) as conn:
            conn.execute(
                "UPDATE cli_task_runs SET finished_at = ?, result = ?, message = ?, counts = ? WHERE id = ?",
                (to_text(at or utcnow()), result, message, json.dumps(counts or {}), run_id),
            )

    def last_run(self, profile: str, task: str, *, include_dry_runs: bool = False) -> RunRecord | None:
        """The latest run of the task; a run without a finish time crashed or is still going."""
        where = "" if include_dry_runs else " AND dry_run = 0"
        with cli_db(self.state) as conn:
            row = conn.execute(
                "SELECT id, profile, task, trigger, dry_run, started_at, finished_at, result, message, counts"
                f" FROM cli_task_runs WHERE profile = ? AND task = ?{where} ORDER BY started_at DESC, id DESC LIMIT 1",
                (profile, task),
            ).fetchone()
        return _record(row) if row else None

    def runs(self, profile: str | None = None, limit: int = 50) -> list[RunRecord]:
        with cli_db(self.state) as conn:
            if profile is None:
                rows = conn.execute(
                    "SELECT id, profile, task, trigger, dry_run, started_at, finished_at, result, message, counts"
                    " FROM cli_task_runs ORDER BY id DESC LIMIT ?",
                    (limit,),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id, profile, task, trigger, dry_run, started_at, finished_at, result, message, counts"
                    " FROM cli_task_runs WHERE profile = ? ORDER BY id DESC LIMIT ?",
                    (profile, limit),
                ).fetchall()
        return [_record(r) for r in rows]


def _record(row: tuple) -> RunRecord:
    counts = json.loads(row[9]) if row[9] else {}
    return RunRecord(
        id=row[0],
        profile=row[1],
        task=row[2],
        trigger=row[3],
        dry_run=bool(row[4]),
        started_at=from_text(row[5]),  # type: ignore[arg-type]
        finished_at=from_text(row[6]),
        result=row[7],
        message=row[8],
        counts=counts,
    )
