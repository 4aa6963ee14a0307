"""``koppel run --dry-run`` shows what would be created and changes nothing: not the SnelStart file, not the
state (cursor, ledger, failed and deferred lists, log)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from client.engine import run_import
from client.snelstart.base import NieuweRelatie
from client.snelstart.local import LocalBackend
from client.state import StateStore
from tests.client.conftest import client_profile, guest, snelstart_orders, write_client_config

KOPPEL = Path(sys.executable).with_name("koppel")
ITEM = {"sku": "1002", "qty": 2, "price": "20.6198"}


def dump(path: Path) -> list[str]:
    """The whole logical content of an SQLite file (WAL included), in a stable order."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def scene(shop, agent_server, local_admin, tmp_path):
    """A profile with history: one order imported, one failed, one deferred; then three new orders."""
    shop.product("1002", "Espressokopjes, set van 6")
    shop.product("NIEUW-1", "Koffiemolen Handmatig")
    with LocalBackend(local_admin) as backend:
        adres = backend.get_relatie("1").vestigingsadres
        for naam in ("Dubbel Een", "Dubbel Twee"):
            backend.create_relatie(NieuweRelatie(naam=naam, vestigingsadres=adres, email="dubbel@example.nl"))
    config_path = write_client_config(tmp_path, [client_profile(agent_server.url, local_admin)])
    shop.order(items=[ITEM], number="400000001", billing=guest("eerder@example.org"), age_seconds=7200)
    shop.order(items=[ITEM], number="400000002", billing=guest("dubbel@example.nl"), age_seconds=7100)
    shop.order(
        items=[ITEM],
        number="400000003",
        billing=guest("wacht@example.org"),
        age_seconds=7000,
        state="pending_payment",
    )
    from client.config import load_client_config

    config = load_client_config(config_path)
    first = run_import(config, "shop")
    assert (first.imported, first.failed, first.deferred) == (1, 1, 1)

    shop.order(items=[ITEM], number="400000010", billing=guest("p.deboer@example.nl", "P.", "de Boer"))
    shop.order(items=[ITEM], number="400000011", billing=guest("nieuw@example.org", "Femke", "Nieuwenhuis"))
    shop.order(
        items=[{"sku": "NIEUW-1", "price": "41.3223"}],
        number="400000012",
        billing=guest("p.deboer@example.nl", "P.", "de Boer"),
    )
    return config, config_path


def test_dry_run_changes_nothing_and_names_orders_customers_articles(scene, local_admin, tmp_path):
    config, _ = scene
    state_path = tmp_path / "koppel-state.sqlite"
    admin_before, state_before = dump(local_admin), dump(state_path)
    with StateStore(state_path) as state:
        cursor_before = state.get_cursor("shop")

    result = run_import(config, "shop", dry_run=True)

    assert result.ok and result.dry_run
    assert dump(local_admin) == admin_before
    assert dump(state_path) == state_before
    with StateStore(state_path) as state:
        assert state.get_cursor("shop") == cursor_before
    text = "\n".join(result.lines)
    for number in ("400000010", "400000011", "400000012"):
        assert f"Magento order {number}: would create a verkooporder" in text
    assert "relatie" in text and "P. de Boer" in text  # the matched customer by name and code
    assert "Femke Nieuwenhuis" in text and "would be created" in text  # the new customer
    assert "Article NIEUW-1 would be created" in text
    assert "Espressokopjes" in text  # the lines
    assert "400000002 failed" in text and "Dubbel Een" in text  # the failed order retried, still failing
    assert result.imported == 3 and result.customers_created == 1 and result.articles_created == 1


