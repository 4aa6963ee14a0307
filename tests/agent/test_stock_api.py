"""POST/GET /v1/stock and GET /v1/skus through the real Flask app and signed requests (M2 fixture, MSI).

The agent connects as a database user holding exactly the README's grants.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agent.app import create_app
from agent.config import config_from_dict
from tests.agent.conftest import LIMITED_ID, LIMITED_SECRET, SigningClient, config_dict, make_magento
from tests.agent.grants import GrantedUser
from tests.agent.test_stock import StockShop
from tests.mariadb import MariaDB

D = Decimal


@pytest.fixture
def shop(mariadb: MariaDB, database: str) -> Iterator[StockShop]:
    make_magento(mariadb, database, 2)
    built = StockShop(mariadb.connect(database), 2, "", GrantedUser(mariadb, database, 2, ""))
    yield built
    built.close()


def agent_data(
    mariadb: MariaDB, shop: StockShop, database: str, tmp_path: Path, **overrides: Any
) -> dict[str, Any]:
    """config_dict for an agent that logs in as the shop's granted user."""
    assert shop.granted is not None
    login = {"user": shop.granted.name, "password": shop.granted.password}
    return config_dict(mariadb, database, tmp_path / "state", database=login, **overrides)


@pytest.fixture
def client(mariadb: MariaDB, shop: StockShop, database: str, tmp_path: Path) -> SigningClient:
    cfg = config_from_dict(agent_data(mariadb, shop, database, tmp_path), tmp_path)
    return SigningClient(create_app(cfg).test_client())


def body(request_id: Any, items: Any) -> bytes:
    return json.dumps({"request_id": request_id, "items": items}).encode()


def error_of(response: Any) -> tuple[int, str, str]:
    err = response.get_json()["error"]
    return response.status_code, err["code"], err["message"]


