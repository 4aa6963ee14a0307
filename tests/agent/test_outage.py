"""A database outage: the agent answers 503 with Retry-After while it lasts and recovers by itself after."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.app import create_app
from agent.config import config_from_dict
from client.demo.magento_schema import create_schema
from client.demo.shop import Shop
from tests.agent.conftest import SigningClient, config_dict
from tests.mariadb import MariaDB, PrivateMariaDB

pytestmark = pytest.mark.skipif(
    not (shutil.which("mariadbd") or Path("/usr/sbin/mariadbd").exists()),
    reason="needs the mariadbd binary to start a private server",
)


@pytest.fixture(scope="module")
def private() -> Iterator[tuple[PrivateMariaDB, MariaDB]]:
    server = PrivateMariaDB()
    server.start()
    try:
        yield server, server.server()
    finally:
        server.cleanup()


def _agent(private_db: MariaDB, tmp_path: Path) -> SigningClient:
    name = private_db.create_database()
    with private_db.connect(name) as conn:
        create_schema(conn, 2)
        shop = Shop(conn, 2)
        shop.product("MUG")
        shop.order(items=[{"sku": "MUG"}])
    cfg = config_from_dict(
        config_dict(private_db, name, tmp_path / "state", database={"connect_timeout": 2}), tmp_path
    )
    return SigningClient(create_app(cfg).test_client())


def _assert_unavailable(client: SigningClient) -> None:
    health = client.client.get("/v1/health")
    assert (health.status_code, health.get_json()) == (503, {"status": "unavailable"})
    for path in ("/v1/diagnostics", "/v1/orders", "/v1/orders/1"):
        r = client.get(path)
        assert r.status_code == 503, (path, r.data)
        assert r.get_json()["error"]["code"] == "database_unavailable", path
        assert r.headers["Retry-After"] == "30"


def test_outage_gives_503_and_the_agent_recovers(
    private: tuple[PrivateMariaDB, MariaDB], tmp_path: Path
) -> None:
    server, db = private
    client = _agent(db, tmp_path)
    assert client.get("/v1/diagnostics").status_code == 200
    server.stop()
    try:
        _assert_unavailable(client)
        _assert_unavailable(client)  # still down: still a clean 503, nothing cached broken
    finally:
        server.start()
    assert client.client.get("/v1/health").get_json() == {"status": "ok"}
    r = client.get("/v1/diagnostics")
    assert r.status_code == 200, r.data
    assert r.get_json()["magento"]["version"] == 2
    r = client.get("/v1/orders")
    assert r.status_code == 200, r.data
    assert [o["number"] for o in r.get_json()["orders"]] == [client.get("/v1/orders/1").get_json()["number"]]


def test_agent_started_during_an_outage_detects_magento_once_it_is_back(
    private: tuple[PrivateMariaDB, MariaDB], tmp_path: Path
) -> None:
    server, db = private
    client = _agent(db, tmp_path)  # nothing has been asked yet, so Magento is not detected yet
    server.stop()
    try:
        _assert_unavailable(client)
    finally:
        server.start()
    r = client.get("/v1/diagnostics")
    assert r.status_code == 200, r.data
    assert r.get_json()["magento"]["stock_mode"] == "msi"
    assert len(client.get("/v1/orders").get_json()["orders"]) == 1
