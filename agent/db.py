"""Database access: connecting to Magento's MySQL/MariaDB and finding out which Magento it is.

``Magento.table()`` is the one place where a table name gets the shop's prefix; every query in the agent
builds its table names through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import pymysql
import pymysql.cursors

from agent.config import AgentConfig

_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")

# MySQL client error codes that mean "no usable server", as opposed to a bad query.
_UNREACHABLE = {1040, 1045, 1049, 1129, 1130, 1203, 2002, 2003, 2005, 2006, 2013, 2055}


class DatabaseUnavailable(Exception):
    """The database cannot be used (down, refusing, wrong credentials).

    ``str()`` is the whole story for the agent's log and `koppel-agent check` (address, the server's own
    words). ``setup_problem`` is set when agent.yml or the grants are at fault rather than an outage: a
    sentence for a signed caller that names the cause and the key to fix, without the address or the
    server's text (which names the host the agent connects from)."""

    def __init__(self, message: str, setup_problem: str | None = None) -> None:
        super().__init__(message)
        self.setup_problem = setup_problem


class MagentoNotFound(Exception):
    """The database is reachable but does not hold the Magento tables the configuration points at."""


@dataclass(frozen=True)
class Magento:
    """What the agent found out about the shop: version, table prefix and how stock is kept."""

    version: int
    prefix: str
    stock_mode: str  # "legacy" | "msi"
    msi_source: str
    msi_mode: str  # "salable" | "physical"
    # Why stock must not be written although orders can be read (e.g. MSI installed but its tables hidden
    # from the agent's user); None when stock may be written.
    stock_problem: str | None = None

    def __post_init__(self) -> None:
        if self.version not in (1, 2):
            raise ValueError(f"Magento version must be 1 or 2, not {self.version!r}")
        if not re.match(r"^[A-Za-z0-9_]*$", self.prefix):
            raise ValueError(f"table prefix {self.prefix!r} may hold only letters, digits and underscores")

    def table(self, name: str) -> str:
        """The back-quoted, prefixed table name, ready to be put into SQL."""
        if not _NAME_RE.match(name):
            raise ValueError(f"not a table name: {name!r}")
        return f"`{self.prefix}{name}`"

    @property
    def orders_table(self) -> str:
        return self.table("sales_order" if self.version == 2 else "sales_flat_order")


