"""The stock writer against real Magento schemas: both versions, both prefixes, koppel's fixture and the
reference DDL from ../shared/reference (when present). Every test reads the rows back afterwards.

The shop is built as root; the agent's side of every case (write_stock, read_stock, list_skus) runs as a
database user holding exactly the README's grants (``tests.agent.grants.GrantedUser``).

The helpers at the top (``StockShop``, ``build_shop``) are shared with the other stock and grants tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest

from agent import stock
from agent.db import Magento
from client.demo.magento_schema import create_schema
from tests.agent.grants import GrantedUser
from tests.mariadb import MariaDB

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
# The "reference" variants skip (with the reason shown) when ../shared is not beside the checkout.
SOURCES = ["fixture", "reference"]
D = Decimal

# --- building shops ------------------------------------------------------------------------------------


def load_reference(conn: pymysql.connections.Connection, version: int, prefix: str) -> None:
    """Magento's own DDL (reference copy) with the prefix applied, plus the install seed rows."""
    text = (REFERENCE / f"magento{version}-schema.sql").read_text(encoding="utf-8")
    text = re.sub(r"(CREATE TABLE|REFERENCES) `([a-z0-9_]+)`", lambda m: f"{m[1]} `{prefix}{m[2]}`", text)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    p = prefix
    if version == 1:
        seeds = [
            f"INSERT INTO `{p}core_website` (website_id, code, name, sort_order, default_group_id, is_default) "
            "VALUES (0, 'admin', 'Admin', 0, 0, 0), (1, 'base', 'Main Website', 0, 1, 1)",
            f"INSERT INTO `{p}core_store_group` (group_id, website_id, name, root_category_id, default_store_id) "
            "VALUES (0, 0, 'Default', 0, 0), (1, 1, 'Main Website Store', 2, 1)",
            f"INSERT INTO `{p}core_store` (store_id, code, website_id, group_id, name, sort_order, is_active) "
            "VALUES (0, 'admin', 0, 0, 'Admin', 0, 1), (1, 'default', 1, 1, 'Default Store View', 0, 1)",
            f"INSERT INTO `{p}eav_entity_type` (entity_type_id, entity_type_code, entity_model) "
            "VALUES (4, 'catalog_product', 'catalog/product')",
            f"INSERT INTO `{p}cataloginventory_stock` (stock_id, stock_name) VALUES (1, 'Default')",
            f"INSERT INTO `{p}index_process` (indexer_code, status, mode) VALUES ('cataloginventory_stock', 'pending', 'real_time')",
        ]
    else:
        seeds = [
            f"INSERT INTO `{p}store_website` (website_id, code, name, sort_order, default_group_id, is_default) "
            "VALUES (0, 'admin', 'Admin', 0, 0, 0), (1, 'base', 'Main Website', 0, 1, 1)",
            f"INSERT INTO `{p}store_group` (group_id, website_id, name, root_category_id, default_store_id, code) "
            "VALUES (0, 0, 'Default', 0, 0, 'default'), (1, 1, 'Main Website Store', 2, 1, 'main_website_store')",
            f"INSERT INTO `{p}store` (store_id, code, website_id, group_id, name, sort_order, is_active) "
            "VALUES (0, 'admin', 0, 0, 'Admin', 0, 1), (1, 'default', 1, 1, 'Default Store View', 0, 1)",
            f"INSERT INTO `{p}cataloginventory_stock` (stock_id, website_id, stock_name) VALUES (1, 0, 'Default')",
            f"INSERT INTO `{p}inventory_source` (source_code, name, enabled, description, latitude, longitude, "
            "country_id, postcode) VALUES ('default', 'Default Source', 1, 'Default Source', 0, 0, 'US', '00000')",
            f"INSERT INTO `{p}inventory_stock` (stock_id, name) VALUES (1, 'Default Stock')",
            f"INSERT INTO `{p}inventory_source_stock_link` (stock_id, source_code, priority) VALUES (1, 'default', 1)",
            f"INSERT INTO `{p}inventory_stock_sales_channel` (type, code, stock_id) VALUES ('website', 'base', 1)",
            f"INSERT INTO `{p}indexer_state` (indexer_id, status, hash_config) "
            "VALUES ('cataloginventory_stock', 'valid', ''), ('inventory', 'valid', '')",
            f"INSERT INTO `{p}mview_state` (view_id, mode, status) "
            "VALUES ('cataloginventory_stock', 'disabled', 'idle'), ('inventory', 'disabled', 'idle')",
        ]
    with conn.cursor() as cur:
        for statement in text.split(";\n"):
            if statement.strip():
                cur.execute(statement)
        cur.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
        for statement in seeds:
            cur.execute(statement)
        cur.execute("SET SESSION sql_mode = DEFAULT")


