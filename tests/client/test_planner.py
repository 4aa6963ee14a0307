"""Planning: the catch-up rule, the persisted next run, pausing, clock jumps, and the APScheduler loop."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.config import load_client_config
from client.planner import Planner, Schedule, next_after
from client.state import StateStore
from tests.client.conftest import client_profile, write_client_config

T0 = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)


class FakeClock:
    """The wall clock the planner sees; the test moves it (sleeping PC, clock jumps)."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def move(self, delta: dt.timedelta) -> None:
        self.now += delta


@dataclass
class Call:
    profile: str
    task: str
    trigger: str
    at: dt.datetime


class Recorder:
    """Stands in for client.runner.run_task so the planner's decisions can be counted."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[Call] = []

    def __call__(self, config, profile, task, *, trigger, state):  # noqa: ANN001, ANN204
        self.calls.append(Call(profile, task, trigger, self.clock()))
        return f"ran {task}"


def make_config(tmp_path: Path, tasks: dict, *, paused: bool = False, profile_paused: bool = False):  # noqa: ANN201
    admin = tmp_path / "admin.sqlite"
    profile = client_profile("http://127.0.0.1:9", admin, tasks=tasks, paused=profile_paused)
    return load_client_config(write_client_config(tmp_path, [profile], paused=paused))


# -- the rule ----------------------------------------------------------------------------------------------


def test_next_run_moves_one_interval_when_on_time() -> None:
    assert next_after(T0, 15 * MIN, T0 + dt.timedelta(seconds=5)) == T0 + 15 * MIN


def test_missed_runs_are_skipped_not_replayed() -> None:
    # The PC was off for 3 days and 10 minutes: the next run is the first interval point after now.
    now = T0 + dt.timedelta(days=3, minutes=10)
    assert next_after(T0, 15 * MIN, now) == T0 + dt.timedelta(days=3, minutes=15)


def test_a_next_run_equal_to_now_is_still_moved_into_the_future() -> None:
    assert next_after(T0, 15 * MIN, T0 + 15 * MIN) == T0 + 30 * MIN


@given(
    minutes=st.integers(min_value=1, max_value=24 * 60),
    late=st.integers(min_value=0, max_value=10**7),
)
def test_catch_up_rule_properties(minutes: int, late: int) -> None:
    interval = dt.timedelta(minutes=minutes)
    now = T0 + dt.timedelta(seconds=late)
    result = next_after(T0, interval, now)
    assert result > now
    assert result - interval <= now or result == T0 + interval
    assert (result - T0) % interval == dt.timedelta(0)


# -- the persisted schedule ------------------------------------------------------------------------------


def test_seeded_from_client_yml_and_kept_in_the_state(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"import_orders": {"interval": "15m", "next_run": "2026-12-03 10:00"}})
    clock = FakeClock(T0)
    with StateStore(config.state) as state:
        schedule = Schedule(config, state, clock)
        schedule.sync()
        entry = schedule.entry("shop", "import_orders")
        # 10:00 Amsterdam in December is 09:00 UTC.
        assert entry is not None and entry.next_run == T0 and entry.interval == 15 * MIN
        assert schedule.claim_due("shop")[0].task == "import_orders"
        assert schedule.entry("shop", "import_orders").next_run == T0 + 15 * MIN
        # A second sync (a restart) keeps the moved next run: the file's value seeded it once.
        Schedule(config, state, clock).sync()
        assert Schedule(config, state, clock).entry("shop", "import_orders").next_run == T0 + 15 * MIN


def test_editing_next_run_in_client_yml_reseeds(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"import_orders": {"interval": "15m", "next_run": "2026-12-03 10:00"}})
    with StateStore(config.state) as state:
        Schedule(config, state, FakeClock(T0)).sync()
        config2 = make_config(tmp_path, {"import_orders": {"interval": "1h", "next_run": "2026-12-04 08:00"}})
        schedule = Schedule(config2, state, FakeClock(T0))
        schedule.sync()
        entry = schedule.entry("shop", "import_orders")
        assert entry.next_run == dt.datetime(2026, 12, 4, 7, 0, tzinfo=dt.UTC)
        assert entry.interval == dt.timedelta(hours=1)


def test_task_without_next_run_is_due_at_once(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"import_orders": {"interval": "15m"}})
    clock = FakeClock(T0)
    with StateStore(config.state) as state:
        planner = Planner(config, state, run_task=Recorder(clock), clock=clock, say=lambda _: None)
        assert [c.task for c in planner.run_task.calls] == []
        planner.tick("shop")
        assert [(c.task, c.trigger) for c in planner.run_task.calls] == [("import_orders", "schedule")]


# -- the planner over a moving clock ------------------------------------------------------------------------


def test_sleeping_pc_runs_once_then_resumes_the_rhythm(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"import_orders": {"interval": "15m", "next_run": "2026-12-03 10:00"}})
    clock = FakeClock(T0 - MIN)
    with StateStore(config.state) as state:
        recorder = Recorder(clock)
        planner = Planner(config, state, run_task=recorder, clock=clock, say=lambda _: None)
        planner.tick("shop")
        assert recorder.calls == []  # not yet due
        clock.move(2 * MIN)
        planner.tick("shop")
        planner.tick("shop")
        assert len(recorder.calls) == 1
        # The PC sleeps for two days and a bit: on waking exactly one run, and the next lies ahead on the grid.
        clock.move(dt.timedelta(days=2, minutes=7))
        planner.tick("shop")
        planner.tick("shop")
        assert len(recorder.calls) == 2
        entry = planner.schedule.entry("shop", "import_orders")
        assert clock() < entry.next_run <= clock() + 15 * MIN
        assert (entry.next_run - T0) % (15 * MIN) == dt.timedelta(0)
        clock.now = entry.next_run
        planner.tick("shop")
        assert len(recorder.calls) == 3


def test_clock_set_back_does_not_stall_the_schedule(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"import_orders": {"interval": "15m", "next_run": "2026-12-03 10:00"}})
    clock = FakeClock(T0)
    with StateStore(config.state) as state:
        recorder = Recorder(clock)
        planner = Planner(config, state, run_task=recorder, clock=clock, say=lambda _: None)
        planner.tick("shop")
        assert len(recorder.calls) == 1
        # Someone sets the clock back a whole day: the stored next run is suddenly 24 h away.
        clock.move(-dt.timedelta(days=1))
        planner.tick("shop")
        assert len(recorder.calls) == 1
        entry = planner.schedule.entry("shop", "import_orders")
        assert entry.next_run == clock() + 15 * MIN
        clock.move(15 * MIN)
        planner.tick("shop")
        assert len(recorder.calls) == 2


def test_schedule_survives_a_restart(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"import_orders": {"interval": "1h", "next_run": "2026-12-03 10:00"}})
    clock = FakeClock(T0)
    with StateStore(config.state) as state:
        Planner(config, state, run_task=Recorder(clock), clock=clock, say=lambda _: None).tick("shop")
    clock.move(30 * MIN)
    with StateStore(config.state) as state:
        recorder = Recorder(clock)
        planner = Planner(config, state, run_task=recorder, clock=clock, say=lambda _: None)
        planner.tick("shop")
        assert recorder.calls == []
        assert planner.schedule.entry("shop", "import_orders").next_run == T0 + dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("where", "expect"),
    [
        ("top", "everything is paused"),
        ("profile", "profile shop is paused"),
        ("task", "task import_orders is paused"),
    ],
)
def test_paused_skips_are_logged_once_per_planned_run(tmp_path: Path, where: str, expect: str) -> None:
    task = {"interval": "15m", "next_run": "2026-12-03 10:00", "paused": where == "task"}
    config = make_config(
        tmp_path, {"import_orders": task}, paused=where == "top", profile_paused=where == "profile"
    )
    clock = FakeClock(T0)
    with StateStore(config.state) as state:
        recorder = Recorder(clock)
        planner = Planner(config, state, run_task=recorder, clock=clock, say=lambda _: None)
        for _ in range(3):
            planner.tick("shop")
            planner.tick("shop")
            clock.move(15 * MIN)
        assert recorder.calls == []
        skips = [e.message for e in state.log_entries("shop") if "skipped" in e.message]
        assert len(skips) == 3
        assert all(expect in message for message in skips)


def test_both_tasks_due_runs_the_stock_task_only(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        {
            "import_orders": {"interval": "15m", "next_run": "2026-12-03 10:00"},
            "import_orders_and_export_stock": {"interval": "1h", "next_run": "2026-12-03 10:00"},
        },
    )
    clock = FakeClock(T0)
    with StateStore(config.state) as state:
        recorder = Recorder(clock)
        planner = Planner(config, state, run_task=recorder, clock=clock, say=lambda _: None)
        planner.tick("shop")
        assert [c.task for c in recorder.calls] == ["import_orders_and_export_stock"]
        clock.move(15 * MIN)
        planner.tick("shop")
        assert [c.task for c in recorder.calls][-1] == "import_orders"


def test_run_forever_drives_ticks_with_apscheduler_and_stops(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"import_orders": {"interval": "15m"}})
    stop = threading.Event()
    calls: list[str] = []

    def run_task(config, profile, task, *, trigger, state):  # noqa: ANN001, ANN202
        calls.append(task)
        stop.set()
        return "ok"

    with StateStore(config.state) as state:
        planner = Planner(config, state, run_task=run_task, say=lambda _: None)
        worker = threading.Thread(target=planner.run_forever, kwargs={"tick_seconds": 1, "stop": stop})
        worker.start()
        worker.join(30)
        assert not worker.is_alive()
    assert calls == ["import_orders"]


def test_run_forever_wakes_the_heartbeats_when_the_wall_clock_jumps(tmp_path: Path) -> None:
    import time

    config = make_config(tmp_path, {"import_orders": {"interval": "15m"}})
    stop = threading.Event()
    ticks: list[float] = []
    said: list[str] = []
    start = time.time()
    readings = iter(range(10**6))

    def wall() -> float:
        # From the third reading on, the wall clock stands an hour later (a PC waking from sleep).
        return time.time() + (3600 if next(readings) >= 2 else 0)

    with StateStore(config.state) as state:
        planner = Planner(config, state, run_task=lambda *a, **k: "ok", say=said.append)

        def tick(profile: str) -> list:
            ticks.append(time.time() - start)
            if len(ticks) == 2:
                stop.set()
            return []

        planner.tick = tick  # type: ignore[method-assign]
        worker = threading.Thread(
            target=planner.run_forever, kwargs={"tick_seconds": 120, "stop": stop, "wall": wall}
        )
        worker.start()
        worker.join(30)
        assert not worker.is_alive()
    # The heartbeat is every 120 s; the second tick came within seconds because of the jump.
    assert len(ticks) == 2 and ticks[1] < 10
    assert any("the clock jumped (+3600 s)" in line for line in said)


# -- editing client.yml while the scheduler runs -------------------------------------------------------------


def test_pausing_in_client_yml_takes_effect_without_a_restart(tmp_path: Path) -> None:
    task = {"interval": "15m", "next_run": "2026-12-03 10:00"}
    config = make_config(tmp_path, {"import_orders": task})
    clock = FakeClock(T0)
    said: list[str] = []
    with StateStore(config.state) as state:
        recorder = Recorder(clock)
        planner = Planner(config, state, run_task=recorder, clock=clock, say=said.append)
        planner.tick("shop")
        assert len(recorder.calls) == 1
        # The person pauses the profile in client.yml while `koppel schedule` keeps running.
        make_config(tmp_path, {"import_orders": task}, profile_paused=True)
        planner.reload_if_changed()
        assert "client.yml reloaded" in said
        clock.move(15 * MIN)
        planner.tick("shop")
        assert len(recorder.calls) == 1
        skips = [e.message for e in state.log_entries("shop") if "skipped" in e.message]
        assert skips == ["Scheduled import_orders skipped: profile shop is paused"]
        # Unpaused again: the next planned run happens (the file's next_run did not change, so no reseed).
        make_config(tmp_path, {"import_orders": task})
        planner.reload_if_changed()
        clock.move(15 * MIN)
        planner.tick("shop")
        assert len(recorder.calls) == 2
        # A broken edit keeps the last good configuration and says why.
        (tmp_path / "client.yml").write_text("profiles: [", encoding="utf-8")
        planner.reload_if_changed()
        assert any(line.startswith("client.yml changed but was not reloaded:") for line in said)
        assert planner.config.profile("shop").paused is False


def test_a_profile_added_while_the_scheduler_runs_is_planned_and_a_removed_one_is_dropped(
    tmp_path: Path,
) -> None:
    admin = tmp_path / "admin.sqlite"
    tasks = {"import_orders": {"interval": "15m"}}
    shop = client_profile("http://127.0.0.1:9", admin, tasks=tasks)
    other = client_profile("http://127.0.0.1:9", admin, name="winkel2", tasks=tasks)
    config = load_client_config(write_client_config(tmp_path, [shop]))
    stop = threading.Event()
    calls: list[str] = []
    said: list[str] = []

    def run_task(config, profile, task, *, trigger, state):  # noqa: ANN001, ANN202
        calls.append(profile)
        if profile == "winkel2":
            stop.set()
        return "ok"

    with StateStore(config.state) as state:
        planner = Planner(config, state, run_task=run_task, say=said.append)
        worker = threading.Thread(target=planner.run_forever, kwargs={"tick_seconds": 1, "stop": stop})
        worker.start()
        deadline = time.monotonic() + 30
        while "shop" not in calls and time.monotonic() < deadline:
            time.sleep(0.1)
        # A second shop is added to client.yml and the first one taken out.
        write_client_config(tmp_path, [other])
        worker.join(30)
        assert not worker.is_alive()
        assert calls == ["shop", "winkel2"]
        assert "profile winkel2 added: planned from now on" in said
        assert "profile shop removed: no longer planned" in said
        # The removed profile's heartbeat went with it: no "scheduling failed" on every tick.
        assert not any("scheduling failed" in line for line in said), said
        assert not [e for e in state.log_entries() if e.level == "error"]
    assert planner.tick("shop") == []


def test_one_scheduler_per_state_file(tmp_path: Path) -> None:
    from client.locking import AlreadyRunning
    from client.planner import scheduler_holder, scheduler_running

    config = make_config(tmp_path, {"import_orders": {"interval": "15m", "next_run": "2030-01-01 00:00"}})
    stop = threading.Event()
    with StateStore(config.state) as state:
        first = Planner(config, state, run_task=lambda *a, **k: "ok", say=lambda _: None)
        worker = threading.Thread(target=first.run_forever, kwargs={"tick_seconds": 1, "stop": stop})
        assert not scheduler_running(config.state)
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while not scheduler_running(config.state) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert scheduler_running(config.state)
            holder = scheduler_holder(config.state)
            assert holder is not None and holder["what"] == "koppel schedule"
            second = Planner(config, state, run_task=lambda *a, **k: "ok", say=lambda _: None)
            with pytest.raises(AlreadyRunning):
                second.run_forever(tick_seconds=1, stop=threading.Event())
        finally:
            stop.set()
            worker.join(30)
        assert not scheduler_running(config.state)
        stopped = [e.message for e in state.log_entries() if e.profile is None]
        assert stopped[-1] == "Scheduler stopped; scheduled runs wait until koppel schedule runs again"


def test_a_broken_edit_is_logged_once_and_shown_in_status_while_it_holds(tmp_path: Path) -> None:
    """Under autostart nobody reads the scheduler's console: the log and `koppel status` must say it."""
    import subprocess
    import sys

    from client.locking import ProfileLock
    from client.planner import SCHEDULER_LOCK, reload_error
    from tests.client.conftest import REPO

    task = {"interval": "15m", "next_run": "2026-12-03 10:00"}
    config = make_config(tmp_path, {"import_orders": task})
    good = (tmp_path / "client.yml").read_text(encoding="utf-8")

    def status() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "client.cli", "status", "--config", str(config.path)],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    said: list[str] = []
    with StateStore(config.state) as state, ProfileLock(config.state, SCHEDULER_LOCK, what="koppel schedule"):
        planner = Planner(
            config, state, run_task=Recorder(FakeClock(T0)), clock=FakeClock(T0), say=said.append
        )
        (tmp_path / "client.yml").write_text(
            good.replace("interval: 15m", "interval: soon"), encoding="utf-8"
        )
        planner.reload_if_changed()
        planner.reload_if_changed()  # the next tick: the same file, no second line
        errors = [e for e in state.log_entries(essential_only=True) if e.level == "error"]
        assert len(errors) == 1, errors
        assert errors[0].message.startswith("client.yml changed but was not reloaded: ")
        assert "'soon' is not an interval" in errors[0].message
        assert "keeps the previous settings until the file is corrected" in errors[0].message
        reason = reload_error(state)
        assert reason and "'soon' is not an interval" in reason
        # The person corrects the file; until the scheduler's next reload, status still tells.
        (tmp_path / "client.yml").write_text(good.replace("15m", "30m"), encoding="utf-8")
        assert f"client.yml: not reloaded — {reason}" in status()
        planner.reload_if_changed()
        assert reload_error(state) is None
        assert "client.yml: not reloaded" not in status()
