"""`koppel`: the command line of the office PC (typer).

Every command reads client.yml (found by --config, KOPPEL_CONFIG, ./client.yml or the user's config folder) and
speaks to the person at the PC: errors are one sentence and a non-zero exit code, never a traceback, unless
--debug is given. Exit codes: 0 done, 1 something failed, 2 wrong use (a bad option, an unknown profile, a missing
or invalid client.yml), 3 not run (already running or paused), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

import typer
import typer.core

from client.config import TASK_NAMES, ClientConfig, ConfigError, find_config_path, load_client_config
from client.wording import count

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUN = 3
EXIT_INTERRUPTED = 130
INTERRUPTED = "interrupted (Ctrl-C); the next run continues where this one stopped"
SHOW_CREATED = 25  # created orders listed after a run; the log has every one


class KoppelError(Exception):
    """A problem to tell the user in one sentence (exit code ``code``)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


class _Options:
    config: str | None = None
    debug: bool = False


OPTIONS = _Options()


def _plain_flags(params: list[Any]) -> list[Any]:
    # typer's help shows a value placeholder (<bool>) after on/off options; a flag takes no value.
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _Command(typer.core.TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


class _Group(typer.core.TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain_flags(super().get_params(ctx))


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("koppel")
        except PackageNotFoundError:
            number = "unknown (not installed)"
        typer.echo(f"koppel {number}")
        raise typer.Exit()


app = typer.Typer(
    name="koppel",
    cls=_Group,
    help="Imports Magento web shop orders into SnelStart exactly once and writes web stock back into Magento.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    epilog=(
        "Exit codes: 0 done, 1 something failed, 2 wrong use (bad option, unknown profile, missing or invalid"
        " client.yml), 3 not run (already running or paused), 130 interrupted (Ctrl-C)."
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
)
snelstart_app = typer.Typer(help="Work with SnelStart administrations.", no_args_is_help=True, cls=_Group)
app.add_typer(snelstart_app, name="snelstart")


@app.callback()
def _main_options(
    config: Annotated[
        str | None,
        typer.Option(
            "--config", metavar="FILE", help="client.yml to use (also accepted after the sub-command)."
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show koppel's version and exit."),
    ] = False,
) -> None:
    OPTIONS.config = config
    OPTIONS.debug = debug


# -- helpers ---------------------------------------------------------------------------------------------


def load_config() -> ClientConfig:
    return load_client_config(find_config_path(OPTIONS.config))


@contextmanager
def open_state(config: ClientConfig) -> Iterator[Any]:
    from client.state import StateStore

    if not config.state.parent.exists():
        raise KoppelError(
            f"the folder of the state file {config.state} does not exist (setting `state`)", EXIT_USAGE
        )
    state = StateStore(config.state)
    try:
        yield state
    finally:
        state.close()


def pick_profiles(config: ClientConfig, profile: str | None) -> list[Any]:
    return [config.profile(profile)] if profile else list(config.profiles)


def one_profile(config: ClientConfig, profile: str | None) -> Any:
    if profile:
        return config.profile(profile)
    if len(config.profiles) == 1:
        return config.profiles[0]
    names = ", ".join(p.name for p in config.profiles)
    raise KoppelError(f"client.yml has several profiles; choose one with --profile ({names})", EXIT_USAGE)


def echo(text: str = "") -> None:
    typer.echo(text)


def describe_created(created: Any) -> str:
    """One imported order, saying whether its customer was created or matched (not the order: that is new)."""
    customer = {"created": "created", "matched": "matched"}.get(getattr(created, "customer", None) or "")
    relatie = f"relatie {created.relatiecode}" + (f" {customer}" if customer else "")
    how = "" if created.how == "created" else f", {created.how}"
    return f"Magento order {created.magento_number} → SnelStart order {created.snelstart_nummer} ({relatie}{how})"


ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", "-p", metavar="NAME", help="Profile name (default: all profiles)."),
]


# -- run -------------------------------------------------------------------------------------------------


@app.command(cls=_Command)
def run(
    profile: ProfileOpt = None,
    task: Annotated[
        str,
        typer.Option("--task", "-t", metavar="TASK", help="import_orders or import_orders_and_export_stock."),
    ] = "import_orders",
    force: Annotated[
        bool, typer.Option("--force", help="Run even when the profile or task is paused.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what would be created; change nothing (stock is not exported)."),
    ] = False,
) -> None:
    """Run a task now (the manual's "Nu uitvoeren"); never overlaps another run of the same profile."""
    from client.runner import BUSY, OK, PAUSED

    if task not in TASK_NAMES:
        raise KoppelError(f"--task {task}: unknown task; choose {' or '.join(TASK_NAMES)}", EXIT_USAGE)
    config = load_config()
    profiles = pick_profiles(config, profile)
    try:
        results = _run_profiles(config, profiles, task, force=force, dry_run=dry_run)
    except KeyboardInterrupt:
        # Caught here, not in main(): click would turn it into "Aborted!" and exit code 1 first.
        typer.echo(f"koppel: {INTERRUPTED}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if any(r not in (OK, BUSY, PAUSED) for r in results):
        raise typer.Exit(EXIT_FAILED)
    if any(r in (BUSY, PAUSED) for r in results):
        raise typer.Exit(EXIT_NOT_RUN)


def _run_profiles(
    config: ClientConfig, profiles: list[Any], task: str, *, force: bool, dry_run: bool
) -> list[str]:
    from client.runner import run_task

    results: list[str] = []
    with open_state(config) as state:
        for prof in profiles:
            with progress_display(f"{prof.name}/{task}") as progress:
                outcome = run_task(
                    config, prof.name, task, force=force, dry_run=dry_run, state=state, progress=progress
                )
            result = outcome.import_result
            if dry_run and result is not None:
                echo(f"Dry run for {prof.name} — nothing was changed:")
                for line in result.lines:
                    echo(f"  {line}")
            shown = getattr(result, "created", [])[:SHOW_CREATED] if not dry_run else []
            for created in shown:
                echo(f"  {describe_created(created)}")
            if not dry_run and result is not None and len(result.created) > len(shown):
                echo(f"  … and {len(result.created) - len(shown)} more (`koppel log` lists them all)")
            for number, reason in getattr(result, "failures", []):
                echo(f"  FAILED Magento order {number}: {reason}")
            if dry_run and result is not None:
                echo(f"{prof.name}/{task}: dry run: {result.summary()}")
            else:
                echo(f"{prof.name}/{task}: {outcome.result}: {outcome.message}")
            results.append(outcome.result)
    return results


@contextmanager
def progress_display(label: str) -> Iterator[Any]:
    """A progress bar on an interactive terminal (fed by the engine's progress callback); nothing otherwise."""
    if not sys.stdout.isatty():
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from client.runner import STAGE_TEXT

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[count]}"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        current = {"stage": None, "handle": bar.add_task(label, total=None, count="")}

        def update(stage: str, done: int, total: int | None) -> None:
            # Each stage gets a bar of its own: the new-order stage has no total (the feed is paged), the
            # retry stages do.
            if stage != current["stage"]:
                bar.remove_task(current["handle"])
                text = f"{label}: {STAGE_TEXT.get(stage, stage)}"
                current.update(stage=stage, handle=bar.add_task(text, total=total, count=""))
            count = f"{done}/{total}" if total else f"{done}"
            bar.update(current["handle"], completed=done, total=total, count=count)

        yield update


# -- schedule --------------------------------------------------------------------------------------------


@app.command(cls=_Command)
def schedule(
    tick: Annotated[
        float, typer.Option("--tick", min=1, metavar="SECONDS", help="Seconds between checks of what is due.")
    ] = 20.0,
) -> None:
    """Run the scheduler in the foreground until Ctrl-C: every task on its interval, missed runs caught up once."""
    from client.locking import AlreadyRunning
    from client.planner import Planner, scheduler_holder, scheduler_running

    config = load_config()
    if scheduler_running(config.state):
        raise _scheduler_busy(scheduler_holder(config.state))
    with open_state(config) as state:
        planner = Planner(config, state, say=lambda text: typer.echo(text))
        from client.runner import local_time
        from client.status import utcnow

        now = utcnow()
        for entry in planner.schedule.entries():
            when = local_time(entry.next_run, config)
            if entry.next_run <= now and not entry.paused:
                when = f"now (due since {when})"  # as `koppel status` says it; a past time reads as missed
            extra = f" — paused: {entry.paused}" if entry.paused else ""
            echo(f"{entry.profile}/{entry.task}: every {_interval(entry.interval)}, next run {when}{extra}")
        if not planner.schedule.entries():
            raise KoppelError("no task has an interval in client.yml (tasks: import_orders: {interval: 15m})")
        try:
            interrupted = planner.run_forever(tick)
        except AlreadyRunning as exc:
            raise _scheduler_busy(exc.holder) from None
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _scheduler_busy(holder: dict[str, object] | None) -> KoppelError:
    pid = (holder or {}).get("pid")
    who = f" (process {pid})" if pid else ""
    return KoppelError(
        f"koppel schedule is already running for this client.yml's state file{who}; one scheduler runs every "
        "profile, so this one is not started",
        EXIT_NOT_RUN,
    )


def _interval(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# -- status ----------------------------------------------------------------------------------------------


@app.command(cls=_Command)
def status(
    profile: ProfileOpt = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every failed order with its reason.")
    ] = False,
) -> None:
    """Per profile and task: last run, result and counts, next run, paused; and what runs right now."""
    from client.planner import Schedule, pause_reason, reload_error, scheduler_holder, scheduler_running
    from client.runner import describe_counts, local_time
    from client.status import StatusBoard, utcnow

    config = load_config()
    with open_state(config) as state:
        board = StatusBoard(state, config.state)
        plan = Schedule(config, state)
        plan.sync()
        scheduling = scheduler_running(config.state)
        if scheduling:
            pid = (scheduler_holder(config.state) or {}).get("pid")
            echo("Scheduler: koppel schedule is running" + (f" (process {pid})" if pid else ""))
            not_reloaded = reload_error(state)
            if not_reloaded:
                echo(
                    f"client.yml: not reloaded — {not_reloaded}; the scheduler keeps the previous settings "
                    "until the file is corrected"
                )
        else:
            echo(
                "Scheduler: not running — scheduled runs wait for `koppel schedule` "
                "(`koppel autostart install` starts it at logon)"
            )
        if config.paused:
            echo("Everything is paused (paused: true at the top of client.yml).")
        for prof in pick_profiles(config, profile):
            title = f"{prof.name}" + (f" ({prof.description})" if prof.description else "")
            if prof.paused:
                title += " — paused"
            echo(title)
            activity = board.activity(prof.name)
            now = activity.text
            if activity.total:
                now += f" ({activity.done}/{activity.total})"
            echo(f"  Now: {now}")
            failed_orders = state.failed_list(prof.name)
            failed, deferred = len(failed_orders), len(state.deferred_list(prof.name))
            if failed or deferred:
                # The failed list keeps its own reason, so this stays true after `koppel log --clear`.
                why = "" if verbose else " (koppel status --verbose says why)"
                waiting = [f"{count(failed, 'failed order')}, retried on every run{why}"] if failed else []
                if deferred:
                    waiting.append(f"{count(deferred, 'order')} awaiting payment (deferred)")
                echo(f"  Waiting: {'; '.join(waiting)}")
            if verbose:
                for order in failed_orders:
                    tries = count(order.attempts, "attempt")
                    echo(
                        f"    FAILED Magento order {order.number or order.entity_id} ({tries}): {order.reason}"
                    )
            tasks = [name for name, _ in prof.tasks.items()]
            for name in TASK_NAMES:
                if name not in tasks and board.last_run(prof.name, name):
                    tasks.append(name)
            if not tasks:
                echo("  No tasks planned and none run yet (koppel run does one now).")
            for name in tasks:
                last = board.last_run(prof.name, name)
                entry = plan.entry(prof.name, name)
                echo(f"  {name}:")
                folded = name == "import_orders" and "import_orders_and_export_stock" in dict(
                    prof.tasks.items()
                )
                if last is None and folded:
                    # The scheduler folds it into the stock task when both are due (client.planner.tick).
                    echo(
                        "    last run:  never on its own — when both are due it runs as part of "
                        "import_orders_and_export_stock, which imports first"
                    )
                elif last is None:
                    echo("    last run:  never")
                else:
                    result = last.result or ("running" if activity.task == name else "did not finish")
                    echo(f"    last run:  {local_time(last.started_at, config)} ({last.trigger}) — {result}")
                    if last.message:
                        echo(f"               {last.message}")
                    elif last.counts:
                        echo(f"               {describe_counts(last.counts)}")
                if entry is None:
                    echo("    next run:  not planned (no interval)")
                else:
                    echo(f"    next run:  {_next_run(entry, scheduling, utcnow(), config)}")
                reason = pause_reason(config, prof, name)
                echo(f"    paused:    {'yes — ' + reason if reason else 'no'}")


def _next_run(entry: Any, scheduling: bool, now: Any, config: ClientConfig) -> str:
    """When the scheduler starts the task next, in words that hold whether or not a scheduler runs."""
    from client.runner import local_time

    every = f"every {_interval(entry.interval)}"
    if entry.paused:
        return f"{local_time(entry.next_run, config)} ({every}) — skipped while paused"
    if scheduling:
        if entry.next_run <= now:
            return f"now (due since {local_time(entry.next_run, config)}; {every})"
        return f"{local_time(entry.next_run, config)} ({every})"
    if entry.next_run <= now:
        return f"as soon as `koppel schedule` runs, then {every}"
    return f"{local_time(entry.next_run, config)} ({every}), if `koppel schedule` runs by then"


# -- log -------------------------------------------------------------------------------------------------


@app.command(cls=_Command)
def log(
    profile: ProfileOpt = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every entry with its detail.")
    ] = False,
    export: Annotated[
        Path | None,
        typer.Option("--export", metavar="FILE.xlsx", help="Write the whole log to an Excel file."),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Empty the log (after --export, only what was written).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Clear without asking.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Let --export replace a file that already exists.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, metavar="N", help="Show at most the newest N entries.")
    ] = 200,
) -> None:
    """What koppel did: orders created, customers and articles created, failures (--verbose: the detail).

    Entries older than four weeks are removed automatically."""
    from client.logview import export_xlsx, format_entries

    config = load_config()
    if profile:
        config.profile(profile)
    if export is not None and export.is_dir():
        raise KoppelError(
            f"--export {export}: that is a folder; give a file name ending in .xlsx, e.g. {export / 'koppel-log.xlsx'}",
            EXIT_USAGE,
        )
    if export is not None and export.exists() and not force:
        raise KoppelError(
            f"--export {export}: that file already exists; add --force to replace it, or give another name",
            EXIT_USAGE,
        )
    if clear and export is None and not yes:
        # Without an archive the log is gone for good, so ask first; a script must say --yes.
        if not sys.stdin.isatty():
            raise KoppelError(
                "--clear removes the log for good; add --yes to confirm (or --export FILE.xlsx to keep a copy)",
                EXIT_USAGE,
            )
        if not typer.confirm("Remove every log entry for good?", default=False):
            echo("Log not cleared.")
            return
    with open_state(config) as state:
        if export is not None:
            # Export first and clear only after the workbook is complete, and only the entries it holds.
            entries = state.log_entries(profile)
            try:
                rows = export_xlsx(entries, export, config.zone)
            except ValueError as exc:
                # The message names the file already.
                raise KoppelError(f"--export: {exc}", EXIT_USAGE) from None
            echo(f"{count(rows, 'log entry')} written to {export}")
            if clear:
                last_id = entries[-1].id if entries else 0
                removed = state.clear_log(profile, up_to_id=last_id)
                echo(f"Log cleared ({count(removed, 'entry')} removed).")
            return
        if clear:
            removed = state.clear_log(profile)
            echo(f"Log cleared ({count(removed, 'entry')} removed).")
            return
        # One more than shown, only to know whether older entries were left out.
        entries = state.log_entries(profile, essential_only=not verbose, limit=limit + 1)
        cut = len(entries) > limit
        lines = format_entries(entries[1:] if cut else entries, config.zone, verbose=verbose)
        if not lines:
            echo("The log is empty.")
        for line in lines:
            echo(line)
        if cut:
            shown = f"{count(limit, 'entry')} {'is' if limit == 1 else 'are'} shown"
            echo(f"(only the newest {shown}; --limit N shows more, --export FILE.xlsx writes them all)")


