"""Magento stock, read and written with set-based SQL: the work behind /v1/stock and /v1/skus.

A push never goes through Magento's PHP, so this module does what Magento's own save path would do:
``is_in_stock`` from qty against min_qty and backorders (with ``use_config_*`` and ``core_config_data``),
Magento 1's per-website ``cataloginventory_stock_status`` rows, configurable parents following their children,
MSI source items with the default source mirrored into the legacy row, and (Magento 2) the stock indexers
marked invalid unless Update-by-Schedule triggers already pick the change up.

Every query handles a batch of rows (``IN`` lists, ``CASE`` updates, multi-row inserts), so the number of
statements grows with the request size divided by ``CHUNK``, not with the number of items. All writes of one
call happen in one transaction; the caller's connection must have autocommit off.
"""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import pymysql
from pymysql.cursors import DictCursor

from agent.db import Magento

STOCK_ID = 1  # Magento's one legacy stock (Stock::DEFAULT_STOCK_ID); website 0 is its scope in Magento 2
DEFAULT_SOURCE = "default"  # the MSI source Magento mirrors into cataloginventory_stock_item
# Rows per statement. Below MariaDB's in_predicate_conversion_threshold (1000), so an IN list stays a plain
# index range instead of becoming a derived table the optimizer may join the wrong way round.
CHUNK = 500
MAX_SKU_LENGTH = 64  # catalog_product_entity.sku is varchar(64): a longer SKU cannot exist
QTY_MAX = Decimal("99999999.9999")  # decimal(12,4)
FOUR_PLACES = Decimal("0.0001")
# Product types whose own qty Magento ignores: their salability comes from their children.
COMPOSITE_TYPES = frozenset({"configurable", "bundle", "grouped"})
STATUSES = ("updated", "unchanged", "unknown_sku", "not_managed", "invalid")

CONFIG_MANAGE_STOCK = "cataloginventory/item_options/manage_stock"
CONFIG_MIN_QTY = "cataloginventory/item_options/min_qty"
CONFIG_BACKORDERS = "cataloginventory/item_options/backorders"

# Magento 2 indexer (and mview view) ids, and the table each one's triggers watch.
INDEXER_LEGACY = "cataloginventory_stock"
INDEXER_MSI = "inventory"

# MySQL errors meaning "that table is not there / not ours to read": no changelog, so no triggers.
_NO_TABLE_ERRORS = {1142, 1146}

Hook = Callable[[str], None]


class StockSetupError(Exception):
    """The shop is not set up the way the agent's configuration says (e.g. the MSI source is missing)."""


def msi_sources(cur: Any, magento: Magento) -> dict[str, bool]:
    """The MSI sources Magento has: source code -> enabled, in code order (``cur`` gives dict rows)."""
    cur.execute(
        f"SELECT source_code AS code, enabled FROM {magento.table('inventory_source')} ORDER BY source_code"
    )
    return {str(r["code"]): bool(r["enabled"]) for r in cur.fetchall()}


def missing_source(magento: Magento, sources: Mapping[str, bool]) -> str | None:
    """Why magento.msi_source cannot be written to (it is not among ``sources``), or None when it can."""
    if magento.msi_source in sources:
        return None
    there = ", ".join(repr(code) for code in sources) or "none"
    return (
        f"MSI source {magento.msi_source!r} (magento.msi_source in agent.yml) does not exist in Magento, "
        f"whose sources are: {there}; set magento.msi_source in agent.yml to one of them"
    )


def _require_source(cur: Any, magento: Magento) -> None:
    problem = missing_source(magento, msi_sources(cur, magento))
    if problem:
        raise StockSetupError(problem)


@dataclass(frozen=True)
class StockConfig:
    """Store-wide defaults from core_config_data (default scope), with Magento's built-in fallbacks."""

    manage_stock: bool = True
    min_qty: Decimal = Decimal(0)
    backorders: int = 0


@dataclass
class ItemResult:
    """The outcome for one pushed item, in the shape of AGENT-API.md's ``results``."""

    sku: Any
    status: str
    qty: Decimal | None = None
    in_stock: bool | None = None
    message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sku": self.sku,
            "status": self.status,
            "qty": _fmt(self.qty),
            "in_stock": self.in_stock,
            "message": self.message,
        }


@dataclass
class WriteOutcome:
    results: list[ItemResult]
    rows_written: int = 0
    invalidated: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for r in self.results:
            counts[r.status] += 1
        return counts


@dataclass
class _Product:
    entity_id: int
    sku: str
    type_id: str