class StockShop:
    """Products with stock rows in a test database, and the read-backs the assertions need.

    ``conn`` (root) builds and reads back; ``agent()`` is the agent's connection, as the granted user.
    """

    def __init__(
        self,
        conn: pymysql.connections.Connection,
        version: int,
        prefix: str,
        granted: GrantedUser | None = None,
    ) -> None:
        self.conn = conn
        self.version = version
        self.prefix = prefix
        self.website = "store_website" if version == 2 else "core_website"
        self.granted = granted
        self._agent: pymysql.connections.Connection | None = None

    def agent(self) -> pymysql.connections.Connection:
        """The agent's connection: the README's grants, re-applied so tables made since (changelogs) count."""
        assert self.granted is not None, "this shop has no granted user (build it with build_shop)"
        self.granted.grant()
        if self._agent is None:
            self._agent = self.granted.connect()
        return self._agent

    def close(self) -> None:
        if self._agent is not None and self._agent.open:  # a test may have killed it
            self._agent.close()
        if self.granted is not None:
            self.granted.close()
        self.conn.close()

    def t(self, name: str) -> str:
        return f"`{self.prefix}{name}`"

    def run(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:
        with self.conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def magento(
        self, stock_mode: str = "legacy", msi_source: str = "default", msi_mode: str = "salable"
    ) -> Magento:
        return Magento(self.version, self.prefix, stock_mode, msi_source, msi_mode)

    def add_website(self, website_id: int, code: str) -> None:
        self.run(
            f"INSERT INTO {self.t(self.website)} (website_id, code, name, default_group_id) VALUES (%s, %s, %s, 0)",
            (website_id, code, code.title()),
        )

    def product(
        self,
        sku: str,
        *,
        type_id: str = "simple",
        qty: Any = 0,
        in_stock: int = 0,
        websites: tuple[int, ...] = (1,),
        stock_item: bool = True,
        source_qty: Any = None,
        **item: Any,
    ) -> int:
        """A product on ``websites`` with a stock item (``item`` overrides its columns) and, with
        ``source_qty``, an MSI source item on the default source."""
        row: dict[str, Any] = {"type_id": type_id, "sku": sku, "attribute_set_id": 4}
        if self.version == 1:
            row["entity_type_id"] = 4
        pid = self._insert("catalog_product_entity", row)
        for website_id in websites:
            self._insert("catalog_product_website", {"product_id": pid, "website_id": website_id})
        if stock_item:
            values = {"product_id": pid, "stock_id": 1, "qty": qty, "is_in_stock": in_stock, **item}
            if self.version == 2:
                values.setdefault("website_id", 0)
            self._insert("cataloginventory_stock_item", values)
        if source_qty is not None:
            self.source_item("default", sku, source_qty, in_stock)
        return pid

    def source_item(self, source: str, sku: str, quantity: Any, status: int) -> None:
        self._insert(
            "inventory_source_item",
            {"source_code": source, "sku": sku, "quantity": quantity, "status": status},
        )

    def add_source(self, code: str, stock_id: int = 1) -> None:
        self._insert(
            "inventory_source",
            {"source_code": code, "name": code.title(), "country_id": "NL", "postcode": "1234"},
        )
        self._insert(
            "inventory_source_stock_link", {"stock_id": stock_id, "source_code": code, "priority": 2}
        )

    def link(self, parent_id: int, children: list[int]) -> None:
        for child in children:
            self._insert("catalog_product_super_link", {"product_id": child, "parent_id": parent_id})
            self._insert("catalog_product_relation", {"parent_id": parent_id, "child_id": child})

    def config(self, path: str, value: str) -> None:
        self._insert("core_config_data", {"scope": "default", "scope_id": 0, "path": path, "value": value})

    def reservation(self, sku: str, quantity: Any, stock_id: int = 1) -> None:
        self._insert(
            "inventory_reservation",
            {
                "stock_id": stock_id,
                "sku": sku,
                "quantity": quantity,
                "metadata": '{"event_type":"order_placed"}',
            },
        )

    def status_row(self, product_id: int, website_id: int, qty: Any, status: int) -> None:
        self._insert(
            "cataloginventory_stock_status",
            {
                "product_id": product_id,
                "website_id": website_id,
                "stock_id": 1,
                "qty": qty,
                "stock_status": status,
            },
        )

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        cols = ", ".join(f"`{c}`" for c in row)
        with self.conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO {self.t(table)} ({cols}) VALUES ({', '.join(['%s'] * len(row))})",
                list(row.values()),
            )
            return cur.lastrowid

    # --- read-backs ---

    def item(self, product_id: int) -> dict[str, Any]:
        rows = self.run(
            f"SELECT * FROM {self.t('cataloginventory_stock_item')} WHERE product_id = %s", (product_id,)
        )
        assert len(rows) == 1, rows
        return rows[0]

    def status(self, product_id: int) -> dict[int, tuple[Decimal, int]]:
        rows = self.run(
            f"SELECT website_id, qty, stock_status FROM {self.t('cataloginventory_stock_status')} WHERE product_id = %s",
            (product_id,),
        )
        return {r["website_id"]: (r["qty"], r["stock_status"]) for r in rows}

    def source(self, sku: str, source: str = "default") -> tuple[Decimal, int] | None:
        rows = self.run(
            f"SELECT quantity, status FROM {self.t('inventory_source_item')} WHERE source_code = %s AND sku = %s",
            (source, sku),
        )
        return (rows[0]["quantity"], rows[0]["status"]) if rows else None

    def indexer(self, indexer_id: str) -> str:
        return self.run(f"SELECT status FROM {self.t('indexer_state')} WHERE indexer_id = %s", (indexer_id,))[
            0
        ]["status"]

    def reset_indexers(self) -> None:
        self.run(f"UPDATE {self.t('indexer_state')} SET status = 'valid'")

    def schedule(self, view: str, *, triggers: bool, watched: str, column: str) -> None:
        """Switch a view to Update by Schedule the way Magento does: mview mode, changelog, triggers."""
        self.run(f"UPDATE {self.t('mview_state')} SET mode = 'enabled' WHERE view_id = %s", (view,))
        cl = self.t(view + "_cl")
        self.run(
            f"CREATE TABLE {cl} (version_id int unsigned NOT NULL AUTO_INCREMENT, entity_id int unsigned NOT NULL "
            "DEFAULT 0, PRIMARY KEY (version_id)) ENGINE=InnoDB"
        )
        if triggers:
            table = f"{self.prefix}{watched}"
            for event in ("insert", "update"):
                self.run(
                    f"CREATE TRIGGER `trg_{table}_after_{event}` AFTER {event.upper()} ON `{table}` FOR EACH ROW "
                    f"INSERT IGNORE INTO {cl} (entity_id) VALUES (NEW.`{column}`)"
                )

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every stock table, to prove that nothing changed."""
        tables = ["cataloginventory_stock_item", "cataloginventory_stock_status"]
        if self.version == 2:
            tables += ["inventory_source_item", "indexer_state"]
        out = {}
        for table in tables:
            with self.conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {self.t(table)} ORDER BY 1, 2, 3")
                out[table] = list(cur.fetchall())
        return out


def build_shop(
    mariadb: MariaDB, database: str, version: int, prefix: str, source: str = "fixture"
) -> StockShop:
    """A shop of one version and prefix from koppel's fixture or the reference DDL; the caller closes it."""
    ddl = REFERENCE / f"magento{version}-schema.sql"
    if source == "reference" and not ddl.is_file():
        pytest.skip(f"Magento reference schema not found at {ddl}: place shared/ beside the checkout")
    conn = mariadb.connect(database)
    if source == "reference":
        load_reference(conn, version, prefix)
    else:
        create_schema(conn, version, prefix)
    granted = GrantedUser(mariadb, database, version, prefix)
    # koppel's fixture has every table the README grants, apart from the changelogs of Update by Schedule.
    missing = {t for t in granted.skipped if not t.endswith("_cl")}
    if source == "fixture" and missing:
        granted.close()
        raise AssertionError(f"README grants tables koppel's fixture lacks: {sorted(missing)}")
    shop = StockShop(conn, version, prefix, granted)
    shop.add_website(2, "second")
    return shop


