"""The koppel-agent command: a real gunicorn process serving signed requests, and check / new-key."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml

from agent import cli, protocol
from agent.app import DRAIN_SECONDS
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
    with serve(config_file, tmp_path) as base:
        yield base


@contextmanager
def serve(config_file: Path, tmp_path: Path) -> Iterator[str]:
    """`koppel-agent serve` on a free port until the caller is done; its output is in tmp_path/gunicorn.log."""
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


def test_serve_warns_once_about_a_database_it_cannot_use_and_starts_anyway(
    mariadb: MariaDB, magento2: str, tmp_path: Path, restricted: tuple[str, str, str]
) -> None:
    user, password, _ = restricted
    data = config_dict(
        mariadb, magento2, tmp_path / "state", database={"user": user, "password": password + "-wrong"}
    )
    with serve(write_config(tmp_path / "agent.yml", data), tmp_path) as base:
        r = requests.get(base + "/v1/health", timeout=10)
        assert (r.status_code, r.json()) == (503, {"status": "unavailable"})
        r = signed_get(base, "/v1/orders")
        assert r.status_code == 503 and "refused the login of user" in r.json()["error"]["message"]
    output = (tmp_path / "gunicorn.log").read_text()
    warnings = [line for line in output.splitlines() if line.startswith("koppel-agent: warning:")]
    assert len(warnings) == 1, output
    assert f"as {user!r}: Access denied for user {user!r}" in warnings[0]
    assert warnings[0].endswith(
        "check database.user and database.password in agent.yml; starting anyway, signed calls are answered "
        "with 503 until the database can be used"
    )
    assert password not in output


def test_serve_says_nothing_about_a_database_it_can_use(config_file: Path, tmp_path: Path) -> None:
    with serve(config_file, tmp_path) as base:
        assert requests.get(base + "/v1/health", timeout=10).status_code == 200
    assert "warning" not in (tmp_path / "gunicorn.log").read_text().lower()


def test_serve_on_a_port_in_use_says_so_in_one_line(config_file: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        started = time.monotonic()
        result = run_cli("serve", "--config", str(config_file), "--bind", bind)
    assert result.returncode == 1 and time.monotonic() - started < 5  # gunicorn alone retries for 5 s
    assert result.stderr == (
        f"koppel-agent: --bind {bind}: another program listens there already (a koppel-agent still "
        "running?); stop it or choose another port\n"
    )


def test_check_names_a_wrong_password_and_the_keys_to_fix(
    mariadb: MariaDB, magento2: str, tmp_path: Path, restricted: tuple[str, str, str]
) -> None:
    user, password, _ = restricted
    data = config_dict(mariadb, magento2, tmp_path / "state", database={"user": user, "password": "nope"})
    result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert result.returncode == 1
    line = next(line for line in result.stdout.splitlines() if line.startswith("FAIL  database:"))
    assert "Access denied" in line and line.endswith("check database.user and database.password in agent.yml")
    assert result.stdout.endswith(f"{line}\ncheck failed: 1 problem(s)\n"), result.stdout


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
    assert result.stdout.endswith("\ncheck failed: 1 problem(s)\n"), result.stdout


def test_check_reports_an_unreachable_database(mariadb: MariaDB, tmp_path: Path) -> None:
    data = config_dict(mariadb, "m", tmp_path / "state", database={"port": free_port(), "connect_timeout": 2})
    result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert result.returncode == 1 and "FAIL  database: cannot connect" in result.stdout
    assert result.stdout.endswith("\ncheck failed: 1 problem(s)\n"), result.stdout


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
    assert result.stdout.startswith("FAIL  config ") and result.stdout.endswith(
        "\ncheck failed: 1 problem(s)\n"
    )


def test_check_without_a_config_is_wrong_use(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KOPPEL_AGENT_CONFIG"}
    result = subprocess.run([AGENT, "check"], capture_output=True, text=True, timeout=60, env=env)
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == "koppel-agent check: give --config FILE or set KOPPEL_AGENT_CONFIG\n"
    missing = run_cli("check", "--config", str(tmp_path / "absent.yml"))  # a file given, but not there
    assert missing.returncode == 1 and missing.stdout.endswith("\ncheck failed: 1 problem(s)\n"), missing


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


# --- no traceback, whatever the input ---------------------------------------------------------------


def test_a_latin1_config_gets_one_sentence_from_check_and_serve(tmp_path: Path, mariadb: MariaDB) -> None:
    path = tmp_path / "agent.yml"
    text = yaml.safe_dump(config_dict(mariadb, "m", tmp_path / "state"), sort_keys=False)
    path.write_bytes(("# agent for the café\n" + text).encode("latin-1"))
    expected = f"{path} line 1, column 20: a character that is not UTF-8 (Latin-1 or Windows-1252?); save the file as UTF-8"
    check = run_cli("check", "--config", str(path))
    assert check.returncode == 1 and check.stderr == ""
    assert check.stdout == f"FAIL  config {expected}\ncheck failed: 1 problem(s)\n"
    serve = run_cli("serve", "--config", str(path))
    assert serve.returncode == 1 and serve.stderr == f"koppel-agent: {expected}\n"
    path.write_text("# agent for the café\n" + text, encoding="utf-16")
    serve = run_cli("serve", "--config", str(path))
    assert serve.returncode == 1, serve.stderr
    assert serve.stderr == f"koppel-agent: {path}: the file is saved as UTF-16; save it as UTF-8\n"


def test_a_latin1_password_file_gets_one_sentence(tmp_path: Path, mariadb: MariaDB) -> None:
    (tmp_path / "db.pw").write_bytes("wachtwoord-ä\n".encode("latin-1"))
    data = config_dict(mariadb, "m", tmp_path / "state")
    data["database"]["password_file"] = "db.pw"
    for command, closing in (("check", "check failed: 1 problem(s)\n"), ("serve", "")):
        result = run_cli(command, "--config", str(write_config(tmp_path / "agent.yml", data)))
        output = result.stdout + result.stderr
        assert result.returncode == 1 and "Traceback" not in output, output
        assert f"database.password_file: file {tmp_path / 'db.pw'} line 1, column 12" in output
        assert output.endswith("save the file as UTF-8\n" + closing), output
        assert output.count("\n") == 1 + closing.count("\n"), output


def test_an_unexpected_error_is_one_line_unless_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def broken(path: Path, say: object) -> int:
        raise RuntimeError("the disk fell off")

    monkeypatch.setattr(cli, "run_check", broken)
    assert cli.main(["check", "--config", str(tmp_path / "agent.yml")]) == 1
    err = capsys.readouterr().err
    assert err == (
        "koppel-agent check: unexpected error: RuntimeError: the disk fell off "
        "(run it again with --debug for the details)\n"
    )
    for argv in (["--debug", "check"], ["check", "--debug"]):
        with pytest.raises(RuntimeError, match="the disk fell off"):
            cli.main([*argv, "--config", str(tmp_path / "agent.yml")])


# --- usage, help and version ---------------------------------------------------------------------------


def test_new_key_refuses_a_bad_id_as_wrong_usage() -> None:
    result = run_cli("new-key", "--id", "bad id!")
    assert result.returncode == 2, result.stderr
    assert "argument --id: 'bad id!': a key id holds only letters" in result.stderr
    assert result.stdout == "" and "secret" not in result.stdout


def test_help_is_plain_text_and_every_command_describes_itself() -> None:
    deploy = run_cli("deploy", "--help")
    assert deploy.returncode == 0, deploy.stderr
    assert "``" not in deploy.stdout and "::" not in deploy.stdout
    assert "examples:\n  koppel-agent deploy ssh://" in deploy.stdout
    for command, fragment in [
        ("serve", "Run the agent's HTTP API under gunicorn"),
        ("check", "Check an installation step by step"),
        ("new-key", "Make a fresh random key secret"),
    ]:
        shown = run_cli(command, "--help")
        assert shown.returncode == 0 and fragment in " ".join(shown.stdout.split()), shown.stdout
        assert "--debug" in shown.stdout


def test_version() -> None:
    from importlib import metadata

    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"koppel-agent {metadata.version('koppel')}\n"


# --- check: what agent.yml says against what Magento has ---------------------------------------------------


def add_source(mariadb: MariaDB, database: str, code: str, enabled: int) -> None:
    with mariadb.connect(database) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO inventory_source (source_code, name, enabled, country_id, postcode) "
            "VALUES (%s, %s, %s, 'NL', '1000 AA')",
            (code, code.title(), enabled),
        )
        conn.commit()


def test_check_fails_on_an_msi_source_magento_does_not_have(
    mariadb: MariaDB, magento2: str, tmp_path: Path
) -> None:
    add_source(mariadb, magento2, "eu_store", 0)
    data = config_dict(mariadb, magento2, tmp_path / "state", magento={"msi_source": "warehouse"})
    result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert result.returncode == 1, result.stdout
    assert (
        "FAIL  magento.msi_source: MSI source 'warehouse' (magento.msi_source in agent.yml) does not exist "
        "in Magento, whose sources are: 'default', 'eu_store'; set magento.msi_source in agent.yml to one "
        "of them\n"
    ) in result.stdout
    assert "check failed: 1 problem(s)" in result.stdout
    # Without a key that writes stock, the source does not matter.
    data["keys"] = [{"id": "office", "secret": SECRET, "scopes": ["orders:read"]}]
    result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert result.returncode == 0 and "msi_source" not in result.stdout, result.stdout
    # A source that exists but is disabled passes with a warning; the default one passes plainly.
    data = config_dict(mariadb, magento2, tmp_path / "state", magento={"msi_source": "eu_store"})
    result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert (
        result.returncode == 0
        and "warn  magento.msi_source: MSI source 'eu_store' is disabled in Magento" in result.stdout
    )
    data = config_dict(mariadb, magento2, tmp_path / "state")
    result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert "ok    MSI source 'default' exists and is enabled" in result.stdout


def test_check_points_at_magento_version_when_the_other_version_is_there(
    mariadb: MariaDB, magento2: str, tmp_path: Path
) -> None:
    data = config_dict(mariadb, magento2, tmp_path / "state", magento={"version": 1})
    result = run_cli("check", "--config", str(write_config(tmp_path / "agent.yml", data)))
    assert result.returncode == 1
    assert (
        f"FAIL  magento: magento.version is 1, but database {magento2!r} holds Magento 2's sales_order and "
        "no sales_flat_order; set magento.version to 2 (or auto)"
    ) in result.stdout
    assert "table_prefix" not in result.stdout


# --- a refused body is read before the 413, so a proxy relays the answer -------------------------------------


def post_slowly(base: str, declared: int, send: int, pause: float = 0.02) -> tuple[bytes, str | None]:
    """POST with Content-Length ``declared``, sending ``send`` bytes in 4 kB pieces with a pause between, as a
    proxy streams a body; then read the answer. Returns (answer, the error that cut the sending short)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(
            f"POST /v1/stock HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {declared}\r\nConnection: close\r\n\r\n".encode()
        )
        problem = None
        try:
            for start in range(0, send, 4096):
                sock.sendall(b"x" * min(4096, send - start))
                time.sleep(pause)
        except OSError as exc:  # the agent closed the connection while the body was still coming
            problem = f"{type(exc).__name__}: {exc}"
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError as exc:
            problem = problem or f"{type(exc).__name__}: {exc}"
        return answer, problem


