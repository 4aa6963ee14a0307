"""What the agent does when its database user lacks grants: MSI found anyway, stock refused, clear errors.

Every test runs as a real MariaDB user holding the README's grants (or a stated part of them).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pymysql
import pytest
import yaml

from agent import web
from agent.app import create_app
from agent.cli import run_check
from agent.config import ConfigError, config_from_dict, load_config
from agent.db import DatabaseUnavailable, connect, detect, needed_tables
from client.demo.shop import Shop
from tests.agent.conftest import SigningClient, config_dict
from tests.agent.grants import grant_statements
from tests.agent.test_stock import StockShop
from tests.mariadb import MariaDB

PREFIX = "m_"
ROOT = Path(__file__).resolve().parents[2]


def grant(root: pymysql.connections.Connection, statements: list[str]) -> None:
    with root.cursor() as cur:
        for statement in statements:
            cur.execute(statement)


def restricted_config(
    mariadb: MariaDB, database: str, tmp_path: Path, user: tuple[str, str, str], **magento: Any
) -> tuple[Path, dict[str, Any]]:
    name, password, _ = user
    data = config_dict(
        mariadb,
        database,
        tmp_path / "state",
        database={"user": name, "password": password},
        magento={"table_prefix": PREFIX, **magento},
    )
    path = tmp_path / "agent.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path, data


def msi_shop(root: pymysql.connections.Connection) -> StockShop:
    Shop.install(root, 2, PREFIX, parts=("core", "stock"))
    shop = StockShop(root, 2, PREFIX)
    shop.product("MUG", qty=5, in_stock=1, source_qty=5)
    root.commit()
    return shop


def push(client: SigningClient, request_id: str) -> Any:
    body = {"request_id": request_id, "items": [{"sku": "MUG", "qty": 2}]}
    return client.post("/v1/stock", json.dumps(body).encode())


def test_msi_without_its_grants_is_still_msi_and_stock_is_refused(
    mariadb: MariaDB,
    database: str,
    tmp_path: Path,
    restricted: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = mariadb.connect(database)
    shop = msi_shop(root)
    account = restricted[2]
    # Exactly the Magento 2 grants without the MSI block: what a user has who followed a check run that
    # believed the shop was legacy.
    grant(root, grant_statements(2, database, PREFIX, account, schedule=False, msi=False))
    config_file, data = restricted_config(mariadb, database, tmp_path, restricted)
    cfg = config_from_dict(data, tmp_path)

    with connect(cfg) as conn:
        found = detect(conn, cfg)
    assert found.stock_mode == "msi"
    assert found.stock_problem and f"{PREFIX}inventory_source_item" in found.stock_problem

    said: list[str] = []
    assert run_check(config_file, said.append) == 1
    assert "check passed" not in said
    assert any(line.startswith("FAIL  stock: Magento's MSI is installed") for line in said), said
    [tables] = [line for line in said if line.startswith("FAIL  tables missing")]
    assert f"SELECT, INSERT, UPDATE on {PREFIX}inventory_source_item" in tables
    assert f"SELECT on {PREFIX}inventory_reservation" in tables

    client = SigningClient(create_app(cfg).test_client())
    before = shop.snapshot()
    refused = push(client, "no-msi-grants")
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "magento_setup" and "inventory_source_item" in error["message"]
    assert shop.snapshot() == before  # neither the legacy item nor the source item was written
    assert client.get("/v1/stock", [("sku", "MUG")]).get_json()["error"]["code"] == "magento_setup"
    diagnostics = client.get("/v1/diagnostics").get_json()
    assert diagnostics["magento"]["stock_mode"] == "msi"
    assert any(w.startswith("stock cannot be written: Magento's MSI") for w in diagnostics["warnings"])
    assert client.get("/v1/orders").status_code == 200  # orders still flow

    # The grants arrive; the running agent picks them up at its next detection, without a restart.
    grant(root, grant_statements(2, database, PREFIX, account, schedule=False, msi=True))
    monkeypatch.setattr(web, "REDETECT_SECONDS", 0)
    pushed = push(client, "with-msi-grants")
    assert pushed.status_code == 200, pushed.get_data(as_text=True)
    assert shop.source("MUG")[0] == 2
    root.close()


def test_unreadable_setup_module_refuses_stock_instead_of_guessing_legacy(
    mariadb: MariaDB, database: str, tmp_path: Path, restricted: tuple[str, str, str]
) -> None:
    root = mariadb.connect(database)
    shop = msi_shop(root)
    statements = grant_statements(2, database, PREFIX, restricted[2], schedule=False, msi=False)
    grant(root, [s for s in statements if "setup_module" not in s])
    config_file, data = restricted_config(mariadb, database, tmp_path, restricted)
    cfg = config_from_dict(data, tmp_path)
    with connect(cfg) as conn:
        found = detect(conn, cfg)
    assert found.stock_problem and "setup_module" in found.stock_problem
    said: list[str] = []
    assert run_check(config_file, said.append) == 1
    assert any("cannot tell whether Magento's MSI is installed" in line for line in said), said

    before = shop.snapshot()
    refused = push(SigningClient(create_app(cfg).test_client()), "unknown-msi")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "magento_setup"
    assert shop.snapshot() == before
    root.close()


def test_missing_customer_grant_fails_check_and_the_feed_says_why(
    mariadb: MariaDB,
    database: str,
    tmp_path: Path,
    restricted: tuple[str, str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    root = mariadb.connect(database)
    shop = Shop.install(root, 2, PREFIX, parts=("core", "stock"))
    customer = shop.customer(email="jan@example.nl", attributes={"klantcode": "1042"})
    shop.order(items=[{"sku": "MUG", "qty": 1, "price": "7.50"}], customer=customer)
    root.commit()
    statements = grant_statements(2, database, PREFIX, restricted[2], schedule=False)
    grant(root, [s for s in statements if "customer_entity_int`" not in s])
    config_file, data = restricted_config(mariadb, database, tmp_path, restricted)

    said: list[str] = []
    assert run_check(config_file, said.append) == 1
    assert any("SELECT on m_customer_entity_int" in line for line in said), said

    client = SigningClient(create_app(config_from_dict(data, tmp_path)).test_client())
    caplog.set_level(logging.WARNING, logger="koppel.agent")
    feed = client.get("/v1/orders", [("created_from", "2000-01-01T00:00:00Z")])
    assert feed.status_code == 500
    error = feed.get_json()["error"]
    assert error["code"] == "database_privileges"
    assert "m_customer_entity_int" in error["message"] and "koppel-agent check" in error["message"]
    assert [r for r in caplog.records if "privilege" in r.getMessage()]
    assert not [r for r in caplog.records if r.exc_info], "a privilege error is no crash: no traceback"
    root.close()


@pytest.mark.parametrize(("version", "prefix"), [(1, ""), (2, PREFIX)], ids=["m1", "m2-msi"])
def test_check_knows_every_table_the_feed_and_stock_calls_use(
    mariadb: MariaDB,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    version: int,
    prefix: str,
) -> None:
    root = mariadb.connect(database)
    shop = Shop.install(root, version, prefix, parts=("core", "stock"))
    stock_shop = StockShop(root, version, prefix)
    parent = stock_shop.product("TEE", type_id="configurable", qty=0, in_stock=1)
    child = stock_shop.product("TEE-S", qty=1, in_stock=1, source_qty=1 if version == 2 else None)
    stock_shop.link(parent, [child])
    stock_shop.product("NEW", stock_item=False)
    customer = shop.customer(attributes={"klantcode": "7", "kvk": 12345678})
    order_id = shop.order(items=[{"sku": "TEE-S", "qty": 1, "price": "10.00"}], customer=customer)
    root.commit()
    data = config_dict(mariadb, database, tmp_path / "state", magento={"table_prefix": prefix})
    cfg = config_from_dict(data, tmp_path)

    # Tables as the database sees them: every table named in every statement the agent runs.
    used: set[str] = set()
    original = pymysql.cursors.Cursor.execute

    def recording(self: pymysql.cursors.Cursor, query: str | bytes | bytearray, args: Any = None) -> int:
        text = bytes(query).decode("utf-8", "replace") if not isinstance(query, str) else query  # executemany
        used.update(
            re.findall(rf"(?:FROM|JOIN|INTO|(?<!KEY )UPDATE)\s+`{prefix}([a-z0-9_]+)`", text, flags=re.I)
        )
        return original(self, query, args)

    monkeypatch.setattr(pymysql.cursors.Cursor, "execute", recording)
    client = SigningClient(create_app(cfg).test_client())
    feed = client.get("/v1/orders", [("created_from", "2000-01-01T00:00:00Z"), ("store", "default")])
    assert feed.status_code == 200 and feed.get_json()["orders"][0]["customer"]["attributes"]
    assert client.get(f"/v1/orders/{order_id}").status_code == 200
    items = [{"sku": "TEE-S", "qty": 0}, {"sku": "NEW", "qty": 1}]
    assert (
        client.post("/v1/stock", json.dumps({"request_id": "r", "items": items}).encode()).status_code == 200
    )
    assert client.get("/v1/stock", [("sku", "TEE")]).status_code == 200
    assert client.get("/v1/skus").status_code == 200

    with connect(cfg) as conn:
        magento = detect(conn, cfg)
    needed = needed_tables(magento, {"orders:read", "stock:write"})
    # Changelog tables are optional (README: only with Update by Schedule); everything else must be listed.
    assert {"customer_entity_int", "cataloginventory_stock_item", "catalog_product_entity"} <= used
    unlisted = {t for t in used if not t.endswith("_cl")} - set(needed)
    assert not unlisted, f"tables used but unknown to `koppel-agent check`: {sorted(unlisted)}"
    root.close()


# --- the command line: broken pipes, config errors, the unix socket ------------------------------------------


def test_a_closed_pipe_is_no_state_dir_problem(tmp_path: Path, mariadb: MariaDB, database: str) -> None:
    config_file = tmp_path / "agent.yml"
    config_file.write_text(
        yaml.safe_dump(config_dict(mariadb, database, tmp_path / "state")), encoding="utf-8"
    )
    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if len(said) > 1:  # the reader went away after the first line (`| head -1`)
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(BrokenPipeError):
        run_check(config_file, say)
    assert not [line for line in said if "FAIL" in line], said


def test_cli_is_quiet_on_a_broken_pipe(tmp_path: Path, mariadb: MariaDB, database: str) -> None:
    config_file = tmp_path / "agent.yml"
    config_file.write_text(
        yaml.safe_dump(config_dict(mariadb, database, tmp_path / "state")), encoding="utf-8"
    )
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the first write fails with EPIPE
    try:
        result = subprocess.run(
            [sys.executable, "-m", "agent.cli", "check", "--config", str(config_file)],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == "", result.stderr


def test_agent_yml_errors_name_file_and_line_in_one_sentence(tmp_path: Path) -> None:
    bad_indent = tmp_path / "indent.yml"
    bad_indent.write_text("database:\n  name: m\n  user: u\n password: x\nkeys: []\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(bad_indent)
    message = str(info.value)
    assert message.startswith(f"{bad_indent} line 4") and "not valid YAML" in message
    assert "\n" not in message and "^" not in message

    bad_value = tmp_path / "value.yml"
    bad_value.write_text(
        "database:\n  name: m\n  user: u\nmagento:\n  table_prefix: 'mg-'\nkeys:\n"
        "  - id: office\n    secret: short\n    scopes: [orders:read]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad_value)
    message = str(info.value)
    assert message.startswith(f"{bad_value} line 5: magento.table_prefix: may hold only")
    assert "line 8: keys[0].secret: too short" in message and "\n" not in message

    missing_env = tmp_path / "env.yml"
    missing_env.write_text(
        "database:\n  name: m\n  user: u\n  password_env: KOPPEL_TEST_SURELY_UNSET\nkeys: []\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"env\.yml line 4: database\.password_env: environment variable"):
        load_config(missing_env)


def test_a_wrong_unix_socket_is_named(tmp_path: Path) -> None:
    socket = tmp_path / "no-such-mysqld.sock"
    data = {
        "database": {"name": "m", "user": "u", "unix_socket": str(socket), "connect_timeout": 2},
        "keys": [{"id": "office", "secret": "s" * 40, "scopes": ["orders:read"]}],
    }
    with pytest.raises(DatabaseUnavailable) as info:
        connect(config_from_dict(data, tmp_path))
    message = str(info.value)
    assert f"unix socket {socket}" in message and "127.0.0.1" not in message
