"""The local SnelStart backend: SnelStart's refusals, totals, free stock, lookups, init, factory, desktop strings."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.rules import normalize
from client.snelstart.base import (
    Adres,
    EmailVersturen,
    NieuwArtikel,
    NieuweRelatie,
    NieuweVerkooporder,
    OrderRegel,
    PrijsAfspraak,
    SnelStartBackend,
    SnelStartRefusal,
    SnelStartUnavailable,
)
from client.snelstart.desktop import connection_string
from client.snelstart.factory import open_backend
from client.snelstart.local import LocalBackend, line_total, order_totals
from client.snelstart.local_init import init_local

D = Decimal
TODAY = dt.date(2026, 12, 3)


@pytest.fixture
def sample(tmp_path: Path) -> Iterator[LocalBackend]:
    path = tmp_path / "sample.sqlite"
    init_local(path, sample=True)
    with LocalBackend(path) as backend:
        yield backend


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[LocalBackend]:
    """A new administration (its standard omzetgroepen, templates and cost articles), two more templates and
    one customer."""
    path = tmp_path / "empty.sqlite"
    init_local(path, sample=False)
    with LocalBackend(path) as backend:
        backend.add_sjabloon(
            "Incl", prijs_incl_btw=True, kostensoort_1="Verzendkosten", kostensoort_2="Betaalkosten"
        )
        backend.add_sjabloon("Excl", prijs_incl_btw=False, kostensoort_1="Verzendkosten")
        backend.create_relatie(NieuweRelatie("Klant A", Adres(None, "Straat 1", "1234 AB", "Plaats", "NL")))
        yield backend


def artikelcode(backend: LocalBackend, artikel_id: str | None) -> str | None:
    found = backend.get_artikel(artikel_id) if artikel_id is not None else None
    return found.artikelcode if found is not None else None


def groep(backend: LocalBackend, nummer: int) -> str:
    return next(g.id for g in backend.omzetgroepen() if g.nummer == nummer)


def sjabloon(backend: LocalBackend, naam: str) -> str:
    return next(s.id for s in backend.sjablonen() if s.omschrijving == naam)


def artikel(backend: LocalBackend, code: str) -> str:
    found = backend.artikelen_by_code(code)
    assert len(found) == 1, code
    return found[0].id


def relatie(**overrides: object) -> NieuweRelatie:
    base: dict[str, object] = {
        "naam": "Test BV",
        "vestigingsadres": Adres(None, "Kerkstraat 1", "1234 AB", "Amsterdam", "NL"),
    }
    base.update(overrides)
    return NieuweRelatie(**base)  # type: ignore[arg-type]


def order(
    relatie_id: str, sjabloon_id: str | None, regels: list[OrderRegel], **overrides: object
) -> NieuweVerkooporder:
    fields: dict[str, object] = {
        "relatie_id": relatie_id,
        "datum": TODAY,
        "sjabloon_id": sjabloon_id,
        "prijs_incl_btw": True,
        "omschrijving": "test",
        "betalingskenmerk": None,
        "regels": regels,
    }
    fields.update(overrides)
    return NieuweVerkooporder(**fields)  # type: ignore[arg-type]


# -- init ---------------------------------------------------------------------------------------------------


def test_init_refuses_to_overwrite_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "admin.sqlite"
    init_local(path, sample=False)
    with LocalBackend(path) as backend:
        backend.add_omzetgroep(7, "Eigen groep", "Hoog")
    with pytest.raises(FileExistsError, match="already exists"):
        init_local(path, sample=True)
    with LocalBackend(path) as backend:  # the existing administration is untouched
        assert [g.nummer for g in backend.omzetgroepen()] == [1, 2, 3, 7]
        assert backend.relaties_by_code(1) == []
    other = tmp_path / "not-an-admin.txt"
    other.write_text("hello")
    with pytest.raises(FileExistsError):
        init_local(other, sample=False)
    assert other.read_text() == "hello"
    assert sorted(p.name for p in tmp_path.iterdir() if ".init" in p.name) == []
    with pytest.raises(FileNotFoundError):
        init_local(tmp_path / "missing-folder" / "a.sqlite", sample=False)


def test_init_without_sample_is_ready_for_the_example_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`koppel snelstart init --local PATH` without --sample: SnelStart's standard omzetgroepen (hoog 21, laag 9,
    geen 0), the example's template (incl. VAT) and an excl.-VAT one, and the articles client.yml.example names,
    so orders import with the example's settings as they are; no sample relaties or artikelen."""
    from client.cli import main
    from client.config import load_client_config
    from client.rules.salesorder import prepare_order
    from tests.client import orders as gen

    admin = tmp_path / "administratie.sqlite"
    assert main(["snelstart", "init", "--local", str(admin)]) == 0
    example = Path(__file__).resolve().parents[2] / "client.yml.example"
    (tmp_path / "client.yml").write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("KOPPEL_AGENT_SECRET", "s" * 40)
    profile = load_client_config(tmp_path / "client.yml").profiles[0]
    assert profile.snelstart.path == admin
    with LocalBackend(admin) as backend:
        groups = {(g.nummer, g.btw_soort, g.btw_percentage) for g in backend.omzetgroepen()}
        assert groups == {(1, "Hoog", D("21")), (2, "Laag", D("9")), (3, "Geen", D("0"))}
        assert {s.omschrijving: s.prijs_incl_btw for s in backend.sjablonen()} == {
            "Webshop": True,
            "Webshop excl": False,
        }
        assert backend._conn.execute("SELECT count(*) FROM relaties").fetchone()[0] == 0
        codes = {r[0] for r in backend._conn.execute("SELECT artikelcode FROM artikelen")}
        assert codes == {"VERZEND", "KORTING", "BETAALKOSTEN", "WEBSHOP", "AFRONDING"}
        for entity_id, template in enumerate(("Webshop", "Webshop excl"), start=1):
            orders = profile.orders.model_copy(update={"template": template})
            order = gen.order(
                [gen.item("NIEUW-1", 2), gen.item("NIEUW-2", 3, rate=D("9"), discount=D("1.50"), item_id=2)],
                entity_id=entity_id,
                shipping=D("4.95"),
                fee=D("0.29"),
                coupon="WELKOM",
            )
            prepared = prepare_order(order, profile.model_copy(update={"orders": orders}), backend)
            created = backend.create_verkooporder(prepared.verkooporder)
            assert created.totaal_incl_btw == D(order["totals"]["grand_total"]).quantize(D("0.01"))
            lines = [artikelcode(backend, r.artikel_id) for r in created.regels]
            assert {"NIEUW-1", "NIEUW-2", "VERZEND", "KORTING", "BETAALKOSTEN"} <= set(lines), lines