def test_a_refused_body_is_read_before_the_413(served: str) -> None:
    # 200 kB over the test limit of 20000 bytes, arriving over half a second: the agent must not close the
    # connection on it (the kernel would reset it and nginx answer 502), but read it and then say 413.
    answer, problem = post_slowly(served, 200_000, 200_000)
    assert problem is None, problem
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(payload)["error"]["code"] == "body_too_large"


def test_a_refused_body_is_read_only_within_bounds(served: str) -> None:
    # Declared far above what is worth reading: answered at once, without waiting for the body.
    started = time.monotonic()
    answer, _ = post_slowly(served, 10**9, 4096, pause=0)
    assert answer.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 5, answer[:200]
    # Declared within bounds but never sent: answered after DRAIN_SECONDS, not never.
    started = time.monotonic()
    answer, _ = post_slowly(served, 100_000, 0)
    waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert DRAIN_SECONDS - 1 < waited < DRAIN_SECONDS + 5, waited


def test_wsgi_module_names_a_config_mistake_once(tmp_path: Path) -> None:
    path = tmp_path / "agent.yml"
    path.write_bytes("database: {name: m, user: u}  # café\n".encode("latin-1"))
    env = {"PATH": "/usr/bin:/bin", "KOPPEL_AGENT_CONFIG": str(path)}
    result = subprocess.run(
        [sys.executable, "-c", "import agent.wsgi"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1 and result.stderr.count(str(path)) == 1, result.stderr
    assert result.stderr.startswith(f"koppel agent: {path} line 1, column 36: a character that is not UTF-8")


# --- secret files others may read --------------------------------------------------------------------------


def loose_secret_config(mariadb: MariaDB, magento2: str, tmp_path: Path) -> tuple[Path, Path]:
    """agent.yml whose office key is read from office.secret, mode 0644 as most editors leave a new file."""
    secret_file = tmp_path / "office.secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o644)
    data = config_dict(mariadb, magento2, tmp_path / "state")
    data["keys"][0] = {"id": KEY_ID, "secret_file": "office.secret", "scopes": data["keys"][0]["scopes"]}
    return write_config(tmp_path / "agent.yml", data), secret_file


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no group/other modes")
def test_check_and_serve_warn_about_a_secret_file_others_may_read(
    mariadb: MariaDB, magento2: str, tmp_path: Path
) -> None:
    config, secret_file = loose_secret_config(mariadb, magento2, tmp_path)
    warning = (
        f"keys[0].secret_file: {secret_file} may be read by other users (mode 0644); chmod 600 {secret_file}"
    )
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 0, result.stdout
    assert f"\nwarn  {warning}\n" in result.stdout and result.stdout.endswith("check passed\n")
    with serve(config, tmp_path) as base:
        assert requests.get(base + "/v1/health", timeout=10).status_code == 200
    output = (tmp_path / "gunicorn.log").read_text()
    warnings = [line for line in output.splitlines() if "warning" in line.lower()]
    assert warnings == [f"koppel-agent: warning: {warning}"], output
    secret_file.chmod(0o600)
    result = run_cli("check", "--config", str(config))
    assert result.returncode == 0 and "\nwarn  " not in result.stdout, result.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no group/other modes")
def test_a_deployed_release_does_not_warn_about_its_secret_files(
    mariadb: MariaDB, magento2: str, tmp_path: Path
) -> None:
    from deploy.release import build_release

    config, _ = loose_secret_config(mariadb, magento2, tmp_path)
    release = build_release(config, tmp_path / "work", packages="pypi")
    assert "office.secret" in release.secret_files
    result = run_cli("check", "--config", str(release.root / "agent.yml"))
    assert result.returncode == 0, result.stdout
    assert "\nwarn  " not in result.stdout and "secret_file" not in result.stdout, result.stdout