def is_unreachable(exc: BaseException) -> bool:
    """True when a PyMySQL error means the server is gone rather than the query being wrong."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    if isinstance(exc, pymysql.err.OperationalError):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code is None or code in _UNREACHABLE
    return isinstance(exc, OSError)


def session_time_zone(cfg: AgentConfig, version: int | None) -> str | None:
    """The session zone Magento itself reads and writes with; None means the server default."""
    if version == 2:
        return "+00:00"
    if version == 1:
        return cfg.magento.session_time_zone
    return None


def set_time_zone(conn: pymysql.connections.Connection, zone: str | None) -> None:
    if zone is None:
        return
    with conn.cursor() as cur:
        cur.execute("SET time_zone = %s", (zone,))


def connect(cfg: AgentConfig, *, version: int | None = None) -> pymysql.connections.Connection:
    """A new connection (utf8mb4, dict rows, autocommit off) in the session zone of ``version``.

    Without ``version`` the configured one is used; with ``version: auto`` the zone is left at the server's
    default until ``set_time_zone`` is called after ``detect``.
    """
    db = cfg.database
    if version is None and cfg.magento.version != "auto":
        version = int(cfg.magento.version)
    try:
        conn = pymysql.connect(
            host=db.host,
            port=db.port,
            unix_socket=db.unix_socket,
            user=db.user,
            password=db.password,
            database=db.name,
            charset="utf8mb4",
            cursorclass=pymysql.cursors.DictCursor,
            autocommit=False,
            connect_timeout=db.connect_timeout,
            read_timeout=db.read_timeout,
            write_timeout=db.read_timeout,
            # PyMySQL >= 1.2 builds a TLS context (~30 ms) on every connect to try TLS; over a unix socket or
            # loopback there is nothing to protect, and the agent connects once per request.
            ssl_disabled=bool(db.unix_socket) or db.host in ("127.0.0.1", "localhost", "::1"),
        )
    except (pymysql.err.MySQLError, OSError) as exc:
        raise _unavailable(exc, cfg) from exc
    try:
        set_time_zone(conn, session_time_zone(cfg, version))
    except pymysql.err.MySQLError as exc:
        conn.close()
        if is_unreachable(exc):
            raise _unavailable(exc, cfg) from exc
        raise
    return conn


README_GRANTS = "README, MySQL privileges for the agent"


def setup_problem(exc: BaseException, cfg: AgentConfig) -> tuple[str, str] | None:
    """(what is wrong, what to do) when a failed connect is agent.yml's or the grants' fault, not an outage.

    Worded for a holder of a valid key: it names database.user and database.name, which that person sets up
    (and may read in agent.yml anyway), but never the password, the address or the host the server saw."""
    db = cfg.database
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code == 1045:
        return (
            f"the Magento database refused the login of user {db.user!r} (access denied)",
            "check database.user and database.password in agent.yml",
        )
    if code == 1049:
        return (f"the Magento database {db.name!r} does not exist", "check database.name in agent.yml")
    if code == 1044:
        return (
            f"user {db.user!r} may not use the Magento database {db.name!r}",
            f"grant it the agent's privileges on that database ({README_GRANTS})",
        )
    if code == 1130:
        return (
            f"the database server does not let user {db.user!r} log in from the agent's machine",
            f"create the user for the host the agent connects from ({README_GRANTS})",
        )
    return None


def _unavailable(exc: BaseException, cfg: AgentConfig) -> DatabaseUnavailable:
    problem = setup_problem(exc, cfg)
    if problem is None:
        return DatabaseUnavailable(_describe(exc, cfg))
    cause, fix = problem
    return DatabaseUnavailable(f"{_describe(exc, cfg)}; {fix}", f"{cause}; {fix}")


def _describe(exc: BaseException, cfg: AgentConfig) -> str:
    db = cfg.database
    where = f"unix socket {db.unix_socket}" if db.unix_socket else f"{db.host}:{db.port}"
    detail = exc.args[1] if len(exc.args) > 1 else str(exc)
    # PyMySQL words a failed socket connect with the (unused) host name; the OS error under it names no host.
    original = getattr(exc, "original_exception", None)
    if db.unix_socket and isinstance(original, OSError):
        detail = original.strerror or str(original)
    return f"cannot connect to database {db.name!r} at {where} as {db.user!r}: {detail}"


# MySQL error codes for "this login may not do that" (database, table, column).
PRIVILEGE_ERRORS = {1044, 1142, 1143}
_DENIED_TABLE_RE = re.compile(r"for table [`']?(?:[^`'.]+[`']?\.[`']?)?([A-Za-z0-9_$]+)")


def is_privilege_error(exc: BaseException) -> bool:
    """True when a PyMySQL error says the agent's user lacks a privilege (not an outage, not bad SQL)."""
    return (
        isinstance(exc, pymysql.err.MySQLError)
        and bool(exc.args)
        and isinstance(exc.args[0], int)
        and exc.args[0] in PRIVILEGE_ERRORS
    )


def denied_table(exc: BaseException) -> str | None:
    """The table a privilege error names, when it names one."""
    text = exc.args[1] if len(exc.args) > 1 else ""
    found = _DENIED_TABLE_RE.search(str(text))
    return found.group(1) if found else None


def existing_tables(conn: pymysql.connections.Connection, names: list[str]) -> set[str]:
    """Which of the given (already prefixed, unquoted) table names exist in the current database."""
    if not names:
        return set()
    marks = ", ".join(["%s"] * len(names))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME AS name FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})",
            names,
        )
        return {row["name"] for row in cur.fetchall()}


# Magento 2 modules whose presence in setup_module means MSI is installed (Magento_Inventory owns the tables).
MSI_MODULES = ("Magento_Inventory", "Magento_InventoryApi")


def msi_registered(conn: pymysql.connections.Connection, prefix: str) -> bool | None:
    """Whether Magento 2's setup_module lists the MSI modules; None when the table cannot be read.

    information_schema hides tables the login has no grant on, so the tables alone cannot tell "MSI not
    installed" from "MSI not granted"; setup_module can.
    """
    marks = ", ".join(["%s"] * len(MSI_MODULES))
    with conn.cursor() as cur:
        try:
            cur.execute(
                f"SELECT module FROM `{prefix}setup_module` WHERE module IN ({marks}) LIMIT 1", MSI_MODULES
            )
        except pymysql.err.MySQLError as exc:
            if (
                exc.args and exc.args[0] == 1146
            ):  # shown as absent to a login that may see it: no Magento 2.0+
                return False
            if is_privilege_error(exc):
                return None
            raise
        return cur.fetchone() is not None


