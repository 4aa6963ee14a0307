"""`koppel demo`: the whole job end to end on this machine, in well under a minute.

MariaDB (the machine's, or a private one started from the installed binaries) → a demo Magento 2 shop in a new
database → the agent under gunicorn on a free loopback port with a fresh key → a local SnelStart administration
with sample data → a client.yml in the demo folder → `import_orders_and_export_stock`, twice, to show that the
second run imports nothing new. Everything the demo started is stopped and its database dropped at the end,
unless --keep asks to leave them for exploring.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml

from client.demo.mariadb import MariaDB, PrivateMariaDB, free_port, reachable
from client.locking import AlreadyRunning, ProfileLock, lock_path
from client.wording import count, plural

MARKER = ".koppel-demo"
PROFILE = "demo"
KEY_ID = "demo"
# What a demo folder holds; a rerun removes exactly these before it starts afresh.
OWN_FILES = (
    MARKER,
    "client.yml",
    "agent.yml",
    "agent-secret.txt",
    "agent.log",
    "demo-info.json",
    "agent-state",
)
OWN_GLOBS = ("koppel-state.sqlite*", "administratie.sqlite*")
# The lock that keeps a second `koppel demo` out of a folder in use (never removed while a demo holds it).
LOCK_BASE, LOCK_NAME = ".koppel", "demo"

Say = Callable[[str], None]
PROGRESS_SECONDS = 2.0  # a long step says how far it got at most this often


class DemoError(Exception):
    """The demo cannot go on; the message says why and what to do."""


def lock_folder(folder: Path) -> ProfileLock:
    """Hold the demo folder for this run: a second demo in the same folder is refused, not interleaved."""
    if folder.exists() and not folder.is_dir():
        raise DemoError(f"{folder} is a file; choose another --dir")
    folder.mkdir(parents=True, exist_ok=True)
    lock = ProfileLock(folder / LOCK_BASE, LOCK_NAME, what="koppel demo")
    existed = lock.path.exists()
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        pid = exc.holder.get("pid")
        who = f" (process {pid})" if pid else ""
        raise DemoError(
            f"another koppel demo is already running in {folder}{who}; wait for it or choose another --dir"
        ) from None
    if not existed and not (folder / MARKER).exists() and _foreign(folder):
        # Someone else's folder: leave it as it was, without our lock file.
        lock.release()
        lock.path.unlink(missing_ok=True)
    return lock


def _foreign(folder: Path) -> bool:
    """Holds files, but none of them says an earlier demo made it."""
    mine = lock_path(folder / LOCK_BASE, LOCK_NAME).name
    return not (folder / MARKER).exists() and any(p.name != mine for p in folder.iterdir())


def prepare_folder(folder: Path) -> bool:
    """An empty demo folder: created, or emptied of an earlier demo's files; never someone else's folder.

    Returns True when an earlier demo's files were removed (the new demo then starts from nothing again)."""
    if folder.exists() and not folder.is_dir():
        raise DemoError(f"{folder} is a file; choose another --dir")
    if folder.exists() and _foreign(folder):
        raise DemoError(f"{folder} is not empty and not an earlier koppel demo; choose another --dir")
    earlier = (folder / MARKER).exists()
    if folder.exists() and any(folder.iterdir()):
        _stop_kept(folder)
        for name in OWN_FILES:
            path = folder / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        for pattern in OWN_GLOBS:
            for path in folder.glob(pattern):
                path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(
        "made by koppel demo; a new demo run empties this folder\n", encoding="utf-8"
    )
    return earlier


