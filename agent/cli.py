"""koppel-agent: serve the agent, check an installation, make a key.

Each sub-command is one ``register_*`` function that adds its parser and sets ``func``; a new sub-command
(e.g. ``deploy``) is one more function appended to ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import agent_version
from agent.config import (
    KEY_ID_PATTERN,
    SCOPES,
    AgentConfig,
    ConfigError,
    load_config,
    loose_file_text,
    loose_secret_files,
)

if TYPE_CHECKING:  # imported where used: `koppel-agent new-key` and --help need no database driver
    import pymysql

    from agent.db import Magento

DEFAULT_BIND = "127.0.0.1:8080"


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get("KOPPEL_AGENT_CONFIG"),
        metavar="FILE",
        help="agent.yml (default: $KOPPEL_AGENT_CONFIG)",
    )


def _load(path: str | None) -> AgentConfig:
    if not path:
        raise SystemExit("koppel-agent: give --config FILE or set KOPPEL_AGENT_CONFIG")
    try:
        return load_config(path)
    except ConfigError as exc:
        raise SystemExit(f"koppel-agent: {exc}") from None


# --- serve -------------------------------------------------------------------------------------------


def _bind(value: str) -> str:
    if value.startswith(("unix:", "fd://")):
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--bind wants HOST:PORT or unix:PATH, not {value!r}")
    return value


def register_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the agent under gunicorn (gthread workers)",
        description="Run the agent's HTTP API under gunicorn with gthread workers, configured by agent.yml. "
        "It listens on 127.0.0.1:8080 unless --bind says otherwise; put nginx or Apache with TLS in front.",
    )
    _config_arg(p)
    p.add_argument(
        "--bind", type=_bind, default=DEFAULT_BIND, help=f"HOST:PORT or unix:PATH (default {DEFAULT_BIND})"
    )
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    p.add_argument(
        "--timeout", type=int, default=60, help="seconds before a silent worker is restarted (default 60)"
    )
    p.add_argument(
        "--access-log", metavar="FILE", default=None, help="access log file, '-' for stdout (default off)"
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from agent.app import create_app
    from agent.state import AgentState

    cfg = _load(args.config)
    if args.workers < 1 or args.threads < 1:
        raise SystemExit("koppel-agent: --workers and --threads must be at least 1")
    try:
        AgentState(cfg.state_dir)
    except OSError as exc:
        raise SystemExit(f"koppel-agent: state_dir {cfg.state_dir}: {exc.strerror}") from None
    loose = loose_secret_files(cfg)
    if loose:
        print(
            "koppel-agent: warning: " + "; ".join(loose_file_text(*entry) for entry in loose),
            file=sys.stderr,
            flush=True,
        )
    bind_problem = address_problem(args.bind)
    if bind_problem:
        raise SystemExit(f"koppel-agent: --bind {args.bind}: {bind_problem}")
    problem = database_problem(cfg)
    if problem:
        print(
            f"koppel-agent: warning: {problem}; starting anyway, signed calls are answered with 503 until "
            "the database can be used",
            file=sys.stderr,
            flush=True,
        )
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    options = {
        "bind": args.bind,
        "workers": args.workers,
        "threads": args.threads,
        "worker_class": "gthread",
        "timeout": args.timeout,
        "graceful_timeout": 30,
        "accesslog": args.access_log,
        "errorlog": "-",
        "proc_name": "koppel-agent",
    }

    class AgentServer(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name, value in options.items():
                if value is not None:
                    self.cfg.set(name, value)

        def load(self) -> Any:
            return create_app(cfg)

    AgentServer().run()
    return 0


def address_problem(bind: str) -> str | None:
    """Why gunicorn could not listen on HOST:PORT, said once (gunicorn itself retries for five seconds and
    logs ten lines of 'Connection in use'); None when it can, or for unix:/fd:// binds."""
    import errno
    import socket

    if bind.startswith(("unix:", "fd://")):
        return None
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except socket.gaierror:
        return f"this machine does not know the host name {host!r}"
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "another program listens there already (a koppel-agent still running?); stop it or choose another port"
        if exc.errno == errno.EACCES:
            return f"port {port} may only be used by root; choose a port above 1023 and let nginx or Apache forward to it"
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"{host} is not an address of this machine"
        return exc.strerror or str(exc)
    return None


def database_problem(cfg: AgentConfig) -> str | None:
    """Why the agent cannot use the Magento database right now (connect, find Magento); None when it can."""
    import pymysql

    from agent import db

    try:
        conn = db.connect(cfg)
    except db.DatabaseUnavailable as exc:
        return str(exc)
    try:
        db.detect(conn, cfg)
    except db.MagentoNotFound as exc:
        return str(exc)
    except pymysql.err.MySQLError as exc:
        return f"database {cfg.database.name!r}: {mysql_text(exc)}"
    finally:
        conn.close()
    return None


