"""Fixtures for the agent's own tests: a Magento schema in a fresh database, an agent.yml, a signing client."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient

from agent.app import create_app
from agent.config import AgentConfig, config_from_dict
from agent.protocol import signed_headers
from client.demo.magento_schema import create_schema
from tests.mariadb import MariaDB

KEY_ID = "office"
SECRET = "s3cret-for-tests-only-0123456789abcdef"
LIMITED_ID = "stockonly"
LIMITED_SECRET = "another-secret-for-tests-0123456789abcdef"
ALL_SCOPES = ["orders:read", "stock:write", "diagnostics:read"]


def config_dict(mariadb: MariaDB, db_name: str, state_dir: Path, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "database": {"host": mariadb.host, "port": mariadb.port, "name": db_name, "user": mariadb.user},
        "magento": {"version": "auto", "table_prefix": ""},
        "settle_seconds": 0,
        "state_dir": str(state_dir),
        "keys": [
            {"id": KEY_ID, "secret": SECRET, "scopes": list(ALL_SCOPES)},
            {"id": LIMITED_ID, "secret": LIMITED_SECRET, "scopes": ["stock:write"]},
        ],
        "limits": {"max_page_size": 50, "max_stock_items": 100, "max_body_bytes": 20000},
    }
    for section, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **value}
        else:
            data[section] = value
    return data


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def make_magento(mariadb: MariaDB, database: str, version: int, prefix: str = "") -> None:
    with mariadb.connect(database) as conn:
        create_schema(conn, version, prefix)


@pytest.fixture
def magento2(mariadb: MariaDB, database: str) -> str:
    """A database holding koppel's Magento 2 schema fixture, no prefix."""
    make_magento(mariadb, database, 2)
    return database


@pytest.fixture
def agent_config(mariadb: MariaDB, magento2: str, tmp_path: Path) -> AgentConfig:
    return config_from_dict(config_dict(mariadb, magento2, tmp_path / "state"), tmp_path)


@pytest.fixture
def bare_config(mariadb: MariaDB, database: str, tmp_path: Path) -> AgentConfig:
    """A config over an empty database: enough for everything that does not read Magento."""
    return config_from_dict(config_dict(mariadb, database, tmp_path / "state"), tmp_path)


@pytest.fixture
def app(agent_config: AgentConfig) -> Flask:
    return create_app(agent_config)


class SigningClient:
    """Flask test client that signs every request like the koppel client does."""

    def __init__(self, client: FlaskClient, key_id: str = KEY_ID, secret: str = SECRET) -> None:
        self.client = client
        self.key_id = key_id
        self.secret = secret

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        **sign_kw: Any,
    ) -> Any:
        signed = signed_headers(self.key_id, self.secret, method, path, query or [], body, **sign_kw)
        signed.update(headers or {})
        return self.client.open(
            path,
            method=method,
            query_string=query or [],
            data=body,
            headers=signed,
            content_type="application/json" if body else None,
        )

    def get(self, path: str, query: list[tuple[str, str]] | None = None, **kw: Any) -> Any:
        return self.request("GET", path, query, **kw)

    def post(self, path: str, body: bytes, **kw: Any) -> Any:
        return self.request("POST", path, None, body, **kw)


@pytest.fixture
def signing(app: Flask) -> Iterator[Callable[..., SigningClient]]:
    def make(key_id: str = KEY_ID, secret: str = SECRET) -> SigningClient:
        return SigningClient(app.test_client(), key_id, secret)

    yield make


@pytest.fixture
def restricted(mariadb: MariaDB) -> Iterator[tuple[str, str, str]]:
    """A fresh user (name, password, 'name'@'host' as the server sees this machine); dropped afterwards."""
    name = f"koppel_g_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT SUBSTRING_INDEX(USER(), '@', -1)")
        host = cur.fetchone()[0]
        account = f"'{name}'@'{host}'"
        cur.execute(f"CREATE USER {account} IDENTIFIED BY %s", (password,))
    yield name, password, account
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS {account}")
