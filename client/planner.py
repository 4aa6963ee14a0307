"""Planning: when each task of each profile runs next, persisted in the state, driven by APScheduler 3.x.

The persisted ``next_run`` is the truth; APScheduler only supplies a heartbeat per profile that asks "is anything
due now?". That keeps the schedule right through things a timer alone gets wrong: a PC that slept or was off
(the next heartbeat finds the task overdue, runs it once and moves it past now — the catch-up rule of the manual),
a wall clock that jumped (the main loop notices and wakes the heartbeats; a ``next_run`` that is suddenly much
further away than one interval is pulled back), and restarts (the state file remembers everything).
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client.config import TASK_NAMES, ClientConfig, ConfigError, Profile, load_client_config
from client.locking import ProfileLock, is_running, lock_path, read_holder
from client.status import cli_db, from_text, to_text, utcnow

Clock = Callable[[], dt.datetime]

# The lock `koppel schedule` holds while it runs, beside the profiles' (no profile name starts with "_").
SCHEDULER_LOCK = "_scheduler"


def scheduler_running(state_path: Path) -> bool:
    """True while a `koppel schedule` process runs on this state file."""
    return is_running(state_path, SCHEDULER_LOCK)


def scheduler_holder(state_path: Path) -> dict[str, object] | None:
    """Who runs the scheduler (pid, since), as its lock file says; None when unknown."""
    return read_holder(lock_path(state_path, SCHEDULER_LOCK))


def next_after(next_run: dt.datetime, interval: dt.timedelta, now: dt.datetime) -> dt.datetime:
    """The catch-up rule: one interval on; while that is not in the future, whole intervals more.

    Computed in one step, so a PC that was off for a year does not loop (or run) a year's worth of intervals.
    """
    if interval <= dt.timedelta(0):
        raise ValueError("a task interval must be positive")
    candidate = next_run + interval
    if candidate > now:
        return candidate
    missed = (now - candidate) // interval + 1
    return candidate + missed * interval


def pause_reason(config: ClientConfig, profile: Profile, task: str) -> str | None:
    """Why a scheduled run of this task must not happen, or None."""
    if config.paused:
        return "everything is paused (paused at the top of client.yml)"
    if profile.paused:
        return f"profile {profile.name} is paused"
    settings = getattr(profile.tasks, task, None)
    if settings is not None and settings.paused:
        return f"task {task} is paused"
    return None


@dataclass
class ScheduleEntry:
    profile: str
    task: str
    interval: dt.timedelta
    next_run: dt.datetime
    paused: str | None  # the reason, None when not paused


class Schedule:
    """The persisted next run of every scheduled task (tasks with an interval in client.yml)."""

    def __init__(self, config: ClientConfig, state: Any, clock: Clock = utcnow) -> None:
        self.config = config
        self.state = state
        self.clock = clock

    def sync(self) -> None:
        """Bring the stored rows in line with client.yml.

        A ``next_run`` in the file seeds the stored one when it is new or was changed in the file since; without
        one, a new task is due at once. Tasks no longer in the file are forgotten.
        """
        now = self.clock()
        wanted = {(p.name, name): (p, t) for p in self.config.profiles for name, t in p.tasks.items()}
        with cli_db(self.state) as conn:
            rows = {
                (r[0], r[1]): r
                for r in conn.execute(
                    "SELECT profile, task, next_run, interval_seconds, seed FROM cli_schedule"
                )
            }
            for key in rows.keys() - wanted.keys():
                conn.execute("DELETE FROM cli_schedule WHERE profile = ? AND task = ?", key)
            for (profile, task), (_, settings) in wanted.items():
                seed = to_text(settings.next_run)
                seconds = int(settings.interval.total_seconds())
                row = rows.get((profile, task))
                if row is None or row[4] != seed:
                    conn.execute(
                        "INSERT INTO cli_schedule (profile, task, next_run, interval_seconds, seed, seeded)"
                        " VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (profile, task) DO UPDATE SET"
                        " next_run = excluded.next_run, interval_seconds = excluded.interval_seconds,"
                        " seed = excluded.seed, seeded = 1",
                        (profile, task, to_text(settings.next_run or now), seconds, seed),
                    )
                elif row[3] != seconds:
                    conn.execute(
                        "UPDATE cli_schedule SET interval_seconds = ? WHERE profile = ? AND task = ?",
                        (seconds, profile, task),
                    )

    def entries(self, profile: str | None = None) -> list[ScheduleEntry]:
        with cli_db(self.state) as conn:
            rows = conn.execute(
                "SELECT profile, task, next_run, interval_seconds FROM cli_schedule ORDER BY profile, task"
            ).fetchall()
        result = []
        for name, task, next_run, seconds in rows:
            if profile is not None and name != profile:
                continue
            try:
                prof = self.config.profile(name)
            except ConfigError:
                continue
            result.append(
                ScheduleEntry(
                    name,
                    task,
                    dt.timedelta(seconds=seconds),
                    from_text(next_run),  # type: ignore[arg-type]
                    pause_reason(self.config, prof, task),
                )
            )
        return result

    def entry(self, profile: str, task: str) -> ScheduleEntry | None:
        for entry in self.entries(profile):
            if entry.task == task:
                return entry
        return None

    def claim_due(self, profile: str) -> list[ScheduleEntry]:
        """The profile's tasks that are due now, each moved on by the catch-up rule in the same transaction.

        Moving ``next_run`` when the run *starts* (as the manual says) means a run that crashes or is skipped is
        not retried in a tight loop; the returned entries carry the ``next_run`` that was due.
        """
        now = self.clock()
        due: list[ScheduleEntry] = []
        prof = self.config.profile(profile)
        with cli_db(self.state) as conn:
            rows = conn.execute(
                "SELECT task, next_run, interval_seconds, seeded FROM cli_schedule WHERE profile = ?",
                (profile,),
            ).fetchall()
            for task, next_text, seconds, seeded in rows:
                interval = dt.timedelta(seconds=seconds)
                next_run = from_text(next_text)
                assert next_run is not None
                if not seeded and next_run > now + interval:
                    # Only a clock that went back puts a computed next run more than one interval ahead.
                    conn.execute(
                        "UPDATE cli_schedule SET next_run = ? WHERE profile = ? AND task = ?",
                        (to_text(now + interval), profile, task),
                    )
                    continue
                if next_run > now:
                    continue
                conn.execute(
                    "UPDATE cli_schedule SET next_run = ?, seeded = 0, last_started = ? WHERE profile = ? AND task = ?",
                    (to_text(next_after(next_run, interval, now)), to_text(now), profile, task),
                )
                due.append(
                    ScheduleEntry(profile, task, interval, next_run, pause_reason(self.config, prof, task))
                )
        return sorted(due, key=lambda e: TASK_NAMES.index(e.task) if e.task in TASK_NAMES else 99)


RunTask = Callable[..., Any]


class Planner:
    """Runs due tasks. ``tick`` is one check for one profile; ``run_forever`` drives ticks with APScheduler."""

    def __init__(
        self,
        config: ClientConfig,
        state: Any,
        *,
        run_task: RunTask | None = None,
        clock: Clock = utcnow,
        say: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.state = state
        self.clock = clock
        self.say = say
        if run_task is None:
            from client.runner import run_task as default_run_task

            run_task = default_run_task
        self.run_task = run_task
        self.schedule = Schedule(config, state, clock)
        self.schedule.sync()
        self._config_mtime = _mtime(config.path)
        self._scheduler: Any = None  # APScheduler's, while run_forever runs
        self._tick_seconds = 20.0

    def tick(self, profile: str) -> list[Any]:
        """Run whatever of this profile is due now; returns the outcomes of the runs started."""
        if profile not in {p.name for p in self.config.profiles}:
            return []  # removed from client.yml a moment ago; its heartbeat is on its way out
        outcomes = []
        due = self.schedule.claim_due(profile)
        runnable = {e.task for e in due if not e.paused}
        for entry in due:
            if entry.task == "import_orders" and "import_orders_and_export_stock" in runnable:
                # The stock task imports first anyway; a second import right before it would find nothing.
                self.state.log(
                    profile,
                    "info",
                    "Scheduled import_orders folded into import_orders_and_export_stock, which imports first",
                    essential=False,
                    task=entry.task,
                )
                continue
            if entry.paused:
                self.state.log(
                    profile,
                    "info",
                    f"Scheduled {entry.task} skipped: {entry.paused}",
                    essential=True,
                    task=entry.task,
                )
                self.say(
                    f"{_local(self.clock(), self.config)} {profile}/{entry.task}: skipped ({entry.paused})"
                )
                continue
            self.say(f"{_local(self.clock(), self.config)} {profile}/{entry.task}: start")
            outcome = self.run_task(self.config, profile, entry.task, trigger="schedule", state=self.state)
            outcomes.append(outcome)
            self.say(
                f"{_local(self.clock(), self.config)} {profile}/{entry.task}: {getattr(outcome, 'summary', outcome)}"
            )
        return outcomes

    def reload_if_changed(self) -> None:
        """Pick up edits of client.yml (pausing, intervals, next_run) without a restart; keep the old on errors."""
        mtime = _mtime(self.config.path)
        if mtime == self._config_mtime or self.config.path is None:
            return
        self._config_mtime = mtime
        try:
            config = load_client_config(self.config.path)
        except ConfigError as exc:
            message = f"client.yml changed but was not reloaded: {exc}"
            self.say(message)
            # Under autostart nobody reads the console: the log and `koppel status` say it too, once per edit.
            self._log_quietly(
                "error",
                f"{message}; the scheduler keeps the previous settings until the file is corrected",
                essential=True,
            )
            self._set_reload_error(str(exc))
            return
        self._set_reload_error(None)
        before = {p.name for p in self.config.profiles}
        self.config = config
        self.schedule = Schedule(config, self.state, self.clock)
        self.schedule.sync()
        self.say("client.yml reloaded")
        after = {p.name for p in config.profiles}
        for name in sorted(after - before):
            self.say(f"profile {name} added: planned from now on")
        for name in sorted(before - after):
            self.say(f"profile {name} removed: no longer planned")
        self._heartbeats()

    def _heartbeats(self) -> None:
        """One APScheduler heartbeat per profile of the current client.yml (added and removed on reload)."""
        if self._scheduler is None:
            return
        from apscheduler.triggers.interval import IntervalTrigger

        wanted = {f"profile:{p.name}": p.name for p in self.config.profiles}
        present = {job.id for job in self._scheduler.get_jobs() if job.id.startswith("profile:")}
        for job_id in present - wanted.keys():
            self._scheduler.remove_job(job_id)
        for job_id in wanted.keys() - present:
            self._scheduler.add_job(
                self._safe_tick,
                IntervalTrigger(seconds=self._tick_seconds, timezone=dt.UTC),
                args=[wanted[job_id]],
                id=job_id,
                next_run_time=dt.datetime.now(dt.UTC),
            )

    def _wake_heartbeats(self) -> None:
        for job in self._scheduler.get_jobs():
            if job.id.startswith("profile:"):
                job.modify(next_run_time=dt.datetime.now(dt.UTC))

    def run_forever(
        self,
        tick_seconds: float = 20.0,
        stop: threading.Event | None = None,
        wall: Callable[[], float] = time.time,
    ) -> bool:
        """Foreground loop until Ctrl-C / SIGTERM (or ``stop`` is set); ``wall`` is the clock watched for jumps.

        Returns True when Ctrl-C ended it. One scheduler per state file: a second one raises AlreadyRunning.
        """
        lock = ProfileLock(self.config.state, SCHEDULER_LOCK, what="koppel schedule")
        lock.acquire()
        try:
            return self._loop(tick_seconds, stop or threading.Event(), wall)
        finally:
            lock.release()

    def _loop(self, tick_seconds: float, stop: threading.Event, wall: Callable[[], float]) -> bool:
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.interval import IntervalTrigger

        profiles = [p.name for p in self.config.profiles]
        scheduler = BackgroundScheduler(
            timezone=dt.UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            # A thread per profile and one for the reload job (profiles a reload adds share them).
            executors={"default": {"type": "threadpool", "max_workers": max(4, len(profiles) + 2)}},
        )
        self._scheduler, self._tick_seconds = scheduler, tick_seconds
        self._heartbeats()
        scheduler.add_job(
            self.reload_if_changed,
            IntervalTrigger(seconds=max(tick_seconds, 5), timezone=dt.UTC),
            id="reload",
        )

        def on_signal(signum: int, frame: object) -> None:
            stop.set()

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, on_signal)
        self._set_reload_error(None)  # this process read client.yml just now
        scheduler.start()
        self.say(f"Scheduler running for {', '.join(profiles)}; stop with Ctrl-C")
        self._log_quietly("info", "koppel schedule started", essential=False)
        last_wall, last_mono = wall(), time.monotonic()
        interrupted = False
        try:
            while not stop.wait(1.0):
                now_wall, now_mono = wall(), time.monotonic()
                drift = (now_wall - last_wall) - (now_mono - last_mono)
                last_wall, last_mono = now_wall, now_mono
                if abs(drift) > 5:
                    # APScheduler times its heartbeats by the wall clock; after a jump, wake them ourselves.
                    self.say(f"the clock jumped ({drift:+.0f} s); checking the schedule now")
                    self._wake_heartbeats()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self.say("Scheduler stopping (a run in progress is finished first) ...")
            scheduler.shutdown(wait=True)
            self._scheduler = None
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        self._set_reload_error(None)  # a reason nobody's settings depend on any more
        stopped = "Scheduler stopped" + (" (Ctrl-C)" if interrupted else "")
        self.say(stopped)
        # Shown in the short log: it tells why scheduled runs stop after this moment.
        self._log_quietly(
            "info", f"{stopped}; scheduled runs wait until koppel schedule runs again", essential=True
        )
        return interrupted

    def _set_reload_error(self, reason: str | None) -> None:
        """Keep (or clear, with None) why the last edit of client.yml was not reloaded, for `koppel status`."""
        try:
            self.state.set_value("", RELOAD_ERROR_KEY, reason)
        except Exception:  # noqa: BLE001 - the console and the log already say it
            pass

    def _log_quietly(self, level: str, message: str, *, essential: bool) -> None:
        try:
            self.state.log(None, level, message, essential=essential)
        except Exception:  # noqa: BLE001 - a log line must not keep the scheduler from starting or stopping
            pass

    def _safe_tick(self, profile: str) -> None:
        # An exception escaping here would only reach APScheduler's logger; the user must see it.
        try:
            self.tick(profile)
        except Exception as exc:  # noqa: BLE001 - reported, and the next heartbeat tries again
            self.say(f"{profile}: scheduling failed: {exc}")
            try:
                self.state.log(profile, "error", f"Scheduling failed: {exc}", essential=True)
            except Exception:  # noqa: BLE001 - the state itself may be what failed
                pass


# kv key (profile "") holding why the running scheduler did not reload the last edit of client.yml.
RELOAD_ERROR_KEY = "scheduler.reload_error"


def reload_error(state: Any) -> str | None:
    """Why the running scheduler did not take the last edit of client.yml, or None when it did."""
    return state.get_value("", RELOAD_ERROR_KEY)


def _mtime(path: Path | None) -> tuple[int, int] | None:
    """What tells an edit of client.yml: modification time (ns) and size."""
    try:
        info = path.stat() if path else None
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size) if info else None


def _local(moment: dt.datetime, config: ClientConfig) -> str:
    return moment.astimezone(config.zone).strftime("%Y-%m-%d %H:%M:%S")