def mysql_text(exc: BaseException) -> str:
    """A PyMySQL error as a sentence (its str() is a tuple: ``(1142, "SELECT command denied ...")``)."""
    if len(exc.args) > 1 and isinstance(exc.args[0], int):
        return f"{exc.args[1]} (MySQL error {exc.args[0]})"
    return str(exc) or type(exc).__name__


# --- check -------------------------------------------------------------------------------------------


def register_check(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="validate agent.yml, the database, its privileges and the Magento tables",
        description="Check an installation step by step: agent.yml, the state folder, the database "
        "connection, the Magento version and stock mode, the tables and privileges the keys' scopes need, "
        "and the MSI source. Prints one line per step and a last line 'check passed' or 'check failed: N "
        "problem(s)'; exits 0 when the agent can run (warnings allowed), 1 when it cannot, 2 when no "
        "agent.yml is given.",
    )
    _config_arg(p)
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    if not args.config:
        # Wrong use, as argparse's own refusals: exit 2 (1 means the installation has a problem).
        print("koppel-agent check: give --config FILE or set KOPPEL_AGENT_CONFIG", file=sys.stderr)
        return 2
    return run_check(Path(args.config), print)


def run_check(path: Path, say: Callable[[str], object]) -> int:
    """Check an installation step by step, saying what was found; 0 when usable (warnings allowed), 1 on
    any problem. The last line says which, whichever step stopped the check."""
    problems = 0

    def fail(message: str) -> None:
        nonlocal problems
        problems += 1
        say(f"FAIL  {message}")

    _check_steps(path, say, fail)
    say("check passed" if not problems else f"check failed: {problems} problem(s)")
    return 1 if problems else 0


def _check_steps(path: Path, say: Callable[[str], object], fail: Callable[[str], None]) -> None:
    """The steps of run_check; a step that leaves nothing for the later ones to check returns early."""
    import pymysql

    from agent import db
    from agent.state import AgentState

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        fail(f"config {exc}")
        return
    say(
        f"ok    config {path}: {len(cfg.keys)} key(s): "
        + ", ".join(f"{k.id} [{' '.join(k.scopes)}]" for k in cfg.keys)
    )
    for entry in loose_secret_files(cfg):
        # A warning, not a failure: the agent runs; the secret is only less well kept than it should be.
        say(f"warn  {loose_file_text(*entry)}")
    try:
        AgentState(cfg.state_dir)
    except OSError as exc:
        fail(f"state_dir {cfg.state_dir}: {exc.strerror}")
    else:
        # Said outside the try: a failing print (closed pipe) is no state_dir problem.
        say(f"ok    state_dir {cfg.state_dir} is writable")
    try:
        conn = db.connect(cfg)
    except db.DatabaseUnavailable as exc:
        fail(f"database: {exc}")
        return
    try:
        try:
            magento = db.detect(conn, cfg)
        except db.MagentoNotFound as exc:
            fail(f"magento: {exc}")
            return
        db.set_time_zone(conn, db.session_time_zone(cfg, magento.version))
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION() AS v, @@session.time_zone AS z")
            row = cur.fetchone()
        say(f"ok    database {cfg.database.name!r}: server {row['v']}, session time zone {row['z']}")
        stock = magento.stock_mode + (
            f" (source {magento.msi_source!r}, {magento.msi_mode})" if magento.stock_mode == "msi" else ""
        )
        say(f"ok    magento {magento.version}, table prefix {magento.prefix!r}, stock {stock}")
        scopes = {s for k in cfg.keys for s in k.scopes}
        if magento.stock_problem and "stock:write" in scopes:
            fail(f"stock: {magento.stock_problem}")
        elif magento.stock_problem:
            say(f"warn  stock (no key has stock:write): {magento.stock_problem}")
        needed = db.needed_tables(magento, scopes)
        present = db.existing_tables(conn, [magento.prefix + t for t in needed])
        missing = [t for t in needed if magento.prefix + t not in present]
        if missing:
            fail(
                f"tables missing, or hidden from user {cfg.database.user!r} for lack of privileges; grant "
                + "; ".join(f"{', '.join(needed[t])} on {magento.prefix + t}" for t in missing)
                + ' (README, "MySQL privileges for the agent")'
            )
        else:
            say(f"ok    all {len(needed)} tables the configured scopes use are present")
        unreadable = []
        with conn.cursor() as cur:
            for name in needed:
                if magento.prefix + name not in present:
                    continue
                try:
                    cur.execute(f"SELECT 1 FROM {magento.table(name)} LIMIT 0")
                except pymysql.err.OperationalError as exc:
                    if exc.args[0] != 1142:
                        raise
                    unreadable.append(magento.prefix + name)
        if unreadable:
            fail("no SELECT privilege on: " + ", ".join(unreadable))
        whole, per_table, roles = db.granted_privileges(conn)
        lacking = []
        for name, privs in needed.items():
            have = whole | per_table.get(magento.prefix + name, set())
            if "ALL PRIVILEGES" in have:
                continue
            gaps = [p for p in privs if p != "SELECT" and p not in have]
            if gaps:
                lacking.append(f"{' '.join(gaps)} on {magento.prefix + name}")
        if lacking and roles:
            say("warn  could not confirm (a role may grant them): " + "; ".join(lacking))
        elif lacking:
            fail("stock:write needs privileges the database user lacks: " + "; ".join(lacking))
        elif not unreadable:
            say("ok    the database user has the privileges the configured scopes need")
        source_table = magento.prefix + "inventory_source"
        if (
            "stock:write" in scopes
            and magento.stock_mode == "msi"
            and source_table in present
            and source_table not in unreadable
        ):
            _check_msi_source(conn, magento, say, fail)
    except pymysql.err.MySQLError as exc:
        fail(f"database: {mysql_text(exc)}")
    finally:
        conn.close()