# -- test-connection, agent, profiles ----------------------------------------------------------------------


@app.command("test-connection", cls=_Command)
def test_connection(profile: ProfileOpt = None) -> None:
    """Check the agent (reachable, signature, clock, Magento) and SnelStart (administration, template)."""
    from client.connection_test import run_checks

    config = load_config()
    failed = 0
    for prof in pick_profiles(config, profile):
        echo(f"{prof.name}:")
        for check in run_checks(config, prof):
            for line in check.lines():
                echo(f"  {line}")
            failed += not check.ok
    if failed:
        echo(f"{count(failed, 'check')} failed.")
        raise typer.Exit(EXIT_FAILED)


@app.command(cls=_Command)
def agent(
    method: Annotated[str, typer.Argument(help="HTTP method, e.g. GET or POST.")],
    path: Annotated[str, typer.Argument(help="Path on the agent, query allowed: /v1/orders?limit=2")],
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", metavar="NAME", help="Profile whose agent to call.")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", metavar="JSON", help="JSON body to send.")
    ] = None,
) -> None:
    """Make one signed call to the agent and print its JSON answer (for diagnosis)."""
    from client.agent_client import AgentClient

    config = load_config()
    prof = one_profile(config, profile)
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        raise KoppelError(
            f"{path!r}: give a path on the agent starting with /, like /v1/diagnostics", EXIT_USAGE
        )
    params = parse_qsl(parts.query, keep_blank_values=True)
    body = None
    if data is not None:
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise KoppelError(f"--data is not valid JSON: {exc}", EXIT_USAGE) from None
    with AgentClient.from_profile(prof) as client:
        status_code, answer = client.request(method.upper(), parts.path, params, body)
    echo(json.dumps(answer, indent=2, ensure_ascii=False) if answer is not None else "(empty answer)")
    if not 200 <= status_code < 300:
        typer.echo(f"HTTP {status_code}", err=True)
        raise typer.Exit(EXIT_FAILED)


