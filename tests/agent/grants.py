"""README's MySQL grants for the agent as SQL, and a database user holding exactly those grants.

The grants tests check the README's list itself; the stock tests run the agent's side of every case as a
``GrantedUser``, so a statement that needs a privilege the README does not list fails there too.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pymysql

from tests.mariadb import MariaDB

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## MySQL privileges for the agent"
_GRANTED_TABLE = re.compile(r" ON `[^`]+`\.`([^`]+)` TO ")


def grant_statements(
    version: int, database: str, prefix: str, user: str, *, schedule: bool, msi: bool = True
) -> list[str]:
    """The SQL of the README's privileges section for one Magento version, database, prefix and user filled in.

    ``msi``/``schedule`` False leave out the optional blocks for MSI and for the changelog tables.
    """
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"{README} has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1]
    section = re.split(r"^## ", section, maxsplit=1, flags=re.M)[0]
    heading = "Magento 2" if version == 2 else "Magento 1"
    [part] = [s for s in re.split(r"^### ", section, flags=re.M) if s.startswith(heading)]
    blocks = re.findall(r"```sql\n(.*?)```", part, flags=re.S)
    if not schedule:
        blocks = [b for b in blocks if "_cl`" not in b]
    if not msi:
        blocks = [b for b in blocks if "inventory_source_item`" not in b]
    out = []
    for block in blocks:
        for line in block.splitlines():
            line = line.strip()
            if not line.startswith("GRANT "):
                continue
            line = line.replace("`magento`.", f"`{database}`.").replace("{prefix}", prefix)
            out.append(line.replace("'koppel'@'localhost'", user).rstrip(";"))
    assert out, f"no GRANT statements for {heading} in {README} section {SECTION!r}"
    return out


def granted_table(statement: str) -> str:
    """The table a README GRANT statement is about."""
    found = _GRANTED_TABLE.search(statement)
    assert found, f"not a table grant: {statement}"
    return found[1]


class GrantedUser:
    """A fresh MariaDB user holding README's grants for one shop and nothing else; ``close()`` drops it.

    MySQL refuses a grant on a table that does not exist, and the README says to leave those out, so
    ``grant()`` applies the statements whose tables exist at that moment and records the rest in ``skipped``.
    Call it again after creating tables (e.g. the changelogs of Update by Schedule); granting twice is harmless.
    """

    def __init__(self, mariadb: MariaDB, database: str, version: int, prefix: str) -> None:
        self.mariadb = mariadb
        self.database = database
        self.version = version
        self.prefix = prefix
        self.name = f"koppel_a_{secrets.token_hex(4)}"
        self.password = secrets.token_urlsafe(18)
        self.skipped: set[str] = set()
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT SUBSTRING_INDEX(USER(), '@', -1)")
            host = cur.fetchone()[0]
            self.account = f"'{self.name}'@'{host}'"
            cur.execute(f"CREATE USER {self.account} IDENTIFIED BY %s", (self.password,))
        self.grant()

    def grant(self) -> None:
        statements = grant_statements(self.version, self.database, self.prefix, self.account, schedule=True)
        with self.mariadb.connect(self.database) as conn, conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()")
            present = {row[0] for row in cur.fetchall()}
            self.skipped = set()
            for statement in statements:
                table = granted_table(statement)
                if table in present:
                    cur.execute(statement)
                else:
                    self.skipped.add(table)

    def connect(self, **options: Any) -> pymysql.connections.Connection:
        """A connection as this user (autocommit on unless ``options`` say otherwise)."""
        return pymysql.connect(
            **{
                "host": self.mariadb.host,
                "port": self.mariadb.port,
                "user": self.name,
                "password": self.password,
                "database": self.database,
                "charset": "utf8mb4",
                "autocommit": True,
                **options,
            }
        )

    def close(self) -> None:
        with self.mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS {self.account}")