def push(
    conn: pymysql.connections.Connection, magento: Magento, items: list[dict[str, Any]]
) -> stock.WriteOutcome:
    conn.autocommit(False)
    try:
        return stock.write_stock(conn, magento, items)
    finally:
        conn.autocommit(True)


def by_sku(outcome: stock.WriteOutcome) -> dict[Any, stock.ItemResult]:
    return {r.sku: r for r in outcome.results}


MATRIX = [(v, p, s) for v in (1, 2) for p in ("", "mage_") for s in SOURCES]
PREFIXES_AND_SOURCES = [(p, s) for p in ("", "mage_") for s in SOURCES]


def _open_shop(
    mariadb: MariaDB, database: str, version: int, prefix: str, source: str
) -> Iterator[StockShop]:
    built = build_shop(mariadb, database, version, prefix, source)
    yield built
    built.close()


@pytest.fixture(params=MATRIX, ids=lambda x: f"m{x[0]}-{x[1] or 'noprefix'}-{x[2]}")
def shop(request: pytest.FixtureRequest, mariadb: MariaDB, database: str) -> Iterator[StockShop]:
    yield from _open_shop(mariadb, database, *request.param)


@pytest.fixture(params=PREFIXES_AND_SOURCES, ids=lambda x: f"{x[0] or 'noprefix'}-{x[1]}")
def shop2(request: pytest.FixtureRequest, mariadb: MariaDB, database: str) -> Iterator[StockShop]:
    yield from _open_shop(mariadb, database, 2, *request.param)