def test_every_backend_gives_an_omzetgroep_the_rate_of_its_btw_soort(
    snelstart_backend: SnelStartBackend,
) -> None:
    # What new articles are placed by (the Magento line's VAT rate): local from its btwtarieven table, b2b from
    # /artikelomzetgroepen (verkoopNederlandBtwSoort) and /btwtarieven.
    groups = {(g.nummer, g.btw_soort, g.btw_percentage) for g in snelstart_backend.omzetgroepen()}
    assert groups == {(1, "Hoog", D("21")), (2, "Laag", D("9")), (3, "Geen", D("0"))}


def test_opening_a_missing_or_foreign_file_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SnelStartUnavailable, match="does not exist"):
        LocalBackend(tmp_path / "nope.sqlite")
    foreign = tmp_path / "foreign.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(SnelStartUnavailable, match="not a local SnelStart administration"):
        LocalBackend(foreign)


def test_sample_data_has_what_the_demo_needs(sample: LocalBackend) -> None:
    assert isinstance(sample, SnelStartBackend)
    assert sample.name == "local"
    groups = {g.nummer: (g.omschrijving, g.btw_percentage) for g in sample.omzetgroepen()}
    assert groups == {1: ("Omzet hoog", D("21")), 2: ("Omzet laag", D("9")), 3: ("Omzet verlegd/0 %", D("0"))}
    templates = {s.omschrijving: s for s in sample.sjablonen()}
    assert templates["Webshop"].prijs_incl_btw is True
    assert (templates["Webshop"].kostensoort_1, templates["Webshop"].kostensoort_2) == (
        "Verzendkosten",
        "Betaalkosten",
    )
    assert templates["Webshop excl"].prijs_incl_btw is False
    for code in ("VERZEND", "KORTING", "BETAALKOSTEN", "WEBSHOP"):
        assert len(sample.artikelen_by_code(code)) == 1
    (afronding,) = sample.artikelen_by_code("AFRONDING")  # orders.rounding_article: must carry no VAT
    assert next(g for g in sample.omzetgroepen() if g.id == afronding.omzetgroep_id).btw_percentage == 0
    # No order of the sample may look like a Magento order number (unique_payment_reference would clash).
    kenmerken = sample._conn.execute("SELECT betalingskenmerk FROM verkooporders").fetchall()
    assert not any(k and k.isdigit() for (k,) in kenmerken)
    machine = sample.artikelen_by_code("1004")[0]
    assert machine.recept_plaatsing == "always"
    assert [(r.artikelcode, r.aantal) for r in machine.recept] == [("VERWIJDERING", D("1"))]
    pakket = sample.artikelen_by_code("1005")[0]
    assert pakket.recept_plaatsing == "choice" and [r.artikelcode for r in pakket.recept] == ["1001", "1002"]
    jansen = sample.relaties_by_code(1)[0]
    agreements = sample.prijsafspraken(jansen.id, artikel(sample, "1002"))
    assert [(a.vanaf_aantal, a.prijs, a.kortings_percentage) for a in agreements] == [
        (D("1"), D("19.95"), None)
    ]
    assert sample.voorraad_vanaf_niveau() == "PakbonEnAfhaalbon"
    assert sample.administration_name() == "Voorbeeld Koffie BV"


# -- relaties ---------------------------------------------------------------------------------------------------

REFUSED_RELATIES = [
    ("naam", {"naam": "x" * 51}),
    ("naam is required", {"naam": "  "}),
    ("straat", {"vestigingsadres": Adres(None, "s" * 51, "1234 AB", "Amsterdam", "NL")}),
    ("plaats", {"vestigingsadres": Adres(None, "Kerkstraat 1", "1234 AB", "p" * 51, "NL")}),
    ("postcode", {"vestigingsadres": Adres(None, "Kerkstraat 1", "1" * 26, "Amsterdam", "NL")}),
    ("contactpersoon", {"vestigingsadres": Adres("c" * 51, "Kerkstraat 1", "1234 AB", "Amsterdam", "NL")}),
    ("REL-0060", {"vestigingsadres": Adres(None, "Kerkstraat 1", None, "Amsterdam", "NL")}),
    ("country 'XX'", {"vestigingsadres": Adres(None, "Kerkstraat 1", "1234 AB", "Amsterdam", "XX")}),
    (
        "correspondentieadres",
        {"correspondentieadres": Adres(None, "Postbus 1", "1000 AA", "Amsterdam", "ZZ")},
    ),
    ("telefoon", {"telefoon": "0" * 26}),
    ("kvkNummer", {"kvk_nummer": "1" * 13}),
    ("krediettermijn", {"krediettermijn": 1001}),
    ("letters and digits", {"btw_nummer": "NL 8123.45.678.B01"}),
    ("country code NL", {"btw_nummer": "812345678B01"}),
    ("country code NL", {"btw_nummer": "BE0123456789"}),
    ("NLnnnnnnnnnBnn", {"btw_nummer": "NL12345"}),
    ("e-mail", {"email": "not-an-address"}),
    ("REL-0085", {"email": ("a" * 246) + "@x.nl"}),
    ("factuur cc", {"factuur_email": EmailVersturen("ok@x.nl", "wrong@")}),
    ("not defined", {"extra_velden": {"Onbekend veld": "1"}}),
    ("relatiecode 0", {"relatiecode": 0}),
]


