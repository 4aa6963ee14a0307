"""Shared client-side fixtures: a real agent under gunicorn over a fresh Magento database, a local SnelStart
administration, and a client.yml wiring them together.

Reusable by every client test:

- ``magento_db`` → ``MagentoDB(name, version, prefix, connect())``: a fresh database with koppel's Magento 2
  schema fixture (tables created, seed rows in).
- ``shop`` → ``client.demo.shop.Shop`` over ``magento_db`` to add products, customers and orders.
- ``agent_server`` → ``AgentServer``: gunicorn serving ``agent.wsgi:app`` over ``magento_db`` on a free loopback
  port (settle_seconds 0); ``.client()`` gives a signed ``AgentClient``; ``.stop()`` / ``.start()`` simulate an
  outage. ``AgentServer`` can also be built directly for other databases or settings.
- ``local_admin`` → path of a new local administration with the sample data (``init_local(sample=True)``,
  which includes the 0 % article AFRONDING for rounding differences).
- ``client_config`` → a factory ``client_config(**profile_overrides) -> ClientConfig`` writing client.yml into
  the test's folder (profile "shop", agent + local admin above), deep-merging the overrides into the profile.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from client.agent_client import AgentClient
from tests.mariadb import MariaDB

REPO = Path(__file__).resolve().parents[2]
AGENT_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
AGENT_KEY = "office"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MagentoDB:
    server: MariaDB
    name: str
    version: int = 2
    prefix: str = ""

    def connect(self, **kw: Any):  # noqa: ANN201 - a PyMySQL connection
        return self.server.connect(self.name, **kw)


class AgentServer:
    """A koppel agent under real gunicorn (gthread workers), configured by a generated agent.yml."""

    def __init__(
        self,
        db: MagentoDB,
        workdir: Path,
        *,
        settle_seconds: int = 0,
        workers: int = 2,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key_id, self.secret = AGENT_KEY, AGENT_SECRET
        self.workers = workers
        self.config_path = self.workdir / "agent.yml"
        config: dict[str, Any] = {
            "database": {
                "host": db.server.host,
                "port": db.server.port,
                "name": db.name,
                "user": db.server.user,
                "password": db.server.password,
            },
            "magento": {"version": db.version, "table_prefix": db.prefix},
            "settle_seconds": settle_seconds,
            "state_dir": str(self.workdir / "agent-state"),
            "keys": [
                {
                    "id": self.key_id,
                    "secret": self.secret,
                    "scopes": ["orders:read", "stock:write", "diagnostics:read"],
                }
            ],
        }
        for key, value in (extra or {}).items():
            config[key] = value
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "gunicorn.log"

    def start(self, timeout: float = 60) -> None:
        env = dict(os.environ, KOPPEL_AGENT_CONFIG=str(self.config_path))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.workers),
                    "--worker-class",
                    "gthread",
                    "--threads",
                    "4",
                    "--graceful-timeout",
                    "2",
                    "agent.wsgi:app",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        listening = f"Listening at: http://127.0.0.1:{self.port}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the agent exited at start-up:\n{self.log_path.read_text()[-3000:]}")
            # Another process may have taken the free port between free_port() and gunicorn's bind: only
            # this gunicorn's own "Listening at" line proves the health answer comes from our agent.
            if listening not in self.log_path.read_text(errors="replace"):
                time.sleep(0.1)
                continue
            try:
                if requests.get(self.url + "/v1/health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or too busy starting to answer
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"the agent did not become healthy in {timeout}s:\n{self.log_path.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self, **kw: Any) -> AgentClient:
        return AgentClient(self.url, self.key_id, self.secret, **kw)


@pytest.fixture
def magento_db(mariadb: MariaDB, database: str) -> MagentoDB:
    from client.demo.magento_schema import create_schema

    db = MagentoDB(mariadb, database, version=2, prefix="")
    conn = db.connect()
    try:
        create_schema(conn, 2, "")
    finally:
        conn.close()
    return db


@pytest.fixture
def shop(magento_db: MagentoDB) -> Iterator[Any]:
    """``client.demo.shop.Shop`` over ``magento_db`` (its own autocommit connection)."""
    from client.demo.shop import Shop

    conn = magento_db.connect()
    yield Shop(conn, magento_db.version, magento_db.prefix)
    conn.close()


@pytest.fixture
def agent_server(magento_db: MagentoDB, tmp_path: Path) -> Iterator[AgentServer]:
    server = AgentServer(magento_db, tmp_path / "agent")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def local_admin(tmp_path: Path) -> Path:
    from client.snelstart.local_init import init_local

    path = tmp_path / "administratie.sqlite"
    init_local(path, sample=True)
    return path


def add_rounding_article(path: Path) -> None:
    """AFRONDING in the 0 % omzetgroep, where the cent of VAT rounding differences goes (orders.rounding_article);
    nothing to do for the sample administration, which has it already."""
    from client.snelstart.base import NieuwArtikel
    from client.snelstart.local import LocalBackend

    with LocalBackend(path) as backend:
        if backend.artikelen_by_code("AFRONDING"):
            return
        nul = next(g for g in backend.omzetgroepen() if g.btw_percentage == 0)
        backend.create_artikel(NieuwArtikel("AFRONDING", "Afrondingsverschil", nul.id))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def client_profile(agent_url: str, admin_path: Path, **overrides: Any) -> dict[str, Any]:
    """A complete profile dict for client.yml: the local sample administration's templates and cost articles."""
    profile = {
        "name": "shop",
        "description": "test shop",
        "agent": {"url": agent_url, "key_id": AGENT_KEY, "secret": AGENT_SECRET},
        "magento": {"import_from": "2000-01-01 00:00"},
        "snelstart": {"backend": "local", "path": str(admin_path)},
        "orders": {
            "template": "Webshop",
            "unique_payment_reference": True,
            "shipping_costs": {"line": "VERZEND"},
            "discount": {"line": "KORTING"},
            "payment_costs": {"line": "BETAALKOSTEN"},
            "default_article": "WEBSHOP",
            "rounding_article": "AFRONDING",
        },
        "articles": {"revenue_group": 1, "processing": "add"},
        "customers": {"matching": "smart", "processing": "add"},
    }
    return _merge(profile, overrides)