@app.command(cls=_Command)
def profiles() -> None:
    """List the profiles of client.yml."""
    config = load_config()
    echo(f"{config.path}:")
    for prof in config.profiles:
        flags = " (paused)" if prof.paused or config.paused else ""
        echo(f"  {prof.name}{flags}: {prof.description or '-'}")
        echo(f"    agent:     {prof.agent.url} (key {prof.agent.key_id})")
        where = prof.snelstart.path if prof.snelstart.backend == "local" else prof.snelstart.administration
        echo(f"    snelstart: {prof.snelstart.backend}" + (f" {where}" if where else ""))
        for name, settings in prof.tasks.items():
            paused = ", paused" if settings.paused else ""
            echo(f"    task:      {name} every {_interval(settings.interval)}{paused}")


# -- autostart, snelstart init, demo ----------------------------------------------------------------------


@app.command(cls=_Command)
def autostart(
    action: Annotated[str, typer.Argument(help="install or remove")],
    method: Annotated[
        str,
        typer.Option("--method", metavar="METHOD", help="auto, schtasks (Windows), systemd or xdg (Linux)."),
    ] = "auto",
) -> None:
    """Start `koppel schedule` at logon (Windows Task Scheduler; on Linux systemd --user or XDG autostart)."""
    from client import autostart as auto

    if action not in ("install", "remove"):
        raise KoppelError(f"autostart {action}: choose install or remove", EXIT_USAGE)
    if action == "install":
        result = auto.install(find_config_path(OPTIONS.config), method=method)
    else:
        result = auto.remove(method=method)
    echo(f"{result.message} ({result.location})")
    for warning in result.warnings:
        echo(f"WARNING: {warning}")