@pytest.mark.parametrize(("message", "overrides"), REFUSED_RELATIES, ids=[m for m, _ in REFUSED_RELATIES])
def test_relatie_rules_refuse(empty: LocalBackend, message: str, overrides: dict[str, object]) -> None:
    before = len(empty.relaties_by_code(1)) + len(empty.relaties_by_code(2))
    with pytest.raises(SnelStartRefusal, match=message):
        empty.create_relatie(relatie(**overrides))
    assert len(empty.relaties_by_code(1)) + len(empty.relaties_by_code(2)) == before


def test_relatie_limits_accept_the_maximum(empty: LocalBackend) -> None:
    made = empty.create_relatie(
        relatie(
            naam="n" * 50,
            vestigingsadres=Adres("c" * 50, "s" * 50, "p" * 25, "q" * 50, "nl"),
            telefoon="0" * 25,
            kvk_nummer="1" * 12,
            btw_nummer="NL812345678B01",
            email="a@x.nl; b@y.nl",
        )
    )
    assert made.naam == "n" * 50 and made.vestigingsadres.land == "NL" and made.kvk_nummer == "1" * 12
    # No street, postcode or city at all is fine (REL-0060 is all-or-nothing); the country defaults to NL.
    bare = empty.create_relatie(NieuweRelatie("Alleen naam", Adres()))
    assert bare.vestigingsadres.land == "NL"


def test_greek_vat_numbers_use_el(empty: LocalBackend) -> None:
    athens = Adres(None, "Ermou 1", "105 63", "Athene", "GR")
    made = empty.create_relatie(relatie(vestigingsadres=athens, btw_nummer="EL094012345"))
    assert made.btw_nummer == "EL094012345"
    with pytest.raises(SnelStartRefusal, match="country code EL"):
        empty.create_relatie(relatie(vestigingsadres=athens, btw_nummer="GR094012345"))


def test_relatiecode_is_unique_and_assigned_as_max_plus_one(empty: LocalBackend) -> None:
    assert empty.create_relatie(relatie()).relatiecode == 2
    assert empty.create_relatie(relatie(relatiecode=100)).relatiecode == 100
    assert empty.create_relatie(relatie()).relatiecode == 101
    with pytest.raises(SnelStartRefusal, match="relatiecode 100 is already in use"):
        empty.create_relatie(relatie(relatiecode=100))
    second = empty.relaties_by_code(2)[0]
    second.relatiecode = 101
    with pytest.raises(SnelStartRefusal, match="relatiecode 101 is already in use"):
        empty.update_relatie(second)
    second.relatiecode = 50
    assert empty.update_relatie(second).relatiecode == 50
    assert empty.relaties_by_code(2) == []


def test_update_relatie_revalidates_and_reindexes(empty: LocalBackend) -> None:
    made = empty.create_relatie(relatie(email="old@x.nl"))
    made.email = "new@x.nl"
    made.bevestiging_email = EmailVersturen("confirm@x.nl", None)
    empty.update_relatie(made)
    assert empty.relaties_by_email("old@x.nl", all_fields=True) == []
    assert [r.id for r in empty.relaties_by_email("new@x.nl", all_fields=False)] == [made.id]
    assert [r.id for r in empty.relaties_by_email("confirm@x.nl", all_fields=True)] == [made.id]
    made.naam = "x" * 51
    with pytest.raises(SnelStartRefusal, match="naam"):
        empty.update_relatie(made)
    assert empty.get_relatie(made.id).naam == "Test BV"  # type: ignore[union-attr]


# -- lookups ----------------------------------------------------------------------------------------------------


def ids(found: list) -> list[str]:
    return [x.naam if hasattr(x, "naam") else x.artikelcode for x in found]


def test_email_lookups_main_all_and_named_fields(sample: LocalBackend) -> None:
    assert ids(
        sample.relaties_by_email(normalize.email_key(" INFO@Jansen-Installatie.nl "), all_fields=False)
    ) == ["Jansen Installatietechniek B.V."]
    # The invoice cc is not the main address ...
    key = normalize.email_key("boekhouding@jansen-installatie.nl")
    assert sample.relaties_by_email(key, all_fields=False) == []
    assert ids(sample.relaties_by_email(key, all_fields=True)) == ["Jansen Installatietechniek B.V."]
    assert ids(sample.relaties_by_email_fields(key, ("factuur_cc",))) == ["Jansen Installatietechniek B.V."]
    assert sample.relaties_by_email_fields(key, ("factuur", "offerte", "offerte_cc")) == []
    reminder = normalize.email_key("boekhouding@hovenier.example")
    assert ids(sample.relaties_by_email_fields(reminder, ("aanmaning_cc",))) == ["Hoveniersbedrijf Groen VOF"]
    assert sample.relaties_by_email_fields(reminder, ("aanmaning",)) == []
    # A nonactief ("deleted") relatie is not found by matching ...
    assert sample.relaties_by_email("info@oudeklant.example", all_fields=True) == []
    with pytest.raises(ValueError, match="unknown e-mail field"):
        sample.relaties_by_email_fields(reminder, ("fax",))


def test_semicolon_separated_addresses_are_each_found(empty: LocalBackend) -> None:
    made = empty.create_relatie(relatie(email="een@x.nl;Twee@X.nl"))
    assert ids(empty.relaties_by_email("twee@x.nl", all_fields=False)) == [made.naam]
    assert ids(empty.relaties_by_email("een@x.nl", all_fields=False)) == [made.naam]
    assert empty.relaties_by_email("een@x.nl;twee@x.nl", all_fields=False) == []


