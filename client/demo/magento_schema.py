"""koppel's own Magento schema fixture: the tables the agent reads and writes, per Magento version.

The DDL lives in ``m{version}_{part}.sql`` next to this file; ``{prefix}`` in it stands for the table prefix.
Parts: ``core`` (stores, customers, EAV, products, sales) and ``stock`` (inventory, config, indexer state).
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent
PARTS = ("core", "stock")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_]*$")


def schema_sql(version: int, prefix: str = "", parts: tuple[str, ...] = PARTS) -> list[str]:
    """The CREATE/INSERT statements for one Magento version, prefixed, split into single statements."""
    if version not in (1, 2):
        raise ValueError(f"Magento version must be 1 or 2, not {version!r}")
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"table prefix {prefix!r} may hold only letters, digits and underscores")
    statements: list[str] = []
    for part in parts:
        path = HERE / f"m{version}_{part}.sql"
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8").replace("{prefix}", prefix)
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        statements.extend(s.strip() for s in text.split(";\n") if s.strip())
    return statements


def create_schema(conn, version: int, prefix: str = "", parts: tuple[str, ...] = PARTS) -> None:  # noqa: ANN001
    """Create the fixture tables (and their seed rows) in the connection's current database."""
    with conn.cursor() as cur:
        for statement in schema_sql(version, prefix, parts):
            cur.execute(statement)
    conn.commit()