def _ours(pid: Any, *needles: str) -> bool:
    """The process is alive and its command line names every needle (a recycled pid must never be killed)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return all(needle.encode() in cmdline for needle in needles)


def _end(pid: int, timeout: float = 20) -> None:
    """SIGTERM, then wait (it is not our child, so by polling) until the process is gone; SIGKILL at the end."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _stop_kept(folder: Path) -> list[str]:
    """Stop what an earlier `koppel demo --keep` left running (agent, database, private MariaDB); says what."""
    info_path = folder / "demo-info.json"
    if not info_path.exists():
        return []
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except ValueError:
        return []
    done: list[str] = []
    pid = info.get("agent_pid")
    if _ours(pid, "agent", str(folder.resolve())):
        _end(pid)
        done.append(f"stopped the agent (process {pid})")
    db = info.get("database")
    server = MariaDB(host=info.get("db_host", "127.0.0.1"), port=info.get("db_port", 3306))
    if (
        db
        and db.startswith("koppel_demo_")
        and reachable(server.host, server.port)
        and server.drop_database(db)
    ):
        done.append(f"dropped database {db}")
    private_dir, private_pid = info.get("private_dir"), info.get("private_pid")
    if private_dir and _ours(private_pid, "--datadir", private_dir):
        _end(private_pid, timeout=60)
        done.append(f"stopped the private MariaDB (process {private_pid})")
    if private_dir and Path(private_dir).name.startswith("koppel-mariadb-"):
        shutil.rmtree(private_dir, ignore_errors=True)
    info_path.unlink(missing_ok=True)
    return done


# The agent's files that hold its key's secret and its database login: removed once the agent is gone.
DEAD_KEY_FILES = ("agent-secret.txt", "agent.yml")


def stop_demo(folder: Path, say: Say = print) -> int:
    """`koppel demo --stop`: end what a kept demo left running; its files stay for `koppel status` and `log`."""
    folder = Path(folder)
    if not folder.is_dir() or not (folder / MARKER).exists():
        say(
            f"koppel demo --stop: no kept koppel demo is running in {folder}; give the folder of the demo that "
            "was started with --keep (--dir)"
        )
        return 2
    try:
        lock = lock_folder(folder)
    except DemoError as exc:
        say(f"koppel demo --stop: {exc}")
        return 1
    try:
        done = _stop_kept(folder)
        # The agent is gone, as without --keep: the dead key's secret and agent.yml (with the database login)
        # would only lie about; client.yml, the state and the administration stay for `koppel status` and log.
        removed = [name for name in DEAD_KEY_FILES if (folder / name).exists()]
        for name in removed:
            (folder / name).unlink()
        if removed and done:
            done.append(f"removed the dead key's {' and '.join(removed)}")
    finally:
        lock.release()
    if not done:
        say(f"Nothing to stop: no demo in {folder} was left running.")
    else:
        say(f"Kept demo in {folder} ended: {', '.join(done)}.")
    return 0


def find_mariadb(say: Say) -> MariaDB:
    if reachable("127.0.0.1", 3306):
        say("MariaDB: using the server at 127.0.0.1:3306")
        return MariaDB()
    say("MariaDB: none at 127.0.0.1:3306 (root without password); starting a private one ...")
    try:
        private = PrivateMariaDB()
        private.start()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        raise DemoError(f"could not start MariaDB: {exc}") from None
    say(f"MariaDB: private server on port {private.port} in {private.dir}")
    return private.server()


