"""The run engine with ``snelstart.backend: b2b``: Magento (MariaDB) → agent (gunicorn) → engine → the fake B2B API
(OpenAPI-validated) → the local administration behind it. Keys come from the environment, as in production."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.engine import run_import
from client.snelstart.factory import B2B_MIRROR_FILE
from client.snelstart.local import LocalBackend
from client.state import StateStore
from tests.client.b2b_fake import FakeSnelStart
from tests.client.conftest import REPO, guest, snelstart_orders

ITEM = {"sku": "1002", "qty": 2, "price": "20.6198"}
CLIENT_KEY = "ZmFrZS1rb3BwZWxzbGV1dGVsLTEyMzQ1Njc4OTA="
SUBSCRIPTION_KEY = "fake-subscription-9f8e7d6c5b4a"


@pytest.fixture
def products(shop: Any) -> None:
    shop.product("1002", "Espressokopjes, set van 6")
    shop.product("1003", "Melkopschuimer RVS")
    shop.product("NIEUW-1", "Koffiemolen Handmatig")


@pytest.fixture
def fake(local_admin: Path) -> Iterator[FakeSnelStart]:
    server = FakeSnelStart(local_admin, client_key=CLIENT_KEY, subscription_key=SUBSCRIPTION_KEY).start()
    yield server
    server.stop()
    assert not server.violations, "\n".join(server.violations)


@pytest.fixture
def b2b_config(client_config: Any, fake: FakeSnelStart, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TEST_SNELSTART_CLIENT_KEY", CLIENT_KEY)
    monkeypatch.setenv("TEST_SNELSTART_SUBSCRIPTION_KEY", SUBSCRIPTION_KEY)
    return client_config(
        snelstart={
            "backend": "b2b",
            "client_key_env": "TEST_SNELSTART_CLIENT_KEY",
            "subscription_key_env": "TEST_SNELSTART_SUBSCRIPTION_KEY",
            "api_url": fake.api_url,
            "auth_url": fake.auth_url,
            "tier": "development",
        }
    )


def test_import_on_b2b_creates_each_order_once(
    shop: Any, products: None, b2b_config: Any, local_admin: Path, fake: FakeSnelStart
) -> None:
    shop.order(items=[ITEM], number="400000001", billing=guest("p.deboer@example.nl", "P.", "de Boer"))
    shop.order(
        items=[ITEM, {"sku": "1003", "price": "33.0165"}],
        number="400000002",
        billing=guest("nieuw@example.org"),
    )
    shop.order(
        items=[{"sku": "NIEUW-1", "price": "41.3223"}], number="400000003", billing=guest("nieuw@example.org")
    )

    result = run_import(b2b_config, "shop")
    assert result.ok, result.error
    assert (result.imported, result.failed) == (3, 0), result.failures
    assert result.customers_created == 1 and result.customers_matched == 2
    assert result.articles_created == 1
    counts = snelstart_orders(local_admin)
    assert all(counts[n] == 1 for n in ("400000001", "400000002", "400000003"))

    with StateStore(b2b_config.state) as state, LocalBackend(local_admin) as local:
        done = state.ledger_entries("shop", state="done")
        assert [e.number for e in done] == ["400000001", "400000002", "400000003"]
        for entry in done:
            (order,) = local.verkooporders_by_betalingskenmerk(entry.number)
            assert order.nummer == entry.snelstart_nummer
            assert entry.snelstart_id.startswith("00000003-")  # a B2B uuid, not a local row id

    again = run_import(b2b_config, "shop")
    assert (again.imported, again.failed) == (0, 0)
    assert snelstart_orders(local_admin)["400000001"] == 1


def test_lost_answer_to_a_verkooporder_post_is_adopted_not_repeated(
    shop: Any,
    products: None,
    b2b_config: Any,
    local_admin: Path,
    fake: FakeSnelStart,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.timeout_sleep = 0.5
    shop.order(items=[ITEM], number="410000001", billing=guest("p.deboer@example.nl", "P.", "de Boer"))
    fake.inject("POST", "/verkooporders", "timeout_after")
    # The engine's backend uses production timeouts; shorten the read timeout through the factory's object.
    from client.snelstart import b2b as b2b_module

    original = b2b_module.B2BBackend.__init__

    def short_timeout(self: Any, **kw: Any) -> None:
        kw["timeout"] = (2.0, 0.25)
        original(self, **kw)

    monkeypatch.setattr(b2b_module.B2BBackend, "__init__", short_timeout)
    result = run_import(b2b_config, "shop")
    assert result.imported == 1, (result.error, result.failures)
    assert snelstart_orders(local_admin)["410000001"] == 1
    posts = [c for c in fake.calls if c[:2] == ("POST", "/verkooporders")]
    assert len(posts) == 1


def test_keys_never_reach_logs_output_or_errors(
    shop: Any,
    products: None,
    b2b_config: Any,
    fake: FakeSnelStart,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop.order(items=[ITEM], number="420000001", billing=guest("p.deboer@example.nl", "P.", "de Boer"))
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        fake.expire_tokens()
        fake.inject("GET", "/relaties", "503")
        result = run_import(b2b_config, "shop")
        texts.append(repr(result))
        # And the failure paths: wrong subscription key, wrong koppelsleutel.
        monkeypatch.setenv("TEST_SNELSTART_SUBSCRIPTION_KEY", SUBSCRIPTION_KEY + "-wrong")
        texts.append(repr(run_import(b2b_config, "shop")))
        monkeypatch.setenv("TEST_SNELSTART_SUBSCRIPTION_KEY", SUBSCRIPTION_KEY)
        monkeypatch.setenv("TEST_SNELSTART_CLIENT_KEY", CLIENT_KEY + "-wrong")
        refused = run_import(b2b_config, "shop")
        texts.append(repr(refused))
    assert result.imported == 1
    assert refused.error and "koppelsleutel" in refused.error  # the run stops with a cause, not a traceback
    out = capsys.readouterr()
    with StateStore(b2b_config.state) as state:
        texts.extend(e.message + " " + (e.detail or "") for e in state.log_entries("shop"))
    texts.extend(r.getMessage() for r in caplog.records)
    everything = "\n".join([*texts, out.out, out.err])
    assert "SnelStart" in everything  # something was logged at all
    for secret in (CLIENT_KEY, SUBSCRIPTION_KEY):
        assert secret not in everything


@pytest.mark.slow
def test_exactly_once_when_the_client_is_killed_mid_create(
    shop: Any, products: None, b2b_config: Any, local_admin: Path, fake: FakeSnelStart
) -> None:
    """The client process is killed (SIGKILL) after SnelStart stored the order but before the answer arrived;
    the next run must adopt that order, never create a second one."""
    for i in range(3):
        shop.order(
            items=[ITEM], number=f"43000000{i}", billing=guest(f"k{i}@example.org"), age_seconds=900 - i
        )
    fake.timeout_sleep = 30.0
    fake.inject("POST", "/verkooporders", "timeout_after", times=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "client.engine", "--config", str(b2b_config.path), "--profile", "shop"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and "430000000" not in snelstart_orders(local_admin):
            time.sleep(0.05)
        assert "430000000" in snelstart_orders(local_admin), "the first order never reached SnelStart"
        time.sleep(0.2)  # the fake now sits on its answer
        assert proc.poll() is None
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    fake.timeout_sleep = 0.0
    result = run_import(b2b_config, "shop")
    assert result.ok, result.error
    counts = snelstart_orders(local_admin)
    assert [counts.get(f"43000000{i}") for i in range(3)] == [1, 1, 1]


def test_run_task_keeps_the_b2b_mirror_in_the_state_file(
    shop: Any, products: None, b2b_config: Any, local_admin: Path, fake: FakeSnelStart
) -> None:
    from client.runner import OK, run_task

    shop.order(items=[ITEM], number="440000001", billing=guest("p.deboer@example.nl", "P.", "de Boer"))
    outcome = run_task(b2b_config, "shop", "import_orders")
    assert outcome.result == OK, outcome.message
    assert snelstart_orders(local_admin)["440000001"] == 1
    folder = b2b_config.path.parent
    assert not (folder / B2B_MIRROR_FILE).exists()  # the side file of a backend opened without state
    with StateStore(b2b_config.state) as state:
        conn = state.connect()
        try:
            kinds = dict(conn.execute("SELECT entity, count(*) FROM b2b_objects GROUP BY entity").fetchall())
        finally:
            conn.close()
    assert kinds.get("relatie", 0) >= 8 and kinds.get("artikel", 0) >= 10, kinds
    # A second run reads the mirror it left there: only changes since, no full read of the relaties again.
    fake.calls.clear()
    assert run_task(b2b_config, "shop", "import_orders").result == OK
    relatie_reads = [c for c in fake.calls if c[:2] == ("GET", "/relaties")]
    assert relatie_reads and all("ModifiedOn" in str(c) for c in relatie_reads), relatie_reads


def test_fields_the_backend_shortens_are_logged_with_the_order(
    shop: Any,
    products: None,
    b2b_config: Any,
    local_admin: Path,
    fake: FakeSnelStart,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The rules cut names to SnelStart's length themselves; widen their limit so the name reaches the backend
    # whole, as any field the rules do not know about would, and the backend's own check has to act.
    from client.rules import errors

    monkeypatch.setitem(errors.LIMITS, "naam", 200)
    company = "Koffiebranderij en Theehandel De Gouden Boon Groothandel Noord B.V."  # 68 characters
    shop.order(items=[ITEM], number="450000001", billing=guest("inkoop@goudenboon.example", company=company))
    result = run_import(b2b_config, "shop")
    assert (result.imported, result.failed) == (1, 0), result.failures
    with LocalBackend(local_admin) as local:
        (order,) = local.verkooporders_by_betalingskenmerk("450000001")
        assert local.get_relatie(order.relatie_id).naam == company[:50]  # type: ignore[union-attr]
    with StateStore(b2b_config.state) as state:
        entries = state.log_entries("shop", essential_only=True)
    shortened = [e for e in entries if "customer name" in e.message and "shortened" in e.message]
    assert len(shortened) == 1, [e.message for e in entries]
    assert shortened[0].level == "warning" and shortened[0].order == "450000001"
    assert shortened[0].message.startswith("Magento order 450000001: ") and company in shortened[0].message
