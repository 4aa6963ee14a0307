"""Customer matching (the six customers.matching modes) and processing (add / add_and_update / manual),
against the real local backend."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.config import CustomersSettings
from client.rules.customers import PLACEHOLDER_RELATIE_ID, match_customer, resolve_customer
from client.rules.errors import OrderFailure
from client.rules.normalize import LEGAL_FORMS, name_key, strip_accents, vat_key
from client.snelstart.base import Adres, EmailVersturen, NieuweRelatie
from tests.client import orders as gen
from tests.client.conftest_b2b import b2b_over


@pytest.fixture(params=["local", "b2b"])
def backend(request, tmp_path):
    b = gen.fresh_admin(tmp_path)
    if request.param == "b2b":
        with b2b_over(b, tmp_path) as b2b:
            yield b2b
    else:
        yield b
    b.close()


def relatie(backend, naam, postcode="1234 AB", land="NL", **fields):
    extra = fields.pop("after", {})
    created = backend.create_relatie(
        NieuweRelatie(naam=naam, vestigingsadres=Adres(None, "Straat 1", postcode, "Plaats", land), **fields)
    )
    if extra:
        created = backend.update_relatie(dataclasses.replace(created, **extra))
    return created


def settings(matching="smart", processing="add", **kw):
    return CustomersSettings(matching=matching, processing=processing, **kw)


def one_order(**kw):
    return gen.order([gen.item("MOK-WIT")], **kw)


# -- customer_code ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attribute", ["klantcode", "klantnr", "klantnummer", "debiteurnr", "debiteurnummer"])
def test_customer_code_from_each_attribute(backend, attribute):
    known = relatie(backend, "Koffiebar De Hoek", relatiecode=4711)
    result = match_customer(one_order(attributes={attribute: "4711"}), settings("customer_code"), backend)
    assert result.relatie is not None and result.relatie.id == known.id and result.step == "customer_code"


def test_customer_code_must_exist_and_have_a_value(backend):
    with pytest.raises(OrderFailure, match="klantcode, klantnr, klantnummer, debiteurnr, debiteurnummer"):
        match_customer(one_order(attributes={}), settings("customer_code"), backend)
    with pytest.raises(OrderFailure, match="with a value"):
        match_customer(one_order(attributes={"klantcode": "  "}), settings("customer_code"), backend)
    with pytest.raises(OrderFailure, match="guest"):
        match_customer(one_order(guest=True), settings("customer_code"), backend)
    with pytest.raises(OrderFailure, match="'K-12' is not a SnelStart customer number"):
        match_customer(one_order(attributes={"klantcode": "K-12"}), settings("customer_code"), backend)


def test_customer_code_unknown_in_snelstart_creates_the_customer_with_that_number(backend):
    order = one_order(attributes={"klantnummer": "90210"})
    assert match_customer(order, settings("customer_code"), backend).relatie is None
    outcome = resolve_customer(
        order, settings("customer_code"), backend, dry_run=False, actions=[], warnings=[]
    )
    assert outcome.created and outcome.relatie is not None and outcome.relatie.relatiecode == 90210


def test_inactive_customer_code_is_refused(backend):
    known = relatie(backend, "Oud", relatiecode=300)
    backend.update_relatie(dataclasses.replace(known, nonactief=True))
    with pytest.raises(OrderFailure, match="customer number 300 .* is inactive"):
        match_customer(one_order(attributes={"klantcode": "300"}), settings("customer_code"), backend)


# -- email -----------------------------------------------------------------------------------------------------


def test_email_main_then_invoice_then_other_fields(backend):
    order = one_order(email="Inkoop@Example.NL ")
    assert match_customer(order, settings("email"), backend).relatie is None
    other = relatie(
        backend, "Via aanmaning", after={"aanmaning_email": EmailVersturen(None, "inkoop@example.nl")}
    )
    result = match_customer(order, settings("email"), backend)
    assert result.relatie.id == other.id and "quote/confirmation/reminder" in result.step
    invoice = relatie(
        backend, "Via factuur", factuur_email=EmailVersturen("x@example.nl", "inkoop@example.nl")
    )
    result = match_customer(order, settings("email"), backend)
    assert result.relatie.id == invoice.id and "invoice" in result.step
    main = relatie(backend, "Via hoofdadres", email="inkoop@example.nl")
    result = match_customer(order, settings("email"), backend)
    assert result.relatie.id == main.id and "main" in result.step


def test_email_several_hits_in_one_step_names_them(backend):
    relatie(backend, "Jansen Rotterdam", relatiecode=501, email="jan@example.nl")
    relatie(backend, "Jansen Delft", relatiecode=502, email="jan@example.nl")
    with pytest.raises(OrderFailure, match=r"501 Jansen Rotterdam, 502 Jansen Delft"):
        match_customer(one_order(email="jan@example.nl"), settings("email"), backend)


def test_code_or_email(backend):
    by_code = relatie(backend, "Met code", relatiecode=777)
    by_mail = relatie(backend, "Met mail", email="m@example.nl")
    mode = settings("code_or_email")
    assert (
        match_customer(
            one_order(email="m@example.nl", attributes={"klantcode": "777"}), mode, backend
        ).relatie.id
        == by_code.id
    )
    assert match_customer(one_order(email="m@example.nl"), mode, backend).relatie.id == by_mail.id
    # A code SnelStart does not know falls back to the e-mail.
    assert (
        match_customer(
            one_order(email="m@example.nl", attributes={"klantcode": "778"}), mode, backend
        ).relatie.id
        == by_mail.id
    )


def test_email_and_postcode(backend):
    office = relatie(backend, "Dienstverlener klant A", postcode="1111 AA", email="inkoper@example.nl")
    relatie(backend, "Dienstverlener klant B", postcode="2222 BB", email="inkoper@example.nl")
    mode = settings("email_and_postcode")
    order = one_order(
        email="inkoper@example.nl", billing=gen.address(postcode="1111aa", email="inkoper@example.nl")
    )
    assert match_customer(order, mode, backend).relatie.id == office.id
    # Same e-mail, another postcode: a new customer.
    elsewhere = one_order(email="inkoper@example.nl", billing=gen.address(postcode="3333 CC"))
    assert match_customer(elsewhere, mode, backend).relatie is None


def test_code_or_email_and_postcode(backend):
    coded = relatie(backend, "Gecodeerd", relatiecode=1234, postcode="9999 ZZ")
    mailed = relatie(backend, "Gemaild", postcode="1234 AB", email="p@example.nl")
    mode = settings("code_or_email_and_postcode")
    assert (
        match_customer(
            one_order(email="p@example.nl", attributes={"debiteurnr": "1234"}), mode, backend
        ).relatie.id
        == coded.id
    )
    assert match_customer(one_order(email="p@example.nl"), mode, backend).relatie.id == mailed.id
    other_pc = one_order(email="p@example.nl", billing=gen.address(postcode="5555 XX"))
    assert match_customer(other_pc, mode, backend).relatie is None


# -- smart -----------------------------------------------------------------------------------------------------


def test_smart_code_first(backend):
    coded = relatie(backend, "Code", relatiecode=8080)
    relatie(backend, "Mail", email="c@example.nl")
    result = match_customer(
        one_order(email="c@example.nl", attributes={"klantcode": "8080"}), settings(), backend
    )
    assert result.relatie.id == coded.id and result.step == "customer_code"


def test_smart_email_in_every_field(backend):
    found = relatie(
        backend, "Bevestiging cc", after={"bevestiging_email": EmailVersturen("a@b.nl", "z@example.nl")}
    )
    result = match_customer(one_order(email="z@example.nl"), settings(), backend)
    assert result.relatie.id == found.id and result.step == "email"


def test_smart_narrows_several_email_hits_by_postcode(backend):
    relatie(backend, "Filiaal Noord", relatiecode=601, postcode="1000 AA", email="keten@example.nl")
    south = relatie(backend, "Filiaal Zuid", relatiecode=602, postcode="6000 ZZ", email="keten@example.nl")
    # the delivery postcode decides here (billing is elsewhere)
    order = one_order(
        email="keten@example.nl",
        billing=gen.address(postcode="3000 CC"),
        shipping_address=gen.address(postcode="6000zz"),
    )
    result = match_customer(order, settings(), backend)
    assert result.relatie.id == south.id and result.step == "email + postcode"
    with pytest.raises(OrderFailure, match="601 Filiaal Noord, 602 Filiaal Zuid"):
        match_customer(
            one_order(email="keten@example.nl", billing=gen.address(postcode="3000 CC")), settings(), backend
        )


@pytest.mark.parametrize("typed", ["812345678B01", "NL812345678B01", "nl 8123.45.678.b01"])
def test_smart_vat_with_and_without_country_prefix(backend, typed):
    found = relatie(backend, "BTW Klant", btw_nummer="NL812345678B01")
    order = one_order(email="new@example.nl", billing=gen.address(company="Iets Anders", vat_id=typed))
    result = match_customer(order, settings(), backend)
    assert result.relatie.id == found.id and result.step == "vat"


def test_smart_vat_greece_uses_el(backend):
    found = relatie(backend, "Papadopoulos Trading", land="GR", postcode="105 63", btw_nummer="EL094012345")
    order = one_order(
        email="x@example.gr", billing=gen.address(country="GR", vat_id="094012345", company="P")
    )
    assert match_customer(order, settings(), backend).relatie.id == found.id


def test_smart_kvk_with_billing_country(backend):
    found = relatie(backend, "Hoveniersbedrijf Groen", kvk_nummer="30123456")
    relatie(backend, "Zelfde nummer in België", land="BE", postcode="1000", kvk_nummer="30123456")
    order = one_order(email="nobody@example.nl", attributes={"kvk": "30 12 34 56"})
    result = match_customer(order, settings(), backend)
    assert result.relatie.id == found.id and result.step == "kvk"


@pytest.mark.parametrize(
    "typed", ["Muller Elektro", "MÜLLER ELEKTRO GMBH", "Müller-Elektro G.m.b.H.", "muller elektro gmbh."]
)
def test_smart_name_without_spaces_dots_accents_legal_forms(backend, typed):
    found = relatie(backend, "Müller Elektro GmbH", land="DE", postcode="50672")
    billing = gen.address(company=typed, country="DE", postcode="50672", city="Köln", email="n@example.de")
    result = match_customer(one_order(email="n@example.de", billing=billing), settings(), backend)
    assert result.relatie is not None and result.relatie.id == found.id and result.step == "name"
    # another postcode or country is another customer
    billing_nl = gen.address(company=typed, country="NL", postcode="50672", email="n@example.de")
    assert (
        match_customer(one_order(email="n@example.de", billing=billing_nl), settings(), backend).relatie
        is None
    )


def test_smart_name_of_a_private_person(backend):
    found = relatie(backend, "Zoë van den Berg", postcode="3511 AZ")
    order = one_order(email="zoe@example.nl", firstname="Zoe", lastname="van den Berg",
                      billing=gen.address("Zoe", "van den Berg", postcode="3511AZ"))  # fmt: skip
    assert match_customer(order, settings(), backend).relatie.id == found.id


def test_smart_nothing_found_is_a_new_customer(backend):
    relatie(backend, "Iemand", email="iemand@example.nl")
    assert match_customer(one_order(email="niemand@example.nl"), settings(), backend).relatie is None


# -- processing ------------------------------------------------------------------------------------------------


def test_add_creates_with_payment_term_and_never_updates(backend):
    mode = settings("email", "add", payment_term_days=21)
    order = one_order(
        email="nieuw@example.nl",
        billing=gen.address("Kees", "Bakker", ("Dorpsstraat", "5a"), "7411 AB", "Deventer", company="Bakkerij Kees BV",
                            vat_id="NL812345678B01", telephone="0570-123456"),
    )  # fmt: skip
    outcome = resolve_customer(order, mode, backend, dry_run=False, actions=(actions := []), warnings=[])
    r = outcome.relatie
    assert outcome.created and r.naam == "Bakkerij Kees BV" and r.krediettermijn == 21
    assert r.vestigingsadres == Adres("Kees Bakker", "Dorpsstraat 5a", "7411 AB", "Deventer", "NL")
    assert r.email == "nieuw@example.nl" and r.btw_nummer == "NL812345678B01" and r.telefoon == "0570-123456"
    assert actions == ["create customer Bakkerij Kees BV"]
    # second order, changed address: add never updates, and the term of an existing customer is left alone
    moved = one_order(
        email="nieuw@example.nl", billing=gen.address(street=("Nieuwe weg", "1"), company="Bakkerij Kees BV")
    )
    again = resolve_customer(
        moved, settings("email", "add", payment_term_days=60), backend, dry_run=False, actions=[], warnings=[]
    )
    assert not again.created and not again.updated
    fresh = backend.get_relatie(r.id)
    assert fresh.vestigingsadres.straat == "Dorpsstraat 5a" and fresh.krediettermijn == 21


def test_add_and_update_updates_existing(backend):
    known = relatie(backend, "Oude Naam", email="u@example.nl", krediettermijn=30, telefoon="010-1")
    order = one_order(
        email="u@example.nl", billing=gen.address("Nieuwe", "Naam", ("Laan", "9"), "9999 AA", telephone=None)
    )
    outcome = resolve_customer(order, settings("email", "add_and_update", payment_term_days=7), backend,
                               dry_run=False, actions=(actions := []), warnings=[])  # fmt: skip
    assert outcome.updated and not outcome.created
    fresh = backend.get_relatie(known.id)
    assert fresh.naam == "Nieuwe Naam" and fresh.vestigingsadres.straat == "Laan 9"
    assert fresh.krediettermijn == 30 and fresh.telefoon == "010-1"  # term on new customers only; no wiping
    assert actions == [f"update customer {known.relatiecode} Oude Naam"]
    # nothing changed: no update
    outcome = resolve_customer(
        order, settings("email", "add_and_update"), backend, dry_run=False, actions=[], warnings=[]
    )
    assert not outcome.updated


def test_manual_uses_default_code_and_never_creates(backend):
    default = relatie(backend, "Webshop klanten", relatiecode=9999)
    mode = settings("email", "manual", default_code=9999)
    outcome = resolve_customer(
        one_order(email="onbekend@example.nl"), mode, backend, dry_run=False, actions=[], warnings=[]
    )
    assert outcome.relatie.id == default.id and outcome.step == "default_code" and not outcome.created
    with pytest.raises(OrderFailure, match="customers.default_code is not set"):
        resolve_customer(one_order(email="onbekend@example.nl"), settings("email", "manual"), backend,
                         dry_run=False, actions=[], warnings=[])  # fmt: skip
    with pytest.raises(OrderFailure, match="customers.default_code 4242: no active SnelStart customer"):
        resolve_customer(one_order(email="onbekend@example.nl"), settings("email", "manual", default_code=4242),
                         backend, dry_run=False, actions=[], warnings=[])  # fmt: skip
    known = relatie(backend, "Bekend", email="bekend@example.nl")
    found = resolve_customer(
        one_order(email="bekend@example.nl"), mode, backend, dry_run=False, actions=[], warnings=[]
    )
    assert found.relatie.id == known.id and not found.updated


# -- only customers (relatiesoort Klant) match, never suppliers ------------------------------------------------


def supplier(backend, naam, **fields):
    return relatie(backend, naam, after={"relatiesoort": ("Leverancier",)}, **fields)


@pytest.mark.parametrize("matching", ["email", "code_or_email", "email_and_postcode", "smart"])
def test_a_supplier_with_the_orders_email_is_never_the_customer(tmp_path, backend, matching):
    from client.rules.salesorder import prepare_order

    leverancier = supplier(backend, "Koffiebranderij Zuid", email="sanne@example.nl")
    assert backend.get_relatie(leverancier.id).relatiesoort == ("Leverancier",)
    assert match_customer(one_order(), settings(matching), backend).relatie is None
    # A new customer instead, and SnelStart takes the order (it refuses one for a supplier, VOR-0002).
    profile = gen.profile(tmp_path, customers={"matching": matching})
    prepared = prepare_order(one_order(), profile, backend)
    assert prepared.relatie_created and prepared.relatie.id != leverancier.id
    assert backend.create_verkooporder(prepared.verkooporder).relatie_id == prepared.relatie.id
    # Next to a customer with the same e-mail it is no second hit either: the customer matches.
    klant = backend.get_relatie(prepared.relatie.id)
    assert match_customer(one_order(), settings(matching), backend).relatie.id == klant.id


def test_smart_never_matches_a_supplier_by_vat_kvk_or_name(backend):
    supplier(backend, "Koffie Import B.V.", btw_nummer="NL812345678B01", kvk_nummer="24123456")
    order = one_order(
        billing=gen.address(company="Koffie Import BV", postcode="1234 AB", vat_id="NL812345678B01"),
        attributes={"kvk": "24123456"},
        email="inkoop@elders.example",
    )
    assert match_customer(order, settings("smart"), backend).relatie is None


def test_customer_code_or_default_code_of_a_supplier_fails_naming_it(backend):
    supplier(backend, "Koffiebranderij Zuid", relatiecode=4712)
    for mode in ("customer_code", "code_or_email", "smart"):
        with pytest.raises(OrderFailure) as failure:
            match_customer(one_order(attributes={"klantcode": "4712"}), settings(mode), backend)
        assert "SnelStart relatie 4712 Koffiebranderij Zuid is a Leverancier, not a Klant" in str(
            failure.value
        )
    with pytest.raises(OrderFailure, match="customers.default_code 4712: SnelStart relatie 4712 Koffiebranderij "
                       "Zuid is a Leverancier, not a Klant"):  # fmt: skip
        resolve_customer(one_order(email="onbekend@example.nl"), settings("email", "manual", default_code=4712),
                         backend, dry_run=False, actions=[], warnings=[])  # fmt: skip


def test_dry_run_creates_and_updates_nothing(backend):
    before = len(backend.relaties_by_email("d@example.nl", all_fields=True))
    outcome = resolve_customer(one_order(email="d@example.nl"), settings("email"), backend, dry_run=True,
                               actions=(actions := []), warnings=[])  # fmt: skip
    assert outcome.created and outcome.relatie is None and outcome.relatie_id == PLACEHOLDER_RELATIE_ID
    assert actions and actions[0].startswith("create customer")
    assert len(backend.relaties_by_email("d@example.nl", all_fields=True)) == before == 0
    known = relatie(backend, "Oud", email="e@example.nl")
    resolve_customer(one_order(email="e@example.nl"), settings("email", "add_and_update"), backend, dry_run=True,
                     actions=(actions := []), warnings=[])  # fmt: skip
    assert actions == [f"update customer {known.relatiecode} Oud"]
    assert backend.get_relatie(known.id).naam == "Oud"


def test_long_fields_are_shortened_with_a_warning(backend):
    long_name = "Stichting Vrienden van de Koffie en de Thee in Midden-Nederland en omstreken"
    order = one_order(email="l@example.nl", billing=gen.address(company=long_name, street=("Langestraat" * 6, "1"),
                                                                telephone="+31 (0)6 1234 5678 toestel 1234"))  # fmt: skip
    warnings: list[str] = []
    outcome = resolve_customer(
        order, settings("email"), backend, dry_run=False, actions=[], warnings=warnings
    )
    assert (
        outcome.relatie.naam == long_name[:50].rstrip() and len(outcome.relatie.vestigingsadres.straat) <= 50
    )
    assert outcome.relatie.telefoon is None  # a phone number is never cut: left out
    assert any("customer name shortened to 50" in w for w in warnings)
    assert any("street shortened" in w for w in warnings) and any(
        "telephone number left out" in w for w in warnings
    )


# -- normalisation (pure) ---------------------------------------------------------------------------------------


@given(base=st.text(alphabet="abcdefghijklmnopqrstuvwxyzéèëüöçñ", min_size=2, max_size=20),
       form=st.sampled_from(["BV", "B.V.", "b.v.", "VOF", "V.O.F.", "GmbH", "Ltd.", "N.V."]),
       spaces=st.booleans())  # fmt: skip
def test_name_key_ignores_case_spaces_dots_accents_legal_form(base, form, spaces):
    typed = f"{base.upper() if spaces else base} {form}"
    assert name_key(typed) == name_key(strip_accents(base)) or name_key(base) in LEGAL_FORMS


@given(digits=st.from_regex(r"[0-9]{9}B[0-9]{2}", fullmatch=True), sep=st.sampled_from(["", " ", ".", "-"]))
def test_vat_key_with_or_without_prefix(digits, sep):
    typed = sep.join([digits[:4], digits[4:]])
    assert vat_key(typed, "NL") == vat_key("NL" + digits) == vat_key(f"nl{sep}{typed}", "NL") == "NL" + digits


@pytest.mark.parametrize(
    ("typed", "country", "stored", "warning"),
    [
        ("094012345", "GR", "EL094012345", None),
        ("be 0123.456.789", "BE", "BE0123456789", None),
        ("NL812345678B01", "DE", None, "not a number of DE"),
        ("NL12345", "NL", None, "not a Dutch VAT number"),
    ],
)
def test_vat_number_of_a_new_customer_is_stored_only_when_snelstart_accepts_it(
    backend, typed, country, stored, warning
):
    billing = gen.address(
        company="Firma", country=country, postcode="10000", vat_id=typed, email="v@example.eu"
    )
    warnings: list[str] = []
    outcome = resolve_customer(one_order(email="v@example.eu", billing=billing), settings("email"), backend,
                               dry_run=False, actions=[], warnings=warnings)  # fmt: skip
    assert outcome.created and outcome.relatie.btw_nummer == stored
    assert (warning is None and not warnings) or any(warning in w for w in warnings)