@snelstart_app.command("init", cls=_Command)
def snelstart_init(
    local: Annotated[Path, typer.Option("--local", metavar="PATH", help="The new administration file.")],
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="Add sample relaties and artikelen (omzetgroepen, templates and cost articles are always created).",
        ),
    ] = False,
) -> None:
    """Create a new local SnelStart administration (the `local` backend)."""
    from client.snelstart.local_init import init_local

    if local.is_dir():
        raise KoppelError(
            f"{local} is a folder; give the file to create, e.g. --local {local / 'administratie.sqlite'}",
            EXIT_USAGE,
        )
    if local.exists():
        raise KoppelError(f"{local} already exists; koppel does not overwrite an administration")
    if not local.parent.exists():
        raise KoppelError(f"the folder {local.parent} does not exist")
    init_local(local, sample=sample)
    echo(f"Local administration created: {local}" + (" (with sample data)" if sample else ""))


@app.command(cls=_Command)
def demo(
    directory: Annotated[
        Path,
        typer.Option(
            "--dir", metavar="FOLDER", help="Folder for the demo's client.yml, state and administration."
        ),
    ] = Path("koppel-demo"),
    keep: Annotated[
        bool, typer.Option("--keep", help="Leave the agent running and the Magento database in place.")
    ] = False,
    orders: Annotated[
        int, typer.Option("--orders", min=1, max=2000, metavar="N", help="Number of demo orders.")
    ] = 40,
    stop: Annotated[
        bool,
        typer.Option(
            "--stop", help="Only stop what a kept demo (--keep) left running, and drop its database."
        ),
    ] = False,
) -> None:
    """Build a demo Magento 2 shop, start the agent, create a local SnelStart and import the orders."""
    from client.demo.run_demo import run_demo, stop_demo

    if stop:
        if keep:
            raise KoppelError("--stop and --keep do not go together", EXIT_USAGE)
        code = stop_demo(directory, say=echo)
    else:
        code = run_demo(directory, keep=keep, orders=orders, say=echo)
    if code:
        raise typer.Exit(code)


