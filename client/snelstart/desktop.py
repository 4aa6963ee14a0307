"""The ``desktop`` backend: SnelStart 12 / Classic on the office PC (reads over ODBC, writes via the Gateway).

What is here is what can be written honestly without a Windows machine running SnelStart:

* the ODBC connection string for the three kinds of administration (``sql``: SnelStart on a SQL Server,
  ``lokaal``: SnelStart 12's LocalDB file, ``mdb``: an old Access administration);
* the checks that come first — Windows, pyodbc, the ODBC driver, the Gateway's COM registration — each failing
  with a ``SnelStartUnavailable`` that says what is missing and how to fix it.

The data access itself is not implemented: SnelStart does not publish its table layout (only ``tblRelatie`` is
known publicly) nor the Gateway's COM ProgID, and guessing them would produce a backend that looks finished and
is not. ``DesktopBackend`` therefore stops after the environment checks with a message saying so; use the
``b2b`` backend for SnelStart Web or ``local`` to preview an import.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path, PureWindowsPath
from typing import Any

from client.snelstart.base import SnelStartUnavailable

SQL_DRIVERS = (
    "ODBC Driver 18 for SQL Server",
    "ODBC Driver 17 for SQL Server",
    "SQL Server Native Client 11.0",
)
ACCESS_DRIVER = "Microsoft Access Driver (*.mdb, *.accdb)"
# SnelStart 12 runs its local administrations on SQL Server Express LocalDB under this instance name.
LOCALDB_SERVER = r"(localdb)\SnelStart"


def odbc_value(value: str) -> str:
    """Quote a connection-string value when it holds characters ODBC would read as syntax."""
    if any(ch in value for ch in ";{}=") or value != value.strip():
        return "{" + value.replace("}", "}}") + "}"
    return value


def _join(parts: dict[str, str]) -> str:
    return ";".join(f"{key}={odbc_value(val)}" for key, val in parts.items()) + ";"


def connection_string(settings: Any, *, driver: str | None = None, sql_password: str | None = None) -> str:
    """The ODBC connection string for ``settings`` (``client.config.SnelStartSettings`` with backend desktop).

    ``sql`` uses SQL authentication when ``sql_user`` is set (``sql_password`` resolved by the caller), else
    Windows authentication. ``lokaal`` attaches ``<folder>\\<administration>.mdf`` to the SnelStart LocalDB
    instance, with the database named after the file, as SnelStart's knowledge base describes. ``mdb`` opens
    ``<folder>\\<administration>.mdb`` (assumed file naming; old administrations only).
    """
    kind = getattr(settings, "kind", None)
    administration = (getattr(settings, "administration", None) or "").strip()
    if not administration:
        raise ValueError(
            "snelstart.administration is required for the desktop backend (the administration name)"
        )
    if kind == "sql":
        server = (getattr(settings, "server", None) or "").strip()
        if not server:
            raise ValueError(r"snelstart.server is required for kind sql (e.g. KANTOOR\SNELSTART)")
        parts = {
            "Driver": "{" + (driver or SQL_DRIVERS[0]) + "}",
            "Server": server,
            "Database": administration,
        }
        user = getattr(settings, "sql_user", None)
        if user:
            if sql_password is None:
                raise ValueError("snelstart.sql_password (or sql_password_env) is required with sql_user")
            parts.update(UID=user, PWD=sql_password)
        else:
            parts["Trusted_Connection"] = "yes"
        if (driver or SQL_DRIVERS[0]).startswith("ODBC Driver 18"):
            # Driver 18 encrypts by default and refuses the self-signed certificate of a local SQL Express.
            parts["TrustServerCertificate"] = "yes"
        return _join_driver(parts)
    folder = getattr(settings, "folder", None)
    if not folder:
        raise ValueError(f"snelstart.folder is required for kind {kind} (the folder of the administrations)")
    if kind == "lokaal":
        mdf = PureWindowsPath(str(folder)) / f"{administration}.mdf"
        parts = {
            "Driver": "{" + (driver or SQL_DRIVERS[0]) + "}",
            "Server": LOCALDB_SERVER,
            "Trusted_Connection": "yes",
            "AttachDbFileName": str(mdf),
            "Database": administration,
        }
        return _join_driver(parts)
    if kind == "mdb":
        mdb = PureWindowsPath(str(folder)) / f"{administration}.mdb"
        return _join_driver({"Driver": "{" + (driver or ACCESS_DRIVER) + "}", "DBQ": str(mdb)})
    raise ValueError(f"snelstart.kind must be sql, mdb or lokaal, not {kind!r}")


def _join_driver(parts: dict[str, str]) -> str:
    """Like _join, but the driver name keeps the braces it already has."""
    driver = parts.pop("Driver")
    return f"Driver={driver};" + _join(parts)


def check_environment() -> Any:
    """Return the pyodbc module, or raise SnelStartUnavailable naming what is missing."""
    if sys.platform != "win32":
        raise SnelStartUnavailable(
            f"the desktop backend needs Windows (SnelStart 12 and its Gateway run only there); this is {sys.platform}. "
            "Use backend b2b for SnelStart Web or backend local for a preview administration"
        )
    try:
        return importlib.import_module("pyodbc")
    except ImportError:
        raise SnelStartUnavailable(
            "the desktop backend needs the pyodbc package: run  pip install pyodbc  in koppel's Python"
        ) from None


class DesktopBackend:
    """Environment checks and the ODBC connection test; data access is not implemented (see module doc)."""

    name = "desktop"

    def __init__(self, settings: Any, config_dir: Path | None = None) -> None:
        pyodbc = check_environment()
        password = _sql_password(settings, config_dir)
        drivers = set(pyodbc.drivers())
        wanted = (ACCESS_DRIVER,) if settings.kind == "mdb" else SQL_DRIVERS
        driver = next((d for d in wanted if d in drivers), None)
        if driver is None:
            raise SnelStartUnavailable(
                f"no suitable ODBC driver installed (looked for {', '.join(wanted)}); install Microsoft's ODBC driver"
            )
        try:
            conn = pyodbc.connect(
                connection_string(settings, driver=driver, sql_password=password), timeout=15
            )
            conn.close()
        except pyodbc.Error as exc:
            raise SnelStartUnavailable(f"cannot open the SnelStart administration over ODBC: {exc}") from exc
        raise SnelStartUnavailable(
            "the SnelStart administration is reachable over ODBC, but koppel's desktop backend cannot read or "
            "write it yet: SnelStart's table layout and Gateway interface are not publicly documented. "
            "Use backend b2b (SnelStart Web) or local"
        )


def _sql_password(settings: Any, config_dir: Path | None) -> str | None:
    if not getattr(settings, "sql_user", None):
        return None
    from client.snelstart.secrets import SecretError, resolve_secret

    try:
        return resolve_secret(
            "snelstart.sql_password",
            value=getattr(settings, "sql_password", None),
            env=getattr(settings, "sql_password_env", None),
            base_dir=config_dir,
        ).reveal()
    except SecretError as exc:
        raise SnelStartUnavailable(str(exc)) from exc