def test_vat_kvk_name_and_extra_field_lookups(sample: LocalBackend) -> None:
    jansen = "Jansen Installatietechniek B.V."
    assert ids(sample.relaties_by_vat(normalize.vat_key("NL 8123.456.78.B01", "NL"))) == [jansen]
    assert ids(sample.relaties_by_vat(normalize.vat_key("812345678B01", "NL"))) == [jansen]
    assert sample.relaties_by_vat(normalize.vat_key("812345678B01", "BE")) == []
    assert ids(sample.relaties_by_vat(normalize.vat_key("094012345", "GR"))) == ["Papadopoulos Trading"]
    assert ids(sample.relaties_by_kvk(normalize.kvk_key("24 12 34 56"))) == [jansen]
    assert sample.relaties_by_kvk("99999999") == []
    # Names compare without legal form, dots, spaces and accents.
    mueller = normalize.name_key("Muller-Elektro G.m.b.H.")
    assert ids(sample.relaties_by_name(mueller, "DE", normalize.postcode_key("50672"))) == [
        "Müller Elektro GmbH"
    ]
    assert ids(sample.relaties_by_name(mueller, "DE", None)) == ["Müller Elektro GmbH"]
    assert ids(sample.relaties_by_name(mueller, None, None)) == ["Müller Elektro GmbH"]
    assert sample.relaties_by_name(mueller, "NL", None) == []
    assert sample.relaties_by_name(mueller, "DE", "50000") == []
    assert ids(
        sample.relaties_by_name(normalize.name_key("jansen installatietechniek bv"), "NL", "3012KL")
    ) == [jansen]
    assert ids(sample.relaties_by_extra_veld("Magento klant-id", "1002")) == ["P. de Boer"]
    assert sample.relaties_by_extra_veld("Debiteurnummer oud", "1002") == []
    assert ids(sample.relaties_by_extra_veld("debiteurnummer oud", " d-0042 ")) == ["Bakkerij De Vries"]
    # relaties_by_code also returns a nonactief relatie: the code stays taken.
    oud = sample.relaties_by_code(8)
    assert ids(oud) == ["Oude Klant BV"] and oud[0].nonactief is True


def test_article_lookups_by_code_and_extra_field(sample: LocalBackend) -> None:
    assert ids(sample.artikelen_by_code(" verzend ")) == ["VERZEND"]
    assert ids(sample.artikelen_by_code("8712345000035", code_field="EAN")) == ["1003"]
    assert sample.artikelen_by_code("8712345000035") == []
    assert ids(sample.artikelen_by_code("mo-77", code_field="Leverancierscode")) == ["1003"]
    assert sample.artikelen_by_code("NOPE") == []
    with pytest.raises(SnelStartRefusal, match="no extra field named 'Kleur'"):
        sample.artikelen_by_code("rood", code_field="Kleur")
    old = sample.artikelen_by_code("0999")
    assert len(old) == 1 and old[0].is_non_actief  # inactive articles are found: their code is taken


def test_lookups_are_index_seeks(sample: LocalBackend) -> None:
    """Every query a lookup runs is answered from an index, never by scanning relaties or artikelen."""
    statements: list[str] = []
    sample._conn.set_trace_callback(statements.append)
    sample.relaties_by_email("a@b.nl", all_fields=True)
    sample.relaties_by_email_fields("a@b.nl", ("factuur", "factuur_cc"))
    sample.relaties_by_vat("NL812345678B01")
    sample.relaties_by_kvk("24123456")
    sample.relaties_by_name("jansen", "NL", "3012KL")
    sample.relaties_by_name("jansen", None, None)
    sample.relaties_by_extra_veld("Magento klant-id", "1001")
    sample.relaties_by_code(3)
    sample.artikelen_by_code("1001")
    sample.artikelen_by_code("8712345000011", code_field="EAN")
    sample.verkooporders_by_betalingskenmerk("KASSA-2026-0002")
    sample._conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "settings" not in s]
    assert len(selects) > 10
    for statement in selects:
        plan = " | ".join(row[3] for row in sample._conn.execute(f"EXPLAIN QUERY PLAN {statement}"))
        assert "SCAN" not in plan, f"{statement}\n{plan}"


# -- artikelen --------------------------------------------------------------------------------------------------


def test_artikel_rules(empty: LocalBackend) -> None:
    hoog = groep(empty, 1)
    made = empty.create_artikel(NieuwArtikel("ABC-1", "o" * 250, hoog, D("9.95"), voorraad_controle=True))
    assert made.omschrijving == "o" * 250 and made.verkoopprijs == D("9.95") and made.vrije_voorraad == 0
    cases = [
        (NieuwArtikel("abc-1", "Dubbel", hoog), "already exists"),
        (NieuwArtikel("NEW", "o" * 251, hoog), "omschrijving is 251"),
        (NieuwArtikel("NEW", "", hoog), "omschrijving is required"),
        (NieuwArtikel("NEW", "Zonder groep", None), "omzetgroep is required"),  # type: ignore[arg-type]
        (NieuwArtikel("NEW", "Zonder groep", ""), "omzetgroep is required"),
        (NieuwArtikel("NEW", "Onbekende groep", "999"), "omzetgroep '999' does not exist"),
        (NieuwArtikel(" ", "Geen code", hoog), "artikelcode is required"),
        (NieuwArtikel("C" * 31, "Te lange code", hoog), "artikelcode is 31"),
        (NieuwArtikel("NEW", "Extra", hoog, extra_velden={"EAN": "1"}), "not defined for artikel"),
    ]
    for nieuw, message in cases:
        with pytest.raises(SnelStartRefusal, match=message):
            empty.create_artikel(nieuw)
    assert empty.artikelen_by_code("NEW") == []
    with pytest.raises(TypeError, match="float"):
        empty.create_artikel(NieuwArtikel("NEW", "Float", hoog, 9.95))  # type: ignore[arg-type]


def test_update_artikel_keeps_codes_unique(empty: LocalBackend) -> None:
    hoog, laag = groep(empty, 1), groep(empty, 2)
    empty.define_extra_veld("artikel", "EAN")
    first = empty.create_artikel(NieuwArtikel("A", "Eerste", hoog))
    empty.create_artikel(NieuwArtikel("B", "Tweede", hoog))
    first.artikelcode = "b"
    with pytest.raises(SnelStartRefusal, match="already exists"):
        empty.update_artikel(first)
    first.artikelcode, first.omzetgroep_id, first.extra_velden = "A2", laag, {"EAN": "123"}
    updated = empty.update_artikel(first)
    assert (updated.artikelcode, updated.omzetgroep_id) == ("A2", laag)
    assert ids(empty.artikelen_by_code("123", code_field="EAN")) == ["A2"]
    assert empty.artikelen_by_code("A") == []