class Agent:
    """`koppel-agent serve` as a child process."""

    def __init__(self, folder: Path, server: MariaDB, database: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_urlsafe(36)
        self.config_path = folder / "agent.yml"
        config = {
            "database": {
                "host": server.host,
                "port": server.port,
                "name": database,
                "user": server.user,
                "password": server.password,
            },
            "magento": {"version": 2, "table_prefix": ""},
            "settle_seconds": 60,
            "state_dir": str(folder / "agent-state"),
            "keys": [
                {
                    "id": KEY_ID,
                    "secret": self.secret,
                    "scopes": ["orders:read", "stock:write", "diagnostics:read"],
                }
            ],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        self.config_path.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, keep: bool, timeout: float = 60) -> None:
        command = [
            *agent_command(), "serve", "--config", str(self.config_path),
            "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
        ]  # fmt: skip
        log_path = self.folder / "agent.log"
        with open(log_path, "ab") as log:
            # cwd is the demo folder (ours, so nothing in it shadows the agent package); a kept agent gets its
            # own session, so closing the demo's terminal does not take it down.
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder, start_new_session=keep
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DemoError(
                    f"the agent stopped at start-up ({_last_line(log_path)}); the whole output is in {log_path}"
                )
            if self.answers():
                return
            time.sleep(0.2)
        raise DemoError(f"the agent did not answer within {timeout:.0f} s; see {log_path}")

    def answers(self) -> bool:
        """Our agent process is alive and its health check answers."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            return requests.get(f"{self.url}/v1/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def agent_command() -> list[str]:
    """The installed `koppel-agent` next to this Python; `python -I -m agent` (no current folder on the module
    path, so a folder named "agent" there cannot stand in for the package) where no script was installed."""
    here = Path(sys.executable).parent
    for name in ("koppel-agent", "koppel-agent.exe"):
        if (here / name).is_file():
            return [str(here / name)]
    return [sys.executable, "-I", "-m", "agent"]


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:300] if lines else "no output"


def write_client_yml(folder: Path, agent: Agent) -> Path:
    secret_file = folder / "agent-secret.txt"
    secret_file.write_text(agent.secret + "\n", encoding="utf-8")
    secret_file.chmod(0o600)
    profile = {
        "name": PROFILE,
        "description": "Demo koffiewebshop (Magento 2)",
        "agent": {"url": agent.url, "key_id": KEY_ID, "secret_file": "./agent-secret.txt"},
        "magento": {"import_from": "2026-01-01 00:00"},
        "snelstart": {"backend": "local", "path": "./administratie.sqlite"},
        "orders": {
            "template": "Webshop",
            "unique_payment_reference": True,
            "description": "order_number",
            "addresses": "from_order",
            "lines": "full",
            "recipes": "never",
            "shipping_costs": {"line": "VERZEND"},
            "discount": {"line": "KORTING"},
            "payment_costs": {"line": "BETAALKOSTEN"},
            # The sample administration's 0 % article; only used when an order's totals differ by a cent.
            "rounding_article": "AFRONDING",
            "default_article": "WEBSHOP",
        },
        "articles": {"revenue_group": 1, "processing": "add"},
        "customers": {"matching": "smart", "processing": "add", "payment_term_days": 14},
        "tasks": {
            "import_orders": {"interval": "15m"},
            "import_orders_and_export_stock": {"interval": "1h"},
        },
    }
    data = {
        "timezone": "Europe/Amsterdam",
        "state": "./koppel-state.sqlite",
        "paused": False,
        "profiles": [profile],
    }
    path = folder / "client.yml"
    header = "# Written by `koppel demo`; a new demo run replaces it.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def known_relatie_codes(admin: Path) -> dict[str, int]:
    """Main e-mail → relatiecode of the sample administration's relaties (the demo shop's klantcode values)."""
    from client.rules.normalize import email_key
    from client.snelstart.local import LocalBackend

    with LocalBackend(admin) as backend:
        found = backend.relaties_by_email(email_key("info@jansen-installatie.nl"), all_fields=False)
    return {"info@jansen-installatie.nl": found[0].relatiecode} if found else {}


def run_demo(folder: Path, *, keep: bool = False, orders: int = 40, say: Say = print) -> int:
    """Run the demo; returns the exit code (0 when both imports behaved as they should)."""
    try:
        lock = lock_folder(Path(folder))
    except DemoError as exc:
        say(f"koppel demo: {exc}")
        return 1
    try:
        return _run(Path(folder), keep, orders, say)
    except DemoError as exc:
        say(f"koppel demo: {exc}")
        return 1
    finally:
        lock.release()


def _run(folder: Path, keep: bool, orders: int, say: Say) -> int:
    from client.config import load_client_config
    from client.demo.data import build_orders, use_update_by_schedule
    from client.demo.shop import Shop
    from client.runner import OK, run_task
    from client.snelstart.local_init import init_local
    from client.state import StateStore

    started = time.monotonic()
    if prepare_folder(folder):
        # Otherwise a second demo importing everything again would look like double bookings.
        say(
            f"Earlier demo in {folder} removed: this demo starts again with a new shop and a new administration"
        )
    folder = folder.resolve()
    server = find_mariadb(say)
    database = server.create_database("koppel_demo")
    agent: Agent | None = None
    ok = finished = False
    try:
        admin = folder / "administratie.sqlite"
        init_local(admin, sample=True)
        say(f"SnelStart: local administration with sample relaties, artikelen and templates: {admin}")

        conn = server.connect(database)
        ticker = Ticker(say)
        try:
            shop = Shop.install(conn, 2, "", parts=("core", "stock"))
            made = build_orders(
                shop,
                orders,
                known_relatie_codes(admin),
                progress=lambda done: ticker(
                    f"  Magento 2: {done} of {count(orders, 'demo order')} written ..."
                ),
            )
            scheduled = use_update_by_schedule(shop)
        finally:
            conn.close()
        say(f"Magento 2: demo shop in database {database}: {describe_shop(made)}")
        if scheduled:
            # Otherwise every push marks the stock indexers invalid and test-connection warns about it.
            say(f"  stock indexers ({', '.join(scheduled)}) on Update by Schedule, as a shop should run them")

        agent = Agent(folder, server, database)
        agent.start(keep)
        say(f"Agent: koppel-agent serve on {agent.url} (gunicorn), key {KEY_ID!r} made just now")
        config_path = write_client_yml(folder, agent)
        config = load_client_config(config_path)
        say(f"Client: {config_path}")
        (folder / "demo-info.json").write_text(
            json.dumps(
                {
                    "database": database,
                    "db_host": server.host,
                    "db_port": server.port,
                    "agent_pid": agent.proc.pid if agent.proc else None,
                    "agent_url": agent.url,
                    "private_dir": str(server.private.dir) if server.private else None,
                    "private_pid": server.private.proc.pid
                    if server.private and server.private.proc
                    else None,
                    "kept": keep,
                }
            ),
            encoding="utf-8",
        )

        say("")
        say("Import 1: koppel run --task import_orders_and_export_stock")
        with StateStore(config.state) as state:
            progress = import_progress(Ticker(say))
            first = run_task(
                config, PROFILE, "import_orders_and_export_stock", state=state, progress=progress
            )
            second = run_task(config, PROFILE, "import_orders_and_export_stock", state=state)
        say_outcome(first, say)
        say("")
        say("Import 2, straight after: the same command again")
        result = second.import_result
        say(second_run_line(second))
        if second.stock_result is not None:
            from client.runner import describe_stock

            say(f"  {describe_stock(second.stock_result)} — only changes are pushed")
        ok = first.result == OK and second.result == OK and result is not None and result.imported == 0
        say("")
        say_next_steps(config_path, keep, say)
        finished = True
    finally:
        if keep and finished and agent is not None and agent.answers():
            say("")
            say(
                f"Left running (--keep): agent pid {agent.proc.pid if agent.proc else '?'} on {agent.url}, database {database}"
            )
            if server.private is not None:
                say(
                    f"  Private MariaDB on port {server.port} (data in {server.private.dir}) keeps running too."
                )
            say(f"  `koppel demo --stop --dir {folder}` stops them (a new `koppel demo` there does too).")
        else:
            if agent is not None:
                agent.stop()
            # The agent's key dies with it: its secret (and agent.yml, which holds it and the database login)
            # would only lie about in the folder; client.yml, the state and the administration stay for
            # `koppel status` and `koppel log`.
            for name in DEAD_KEY_FILES:
                (folder / name).unlink(missing_ok=True)
            server.drop_database(database)
            if server.private is not None:
                server.private.cleanup()
            say("")
            if not finished:
                say(
                    f"The demo did not get through; it stopped what it started and dropped database {database}."
                )
            elif keep:
                say(f"The agent is no longer running, so nothing is kept: dropped database {database}.")
            else:
                say(f"Stopped the agent and dropped database {database}. Run with --keep to explore them.")
    say(f"Demo {'finished' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s.")
    return 0 if ok else 1


class Ticker:
    """Says a progress line at most every ``every`` seconds, so a long step is not silent and a short one is."""

    def __init__(self, say: Say, every: float | None = None) -> None:
        self.say = say
        self.every = PROGRESS_SECONDS if every is None else every
        self.last = time.monotonic()

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.say(text)


def import_progress(ticker: Ticker) -> Callable[[str, int, int | None], None]:
    """The engine's progress callback, as progress lines of the demo."""
    from client.runner import STAGE_TEXT

    def progress(stage: str, done: int, total: int | None) -> None:
        of = f" of {total}" if total else ""
        ticker(f"  {STAGE_TEXT.get(stage, stage)}: {done}{of} ...")

    return progress


