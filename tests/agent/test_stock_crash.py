"""One push is one transaction: a connection killed halfway through a large push leaves no row changed.

The pushing connection is the agent's: a user holding exactly the README's grants.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pymysql
import pytest

from agent import stock
from tests.agent.test_stock import StockShop, build_shop
from tests.mariadb import MariaDB

PRODUCTS = 2500  # three write batches of stock.CHUNK rows per table


def fill(shop: StockShop, msi: bool) -> list[dict[str, object]]:
    """PRODUCTS simple products on two websites, in stock with qty 1; the push sets them all to 7."""
    skus = [f"BULK-{n:05d}" for n in range(PRODUCTS)]
    with shop.conn.cursor() as cur:
        cols = "(entity_type_id, type_id, sku)" if shop.version == 1 else "(attribute_set_id, type_id, sku)"
        cur.executemany(
            f"INSERT INTO {shop.t('catalog_product_entity')} {cols} VALUES (%s, %s, %s)",
            [(4, "simple", sku) for sku in skus],
        )
        cur.execute(
            f"INSERT INTO {shop.t('catalog_product_website')} SELECT entity_id, 1 FROM {shop.t('catalog_product_entity')}"
        )
        cur.execute(
            f"INSERT INTO {shop.t('catalog_product_website')} SELECT entity_id, 2 FROM {shop.t('catalog_product_entity')}"
        )
        cur.execute(
            f"INSERT INTO {shop.t('cataloginventory_stock_item')} (product_id, stock_id, qty, is_in_stock) "
            f"SELECT entity_id, 1, 1, 1 FROM {shop.t('catalog_product_entity')}"
        )
        if shop.version == 1:
            cur.execute(
                f"INSERT INTO {shop.t('cataloginventory_stock_status')} (product_id, website_id, stock_id, qty, "
                f"stock_status) SELECT entity_id, 1, 1, 1, 1 FROM {shop.t('catalog_product_entity')}"
            )
        if msi:
            cur.execute(
                f"INSERT INTO {shop.t('inventory_source_item')} (source_code, sku, quantity, status) "
                f"SELECT 'default', sku, 1, 1 FROM {shop.t('catalog_product_entity')}"
            )
    return [{"sku": sku, "qty": 7} for sku in skus]


@pytest.fixture
def make_shop(mariadb: MariaDB, database: str) -> Iterator[Callable[[int, str], StockShop]]:
    """build_shop for this test's database; every shop built is closed (its granted user dropped) at the end."""
    built: list[StockShop] = []

    def make(version: int, prefix: str = "") -> StockShop:
        built.append(build_shop(mariadb, database, version, prefix))
        return built[-1]

    yield make
    for shop in built:
        shop.close()


@pytest.fixture(
    params=[(1, "", False), (2, "mage_", False), (2, "", True)], ids=["m1", "m2-prefix", "m2-msi"]
)
def setup(
    request: pytest.FixtureRequest, make_shop: Callable[[int, str], StockShop]
) -> tuple[StockShop, bool]:
    version, prefix, msi = request.param
    return make_shop(version, prefix), msi


def test_killed_connection_mid_push_changes_nothing(
    setup: tuple[StockShop, bool], mariadb: MariaDB, database: str
) -> None:
    shop, msi = setup
    items = fill(shop, msi)
    magento = shop.magento("msi" if msi else "legacy", msi_mode="physical")
    before = shop.snapshot()

    victim = shop.agent()
    victim.autocommit(False)
    calls: list[str] = []

    def kill_after_two_batches(table: str) -> None:
        calls.append(table)
        if len(calls) == 2:
            with mariadb.connect() as killer, killer.cursor() as cur:
                cur.execute("KILL %s", (victim.thread_id(),))

    with pytest.raises((pymysql.err.OperationalError, pymysql.err.InterfaceError)):
        stock.write_stock(victim, magento, items, hook=kill_after_two_batches)
    assert len(calls) == 2  # the kill came after rows had been written, before the commit
    assert shop.snapshot() == before

    # A push on a fresh connection then writes everything.
    assert shop.granted is not None
    fresh = shop.granted.connect()
    fresh.autocommit(False)
    outcome = stock.write_stock(fresh, magento, items)
    fresh.close()
    assert outcome.counts()["updated"] == PRODUCTS
    after = shop.snapshot()
    assert {row[3] for row in after["cataloginventory_stock_item"]} == {7}