def test_recipe_rules(empty: LocalBackend) -> None:
    hoog = groep(empty, 1)
    main = empty.create_artikel(NieuwArtikel("TV", "Televisie", hoog)).id
    fee = empty.create_artikel(NieuwArtikel("BIJDRAGE", "Verwijderingsbijdrage", hoog)).id
    with pytest.raises(SnelStartRefusal, match="own recipe"):
        empty.set_recept(main, [(main, D("1"))], "always")
    with pytest.raises(SnelStartRefusal, match="plaatsing"):
        empty.set_recept(main, [(fee, D("1"))], "sometimes")
    with pytest.raises(SnelStartRefusal, match="positive"):
        empty.set_recept(main, [(fee, D("0"))], "always")
    made = empty.set_recept(main, [(fee, D("2"))], "choice")
    assert made.recept_plaatsing == "choice" and [(r.artikel_id, r.aantal) for r in made.recept] == [
        (fee, D("2"))
    ]


def test_prijsafspraak_needs_exactly_one_kind(sample: LocalBackend) -> None:
    jansen = sample.relaties_by_code(1)[0].id
    bonen = artikel(sample, "1001")
    with pytest.raises(SnelStartRefusal, match="either"):
        sample.add_prijsafspraak(
            PrijsAfspraak(jansen, bonen, D("1"), prijs=D("1"), kortings_percentage=D("5"))
        )
    with pytest.raises(SnelStartRefusal, match="between 0 and 100"):
        sample.add_prijsafspraak(PrijsAfspraak(jansen, bonen, D("1"), kortings_percentage=D("150")))
    sample.add_prijsafspraak(PrijsAfspraak(jansen, bonen, D("1"), prijs=D("17.00")))
    found = sample.prijsafspraken(jansen, bonen)
    assert [(a.vanaf_aantal, a.prijs, a.kortings_percentage) for a in found] == [
        (D("1"), D("17.00"), None),
        (D("10"), None, D("10")),
    ]
    assert sample.prijsafspraken(sample.relaties_by_code(3)[0].id, bonen) == []


# -- verkooporders ----------------------------------------------------------------------------------------------


def test_order_rules_refuse(sample: LocalBackend) -> None:
    klant = sample.relaties_by_code(4)[0].id
    incl, excl = sjabloon(sample, "Webshop"), sjabloon(sample, "Webshop excl")
    kaal = sample.add_sjabloon("Zonder kosten", prijs_incl_btw=False).id  # no footer cost types
    bonen = artikel(sample, "1001")
    line = [OrderRegel(bonen, "", D("1"), D("18.95"))]
    cases = [
        (order("999", incl, line), "relatie 999 does not exist"),
        (order(sample.relaties_by_code(8)[0].id, incl, line), "nonactief"),
        (order(klant, "999", line), "verkoopsjabloon 999 does not exist"),
        (order(klant, incl, [OrderRegel("999", "x")]), "artikel 999 does not exist"),
        (order(klant, incl, [OrderRegel(artikel(sample, "0999"), "x")]), "'0999' is nonactief"),
        (order(klant, incl, [OrderRegel(bonen, "o" * 251)]), "regel 1 omschrijving is 251"),
        (order(klant, incl, [OrderRegel(None, "Tekst", D("1"), D("5"))]), "text line"),
        (order(klant, incl, [OrderRegel(None, "")]), "needs an omschrijving"),
        (order(klant, incl, [OrderRegel(bonen, "", kortings_percentage=D("101"))]), "kortingsPercentage"),
        (
            order(klant, kaal, line, prijs_incl_btw=False, kostensoort_1=D("5")),
            "kostensoort 1 is not available",
        ),
        (order(klant, None, line, kostensoort_2=D("1")), "kostensoort 2 is not available"),
        (order(klant, excl, line, prijs_incl_btw=True), "takes prices excluding VAT"),
        (order(klant, incl, line, proces_status="Factuur"), "procesStatus 'Factuur'"),
        (order(klant, incl, line, orderreferentie="r" * 51), "orderreferentie"),
        (order(klant, incl, line, betalingskenmerk="1" * 51), "betalingskenmerk"),
        (order(klant, incl, line, krediettermijn=101), "krediettermijn"),
        (
            order(klant, incl, line, afleveradres=Adres(None, "s" * 51, None, None, "NL")),
            "afleveradres straat",
        ),
        (order(klant, incl, line, factuuradres=Adres(None, "Weg 1", "1", "X", "QQ")), "factuuradres"),
    ]
    for bad, message in cases:
        with pytest.raises(SnelStartRefusal, match=message):
            sample.create_verkooporder(bad)
    # Nothing of the refused orders was stored, and no order number was used up.
    made = sample.create_verkooporder(order(klant, incl, line, betalingskenmerk="X1"))
    assert made.nummer == 3
    assert [o.nummer for o in sample.verkooporders_by_betalingskenmerk("X1")] == [3]


def test_order_numbers_are_sequential_and_lines_take_article_text(empty: LocalBackend) -> None:
    klant = empty.relaties_by_code(1)[0].id
    a = empty.create_artikel(NieuwArtikel("A", "Artikel A", groep(empty, 1), D("10"))).id
    made = [
        empty.create_verkooporder(order(klant, None, [OrderRegel(a, ""), OrderRegel(None, "Graveer: Piet")]))
        for _ in range(3)
    ]
    assert [o.nummer for o in made] == [1, 2, 3]
    assert [r.omschrijving for r in made[0].regels] == ["Artikel A", "Graveer: Piet"]
    assert made[0].regels[0].btw_percentage == D("21") and made[0].regels[1].btw_percentage is None
    assert empty.get_verkooporder(made[1].id).nummer == 2  # type: ignore[union-attr]