def detect(conn: pymysql.connections.Connection, cfg: AgentConfig) -> Magento:
    """Work out the Magento version and stock mode (from the tables present where the config says auto)."""
    m = cfg.magento
    prefix = m.table_prefix
    msi_tables = [prefix + t for t in MSI_TABLES]
    found = existing_tables(conn, [f"{prefix}sales_order", f"{prefix}sales_flat_order", *msi_tables])
    has_m2, has_m1 = f"{prefix}sales_order" in found, f"{prefix}sales_flat_order" in found
    if m.version == "auto":
        if has_m2 and has_m1:
            raise MagentoNotFound(
                f"both {prefix}sales_order and {prefix}sales_flat_order exist; set magento.version to 1 or 2"
            )
        if not (has_m2 or has_m1):
            raise MagentoNotFound(
                f"no Magento order table ({prefix}sales_order or {prefix}sales_flat_order) in database "
                f"{cfg.database.name!r}; check magento.table_prefix ({prefix!r})"
            )
        version = 2 if has_m2 else 1
    else:
        version = int(m.version)
        wanted = f"{prefix}sales_order" if version == 2 else f"{prefix}sales_flat_order"
        other = f"{prefix}sales_flat_order" if version == 2 else f"{prefix}sales_order"
        if wanted not in found and other in found:
            raise MagentoNotFound(
                f"magento.version is {version}, but database {cfg.database.name!r} holds Magento "
                f"{3 - version}'s {other} and no {wanted}; set magento.version to {3 - version} (or auto)"
            )
        if wanted not in found:
            raise MagentoNotFound(
                f"magento.version is {version} but table {wanted} does not exist in database "
                f"{cfg.database.name!r}; check magento.table_prefix ({prefix!r})"
            )
    hidden = [t for t in msi_tables if t not in found]
    user = cfg.database.user
    problem = None
    if m.stock == "msi" and version == 1:
        raise MagentoNotFound("magento.stock is msi, but MSI exists only in Magento 2 and this is Magento 1")
    if m.stock == "legacy" or version == 1:
        stock_mode = "legacy"
    elif m.stock == "msi" or f"{prefix}inventory_source_item" in found:
        stock_mode = "msi"
        if hidden:
            problem = (
                f"stock is MSI but tables {', '.join(hidden)} do not exist or are hidden from user {user!r}; "
                "grant the MSI privileges (README, MySQL privileges for the agent)"
            )
    else:
        registered = msi_registered(conn, prefix)
        if registered:
            stock_mode = "msi"
            problem = (
                f"Magento's MSI is installed ({prefix}setup_module lists {' or '.join(MSI_MODULES)}) but user "
                f"{user!r} cannot read {', '.join(hidden)}; grant the MSI privileges (README, MySQL "
                "privileges for the agent), or set magento.stock: legacy if the Inventory modules are disabled"
            )
        else:
            stock_mode = "legacy"
            if registered is None:
                problem = (
                    f"cannot tell whether Magento's MSI is installed: user {user!r} may not read "
                    f"{prefix}setup_module; grant SELECT on it (README, MySQL privileges for the agent) or set "
                    "magento.stock to legacy or msi"
                )
    return Magento(
        version=version,
        prefix=prefix,
        stock_mode=stock_mode,
        msi_source=m.msi_source,
        msi_mode=m.msi_mode,
        stock_problem=problem,
    )


# --- what `koppel-agent check` looks for -----------------------------------------------------------------


class _TableRecorder:
    """Stands in for ``Magento`` while the feed's query builders run, to learn which tables they read."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.names: list[str] = []

    def table(self, name: str) -> str:
        self.names.append(name)
        return f"`{name}`"


def order_tables(version: int) -> list[str]:
    """The (unprefixed) tables the order feed reads, taken from the feed's own SQL so the two cannot drift."""
    from agent import orders

    recorder = _TableRecorder(version)
    orders.page_query(recorder, orders.BEGINNING, 1, datetime(2000, 1, 1), "default")
    orders.related_queries(recorder, [1])
    orders.products_query(recorder, [1])
    orders.attributes_query(recorder, [1])
    return list(dict.fromkeys(recorder.names))