def test_a_locked_row_times_out_without_a_partial_write(
    mariadb: MariaDB, database: str, make_shop: Callable[[int, str], StockShop]
) -> None:
    shop = make_shop(1, "")
    items = fill(shop, msi=False)[:1200]
    before = shop.snapshot()
    holder = mariadb.connect(database)
    holder.autocommit(False)
    victim = shop.agent()
    victim.autocommit(False)
    try:
        with holder.cursor() as cur:  # e.g. Magento placing an order on the last SKU of the push
            cur.execute(
                f"SELECT * FROM {shop.t('cataloginventory_stock_item')} WHERE product_id = "
                f"(SELECT entity_id FROM {shop.t('catalog_product_entity')} WHERE sku = %s) FOR UPDATE",
                (items[-1]["sku"],),
            )
        with victim.cursor() as cur:
            cur.execute("SET SESSION innodb_lock_wait_timeout = 1")
        with pytest.raises(pymysql.err.OperationalError) as timed_out:
            stock.write_stock(victim, shop.magento(), items)
        assert timed_out.value.args[0] == 1205
    finally:
        holder.rollback()
        holder.close()
    assert shop.snapshot() == before
    # The same connection is usable again and the retry writes everything.
    assert stock.write_stock(victim, shop.magento(), items).counts()["updated"] == len(items)


@pytest.mark.parametrize(("version", "msi"), [(1, False), (2, True)], ids=["m1", "m2-msi"])
def test_a_push_locks_only_its_own_rows(
    mariadb: MariaDB, database: str, make_shop: Callable[[int, str], StockShop], version: int, msi: bool
) -> None:
    """While a push is open, Magento can still sell the product next to the pushed ones."""
    shop = make_shop(version, "")
    items = fill(shop, msi)[:1200]
    pushed, neighbour = items[:600], items[600]["sku"]
    seller = mariadb.connect(database)
    seller.autocommit(False)
    with seller.cursor() as cur:
        cur.execute("SET SESSION innodb_lock_wait_timeout = 2")
        cur.execute(f"SELECT entity_id FROM {shop.t('catalog_product_entity')} WHERE sku = %s", (neighbour,))
        neighbour_id = cur.fetchone()[0]
    sold: list[str] = []

    def place_order(table: str) -> None:
        with seller.cursor() as cur:  # what Magento does at checkout, while the push is uncommitted
            cur.execute(
                f"UPDATE {shop.t('cataloginventory_stock_item')} SET qty = qty - 1 WHERE product_id = %s",
                (neighbour_id,),
            )
            if msi:
                cur.execute(
                    f"UPDATE {shop.t('inventory_source_item')} SET quantity = quantity - 1 "
                    "WHERE source_code = 'default' AND sku = %s",
                    (neighbour,),
                )
            if version == 1:
                cur.execute(
                    f"UPDATE {shop.t('cataloginventory_stock_status')} SET qty = qty - 1 WHERE product_id = %s",
                    (neighbour_id,),
                )
        seller.commit()
        sold.append(table)

    victim = shop.agent()
    victim.autocommit(False)
    magento = shop.magento("msi" if msi else "legacy", msi_mode="physical")
    try:
        outcome = stock.write_stock(victim, magento, pushed, hook=place_order)
    finally:  # an open transaction left behind would block dropping the test database
        seller.close()
        victim.close()
    # Magento sold once after every write statement of the push, none of them waiting for the push.
    assert len(sold) >= 4 and outcome.counts()["updated"] == len(pushed)
    assert shop.item(neighbour_id)["qty"] == 1 - len(sold)
