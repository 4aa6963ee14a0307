"""The b2b backend against the fake B2B API (backed by a local administration, every message OpenAPI-validated)."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from client.snelstart.b2b import B2BBackend
from client.snelstart.base import (
    Adres,
    NieuwArtikel,
    NieuweRelatie,
    NieuweVerkooporder,
    OrderRegel,
    SnelStartBackend,
    SnelStartRefusal,
    SnelStartUnavailable,
)
from client.snelstart.local import LocalBackend
from tests.client.b2b_fake import FakeSnelStart
from tests.client.conftest_b2b import make_b2b_backend


def _order(backend: B2BBackend, relatie_id: str, kenmerk: str, **kw: object) -> NieuweVerkooporder:
    sjabloon = next(s for s in backend.sjablonen() if s.prijs_incl_btw)
    artikel = backend.artikelen_by_code("1001")[0]
    fields: dict[str, object] = {
        "relatie_id": relatie_id,
        "datum": dt.date(2026, 12, 3),
        "sjabloon_id": sjabloon.id,
        "prijs_incl_btw": True,
        "omschrijving": f"Webshop-order {kenmerk}",
        "betalingskenmerk": kenmerk,
        "regels": [
            OrderRegel(
                artikel_id=artikel.id, omschrijving="Koffie", aantal=Decimal("2"), stuksprijs=Decimal("12.10")
            )
        ],
    }
    fields.update(kw)
    return NieuweVerkooporder(**fields)  # type: ignore[arg-type]


def _klant(backend: B2BBackend) -> str:
    return backend.relaties_by_code(1)[0].id


def test_is_a_snelstart_backend(b2b_backend: B2BBackend) -> None:
    assert isinstance(b2b_backend, SnelStartBackend)
    assert b2b_backend.name == "b2b"
    assert b2b_backend.administration_name() == "Voorbeeld Koffie BV"


def test_mirror_holds_what_the_administration_holds(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    local = b2b_fake.local
    relaties = b2b_backend.mirror.all("relatie")
    assert len(relaties) == len(b2b_fake._ids("SELECT id FROM relaties")) > 0
    for r in relaties:
        original = local.get_relatie(str(int(r.id[-12:], 16)))
        assert original is not None
        assert (r.naam, r.relatiecode, r.email, r.btw_nummer) == (
            original.naam,
            original.relatiecode,
            original.email,
            original.btw_nummer,
        )
        assert r.vestigingsadres == original.vestigingsadres
        assert r.factuur_email == original.factuur_email
        assert r.extra_velden == original.extra_velden
    artikel = b2b_backend.artikelen_by_code("1001")[0]
    original_a = local.artikelen_by_code("1001")[0]
    assert (artikel.verkoopprijs, artikel.vrije_voorraad, artikel.extra_velden) == (
        original_a.verkoopprijs,
        original_a.vrije_voorraad,
        original_a.extra_velden,
    )


def test_matching_lookups_make_no_api_calls(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    before = b2b_backend.http.calls
    jansen = b2b_backend.relaties_by_email("INFO@jansen-installatie.nl ", all_fields=False)
    assert [r.relatiecode for r in jansen] == [1]
    assert (
        b2b_backend.relaties_by_email_fields("boekhouding@jansen-installatie.nl", ("factuur_cc",))[
            0
        ].relatiecode
        == 1
    )
    assert b2b_backend.relaties_by_vat("NL812345678B01")[0].relatiecode == 1
    assert b2b_backend.relaties_by_kvk("24 12 34 56")[0].relatiecode == 1
    assert b2b_backend.relaties_by_name("Jansen Installatietechniek", "NL", "3012KL")[0].relatiecode == 1
    assert b2b_backend.relaties_by_name("Jansen Installatietechniek", "BE", None) == []
    assert b2b_backend.relaties_by_extra_veld("magento klant-id", "1001")[0].relatiecode == 1
    assert b2b_backend.artikelen_by_code("8712345000011", "EAN")[0].artikelcode == "1001"
    assert b2b_backend.get_relatie(jansen[0].id) is not None
    assert b2b_backend.http.calls == before


def test_same_answers_as_local(snelstart_backend: SnelStartBackend, snelstart_setup: LocalBackend) -> None:
    """The lookups the rules use answer the same on both backends (ids differ, content does not)."""
    b = snelstart_backend
    for email in ("info@jansen-installatie.nl", "facturen@jansen-installatie.nl"):
        got = sorted(r.relatiecode for r in b.relaties_by_email(email, all_fields=True))
        want = sorted(r.relatiecode for r in snelstart_setup.relaties_by_email(email, all_fields=True))
        assert got == want and got
    assert [a.artikelcode for a in b.stock_artikelen()] == [
        a.artikelcode for a in snelstart_setup.stock_artikelen()
    ]
    assert [(s.omschrijving, s.prijs_incl_btw) for s in b.sjablonen()] == [
        (s.omschrijving, s.prijs_incl_btw) for s in snelstart_setup.sjablonen()
    ]
    assert [(g.nummer, g.btw_percentage) for g in b.omzetgroepen()] == [
        (g.nummer, g.btw_percentage) for g in snelstart_setup.omzetgroepen()
    ]
    assert b.voorraad_vanaf_niveau() == snelstart_setup.voorraad_vanaf_niveau()


def test_refresh_by_modified_on_sees_changes_made_elsewhere(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    local = b2b_fake.local
    jansen = local.relaties_by_code(1)[0]
    jansen.email = "nieuw@jansen-installatie.nl"
    local.update_relatie(jansen)
    local.create_relatie(
        NieuweRelatie(
            naam="Elders BV",
            vestigingsadres=Adres(None, "Markt 1", "5611 AA", "Eindhoven", "NL"),
            email="x@elders.nl",
        )
    )
    b2b_fake.calls.clear()
    b2b_backend.refresh()
    filters = [
        args.get("$filter", "")
        for method, path, args in b2b_fake.calls
        if path in ("/relaties", "/artikelen")
    ]
    assert filters and all(f.startswith("ModifiedOn gt datetime'") for f in filters)
    assert [
        r.relatiecode for r in b2b_backend.relaties_by_email("nieuw@jansen-installatie.nl", all_fields=False)
    ] == [1]
    assert b2b_backend.relaties_by_email("info@jansen-installatie.nl", all_fields=False) == []
    assert b2b_backend.relaties_by_email("x@elders.nl", all_fields=False)[0].naam == "Elders BV"


def test_mirror_survives_a_new_backend_on_the_same_state(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart, tmp_path: Path
) -> None:
    second = make_b2b_backend(b2b_fake, tmp_path / "state-mirror.sqlite")
    try:
        b2b_fake.calls.clear()
        second.refresh()
        # A warm mirror reads only what changed: one (short) page per entity, with a ModifiedOn filter.
        assert len(b2b_fake.calls) == 2
        assert second.relaties_by_code(1)[0].naam == b2b_backend.relaties_by_code(1)[0].naam
    finally:
        second.close()


def test_create_relatie_normalises_vat_and_writes_through(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    created = b2b_backend.create_relatie(
        NieuweRelatie(
            naam="Bakkerij De Korf V.O.F.",
            vestigingsadres=Adres("P. Korf", "Kerkstraat 5", "1234 ab", "Utrecht", "NL"),
            email="info@korf.nl",
            btw_nummer="nl 8123.45.679.b01",
            kvk_nummer="1234 5678",
        )
    )
    assert created.btw_nummer == "NL812345679B01"
    assert created.kvk_nummer == "12345678"
    stored = b2b_fake.local.relaties_by_code(created.relatiecode)[0]
    assert stored.btw_nummer == "NL812345679B01"
    calls = b2b_backend.http.calls
    assert b2b_backend.relaties_by_email("info@korf.nl", all_fields=False)[0].id == created.id
    assert b2b_backend.http.calls == calls  # found in the mirror, written through on create


def test_create_relatie_with_extra_field(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    created = b2b_backend.create_relatie(
        NieuweRelatie(
            naam="Extra BV",
            vestigingsadres=Adres(None, "Laan 1", "1000 AA", "Amsterdam", "NL"),
            extra_velden={"Magento klant-id": "2002"},
        )
    )
    assert created.extra_velden == {"Magento klant-id": "2002"}
    assert b2b_backend.relaties_by_extra_veld("Magento klant-id", "2002")[0].id == created.id


def test_create_and_update_artikel(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    group = b2b_backend.omzetgroepen()[0]
    created = b2b_backend.create_artikel(
        NieuwArtikel(
            artikelcode="NIEUW-1",
            omschrijving="Nieuw artikel",
            omzetgroep_id=group.id,
            verkoopprijs=Decimal("9.99"),
        )
    )
    assert created.verkoopprijs == Decimal("9.99")
    assert b2b_backend.artikelen_by_code("nieuw-1")[0].id == created.id
    created.omschrijving = "Nieuw artikel, beter"
    created.verkoopprijs = Decimal("10.49")
    b2b_backend.update_artikel(created)
    stored = b2b_fake.local.artikelen_by_code("NIEUW-1")[0]
    assert (stored.omschrijving, stored.verkoopprijs) == ("Nieuw artikel, beter", Decimal("10.49"))


def test_verkooporder_maps_onto_the_b2b_model(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    order = _order(
        b2b_backend,
        _klant(b2b_backend),
        "100000123",
        afleveradres=Adres("K. Klant", "Rue Neuve 3", "1000", "Brussel", "BE"),
        orderreferentie="Magento #100000123",
        regels=[
            OrderRegel(
                artikel_id=b2b_backend.artikelen_by_code("1001")[0].id,
                omschrijving="Koffie",
                aantal=Decimal("1.5"),
                stuksprijs=Decimal("18.95"),
                kortings_percentage=Decimal("10"),
            ),
            OrderRegel(artikel_id=None, omschrijving="Graag bellen voor levering"),
        ],
    )
    created = b2b_backend.create_verkooporder(order)
    posted = [c for c in b2b_fake.calls if c[0] == "POST" and c[1] == "/verkooporders"]
    assert len(posted) == 1
    stored = b2b_fake.local.verkooporders_by_betalingskenmerk("100000123")
    assert len(stored) == 1
    assert stored[0].proces_status == "Order"
    assert stored[0].afleveradres is not None and stored[0].afleveradres.land == "BE"
    assert stored[0].regels[0].kortings_percentage == Decimal("10")
    assert stored[0].regels[0].aantal == Decimal("1.5")
    assert created.totaal_incl_btw == stored[0].totaal_incl_btw
    assert created.betalingskenmerk == "100000123"
    assert [o.id for o in b2b_backend.verkooporders_by_betalingskenmerk("100000123")] == [created.id]
    assert created.id in {o.id for o in b2b_backend.open_web_orders()}
    assert b2b_backend.last_order_sjabloon(order.relatie_id) == order.sjabloon_id


def test_vat_mode_comes_from_the_order(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    excl = next(s for s in b2b_backend.sjablonen() if not s.prijs_incl_btw)
    created = b2b_backend.create_verkooporder(
        _order(b2b_backend, _klant(b2b_backend), "EX-1", sjabloon_id=excl.id, prijs_incl_btw=False)
    )
    # 2 × 12.10 excl. at the low rate (9 %) of article 1001's omzetgroep
    assert created.totaal_excl_btw == Decimal("24.20")
    assert created.totaal_incl_btw == Decimal("26.38")


def test_unknown_country_stops_the_order_and_sends_nothing(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    b2b_fake.calls.clear()
    order = _order(
        b2b_backend,
        _klant(b2b_backend),
        "LAND-1",
        afleveradres=Adres(None, "Main St 1", "99999", "Nowhere", "ZZ"),
    )
    with pytest.raises(SnelStartRefusal, match="'ZZ'"):
        b2b_backend.create_verkooporder(order)
    assert not [c for c in b2b_fake.calls if c[0] == "POST"]
    assert b2b_fake.local.verkooporders_by_betalingskenmerk("LAND-1") == []


def test_long_texts_are_shortened_with_a_warning(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart, caplog: pytest.LogCaptureFixture
) -> None:
    artikel = b2b_backend.artikelen_by_code("1001")[0]
    long_text = "Gravure: " + "x" * 300
    order = _order(
        b2b_backend,
        _klant(b2b_backend),
        "LANG-1",
        regels=[
            OrderRegel(
                artikel_id=artikel.id, omschrijving=long_text, aantal=Decimal("1"), stuksprijs=Decimal("5")
            )
        ],
        afleveradres=Adres(
            None, "Een heel erg lange straatnaam die niet in SnelStart past 123", "1234AB", "Utrecht", "NL"
        ),
    )
    with caplog.at_level(logging.WARNING, logger="koppel.snelstart.b2b"):
        b2b_backend.create_verkooporder(order)
    stored = b2b_fake.local.verkooporders_by_betalingskenmerk("LANG-1")[0]
    assert stored.regels[0].omschrijving == long_text[:250]
    assert stored.afleveradres is not None and len(stored.afleveradres.straat or "") == 50
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "description of line 1" in messages and "straat" in messages
    assert len(b2b_backend.warnings) == 2


def test_footer_costs_are_refused(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    order = _order(b2b_backend, _klant(b2b_backend), "KOST-1", kostensoort_1=Decimal("4.95"))
    with pytest.raises(SnelStartRefusal, match="cost article|order line"):
        b2b_backend.create_verkooporder(order)
    assert b2b_fake.local.verkooporders_by_betalingskenmerk("KOST-1") == []


def test_snelstart_refusal_reaches_the_caller_with_its_code(b2b_backend: B2BBackend) -> None:
    with pytest.raises(SnelStartRefusal, match="REL-0008"):
        b2b_backend.create_relatie(
            NieuweRelatie(
                naam="Dubbel", vestigingsadres=Adres(None, "A 1", "1000AA", "Amsterdam", "NL"), relatiecode=1
            )
        )


def test_stock_reads_every_page_of_artikelen(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    group = b2b_backend.omzetgroepen()[0]
    for n in range(30):  # with the sample's stock articles: more than 25, two pages
        b2b_fake.local.create_artikel(
            NieuwArtikel(
                artikelcode=f"S{n:03d}",
                omschrijving=f"Voorraad {n}",
                omzetgroep_id="1",
                voorraad_controle=True,
            )
        )
    assert group.nummer == 1
    b2b_fake.calls.clear()
    stock = b2b_backend.stock_artikelen()
    pages = [c for c in b2b_fake.calls if c[1] == "/artikelen"]
    assert [p[2]["$top"] for p in pages] == ["25", "25"]
    # Each page starts at the last row of the one before, so that a list that moves meanwhile is noticed.
    assert [p[2]["$skip"] for p in pages] == ["0", "24"]
    assert {p[2]["$filter"] for p in pages} == {"VoorraadControle eq true and IsNonActief eq false"}
    assert {a.artikelcode for a in stock} == {a.artikelcode for a in b2b_fake.local.stock_artikelen()}


def test_prijsafspraken_through_the_api(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    from client.snelstart.base import PrijsAfspraak

    relatie = b2b_backend.relaties_by_code(1)[0]
    artikel = b2b_backend.artikelen_by_code("1001")[0]
    local_rel = b2b_fake.local.relaties_by_code(1)[0]
    local_art = b2b_fake.local.artikelen_by_code("1001")[0]
    before = b2b_fake.local.prijsafspraken(local_rel.id, local_art.id)
    b2b_fake.local.add_prijsafspraak(
        PrijsAfspraak(local_rel.id, local_art.id, Decimal("10"), prijs=Decimal("15.00"))
    )
    got = b2b_backend.prijsafspraken(relatie.id, artikel.id)
    assert len(got) == len(before) + 1
    assert any(p.vanaf_aantal == Decimal("10") and p.prijs == Decimal("15.00") for p in got)


def test_a_failed_page_fails_the_stock_read_and_keeps_the_mirror(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    for n in range(20):  # 13 sample articles + 20: the second page exists
        b2b_fake.local.create_artikel(
            NieuwArtikel(
                artikelcode=f"P{n:03d}", omschrijving=f"Pagina {n}", omzetgroep_id="1", voorraad_controle=True
            )
        )
    before = b2b_backend.mirror.count("artikel")
    b2b_fake.inject("GET", "/artikelen", "503", times=50, after=1)  # page 1 answers, page 2 never does
    with pytest.raises(SnelStartUnavailable):
        b2b_backend.stock_artikelen()
    assert b2b_backend.mirror.count("artikel") == before


def test_stock_read_falls_back_when_the_filter_is_refused(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    from tests.client import b2b_fake as fake_module

    artikel_schema = b2b_fake.schemas["SnelStart.B2B.Api.V2.Models.Artikelen.ArtikelQueryModel"]
    real_parse = fake_module.parse_filter

    def casing_of_the_portal(text: str, schema: dict, schemas: dict) -> list:
        if schema is artikel_schema and "VoorraadControle" in text:
            raise fake_module.BadRequest("ALG-0104", "Could not find a property named 'VoorraadControle'")
        return real_parse(text, schema, schemas)

    fake_module.parse_filter = casing_of_the_portal  # type: ignore[assignment]
    try:
        stock = b2b_backend.stock_artikelen()
    finally:
        fake_module.parse_filter = real_parse  # type: ignore[assignment]
    assert {a.artikelcode for a in stock} == {a.artikelcode for a in b2b_fake.local.stock_artikelen()}
    unfiltered = [c for c in b2b_fake.calls if c[1] == "/artikelen" and "$filter" not in c[2]]
    assert unfiltered


def test_composites_without_stock_control_are_read_with_their_recipe(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    b2b_fake.calls.clear()
    composites = b2b_backend.recipe_artikelen()
    [gift] = composites
    assert gift.artikelcode == "1005" and not gift.voorraad_controle
    assert [(r.artikelcode, r.aantal) for r in gift.recept] == [("1001", Decimal(1)), ("1002", Decimal(1))]
    assert [c[2].get("$filter") for c in b2b_fake.calls if c[1] == "/artikelen"] == [
        "IsHoofdartikel eq true and VoorraadControle eq false and IsNonActief eq false"
    ]
    # The coffee machine has a recipe too (the disposal fee) but stock control of its own: a stock article.
    assert "1004" in {a.artikelcode for a in b2b_backend.stock_artikelen()}


@pytest.mark.parametrize(
    ("refused", "then_filter"),
    [
        ("IsHoofdartikel", "VoorraadControle eq false and IsNonActief eq false"),
        ("VoorraadControle", None),
    ],
)
def test_composite_read_falls_back_when_a_filter_is_refused(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart, refused: str, then_filter: str | None
) -> None:
    from tests.client import b2b_fake as fake_module

    real_parse = fake_module.parse_filter

    def refusing(text: str, schema: dict, schemas: dict) -> list:
        if refused in text:
            raise fake_module.BadRequest("ALG-0104", f"Could not find a property named '{refused}'")
        return real_parse(text, schema, schemas)

    b2b_fake.calls.clear()
    fake_module.parse_filter = refusing  # type: ignore[assignment]
    try:
        composites = b2b_backend.recipe_artikelen()
    finally:
        fake_module.parse_filter = real_parse  # type: ignore[assignment]
    assert [a.artikelcode for a in composites] == ["1005"]
    assert [c[2].get("$filter") for c in b2b_fake.calls if c[1] == "/artikelen"][-1] == then_filter


def test_when_every_article_must_be_read_the_stock_read_serves_the_recipes_too(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    from tests.client import b2b_fake as fake_module

    real_parse = fake_module.parse_filter

    def refusing(text: str, schema: dict, schemas: dict) -> list:
        if "VoorraadControle" in text:
            raise fake_module.BadRequest("ALG-0104", "Could not find a property named 'VoorraadControle'")
        return real_parse(text, schema, schemas)

    b2b_fake.calls.clear()
    fake_module.parse_filter = refusing  # type: ignore[assignment]
    try:
        stock = b2b_backend.stock_artikelen()
        composites = b2b_backend.recipe_artikelen()
    finally:
        fake_module.parse_filter = real_parse  # type: ignore[assignment]
    assert "1001" in {a.artikelcode for a in stock} and [a.artikelcode for a in composites] == ["1005"]
    unfiltered = [c for c in b2b_fake.calls if c[1] == "/artikelen" and "$filter" not in c[2]]
    assert [c[2]["$skip"] for c in unfiltered] == [
        "0"
    ]  # one pass over every article (one page here), not two