@pytest.fixture(params=PREFIXES_AND_SOURCES, ids=lambda x: f"{x[0] or 'noprefix'}-{x[1]}")
def shop1(request: pytest.FixtureRequest, mariadb: MariaDB, database: str) -> Iterator[StockShop]:
    yield from _open_shop(mariadb, database, 1, *request.param)


# --- legacy stock (both versions) ----------------------------------------------------------------------


def test_qty_and_in_stock_written_with_website_rows(shop: StockShop) -> None:
    a = shop.product("A-1", qty=0, in_stock=0, websites=(1, 2))
    b = shop.product("B-1", qty=10, in_stock=1, websites=(1,))
    if shop.version == 1:
        shop.status_row(b, 1, 10, 1)  # a's rows are missing and must be created
    else:
        shop.status_row(b, 1, 10, 1)  # the index row Magento 2 owns: never written by the agent
    out = push(shop.agent(), shop.magento(), [{"sku": "A-1", "qty": "5"}, {"sku": "b-1", "qty": 0}])

    assert [(r.sku, r.status, r.qty, r.in_stock) for r in out.results] == [
        ("A-1", "updated", D(5), True),
        ("b-1", "updated", D(0), False),
    ]
    assert out.counts() == {"updated": 2, "unchanged": 0, "unknown_sku": 0, "not_managed": 0, "invalid": 0}
    ra, rb = shop.item(a), shop.item(b)
    assert (ra["qty"], ra["is_in_stock"], ra["stock_status_changed_auto"]) == (D(5), 1, 0)
    assert (rb["qty"], rb["is_in_stock"], rb["stock_status_changed_auto"]) == (D(0), 0, 1)
    if shop.version == 1:
        assert shop.status(a) == {1: (D(5), 1), 2: (D(5), 1)}
        assert shop.status(b) == {1: (D(0), 0)}
    else:
        assert ra["website_id"] == 0
        assert shop.status(a) == {}
        assert shop.status(b) == {1: (D(10), 1)}
        assert shop.indexer("cataloginventory_stock") == "invalid"
        assert out.invalidated == ["cataloginventory_stock"]


def test_in_stock_follows_min_qty_and_backorders_config(shop: StockShop) -> None:
    shop.config(stock.CONFIG_MIN_QTY, "2")
    at_min = shop.product("AT-MIN", qty=9, in_stock=1)
    above_min = shop.product("ABOVE-MIN", qty=0, in_stock=0)
    own_min = shop.product("OWN-MIN", qty=9, in_stock=1, use_config_min_qty=0, min_qty=5)
    own_backorders = shop.product("OWN-BO", qty=9, in_stock=1, use_config_backorders=0, backorders=1)
    # use_config_* = 1: the row's own min_qty / backorders are ignored in favour of the configuration.
    row_min_ignored = shop.product("ROW-MIN", qty=0, in_stock=0, use_config_min_qty=1, min_qty=5)
    row_bo_ignored = shop.product("ROW-BO", qty=9, in_stock=1, use_config_backorders=1, backorders=1)
    out = push(
        shop.agent(),
        shop.magento(),
        [
            {"sku": "AT-MIN", "qty": 2},
            {"sku": "ABOVE-MIN", "qty": "2.0001"},
            {"sku": "OWN-MIN", "qty": 4},
            {"sku": "OWN-BO", "qty": 0},
            {"sku": "ROW-MIN", "qty": 4},
            {"sku": "ROW-BO", "qty": 0},
        ],
    )
    assert {r.sku: r.in_stock for r in out.results} == {
        "AT-MIN": False,
        "ABOVE-MIN": True,
        "OWN-MIN": False,
        "OWN-BO": True,
        "ROW-MIN": True,
        "ROW-BO": False,
    }
    assert shop.item(at_min)["is_in_stock"] == 0
    assert (shop.item(above_min)["qty"], shop.item(above_min)["is_in_stock"]) == (D("2.0001"), 1)
    assert shop.item(own_min)["is_in_stock"] == 0
    assert (shop.item(own_backorders)["qty"], shop.item(own_backorders)["is_in_stock"]) == (D(0), 1)
    assert (shop.item(row_min_ignored)["qty"], shop.item(row_min_ignored)["is_in_stock"]) == (D(4), 1)
    assert (shop.item(row_bo_ignored)["qty"], shop.item(row_bo_ignored)["is_in_stock"]) == (D(0), 0)
    if shop.version == 1:
        assert shop.status(at_min) == {1: (D(2), 0)} and shop.status(row_min_ignored) == {1: (D(4), 1)}