def write_client_config(folder: Path, profiles: list[dict[str, Any]], **top: Any) -> Path:
    data = {
        "timezone": "Europe/Amsterdam",
        "state": str(folder / "koppel-state.sqlite"),
        "profiles": profiles,
    }
    data.update(top)
    path = folder / "client.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def client_config(agent_server: AgentServer, local_admin: Path, tmp_path: Path) -> Callable[..., Any]:
    from client.config import load_client_config

    def make(**overrides: Any) -> Any:
        path = write_client_config(tmp_path, [client_profile(agent_server.url, local_admin, **overrides)])
        return load_client_config(path)

    return make


def snelstart_orders(admin_path: Path) -> dict[str, int]:
    """betalingskenmerk → number of SnelStart verkooporders carrying it, read straight from the local file."""
    import sqlite3

    conn = sqlite3.connect(f"file:{admin_path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT betalingskenmerk, count(*) FROM verkooporders WHERE betalingskenmerk IS NOT NULL "
            "GROUP BY betalingskenmerk"
        ).fetchall()
    finally:
        conn.close()
    return dict(rows)


def guest(email: str, first: str = "Sanne", last: str = "Visser", **address: Any) -> dict[str, Any]:
    """A billing address for ``Shop.order(billing=...)`` of a guest order."""
    return {
        "firstname": first,
        "lastname": last,
        "street": "Lange Nieuwstraat 4",
        "postcode": "3512 PH",
        "city": "Utrecht",
        "country_id": "NL",
        "telephone": "030-2345678",
        "email": email,
        **address,
    }
