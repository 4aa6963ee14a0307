"""The koppel-agent command: a real gunicorn process serving signed requests, and check / new-key."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from agent import protocol
from agent.config import config_from_dict
from tests.agent.conftest import KEY_ID, SECRET, config_dict, write_config
from tests.mariadb import MariaDB, free_port

AGENT = str(Path(sys.executable).parent / "koppel-agent")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGENT, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def config_file(mariadb: MariaDB, magento2: str, tmp_path: Path) -> Path:
    return write_config(tmp_path / "agent.yml", config_dict(mariadb, magento2, tmp_path / "state"))


@pytest.fixture
def served(config_file: Path, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen(
        [
            AGENT,
            "serve",
            "--config",
            str(config_file),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError("koppel-agent serve exited:\n" + (tmp_path / "gunicorn.log").read_text())
            try:
                requests.get(base + "/v1/health", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError("koppel-agent serve did not answer within 30 s") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def signed_get(base: str, path: str, query: list[tuple[str, str]] | None = None) -> requests.Response:
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", path, query or [])
    return requests.get(base + path, params=query, headers=headers, timeout=10)


def test_serve_answers_health_and_signed_diagnostics(served: str) -> None:
    r = requests.get(served + "/v1/health", timeout=10)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    r = signed_get(served, "/v1/diagnostics")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["magento"]["version"] == 2 and body["orders"]["count"] == 0
    assert requests.get(served + "/v1/diagnostics", timeout=10).status_code == 401


def test_serve_refuses_replays_across_workers(served: str) -> None:
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/diagnostics")
    assert requests.get(served + "/v1/diagnostics", headers=headers, timeout=10).status_code == 200
    # Fresh connections land on either of the two workers; every replay must be refused.
    statuses = {
        requests.get(served + "/v1/diagnostics", headers=headers, timeout=10).status_code for _ in range(8)
    }
    assert statuses == {401}


def test_serve_gives_json_errors(served: str) -> None:
    r = requests.get(served + "/nothing", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = requests.post(served + "/v1/stock", data=b"x" * 30000, timeout=10)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    r = signed_get(served, "/v1/openapi.json")
    assert r.status_code == 200 and r.json()["openapi"].startswith("3.1")


def test_serve_with_a_bad_config_stops_naming_the_key(tmp_path: Path, mariadb: MariaDB) -> None:
    data = config_dict(mariadb, "m", tmp_path / "state", magento={"table_prefix": "mg-"})
    result = run_cli("serve", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert result.returncode != 0
    assert "magento.table_prefix" in result.stderr


def test_check_passes_on_a_good_installation(config_file: Path) -> None:
    result = run_cli("check", "--config", str(config_file))
    assert result.returncode == 0, result.stdout
    assert "magento 2, table prefix ''" in result.stdout
    assert "check passed" in result.stdout


def test_check_reports_a_wrong_prefix(mariadb: MariaDB, magento2: str, tmp_path: Path) -> None:
    data = config_dict(mariadb, magento2, tmp_path / "state", magento={"table_prefix": "shop_"})
    result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert result.returncode == 1
    assert "FAIL  magento:" in result.stdout and "shop_sales_order" in result.stdout


def test_check_reports_an_unreachable_database(mariadb: MariaDB, tmp_path: Path) -> None:
    data = config_dict(mariadb, "m", tmp_path / "state", database={"port": free_port(), "connect_timeout": 2})
    result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert result.returncode == 1 and "FAIL  database: cannot connect" in result.stdout


def test_check_reports_missing_write_privileges(mariadb: MariaDB, magento2: str, tmp_path: Path) -> None:
    user = f"ro_{magento2[-10:]}"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-for-test'")
        cur.execute(f"GRANT SELECT ON `{magento2}`.* TO '{user}'@'%'")
    try:
        data = config_dict(
            mariadb, magento2, tmp_path / "state", database={"user": user, "password": "pw-for-test"}
        )
        result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
        assert result.returncode == 1, result.stdout
        assert "INSERT UPDATE on inventory_source_item" in result.stdout
        # With only reading scopes the same user is enough.
        data["keys"] = [{"id": "office", "secret": SECRET, "scopes": ["orders:read", "diagnostics:read"]}]
        result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
        assert result.returncode == 0, result.stdout
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_check_reports_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "agent.yml").write_text("database: {name: m, user: u}\nkeys: []\nsurprise: 1\n")
    result = run_cli("check", "--config", str(tmp_path / "agent.yml"))
    assert result.returncode == 1 and "surprise: unknown key" in result.stdout


def test_new_key_prints_a_usable_secret_and_snippets(tmp_path: Path) -> None:
    result = run_cli("new-key", "--id", "kantoor", "--scopes", "orders:read", "stock:write")
    assert result.returncode == 0, result.stderr
    secrets = set(re.findall(r'secret: "([^"]+)"', result.stdout))
    assert len(secrets) == 1
    secret = secrets.pop()
    assert len(secret) >= 48 and re.fullmatch(r"[A-Za-z0-9_-]+", secret)
    assert "key_id: kantoor" in result.stdout
    agent_part = result.stdout.split("# client.yml")[0]
    keys = yaml.safe_load(
        "keys:\n" + "\n".join(line for line in agent_part.splitlines() if not line.startswith("#"))
    )
    cfg = config_from_dict({"database": {"name": "m", "user": "u"}, **keys}, tmp_path)
    assert cfg.keys[0].id == "kantoor" and cfg.keys[0].secret == secret
    assert cfg.keys[0].scopes == ["orders:read", "stock:write"]
    assert run_cli("new-key").stdout != result.stdout  # a fresh secret each time


def test_new_key_refuses_an_unknown_scope() -> None:
    result = run_cli("new-key", "--scopes", "orders:write")
    assert result.returncode == 2 and "unknown scope 'orders:write'" in result.stderr


def test_cli_without_a_command_shows_usage() -> None:
    result = run_cli()
    assert result.returncode == 2 and "serve" in result.stderr and "check" in result.stderr


def test_wsgi_module_builds_the_app_from_the_environment(config_file: Path) -> None:
    code = "import agent.wsgi as w; print(sorted(r.rule for r in w.app.url_map.iter_rules())[0])"
    env = {"PATH": "/usr/bin:/bin", "KOPPEL_AGENT_CONFIG": str(config_file)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("/")
    env.pop("KOPPEL_AGENT_CONFIG")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1 and "KOPPEL_AGENT_CONFIG" in result.stderr