def test_push_answers_per_item_and_writes(client: SigningClient, shop: StockShop) -> None:
    shop.product("A", qty=1, in_stock=1, source_qty=1)
    shop.product("B", qty=0, in_stock=0, source_qty=0)
    r = client.post(
        "/v1/stock", body("req-1", [{"sku": "A", "qty": "5"}, {"sku": "B", "qty": 0}, {"sku": "Z", "qty": 1}])
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    answer = r.get_json()
    assert answer == {
        "request_id": "req-1",
        "results": [
            {"sku": "A", "status": "updated", "qty": "5.0000", "in_stock": True, "message": None},
            {"sku": "B", "status": "unchanged", "qty": "0.0000", "in_stock": False, "message": None},
            {"sku": "Z", "status": "unknown_sku", "qty": None, "in_stock": None, "message": None},
        ],
        "counts": {"updated": 1, "unchanged": 1, "unknown_sku": 1, "not_managed": 0, "invalid": 0},
    }
    assert shop.source("A") == (D(5), 1)


def test_fractional_json_numbers_are_exact(client: SigningClient, shop: StockShop) -> None:
    shop.product("F", source_qty=0)
    r = client.post("/v1/stock", b'{"request_id": "f", "items": [{"sku": "F", "qty": 0.1}]}')
    assert r.get_json()["results"][0]["qty"] == "0.1000"
    assert shop.source("F") == (D("0.1"), 1)


def test_same_request_again_returns_the_stored_answer_and_writes_nothing(
    client: SigningClient, shop: StockShop
) -> None:
    a = shop.product("A", qty=1, in_stock=1, source_qty=1)
    first = client.post("/v1/stock", body("again", [{"sku": "A", "qty": 4}]))
    assert first.status_code == 200
    # Someone changes the stock in Magento afterwards; a replay must not overwrite it.
    shop.run(f"UPDATE {shop.t('inventory_source_item')} SET quantity = 99")
    shop.run(f"UPDATE {shop.t('cataloginventory_stock_item')} SET qty = 99 WHERE product_id = %s", (a,))
    replay = client.post(
        "/v1/stock", json.dumps({"items": [{"sku": "A", "qty": 4}], "request_id": "again"}).encode()
    )
    assert replay.status_code == 200
    assert replay.get_json() == first.get_json()
    assert shop.source("A") == (D(99), 1)
    assert shop.item(a)["qty"] == D(99)


def test_the_request_ledger_outlives_the_process(
    mariadb: MariaDB, shop: StockShop, database: str, tmp_path: Path
) -> None:
    """The ledger is the agent's state on disk: a restarted agent (or another worker) replays, never rewrites."""
    a = shop.product("A", qty=1, in_stock=1, source_qty=1)
    data = agent_data(mariadb, shop, database, tmp_path)
    first = SigningClient(create_app(config_from_dict(data, tmp_path)).test_client())
    answer = first.post("/v1/stock", body("ledger", [{"sku": "A", "qty": 6}]))
    assert answer.status_code == 200 and shop.source("A") == (D(6), 1)
    shop.run(f"UPDATE {shop.t('inventory_source_item')} SET quantity = 99")
    shop.run(f"UPDATE {shop.t('cataloginventory_stock_item')} SET qty = 99 WHERE product_id = %s", (a,))
    assert list((tmp_path / "state").iterdir()), "the ledger lives in state_dir"
    restarted = SigningClient(create_app(config_from_dict(data, tmp_path)).test_client())
    replay = restarted.post("/v1/stock", body("ledger", [{"sku": "A", "qty": 6}]))
    assert replay.status_code == 200 and replay.get_json() == answer.get_json()
    assert shop.source("A") == (D(99), 1) and shop.item(a)["qty"] == D(99)
    status, code, _message = error_of(restarted.post("/v1/stock", body("ledger", [{"sku": "A", "qty": 7}])))
    assert (status, code) == (409, "request_id_conflict")
    assert shop.source("A") == (D(99), 1)


def test_same_request_id_with_another_body_is_a_conflict(client: SigningClient, shop: StockShop) -> None:
    shop.product("A", source_qty=1, in_stock=1)
    assert client.post("/v1/stock", body("dup-id", [{"sku": "A", "qty": 4}])).status_code == 200
    r = client.post("/v1/stock", body("dup-id", [{"sku": "A", "qty": 5}]))
    status, code, message = error_of(r)
    assert (status, code) == (409, "request_id_conflict") and "dup-id" in message
    assert shop.source("A") == (D(4), 1)


def test_too_many_items_is_refused_before_writing(client: SigningClient, shop: StockShop) -> None:
    shop.product("A", source_qty=1, in_stock=1)
    items = [{"sku": "A", "qty": 7}] + [{"sku": f"X{i}", "qty": 1} for i in range(100)]  # limit is 100
    before = shop.snapshot()
    status, code, message = error_of(client.post("/v1/stock", body("big", items)))
    assert (status, code) == (422, "too_many_items") and "100" in message
    assert shop.snapshot() == before
    # Nothing was remembered either: the id can be used for a proper push.
    assert client.post("/v1/stock", body("big", [{"sku": "A", "qty": 7}])).status_code == 200


def test_too_large_a_body_is_refused_before_writing(client: SigningClient, shop: StockShop) -> None:
    shop.product("A", source_qty=1, in_stock=1)
    items = [{"sku": "A", "qty": 7, "padding": "x" * 25000}]  # max_body_bytes is 20000
    before = shop.snapshot()
    r = client.post("/v1/stock", body("huge", items))
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "body_too_large"
    assert shop.snapshot() == before


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"request_id": "x", "items": [', "JSON"),
        (b"[1, 2]", "object"),
        (b'{"items": []}', "request_id"),
        (b'{"request_id": "", "items": []}', "request_id"),
        (b'{"request_id": 12, "items": []}', "request_id"),
        (b'{"request_id": "x"}', "items"),
        (b'{"request_id": "x", "items": {"sku": "A"}}', "items"),
    ],
)
def test_malformed_requests_are_400_naming_the_field(
    client: SigningClient, shop: StockShop, raw: bytes, field: str
) -> None:
    status, _code, message = error_of(client.post("/v1/stock", raw))
    assert status == 400 and field in message


def test_invalid_items_do_not_block_the_rest(client: SigningClient, shop: StockShop) -> None:
    shop.product("OK", source_qty=0)
    items = [{"sku": "OK", "qty": 3}, {"sku": "OK2", "qty": -2}, {"sku": 5, "qty": 1}, None]
    answer = client.post("/v1/stock", body("mixed", items)).get_json()
    assert [r["status"] for r in answer["results"]] == ["updated", "invalid", "invalid", "invalid"]
    assert answer["results"][2]["sku"] == 5 and answer["results"][3]["sku"] is None
    assert shop.source("OK") == (D(3), 1)


