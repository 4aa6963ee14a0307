"""`koppel test-connection` holds the SnelStart template's VAT mode against Magento's own tax setting, which the
agent reports in /v1/diagnostics; only when the agent cannot read it do recent orders decide, as a warning."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

from client.connection_test import ShopPrices, _template_check, run_checks
from client.snelstart.base import Verkoopsjabloon
from tests.client.conftest import REPO, guest

SETTING = "tax/calculation/price_includes_tax"


def run_test_connection(config: Any) -> subprocess.CompletedProcess[str]:
    """`koppel test-connection` for the config, as a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "client.cli", "test-connection", "--config", str(config.path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def template_check(config: Any) -> Any:
    checks = run_checks(config, config.profile("shop"))
    # Every other check passes against the live agent, so a failure below is the template's alone.
    assert all(c.ok for c in checks if c.name != "template"), [c.line() for c in checks]
    return next(c for c in checks if c.name == "template")


def test_template_against_magentos_tax_setting(shop: Any, client_config: Any) -> None:
    shop.set_config(SETTING, "1")
    excl = template_check(client_config(orders={"template": "Webshop excl"}))
    # SPEC: a template whose VAT mode disagrees with Magento is warned about at test-connection, not refused.
    assert excl.ok and excl.warning
    assert excl.line().startswith("WARNING template: 'Webshop excl' has prices excluding VAT")
    assert f"{SETTING} = 1" in excl.detail
    assert excl.fix and "including VAT in orders.template" in excl.fix and "Catalog Prices" in excl.fix

    incl = template_check(client_config())
    assert incl.ok and not incl.warning and "entered the same way" in incl.detail

    # Never saved in the admin: Magento's default, prices excl. VAT, which the "Webshop" template is not.
    with shop.conn.cursor() as cur:
        cur.execute("DELETE FROM core_config_data WHERE path = %s", (SETTING,))
    shop._commit()
    config = client_config()
    missing = template_check(config)
    assert missing.warning and f"{SETTING} = 0" in missing.detail
    done = run_test_connection(config)
    assert done.returncode == 0, done.stdout + done.stderr  # a warning does not fail the check
    assert "catalogue prices excl. VAT" in done.stdout  # the Magento line shows what the agent read
    line = next(x for x in done.stdout.splitlines() if "template:" in x)
    assert line.strip().startswith("WARNING template:") and "put a verkoopsjabloon" in line


def test_recent_orders_decide_only_when_the_agent_cannot_read_the_setting(
    shop: Any, client_config: Any, magento_db: Any
) -> None:
    # The agent's database login may lack SELECT on core_config_data; here the table is simply gone.
    with magento_db.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE core_config_data")
    shop.product("1002", "Espressokopjes, set van 6")
    shop.order(items=[{"sku": "1002", "price": "20.6198"}], billing=guest("a@example.org"))  # 24.95 incl.
    guessed = template_check(client_config(orders={"template": "Webshop excl"}))
    assert guessed.ok and guessed.warning, guessed.line()
    assert (
        guessed.line().startswith("WARNING template:")
        and "recent orders look priced including" in guessed.detail
    )
    assert template_check(client_config()).line().startswith("OK      template: 'Webshop', prices including")


def test_template_check_without_an_agent_answer() -> None:
    from client.config import Profile

    profile = Profile.model_validate(
        {
            "name": "shop",
            "agent": {"url": "http://127.0.0.1:9", "key_id": "office", "secret": "x" * 32},
            "snelstart": {"backend": "local", "path": "admin.sqlite"},
            "orders": {"template": "Webshop"},
        }
    )
    incl = Verkoopsjabloon("1", "Webshop", prijs_incl_btw=True)
    assert _template_check(profile, [incl], ShopPrices(None)).line().startswith("OK      template:")
    configured = _template_check(profile, [incl], ShopPrices(False, configured=True))
    assert configured.warning and configured.line().startswith("WARNING ")  # SPEC: warn at test-connection
    assert "price_includes_tax = 0" in configured.line()
    assert _template_check(profile, [incl], ShopPrices(False)).warning  # a guess only warns


def test_https_to_a_plain_http_agent_hints_at_http(agent_server: Any, client_config: Any) -> None:
    plain = agent_server.url  # http://127.0.0.1:PORT
    config = client_config(agent={"url": plain.replace("http://", "https://")})
    reach = next(c for c in run_checks(config, config.profile("shop")) if c.name == "agent reachable")
    assert not reach.ok
    assert "TLS handshake failed" in reach.line() and f"use {plain} in agent.url" in reach.line()


def test_a_missing_secret_variable_is_named(client_config: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("KOPPEL_TEST_NO_SUCH_SECRET", raising=False)
    config = client_config(agent={"secret": None, "secret_env": "KOPPEL_TEST_NO_SUCH_SECRET"})
    signature = next(c for c in run_checks(config, config.profile("shop")) if c.name == "signature")
    assert not signature.ok
    assert "set the environment variable KOPPEL_TEST_NO_SUCH_SECRET" in signature.line()
    assert "setx KOPPEL_TEST_NO_SUCH_SECRET" in signature.line()


def start_agent_without_database(server: Any) -> subprocess.Popen[bytes]:
    """The agent of ``server`` under gunicorn, once it answers /v1/health with 503 (its database unusable).

    AgentServer only writes agent.yml here; its start() waits for a 200 that cannot come."""
    import os
    import time

    import requests

    env = dict(os.environ, KOPPEL_AGENT_CONFIG=str(server.config_path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{server.port}", "--workers", "1",
         "agent.wsgi:app"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            assert requests.get(f"{server.url}/v1/health", timeout=5).status_code == 503
            return proc
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                proc.terminate()
                raise AssertionError("the agent did not start") from None
            time.sleep(0.2)


def test_an_agent_without_its_database_is_not_a_signature_failure(
    mariadb: Any, tmp_path: Any, local_admin: Any
) -> None:
    """The agent answers 503 when its Magento database is unreachable; the key is then simply unchecked."""
    from client.agent_client import AgentClient, AgentError
    from client.config import load_client_config
    from tests.client.conftest import AgentServer, MagentoDB, client_profile, write_client_config

    server = AgentServer(MagentoDB(mariadb, "koppel_no_such_database_for_503"), tmp_path / "agent")
    proc = start_agent_without_database(server)
    try:
        path = write_client_config(tmp_path, [client_profile(server.url, local_admin)])
        config = load_client_config(path)
        checks = {c.name: c for c in run_checks(config, config.profile("shop"))}
        try:
            AgentClient(server.url, server.key_id, server.secret, retries=0).get("/v1/orders")
        except AgentError as exc:
            error = exc
        else:
            raise AssertionError("the agent answered without its database")
    finally:
        proc.terminate()
        proc.wait(30)
    assert (
        not checks["agent reachable"].ok
        and "cannot reach the Magento database" in checks["agent reachable"].detail
    )
    signature = checks["signature"]
    assert signature.ok and signature.skipped, signature.line()
    assert signature.line().startswith("SKIPPED signature: the agent's Magento database is unreachable")
    assert "database is unreachable (HTTP 503)" in signature.line() and "refuses" not in signature.line()
    # The client's sentence points at the agent's own check, which tells an outage from a wrong setting.
    message = str(error)
    assert "the agent could not answer GET /v1/orders (HTTP 503: " in message, message
    assert message.count("try again later") <= 1 and "koppel-agent check" in message


def test_a_missing_local_administration_names_the_command_that_makes_one(tmp_path: Any) -> None:
    from client.snelstart.base import SnelStartUnavailable
    from client.snelstart.local import LocalBackend

    missing = tmp_path / "nergens.sqlite"
    try:
        LocalBackend(missing)
    except SnelStartUnavailable as exc:
        message = str(exc)
    else:
        raise AssertionError("opened a file that does not exist")
    assert f"koppel snelstart init --local {missing} --sample" in message and "init_local()" not in message


def lines_of(config: Any) -> dict[str, str]:
    return {c.name: c.line() for c in run_checks(config, config.profile("shop"))}


def test_a_wrong_secret_is_named_as_such_when_the_clocks_agree(client_config: Any) -> None:
    config = client_config(agent={"secret": "not-the-secret-of-agent-yml-0123456789"})
    lines = lines_of(config)
    assert lines["agent reachable"].startswith("OK ")
    signature = lines["signature"]
    assert signature.startswith("FAILED  signature: the agent refuses key 'office' (401)")
    assert "the clocks agree, so key_id or the secret differs from agent.yml" in signature
    assert "— fix: give agent.key_id and the secret exactly as a key in agent.yml" in signature
    assert lines["clock"].startswith("OK      clock: in step")
    # Magento needs a signed answer: its line says it was not checked rather than going missing.
    assert lines["Magento"] == "SKIPPED Magento: the agent did not answer the signed call (see 'signature')"


def test_a_clock_far_off_fails_with_the_fix(client_config: Any) -> None:
    import datetime as dt

    config = client_config()
    # This PC's clock, as the check sees it, ten minutes behind the agent's.
    behind = lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)  # noqa: E731
    checks = {c.name: c for c in run_checks(config, config.profile("shop"), clock=behind)}
    clock = checks["clock"]
    assert not clock.ok
    # The Date header has whole seconds: 599 to 601.
    assert re.match(
        r"FAILED  clock: the agent's clock is (599|600|601) s ahead of this PC — fix: ", clock.line()
    )
    assert "synchronise both clocks" in clock.line() and "300 s" in clock.line()


def test_a_key_without_the_diagnostics_scope_is_told_which_scopes(
    magento_db: Any, tmp_path: Any, local_admin: Any
) -> None:
    from client.config import load_client_config
    from tests.client.conftest import (
        AGENT_KEY,
        AGENT_SECRET,
        AgentServer,
        client_profile,
        write_client_config,
    )

    keys = [{"id": AGENT_KEY, "secret": AGENT_SECRET, "scopes": ["orders:read"]}]
    server = AgentServer(magento_db, tmp_path / "agent", extra={"keys": keys})
    server.start()
    try:
        config = load_client_config(write_client_config(tmp_path, [client_profile(server.url, local_admin)]))
        lines = lines_of(config)
    finally:
        server.stop()
    assert lines["signature"].startswith("FAILED  signature: key 'office' may not read diagnostics (403)")
    assert "diagnostics:read in agent.yml" in lines["signature"]
    assert lines["Magento"].startswith("SKIPPED Magento: the agent did not answer")


def test_an_address_that_is_not_the_agent_says_so(tmp_path: Any, local_admin: Any) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from client.config import load_client_config
    from tests.client.conftest import client_profile, write_client_config

    class Shop(BaseHTTPRequestHandler):  # the web shop itself, where the agent was meant
        def do_GET(self) -> None:  # noqa: N802
            body = b"<html>Pagina niet gevonden</html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        config = load_client_config(write_client_config(tmp_path, [client_profile(url, local_admin)]))
        lines = lines_of(config)
    finally:
        server.shutdown()
        server.server_close()
    assert lines["agent reachable"] == (
        f"FAILED  agent reachable: {url}/v1/health gave HTTP 404, not a koppel agent's answer"
        " — fix: agent.url must point at the koppel agent, not at the web shop itself"
    )
    for name in ("signature", "clock", "Magento"):
        assert lines[name] == f"SKIPPED {name}: agent.url does not lead to the agent"
    assert lines["SnelStart (local)"].startswith("OK ")


def test_each_magento_warning_gets_a_marked_line_of_its_own(client_config: Any) -> None:
    from client.connection_test import Check

    check = Check("Magento", True, "Magento 2, stock msi", notes=["indexer a needs a reindex; stale", "b"])
    assert check.lines() == [
        "OK      Magento: Magento 2, stock msi",
        "WARNING Magento: indexer a needs a reindex; stale",
        "WARNING Magento: b",
    ]
    # Against the live agent: koppel's bare Magento fixture has no stock indexer rows, which the agent warns about.
    config = client_config()
    done = run_test_connection(config)
    assert done.returncode == 0, done.stdout + done.stderr  # warnings do not fail the check
    magento = [line.strip() for line in done.stdout.splitlines() if " Magento: " in line]
    assert magento[0].startswith("OK      Magento: Magento 2") and "warning" not in magento[0]
    assert len(magento) > 1 and all(line.startswith("WARNING Magento: indexer ") for line in magento[1:])


def test_a_secret_file_that_is_not_utf8_is_named_not_the_url(client_config: Any, tmp_path: Any) -> None:
    secret = tmp_path / "agent-secret.txt"
    secret.write_bytes("test-secret-0123456789-abcdéfghijklmnopqrstuvwxyz".encode("latin-1"))
    config = client_config(agent={"secret": None, "secret_file": str(secret)})
    signature = lines_of(config)["signature"]
    assert signature.startswith(f"FAILED  signature: agent.secret_file: {secret} line 1: byte 28 (0xE9")
    assert "save it as UTF-8" in signature
    assert f"— fix: put the key's secret (the same as in agent.yml) in {secret}" in signature
    assert "agent.url" not in signature


def run_koppel(config: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args, "--config", str(config.path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_a_wrong_table_prefix_fails_test_connection_and_run_with_the_agents_reason(
    magento_db: Any, tmp_path: Any, local_admin: Any
) -> None:
    """The agent's database answers (health OK), but agent.yml names tables the database does not have."""
    import time

    from client.config import load_client_config
    from tests.client.conftest import AgentServer, MagentoDB, client_profile, write_client_config

    wrong = MagentoDB(magento_db.server, magento_db.name, magento_db.version, prefix="mage_")
    server = AgentServer(wrong, tmp_path / "agent")
    server.start()
    try:
        config = load_client_config(write_client_config(tmp_path, [client_profile(server.url, local_admin)]))
        done = run_test_connection(config)
        started = time.monotonic()
        run = run_koppel(config, "run")
        took = time.monotonic() - started
    finally:
        server.stop()
    lines = {line.split(":")[0].strip(): line.strip() for line in done.stdout.splitlines() if ":" in line}
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines["OK      agent reachable"]
    assert lines["OK      signature"], done.stdout  # the agent checked the key before it looked for Magento
    magento = lines["FAILED  Magento"]
    assert "the agent finds no Magento in its database (HTTP 503: " in magento
    assert "check magento.table_prefix ('mage_')" in magento
    assert "— fix: correct the magento settings in agent.yml" in magento and "koppel-agent check" in magento
    assert "SKIPPED" not in done.stdout and "1 check failed." in done.stdout

    assert run.returncode == 1, run.stdout + run.stderr
    assert "check magento.table_prefix ('mage_')" in run.stdout, run.stdout
    assert "try again later" not in run.stdout and "restart the agent" in run.stdout
    assert took < 30, took  # a setting error is not retried as if it were an outage


def test_https_to_a_plain_http_agent_says_so_in_a_run_quickly(agent_server: Any, client_config: Any) -> None:
    import time

    plain = agent_server.url
    config = client_config(agent={"url": plain.replace("http://", "https://")})
    started = time.monotonic()
    run = run_koppel(config, "run")
    took = time.monotonic() - started
    assert run.returncode == 1, run.stdout + run.stderr
    assert "the TLS handshake with the agent at https://" in run.stdout, run.stdout
    assert f"the agent speaks plain http; use {plain} in agent.url" in run.stdout
    assert "did not answer within" not in run.stdout
    assert took < 40, took  # not 60 s (or four times that) of waiting for a handshake that never comes


def test_an_outage_message_of_the_agent_gets_no_second_try_again_later(
    mariadb: Any, tmp_path: Any, local_admin: Any
) -> None:
    from client.agent_client import AgentClient, AgentError
    from client.demo.mariadb import MariaDB
    from tests.client.conftest import AgentServer, MagentoDB, free_port

    # A database server that is not there (nothing listens on the port): an outage, not a wrong setting.
    gone = MariaDB(host="127.0.0.1", port=free_port(), user=mariadb.user, password=mariadb.password)
    server = AgentServer(MagentoDB(gone, "koppel_outage"), tmp_path / "agent")
    proc = start_agent_without_database(server)
    try:
        try:
            AgentClient(server.url, server.key_id, server.secret, retries=0).get("/v1/orders")
        except AgentError as exc:
            message = str(exc)
        else:
            raise AssertionError("the agent answered without its database")
    finally:
        proc.terminate()
        proc.wait(30)
    assert "(HTTP 503: the Magento database cannot be reached right now; try again later)" in message, message
    assert message.count("try again later") == 1
    assert "if this lasts, koppel-agent check on the agent's server shows why" in message


def test_a_key_without_the_scopes_a_run_needs_fails_the_check(
    magento_db: Any, tmp_path: Any, local_admin: Any
) -> None:
    """A key that may only read diagnostics passed every line once, and the first run got 403 on /v1/orders."""
    from client.config import load_client_config
    from tests.client.conftest import AGENT_SECRET, AgentServer, client_profile, write_client_config

    keys = [{"id": "support", "secret": AGENT_SECRET, "scopes": ["diagnostics:read"]}]
    server = AgentServer(magento_db, tmp_path / "agent", extra={"keys": keys})
    server.start()
    try:
        key = {"key_id": "support"}
        path = write_client_config(tmp_path, [client_profile(server.url, local_admin, agent=key)])
        checks = {
            c.name: c for c in run_checks(load_client_config(path), load_client_config(path).profile("shop"))
        }
        done = run_test_connection(load_client_config(path))
        exporting = client_profile(
            server.url, local_admin, agent=key, tasks={"import_orders_and_export_stock": {"interval": "15m"}}
        )
        config = load_client_config(write_client_config(tmp_path, [exporting]))
        stock = next(c for c in run_checks(config, config.profile("shop")) if c.name == "scope stock:write")
    finally:
        server.stop()
    assert checks["signature"].ok, checks["signature"].line()
    orders = checks["scope orders:read"]
    assert not orders.ok
    assert "the key 'support' lacks scope orders:read in agent.yml" in orders.line()
    assert "fix: add orders:read to the scopes of key 'support' in agent.yml" in orders.line()
    # Without the stock task the missing stock scope is only worth a warning ...
    unused = checks["scope stock:write"]
    assert unused.ok and unused.warning and unused.line().startswith("WARNING scope stock:write: the key")
    # ... with it, a run would fail: FAILED.
    assert not stock.ok and stock.line().startswith("FAILED  scope stock:write: the key 'support' lacks")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED  scope orders:read" in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_a_key_with_every_scope_passes_the_scope_checks(client_config: Any) -> None:
    config = client_config(tasks={"import_orders_and_export_stock": {"interval": "15m"}})
    lines = lines_of(config)
    assert lines["scope orders:read"].startswith("OK      scope orders:read: key 'office' may use it")
    assert lines["scope stock:write"].startswith("OK      scope stock:write: key 'office' may use it")
