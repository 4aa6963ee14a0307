"""The feed over HTTP: the agent under real gunicorn, signed requests, 400/404 answers naming what is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
import requests

from agent import protocol
from client.demo.shop import Shop
from tests.client.conftest import AgentServer, MagentoDB

VARIANTS = [(1, ""), (1, "mage_"), (2, ""), (2, "mage_")]
IDS = ["m1", "m1-mage_", "m2", "m2-mage_"]


class Served:
    def __init__(self, shop: Shop, server: AgentServer) -> None:
        self.shop, self.server = shop, server

    def get(
        self, path: str, params: list[tuple[str, str]] | None = None, signed: bool = True
    ) -> requests.Response:
        params = params or []
        headers = (
            protocol.signed_headers(self.server.key_id, self.server.secret, "GET", path, params)
            if signed
            else {}
        )
        return requests.get(self.server.url + path, params=params, headers=headers, timeout=30)

    def orders(self, **params: Any) -> dict[str, Any]:
        answer = self.get("/v1/orders", [(k, str(v)) for k, v in params.items()])
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(params=VARIANTS, ids=IDS)
def served(request: pytest.FixtureRequest, mariadb, database: str, tmp_path: Path) -> Iterator[Served]:  # noqa: ANN001
    version, prefix = request.param
    conn = mariadb.connect(database, cursorclass=pymysql.cursors.DictCursor)
    shop = Shop.install(conn, version, prefix)
    server = AgentServer(MagentoDB(mariadb, database, version, prefix), tmp_path / "agent", workers=1)
    server.start()
    yield Served(shop, server)
    server.stop()
    conn.close()


def test_paging_over_http_serves_each_order_once(served: Served) -> None:
    shop = served.shop
    shop.product("MUG")
    same_second = shop.db_now().replace(microsecond=0)
    ids = [shop.order(items=[{"sku": "MUG"}], created_at=same_second) for _ in range(17)]
    first = served.orders(created_from="2000-01-01T00:00:00Z", limit=7)
    seen = [o["id"] for o in first["orders"]]
    cursor, has_more = first["next_cursor"], first["has_more"]
    while has_more:
        page = served.orders(after=cursor, limit=7)
        seen += [o["id"] for o in page["orders"]]
        cursor, has_more = page["next_cursor"], page["has_more"]
    assert seen == ids
    again = served.orders(after=cursor)
    assert again["orders"] == [] and again["next_cursor"] == cursor and again["has_more"] is False
    assert again["settled_until"].endswith("Z")
    # One order by id is the same document as in the list.
    single = served.get(f"/v1/orders/{ids[3]}")
    assert single.status_code == 200 and single.json() == first["orders"][3]


BAD_PARAMETERS = [
    ([("limit", "0")], "limit"),
    ([("limit", "501")], "limit"),
    ([("limit", "veel")], "limit"),
    ([("after", "x"), ("created_from", "2026-01-01T00:00:00Z")], "after"),
    ([("after", "bm90LWEtY3Vyc29y")], "after"),
    ([("after", "!!")], "after"),
    ([("created_from", "gisteren")], "created_from"),
    ([("created_from", "2026-01-01T00:00:00")], "created_from"),
    ([("created_from", "2026-13-01T00:00:00Z")], "created_from"),
    # Valid ISO-8601, but in UTC before the year 1 or after 9999.
    ([("created_from", "0001-01-01T00:00:00+01:00")], "created_from"),
    ([("created_from", "9999-12-31T23:59:59.5Z")], "created_from"),
    ([("created_from", "9999-12-31T23:30:00-01:00")], "created_from"),
    ([("store", "nergens")], "store"),
]


def test_bad_parameters_answer_400_naming_the_parameter(served: Served) -> None:
    for params, named in BAD_PARAMETERS:
        answer = served.get("/v1/orders", params)
        assert answer.status_code == 400, (params, answer.text)
        assert answer.headers["Content-Type"].startswith("application/json")
        error = answer.json()["error"]
        assert error["code"] == "bad_parameter" and error["message"].startswith(f"{named}:"), (params, error)


def test_unknown_order_is_404_json_and_unsigned_is_401(served: Served) -> None:
    missing = served.get("/v1/orders/999999")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "order_not_found"
    for bad in ("abc", "12345678901", "-1"):
        answer = served.get(f"/v1/orders/{bad}")
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.json()["error"]["message"].startswith("id:"), answer.text
    unsigned = served.get("/v1/orders", signed=False)
    assert unsigned.status_code == 401 and "error" in unsigned.json()


def test_created_from_before_any_possible_order_starts_at_the_beginning(served: Served) -> None:
    # Long before 1970 (when TIMESTAMP columns start): the feed starts at its beginning, and the cursor it
    # hands out for an empty feed can be used for the next call.
    for early in ("0500-01-01T00:00:00Z", "1969-12-31T23:00:00-05:00"):
        empty = served.orders(created_from=early, limit=5)
        assert empty["orders"] == [] and empty["has_more"] is False
        again = served.orders(after=empty["next_cursor"], limit=5)
        assert again["orders"] == [] and again["next_cursor"] == empty["next_cursor"]
    served.shop.product("MUG")
    oid = served.shop.order(items=[{"sku": "MUG"}])
    assert [o["id"] for o in served.orders(after=empty["next_cursor"])["orders"]] == [oid]
    assert [o["id"] for o in served.orders(created_from="0001-01-01T00:00:00Z")["orders"]] == [oid]


def test_utf8mb4_over_http_is_byte_exact(served: Served) -> None:
    shop = served.shop
    name = "Cre\u0300me brûlée 🍮 Ærøskøbing 😀"  # a decomposed accent, 4-byte emoji
    shop.product("PUD-🍮", name)
    oid = shop.order(
        items=[{"sku": "PUD-🍮", "name": name}],
        billing={"firstname": "Zoë", "street": "Straße 1\n🏠"},
        customer_note="Bel aan 🔔",
    )
    item_table, address_table = shop.table("item"), shop.table("address")
    with shop.conn.cursor() as cur:
        cur.execute(f"SELECT HEX(name) AS h FROM {item_table} WHERE order_id = %s", (oid,))
        stored_name = bytes.fromhex(cur.fetchone()["h"])
        cur.execute(
            f"SELECT HEX(street) AS h FROM {address_table} WHERE parent_id = %s AND address_type = 'billing'",
            (oid,),
        )
        stored_street = bytes.fromhex(cur.fetchone()["h"])
    assert stored_name == name.encode("utf-8")  # what MariaDB holds is the UTF-8 of what was written
    answer = served.get(f"/v1/orders/{oid}")
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("application/json")
    order = answer.json()
    assert order["lines"][0]["name"].encode("utf-8") == stored_name
    assert order["lines"][0]["sku"] == "PUD-🍮" and order["customer_note"] == "Bel aan 🔔"
    assert "\n".join(order["billing_address"]["street"]).encode("utf-8") == stored_street
