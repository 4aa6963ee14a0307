"""One run of one task of one profile: pause check, lock, status, import, stock export, log, outcome.

Both the scheduler and `koppel run` come through here, so the rules (no overlap, pausing, what the status
shows, what the log says about the run as a whole) hold the same way for both. The engine does the work and
logs every order; this module only wraps it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import importlib.util
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from client.config import TASK_NAMES, ClientConfig, Profile
from client.locking import AlreadyRunning, ProfileLock
from client.planner import pause_reason
from client.status import IDLE, StatusBoard
from client.wording import count

Progress = Callable[[str, int, int | None], None]

# Result words, also stored in the run history and shown by `koppel status`.
OK = "ok"
PARTIAL = "partial"  # the run finished, but some orders failed (they are retried next time)
FAILED = "failed"  # the run stopped on an error
BUSY = "busy"  # another process runs this profile
PAUSED = "paused"
INTERRUPTED = "interrupted"  # Ctrl-C (or another stop from outside) during the run
INTERRUPTED_MESSAGE = "interrupted (Ctrl-C); the next run continues where this one stopped"

STAGE_TEXT = {
    "orders": "importing orders",
    "deferred": "re-checking deferred orders",
    "failed": "retrying failed orders",
    "stock": "exporting web stock",
}


@dataclass
class RunOutcome:
    profile: str
    task: str
    result: str
    message: str
    counts: dict[str, int] = field(default_factory=dict)
    import_result: Any = None
    stock_result: Any = None

    @property
    def ok(self) -> bool:
        return self.result == OK

    @property
    def summary(self) -> str:
        return f"{self.result}: {self.message}"


def counts_of(result: Any) -> dict[str, int]:
    """The whole-number fields of an engine/stock result (imported, failed, ...), whatever its class."""
    if result is None:
        return {}
    if dataclasses.is_dataclass(result):
        values = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    elif isinstance(result, dict):
        values = dict(result)
    else:
        values = {k: v for k, v in vars(result).items() if not k.startswith("_")}
    counts = {k: v for k, v in values.items() if isinstance(v, int) and not isinstance(v, bool)}
    nested = values.get("counts")
    if isinstance(nested, dict):
        counts.update({k: v for k, v in nested.items() if isinstance(v, int) and not isinstance(v, bool)})
    return counts


def describe_counts(counts: dict[str, int]) -> str:
    """One line of the counts the user cares about; zero counts are left out, except imported orders."""
    words = (
        ("skipped", "", "already imported"),
        ("deferred", "", "deferred"),
        ("dropped", "", "dropped"),
        ("ignored", "", "ignored"),
        ("failed", "", "failed"),
        ("customers_created", "customer", "created"),
        ("customers_matched", "customer", "matched"),
        ("customers_updated", "customer", "updated"),
        ("articles_created", "article", "created"),
    )
    parts = [f"{count(counts.get('imported', 0), 'order')} imported"]
    for key, noun, verb in words:
        if counts.get(key):
            parts.append(f"{count(counts[key], noun)} {verb}" if noun else f"{counts[key]} {verb}")
    if counts.get("warnings"):
        # Warnings (a VAT difference, a shortened field) go to the log only; the summary says where to look.
        parts.append(f"{count(counts['warnings'], 'warning')} (koppel log)")
    return ", ".join(parts)


def _log_mark(state: Any) -> tuple[int, dt.datetime | None]:
    """(id, time) of the newest log entry, so the warnings a run logs after it can be counted."""
    newest = state.log_entries(limit=1)
    return (newest[0].id, newest[0].ts) if newest else (0, None)


def _warnings_since(state: Any, profile: str, mark: tuple[int, dt.datetime | None]) -> int:
    last_id, since = mark
    entries = state.log_entries(profile, since=since)
    return sum(1 for e in entries if e.id > last_id and e.level == "warning")


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors whose message says all there is (a wrong setting, an unreachable part); no traceback for them."""
    from client.agent_client import AgentError
    from client.config import ConfigError
    from client.locking import AlreadyRunning
    from client.snelstart.base import SnelStartError
    from client.state import StateError
    from client.webstock import StockExportError

    return (AgentError, AlreadyRunning, ConfigError, SnelStartError, StateError, StockExportError, OSError)


def error_detail(exc: BaseException) -> str | None:
    """The traceback to keep in the log: only for an error koppel did not foresee."""
    return None if isinstance(exc, expected_errors()) else traceback.format_exc()


