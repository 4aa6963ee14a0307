"""End to end: the agent (gunicorn) and the client (`koppel run`, `koppel schedule`) as separate processes over a
real Magento database in MariaDB, checked order by order in the local SnelStart administration."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from client.demo.magento_schema import create_schema
from client.demo.shop import Shop
from client.rules.normalize import email_key
from client.snelstart.local import LocalBackend
from client.snelstart.local_init import init_local
from tests.client.conftest import AgentServer, MagentoDB, client_profile, write_client_config
from tests.mariadb import MariaDB

REPO = Path(__file__).resolve().parents[1]


def koppel(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def setup(mariadb: MariaDB, database: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    db = MagentoDB(mariadb, database)
    conn = db.connect()
    create_schema(conn, 2, "")
    shop = Shop(conn, 2, "")
    # The orders' prices are typed incl. VAT (18.95), like the "Webshop" template; test-connection checks that.
    shop.set_config("tax/calculation/price_includes_tax", "1")
    admin = tmp_path / "administratie.sqlite"
    init_local(admin, sample=True)
    agent = AgentServer(db, tmp_path / "agent")
    agent.start()
    try:
        yield {"db": db, "shop": shop, "admin": admin, "agent": agent, "tmp": tmp_path}
    finally:
        agent.stop()
        conn.close()


def relatiecode_of(admin: Path, email: str) -> int:
    with LocalBackend(admin) as backend:
        return backend.relaties_by_email(email_key(email), all_fields=False)[0].relatiecode  # type: ignore[arg-type]


def build_orders(shop: Shop, jansen_code: int) -> dict[str, dict[str, Any]]:
    """Five orders, each testing one path; returns number → what to expect in SnelStart."""
    shop.product("1001", "Koffiebonen Arabica 1 kg")
    shop.product("1002", "Espressokopjes, set van 6")
    child = shop.product("HOODIE-ZWART-M", "Barista hoodie zwart M")
    parent = shop.product("HOODIE", "Barista hoodie", type_id="configurable", children=[child])
    deboer = shop.customer("p.deboer@example.nl", "Pieter", "de Boer")
    jansen = shop.customer(
        "t.jansen@jansen-installatie.nl", "Tom", "Jansen", attributes={"klantcode": str(jansen_code)}
    )
    nl = {"firstname": "Pieter", "lastname": "de Boer", "street": "Oudegracht 101", "postcode": "3511 AZ",
          "city": "Utrecht", "country_id": "NL", "telephone": "06-12345678"}  # fmt: skip
    de = {"firstname": "Jürgen", "lastname": "Weiß", "street": "Maximilianstraße 8\nHinterhaus",
          "postcode": "80539", "city": "München", "country_id": "DE", "telephone": "+49 89 2345678",
          "email": "j.weiss@example.de"}  # fmt: skip
    firm = {"firstname": "Tom", "lastname": "Jansen", "company": "Jansen Installatietechniek B.V.",
            "street": "Westblaak 12", "postcode": "3012 KL", "city": "Rotterdam", "country_id": "NL",
            "telephone": "010-4123456", "vat_id": "NL812345678B01"}  # fmt: skip
    beans = {"sku": "1001", "qty": 2, "price": "17.3853", "tax_percent": 9}
    cups = {"sku": "1002", "qty": 1, "price": "20.6198"}
    hoodie = {"sku": "HOODIE-ZWART-M", "product_id": parent, "type": "configurable", "price": "41.2397",
              "name": "Barista hoodie", "options": {"attributes_info": [{"label": "Maat", "value": "M"}]},
              "children": [{"sku": "HOODIE-ZWART-M", "product_id": child, "price": "0"}]}  # fmt: skip
    shop.order([beans], deboer, number="000000101", billing=nl)
    shop.order([hoodie], None, number="000000102", billing=de, shipping_amount="4.0909")
    shop.order([cups, beans], jansen, number="000000103", billing=firm)
    shop.order([cups], deboer, number="000000104", billing=nl, state="pending_payment")
    shop.order([beans], deboer, number="000000105", billing=nl, state="canceled")
    return {
        "000000101": {"relatie": "p.deboer@example.nl", "articles": ["1001", "VERZEND"]},
        "000000102": {"relatie": None, "naam": "Jürgen Weiß", "land": "DE", "articles": ["HOODIE-ZWART-M", "VERZEND"]},
        "000000103": {"relatie": "info@jansen-installatie.nl", "articles": ["1002", "1001", "VERZEND"]},
    }  # fmt: skip


def grand_total(shop: Shop, number: str) -> Decimal:
    return Decimal(
        str(shop._one(f"SELECT grand_total FROM {shop.table('order')} WHERE increment_id = %s", (number,)))
    )


def check_order(backend: LocalBackend, shop: Shop, number: str, expect: dict[str, Any], admin: Path) -> None:
    found = backend.verkooporders_by_betalingskenmerk(number)
    assert len(found) == 1, f"{number}: {len(found)} SnelStart orders"
    order = found[0]
    relatie = backend.get_relatie(order.relatie_id)
    assert relatie is not None
    if expect["relatie"] is not None:
        assert relatie.relatiecode == relatiecode_of(admin, expect["relatie"]), number
    else:
        assert relatie.naam == expect["naam"] and relatie.vestigingsadres.land == expect["land"]
        assert "Hinterhaus" in (relatie.vestigingsadres.straat or "")
    codes = [backend.get_artikel(r.artikel_id).artikelcode for r in order.regels if r.artikel_id]  # type: ignore[union-attr]
    assert codes == expect["articles"], number
    assert order.proces_status == "Order"
    # The template is incl. VAT: what the customer paid is what SnelStart's order totals.
    assert order.totaal_incl_btw == grand_total(shop, number).quantize(Decimal("0.01")), number


def test_koppel_run_against_gunicorn_agent_order_by_order(setup: dict[str, Any]) -> None:
    shop, admin, agent, tmp = setup["shop"], setup["admin"], setup["agent"], setup["tmp"]
    expected = build_orders(shop, relatiecode_of(admin, "info@jansen-installatie.nl"))
    config = str(write_client_config(tmp, [client_profile(agent.url, admin)]))

    first = koppel("run", "--config", config)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 orders imported" in first.stdout
    assert "\x1b[" not in first.stdout and "━" not in first.stdout  # no progress bar into a pipe or file
    assert "Magento order 000000102 → SnelStart order" in first.stdout
    with LocalBackend(admin) as backend:
        for number, expect in expected.items():
            check_order(backend, shop, number, expect, admin)
        assert backend.verkooporders_by_betalingskenmerk("000000104") == []
        assert backend.verkooporders_by_betalingskenmerk("000000105") == []

    # Paid meanwhile: the deferred order comes in on the next run; nothing else is imported twice.
    with shop.conn.cursor() as cur:
        cur.execute(
            f"UPDATE {shop.table('order')} SET state = 'processing', status = 'processing' WHERE increment_id = %s",
            ("000000104",),
        )
    shop._commit()
    second = koppel("--config", config, "run")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 order imported" in second.stdout
    with LocalBackend(admin) as backend:
        for number in ("000000101", "000000102", "000000103", "000000104"):
            assert len(backend.verkooporders_by_betalingskenmerk(number)) == 1
        check_order(
            backend,
            shop,
            "000000104",
            {"relatie": "p.deboer@example.nl", "articles": ["1002", "VERZEND"]},
            admin,
        )
        assert backend.verkooporders_by_betalingskenmerk("000000105") == []

    status = koppel("status", "--config", config)
    assert status.returncode == 0, status.stderr
    assert "Now: Gereed" in status.stdout
    assert "(manual) — ok" in status.stdout and "1 order imported" in status.stdout
    log = koppel("log", "--config", config)
    assert "000000102" in log.stdout and "Jürgen Weiß" in log.stdout

    check = koppel("test-connection", "--config", config)
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ("agent reachable", "signature", "clock", "Magento", "SnelStart (local)", "template"):
        assert f"  OK      {name}:" in check.stdout, check.stdout
    diagnostics = koppel("agent", "GET", "/v1/diagnostics", "--config", config)
    assert diagnostics.returncode == 0, diagnostics.stderr
    assert '"version": 2' in diagnostics.stdout
    page = koppel("agent", "GET", "/v1/orders?limit=2&created_from=2000-01-01T00:00:00Z", "--config", config)
    assert page.returncode == 0 and '"number": "000000101"' in page.stdout
    body = '{"request_id": "e2e-0001", "items": [{"sku": "NO-SUCH-SKU", "qty": "3"}]}'
    post = koppel("agent", "POST", "/v1/stock", "--data", body, "--config", config)
    assert post.returncode == 0, post.stdout + post.stderr
    assert '"status": "unknown_sku"' in post.stdout


def test_koppel_schedule_runs_due_tasks_and_stops_on_ctrl_c(setup: dict[str, Any]) -> None:
    shop, admin, agent, tmp = setup["shop"], setup["admin"], setup["agent"], setup["tmp"]
    build_orders(shop, relatiecode_of(admin, "info@jansen-installatie.nl"))
    profile = client_profile(agent.url, admin, tasks={"import_orders": {"interval": "15m"}})
    config = str(write_client_config(tmp, [profile]))
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "schedule", "--tick", "1", "--config", config],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        with LocalBackend(admin) as backend:
            while time.monotonic() < deadline and not backend.verkooporders_by_betalingskenmerk("000000103"):
                time.sleep(0.5)
            assert len(backend.verkooporders_by_betalingskenmerk("000000103")) == 1
        # Wait for the run to finish, then a manual run is allowed and finds nothing new.
        while (
            time.monotonic() < deadline and "Now: Gereed" not in koppel("status", "--config", config).stdout
        ):
            time.sleep(0.5)
        manual = koppel("run", "--config", config)
        assert manual.returncode == 0, manual.stdout + manual.stderr
        assert "0 orders imported" in manual.stdout
    finally:
        scheduler.send_signal(signal.SIGINT)
        out, _ = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 130, out  # Ctrl-C, as the README's exit codes say
    assert "shop/import_orders: start" in out and "Scheduler stopped (Ctrl-C)" in out
    status = koppel("status", "--config", config).stdout
    assert "(schedule) — ok" in status or "(manual) — ok" in status
    assert "every 15m" in status


def test_status_in_another_process_sees_the_run_in_progress(setup: dict[str, Any]) -> None:
    from client.config import load_client_config
    from client.runner import run_task

    shop, admin, agent, tmp = setup["shop"], setup["admin"], setup["agent"], setup["tmp"]
    build_orders(shop, relatiecode_of(admin, "info@jansen-installatie.nl"))
    config_path = write_client_config(tmp, [client_profile(agent.url, admin)])
    config = load_client_config(config_path)
    seen: list[str] = []

    def progress(stage: str, done: int, total: int | None) -> None:
        # The run waits here while `koppel status` (another process) reads the state file.
        if stage == "orders" and done == 2 and not seen:
            seen.append(koppel("status", "--config", str(config_path)).stdout)

    outcome = run_task(config, "shop", "import_orders", progress=progress)
    assert outcome.result == "ok", outcome.message
    assert seen, "the engine reported no progress"
    assert "Now: import_orders: importing orders" in seen[0]
    assert "Now: Gereed" in koppel("status", "--config", str(config_path)).stdout


def run_in_terminal(*args: str, timeout: float = 120) -> tuple[int, str]:
    """`koppel ARGS` with a pseudo-terminal as its stdout, as in a console window: exit code and all it wrote."""
    import os
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.cli", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)  # koppel holds the only other end: reading ends when it exits
    written = bytearray()
    try:
        while chunk := _read_terminal(leader):
            written += chunk
    finally:
        os.close(leader)
    return proc.wait(timeout), written.decode("utf-8", errors="replace")


def _read_terminal(fd: int) -> bytes:
    import os

    try:
        return os.read(fd, 65536)
    except OSError:  # Linux says EIO once the last writer has closed the terminal
        return b""


def test_a_run_in_a_terminal_shows_a_progress_bar(setup: dict[str, Any]) -> None:
    shop, admin, agent, tmp = setup["shop"], setup["admin"], setup["agent"], setup["tmp"]
    build_orders(shop, relatiecode_of(admin, "info@jansen-installatie.nl"))
    config = str(write_client_config(tmp, [client_profile(agent.url, admin)]))
    code, out = run_in_terminal("run", "--config", config)
    assert code == 0, out
    # rich draws the bar (━) with the run's label and stage, then removes it and the summary follows.
    assert "━" in out and "shop/import_orders" in out
    assert "shop/import_orders: importing orders" in out
    assert "shop/import_orders: ok: 3 orders imported" in out
    assert "Traceback" not in out
    with LocalBackend(admin) as backend:
        assert len(backend.verkooporders_by_betalingskenmerk("000000103")) == 1