def test_backorders_from_config_keep_items_in_stock(shop: StockShop) -> None:
    shop.config(stock.CONFIG_BACKORDERS, "1")
    uses_config = shop.product("CFG", qty=3, in_stock=1)
    says_no = shop.product("NO-BO", qty=3, in_stock=1, use_config_backorders=0, backorders=0)
    push(shop.agent(), shop.magento(), [{"sku": "CFG", "qty": 0}, {"sku": "NO-BO", "qty": 0}])
    assert shop.item(uses_config)["is_in_stock"] == 1
    assert shop.item(says_no)["is_in_stock"] == 0


def test_not_managed_items_are_left_alone(shop: StockShop) -> None:
    shop.config(stock.CONFIG_MANAGE_STOCK, "0")
    by_config = shop.product("CFG-OFF", qty=1, in_stock=1)
    own_on = shop.product("OWN-ON", qty=1, in_stock=1, use_config_manage_stock=0, manage_stock=1)
    parent = shop.product(
        "PARENT", type_id="configurable", qty=0, in_stock=1, use_config_manage_stock=0, manage_stock=1
    )
    before_cfg, before_parent = shop.item(by_config), shop.item(parent)
    out = push(
        shop.agent(),
        shop.magento(),
        [{"sku": "CFG-OFF", "qty": 50}, {"sku": "OWN-ON", "qty": 50}, {"sku": "PARENT", "qty": 50}],
    )
    assert [r.status for r in out.results] == ["not_managed", "updated", "not_managed"]
    assert shop.item(by_config) == before_cfg
    assert shop.item(parent) == before_parent
    assert shop.item(own_on)["qty"] == D(50)


def test_item_switched_off_on_its_own_is_not_managed(shop: StockShop) -> None:
    off = shop.product("OFF", qty=1, in_stock=1, use_config_manage_stock=0, manage_stock=0, websites=(1, 2))
    shop.status_row(off, 1, 1, 1)  # M1's status row, M2's index row: neither may change
    before = shop.snapshot()
    out = push(shop.agent(), shop.magento(), [{"sku": "OFF", "qty": 7}])
    assert (out.results[0].status, out.results[0].qty, out.results[0].in_stock) == ("not_managed", None, None)
    assert out.rows_written == 0 and out.invalidated == []
    assert shop.snapshot() == before  # stock items, status rows, (M2) source items and indexer state
    assert shop.item(off)["qty"] == D(1)


def test_same_value_again_is_unchanged_and_writes_nothing(shop: StockShop) -> None:
    a = shop.product("A", qty=0, in_stock=0, websites=(1, 2))
    first = push(shop.agent(), shop.magento(), [{"sku": "A", "qty": "3.5"}])
    assert first.results[0].status == "updated"
    if shop.version == 2:
        shop.reset_indexers()
    before = shop.snapshot()
    second = push(shop.agent(), shop.magento(), [{"sku": "A", "qty": "3.5000"}])
    assert (second.results[0].status, second.results[0].qty, second.results[0].in_stock) == (
        "unchanged",
        D("3.5"),
        True,
    )
    assert second.rows_written == 0
    assert shop.snapshot() == before
    assert shop.item(a)["qty"] == D("3.5")


def test_magento1_stale_website_row_alone_is_repaired(shop1: StockShop) -> None:
    shop = shop1
    a = shop.product("A", qty=4, in_stock=1, websites=(1, 2))
    shop.status_row(a, 1, 4, 0)  # stale, and website 2's row is missing
    out = push(shop.agent(), shop.magento(), [{"sku": "A", "qty": 4}])
    assert out.results[0].status == "updated"
    assert shop.status(a) == {1: (D(4), 1), 2: (D(4), 1)}