# table -> privileges the stock writer needs on it, besides SELECT (INSERT: rows missing in Magento are created).
# The lists agree with README.md "MySQL privileges for the agent", which tests/agent/test_grants.py applies;
# tests/agent/test_privileges.py records every table the stock calls touch and compares it with them.
_STOCK_WRITES = {
    (2, "legacy"): {"cataloginventory_stock_item": ("INSERT", "UPDATE"), "indexer_state": ("UPDATE",)},
    (2, "msi"): {
        "inventory_source_item": ("INSERT", "UPDATE"),
        "cataloginventory_stock_item": ("INSERT", "UPDATE"),
        "indexer_state": ("UPDATE",),
    },
    (1, "legacy"): {
        "cataloginventory_stock_item": ("INSERT", "UPDATE"),
        "cataloginventory_stock_status": ("INSERT", "UPDATE"),
    },
}
# setup_module: how detection tells an MSI shop whose tables are not granted from a shop without MSI.
_STOCK_READS = {
    (2, "legacy"): ["catalog_product_entity", "catalog_product_super_link", "core_config_data", "mview_state",
                    "setup_module"],
    (2, "msi"): ["catalog_product_entity", "catalog_product_super_link", "core_config_data", "mview_state",
                 "setup_module", "inventory_reservation", "inventory_source", "inventory_source_stock_link"],
    (1, "legacy"): ["catalog_product_entity", "catalog_product_website", "catalog_product_super_link",
                    "core_config_data", "index_process"],
}  # fmt: skip
MSI_TABLES = (
    "inventory_source_item",
    "inventory_source",
    "inventory_source_stock_link",
    "inventory_reservation",
)


def needed_tables(magento: Magento, scopes: set[str]) -> dict[str, tuple[str, ...]]:
    """Unprefixed table -> privileges the configured keys' scopes need on it (SELECT always)."""
    out: dict[str, tuple[str, ...]] = {}
    if scopes & {"orders:read", "diagnostics:read"}:
        for name in order_tables(magento.version):
            out[name] = ("SELECT",)
    if "stock:write" in scopes:
        mode = (magento.version, magento.stock_mode)
        for name in _STOCK_READS[mode]:
            out.setdefault(name, ("SELECT",))
        for name, privs in _STOCK_WRITES[mode].items():
            out[name] = ("SELECT", *privs)
    return out


def granted_privileges(conn: pymysql.connections.Connection) -> tuple[set[str], dict[str, set[str]], bool]:
    """(privileges on the whole database, table -> privileges, whether roles may add more) of this login.

    Read from information_schema; column grants count as a grant on the table.
    """
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT CURRENT_USER() AS u, CURRENT_ROLE() AS r")
        except pymysql.err.MySQLError:  # servers without roles (MySQL 5.7)
            cur.execute("SELECT CURRENT_USER() AS u, NULL AS r")
        row = cur.fetchone()
        user, _, host = row["u"].rpartition("@")
        grantee = f"'{user}'@'{host}'"
        cur.execute(
            "SELECT PRIVILEGE_TYPE AS p FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s",
            (grantee,),
        )
        whole = {r["p"] for r in cur.fetchall()}
        cur.execute(
            "SELECT PRIVILEGE_TYPE AS p FROM information_schema.SCHEMA_PRIVILEGES "
            "WHERE GRANTEE = %s AND TABLE_SCHEMA = DATABASE()",
            (grantee,),
        )
        whole |= {r["p"] for r in cur.fetchall()}
        tables: dict[str, set[str]] = {}
        for view in ("TABLE_PRIVILEGES", "COLUMN_PRIVILEGES"):
            cur.execute(
                f"SELECT TABLE_NAME AS t, PRIVILEGE_TYPE AS p FROM information_schema.{view} "
                "WHERE GRANTEE = %s AND TABLE_SCHEMA = DATABASE()",
                (grantee,),
            )
            for r in cur.fetchall():
                tables.setdefault(r["t"], set()).add(r["p"])
    return whole, tables, row["r"] is not None
