"""The run engine end to end: a Magento database (shop builder) → the agent under gunicorn → the engine → the
local SnelStart administration and the state file."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from client import engine
from client.engine import run_import
from client.snelstart.base import NieuweRelatie, NieuweVerkooporder, OrderRegel, SnelStartUnavailable
from client.snelstart.local import LocalBackend
from client.state import StateStore
from tests.client.conftest import guest, snelstart_orders

ITEM = {"sku": "1002", "qty": 2, "price": "20.6198"}  # Espressokopjes, 21 % in the sample administration


@pytest.fixture
def products(shop):
    shop.product("1002", "Espressokopjes, set van 6")
    shop.product("1003", "Melkopschuimer RVS")
    shop.product("NIEUW-1", "Koffiemolen Handmatig")


def state_of(config) -> StateStore:
    return StateStore(config.state)


def essentials(config) -> list[str]:
    with state_of(config) as state:
        return [e.message for e in state.log_entries("shop", essential_only=True)]


def set_state(shop, entity_id: int, state: str) -> None:
    with shop.conn.cursor() as cur:
        cur.execute(
            f"UPDATE {shop.table('order')} SET state = %s, status = %s WHERE entity_id = %s",
            (state, state, entity_id),
        )


def test_import_creates_each_order_once_and_moves_the_cursor(shop, products, client_config, local_admin):
    config = client_config()
    shop.order(items=[ITEM], number="300000001", billing=guest("p.deboer@example.nl", "P.", "de Boer"))
    shop.order(
        items=[ITEM, {"sku": "1003", "price": "33.0165"}],
        number="300000002",
        billing=guest("nieuw@example.org"),
    )
    shop.order(
        items=[{"sku": "NIEUW-1", "price": "41.3223"}], number="300000003", billing=guest("nieuw@example.org")
    )

    result = run_import(config, "shop")
    assert result.ok, result.error
    assert (result.imported, result.failed, result.skipped) == (3, 0, 0), result.failures
    assert result.customers_created == 1 and result.customers_matched == 2
    assert result.articles_created == 1
    assert [c.magento_number for c in result.created] == ["300000001", "300000002", "300000003"]
    assert all(c.snelstart_nummer and c.relatiecode for c in result.created)
    assert snelstart_orders(local_admin) == {
        "KASSA-2026-0002": 1,  # the sample administration's own order
        "300000001": 1,
        "300000002": 1,
        "300000003": 1,
    }

    with state_of(config) as state, LocalBackend(local_admin) as backend:
        assert state.get_cursor("shop") is not None
        done = state.ledger_entries("shop", state="done")
        assert [e.number for e in done] == ["300000001", "300000002", "300000003"]
        for entry, created in zip(done, result.created, strict=True):
            (found,) = backend.verkooporders_by_betalingskenmerk(entry.number)
            assert (found.id, found.nummer) == (entry.snelstart_id, entry.snelstart_nummer)
            assert (
                backend.get_relatie(found.relatie_id).relatiecode == entry.relatiecode == created.relatiecode
            )
        deboer = backend.relaties_by_email("p.deboer@example.nl", all_fields=False)[0]
        assert result.created[0].relatiecode == deboer.relatiecode
    log = essentials(config)
    first = result.created[0]
    assert (
        f"Magento order 300000001 → SnelStart verkooporder {first.snelstart_nummer}, relatie {deboer.relatiecode}"
        in log
    )
    assert any(m.startswith("Customer Sanne Visser created as relatie") for m in log)
    assert any(m.startswith("Article NIEUW-1 created") for m in log)

    again = run_import(config, "shop")
    assert (again.imported, again.failed, again.skipped) == (0, 0, 0)
    shop.order(items=[ITEM], number="300000004", billing=guest("nieuw@example.org"))
    third = run_import(config, "shop")
    assert third.imported == 1 and third.customers_matched == 1 and third.customers_created == 0
    assert snelstart_orders(local_admin)["300000004"] == 1


def test_paging_moves_the_cursor_page_by_page(shop, products, client_config, local_admin, monkeypatch):
    monkeypatch.setattr(engine, "PAGE_SIZE", 2)
    config = client_config()
    for i in range(5):
        shop.order(
            items=[ITEM], number=f"31000000{i}", billing=guest(f"k{i}@example.org"), age_seconds=900 - i
        )
    seen = []
    result = run_import(config, "shop", progress=lambda stage, done, total: seen.append((stage, done)))
    assert result.imported == 5
    assert seen[-1] == ("orders", 5)
    assert all(snelstart_orders(local_admin)[f"31000000{i}"] == 1 for i in range(5))


def test_a_failing_order_does_not_block_the_others_and_is_retried_by_id(
    shop, products, client_config, local_admin
):
    with LocalBackend(local_admin) as backend:
        for naam in ("Dubbel Een", "Dubbel Twee"):
            backend.create_relatie(
                NieuweRelatie(
                    naam=naam,
                    vestigingsadres=backend.get_relatie("1").vestigingsadres,
                    email="dubbel@example.nl",
                )
            )
    config = client_config()
    bad = shop.order(items=[ITEM], number="320000001", billing=guest("dubbel@example.nl", "Dubbel", "X"))
    shop.order(items=[ITEM], number="320000002", billing=guest("goed@example.org"))

    first = run_import(config, "shop")
    assert first.ok and (first.imported, first.failed) == (1, 1)
    ((number, reason),) = first.failures
    assert number == "320000001" and "Dubbel Een" in reason and "Dubbel Twee" in reason
    with state_of(config) as state:
        (failed,) = state.failed_list("shop")
        assert (failed.entity_id, failed.attempts) == (bad, 1)
        assert "Dubbel Een" in failed.reason
        cursor_after_first = state.get_cursor("shop")
    assert "320000001" not in snelstart_orders(local_admin)
    assert any("Magento order 320000001 failed:" in m for m in essentials(config))

    still = run_import(config, "shop")  # retried, fails again, counted
    assert still.failed == 1
    with state_of(config) as state:
        assert state.failed_get("shop", bad).attempts == 2

    with LocalBackend(local_admin) as backend:
        twee = backend.relaties_by_email("dubbel@example.nl", all_fields=True)[1]
        twee.email = "ander@example.nl"
        backend.update_relatie(twee)
    fixed = run_import(config, "shop")
    assert fixed.ok and (fixed.imported, fixed.failed) == (1, 0)
    assert snelstart_orders(local_admin)["320000001"] == 1
    with state_of(config) as state:
        assert state.failed_list("shop") == []
        assert state.ledger_get("shop", bad).state == "done"
        # the order came back through GET /v1/orders/{id}: the feed cursor had long moved past it
        assert state.get_cursor("shop") == cursor_after_first


def test_cost_setting_is_validated_only_when_an_order_needs_it(shop, products, client_config, local_admin):
    config = client_config(orders={"shipping_costs": {"line": "BESTAAT-NIET"}})
    shop.order(items=[ITEM], number="330000001", billing=guest("a@example.org"))
    shop.order(items=[ITEM], number="330000002", billing=guest("b@example.org"), shipping=False)
    result = run_import(config, "shop")
    assert (result.imported, result.failed) == (1, 1)
    assert result.failures[0][0] == "330000001" and "shipping_costs" in result.failures[0][1]
    assert snelstart_orders(local_admin).get("330000002") == 1


def test_customers_and_articles_created_for_an_order_that_fails_are_counted_and_logged(
    shop, products, client_config, local_admin
):
    # The customer and the new article are created before the shipping line turns out to be unconfigured.
    config = client_config(orders={"shipping_costs": None})
    shop.order(
        items=[{"sku": "NIEUW-1", "price": "41.3223"}], number="335000001", billing=guest("nieuw@example.org")
    )
    result = run_import(config, "shop")
    assert (result.imported, result.failed) == (0, 1)
    assert "orders.shipping_costs is not set" in result.failures[0][1]
    with LocalBackend(local_admin) as backend:
        (made,) = backend.relaties_by_email("nieuw@example.org", all_fields=False)
        assert len(backend.artikelen_by_code("NIEUW-1")) == 1
    assert (result.customers_created, result.customers_matched, result.articles_created) == (1, 0, 1)
    assert "customers created 1, matched 0; articles created 1" in result.summary()
    log = essentials(config)
    created = f"Customer Sanne Visser created as relatie {made.relatiecode} (Magento order 335000001)"
    assert created in log and "Article NIEUW-1 created (Magento order 335000001)" in log
    assert log.index(created) < next(i for i, m in enumerate(log) if "335000001 failed" in m)
    assert result.summary() in log
    # The retry finds both: matched, not created again.
    again = run_import(client_config(), "shop")
    assert (again.imported, again.customers_created, again.customers_matched, again.articles_created) == (
        1,
        0,
        1,
        0,
    )


@pytest.mark.parametrize(
    ("section", "wrong", "named"),
    [("orders", {"template": "Winkel"}, "orders.template 'Winkel': no such verkoopsjabloon in SnelStart; set "
      "orders.template to one it has (Webshop, Webshop excl)"),
     ("orders", {"template": None}, "orders.template is not set; set it to the verkoopsjabloon for web orders"),
     ("articles", {"revenue_group": 77}, "articles.revenue_group 77: no such omzetgroep in SnelStart"),
     ("articles", {"code_field": "Webshop-SKU"}, "articles.code_field 'Webshop-SKU': articles have no extra field "
      "of that name in SnelStart; set it to artikelcode or to the extra field that holds the Magento SKU (the "
      "extra fields of articles in SnelStart are 'EAN', 'Leverancierscode')")],
)  # fmt: skip
def test_a_profile_setting_no_order_can_use_stops_the_run_once_before_any_order(
    shop, products, client_config, local_admin, section, wrong, named
):
    numbers = [f"33600000{i}" for i in range(3)]
    for number in numbers:
        shop.order(items=[ITEM], number=number, billing=guest(f"{number}@example.org"))
    config = client_config(**{section: wrong})
    for dry_run in (True, False):
        result = run_import(config, "shop", dry_run=dry_run)
        assert not result.ok and result.error.startswith(named), result.error
        assert (result.imported, result.failed, result.failures, result.created) == (0, 0, [], [])
        if dry_run:
            assert any(named in line for line in result.lines), result.lines
    with state_of(config) as state:
        assert state.failed_list("shop") == [] and state.ledger_entries("shop") == []
        assert state.get_cursor("shop") is None  # the orders are still ahead of the cursor
        errors = [e.message for e in state.log_entries("shop") if e.level == "error"]
    assert len(errors) == 1 and errors[0].startswith(f"Import not started: {named}"), errors
    assert snelstart_orders(local_admin) == {"KASSA-2026-0002": 1}
    with LocalBackend(local_admin) as backend:  # no customer was matched or created for an order that failed
        for number in numbers:
            assert backend.relaties_by_email(f"{number}@example.org", all_fields=True) == []
    fixed = run_import(client_config(), "shop")
    assert fixed.ok and fixed.imported == 3
    assert all(snelstart_orders(local_admin)[n] == 1 for n in numbers)


def test_an_unknown_revenue_group_does_not_stop_a_profile_that_never_creates_articles(
    shop, products, client_config, local_admin
):
    shop.order(items=[ITEM], number="337000001", billing=guest("a@example.org"))
    result = run_import(client_config(articles={"revenue_group": 77, "processing": "manual"}), "shop")
    assert result.ok and result.imported == 1


def test_an_existing_article_at_another_vat_rate_is_warned_of_in_the_default_log(
    shop, products, client_config, local_admin
):
    # 1002 is in omzetgroep 1 (21 %) in SnelStart; this shop charges 9 % on it. SnelStart decides: imported.
    config = client_config()
    shop.order(items=[{**ITEM, "tax_percent": 9}], number="338000001", billing=guest("a@example.org"))
    shop.order(items=[ITEM], number="338000002", billing=guest("b@example.org"))
    result = run_import(config, "shop")
    assert (result.imported, result.failed) == (2, 0)
    warned = [m for m in essentials(config) if "is in omzetgroep" in m]
    assert len(warned) == 1, warned
    assert warned[0].startswith(
        "Magento order 338000001: article 1002 is in omzetgroep 1 'Omzet hoog' at 21 % VAT, but Magento charged "
        "9 % on this line: SnelStart books "
    ), warned


def test_an_order_snelstart_books_without_vat_needs_no_balancing_line_and_no_warning(
    shop, products, client_config, local_admin
):
    # Magento's 0 % to the sample's Belgian business with a btw-nummer (matched by its invoice e-mail) and to a
    # Swiss guest (export): SnelStart books both at 0 % too, so nothing goes on AFRONDING and nothing is warned.
    config = client_config(orders={"template": "Webshop excl"})
    zero = {**ITEM, "tax_percent": 0}
    belgian = guest("compta@dupont.example", "Camille", "Dupont", street="Rue Neuve 8", postcode="1000",
                    city="Bruxelles", country_id="BE", company="Dupont SRL")  # fmt: skip
    swiss = guest("lukas.meier@example.ch", "Lukas", "Meier", street="Bahnhofstrasse 1", postcode="8001",
                  city="Zürich", country_id="CH")  # fmt: skip
    shop.order(items=[zero], number="339000001", billing=belgian, tax_percent="0", shipping_amount="4.95")
    shop.order(items=[zero], number="339000002", billing=swiss, tax_percent="0", shipping_amount="4.95")
    result = run_import(config, "shop")
    assert (result.imported, result.failed) == (2, 0)
    with state_of(config) as state:
        assert [e.message for e in state.log_entries("shop") if e.level in ("warning", "error")] == []
    with LocalBackend(local_admin) as backend:
        for number in ("339000001", "339000002"):
            (made,) = backend.verkooporders_by_betalingskenmerk(number)
            codes = [backend.get_artikel(r.artikel_id).artikelcode for r in made.regels if r.artikel_id]
            assert codes == ["1002", "VERZEND"], (number, codes)
            # 2 × 20.6198 = 41.24 and 4.95 shipping, no VAT
            assert (made.totaal_excl_btw, made.totaal_incl_btw) == (Decimal("46.19"), Decimal("46.19"))
        dupont = backend.relaties_by_vat("BE0123456789")[0]
        assert backend.verkooporders_by_betalingskenmerk("339000001")[0].relatie_id == dupont.id


def test_deferred_orders_are_rechecked_imported_or_dropped(shop, products, client_config, local_admin):
    config = client_config(orders={"defer_days": 14})
    waiting = shop.order(
        items=[ITEM], number="340000001", billing=guest("a@example.org"), state="pending_payment"
    )
    review = shop.order(
        items=[ITEM], number="340000002", billing=guest("b@example.org"), state="payment_review"
    )
    old = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=20)
    shop.order(
        items=[ITEM],
        number="340000003",
        billing=guest("c@example.org"),
        state="pending_payment",
        created_at=old,
    )
    shop.order(items=[ITEM], number="340000004", billing=guest("d@example.org"), state="canceled")

    first = run_import(config, "shop")
    assert (first.imported, first.deferred, first.dropped, first.ignored) == (0, 2, 1, 1)
    with state_of(config) as state:
        assert [d.entity_id for d in state.deferred_list("shop")] == [waiting, review]
    assert any("340000003 dropped" in m and "defer_days" in m for m in essentials(config))

    set_state(shop, waiting, "processing")
    set_state(shop, review, "canceled")
    second = run_import(config, "shop")
    assert (second.imported, second.dropped, second.deferred) == (1, 1, 0)
    assert snelstart_orders(local_admin).get("340000001") == 1
    assert "340000002" not in snelstart_orders(local_admin)
    with state_of(config) as state:
        assert state.deferred_list("shop") == []
    assert any("340000002 dropped" in m and "canceled" in m for m in essentials(config))


def test_import_states_limit_what_is_imported(shop, products, client_config, local_admin):
    config = client_config(orders={"import_states": ["complete"]})
    shop.order(items=[ITEM], number="350000001", billing=guest("a@example.org"), state="processing")
    shop.order(items=[ITEM], number="350000002", billing=guest("b@example.org"), state="complete")
    result = run_import(config, "shop")
    assert (result.imported, result.ignored) == (1, 1)
    assert "350000002" in snelstart_orders(local_admin) and "350000001" not in snelstart_orders(local_admin)


def test_import_from_and_store_filter(shop, products, client_config, local_admin):
    shop.store("tweede", "Tweede winkel")
    long_ago = dt.datetime(2020, 5, 1, 12, 0)
    shop.order(items=[ITEM], number="360000001", billing=guest("a@example.org"), created_at=long_ago)
    shop.order(items=[ITEM], number="360000002", billing=guest("b@example.org"))
    shop.order(items=[ITEM], number="360000003", billing=guest("c@example.org"), store="tweede")
    config = client_config(magento={"import_from": "2021-01-01 00:00", "store": "default"})
    result = run_import(config, "shop")
    assert result.imported == 1
    kenmerken = snelstart_orders(local_admin)
    assert "360000002" in kenmerken and "360000001" not in kenmerken and "360000003" not in kenmerken


def test_moving_import_from_back_reads_the_orders_again_and_imports_none_twice(
    shop, products, client_config, local_admin
):
    first_day = {"import_from": "2000-01-01 00:00"}
    shop.order(
        items=[ITEM],
        number="361000001",
        billing=guest("a@example.org"),
        created_at=dt.datetime(2020, 5, 1, 12),
        state="complete",
    )
    ignored = shop.order(
        items=[ITEM],
        number="361000002",
        billing=guest("b@example.org"),
        created_at=dt.datetime(2020, 6, 1, 12),
        state="processing",
    )
    shop.order(items=[ITEM], number="361000003", billing=guest("c@example.org"), state="complete")
    config = client_config(magento=first_day, orders={"import_states": ["complete"]})
    first = run_import(config, "shop")
    assert (first.imported, first.ignored) == (2, 1), first.failures
    with state_of(config) as state:
        assert state.get_cursor_start("shop") == "1999-12-31T23:00:00+00:00"  # 2000-01-01 00:00 in Amsterdam

    # Now processing orders are wanted too, but the cursor is past the one ignored before: nothing happens,
    # neither with the same import_from nor with a later one.
    both = {"import_states": ["processing", "complete"]}
    for magento in (first_day, {"import_from": "2020-05-15 00:00"}):
        again = run_import(client_config(magento=magento, orders=both), "shop")
        assert (again.imported, again.ignored, again.skipped) == (0, 0, 0)
    assert not any("magento.import_from moved back" in m for m in essentials(config))

    earlier = client_config(magento={"import_from": "1999-06-01 00:00"}, orders=both)
    preview = run_import(earlier, "shop", dry_run=True)
    assert (preview.imported, preview.skipped) == (1, 2)
    with state_of(config) as state:
        assert state.get_cursor_start("shop") == "1999-12-31T23:00:00+00:00"  # a dry run changes nothing

    moved = run_import(earlier, "shop")
    assert moved.ok, moved.error
    assert (moved.imported, moved.skipped, moved.ignored, moved.failed) == (1, 2, 0, 0), moved.failures
    assert [c.magento_number for c in moved.created] == ["361000002"]
    assert snelstart_orders(local_admin) == {
        "KASSA-2026-0002": 1,
        "361000001": 1,
        "361000002": 1,
        "361000003": 1,
    }
    assert (
        "magento.import_from moved back to 1999-06-01 00:00: the Magento orders from then on are read again "
        "(the ones already imported are skipped)" in essentials(config)
    )
    with state_of(config) as state:
        assert state.get_cursor_start("shop") == "1999-05-31T22:00:00+00:00"
        assert state.ledger_get("shop", ignored).state == "done"
    # The new start is remembered: the next run reads on from the cursor.
    last = run_import(earlier, "shop")
    assert (last.imported, last.skipped, last.ignored) == (0, 0, 0)
    assert len(snelstart_orders(local_admin)) == 4


def test_a_cursor_without_a_remembered_start_takes_import_from_as_it_is(
    shop, products, client_config, local_admin
):
    shop.order(
        items=[ITEM],
        number="362000001",
        billing=guest("a@example.org"),
        created_at=dt.datetime(2020, 5, 1, 12),
    )
    config = client_config()
    assert run_import(config, "shop").imported == 1
    with state_of(config) as state:
        state.set_value("shop", state.CURSOR_START_KEY, None)  # a state file of an older koppel
    earlier = client_config(magento={"import_from": "1999-06-01 00:00"})
    result = run_import(earlier, "shop")
    assert (result.imported, result.skipped) == (0, 0)  # not read again: where the cursor began is unknown
    with state_of(config) as state:
        assert state.get_cursor_start("shop") == "1999-05-31T22:00:00+00:00"
    assert snelstart_orders(local_admin)["362000001"] == 1


def _prepare_and_create(config, local_admin, order_doc):
    from client.rules.salesorder import prepare_order

    with LocalBackend(local_admin) as backend:
        prepared = prepare_order(order_doc, config.profile("shop"), backend, zone=config.zone)
        return backend.create_verkooporder(prepared.verkooporder)


def interrupted_creates(shop, config, local_admin, agent_server, prefix: str):  # noqa: ANN001, ANN201
    """Two orders (numbers prefix + 1, prefix + 2) whose run died after the pending mark: SnelStart committed
    the first (before the ledger could say done), the second never reached it. Returns (id 1, id 2, order 1)."""
    first = shop.order(items=[ITEM], number=f"{prefix}1", billing=guest("a@example.org"), age_seconds=900)
    second = shop.order(items=[ITEM], number=f"{prefix}2", billing=guest("b@example.org"), age_seconds=800)
    with agent_server.client() as agent:
        doc = agent.order(first)
    with state_of(config) as state:
        for entity_id, number in ((first, f"{prefix}1"), (second, f"{prefix}2")):
            state.ledger_mark_pending("shop", entity_id, number=number, betalingskenmerk=number)
    return first, second, _prepare_and_create(config, local_admin, doc)


def test_pending_with_order_in_snelstart_is_adopted_not_created_again(
    shop, products, client_config, local_admin, agent_server
):
    config = client_config()
    created_first, pending_only, made = interrupted_creates(
        shop, config, local_admin, agent_server, "37000000"
    )

    # Adoption must not depend on orders.unique_payment_reference: run with the check off.
    result = run_import(client_config(orders={"unique_payment_reference": False}), "shop")
    assert result.imported == 2 and result.failed == 0
    assert snelstart_orders(local_admin)["370000001"] == 1
    assert snelstart_orders(local_admin)["370000002"] == 1
    with state_of(config) as state:
        adopted = state.ledger_get("shop", created_first)
        assert (adopted.state, adopted.how, adopted.snelstart_id) == ("done", "adopted", made.id)
        assert state.ledger_get("shop", pending_only).how == "created"
    assert any("370000001" in m and "not created twice" in m for m in essentials(config))


def test_unique_payment_reference_records_already_imported_and_reports_clashes(
    shop, products, client_config, local_admin, agent_server
):
    config = client_config()
    by_hand = shop.order(items=[ITEM], number="380000001", billing=guest("a@example.org"))
    with agent_server.client() as agent:
        _prepare_and_create(
            config, local_admin, agent.order(by_hand)
        )  # entered in SnelStart before koppel ran
    # Someone booked another sale in SnelStart with the number the shop gives its next order.
    with LocalBackend(local_admin) as backend:
        devries = backend.relaties_by_code(2)[0]
        kopjes = backend.artikelen_by_code("1002")[0]
        backend.create_verkooporder(
            NieuweVerkooporder(
                relatie_id=devries.id, datum=dt.date(2026, 11, 20), sjabloon_id=None, prijs_incl_btw=True,
                omschrijving="Telefonische bestelling", betalingskenmerk="380000003",
                regels=[OrderRegel(kopjes.id, "", Decimal("5"), Decimal("24.95"))],
            )
        )  # fmt: skip
    shop.order(items=[ITEM], number="380000003", billing=guest("b@example.org"))
    shop.store("tweede", "Tweede winkel")
    shop.order(items=[ITEM], number="380000002", billing=guest("c@example.org"))
    twin = shop.order(items=[ITEM, ITEM], number="380000002", billing=guest("d@example.org"), store="tweede")

    result = run_import(config, "shop")
    assert (result.imported, result.skipped, result.failed) == (1, 1, 2), result.failures
    assert snelstart_orders(local_admin) == {
        "KASSA-2026-0002": 1,
        "380000001": 1,
        "380000002": 1,
        "380000003": 1,
    }
    failures = dict(result.failures)
    assert "verkooporder" in failures["380000003"] and "unique_payment_reference" in failures["380000003"]
    assert "another order (relatie 2, total 124.75" in failures["380000003"]
    assert (
        f"entity_id {twin}" in failures["380000002"]
        and "Magento order 380000002 (entity_id" in failures["380000002"]
    )
    with state_of(config) as state:
        assert state.ledger_get("shop", by_hand).how == "already_imported"
    assert any("380000001 already in SnelStart" in m for m in essentials(config))

    # With the check off, the second store's order is imported as its own order.
    relaxed = run_import(client_config(orders={"unique_payment_reference": False}), "shop")
    assert relaxed.imported == 2
    assert snelstart_orders(local_admin)["380000002"] == 2
    assert snelstart_orders(local_admin)["380000003"] == 2


def test_agent_down_stops_the_run_cleanly(shop, products, client_config, local_admin, agent_server):
    config = client_config()
    shop.order(items=[ITEM], number="390000001", billing=guest("a@example.org"))
    agent_server.stop()
    result = run_import(config, "shop")
    assert not result.ok and "connection refused" in result.error
    assert result.imported == 0
    with state_of(config) as state:
        assert state.get_cursor("shop") is None
        assert any("Import stopped" in e.message for e in state.log_entries("shop", essential_only=True))
    agent_server.start()
    assert run_import(config, "shop").imported == 1


def test_agent_lost_mid_run_resumes_without_duplicates(
    shop, products, client_config, local_admin, agent_server, monkeypatch
):
    monkeypatch.setattr(engine, "PAGE_SIZE", 2)
    config = client_config()
    for i in range(6):
        shop.order(
            items=[ITEM], number=f"39100000{i}", billing=guest(f"k{i}@example.org"), age_seconds=900 - i
        )

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage == "orders" and done == 3:
            agent_server.stop()

    first = run_import(config, "shop", progress=progress)
    assert not first.ok and first.imported == 4  # page 2 was already fetched; page 3 could not be
    agent_server.start()
    second = run_import(config, "shop")
    assert second.ok and second.imported == 2 and second.skipped == 0
    assert all(snelstart_orders(local_admin)[f"39100000{i}"] == 1 for i in range(6))


class FlakySnelStart(LocalBackend):
    """The real local backend whose n-th create commits and then reports an unknown outcome (a timeout)."""

    fail_on = 2

    def create_verkooporder(self, order):  # noqa: ANN001, ANN201
        created = super().create_verkooporder(order)
        FlakySnelStart.fail_on -= 1
        if FlakySnelStart.fail_on == 0:
            raise SnelStartUnavailable("timeout while waiting for SnelStart")
        return created


def test_unknown_create_outcome_stops_the_run_and_is_resolved_next_time(
    shop, products, client_config, local_admin
):
    config = client_config(orders={"unique_payment_reference": False})
    ids = [
        shop.order(
            items=[ITEM], number=f"39200000{i}", billing=guest(f"k{i}@example.org"), age_seconds=900 - i
        )
        for i in range(3)
    ]
    with FlakySnelStart(local_admin) as flaky:
        first = run_import(config, "shop", backend=flaky)
    assert not first.ok and "SnelStart is not available" in first.error
    with state_of(config) as state:
        assert state.ledger_get("shop", ids[1]).state == "pending"
        assert state.ledger_get("shop", ids[2]) is None
        assert state.get_cursor("shop") is None  # the page was not finished
    second = run_import(config, "shop")
    assert second.ok and (second.imported, second.skipped) == (2, 1)
    assert all(snelstart_orders(local_admin)[f"39200000{i}"] == 1 for i in range(3))
    with state_of(config) as state:
        assert state.ledger_get("shop", ids[1]).how == "adopted"


def test_an_edited_order_is_imported_with_a_warning_about_its_original(
    shop, products, client_config, local_admin
):
    config = client_config()
    original = shop.order(items=[ITEM], number="393000001", billing=guest("a@example.org"), age_seconds=900)
    first = run_import(config, "shop")
    assert first.imported == 1
    set_state(shop, original, "canceled")
    shop.order(
        items=[ITEM, ITEM],
        number="393000001-1",
        billing=guest("a@example.org"),
        relation_parent_id=original,
        original_increment_id="393000001",
        age_seconds=60,
    )
    second = run_import(config, "shop")
    assert second.imported == 1
    assert snelstart_orders(local_admin)["393000001-1"] == 1
    nummer = first.created[0].snelstart_nummer
    assert any(
        "393000001-1 is an edit of order 393000001" in m and f"verkooporder {nummer}" in m
        for m in essentials(config)
    )


def test_module_entry_runs_one_profile(shop, products, client_config, local_admin, tmp_path):
    import subprocess
    import sys

    config = client_config()
    shop.order(items=[ITEM], number="394000001", billing=guest("a@example.org"))
    command = [sys.executable, "-m", "client.engine", "--config", str(config.path)]
    wrong = subprocess.run([*command, "--profile", "nope"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 2 and "no profile named 'nope'" in wrong.stderr
    dry = subprocess.run(
        [*command, "--profile", "shop", "--dry-run"], capture_output=True, text=True, timeout=120
    )
    assert dry.returncode == 0, dry.stderr
    assert (
        "Magento order 394000001: would create a verkooporder" in dry.stdout
        and "would import 1" in dry.stdout
    )
    real = subprocess.run([*command, "--profile", "shop"], capture_output=True, text=True, timeout=120)
    assert real.returncode == 0 and "imported 1" in real.stdout
    assert snelstart_orders(local_admin)["394000001"] == 1


def test_koppel_run_logs_every_line_under_its_task(shop, products, client_config, local_admin):
    from client.cli import main

    config = client_config()
    shop.order(items=[ITEM], number="395000001", billing=guest("p.deboer@example.nl", "P.", "de Boer"))
    shop.order(
        items=[{"sku": "NIEUW-2", "price": "9.0909"}], number="395000002", billing=guest("n@example.org")
    )
    assert main(["--config", str(config.path), "run", "--task", "import_orders"]) == 0
    with state_of(config) as state:
        entries = state.log_entries("shop")
    per_order = [e for e in entries if e.order in ("395000001", "395000002")]
    # The engine's own lines: each order's outcome, the new customer and article, and the run summary.
    assert len(per_order) >= 4 and any("SnelStart verkooporder" in e.message for e in per_order)
    assert any(e.message.startswith("shop: imported 2") for e in entries)
    assert {e.task for e in entries} == {"import_orders"}, [(e.task, e.message) for e in entries]


def test_an_interrupted_create_is_settled_even_when_the_order_changed_state_meanwhile(
    shop, products, client_config, local_admin, agent_server
):
    """A run died between asking SnelStart and recording the answer; before the next run the shop canceled
    the order. SnelStart's answer is looked up all the same: the ledger must say what SnelStart holds."""
    config = client_config()
    created, never, made = interrupted_creates(shop, config, local_admin, agent_server, "39600000")
    set_state(shop, created, "canceled")
    set_state(shop, never, "canceled")

    result = run_import(config, "shop")

    assert result.ok and (result.imported, result.ignored, result.failed) == (1, 1, 0)
    assert snelstart_orders(local_admin).get("396000001") == 1  # held once, not created again
    assert "396000002" not in snelstart_orders(local_admin)  # canceled before its create: never made
    with state_of(config) as state:
        adopted = state.ledger_get("shop", created)
        assert (adopted.state, adopted.how, adopted.snelstart_id) == ("done", "adopted", made.id)
        assert state.ledger_get("shop", never) is None  # the stale pending mark is gone
        assert state.ledger_entries("shop", state="pending") == []
    log = essentials(config)
    assert any("396000001" in m and "not created twice" in m for m in log)
    assert any("396000001 is now canceled" in m and f"verkooporder {made.nummer}" in m for m in log)