def test_totals_incl_vat_template(sample: LocalBackend) -> None:
    klant = sample.relaties_by_code(4)[0].id
    bonen, kopjes = artikel(sample, "1001"), artikel(sample, "1002")  # 9 % and 21 %
    made = sample.create_verkooporder(
        order(
            klant,
            sjabloon(sample, "Webshop"),
            [OrderRegel(bonen, "", D("2"), D("18.95")), OrderRegel(kopjes, "", D("1"), D("24.95"), D("10"))],
            kostensoort_1=D("6.95"),
            kostensoort_2=D("0.35"),
        )
    )
    # lines 37.90 (9 %) and 22.455 → 22.46 (21 %); costs 7.30 at 21 %.
    # VAT 9 %: 37.90 × 9/109 = 3.129 → 3.13; 21 %: 29.76 × 21/121 = 5.16496 → 5.16
    assert made.totaal_incl_btw == D("67.66")
    assert made.totaal_excl_btw == D("67.66") - D("3.13") - D("5.16")
    assert (made.kostensoort_1, made.kostensoort_2) == (D("6.95"), D("0.35"))


def test_totals_excl_vat_template(sample: LocalBackend) -> None:
    klant = sample.relaties_by_code(1)[0].id
    bonen, kopjes = artikel(sample, "1001"), artikel(sample, "1002")
    made = sample.create_verkooporder(
        order(
            klant,
            sjabloon(sample, "Webshop excl"),
            [OrderRegel(kopjes, "", D("3"), D("10.00")), OrderRegel(bonen, "", D("1.25"), D("4.44"))],
            prijs_incl_btw=False,
        )
    )
    # 30.00 at 21 % → 6.30; 1.25 × 4.44 = 5.55 at 9 % → 0.4995 → 0.50
    assert (made.totaal_excl_btw, made.totaal_incl_btw) == (D("35.55"), D("42.35"))


def test_vat_is_rounded_per_rate_not_per_line() -> None:
    dime = line_total(D("1"), D("0.10"), D("0"))
    # Per line 0.10 × 21/121 = 0.017 → 0.02 would give 0.06 VAT; SnelStart rounds the rate's sum: 0.052 → 0.05.
    assert order_totals([(dime, D("21"))] * 3, prijs_incl_btw=True) == (D("0.25"), D("0.30"))
    assert line_total(D("1.25"), D("10"), D("0")) == D("12.50")
    assert line_total(D("3"), D("0.335"), D("0")) == D("1.01")  # 1.005 rounds half up


cents = st.decimals(min_value=D("-500"), max_value=D("5000"), places=2)
rates = st.sampled_from([D("0"), D("9"), D("21")])


@given(st.lists(st.tuples(cents, rates), max_size=12))
def test_totals_keep_the_entered_side_exact(amounts: list[tuple[Decimal, Decimal]]) -> None:
    entered = sum((a for a, _ in amounts), D("0"))
    excl, incl = order_totals(amounts, prijs_incl_btw=True)
    assert incl == entered and excl == excl.quantize(D("0.01"))
    vat = incl - excl
    assert abs(vat - sum((a * r / (100 + r) for a, r in amounts), D("0"))) <= D("0.005") * 3
    excl2, incl2 = order_totals(amounts, prijs_incl_btw=False)
    assert excl2 == entered
    assert abs(incl2 - excl2 - sum((a * r / 100 for a, r in amounts), D("0"))) <= D("0.005") * 3


# -- VAT of an order abroad: SnelStart decides it from the relatie and the delivery address ------------------

# (vestigingsadres country, btw-nummer, afleveradres country or None) → whether SnelStart books the Dutch rates
ORDER_VAT_CASES = {
    "NL business": ("NL", "NL812345678B01", None, True),
    "BE business": ("BE", "BE0123456789", None, False),
    "BE business delivered in BE": ("BE", "BE0123456789", "BE", False),
    "BE business delivered in NL": ("BE", "BE0123456789", "NL", True),
    "GR business (EL number)": ("GR", "EL094012345", None, False),
    "BE consumer": ("BE", None, "BE", True),
    "NL consumer delivered in DE": ("NL", None, "DE", True),
    "NL business exporting to CH": ("NL", "NL812345678B01", "CH", False),
    "CH consumer": ("CH", None, None, False),
}
STREET = {"NL": ("Kerkstraat 1", "1234 AB", "Amsterdam"), "BE": ("Rue Neuve 8", "1000", "Bruxelles"),
          "GR": ("Ermou 20", "105 63", "Athina"), "DE": ("Jungfernstieg 30", "20354", "Hamburg"),
          "CH": ("Bahnhofstrasse 1", "8001", "Zürich")}  # fmt: skip


def _adres(land: str) -> Adres:
    return Adres(None, *STREET[land], land)


@pytest.mark.parametrize("case", list(ORDER_VAT_CASES))
@pytest.mark.parametrize("template", ["Webshop", "Webshop excl"])
def test_every_backend_takes_the_order_vat_from_the_relatie_and_the_delivery_country(
    snelstart_backend: SnelStartBackend, case: str, template: str
) -> None:
    vestiging, btw, aflevering, dutch = ORDER_VAT_CASES[case]
    b = snelstart_backend
    klant = b.create_relatie(NieuweRelatie(f"Klant {case}", _adres(vestiging), btw_nummer=btw))
    incl = template == "Webshop"
    made = b.create_verkooporder(
        order(
            klant.id,
            sjabloon(b, template),
            [OrderRegel(artikel(b, "1001"), "", D("2"), D("18.95")),
             OrderRegel(artikel(b, "1002"), "", D("1"), D("24.95"))],
            prijs_incl_btw=incl,
            betalingskenmerk="BTW-TEST",
            afleveradres=_adres(aflevering) if aflevering else None,
        )
    )  # fmt: skip
    # 37.90 at 9 % and 24.95 at 21 %, entered incl. or excl. VAT; 0 % on every line abroad without Dutch VAT.
    if not dutch:
        assert (made.totaal_excl_btw, made.totaal_incl_btw) == (D("62.85"), D("62.85"))
    elif incl:  # 37.90 × 9/109 = 3.13, 24.95 × 21/121 = 4.33
        assert (made.totaal_excl_btw, made.totaal_incl_btw) == (D("55.39"), D("62.85"))
    else:  # 37.90 × 9 % = 3.41, 24.95 × 21 % = 5.24
        assert (made.totaal_excl_btw, made.totaal_incl_btw) == (D("62.85"), D("71.50"))
    (again,) = b.verkooporders_by_betalingskenmerk("BTW-TEST")  # as stored and read back
    assert (again.totaal_excl_btw, again.totaal_incl_btw) == (made.totaal_excl_btw, made.totaal_incl_btw)