@dataclass
class _Item:
    """One valid, unique pushed item while it is being worked on."""

    index: int
    sku: str
    qty: Decimal
    product: _Product | None = None
    row: dict[str, Any] | None = None  # its cataloginventory_stock_item row, if any
    source_row: dict[str, Any] | None = None  # MSI: its inventory_source_item row, if any
    reserved: Decimal = Decimal(0)  # MSI: sum of open reservations (<= 0)


# --- small helpers -------------------------------------------------------------------------------------


def _fmt(value: Decimal | None) -> str | None:
    return None if value is None else f"{Decimal(value).quantize(FOUR_PLACES):f}"


def sku_key(sku: str) -> str:
    """A comparison key close to MySQL's *_general_ci collations: case, accents and trailing spaces ignored."""
    if sku.isascii():
        return sku.lower().rstrip(" ")
    decomposed = unicodedata.normalize("NFKD", sku)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold().rstrip(" ")


def _chunks(seq: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _marks(n: int) -> str:
    return ", ".join(["%s"] * n)


def parse_qty(value: Any) -> Decimal | str:
    """The pushed quantity as a Decimal, or a sentence saying why it is not acceptable."""
    if isinstance(value, bool) or value is None:
        return "qty must be a number"
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if not text or not all(ch.isdigit() or ch in ".-+" for ch in text) or not text.isascii():
            return f"qty {value!r} is not a number"
        value = text
    if not isinstance(value, int | Decimal | str):
        return "qty must be a number"
    try:
        qty = Decimal(value)
    except (InvalidOperation, ValueError):
        return f"qty {value!r} is not a number"
    if not qty.is_finite():
        return f"qty {value!r} is not a number"
    if qty < 0:
        return f"qty {value} is negative"
    if qty > QTY_MAX:  # checked before quantize(), which fails on numbers beyond Decimal's precision
        return f"qty {value} is larger than Magento can store ({QTY_MAX})"
    if qty.quantize(FOUR_PLACES) != qty:
        return f"qty {value} has more than 4 decimal places"
    return qty + 0  # drops a negative zero's sign


def _in_stock(qty: Decimal, min_qty: Decimal, backorders: int) -> bool:
    # Magento's verifyStock(): without backorders an item at or below min_qty cannot be sold.
    return backorders != 0 or qty > min_qty


def _effective(row: Mapping[str, Any] | None, cfg: StockConfig) -> tuple[bool, Decimal, int]:
    """(managed, min_qty, backorders) of a stock item, honouring its use_config_* flags."""
    if row is None:
        return cfg.manage_stock, cfg.min_qty, cfg.backorders
    managed = cfg.manage_stock if row["use_config_manage_stock"] else bool(row["manage_stock"])
    min_qty = cfg.min_qty if row["use_config_min_qty"] else Decimal(row["min_qty"])
    backorders = cfg.backorders if row["use_config_backorders"] else int(row["backorders"])
    return managed, min_qty, backorders


# --- reading -----------------------------------------------------------------------------------------


def read_config(cur: Any, magento: Magento) -> StockConfig:
    """The default-scope stock settings; a missing or unreadable value keeps Magento's shipped default."""
    cur.execute(
        f"SELECT path, value FROM {magento.table('core_config_data')} "
        "WHERE scope = 'default' AND scope_id = 0 AND path IN (%s, %s, %s)",
        (CONFIG_MANAGE_STOCK, CONFIG_MIN_QTY, CONFIG_BACKORDERS),
    )
    values = {row["path"]: (row["value"] or "").strip() for row in cur.fetchall()}
    cfg = StockConfig()
    manage = values.get(CONFIG_MANAGE_STOCK)
    if manage in ("0", "1"):
        cfg = StockConfig(manage == "1", cfg.min_qty, cfg.backorders)
    try:
        min_qty = Decimal(values[CONFIG_MIN_QTY]) if values.get(CONFIG_MIN_QTY) else cfg.min_qty
    except InvalidOperation:
        min_qty = cfg.min_qty
    backorders = values.get(CONFIG_BACKORDERS)
    return StockConfig(
        cfg.manage_stock,
        min_qty if min_qty.is_finite() else Decimal(0),
        int(backorders) if backorders in ("0", "1", "2") else cfg.backorders,
    )


def _resolve(cur: Any, magento: Magento, skus: Sequence[str]) -> dict[str, _Product]:
    """sku_key -> product; of several products sharing a SKU the lowest entity_id wins, as Magento's lookup."""
    found: dict[str, _Product] = {}
    wanted = {sku_key(s) for s in skus}
    for chunk in _chunks(list(skus)):
        cur.execute(
            f"SELECT entity_id, sku, type_id FROM {magento.table('catalog_product_entity')} "
            f"WHERE sku IN ({_marks(len(chunk))})",
            list(chunk),
        )
        for row in cur.fetchall():
            key = sku_key(row["sku"])
            if key in wanted and (key not in found or row["entity_id"] < found[key].entity_id):
                found[key] = _Product(int(row["entity_id"]), row["sku"], row["type_id"])
    return found


_ITEM_COLUMNS = (
    "item_id, product_id, stock_id, qty, is_in_stock, min_qty, use_config_min_qty, backorders, use_config_backorders, "
    "manage_stock, use_config_manage_stock"
)
_SOURCE_COLUMNS = "source_item_id, sku, quantity, status"


def _stock_items(cur: Any, magento: Magento, product_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """product_id -> its stock item row (plain read: no locks)."""
    ids = sorted(set(product_ids))
    rows: dict[int, dict[str, Any]] = {}
    for chunk in _chunks(ids):
        # No "stock_id = 1" in the WHERE: every row has it, and it tempts the optimizer onto the stock_id index.
        cur.execute(
            f"SELECT {_ITEM_COLUMNS} FROM {magento.table('cataloginventory_stock_item')} "
            f"WHERE product_id IN ({_marks(len(chunk))})",
            list(chunk),
        )
        for row in cur.fetchall():
            if int(row["stock_id"]) == STOCK_ID:
                rows[int(row["product_id"])] = row
    return rows


def _lock_by_key(cur: Any, table: str, key: str, columns: str, ids: Iterable[int]) -> list[dict[str, Any]]:
    """Lock rows by primary key (in key order) and read them afresh.

    Point lookups on the primary key take record locks only. A locking range read on a secondary index
    (``product_id IN (...)``) would also lock the next row beyond each range, i.e. a product Magento may be
    selling right now that the push does not even touch.
    """
    rows: list[dict[str, Any]] = []
    for chunk in _chunks(sorted(set(ids))):
        # Forced: on a small table the optimizer prefers scanning an index, which would lock every row.
        cur.execute(
            f"SELECT {columns} FROM {table} FORCE INDEX (PRIMARY) WHERE `{key}` IN ({_marks(len(chunk))}) FOR UPDATE",
            list(chunk),
        )
        rows.extend(cur.fetchall())
    return rows


def _source_items(cur: Any, magento: Magento, skus: Sequence[str]) -> dict[str, dict[str, Any]]:
    """sku_key -> the configured source's inventory_source_item row (plain read: no locks)."""
    rows: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(skus)):
        cur.execute(
            f"SELECT {_SOURCE_COLUMNS} FROM {magento.table('inventory_source_item')} "
            f"WHERE source_code = %s AND sku IN ({_marks(len(chunk))})",
            [magento.msi_source, *chunk],
        )
        for row in cur.fetchall():
            rows[sku_key(row["sku"])] = row
    return rows


def _reservations(cur: Any, magento: Magento, skus: Sequence[str]) -> dict[str, Decimal]:
    """sku_key -> sum of reservations over every stock the configured source belongs to."""
    cur.execute(
        f"SELECT stock_id FROM {magento.table('inventory_source_stock_link')} WHERE source_code = %s",
        (magento.msi_source,),
    )
    stock_ids = [int(r["stock_id"]) for r in cur.fetchall()]
    sums: dict[str, Decimal] = {}
    if not stock_ids:
        return sums
    for chunk in _chunks(list(skus)):
        cur.execute(
            f"SELECT sku, SUM(quantity) AS total FROM {magento.table('inventory_reservation')} "
            f"WHERE stock_id IN ({_marks(len(stock_ids))}) AND sku IN ({_marks(len(chunk))}) GROUP BY sku",
            [*stock_ids, *chunk],
        )
        for row in cur.fetchall():
            key = sku_key(row["sku"])
            sums[key] = sums.get(key, Decimal(0)) + Decimal(row["total"] or 0)
    return sums


def read_stock(
    conn: pymysql.connections.Connection, magento: Magento, skus: Sequence[str]
) -> list[dict[str, Any]]:
    """GET /v1/stock: per asked SKU (in order) its qty, in_stock, salable_qty and managed flag."""
    with conn.cursor(DictCursor) as cur:
        cfg = read_config(cur, magento)
        askable = [s for s in dict.fromkeys(skus) if len(s) <= MAX_SKU_LENGTH]
        products = _resolve(cur, magento, askable) if askable else {}
        rows = _stock_items(cur, magento, [p.entity_id for p in products.values()])
        msi = magento.stock_mode == "msi"
        sources = _source_items(cur, magento, [p.sku for p in products.values()]) if msi and products else {}
        reserved = _reservations(cur, magento, [p.sku for p in products.values()]) if msi and products else {}
    conn.rollback()
    out: list[dict[str, Any]] = []
    for sku in skus:
        product = products.get(sku_key(sku)) if len(sku) <= MAX_SKU_LENGTH else None
        if product is None:
            out.append({"sku": sku, "qty": None, "in_stock": None, "salable_qty": None, "managed": None})
            continue
        row = rows.get(product.entity_id)
        managed, min_qty, _backorders = _effective(row, cfg)
        managed = managed and product.type_id not in COMPOSITE_TYPES
        if msi:
            src = sources.get(sku_key(product.sku))
            qty = None if src is None else Decimal(src["quantity"])
            in_stock = None if src is None else bool(src["status"])
            base = None if qty is None else qty + reserved.get(sku_key(product.sku), Decimal(0))
        else:
            qty = None if row is None or row["qty"] is None else Decimal(row["qty"])
            in_stock = None if row is None else bool(row["is_in_stock"])
            base = qty
        salable: Decimal | None = None
        if managed and base is not None:
            salable = base - min_qty if in_stock else Decimal(0)
        out.append(
            {
                "sku": sku,
                "qty": _fmt(qty),
                "in_stock": in_stock,
                "salable_qty": _fmt(salable),
                "managed": managed,
            }
        )
    return out


def encode_cursor(entity_id: int) -> str:
    return base64.urlsafe_b64encode(f"p{entity_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The entity_id a /v1/skus cursor stands for; ValueError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a cursor this agent gave out") from None
    if not text.startswith("p") or not text[1:].isdigit() or len(text) > 12:
        raise ValueError("not a cursor this agent gave out")
    return int(text[1:])


def list_skus(
    conn: pymysql.connections.Connection, magento: Magento, after: int, limit: int
) -> tuple[list[dict[str, Any]], int, bool]:
    """One keyset page of catalog SKUs in entity_id order: (rows, last entity_id, has_more)."""
    with conn.cursor(DictCursor) as cur:
        cfg = read_config(cur, magento)
        cur.execute(
            f"SELECT p.entity_id, p.sku, p.type_id, s.manage_stock, s.use_config_manage_stock "
            f"FROM {magento.table('catalog_product_entity')} p "
            f"LEFT JOIN {magento.table('cataloginventory_stock_item')} s "
            f"ON s.product_id = p.entity_id AND s.stock_id = {STOCK_ID} "
            "WHERE p.entity_id > %s AND p.sku IS NOT NULL AND p.sku <> '' ORDER BY p.entity_id LIMIT %s",
            (after, limit + 1),
        )
        rows = cur.fetchall()
    conn.rollback()
    has_more = len(rows) > limit
    rows = rows[:limit]
    out = []
    for row in rows:
        if row["use_config_manage_stock"] is None:
            managed = cfg.manage_stock
        else:
            managed = cfg.manage_stock if row["use_config_manage_stock"] else bool(row["manage_stock"])
        out.append(
            {
                "sku": row["sku"],
                "product_id": int(row["entity_id"]),
                "type": row["type_id"],
                "managed": managed and row["type_id"] not in COMPOSITE_TYPES,
            }
        )
    last = int(rows[-1]["entity_id"]) if rows else after
    return out, last, has_more


# --- validating ----------------------------------------------------------------------------------------


def validate(raw_items: Sequence[Any]) -> tuple[list[ItemResult | None], list[_Item]]:
    """Split pushed items into early verdicts (invalid, unknown) and the unique valid items to look up."""
    results: list[ItemResult | None] = [None] * len(raw_items)
    by_key: dict[str, list[_Item]] = {}
    for i, raw in enumerate(raw_items):
        if not isinstance(raw, Mapping):
            results[i] = ItemResult(None, "invalid", message="an item must be an object with sku and qty")
            continue
        sku = raw.get("sku")
        if not isinstance(sku, str) or not sku.strip():
            results[i] = ItemResult(sku, "invalid", message="sku must be a non-empty string")
            continue
        try:
            sku.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a JSON \ud800 escape: no database can hold it
            results[i] = ItemResult(None, "invalid", message="sku is not valid Unicode text")
            continue
        qty = parse_qty(raw.get("qty"))
        if isinstance(qty, str):
            results[i] = ItemResult(sku, "invalid", message=qty)
            continue
        by_key.setdefault(sku_key(sku), []).append(_Item(i, sku, qty))
    unique: list[_Item] = []
    for group in by_key.values():
        if len(group) > 1:
            for item in group:
                results[item.index] = ItemResult(
                    item.sku, "invalid", message=f"sku {item.sku!r} appears more than once in the request"
                )
        elif len(group[0].sku) > MAX_SKU_LENGTH:
            results[group[0].index] = ItemResult(group[0].sku, "unknown_sku")
        else:
            unique.append(group[0])
    return results, unique


# --- writing -----------------------------------------------------------------------------------------


class _Writer:
    """Batched writes on one cursor; counts the rows MySQL reports as changed."""

    def __init__(self, cur: Any, hook: Hook | None) -> None:
        self.cur = cur
        self.hook = hook
        self.rows = 0
        self.tables: set[str] = set()  # tables at least one row was written to

    def _count(self, table: str, rows: int | None = None) -> None:
        written = self.cur.rowcount if rows is None else rows
        if written > 0:
            self.rows += written
            self.tables.add(table)
        if self.hook is not None:
            self.hook(table)

    def update(
        self, table: str, keys: Sequence[str], columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Change existing rows: each row is its key values (primary key first, then the other unique key's
        columns, so every unique key points at the same row) followed by the new column values.

        Written as a multi-row INSERT … ON DUPLICATE KEY UPDATE: MySQL has no other portable multi-row UPDATE
        with per-row values that stays linear (CASE lists are quadratic). The rows were locked FOR UPDATE, so
        each one exists and takes the UPDATE branch; explicit primary keys consume no auto-increment values.
        """
        cols = ", ".join(f"`{c}`" for c in (*keys, *columns))
        sets = ", ".join(f"`{c}` = VALUES(`{c}`)" for c in columns)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({_marks(len(keys) + len(columns))}) ON DUPLICATE KEY UPDATE {sets}"
        for chunk in _chunks(rows):
            self.cur.executemany(sql, list(chunk))
            self._count(table, len(chunk))

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], upsert: Sequence[str] = ()
    ) -> None:
        """Multi-row INSERT (PyMySQL folds executemany into one statement per chunk)."""
        cols = ", ".join(f"`{c}`" for c in columns)
        tail = ""
        if upsert:
            tail = " ON DUPLICATE KEY UPDATE " + ", ".join(f"`{c}` = VALUES(`{c}`)" for c in upsert)
        for chunk in _chunks(rows):
            self.cur.executemany(
                f"INSERT INTO {table} ({cols}) VALUES ({_marks(len(columns))}){tail}", list(chunk)
            )
            self._count(table)


def write_stock(
    conn: pymysql.connections.Connection,
    magento: Magento,
    raw_items: Sequence[Any],
    *,
    hook: Hook | None = None,
) -> WriteOutcome:
    """POST /v1/stock: write the pushed quantities in one transaction; one result per item, in order.

    ``hook`` is called after every write statement (tests use it to break the connection mid-request).
    On any database error the transaction is rolled back and the error propagates.
    """
    results, items = validate(raw_items)
    outcome = WriteOutcome([])
    conn.begin()
    try:
        with conn.cursor(DictCursor) as cur:
            writer = _Writer(cur, hook)
            marks = changelog_marks(cur, magento) if magento.version == 2 and items else {}
            if items:
                _write(cur, writer, magento, items, results)
            outcome.rows_written = writer.rows
            if writer.rows and marks:
                outcome.invalidated = _invalidate(cur, magento, writer.tables, marks)
        conn.commit()
    except BaseException:
        try:
            conn.rollback()
        except pymysql.err.Error:
            pass
        raise
    outcome.results = [r for r in results if r is not None]
    assert len(outcome.results) == len(raw_items)
    return outcome


def _write(
    cur: Any, w: _Writer, magento: Magento, items: list[_Item], results: list[ItemResult | None]
) -> None:
    cfg = read_config(cur, magento)
    products = _resolve(cur, magento, [it.sku for it in items])
    claimed: dict[int, list[_Item]] = {}
    for it in items:
        it.product = products.get(sku_key(it.sku))
        if it.product is None:
            results[it.index] = ItemResult(it.sku, "unknown_sku")
        else:
            claimed.setdefault(it.product.entity_id, []).append(it)
    live: list[_Item] = []
    for group in claimed.values():
        if len(group) > 1:  # different spellings the database collation still sees as one SKU
            for it in group:
                results[it.index] = ItemResult(
                    it.sku, "invalid", message="sku names the same product as another item"
                )
        else:
            live.append(group[0])
    rows = _stock_items(cur, magento, [it.product.entity_id for it in live if it.product])
    managed: list[_Item] = []
    for it in live:
        assert it.product is not None
        it.row = rows.get(it.product.entity_id)
        if it.product.type_id in COMPOSITE_TYPES or not _effective(it.row, cfg)[0]:
            results[it.index] = ItemResult(it.sku, "not_managed")
        else:
            managed.append(it)
    if not managed:
        return
    msi = magento.stock_mode == "msi"
    if msi:
        _require_source(cur, magento)
        skus = [it.product.sku for it in managed if it.product]
        sources = _source_items(cur, magento, skus)
        reserved = _reservations(cur, magento, skus) if magento.msi_mode == "salable" else {}
        for it in managed:
            assert it.product is not None
            it.source_row = sources.get(sku_key(it.product.sku))
            it.reserved = min(reserved.get(sku_key(it.product.sku), Decimal(0)), Decimal(0))
    _lock_changing(cur, magento, cfg, managed, msi)
    legacy_written = _write_items(cur, w, magento, cfg, managed, results, msi)
    if legacy_written:
        _follow_parents(cur, w, magento, cfg, legacy_written)


def _target(it: _Item, cfg: StockConfig) -> tuple[Decimal, bool]:
    """(quantity to store, in stock?) for a pushed item, from its stock item's settings."""
    _managed, min_qty, backorders = _effective(it.row, cfg)
    # reserved <= 0: in salable mode the open orders are added back, so Magento's salable qty is the pushed one.
    return it.qty - it.reserved, _in_stock(it.qty, min_qty, backorders)


def _item_matches(row: Mapping[str, Any], qty: Decimal, flag: int) -> bool:
    return row["qty"] is not None and Decimal(row["qty"]) == qty and int(row["is_in_stock"]) == flag


def _source_matches(row: Mapping[str, Any], qty: Decimal, flag: int) -> bool:
    return Decimal(row["quantity"]) == qty and int(row["status"]) == flag


def _lock_changing(cur: Any, magento: Magento, cfg: StockConfig, items: list[_Item], msi: bool) -> None:
    """Lock the existing rows this push is about to change, by primary key, and re-read them.

    Rows already holding the pushed figures stay unlocked (a repeated push takes no locks at all); rows that
    changed since the plain read are judged again on their fresh values.
    """
    mirror_legacy = not msi or magento.msi_source == DEFAULT_SOURCE
    item_ids: list[int] = []
    source_ids: list[int] = []
    for it in items:
        stored, in_stock = _target(it, cfg)
        if mirror_legacy and it.row is not None and not _item_matches(it.row, stored, int(in_stock)):
            item_ids.append(int(it.row["item_id"]))
        if msi and it.source_row is not None and not _source_matches(it.source_row, stored, int(in_stock)):
            source_ids.append(int(it.source_row["source_item_id"]))
    by_product = {it.product.entity_id: it for it in items if it.product}
    table = magento.table("cataloginventory_stock_item")
    for row in _lock_by_key(cur, table, "item_id", _ITEM_COLUMNS, item_ids):
        by_product[int(row["product_id"])].row = row
    by_sku = {sku_key(it.product.sku): it for it in items if it.product}
    table = magento.table("inventory_source_item")
    for row in _lock_by_key(cur, table, "source_item_id", _SOURCE_COLUMNS, source_ids):
        by_sku[sku_key(row["sku"])].source_row = row


def _write_items(
    cur: Any,
    w: _Writer,
    magento: Magento,
    cfg: StockConfig,
    items: list[_Item],
    results: list[ItemResult | None],
    msi: bool,
) -> list[int]:
    """Write stock items (and source items / M1 status rows); the product ids whose legacy row changed."""
    mirror_legacy = not msi or magento.msi_source == DEFAULT_SOURCE
    item_updates: list[tuple[Any, ...]] = []
    item_inserts: list[tuple[Any, ...]] = []
    source_updates: list[tuple[Any, ...]] = []
    source_inserts: list[tuple[Any, ...]] = []
    legacy_changed: list[int] = []
    status_targets: dict[int, tuple[Decimal, int]] = {}
    for it in items:
        assert it.product is not None
        stored, in_stock = _target(it, cfg)
        if stored > QTY_MAX:
            results[it.index] = ItemResult(
                it.sku, "invalid", message=f"qty plus open reservations ({_fmt(-it.reserved)}) is too large"
            )
            continue
        flag = int(in_stock)
        changed = False
        if msi:
            src = it.source_row
            if src is None:
                source_inserts.append((magento.msi_source, it.product.sku, stored, flag))
                changed = True
            elif not _source_matches(src, stored, flag):
                source_updates.append((src["source_item_id"], magento.msi_source, src["sku"], stored, flag))
                changed = True
        if mirror_legacy:
            row = it.row
            if row is None:
                values = (it.product.entity_id, STOCK_ID, stored, flag, 1 - flag)
                item_inserts.append(values + ((0,) if magento.version == 2 else ()))
                legacy_changed.append(it.product.entity_id)
                changed = True
            elif not _item_matches(row, stored, flag):
                item_updates.append((row["item_id"], row["product_id"], STOCK_ID, stored, flag, 1 - flag))
                legacy_changed.append(it.product.entity_id)
                changed = True
            if magento.version == 1:
                status_targets[it.product.entity_id] = (stored, flag)
        results[it.index] = ItemResult(it.sku, "updated" if changed else "unchanged", it.qty, in_stock)
    item_table = magento.table("cataloginventory_stock_item")
    item_keys = ("item_id", "product_id", "stock_id")
    w.update(item_table, item_keys, ("qty", "is_in_stock", "stock_status_changed_auto"), item_updates)
    columns = ["product_id", "stock_id", "qty", "is_in_stock", "stock_status_changed_auto"]
    w.insert(item_table, columns + (["website_id"] if magento.version == 2 else []), item_inserts)
    source_table = magento.table("inventory_source_item")
    w.update(source_table, ("source_item_id", "source_code", "sku"), ("quantity", "status"), source_updates)
    w.insert(source_table, ("source_code", "sku", "quantity", "status"), source_inserts)
    if status_targets:
        touched = _write_status_rows(cur, w, magento, status_targets)
        # An item whose stock item already matched but whose website status rows did not was still written.
        by_product = {it.product.entity_id: it for it in items if it.product}
        for product_id in touched:
            r = results[by_product[product_id].index]
            if r is not None and r.status == "unchanged":
                r.status = "updated"
    return legacy_changed


def _write_status_rows(
    cur: Any, w: _Writer, magento: Magento, targets: Mapping[int, tuple[Decimal, int]]
) -> set[int]:
    """Magento 1: bring every website's cataloginventory_stock_status row of these products to the target."""
    ids = sorted(targets)
    websites: dict[int, list[int]] = {}
    existing: dict[tuple[int, int], tuple[Decimal, int]] = {}
    for chunk in _chunks(ids):
        marks = _marks(len(chunk))
        cur.execute(
            f"SELECT product_id, website_id FROM {magento.table('catalog_product_website')} "
            f"WHERE product_id IN ({marks})",
            list(chunk),
        )
        for row in cur.fetchall():
            if int(row["website_id"]) != 0:  # the admin website has no stock status of its own
                websites.setdefault(int(row["product_id"]), []).append(int(row["website_id"]))
        cur.execute(
            # Not locked: the upsert below writes absolute values and locks just the rows it changes.
            f"SELECT product_id, website_id, stock_id, qty, stock_status "
            f"FROM {magento.table('cataloginventory_stock_status')} FORCE INDEX (PRIMARY) "
            f"WHERE product_id IN ({marks})",
            list(chunk),
        )
        for row in cur.fetchall():
            if int(row["stock_id"]) != STOCK_ID:
                continue
            existing[(int(row["product_id"]), int(row["website_id"]))] = (
                Decimal(row["qty"]),
                int(row["stock_status"]),
            )
    upserts: list[tuple[Any, ...]] = []
    touched: set[int] = set()
    for product_id in ids:
        qty, flag = targets[product_id]
        for website_id in websites.get(product_id, []):
            if existing.get((product_id, website_id)) != (qty, flag):
                upserts.append((product_id, website_id, STOCK_ID, qty, flag))
                touched.add(product_id)
    w.insert(
        magento.table("cataloginventory_stock_status"),
        ("product_id", "website_id", "stock_id", "qty", "stock_status"),
        upserts,
        upsert=("qty", "stock_status"),
    )
    return touched


def _follow_parents(
    cur: Any, w: _Writer, magento: Magento, cfg: StockConfig, children: Sequence[int]
) -> None:
    """Configurable parents of changed children: in stock when any child is, out of stock when none is."""
    links = magento.table("catalog_product_super_link")
    products = magento.table("catalog_product_entity")
    parents: set[int] = set()
    for chunk in _chunks(sorted(set(children))):
        cur.execute(
            f"SELECT DISTINCT l.parent_id FROM {links} l JOIN {products} p ON p.entity_id = l.parent_id "
            f"WHERE p.type_id = 'configurable' AND l.product_id IN ({_marks(len(chunk))})",
            list(chunk),
        )
        parents.update(int(r["parent_id"]) for r in cur.fetchall())
    if not parents:
        return
    kids: dict[int, list[int]] = {}
    for chunk in _chunks(sorted(parents)):
        cur.execute(
            f"SELECT parent_id, product_id FROM {links} WHERE parent_id IN ({_marks(len(chunk))})",
            list(chunk),
        )
        for r in cur.fetchall():
            kids.setdefault(int(r["parent_id"]), []).append(int(r["product_id"]))
    child_rows = _stock_items(cur, magento, [c for cs in kids.values() for c in cs])
    parent_rows = _stock_items(cur, magento, parents)

    def sellable(child_id: int) -> bool:
        row = child_rows.get(child_id)
        return not _effective(row, cfg)[0] or (row is not None and bool(row["is_in_stock"]))

    wanted: dict[int, int] = {}
    for parent_id in sorted(parents):
        row = parent_rows.get(parent_id)
        if row is None or not _effective(row, cfg)[0]:
            continue  # no stock item to follow, or Magento does not manage it
        wanted[parent_id] = int(any(sellable(c) for c in kids.get(parent_id, [])))
    flips = [
        parent_rows[p]["item_id"] for p, flag in wanted.items() if int(parent_rows[p]["is_in_stock"]) != flag
    ]
    for row in _lock_by_key(
        cur, magento.table("cataloginventory_stock_item"), "item_id", _ITEM_COLUMNS, flips
    ):
        parent_rows[int(row["product_id"])] = row
    updates: list[tuple[Any, ...]] = []
    targets: dict[int, tuple[Decimal, int]] = {}
    for parent_id, flag in wanted.items():
        row = parent_rows[parent_id]
        if int(row["is_in_stock"]) != flag:
            updates.append((row["item_id"], row["product_id"], STOCK_ID, flag, 1))
        if magento.version == 1:
            targets[parent_id] = (Decimal(row["qty"] or 0), flag)
    w.update(
        magento.table("cataloginventory_stock_item"),
        ("item_id", "product_id", "stock_id"),
        ("is_in_stock", "stock_status_changed_auto"),
        updates,
    )
    if targets:
        _write_status_rows(cur, w, magento, targets)


# --- Magento 2 indexers --------------------------------------------------------------------------------


def _changelog_version(cur: Any, magento: Magento, view: str) -> int | None:
    """Highest version_id of a view's changelog; None when there is no changelog this user can read."""
    try:
        cur.execute(f"SELECT COALESCE(MAX(version_id), 0) AS v FROM {magento.table(view + '_cl')}")
    except (pymysql.err.ProgrammingError, pymysql.err.OperationalError) as exc:
        if exc.args and exc.args[0] in _NO_TABLE_ERRORS:
            return None
        raise
    return int(cur.fetchone()["v"])


def triggers_caught(cur: Any, magento: Magento, view: str, since: int | None) -> bool:
    """True when this transaction's writes reached the view's changelog (Update by Schedule is working)."""
    if since is None:
        return False
    cur.execute(f"SELECT 1 AS hit FROM {magento.table(view + '_cl')} WHERE version_id > %s LIMIT 1", (since,))
    return cur.fetchone() is not None


def changelog_marks(cur: Any, magento: Magento) -> dict[str, int | None]:
    """Before writing: per stock view in Update-by-Schedule mode, its changelog's highest version (or None).

    Read before any write, this also fixes the transaction's snapshot, so the later check sees only the
    changelog rows our own writes caused.
    """
    views = [INDEXER_LEGACY] + ([INDEXER_MSI] if magento.stock_mode == "msi" else [])
    cur.execute(
        f"SELECT view_id, mode FROM {magento.table('mview_state')} WHERE view_id IN ({_marks(len(views))})",
        views,
    )
    scheduled = {r["view_id"] for r in cur.fetchall() if r["mode"] == "enabled"}
    return {view: _changelog_version(cur, magento, view) if view in scheduled else None for view in views}


def _invalidate(cur: Any, magento: Magento, written: set[str], marks: Mapping[str, int | None]) -> list[str]:
    """Mark the stock indexers whose tables we wrote invalid, unless their changelog triggers recorded it.

    Trigger presence is checked by effect rather than by listing triggers: information_schema.TRIGGERS shows
    nothing to a user without the TRIGGER privilege, but rows a trigger added inside this transaction are
    visible to it.
    """
    watched = {
        INDEXER_LEGACY: magento.table("cataloginventory_stock_item"),
        INDEXER_MSI: magento.table("inventory_source_item"),
    }
    stale = [
        view
        for view, since in marks.items()
        if watched[view] in written and not triggers_caught(cur, magento, view, since)
    ]
    if stale:
        cur.execute(
            f"UPDATE {magento.table('indexer_state')} SET status = 'invalid', updated = UTC_TIMESTAMP() "
            f"WHERE indexer_id IN ({_marks(len(stale))}) AND status <> 'invalid'",
            stale,
        )
    return stale