@pytest.mark.skipif(not KOPPEL.exists(), reason="the koppel console script is not installed")
def test_koppel_run_dry_run_prints_and_changes_nothing(scene, local_admin, tmp_path):
    _, config_path = scene
    state_path = tmp_path / "koppel-state.sqlite"
    admin_before = dump(local_admin)
    with StateStore(state_path) as state:
        ledger_before = state.ledger_entries("shop")
        cursor_before = state.get_cursor("shop")
        failed_before = state.failed_list("shop")
        deferred_before = state.deferred_list("shop")
        log_before = state.log_entries()

    done = subprocess.run(
        [str(KOPPEL), "--config", str(config_path), "run", "--profile", "shop", "--dry-run"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout + done.stderr
    assert "Magento order 400000011: would create a verkooporder" in out, out
    assert "Femke Nieuwenhuis" in out and "NIEUW-1" in out
    assert dump(local_admin) == admin_before
    assert snelstart_orders(local_admin).get("400000010") is None
    with StateStore(state_path) as state:
        assert state.ledger_entries("shop") == ledger_before
        assert state.get_cursor("shop") == cursor_before
        assert state.failed_list("shop") == failed_before
        assert state.deferred_list("shop") == deferred_before
        assert state.log_entries() == log_before


def test_dry_run_counts_equal_the_real_runs_counts(shop, agent_server, local_admin, tmp_path):
    """A new customer ordering three times and a new article in two orders count once, as for real."""
    shop.product("1002", "Espressokopjes, set van 6")
    shop.product("NIEUW-2", "Melkopschuimer")
    shop.product("NIEUW-3", "Koffiefilters")
    config_path = write_client_config(tmp_path, [client_profile(agent_server.url, local_admin)])
    femke = guest("femke@example.org", "Femke", "Nieuwenhuis")
    shop.order(items=[ITEM, {"sku": "NIEUW-2", "price": "24.7934"}], number="410000001", billing=femke)
    shop.order(items=[{"sku": "NIEUW-2", "price": "24.7934"}], number="410000002", billing=femke)
    shop.order(items=[ITEM], number="410000003", billing=guest("p.deboer@example.nl", "P.", "de Boer"))
    shop.order(items=[{"sku": "nieuw-3 ", "price": "3.3058"}], number="410000004", billing=femke)
    shop.order(
        items=[{"sku": "NIEUW-3", "price": "3.3058"}],
        number="410000005",
        billing=guest("FEMKE@Example.org", "Femke", "Nieuwenhuis"),
    )
    from client.config import load_client_config

    config = load_client_config(config_path)

    def counts(result):  # noqa: ANN001, ANN202
        return (
            result.imported,
            result.failed,
            result.customers_created,
            result.customers_matched,
            result.articles_created,
        )

    preview = run_import(config, "shop", dry_run=True)
    assert preview.ok and not preview.failures, preview.lines
    real = run_import(config, "shop")
    assert real.ok and not real.failures
    assert counts(preview) == counts(real)
    # The numbers themselves: one new customer (matched for her later orders), two new articles.
    assert counts(real) == (5, 0, 1, 4, 2)
    text = "\n".join(preview.lines)
    assert "new relatie Femke Nieuwenhuis (created for an earlier order of this run)" in text
    # Quantities and amounts read as people write them.
    assert "    2 × " in text and ".0000 ×" not in text
    assert "à 24.95" in text and "à 24.9500" not in text


def test_an_order_not_imported_for_its_state_is_named_in_the_dry_run_and_the_verbose_log(
    shop, agent_server, local_admin, tmp_path, capsys
):
    from client.cli import main
    from client.config import load_client_config

    shop.product("1002", "Espressokopjes, set van 6")
    config_path = write_client_config(tmp_path, [client_profile(agent_server.url, local_admin)])
    shop.order(items=[ITEM], number="410000001", billing=guest("a@example.org"), state="canceled")
    shop.order(items=[ITEM], number="410000002", billing=guest("b@example.org"))
    config = load_client_config(config_path)
    named = "Magento order 410000001 ignored: its state canceled is not imported"

    preview = run_import(config, "shop", dry_run=True)
    assert (preview.imported, preview.ignored) == (1, 1)
    assert [line for line in preview.lines if "410000001" in line] == [
        f"{named} (orders.import_states: every state except canceled)"
    ]
    result = run_import(config, "shop")
    assert (result.imported, result.ignored) == (1, 1)
    capsys.readouterr()
    assert main(["log", "--config", str(config_path), "--verbose"]) == 0
    assert named in capsys.readouterr().out
    assert main(["log", "--config", str(config_path)]) == 0
    assert named not in capsys.readouterr().out  # a detail: the default view shows the essentials

    limited = load_client_config(
        write_client_config(
            tmp_path, [client_profile(agent_server.url, local_admin, orders={"import_states": ["complete"]})]
        )
    )
    shop.order(items=[ITEM], number="410000003", billing=guest("c@example.org"), state="processing")
    lines = run_import(limited, "shop", dry_run=True).lines
    assert (
        "Magento order 410000003 ignored: its state processing is not imported (orders.import_states: complete)"
        in lines
    )
