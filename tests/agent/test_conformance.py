"""The feed over Magento's real table definitions (../shared/reference), not only over koppel's own fixture.

The reference DDL is loaded as it is, and for the prefixed variant with every table name (after CREATE TABLE
and REFERENCES) prefixed, which is how MAGENTO-SCHEMA.md builds a prefixed shop; index and constraint names
stay, which is fine in a database of its own. Skipped when the reference folder is not there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from agent import orders
from agent.db import Magento
from client.demo.magento_schema import schema_sql
from client.demo.shop import Shop

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
VARIANTS = [(1, ""), (1, "mage_"), (2, ""), (2, "mage_")]
IDS = ["m1", "m1-mage_", "m2", "m2-mage_"]

pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"no reference schemas at {REFERENCE}")


def reference_statements(version: int, prefix: str) -> list[str]:
    text = (REFERENCE / f"magento{version}-schema.sql").read_text(encoding="utf-8")
    text = re.sub(r"(CREATE TABLE|REFERENCES) `([a-z0-9_]+)`", rf"\1 `{prefix}\2`", text)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";\n") if s.strip()]


@pytest.fixture(params=VARIANTS, ids=IDS)
def shop(request: pytest.FixtureRequest, mariadb, database: str) -> Iterator[Shop]:  # noqa: ANN001
    version, prefix = request.param
    conn = mariadb.connect(database, cursorclass=pymysql.cursors.DictCursor)
    with conn.cursor() as cur:
        for statement in reference_statements(version, prefix):
            cur.execute(statement)
        # The install seed rows of koppel's fixture (stores, entity types, attributes, groups) fit these tables.
        cur.execute("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'")
        # setup_module is not among the reference tables (the feed does not read it).
        for statement in schema_sql(version, prefix, ("core",)):
            if statement.startswith("INSERT") and "setup_module`" not in statement:
                cur.execute(statement)
        cur.execute("SET SESSION sql_mode = DEFAULT")
    yield Shop(conn, version, prefix)
    conn.close()


def agent_connection(mariadb, database: str, version: int) -> pymysql.connections.Connection:  # noqa: ANN001
    conn = mariadb.connect(database, cursorclass=pymysql.cursors.DictCursor)
    conn.autocommit(False)
    if version == 2:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
    return conn


def test_feed_over_the_reference_schema(shop: Shop, mariadb, database: str) -> None:  # noqa: ANN001
    small, medium = shop.product("TSHIRT-S"), shop.product("TSHIRT-M")
    parent = shop.product("TSHIRT", type_id="configurable", children=[small, medium])
    part, box = shop.product("PART"), shop.product("BOX", type_id="bundle")
    mug = shop.product("MUG")
    shop.store("be", "België")
    customer = shop.customer(
        "b2b@example.nl", "Anaïs", "Müller", attributes={"klantcode": "K-9", "kvk": "1234"}
    )

    configurable = {
        "sku": "TSHIRT-M", "product_id": parent, "type": "configurable", "price": "20.0000",
        "options": {"attributes_info": [{"label": "Maat", "value": "M"}], "product_calculations": 1},
        "children": [{"sku": "TSHIRT-M", "product_id": medium, "price": "0"}],
    }  # fmt: skip
    bundle = {
        "sku": "BOX", "product_id": box, "type": "bundle", "price": "30.0000",
        "options": {"product_calculations": 1},
        "children": [{"sku": "PART", "product_id": part, "qty": 2}],
    }  # fmt: skip
    first = shop.order(items=[configurable, bundle], customer=customer, billing={"street": "Kade 1\n\nB"})
    guest = shop.order(
        items=[{"sku": "MUG-GRAVEER", "product_id": mug}], billing={"firstname": "Zoë"}, store="be"
    )
    virtual = shop.order(
        items=[{"sku": "MUG", "price": "10"}],
        shipping=False,
        currency="USD",
        base_currency="EUR",
        base_rate="2",
    )
    shop.delete_product(part)

    conn = agent_connection(mariadb, database, shop.version)
    mage = Magento(shop.version, shop.prefix, "legacy", "default", "salable")
    served, after = [], orders.BEGINNING
    while True:
        page = orders.fetch_page(conn, mage, after=after, limit=2, settle_seconds=60)
        served += page.orders
        after = orders.decode_cursor(page.next_cursor)
        if not page.has_more:
            break
    conn.close()

    assert [o["id"] for o in served] == [first, guest, virtual]
    one, two, three = served
    tshirt, box_line = one["lines"]
    assert (tshirt["sku"], tshirt["product_id"], tshirt["row_total"]) == ("TSHIRT-M", medium, "20.0000")
    assert tshirt["options"] == [{"label": "Maat", "value": "M"}]
    assert box_line["bundle_price_type"] == "fixed" and box_line["children"][0]["product_missing"] is True
    assert one["customer"]["attributes"] == {"klantcode": "K-9", "kvk": "1234"}
    assert one["customer"]["name"] == "Anaïs Müller"
    assert one["billing_address"]["street"] == ["Kade 1", "", "B"]
    assert len(one["warnings"]) == 1 and "PART" in one["warnings"][0]
    assert two["customer"]["is_guest"] is True and two["customer"]["name"] == "Zoë Jansen"
    assert two["store"]["code"] == "be" and two["lines"][0]["sku"] == "MUG"
    assert two["lines"][0]["order_sku"] == "MUG-GRAVEER"
    assert three["shipping_address"] is None and three["currency"] == "USD"
    assert three["totals"]["grand_total"] == "12.1000" and three["totals"]["base_grand_total"] == "6.0500"
    for order in served:
        assert order["totals"]["unexplained_amount"] == "0.0000"
        assert order["created_at"].endswith("Z") and order["relation"] == {
            "parent_id": None,
            "original_number": None,
        }