def test_footer_costs_of_an_order_without_dutch_vat_carry_none(sample: LocalBackend) -> None:
    dupont = sample.relaties_by_vat("BE0123456789")[0]  # the sample's Belgian business with a btw-nummer
    lines = [OrderRegel(artikel(sample, "1002"), "", D("1"), D("24.95"))]
    made = sample.create_verkooporder(
        order(
            dupont.id, sjabloon(sample, "Webshop excl"), lines, prijs_incl_btw=False, kostensoort_1=D("6.95")
        )
    )
    assert (made.totaal_excl_btw, made.totaal_incl_btw) == (D("31.90"), D("31.90"))
    assert [r.btw_percentage for r in made.regels] == [D("0")]
    # The same business buying for delivery in the Netherlands pays Dutch VAT, on the costs too.
    home = sample.create_verkooporder(
        order(dupont.id, sjabloon(sample, "Webshop excl"), lines, prijs_incl_btw=False, kostensoort_1=D("6.95"),
              afleveradres=_adres("NL"))
    )  # fmt: skip
    assert (home.totaal_excl_btw, home.totaal_incl_btw) == (D("31.90"), D("38.60"))  # 31.90 × 21 % = 6.70
    assert [r.btw_percentage for r in home.regels] == [D("21")]


def test_the_eu_member_states_are_the_27_and_known_to_the_administration(sample: LocalBackend) -> None:
    from client.snelstart.vat import EU_MEMBER_STATES

    assert len(EU_MEMBER_STATES) == 27 and "GB" not in EU_MEMBER_STATES and "GR" in EU_MEMBER_STATES
    assert EU_MEMBER_STATES <= {code for code, _ in sample.landen()}


def test_last_order_sjabloon_and_betalingskenmerk(sample: LocalBackend) -> None:
    jansen, deboer = sample.relaties_by_code(1)[0].id, sample.relaties_by_code(4)[0].id
    assert sample.last_order_sjabloon(jansen) == sjabloon(sample, "Webshop excl")
    assert sample.last_order_sjabloon(deboer) == sjabloon(sample, "Webshop")
    assert sample.last_order_sjabloon(sample.relaties_by_code(3)[0].id) is None
    found = sample.verkooporders_by_betalingskenmerk("KASSA-2026-0002")
    assert len(found) == 1 and found[0].relatie_id == deboer and found[0].kostensoort_1 == D("6.95")
    assert sample.verkooporders_by_betalingskenmerk("KASSA-2026") == []


# -- stock --------------------------------------------------------------------------------------------------------

EXPECTED_FREE = {
    # technical 10; orders: Order 1 (never counts), Offerte 5, Bevestiging 2, Pakbon 3, Factuur 4
    "Alle": 10 - 5 - 2 - 3 - 4,
    "Offerte": 10 - 5 - 2 - 3 - 4,
    "BackOrder": 10 - 2 - 3 - 4,
    "Bevestiging": 10 - 2 - 3 - 4,
    "Werkbon": 10 - 3 - 4,
    "PakbonEnAfhaalbon": 10 - 3 - 4,
    "FactuurEnContantbon": 10 - 4,
}


def test_free_stock_follows_the_level_setting(empty: LocalBackend) -> None:
    klant = empty.relaties_by_code(1)[0].id
    hoog = groep(empty, 1)
    item = empty.create_artikel(NieuwArtikel("S1", "Op voorraad", hoog, voorraad_controle=True)).id
    empty.create_artikel(NieuwArtikel("S2", "Ander artikel", hoog, voorraad_controle=True))
    empty.create_artikel(NieuwArtikel("NS", "Geen voorraad", hoog))
    empty.set_technische_voorraad("s1", D("10"))
    for status, qty in (("Order", 1), ("Offerte", 5), ("Bevestiging", 2), ("Pakbon", 3), ("Factuur", 4)):
        made = empty.create_verkooporder(
            order(klant, None, [OrderRegel(item, "", D(qty))], betalingskenmerk="k")
        )
        empty.set_proces_status(made.id, status)
    for niveau, expected in EXPECTED_FREE.items():
        empty.set_voorraad_vanaf_niveau(niveau)
        assert empty.voorraad_vanaf_niveau() == niveau
        assert empty.get_artikel(item).vrije_voorraad == expected, niveau  # type: ignore[union-attr]
        stock = {a.artikelcode: (a.technische_voorraad, a.vrije_voorraad) for a in empty.stock_artikelen()}
        assert stock == {"S1": (D("10"), D(expected)), "S2": (D("0"), D("0"))}, niveau
    with pytest.raises(SnelStartRefusal, match="verkooporderVoorraadVanafNiveau"):
        empty.set_voorraad_vanaf_niveau("Pakbon")
    with pytest.raises(SnelStartRefusal, match="does not exist"):
        empty.set_technische_voorraad("NOPE", D("1"))


def test_stock_articles_leave_out_inactive_and_uncontrolled(sample: LocalBackend) -> None:
    codes = [a.artikelcode for a in sample.stock_artikelen()]
    assert codes == ["1001", "1002", "1003", "1004", "1006"]
    machine = next(a for a in sample.stock_artikelen() if a.artikelcode == "1004")
    assert [r.artikelcode for r in machine.recept] == ["VERWIJDERING"]


