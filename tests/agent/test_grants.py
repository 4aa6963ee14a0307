"""Least privilege: a MariaDB user holding exactly the grants of README.md ("MySQL privileges for the agent")
runs the order feed, diagnostics, `koppel-agent check` and every stock call, and is refused everything else."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pymysql
import pytest
import yaml

from agent.app import create_app
from agent.cli import run_check
from agent.config import config_from_dict
from client.demo.shop import Shop
from tests.agent.conftest import SigningClient, config_dict
from tests.agent.grants import grant_statements
from tests.agent.test_stock import StockShop
from tests.mariadb import MariaDB


def drop_msi(conn: pymysql.connections.Connection, prefix: str) -> None:
    """Turn the fixture's Magento 2 into one without MSI: no Inventory modules, no inventory tables."""
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM `{prefix}setup_module` WHERE module LIKE 'Magento\\_Inventory%%'")
        for table in ("inventory_reservation", "inventory_stock_sales_channel", "inventory_source_stock_link",
                      "inventory_source_item", "inventory_stock", "inventory_source"):  # fmt: skip
            cur.execute(f"DROP TABLE `{prefix}{table}`")
    conn.commit()


# (version, prefix, msi)
CASES = [(1, "", False), (2, "mage_", True), (2, "", True), (2, "shop_", False)]


@pytest.mark.parametrize(
    ("version", "prefix", "msi"), CASES, ids=["m1", "m2-msi-prefix", "m2-msi-schedule", "m2-legacy"]
)
def test_agent_runs_with_exactly_the_documented_grants(
    mariadb: MariaDB,
    database: str,
    tmp_path: Path,
    restricted: tuple[str, str, str],
    version: int,
    prefix: str,
    msi: bool,
) -> None:
    name, password, account = restricted
    schedule = version == 2 and prefix == ""
    root = mariadb.connect(database)
    shop = Shop.install(root, version, prefix, parts=("core", "stock"))
    if version == 2 and not msi:
        drop_msi(root, prefix)
    stock_shop = StockShop(root, version, prefix)
    tee = stock_shop.product("TEE", type_id="configurable", qty=0, in_stock=1)
    tee_s = stock_shop.product("TEE-S", qty=1, in_stock=1, source_qty=1 if msi else None)
    stock_shop.product("MUG", qty=0, in_stock=0, source_qty=0 if msi else None)
    stock_shop.product("NEW", stock_item=False)  # no stock rows at all: INSERTs are needed
    stock_shop.link(tee, [tee_s])
    customer = shop.customer(email="jan@example.nl", attributes={"klantcode": "1042"})
    shop.order(items=[{"sku": "MUG", "qty": 2, "price": "7.50"}], customer=customer)
    if schedule:
        stock_shop.schedule(
            "cataloginventory_stock",
            triggers=True,
            watched="cataloginventory_stock_item",
            column="product_id",
        )
        stock_shop.schedule(
            "inventory", triggers=True, watched="inventory_source_item", column="source_item_id"
        )
    with root.cursor() as cur:
        for statement in grant_statements(version, database, prefix, account, schedule=schedule, msi=msi):
            cur.execute(statement)

    data = config_dict(
        mariadb,
        database,
        tmp_path / "state",
        database={"user": name, "password": password},
        magento={"table_prefix": prefix, "session_time_zone": "+00:00"},
    )
    config_file = tmp_path / "agent.yml"
    config_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    said: list[str] = []
    assert run_check(config_file, said.append) == 0, said
    assert any(f"stock {'msi' if msi else 'legacy'}" in line for line in said), said
    client = SigningClient(create_app(config_from_dict(data, tmp_path)).test_client())

    feed = client.get("/v1/orders", [("created_from", "2000-01-01T00:00:00Z")])
    assert feed.status_code == 200, feed.get_data(as_text=True)
    [order] = feed.get_json()["orders"]
    assert order["customer"]["attributes"] == {"klantcode": "1042"}
    assert [line["sku"] for line in order["lines"]] == ["MUG"]
    diagnostics = client.get("/v1/diagnostics")
    assert diagnostics.status_code == 200
    assert diagnostics.get_json()["magento"]["stock_mode"] == ("msi" if msi else "legacy")
    assert not [w for w in diagnostics.get_json()["warnings"] if "stock cannot be written" in w]

    items = [
        {"sku": "TEE-S", "qty": 0},
        {"sku": "MUG", "qty": 3},
        {"sku": "NEW", "qty": 2},
        {"sku": "TEE", "qty": 1},
    ]
    pushed = client.post("/v1/stock", json.dumps({"request_id": "grants", "items": items}).encode())
    assert pushed.status_code == 200, pushed.get_data(as_text=True)
    assert [r["status"] for r in pushed.get_json()["results"]] == [
        "updated",
        "updated",
        "updated",
        "not_managed",
    ]
    assert stock_shop.item(tee)["is_in_stock"] == 0
    new_id = stock_shop.run(
        f"SELECT entity_id FROM {stock_shop.t('catalog_product_entity')} WHERE sku = 'NEW'"
    )[0]
    assert stock_shop.item(new_id["entity_id"])["qty"] == Decimal(2)
    if version == 1:
        assert stock_shop.status(tee) == {1: (Decimal(0), 0)}
    elif msi:
        assert stock_shop.source("MUG") == (Decimal(3), 1)
        assert stock_shop.indexer("inventory") == ("valid" if schedule else "invalid")
    else:
        assert stock_shop.item(stock_shop.run(
            f"SELECT entity_id FROM {stock_shop.t('catalog_product_entity')} WHERE sku = 'MUG'"
        )[0]["entity_id"])["qty"] == Decimal(3)  # fmt: skip
        assert stock_shop.indexer("cataloginventory_stock") == "invalid"

    levels = client.get("/v1/stock", [("sku", "MUG")]).get_json()["items"]
    assert levels[0]["qty"] == "3.0000"
    skus = client.get("/v1/skus").get_json()["skus"]
    assert [s["sku"] for s in skus] == ["TEE", "TEE-S", "MUG", "NEW"]

    # And nothing beyond the documented grants.
    limited = pymysql.connect(
        host=mariadb.host, port=mariadb.port, user=name, password=password, database=database, autocommit=True
    )
    with limited, limited.cursor() as cur:
        for forbidden in (
            f"DELETE FROM `{prefix}cataloginventory_stock_item`",
            f"SELECT * FROM `{prefix}customer_entity`",
            f"UPDATE `{prefix}catalog_product_entity` SET sku = sku",
            f"CREATE TABLE `{prefix}koppel_probe` (id int)",
        ):
            with pytest.raises(pymysql.err.OperationalError) as refused:
                cur.execute(forbidden)
            assert refused.value.args[0] in (1142, 1044), forbidden
    root.close()