def test_configurable_parent_follows_its_children(shop: StockShop) -> None:
    parent = shop.product("TSHIRT", type_id="configurable", qty=0, in_stock=1, websites=(1, 2))
    small = shop.product("TSHIRT-S", qty=2, in_stock=1, websites=(1, 2))
    medium = shop.product("TSHIRT-M", qty=1, in_stock=1, websites=(1, 2))
    shop.link(parent, [small, medium])

    push(shop.agent(), shop.magento(), [{"sku": "TSHIRT-S", "qty": 0}])
    assert shop.item(parent)["is_in_stock"] == 1  # TSHIRT-M still sells

    push(shop.agent(), shop.magento(), [{"sku": "TSHIRT-M", "qty": 0}])
    assert shop.item(parent)["is_in_stock"] == 0
    assert shop.item(parent)["stock_status_changed_auto"] == 1
    if shop.version == 1:
        assert shop.status(parent) == {1: (D(0), 0), 2: (D(0), 0)}

    push(shop.agent(), shop.magento(), [{"sku": "TSHIRT-S", "qty": 6}])
    assert shop.item(parent)["is_in_stock"] == 1
    if shop.version == 1:
        assert shop.status(parent) == {1: (D(0), 1), 2: (D(0), 1)}
    assert shop.item(parent)["qty"] == D(0)


def test_child_not_managed_counts_as_sellable_for_its_parent(shop: StockShop) -> None:
    parent = shop.product("P", type_id="configurable", qty=0, in_stock=0)
    managed = shop.product("P-1", qty=5, in_stock=1)
    free = shop.product("P-2", qty=0, in_stock=0, use_config_manage_stock=0, manage_stock=0)
    shop.link(parent, [managed, free])
    push(shop.agent(), shop.magento(), [{"sku": "P-1", "qty": 0}])
    assert shop.item(parent)["is_in_stock"] == 1


def test_bad_items_are_reported_and_the_rest_is_written(shop: StockShop) -> None:
    good = shop.product("GOOD", qty=0, in_stock=0)
    dup = shop.product("DUP", qty=1, in_stock=1)
    neg = shop.product("NEG", qty=1, in_stock=1)
    items: list[Any] = [
        {"sku": "NEG", "qty": -1},
        {"sku": "NAN", "qty": "abc"},
        {"sku": "DUP", "qty": 4},
        {"sku": "GOOD", "qty": "12"},
        {"sku": "dup ", "qty": 5},
        {"sku": "NOPE", "qty": 1},
        {"sku": "TOO-PRECISE", "qty": "1.00001"},
        {"sku": "", "qty": 1},
        {"qty": 1},
        "not an object",
        {"sku": "FLAG", "qty": True},
        {"sku": "X" * 65, "qty": 1},
    ]
    out = push(shop.agent(), shop.magento(), items)
    assert [r.status for r in out.results] == [
        "invalid",
        "invalid",
        "invalid",
        "updated",
        "invalid",
        "unknown_sku",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "unknown_sku",
    ]
    messages = [r.message or "" for r in out.results]
    assert "negative" in messages[0] and "not a number" in messages[1] and "more than once" in messages[2]
    assert out.counts() == {"updated": 1, "unchanged": 0, "unknown_sku": 2, "not_managed": 0, "invalid": 9}
    assert shop.item(good)["qty"] == D(12)
    assert shop.item(dup)["qty"] == D(1)
    assert shop.item(neg)["qty"] == D(1)


def test_missing_stock_item_is_created(shop: StockShop) -> None:
    bare = shop.product("BARE", stock_item=False)
    out = push(shop.agent(), shop.magento(), [{"sku": "BARE", "qty": 8}])
    assert out.results[0].status == "updated"
    row = shop.item(bare)
    assert (row["qty"], row["is_in_stock"], row["stock_id"], row["use_config_manage_stock"]) == (
        D(8),
        1,
        1,
        1,
    )
    if shop.version == 2:
        assert row["website_id"] == 0
    else:
        assert shop.status(bare) == {1: (D(8), 1)}