def _check_msi_source(
    conn: pymysql.connections.Connection,
    magento: Magento,
    say: Callable[[str], object],
    fail: Callable[[str], None],
) -> None:
    """magento.msi_source must be one of Magento's sources (stock is written to it)."""
    from agent import stock

    with conn.cursor() as cur:
        sources = stock.msi_sources(cur, magento)
    problem = stock.missing_source(magento, sources)
    if problem:
        fail(f"magento.msi_source: {problem}")
    elif not sources[magento.msi_source]:
        say(
            f"warn  magento.msi_source: MSI source {magento.msi_source!r} is disabled in Magento, which "
            "leaves a disabled source out of the salable quantity"
        )
    else:
        say(f"ok    MSI source {magento.msi_source!r} exists and is enabled")


# --- new-key -----------------------------------------------------------------------------------------


def _scope(value: str) -> str:
    if value not in SCOPES:
        raise argparse.ArgumentTypeError(f"unknown scope {value!r} (known: {', '.join(SCOPES)})")
    return value


def _key_id(value: str) -> str:
    if not re.fullmatch(KEY_ID_PATTERN, value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: a key id holds only letters A-Z, digits, '_', '.' and '-' (1 to 64 of them)"
        )
    return value


def register_new_key(sub: Any) -> None:
    p = sub.add_parser(
        "new-key",
        help="make a fresh key secret and print it for agent.yml and client.yml",
        description="Make a fresh random key secret and print the lines to paste into agent.yml (on the "
        "webserver) and client.yml (on the office PC).",
    )
    p.add_argument("--id", type=_key_id, default="office", help="key id (default office)")
    p.add_argument(
        "--scopes", nargs="+", type=_scope, default=list(SCOPES), metavar="SCOPE", help=", ".join(SCOPES)
    )
    p.set_defaults(func=cmd_new_key)


def cmd_new_key(args: argparse.Namespace) -> int:
    secret = secrets.token_urlsafe(48)  # 64 characters, 384 bits
    scopes = ", ".join(dict.fromkeys(args.scopes))
    print(f"""# New key {args.id!r}: keep the secret out of chat, mail and version control.
#
# agent.yml (on the webserver), under keys:
  - id: {args.id}
    secret: "{secret}"
    scopes: [{scopes}]
#
# client.yml (on the office PC), in the profile:
    agent:
      url: https://www.example.nl/koppel
      key_id: {args.id}
      secret: "{secret}"   # or set KOPPEL_AGENT_SECRET and write secret_env: KOPPEL_AGENT_SECRET""")
    return 0


# --- main --------------------------------------------------------------------------------------------


def register_deploy(sub: Any) -> None:
    try:
        from deploy.cli import register
    except ImportError:  # a release on the webserver ships the agent without deploy/
        return
    register(sub)


COMMANDS: list[Callable[[Any], None]] = [register_serve, register_check, register_new_key, register_deploy]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koppel-agent",
        description="The koppel agent: serves Magento orders and takes stock, next to Magento.",
    )
    parser.add_argument("--version", action="version", version=f"koppel-agent {agent_version()}")
    parser.add_argument(
        "--debug", action="store_true", help="on an unexpected error, show the Python traceback"
    )
    sub = parser.add_subparsers(dest="command")
    sub.required = True
    for register in COMMANDS:
        register(sub)
    for command in sub.choices.values():
        # Also after the command (`koppel-agent check --debug`); SUPPRESS keeps a --debug before it.
        command.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="on an unexpected error, show the Python traceback",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly. stdout goes to devnull so that the interpreter's
        # own flush at exit does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("koppel-agent: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last word to the person at the terminal
        if args.debug:
            raise
        print(
            f"koppel-agent {args.command}: unexpected error: {type(exc).__name__}: {exc} "
            "(run it again with --debug for the details)",
            file=sys.stderr,
        )
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