def test_a_snelstart_refusal_fails_that_order_only_and_is_retried(
    shop, products, client_config, local_admin, agent_server
):
    """Article 0999 is nonactief in the sample administration; SnelStart refuses an order line on it."""
    shop.product("0999", "Filterhouder")
    config = client_config()
    refused = shop.order(
        items=[{"sku": "0999", "price": "9.9174"}], number="397000001", billing=guest("a@example.org"),
        age_seconds=900,
    )  # fmt: skip
    shop.order(items=[ITEM], number="397000002", billing=guest("b@example.org"), age_seconds=800)

    first = run_import(config, "shop")

    assert first.ok and (first.imported, first.failed) == (1, 1)
    ((number, reason),) = first.failures
    assert number == "397000001" and "'0999' is nonactief" in reason
    assert (
        "397000001" not in snelstart_orders(local_admin) and snelstart_orders(local_admin)["397000002"] == 1
    )
    with state_of(config) as state:
        assert state.ledger_get("shop", refused) is None  # refused means not created: no pending mark left
        (failed,) = state.failed_list("shop")
        assert failed.entity_id == refused and "nonactief" in failed.reason
        cursor = state.get_cursor("shop")
    assert cursor is not None
    with agent_server.client() as agent:
        assert agent.orders(after=cursor)["orders"] == []  # the cursor moved past both orders
    assert any("Magento order 397000001 failed:" in m and "nonactief" in m for m in essentials(config))

    with LocalBackend(local_admin) as backend:
        (artikel,) = backend.artikelen_by_code("0999")
        artikel.is_non_actief = False
        backend.update_artikel(artikel)
    second = run_import(config, "shop")
    assert second.ok and (second.imported, second.failed) == (1, 0)
    assert snelstart_orders(local_admin)["397000001"] == 1
    with state_of(config) as state:
        assert state.failed_list("shop") == [] and state.ledger_get("shop", refused).state == "done"