def stock_available() -> bool:
    return importlib.util.find_spec("client.webstock") is not None


def run_task(
    config: ClientConfig,
    profile_name: str,
    task: str = "import_orders",
    *,
    trigger: str = "manual",
    force: bool = False,
    dry_run: bool = False,
    state: Any = None,
    progress: Progress | None = None,
    backend: Any = None,
    agent: Any = None,
) -> RunOutcome:
    """Run one task now. Never raises for run problems: the outcome says what happened (and the log)."""
    if task not in TASK_NAMES:
        raise ValueError(f"unknown task {task!r}; choose {' or '.join(TASK_NAMES)}")
    profile = config.profile(profile_name)
    own_state = state is None
    if own_state:
        from client.state import StateStore

        state = StateStore(config.state)
    try:
        return _run(config, profile, task, trigger, force, dry_run, state, progress, backend, agent)
    finally:
        if own_state:
            state.close()


def _run(
    config: ClientConfig,
    profile: Profile,
    task: str,
    trigger: str,
    force: bool,
    dry_run: bool,
    state: Any,
    progress: Progress | None,
    backend: Any,
    agent: Any,
) -> RunOutcome:
    name = profile.name
    reason = pause_reason(config, profile, task)
    # A dry run changes nothing, so pausing (which protects SnelStart from changes) does not stop it.
    if reason and not force and not dry_run:
        message = f"{reason}; use --force to run it anyway" if trigger == "manual" else reason
        state.log(name, "info", f"Task {task} not run: {message}", essential=True, task=task)
        return RunOutcome(name, task, PAUSED, message)

    if dry_run:
        # A dry run changes nothing, the state file included: no lock note, no status, no history, no log.
        return _work(config, profile, task, True, state, progress, backend, agent, None)

    board = StatusBoard(state, config.state)
    lock = ProfileLock(config.state, name, what=f"{task} ({trigger})")
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        state.log(name, "warning", f"Task {task} not started: {exc}", essential=True, task=task)
        return RunOutcome(name, task, BUSY, str(exc))
    run_id = None
    try:
        # The log holds customers' names: entries past four weeks go on every run too, not only when someone
        # reads the log (a scheduler can run for months with nobody looking).
        state.prune_log()
        board.set_activity(name, task, f"{task}: starting")
        run_id = board.run_started(name, task, trigger)
        state.log(name, "info", f"Task {task} started ({trigger})", essential=False, task=task)
        outcome = _work(config, profile, task, False, state, progress, backend, agent, board)
        level = {OK: "info", PARTIAL: "warning"}.get(outcome.result, "error")
        # The engine already logs an import's summary as essential; this line adds to it only the stock part
        # or a problem, so the short view does not say the same thing twice.
        essential = outcome.result != OK or task != "import_orders"
        state.log(
            name,
            level,
            f"Task {task} finished, {outcome.result}: {outcome.message}",
            essential=essential,
            task=task,
        )
        board.run_finished(run_id, outcome.result, outcome.message, outcome.counts)
        return outcome
    except KeyboardInterrupt:
        # Ctrl-C: leave a true record behind, in the history and in the log, then let it go on up.
        _record_stop(state, board, run_id, name, task, INTERRUPTED, INTERRUPTED_MESSAGE, "warning")
        raise
    except BaseException as exc:
        # Something unforeseen that is no Exception (SystemExit and the like): the same, naming it.
        message = f"stopped by {type(exc).__name__}" + (f": {exc}" if str(exc) else "")
        _record_stop(state, board, run_id, name, task, FAILED, message, "error")
        raise
    finally:
        board.set_activity(name, None, IDLE)
        lock.release()


def _record_stop(
    state: Any,
    board: StatusBoard,
    run_id: int | None,
    name: str,
    task: str,
    result: str,
    message: str,
    level: str,
) -> None:
    """History and log of a run that did not end by itself; never hides the exception that stopped it."""
    try:
        if run_id is not None:
            board.run_finished(run_id, result, message)
        state.log(name, level, f"Task {task} {message}", essential=True, task=task)
    except Exception:  # noqa: BLE001 - the stop itself is what the caller must see
        pass