def test_read_stock_and_list_skus(shop: StockShop) -> None:
    shop.config(stock.CONFIG_MIN_QTY, "1")
    shop.product("R-1", qty=5, in_stock=1)
    shop.product("R-2", qty=0, in_stock=0)
    shop.product("R-3", type_id="configurable", qty=0, in_stock=1)
    shop.product("R-4", qty=3, in_stock=1, use_config_manage_stock=0, manage_stock=0)
    magento = shop.magento()
    items = stock.read_stock(shop.agent(), magento, ["r-2", "R-1", "MISSING", "R-3", "R-4"])
    assert items == [
        {"sku": "r-2", "qty": "0.0000", "in_stock": False, "salable_qty": "0.0000", "managed": True},
        {"sku": "R-1", "qty": "5.0000", "in_stock": True, "salable_qty": "4.0000", "managed": True},
        {"sku": "MISSING", "qty": None, "in_stock": None, "salable_qty": None, "managed": None},
        {"sku": "R-3", "qty": "0.0000", "in_stock": True, "salable_qty": None, "managed": False},
        {"sku": "R-4", "qty": "3.0000", "in_stock": True, "salable_qty": None, "managed": False},
    ]
    page1, last, more = stock.list_skus(shop.agent(), magento, 0, 3)
    assert [r["sku"] for r in page1] == ["R-1", "R-2", "R-3"] and more
    assert page1[2] == {
        "sku": "R-3",
        "product_id": page1[2]["product_id"],
        "type": "configurable",
        "managed": False,
    }
    page2, last2, more2 = stock.list_skus(shop.agent(), magento, last, 3)
    assert [(r["sku"], r["managed"]) for r in page2] == [("R-4", False)] and not more2
    assert stock.list_skus(shop.agent(), magento, last2, 3) == ([], last2, False)
    assert stock.decode_cursor(stock.encode_cursor(last)) == last


# --- Magento 2: indexers -------------------------------------------------------------------------------


def test_update_by_schedule_with_triggers_keeps_the_indexer_valid(shop2: StockShop) -> None:
    a = shop2.product("A", qty=0, in_stock=0)
    shop2.schedule(
        "cataloginventory_stock", triggers=True, watched="cataloginventory_stock_item", column="product_id"
    )
    out = push(shop2.agent(), shop2.magento(), [{"sku": "A", "qty": 3}])
    assert out.results[0].status == "updated"
    assert out.invalidated == []
    assert shop2.indexer("cataloginventory_stock") == "valid"
    changelog = shop2.run(f"SELECT entity_id FROM {shop2.t('cataloginventory_stock_cl')}")
    assert [r["entity_id"] for r in changelog] == [a]


def test_update_by_schedule_without_triggers_invalidates(shop2: StockShop) -> None:
    shop2.product("A", qty=0, in_stock=0)
    shop2.schedule(
        "cataloginventory_stock", triggers=False, watched="cataloginventory_stock_item", column="product_id"
    )
    out = push(shop2.agent(), shop2.magento(), [{"sku": "A", "qty": 3}])
    assert out.invalidated == ["cataloginventory_stock"]
    assert shop2.indexer("cataloginventory_stock") == "invalid"


def test_triggers_left_behind_in_update_on_save_mode_still_invalidate(shop2: StockShop) -> None:
    shop2.product("A", qty=0, in_stock=0)
    shop2.schedule(
        "cataloginventory_stock", triggers=True, watched="cataloginventory_stock_item", column="product_id"
    )
    shop2.run(f"UPDATE {shop2.t('mview_state')} SET mode = 'disabled'")
    push(shop2.agent(), shop2.magento(), [{"sku": "A", "qty": 3}])
    assert shop2.indexer("cataloginventory_stock") == "invalid"


# --- Magento 2: MSI ----------------------------------------------------------------------------------------


def test_msi_salable_mode_adds_open_reservations_back(shop2: StockShop) -> None:
    a = shop2.product("MSI-A", qty=1, in_stock=1, source_qty=1)
    shop2.status_row(a, 1, 1, 1)  # the legacy index row (the default stock's MSI index is a view on it)
    shop2.reservation("MSI-A", "-5")  # an order placed
    shop2.reservation("MSI-A", "2")  # part of it shipped or canceled
    shop2.reservation("MSI-A", "-4", stock_id=2)  # another stock: not the default source's business
    magento = shop2.magento("msi")
    out = push(shop2.agent(), magento, [{"sku": "MSI-A", "qty": 10}])
    assert (out.results[0].status, out.results[0].qty, out.results[0].in_stock) == ("updated", D(10), True)
    assert shop2.source("MSI-A") == (D(13), 1)
    legacy = shop2.item(a)
    assert (legacy["qty"], legacy["is_in_stock"]) == (D(13), 1)
    assert sorted(out.invalidated) == ["cataloginventory_stock", "inventory"]
    assert shop2.indexer("inventory") == "invalid"
    assert shop2.status(a) == {1: (D(1), 1)}  # the index is Magento's to rebuild, never written
    [seen] = stock.read_stock(shop2.agent(), magento, ["MSI-A"])
    assert seen == {
        "sku": "MSI-A",
        "qty": "13.0000",
        "in_stock": True,
        "salable_qty": "10.0000",
        "managed": True,
    }

    shop2.reset_indexers()
    again = push(shop2.agent(), magento, [{"sku": "MSI-A", "qty": 10}])
    assert again.results[0].status == "unchanged" and again.rows_written == 0
    assert shop2.indexer("inventory") == "valid"

    shop2.reservation("MSI-A", "-1")  # a new order: the same push now needs a new source quantity
    third = push(shop2.agent(), magento, [{"sku": "MSI-A", "qty": 10}])
    assert third.results[0].status == "updated"
    assert shop2.source("MSI-A") == (D(14), 1)