def describe_shop(made: Any) -> str:
    """What the demo shop holds, in one line."""

    def by(number: int, who: str) -> str:
        return f"{number} by {'a ' + who if number == 1 else who + 's'}"

    return (
        f"{count(made.orders, 'order')} ({by(made.registered, 'registered customer')}, "
        f"{by(made.guests, 'guest')}, "
        f"{made.business} business; {made.with_discount} with a coupon, {made.with_fee} with a payment fee; "
        f"{made.awaiting_payment} awaiting payment, {made.canceled} canceled)"
    )


def second_run_line(second: Any) -> str:
    """What the second import shows; "exactly once" only when it is true, failures named plainly."""
    from client.runner import OK

    result = second.import_result
    new = result.imported if result is not None else "?"
    failed = result.failed if result is not None else 0
    imported = f"{new} new {plural(new, 'order') if isinstance(new, int) else 'orders'} imported"
    if failed:
        return (
            f"  {imported}; {count(failed, 'order')} FAILED again and {'is' if failed == 1 else 'are'} not in "
            "SnelStart (reasons above; koppel retries them on every run)"
        )
    if second.result == OK:
        return f"  {imported} — every order is in SnelStart exactly once"
    return f"  {imported} — {second.result}: {second.message}"


def say_outcome(outcome: Any, say: Say) -> None:
    result = outcome.import_result
    if result is None:
        say(f"  {outcome.result}: {outcome.message}")
        return
    say(f"  Orders imported:     {result.imported}")
    for created in result.created[:5]:
        customer = f" {created.customer}" if getattr(created, "customer", None) else ""
        say(
            f"    Magento order {created.magento_number} → SnelStart verkooporder {created.snelstart_nummer} "
            f"(relatie {created.relatiecode}{customer})"
        )
    if len(result.created) > 5:
        say(f"    … and {len(result.created) - 5} more (koppel log shows them all)")
    (known, known_orders), (new, new_orders) = customer_groups(result.created)
    say(
        f"  Customers matched:   {count(known, 'relatie')} already in SnelStart, "
        f"on {count(known_orders, 'order')}"
    )
    say(f"  Customers created:   {count(new, 'new relatie')}, on {count(new_orders, 'order')}")
    say(f"  Articles created:    {result.articles_created}")
    say(f"  Waiting for payment: {result.deferred} (imported once paid)")
    say(f"  Not imported:        {result.ignored} canceled")
    warnings = getattr(outcome, "counts", {}).get("warnings", 0)
    say(
        f"  Warnings:            {count(warnings, 'warning')} in the log"
        + (" (koppel log shows them)" if warnings else "")
    )
    if result.failures:
        say(f"  FAILED:              {count(len(result.failures), 'order')} not imported:")
    for number, reason in result.failures:
        say(f"    FAILED {number}: {reason}")
    stock = outcome.stock_result
    if stock is None:
        note = outcome.message.rsplit("; ", 1)[-1]
        say(f"  Web stock:           {note}")
    else:
        from client.runner import describe_stock

        say(f"  Web stock:           {describe_stock(stock).removeprefix('web stock: ')}")


