"""Reading web stock from SnelStart through each backend: the local administration directly, and the same
administration behind the B2B API fake. Both must give the same figures; a failing read must raise."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from client.snelstart.base import NieuweVerkooporder, OrderRegel, SnelStartBackend
from client.snelstart.local import LocalBackend
from client.webstock import StockExportError, read_web_stock

D = Decimal


def web_order(
    local: LocalBackend, kenmerk: str | None, lines: list[tuple[str, int]], status: str = "Order"
) -> None:
    klant = local.relaties_by_code(4)[0].id
    sjabloon = next(s.id for s in local.sjablonen() if s.omschrijving == "Webshop")
    made = local.create_verkooporder(
        NieuweVerkooporder(
            relatie_id=klant,
            datum=dt.date(2026, 12, 3),
            sjabloon_id=sjabloon,
            prijs_incl_btw=True,
            omschrijving=None,
            betalingskenmerk=kenmerk,
            regels=[
                OrderRegel(local.artikelen_by_code(code)[0].id, "", D(qty), D("10")) for code, qty in lines
            ],
        )
    )
    if status != "Order":
        local.set_proces_status(made.id, status)


def test_same_web_stock_through_every_backend(
    snelstart_backend: SnelStartBackend, snelstart_setup: LocalBackend
) -> None:
    free = {a.artikelcode: a.vrije_voorraad for a in snelstart_setup.stock_artikelen()}
    web_order(snelstart_setup, "100000501", [("1001", 3), ("1002", 1)])
    # The gift set (recipe: beans + cups, no stock control of its own) claims its parts when not placed as lines.
    web_order(snelstart_setup, "100000502", [("1005", 2)])
    web_order(snelstart_setup, None, [("1003", 5)])  # typed in by hand: not a web order
    web_order(snelstart_setup, "100000503", [("1003", 1)], status="Pakbon")  # processed: in free stock
    snelstart_backend.refresh()
    free_now = {a.artikelcode: a.vrije_voorraad for a in snelstart_setup.stock_artikelen()}

    web, articles, open_orders = read_web_stock(snelstart_backend, "artikelcode", "never")
    assert articles == len(free) and open_orders == 2
    assert web.by_sku == {
        "1001": free["1001"] - 3 - 2,
        "1002": free["1002"] - 1 - 2,
        "1003": free_now["1003"],
        "1004": free["1004"],
        "1006": max(free["1006"], D(0)),
        # The gift set itself: as many as its parts allow (one of each per set).
        "1005": min(free["1001"] - 3 - 2, free["1002"] - 1 - 2),
    }
    assert free_now["1003"] == free["1003"] - 1  # SnelStart itself counts the pakbon
    assert web.problems == []


def test_sku_from_an_extra_field_through_every_backend(
    snelstart_backend: SnelStartBackend, snelstart_setup: LocalBackend
) -> None:
    free = {a.extra_velden["EAN"]: a.vrije_voorraad for a in snelstart_setup.stock_artikelen()}
    web, _, _ = read_web_stock(snelstart_backend, "EAN", "never")
    assert web.by_sku == {ean: max(qty, D(0)) for ean, qty in free.items()}


def test_a_failing_b2b_read_raises(b2b_fake, b2b_backend) -> None:  # noqa: ANN001 - fixtures from conftest_b2b
    b2b_fake.inject("GET", "/verkooporders", "503", times=50, after=0)
    with pytest.raises(StockExportError, match="no stock was sent"):
        read_web_stock(b2b_backend, "artikelcode", "never")


def test_an_order_processed_between_the_two_reads_errs_low_never_high(
    snelstart_backend: SnelStartBackend, snelstart_setup: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shop prints the pakbon of an open web order while the export reads SnelStart. Whichever read comes
    first, the order must not vanish from both (free stock not yet lowered, claim already gone): that would
    offer its units twice. Counted in both is allowed: one run too low, corrected by the next."""
    web_order(snelstart_setup, "100000601", [("1003", 2)])
    snelstart_backend.refresh()
    order_id = snelstart_setup.verkooporders_by_betalingskenmerk("100000601")[0].id
    free_before = {a.artikelcode: a.vrije_voorraad for a in snelstart_setup.stock_artikelen()}
    reads: list[str] = []

    def hooked(name: str) -> Callable[[], list]:
        original = getattr(snelstart_backend, name)

        def read() -> list:
            rows = original()
            reads.append(name)
            if len(reads) == 1:
                snelstart_setup.set_proces_status(order_id, "Pakbon")
            return rows

        return read

    for name in ("open_web_orders", "stock_artikelen"):
        monkeypatch.setattr(snelstart_backend, name, hooked(name))
    racing, _, open_orders = read_web_stock(snelstart_backend, "artikelcode", "never")
    assert set(reads) == {"open_web_orders", "stock_artikelen"}
    monkeypatch.undo()

    after = {a.artikelcode: a.vrije_voorraad for a in snelstart_setup.stock_artikelen()}
    assert after["1003"] == free_before["1003"] - 2  # the pakbon lowers SnelStart's free stock
    settled, _, _ = read_web_stock(snelstart_backend, "artikelcode", "never")
    assert settled.by_sku["1003"] == after["1003"]  # no claim any more: the order is processed
    assert racing.by_sku["1003"] <= settled.by_sku["1003"]
    assert open_orders == 1 and racing.by_sku["1003"] == after["1003"] - 2