# -- entry point -----------------------------------------------------------------------------------------

_GLOBAL_WITH_VALUE = ("--config",)
_GLOBAL_FLAGS = ("--debug",)


def hoist_global_options(args: list[str]) -> list[str]:
    """Move --config/--debug to the front so they work after the sub-command too (SPEC: before or after)."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        if arg in _GLOBAL_WITH_VALUE and index + 1 < len(args):
            front.extend(args[index : index + 2])
            index += 2
            continue
        if any(arg.startswith(f"{name}=") for name in _GLOBAL_WITH_VALUE) or arg in _GLOBAL_FLAGS:
            front.append(arg)
        else:
            rest.append(arg)
        index += 1
    return front + rest


def _known_errors() -> tuple[type[BaseException], ...]:
    from client.autostart import AutostartError
    from client.runner import expected_errors

    return (*expected_errors(), KoppelError, AutostartError)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns (and exits with) the exit code."""
    args = hoist_global_options(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in args
    try:
        # Standalone mode: typer shows usage errors and help itself and ends with SystemExit.
        app(args=args, prog_name="koppel")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_FAILED)
    except KeyboardInterrupt:
        typer.echo(f"koppel: {INTERRUPTED}", err=True)
        code = EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into a sentence
        from client.state import StateError

        if debug:
            traceback.print_exc()
        code = getattr(exc, "code", None) if isinstance(exc, KoppelError) else EXIT_FAILED
        if isinstance(exc, ConfigError) or (isinstance(exc, StateError) and exc.setting):
            # client.yml, --config or --profile is wrong (a state folder that may not be written, too): the
            # help's "wrong use"
            code = EXIT_USAGE
        if isinstance(exc, _known_errors()):
            message = str(exc)
        else:
            message = f"unexpected error ({type(exc).__name__}): {exc}"
            if not debug:
                message += " — run again with --debug for the details"
        typer.echo(f"koppel: {message}", err=True)
        code = code or EXIT_FAILED
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