def test_open_web_orders_are_concepts_with_a_betalingskenmerk(sample: LocalBackend) -> None:
    klant = sample.relaties_by_code(4)[0].id
    incl = sjabloon(sample, "Webshop")
    bonen = artikel(sample, "1001")
    web = sample.create_verkooporder(
        order(klant, incl, [OrderRegel(bonen, "", D("3"), D("18.95"))], betalingskenmerk="W1")
    )
    sample.create_verkooporder(order(klant, incl, [OrderRegel(bonen, "", D("1"), D("18.95"))]))  # no kenmerk
    sample.create_verkooporder(
        order(klant, incl, [OrderRegel(bonen, "", D("1"), D("1"))], betalingskenmerk="")
    )
    shipped = sample.create_verkooporder(order(klant, incl, [OrderRegel(bonen, "")], betalingskenmerk="W2"))
    sample.set_proces_status(shipped.id, "Pakbon")
    open_orders = sample.open_web_orders()
    assert [(o.betalingskenmerk, [(r.artikel_id, r.aantal) for r in o.regels]) for o in open_orders] == [
        ("W1", [(bonen, D("3"))])
    ]
    assert open_orders[0].id == web.id
    with pytest.raises(SnelStartRefusal, match="procesStatus 'Verzonden'"):
        sample.set_proces_status(web.id, "Verzonden")
    with pytest.raises(SnelStartRefusal, match="does not exist"):
        sample.set_proces_status("999", "Pakbon")


def test_unknown_ids_read_as_none(sample: LocalBackend) -> None:
    assert sample.get_relatie("999") is None and sample.get_relatie("not-an-id") is None
    assert sample.get_artikel("999") is None and sample.get_artikel("") is None
    assert sample.get_verkooporder("999") is None


def test_batch_is_all_or_nothing_and_undoes_a_refused_write(empty: LocalBackend) -> None:
    with empty.batch():
        empty.create_relatie(relatie(naam="In batch 1"))
        with pytest.raises(SnelStartRefusal):
            empty.create_relatie(relatie(naam="x" * 51))
        empty.create_relatie(relatie(naam="In batch 2"))
    assert [r.naam for r in empty.relaties_by_name("inbatch2", "NL", None)] == ["In batch 2"]
    assert empty.relaties_by_code(3)[0].naam == "In batch 2"  # the refused one used no code
    with pytest.raises(RuntimeError), empty.batch():
        empty.create_relatie(relatie(naam="Lost"))
        raise RuntimeError("crash in the middle of a batch")
    assert empty.relaties_by_name("lost", None, None) == []


# -- several processes, WAL -------------------------------------------------------------------------------------


def _create_orders(path: str, relatie_id: str, artikel_id: str, count: int) -> list[int]:
    with LocalBackend(path) as backend:
        return [
            backend.create_verkooporder(order(relatie_id, None, [OrderRegel(artikel_id, "")])).nummer
            for _ in range(count)
        ]


def test_two_processes_get_distinct_sequential_numbers(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    init_local(path, sample=False)
    with LocalBackend(path) as backend:
        assert backend._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        g = next(g for g in backend.omzetgroepen() if g.nummer == 1)
        klant = backend.create_relatie(relatie()).id
        art = backend.create_artikel(NieuwArtikel("A", "A", g.id)).id
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_create_orders, [(str(path), klant, art, 15)] * 2)
    numbers = sorted(results[0] + results[1])
    assert numbers == list(range(1, 31))
    with LocalBackend(path) as backend:
        assert len(backend._conn.execute("SELECT * FROM verkooporder_regels").fetchall()) == 30


# -- factory and desktop ------------------------------------------------------------------------------------------


def test_factory_opens_local_relative_to_the_config_folder(tmp_path: Path) -> None:
    init_local(tmp_path / "admin.sqlite", sample=False)
    backend = open_backend(SimpleNamespace(backend="local", path=Path("admin.sqlite")), tmp_path)
    try:
        assert isinstance(backend, LocalBackend) and backend.path == tmp_path / "admin.sqlite"
    finally:
        backend.close()
    with pytest.raises(SnelStartUnavailable, match="does not exist"):
        open_backend(SimpleNamespace(backend="local", path=Path("other.sqlite")), tmp_path)
    with pytest.raises(ValueError, match="local, b2b or desktop"):
        open_backend(SimpleNamespace(backend="excel"), tmp_path)
    with pytest.raises(SnelStartUnavailable, match="needs Windows"):
        open_backend(SimpleNamespace(backend="desktop", kind="sql"), tmp_path)


def test_desktop_connection_strings() -> None:
    sql = SimpleNamespace(kind="sql", server=r"KANTOOR\SNELSTART", administration="Voorbeeld", sql_user=None)
    assert connection_string(sql, driver="ODBC Driver 17 for SQL Server") == (
        r"Driver={ODBC Driver 17 for SQL Server};Server=KANTOOR\SNELSTART;Database=Voorbeeld;Trusted_Connection=yes;"
    )
    login = SimpleNamespace(kind="sql", server="srv", administration="A;B", sql_user="koppel")
    text = connection_string(login, driver="ODBC Driver 17 for SQL Server", sql_password="p}w;d")
    assert "Database={A;B};" in text and "UID=koppel;PWD={p}}w;d};" in text
    with pytest.raises(ValueError, match="sql_password"):
        connection_string(login)
    lokaal = SimpleNamespace(kind="lokaal", folder=r"D:\SnelStart\Administraties", administration="Voorbeeld")
    text = connection_string(lokaal, driver="ODBC Driver 17 for SQL Server")
    assert r"Server=(localdb)\SnelStart;" in text
    assert r"AttachDbFileName=D:\SnelStart\Administraties\Voorbeeld.mdf;Database=Voorbeeld;" in text
    mdb = SimpleNamespace(kind="mdb", folder=r"C:\Oud", administration="Winkel")
    assert (
        connection_string(mdb) == r"Driver={Microsoft Access Driver (*.mdb, *.accdb)};DBQ=C:\Oud\Winkel.mdb;"
    )
    with pytest.raises(ValueError, match="server"):
        connection_string(SimpleNamespace(kind="sql", server="", administration="A"))
    with pytest.raises(ValueError, match="administration"):
        connection_string(SimpleNamespace(kind="lokaal", folder="C:\\", administration=None))
