"""One run per profile across processes, the status board, and the runner's pause/busy decisions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from client.config import load_client_config
from client.locking import AlreadyRunning, ProfileLock, is_running, lock_path
from client.runner import BUSY, PAUSED, counts_of, describe_counts, run_task
from client.state import StateStore
from client.status import IDLE, StatusBoard
from tests.client.conftest import client_profile, write_client_config

REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from pathlib import Path
from client.locking import ProfileLock
from client.state import StateStore
from client.status import StatusBoard
state_path = Path(sys.argv[1])
lock = ProfileLock(state_path, "shop", what="import_orders (schedule)")
lock.acquire()
with StateStore(state_path) as state:
    StatusBoard(state, state_path).set_activity("shop", "import_orders", "import_orders: importing orders (3/10)", 3, 10)
print("locked", flush=True)
time.sleep(120)
"""


def hold_lock(state_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state_path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def config(tmp_path: Path):  # noqa: ANN201
    profile = client_profile(
        "http://127.0.0.1:9", tmp_path / "admin.sqlite", tasks={"import_orders": {"interval": "15m"}}
    )
    return load_client_config(write_client_config(tmp_path, [profile]))


def test_lock_is_exclusive_across_processes_and_freed_when_the_holder_dies(tmp_path: Path) -> None:
    state_path = tmp_path / "state.sqlite"
    holder = hold_lock(state_path)
    try:
        assert is_running(state_path, "shop")
        with pytest.raises(AlreadyRunning) as caught:
            ProfileLock(state_path, "shop").acquire()
        assert "already running" in str(caught.value)
        assert str(holder.pid) in str(caught.value)
        # Another profile is independent.
        with ProfileLock(state_path, "other"):
            assert is_running(state_path, "other")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A killed holder leaves no stale lock behind.
    assert not is_running(state_path, "shop")
    with ProfileLock(state_path, "shop") as lock:
        assert lock.held
    assert lock_path(state_path, "shop").exists()


def test_status_shows_what_the_running_process_writes_and_idle_otherwise(tmp_path: Path) -> None:
    state_path = tmp_path / "state.sqlite"
    with StateStore(state_path) as state:
        board = StatusBoard(state, state_path)
        assert board.activity("shop").text == IDLE
        holder = hold_lock(state_path)
        try:
            activity = board.activity("shop")
            assert activity.text == "import_orders: importing orders (3/10)"
            assert (activity.done, activity.total, activity.task) == (3, 10, "import_orders")
        finally:
            holder.send_signal(signal.SIGKILL)
            holder.wait()
        # The crashed process never reset its activity row; the free lock tells the truth.
        assert board.activity("shop").text == IDLE


def test_run_history_keeps_the_latest_run_per_task(tmp_path: Path) -> None:
    state_path = tmp_path / "state.sqlite"
    with StateStore(state_path) as state:
        board = StatusBoard(state, state_path)
        first = board.run_started("shop", "import_orders", "schedule")
        board.run_finished(first, "ok", "2 orders imported", {"imported": 2})
        second = board.run_started("shop", "import_orders", "manual")
        board.run_finished(second, "partial", "3 orders imported, 1 failed", {"imported": 3, "failed": 1})
        dry = board.run_started("shop", "import_orders", "manual", dry_run=True)
        board.run_finished(dry, "ok", "dry")
        last = board.last_run("shop", "import_orders")
        assert last is not None
        assert (last.id, last.trigger, last.result, last.counts) == (
            second,
            "manual",
            "partial",
            {"imported": 3, "failed": 1},
        )
        assert last.finished_at is not None and last.finished_at >= last.started_at
        assert board.last_run("shop", "import_orders_and_export_stock") is None
        assert [r.id for r in board.runs("shop")] == [dry, second, first]


def test_manual_run_while_another_process_runs_the_profile_is_refused(config) -> None:  # noqa: ANN001
    holder = hold_lock(config.state)
    try:
        outcome = run_task(config, "shop", "import_orders")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert outcome.result == BUSY
    assert "already running" in outcome.message
    with StateStore(config.state) as state:
        assert any("not started" in e.message for e in state.log_entries("shop"))


def test_paused_profile_needs_force_for_a_manual_run(tmp_path: Path) -> None:
    profile = client_profile("http://127.0.0.1:9", tmp_path / "admin.sqlite", paused=True)
    config = load_client_config(write_client_config(tmp_path, [profile]))
    outcome = run_task(config, "shop", "import_orders")
    assert outcome.result == PAUSED
    assert "--force" in outcome.message
    # With --force the run does start: it gets as far as the (unreachable) agent and fails on that.
    forced = run_task(config, "shop", "import_orders", force=True)
    assert forced.result not in (PAUSED, BUSY)
    with StateStore(config.state) as state:
        board = StatusBoard(state, config.state)
        assert board.last_run("shop", "import_orders").result == forced.result
        assert board.activity("shop").text == IDLE


def test_counts_are_taken_from_the_engine_result() -> None:
    from client.engine import ImportResult

    result = ImportResult(profile="shop", imported=3, failed=1, customers_created=2, articles_created=1)
    counts = counts_of(result)
    assert counts["imported"] == 3 and counts["failed"] == 1 and "created" not in counts
    text = describe_counts(counts)
    assert text.startswith("3 orders imported")
    assert "1 failed" in text and "2 customers created" in text and "1 article created" in text
    assert "deferred" not in text
    # One of a thing is singular, everywhere in the line.
    one = describe_counts(
        {"imported": 1, "customers_created": 1, "customers_matched": 1, "articles_created": 1}
    )
    assert one == "1 order imported, 1 customer created, 1 customer matched, 1 article created"
    assert describe_counts({}) == "0 orders imported"


def test_counts_and_nouns_agree() -> None:
    from client.wording import count

    assert [count(n, "order") for n in (0, 1, 2)] == ["0 orders", "1 order", "2 orders"]
    assert count(1, "log entry") == "1 log entry" and count(3, "log entry") == "3 log entries"
    assert count(2, "new relatie") == "2 new relaties" and count(2, "batch") == "2 batches"
    assert count(5, "item", "pieces") == "5 pieces"


def test_lock_note_names_the_holder(tmp_path: Path) -> None:
    state_path = tmp_path / "state.sqlite"
    with ProfileLock(state_path, "shop", what="import_orders (manual)"):
        with pytest.raises(AlreadyRunning) as caught:
            ProfileLock(state_path, "shop").acquire()
    assert f"process {os.getpid()}" in str(caught.value)
    assert "import_orders (manual)" in str(caught.value)
    # Released on leaving the block: a new one succeeds.
    with ProfileLock(state_path, "shop"):
        pass


def test_a_run_stopped_by_ctrl_c_is_recorded_and_logged_as_such(config) -> None:  # noqa: ANN001
    class CtrlC:
        def close(self) -> None:
            pass

        def __getattr__(self, name: str) -> None:
            raise KeyboardInterrupt

    with StateStore(config.state) as state:
        with pytest.raises(KeyboardInterrupt):
            run_task(config, "shop", "import_orders", state=state, backend=CtrlC())
        last = StatusBoard(state, config.state).last_run("shop", "import_orders")
        assert (last.result, last.message) == (
            "interrupted",
            "interrupted (Ctrl-C); the next run continues where this one stopped",
        )
        entry = state.log_entries("shop")[-1]
        assert (entry.level, entry.essential) == ("warning", True)
        assert (
            entry.message
            == "Task import_orders interrupted (Ctrl-C); the next run continues where this one stopped"
        )
        # The lock went with it: the next run can start.
        assert not is_running(config.state, "shop")