def customer_groups(created: list[Any]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(relaties, orders) that went to a relatie SnelStart already had, and to one this run created.

    A new customer's second order matches the relatie made for the first; it still counts as the new
    customer's, so that matched and created name distinct relaties and their orders add up to the import."""
    imported = [c for c in created if c.how != "already_imported"]
    made = {c.relatiecode for c in imported if getattr(c, "customer", None) == "created"}
    known: set[Any] = set()
    known_orders = new_orders = 0
    for order in imported:
        if order.relatiecode in made:
            new_orders += 1
        else:
            known.add(order.relatiecode)
            known_orders += 1
    return (len(known), known_orders), (len(made), new_orders)


def say_next_steps(config_path: Path, keep: bool, say: Say) -> None:
    beside = Path(sys.executable).with_name("koppel")
    koppel = (
        "koppel"
        if shutil.which("koppel")
        else str(beside)
        if beside.exists()
        else f"{sys.executable} -m client.cli"
    )
    # Absolute: `./run demo` runs in the checkout, while `./run koppel` and koppel itself run where the user is.
    base = f"{koppel} --config {Path(config_path).resolve()}"
    say("Try next (from a checkout, `./run koppel ...` does the same):")
    say(f"  {base} status")
    say(f"  {base} log            (--verbose for the detail, --export log.xlsx for Excel)")
    if keep:
        say(f"  {base} run --dry-run")
        say(f"  {base} run")
        say(f"  {base} test-connection")
        say(f"  {base} agent GET /v1/diagnostics")
    else:
        say(
            "  (run the demo with --keep to also try `run`, `test-connection` and `agent` against the live agent)"
        )