def test_msi_salable_zero_with_open_orders_is_out_of_stock(shop2: StockShop) -> None:
    shop2.product("MSI-Z", qty=4, in_stock=1, source_qty=4)
    shop2.reservation("MSI-Z", "-2")
    out = push(shop2.agent(), shop2.magento("msi"), [{"sku": "MSI-Z", "qty": 0}])
    assert out.results[0].in_stock is False
    assert shop2.source("MSI-Z") == (D(2), 0)


def test_msi_physical_mode_writes_the_figure_as_is(shop2: StockShop) -> None:
    a = shop2.product("MSI-P", qty=0, in_stock=0)  # no source item yet: created
    shop2.reservation("MSI-P", "-3")
    push(shop2.agent(), shop2.magento("msi", msi_mode="physical"), [{"sku": "MSI-P", "qty": "7.25"}])
    assert shop2.source("MSI-P") == (D("7.25"), 1)
    assert shop2.item(a)["qty"] == D("7.25")


def test_msi_other_source_leaves_the_legacy_row_alone(shop2: StockShop) -> None:
    shop2.add_source("warehouse")
    a = shop2.product("MSI-W", qty=2, in_stock=1, source_qty=2)
    before = shop2.item(a)
    out = push(shop2.agent(), shop2.magento("msi", msi_source="warehouse"), [{"sku": "MSI-W", "qty": 9}])
    assert out.results[0].status == "updated"
    assert shop2.source("MSI-W", "warehouse") == (D(9), 1)
    assert shop2.source("MSI-W") == (D(2), 1)
    assert shop2.item(a) == before
    assert out.invalidated == ["inventory"]
    assert shop2.indexer("cataloginventory_stock") == "valid"


def test_msi_with_schedule_triggers_on_both_tables(shop2: StockShop) -> None:
    shop2.product("MSI-T", qty=0, in_stock=0, source_qty=0)
    shop2.schedule(
        "cataloginventory_stock", triggers=True, watched="cataloginventory_stock_item", column="product_id"
    )
    shop2.schedule("inventory", triggers=True, watched="inventory_source_item", column="source_item_id")
    out = push(shop2.agent(), shop2.magento("msi"), [{"sku": "MSI-T", "qty": 1}])
    assert out.results[0].status == "updated" and out.invalidated == []
    assert shop2.indexer("inventory") == "valid" and shop2.indexer("cataloginventory_stock") == "valid"


def test_msi_configurable_parent_follows_default_source(shop2: StockShop) -> None:
    parent = shop2.product("CFG", type_id="configurable", qty=0, in_stock=1)
    child = shop2.product("CFG-1", qty=3, in_stock=1, source_qty=3)
    shop2.link(parent, [child])
    push(shop2.agent(), shop2.magento("msi", msi_mode="physical"), [{"sku": "CFG-1", "qty": 0}])
    assert shop2.source("CFG-1") == (D(0), 0)
    assert shop2.item(parent)["is_in_stock"] == 0


def test_qty_parsing_refuses_what_magento_cannot_store() -> None:
    assert (
        stock.parse_qty("5") == D(5)
        and stock.parse_qty(" 2.5000 ") == D("2.5")
        and stock.parse_qty(3) == D(3)
    )
    assert stock.parse_qty(D("0.1")) == D("0.1") and stock.parse_qty(0.25) == D("0.25")
    refused = {
        "-1": "negative",
        "1e3": "not a number",
        "NaN": "not a number",
        "": "not a number",
        "1.23456": "4 decimal places",
        "100000000": "larger than",
    }
    for raw, reason in refused.items():
        answer = stock.parse_qty(raw)
        assert isinstance(answer, str) and reason in answer, (raw, answer)
    for raw in (None, True, [1], {"n": 1}, D("1E+400"), D("Infinity")):
        assert isinstance(stock.parse_qty(raw), str), raw
    results, unique = stock.validate([{"sku": "\ud800", "qty": 1}, {"sku": "ok", "qty": 1}])
    assert results[0] is not None and results[0].status == "invalid" and [u.sku for u in unique] == ["ok"]