def _work(
    config: ClientConfig,
    profile: Profile,
    task: str,
    dry_run: bool,
    state: Any,
    progress: Progress | None,
    backend: Any,
    agent: Any,
    board: StatusBoard | None,
) -> RunOutcome:
    name = profile.name

    last_stage: list[str] = []

    def on_progress(stage: str, done: int, total: int | None) -> None:
        if board is not None:
            text = f"{task}: {STAGE_TEXT.get(stage, stage)}"
            if total:
                text += f" ({done}/{total})"
            elif done:
                text += f" ({done})"
            # A new stage is always written; counts within a stage at most twice a second (each is a commit).
            new_stage = last_stage[-1:] != [stage]
            last_stage[:] = [stage]
            board.set_activity(name, task, text, done, total, throttle=0 if new_stage else 0.5)
        if progress is not None:
            progress(stage, done, total)

    from client.engine import run_import

    own_backend = backend is None
    own_agent = agent is None
    import_result = stock_result = None
    mark = None if dry_run else _log_mark(state)
    try:
        if own_backend:
            from client.snelstart.factory import open_backend

            # The state store holds the b2b backend's mirror; without it the mirror would go to a side file.
            config_dir = config.path.parent if config.path else None
            backend = open_backend(profile.snelstart, config_dir, state=state)
        if own_agent:
            from client.agent_client import AgentClient

            agent = AgentClient.from_profile(profile)
        import_result = run_import(
            config,
            profile,
            backend=backend,
            state=state,
            agent=agent,
            dry_run=dry_run,
            progress=on_progress,
            task=task,
        )
        counts = counts_of(import_result)
        message = ""
        result = PARTIAL if counts.get("failed") else OK
        if import_result.error:
            result = FAILED
            message += f"; stopped: {import_result.error}"
        if task == "import_orders_and_export_stock" and result != FAILED and not dry_run:
            try:
                stock_result, stock_note = _export_stock(config, profile, backend, state, agent, on_progress)
            except Exception as exc:  # noqa: BLE001 - the import stands; only the stock part failed
                state.log(
                    name, "error", f"Stock export failed: {exc}", essential=True, detail=error_detail(exc)
                )
                stock_note, result = f"stock export failed: {exc}", FAILED
            counts.update({f"stock_{k}": v for k, v in counts_of(stock_result).items()})
            message += f"; {stock_note}"
        if mark is not None:
            counts["warnings"] = _warnings_since(state, name, mark)
        message = describe_counts(counts) + message
        return RunOutcome(name, task, result, message, counts, import_result, stock_result)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an outcome the user reads
        if not dry_run:
            state.log(
                name,
                "error",
                f"Task {task} stopped: {exc}",
                essential=True,
                detail=error_detail(exc),
                task=task,
            )
        counts = counts_of(import_result)
        return RunOutcome(
            name, task, FAILED, str(exc) or type(exc).__name__, counts, import_result, stock_result
        )
    finally:
        if own_agent and agent is not None:
            agent.close()
        if own_backend and backend is not None:
            backend.close()


def _export_stock(
    config: ClientConfig, profile: Profile, backend: Any, state: Any, agent: Any, progress: Progress
) -> tuple[Any, str]:
    """Export web stock after the import; says so in the log when this koppel has no stock export yet."""
    if not stock_available():
        note = "stock export is not available in this version of koppel"
        state.log(profile.name, "warning", f"Web stock not exported: {note}", essential=True)
        return None, note
    webstock = importlib.import_module("client.webstock")
    progress("stock", 0, None)
    result = webstock.export_stock(config, profile, backend=backend, state=state, agent=agent)
    return result, describe_stock(result)


def describe_stock(result: Any) -> str:
    """One line on a stock export: what was sent and what Magento did with it."""
    counts = counts_of(result)
    sent = counts.get("sent", 0)
    text = f"web stock: {count(sent, 'item')} sent ({counts.get('updated', 0)} updated, "
    text += f"{counts.get('unchanged', 0)} unchanged"
    for key, word in (
        ("unknown", "unknown in Magento"),
        ("not_managed", "not managed"),
        ("invalid", "invalid"),
    ):
        if counts.get(key):
            text += f", {counts[key]} {word}"
    return text + (", full push)" if getattr(result, "full", False) else ")")


def local_time(moment: dt.datetime | None, config: ClientConfig) -> str:
    """A UTC moment as the user's local wall time (client.yml `timezone`)."""
    if moment is None:
        return "-"
    return moment.astimezone(config.zone).strftime("%Y-%m-%d %H:%M")
