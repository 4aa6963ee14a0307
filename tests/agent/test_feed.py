"""The ORDER rules of AGENT-API.md, each against a real MariaDB shop: Magento 1 and 2, without and with prefix.

The shop is built as root; the feed reads it as a user holding exactly README's grants for that Magento version
(``tests.agent.grants.GrantedUser``), so a query touching a table the README does not grant fails here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import pytest

from agent import orders
from agent.app import create_app
from agent.config import config_from_dict
from agent.db import Magento
from client.demo.shop import Shop
from tests.agent.conftest import SigningClient, config_dict
from tests.agent.grants import GrantedUser

VARIANTS = [(1, ""), (1, "mage_"), (2, ""), (2, "mage_")]
IDS = ["m1", "m1-mage_", "m2", "m2-mage_"]
# What Shop.order stores for shipping by default (5.00 at 21% VAT), in the order currency.
FLAT_RATE_SHIPPING = {
    "method": "flatrate_flatrate",
    "description": "Flat Rate - Fixed",
    "amount": "5.0000",
    "amount_incl_tax": "6.0500",
    "tax_amount": "1.0500",
    "discount_amount": "0.0000",
}


class Feed:
    """The agent's side: its own connection (autocommit off, Magento's session zone) and the feed functions."""

    def __init__(self, conn: pymysql.connections.Connection, mage: Magento) -> None:
        self.conn, self.mage = conn, mage

    def order(self, order_id: int) -> dict[str, Any]:
        found = orders.fetch_order(self.conn, self.mage, order_id)
        assert found is not None
        # What the client gets is JSON: make sure every value survives it unchanged.
        return json.loads(json.dumps(found))

    def page(
        self, after: orders.Position = orders.BEGINNING, limit: int = 100, settle: int = 0
    ) -> orders.Page:
        return orders.fetch_page(self.conn, self.mage, after=after, limit=limit, settle_seconds=settle)


@pytest.fixture(params=VARIANTS, ids=IDS)
def shop(request: pytest.FixtureRequest, mariadb, database: str) -> Iterator[Shop]:  # noqa: ANN001
    version, prefix = request.param
    conn = mariadb.connect(database, cursorclass=pymysql.cursors.DictCursor)
    yield Shop.install(conn, version, prefix)
    conn.close()


@pytest.fixture
def granted(shop: Shop, mariadb, database: str) -> Iterator[GrantedUser]:  # noqa: ANN001
    """The agent's login: a user holding exactly README's grants for this Magento version (issue 3)."""
    user = GrantedUser(mariadb, database, shop.version, shop.prefix)
    yield user
    user.close()


@pytest.fixture
def feed(shop: Shop, granted: GrantedUser) -> Iterator[Feed]:
    conn = granted.connect(cursorclass=pymysql.cursors.DictCursor, autocommit=False)
    # autocommit off as agent.db.connect: one snapshot per page
    with conn.cursor() as cur:
        cur.execute("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AS user")
        assert cur.fetchone()["user"] == granted.name
        if shop.version == 2:
            cur.execute("SET time_zone = '+00:00'")
    yield Feed(conn, Magento(shop.version, shop.prefix, "legacy", "default", "salable"))
    conn.close()


def only_line(order: dict[str, Any]) -> dict[str, Any]:
    assert len(order["lines"]) == 1, order["lines"]
    return order["lines"][0]


def test_simple_order_document_shape(shop: Shop, feed: Feed) -> None:
    shop.product("MUG", "Mok")
    customer = shop.customer("jan@example.nl", "Jan", "Jansen", group_id=2)
    oid = shop.order(
        items=[{"sku": "MUG", "qty": 2, "price": "7.5000"}], customer=customer, number="100000042"
    )
    order = feed.order(oid)

    assert order["id"] == oid and order["number"] == "100000042"
    assert order["store"] == {"id": 1, "code": "default", "name": "Default Store View", "website_id": 1}
    assert order["created_at"].endswith("Z") and order["updated_at"].endswith("Z")
    assert order["customer"]["id"] == customer and order["customer"]["is_guest"] is False
    assert order["customer"]["name"] == "Jan Jansen" and order["customer"]["group_id"] == 2
    line = only_line(order)
    assert line["sku"] == "MUG" and line["order_sku"] == "MUG" and line["product_missing"] is False
    # Money exactly as stored: four decimals, strings.
    assert (line["qty"], line["unit_price"], line["row_total"]) == ("2.0000", "7.5000", "15.0000")
    assert line["tax_amount"] == "3.1500" and line["row_total_incl_tax"] == "18.1500"
    assert order["totals"]["subtotal"] == "15.0000" and order["totals"]["grand_total"] == "24.2000"
    assert order["shipping"] == FLAT_RATE_SHIPPING
    assert order["taxes"] == [{"code": "NL-21", "title": "BTW 21%", "percent": "21.0000", "amount": "4.2000"}]
    assert order["totals"]["unexplained_amount"] == "0.0000"
    assert order["payment"]["method"] == "checkmo" and order["payment"]["fee"] is None
    assert order["warnings"] == []


def test_absent_values_are_null_never_missing(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    oid = shop.order(items=[{"sku": "MUG"}], shipping=False, customer_note=None)
    order = feed.order(oid)
    expected_keys = {
        "id", "number", "store", "created_at", "updated_at", "state", "status", "currency", "base_currency",
        "customer", "billing_address", "shipping_address", "lines", "shipping", "discount", "payment", "totals",
        "taxes", "customer_note", "relation", "warnings",
    }  # fmt: skip
    assert expected_keys <= set(order)
    assert order["shipping_address"] is None  # virtual order
    assert order["customer_note"] is None and order["discount"]["coupon_code"] is None
    assert set(order["billing_address"]) == {
        "firstname", "middlename", "lastname", "prefix", "suffix", "company", "street", "postcode", "city",
        "region", "country", "telephone", "email", "vat_id",
    }  # fmt: skip
    assert order["billing_address"]["middlename"] is None
    line = only_line(order)
    assert set(line) >= {
        "item_id", "product_id", "sku", "order_sku", "name", "product_type", "qty", "unit_price",
        "unit_price_incl_tax", "row_total", "row_total_incl_tax", "tax_percent", "tax_amount", "discount_amount",
        "options", "children", "product_missing",
    }  # fmt: skip
    assert order["relation"] == {"parent_id": None, "original_number": None}


def test_configurable_is_one_line_with_parent_money_and_child_article(shop: Shop, feed: Feed) -> None:
    small, medium = shop.product("TSHIRT-S"), shop.product("TSHIRT-M")
    parent = shop.product("TSHIRT", type_id="configurable", children=[small, medium])
    options = {
        "attributes_info": [{"label": "Maat", "value": "M"}],
        "simple_sku": "TSHIRT-M",
        "product_calculations": 1,
    }
    # The child row's money is garbage on purpose: releases differ in what they store there.
    child = {"sku": "TSHIRT-M", "product_id": medium, "price": "999.0000", "qty": 1}
    item = {
        "sku": "TSHIRT-M",
        "product_id": parent,
        "type": "configurable",
        "price": "20.0000",
        "options": options,
    }
    oid = shop.order(items=[{**item, "name": "T-shirt", "children": [child]}])
    line = only_line(feed.order(oid))
    assert line["product_id"] == medium and line["sku"] == "TSHIRT-M"
    assert (
        line["unit_price"] == "20.0000" and line["row_total"] == "20.0000" and line["tax_amount"] == "4.2000"
    )
    assert line["name"] == "T-shirt" and line["children"] == []
    assert {"label": "Maat", "value": "M"} in line["options"]


def test_fixed_and_dynamic_bundles_keep_children_on_the_line(shop: Shop, feed: Feed) -> None:
    a, b, box = shop.product("PART-A"), shop.product("PART-B"), shop.product("BOX", type_id="bundle")
    selection = {"price": "0", "qty": 1, "option_label": "Onderdeel", "option_id": 1}
    bundle_options = {"1": {"option_id": 1, "label": "Onderdeel", "value": [{"title": "Part A", "qty": 1}]}}
    kids = [
        {
            "sku": "PART-A",
            "product_id": a,
            "price": "4.0000",
            "options": {"bundle_selection_attributes": selection},
        },
        {"sku": "PART-B", "product_id": b, "price": "6.0000", "qty": 2},
    ]
    fixed = shop.order(
        items=[
            {
                "sku": "BOX",
                "product_id": box,
                "type": "bundle",
                "price": "25.0000",
                "children": kids,
                "options": {"product_calculations": 1, "bundle_options": bundle_options},
            }  # fmt: skip
        ]
    )
    dynamic = shop.order(
        items=[
            {
                "sku": "BOX-PART-A-PART-B",
                "product_id": box,
                "type": "bundle",
                "price": "16.0000",
                "children": kids,
                "options": {"product_calculations": 0},
            }  # fmt: skip
        ]
    )
    fixed_line, dynamic_line = only_line(feed.order(fixed)), only_line(feed.order(dynamic))
    assert fixed_line["bundle_price_type"] == "fixed" and dynamic_line["bundle_price_type"] == "dynamic"
    assert fixed_line["row_total"] == "25.0000" and fixed_line["sku"] == "BOX"
    assert {"label": "Onderdeel", "value": "1 x Part A"} in fixed_line["options"]
    # A dynamic bundle's SKU is composed from the selections; the catalog SKU comes from product_id.
    assert dynamic_line["sku"] == "BOX" and dynamic_line["order_sku"] == "BOX-PART-A-PART-B"
    for line in (fixed_line, dynamic_line):
        assert [c["sku"] for c in line["children"]] == ["PART-A", "PART-B"]
        assert [c["row_total"] for c in line["children"]] == ["4.0000", "12.0000"]
    # The nested (serialized inside serialized) selection attributes are decoded too.
    assert {"label": "Onderdeel", "value": "PART-A"} in fixed_line["children"][0]["options"]
    assert feed.order(fixed)["warnings"] == []


def test_sku_altered_by_custom_options_resolved_through_product_id(shop: Shop, feed: Feed) -> None:
    mug = shop.product("MUG")
    engraving = {"options": [{"label": "Gravure", "value": "Voor Oma", "print_value": "Voor Oma"}]}
    oid = shop.order(items=[{"sku": "MUG-GRAVEER", "product_id": mug, "options": engraving}])
    line = only_line(feed.order(oid))
    assert line["sku"] == "MUG" and line["order_sku"] == "MUG-GRAVEER" and line["product_id"] == mug
    assert line["options"] == [{"label": "Gravure", "value": "Voor Oma"}]


def test_deleted_product_is_flagged_not_fatal(shop: Shop, feed: Feed) -> None:
    gone, kept = shop.product("GONE"), shop.product("KEPT")
    oid = shop.order(items=[{"sku": "GONE", "product_id": gone}, {"sku": "KEPT"}])
    shop.delete_product(gone)
    order = feed.order(oid)
    missing, present = order["lines"]
    assert missing["product_missing"] is True and missing["sku"] == "GONE" and missing["product_id"] == gone
    assert present["product_missing"] is False and present["product_id"] == kept
    assert len(order["warnings"]) == 1 and "GONE" in order["warnings"][0]


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("json", id="json"),
        pytest.param("php", id="php-serialized"),
        pytest.param("double", id="double-encoded-json"),
        pytest.param("php-nested", id="php-with-nested-json"),
        pytest.param("php-in-php", id="double-encoded-php"),
        pytest.param("php-in-json", id="php-inside-a-json-string"),
    ],
)
def test_product_options_every_encoding(shop: Shop, feed: Feed, stored: str) -> None:
    from agent import phpserial

    shop.product("CAP")
    options = {
        "options": [{"label": "Tekst", "value": "Été ☀", "print_value": "Été ☀"}],
        "info_buyRequest": {"qty": 1},
    }
    raw = {
        "json": json.dumps(options, ensure_ascii=False),
        "php": phpserial.dumps(options),
        "double": json.dumps(json.dumps(options)),
        "php-nested": phpserial.dumps({**options, "bundle_selection_attributes": json.dumps({"qty": 1})}),
        "php-in-php": phpserial.dumps(phpserial.dumps(options)),
        "php-in-json": json.dumps(phpserial.dumps(options)),
    }[stored]
    oid = shop.order(items=[{"sku": "CAP", "options": raw}])
    order = feed.order(oid)
    assert only_line(order)["options"] == [{"label": "Tekst", "value": "Été ☀"}]
    assert order["warnings"] == []


def test_undecodable_options_warn_and_order_is_still_served(shop: Shop, feed: Feed) -> None:
    shop.product("CAP")
    oid = shop.order(items=[{"sku": "CAP", "options": 'a:1:{s:5:"broken'}])
    page = feed.page()
    assert [o["id"] for o in page.orders] == [oid]
    order = page.orders[0]
    assert only_line(order)["options"] == [] and only_line(order)["sku"] == "CAP"
    assert len(order["warnings"]) == 1 and "options" in order["warnings"][0]


def test_every_street_line_kept(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    street = "Kerkstraat\n12\n\nachterom"
    oid = shop.order(
        items=[{"sku": "MUG"}], billing={"street": street}, shipping={"street": "Laan 1\r\nbus 3"}
    )
    order = feed.order(oid)
    assert order["billing_address"]["street"] == ["Kerkstraat", "12", "", "achterom"]
    assert order["shipping_address"]["street"] == ["Laan 1", "bus 3"]


def test_guest_named_from_billing_address(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    oid = shop.order(
        items=[{"sku": "MUG"}],
        billing={"firstname": "Piet", "lastname": "Puk", "company": "Puk BV", "email": "piet@example.nl"},
        customer_group_id=None,
    )
    customer = feed.order(oid)["customer"]
    assert customer["is_guest"] is True and customer["id"] is None and customer["attributes"] == {}
    assert customer["name"] == "Piet Puk" and customer["company"] == "Puk BV" and customer["group_id"] == 0


def test_registered_order_without_names_named_from_billing(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    cid = shop.customer("x@example.nl")
    oid = shop.order(items=[{"sku": "MUG"}], customer=cid, customer_firstname=None, customer_lastname=None,
                     billing={"firstname": "Kees", "lastname": "de Vries"})  # fmt: skip
    customer = feed.order(oid)["customer"]
    assert customer["is_guest"] is False and customer["name"] == "Kees de Vries"


def test_guest_flag_follows_customer_id_not_customer_is_guest(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    cid = shop.customer("y@example.nl")
    registered = shop.order(items=[{"sku": "MUG"}], customer=cid, customer_is_guest=1)
    guest = shop.order(items=[{"sku": "MUG"}], customer_is_guest=0)
    assert feed.order(registered)["customer"]["is_guest"] is False
    assert feed.order(guest)["customer"]["is_guest"] is True


def test_order_currency_never_mixed_with_base(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    # The item's base_* columns hold the EUR amounts (10 USD / 1.25): a line that read them would show 8.
    base_item = {
        "base_price": "8.0000", "base_price_incl_tax": "9.6800", "base_row_total": "8.0000",
        "base_row_total_incl_tax": "9.6800", "base_tax_amount": "1.6800", "base_discount_amount": "0.8000",
    }  # fmt: skip
    oid = shop.order(
        items=[{"sku": "MUG", "price": "10.0000", "discount_amount": "1.0000", **base_item}],
        currency="USD",
        base_currency="EUR",
        base_rate="1.25",
    )
    order = feed.order(oid)
    assert order["currency"] == "USD" and order["base_currency"] == "EUR"
    totals = order["totals"]
    assert totals["subtotal"] == "10.0000" and totals["grand_total"] == "18.1500"
    assert totals["subtotal_incl_tax"] == "12.1000" and totals["tax_amount"] == "3.1500"
    assert totals["base_grand_total"] == "14.5200"  # 18.15 / 1.25, as stored
    assert totals["unexplained_amount"] == "0.0000"
    assert order["shipping"] == FLAT_RATE_SHIPPING
    line = only_line(order)
    assert (line["unit_price"], line["unit_price_incl_tax"]) == ("10.0000", "12.1000")
    assert (line["row_total"], line["row_total_incl_tax"]) == ("10.0000", "12.1000")
    assert (line["tax_amount"], line["discount_amount"]) == ("2.1000", "1.0000")
    assert order["taxes"][0]["amount"] == "3.1500"  # sales_order_tax.amount, not base_amount


def test_same_number_in_two_stores_is_two_orders(shop: Shop, feed: Feed) -> None:
    if shop.version == 1:
        pytest.skip("Magento 1 keeps increment_id unique over all stores (UNIQUE(increment_id))")
    shop.store("be", "Belgie")
    shop.product("MUG")
    first = shop.order(items=[{"sku": "MUG"}], number="000000007")
    second = shop.order(items=[{"sku": "MUG"}], number="000000007", store="be")
    page = feed.page()
    served = [(o["id"], o["number"], o["store"]["code"]) for o in page.orders]
    assert served == [(first, "000000007", "default"), (second, "000000007", "be")]


def test_edited_order_carries_its_relation(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    original = shop.order(items=[{"sku": "MUG"}], number="100000050", state="canceled")
    edited = shop.order(
        items=[{"sku": "MUG"}],
        number="100000050-1",
        relation_parent_id=str(original),
        relation_parent_real_id="100000050",
        original_increment_id="100000050",
        edit_increment=1,
    )
    assert feed.order(edited)["relation"] == {"parent_id": original, "original_number": "100000050"}
    assert feed.order(original)["relation"] == {"parent_id": None, "original_number": None}


def test_known_fee_columns_and_unexplained_amount(shop: Shop, feed: Feed) -> None:
    order_table = shop.table("order")
    with shop.conn.cursor() as cur:
        cur.execute(
            f"ALTER TABLE {order_table} ADD COLUMN mollie_payment_fee decimal(20,4) DEFAULT NULL, "
            "ADD COLUMN mollie_payment_fee_tax decimal(20,4) DEFAULT NULL"
        )
    shop.product("MUG")
    # 10 + 5 shipping + 3.15 tax + 2.00 fee (its 0.42 tax is inside tax_amount) = 20.57
    with_fee = shop.order(items=[{"sku": "MUG", "price": "10.0000"}], mollie_payment_fee=Decimal("2.0000"),
                          mollie_payment_fee_tax=Decimal("0.4200"), tax_amount=Decimal("3.5700"),
                          grand_total=Decimal("20.5700"))  # fmt: skip
    # An extension we do not know put 1.50 into grand_total.
    unknown = shop.order(items=[{"sku": "MUG", "price": "10.0000"}], grand_total=Decimal("19.6500"))
    fee_order, unknown_order = feed.order(with_fee), feed.order(unknown)
    assert fee_order["payment"]["fee"] == {"amount": "2.0000", "tax_amount": "0.4200"}
    assert fee_order["totals"]["unexplained_amount"] == "0.0000"
    assert unknown_order["payment"]["fee"] is None
    assert unknown_order["totals"]["unexplained_amount"] == "1.5000"


def test_discount_passed_through_as_stored(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    oid = shop.order(items=[{"sku": "MUG", "price": "10.0000", "discount_amount": "2.0000"}], discount="2.0000",
                     coupon_code="WELKOM", discount_description="WELKOM")  # fmt: skip
    order = feed.order(oid)
    assert order["discount"] == {"amount": "-2.0000", "description": "WELKOM", "coupon_code": "WELKOM"}
    assert only_line(order)["discount_amount"] == "2.0000"
    assert order["totals"]["unexplained_amount"] == "0.0000"


def test_utf8mb4_round_trip_byte_exact(shop: Shop, feed: Feed) -> None:
    # "Cre\u0300me": a decomposed accent, which must not come back composed (no normalisation anywhere).
    name = "Cre\u0300me brûlée 🍮 Ærøskøbing"
    shop.product("PUD-🍮", name)
    oid = shop.order(items=[{"sku": "PUD-🍮", "name": name}], billing={"firstname": "Zoë", "lastname": "Ñandú 😀",
                     "street": "Straße 1\n🏠"}, customer_note="Bel aan 🔔 — dank je")  # fmt: skip
    order = feed.order(oid)
    line = only_line(order)
    assert line["name"].encode() == name.encode() and line["sku"].encode() == "PUD-🍮".encode()
    assert line["order_sku"] == "PUD-🍮" and line["product_missing"] is False
    assert order["customer"]["name"] == "Zoë Ñandú 😀"
    assert order["billing_address"]["street"] == ["Straße 1", "🏠"]
    assert order["customer_note"] == "Bel aan 🔔 — dank je"


def test_customer_attributes_for_registered_customers(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    cid = shop.customer(
        "b2b@example.nl", attributes={"klantcode": "1042", "kvk_nummer": "12345678", "hobby": "x"}
    )
    empty = shop.customer("leeg@example.nl", attributes={"klantnr": ""})
    numbered = shop.customer("int@example.nl", attributes={"debiteurnr": 77})
    ids = [shop.order(items=[{"sku": "MUG"}], customer=c) for c in (cid, empty, numbered)]
    page = feed.page()
    by_id = {o["id"]: o["customer"]["attributes"] for o in page.orders}
    assert by_id[ids[0]] == {"klantcode": "1042", "kvk_nummer": "12345678"}
    assert by_id[ids[1]] == {}
    assert by_id[ids[2]] == {"debiteurnr": "77"}


def test_payment_title_from_additional_information(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    oid = shop.order(
        items=[{"sku": "MUG"}], payment="checkmo", payment_info={"method_title": "Bank transfer"}
    )
    assert feed.order(oid)["payment"] == {"method": "checkmo", "title": "Bank transfer", "fee": None}


def test_times_read_in_the_session_zone_magento_writes_with(
    shop: Shop,
    granted: GrantedUser,
    mariadb,  # noqa: ANN001
    database: str,
    tmp_path: Path,
) -> None:
    """Through the agent's own connection set-up (config, version detection, session zone), not a test one.

    Magento 1 writes UTC wall-clock text in the MySQL session zone of its PHP (here configured as +02:00);
    Magento 2 always in +00:00, whatever session_time_zone says. Read in the wrong zone, the served times
    would be two hours off and the young order would look settled.
    """
    if shop.version == 1:
        with shop.conn.cursor() as cur:
            cur.execute("SET time_zone = '+02:00'")
    shop.product("MUG")
    now = shop.db_now().replace(microsecond=0)
    settled = shop.order(items=[{"sku": "MUG"}], created_at=now - timedelta(hours=1))
    young = shop.order(items=[{"sku": "MUG"}], created_at=now - timedelta(minutes=5))
    data = config_dict(
        mariadb,
        database,
        tmp_path / "state",
        database={"user": granted.name, "password": granted.password},
        magento={"version": "auto", "table_prefix": shop.prefix, "session_time_zone": "+02:00"},
        settle_seconds=600,
    )
    client = SigningClient(create_app(config_from_dict(data, tmp_path)).test_client())
    answer = client.get("/v1/orders", [("limit", "10")])
    assert answer.status_code == 200, answer.data
    page = answer.get_json()
    assert [o["id"] for o in page["orders"]] == [settled]
    written = (now - timedelta(hours=1)).isoformat() + "Z"
    assert page["orders"][0]["created_at"] == page["orders"][0]["updated_at"] == written
    until = datetime.fromisoformat(page["settled_until"].replace("Z", "+00:00")).replace(tzinfo=None)
    assert abs((until - (now - timedelta(seconds=600))).total_seconds()) < 30
    single = client.get(f"/v1/orders/{young}")
    assert single.get_json()["created_at"] == (now - timedelta(minutes=5)).isoformat() + "Z"