def test_get_stock_in_the_order_asked(client: SigningClient, shop: StockShop) -> None:
    shop.product("A", qty=8, in_stock=1, source_qty=8)
    shop.reservation("A", "-3")
    r = client.get("/v1/stock", [("sku", "NOPE"), ("sku", "a")])
    assert r.status_code == 200
    assert r.get_json() == {
        "items": [
            {"sku": "NOPE", "qty": None, "in_stock": None, "salable_qty": None, "managed": None},
            {"sku": "a", "qty": "8.0000", "in_stock": True, "salable_qty": "5.0000", "managed": True},
        ]
    }
    status, code, message = error_of(client.get("/v1/stock"))
    assert (status, code) == (400, "bad_parameter") and message.startswith("sku")


def test_skus_are_paged_with_a_cursor(client: SigningClient, shop: StockShop) -> None:
    for n in range(5):
        shop.product(f"S-{n}", type_id="configurable" if n == 2 else "simple")
    seen: list[tuple[str, bool]] = []
    query: list[tuple[str, str]] = [("limit", "2")]
    for _ in range(5):
        page = client.get("/v1/skus", query).get_json()
        seen += [(s["sku"], s["managed"]) for s in page["skus"]]
        query = [("limit", "2"), ("after", page["next_cursor"])]
        if not page["has_more"]:
            break
    assert seen == [("S-0", True), ("S-1", True), ("S-2", False), ("S-3", True), ("S-4", True)]
    last = client.get("/v1/skus", query).get_json()
    assert last["skus"] == [] and last["next_cursor"] == query[1][1] and last["has_more"] is False
    status, _code, message = error_of(client.get("/v1/skus", [("after", "!!not-a-cursor")]))
    assert status == 400 and message.startswith("after")


def test_stock_endpoints_need_the_stock_scope(
    mariadb: MariaDB, shop: StockShop, database: str, tmp_path: Path
) -> None:
    data = agent_data(mariadb, shop, database, tmp_path)
    data["keys"] = [
        {"id": "reader", "secret": "r" * 40, "scopes": ["orders:read"]},
        {"id": LIMITED_ID, "secret": LIMITED_SECRET, "scopes": ["stock:write"]},
    ]
    app = create_app(config_from_dict(data, tmp_path))
    reader = SigningClient(app.test_client(), "reader", "r" * 40)
    assert reader.post("/v1/stock", body("s", [])).status_code == 403
    assert reader.get("/v1/skus").status_code == 403
    writer = SigningClient(app.test_client(), LIMITED_ID, LIMITED_SECRET)
    assert writer.post("/v1/stock", body("s", [])).get_json()["counts"]["updated"] == 0


def test_a_missing_msi_source_is_named_and_nothing_is_written(
    mariadb: MariaDB, shop: StockShop, database: str, tmp_path: Path
) -> None:
    shop.product("A", qty=1, in_stock=1, source_qty=1)
    data = agent_data(mariadb, shop, database, tmp_path, magento={"msi_source": "gone"})
    client = SigningClient(create_app(config_from_dict(data, tmp_path)).test_client())
    before = shop.snapshot()
    status, code, message = error_of(client.post("/v1/stock", body("src", [{"sku": "A", "qty": 3}])))
    # Not a 5xx: the client would retry ("try again later") what only a change of agent.yml can fix.
    assert (status, code) == (409, "magento_setup"), message
    assert message.startswith(
        "stock was not touched: MSI source 'gone' (magento.msi_source in agent.yml) does not exist in Magento, "
        "whose sources are: 'default'; set magento.msi_source in agent.yml to one of them"
    )
    assert shop.snapshot() == before
    # The refusal did not use up the request id: once agent.yml is fixed, the same push goes through.
    data["magento"]["msi_source"] = "default"
    fixed = SigningClient(create_app(config_from_dict(data, tmp_path)).test_client())
    answer = fixed.post("/v1/stock", body("src", [{"sku": "A", "qty": 3}]))
    assert answer.status_code == 200 and answer.get_json()["counts"]["updated"] == 1
