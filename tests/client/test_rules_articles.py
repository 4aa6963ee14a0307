"""Article resolution (articles.processing, code_field, default article) and recipes, on the local backend."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from client.config import ArticlesSettings, OrdersSettings
from client.rules.articles import PLACEHOLDER_PREFIX, ArticleResolver
from client.rules.errors import OrderFailure
from client.rules.salesorder import prepare_order
from client.snelstart.base import NieuwArtikel
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


def resolver(backend, *, dry_run=False, orders=None, **articles):
    articles.setdefault("revenue_group", 1)
    return ArticleResolver(
        ArticlesSettings(**articles), OrdersSettings(**(orders or {})), backend, dry_run=dry_run
    )


def test_known_sku_is_found_case_insensitively(backend):
    r = resolver(backend)
    assert r.for_sku("mok-wit", "Mok", Decimal("1")).artikelcode == "MOK-WIT"
    assert r.created == [] and r.actions == []


def test_add_creates_unknown_sku_in_the_revenue_group(backend):
    r = resolver(backend, processing="add")
    artikel = r.for_sku("NIEUW-1", "Nieuwe koffiebeker", Decimal("7.40"))
    stored = backend.artikelen_by_code("NIEUW-1")[0]
    assert stored.id == artikel.id and stored.omschrijving == "Nieuwe koffiebeker"
    assert stored.verkoopprijs == Decimal("7.40")
    assert r.vat_rate(stored) == Decimal("21")  # omzetgroep 1 is the high rate
    assert r.created == ["NIEUW-1"] and r.actions == [
        "create article NIEUW-1 'Nieuwe koffiebeker' in omzetgroep 1 (21 %)"
    ]
    # the same SKU twice in one order: created once
    assert r.for_sku("NIEUW-1", "Nieuwe koffiebeker", Decimal("7.40")).id == artikel.id and r.created == [
        "NIEUW-1"
    ]


def test_revenue_group_by_name_and_only_validated_when_needed(backend):
    assert (
        resolver(backend, revenue_group="omzet laag").for_sku("LAAG-1", "x", Decimal("1")).artikelcode
        == "LAAG-1"
    )
    assert (
        resolver(backend, revenue_group=None).for_sku("MOK-WIT", "x", Decimal("1")).artikelcode == "MOK-WIT"
    )
    with pytest.raises(OrderFailure, match="articles.revenue_group is not set"):
        resolver(backend, revenue_group=None).for_sku("NIEUW-2", "x", Decimal("1"))
    with pytest.raises(OrderFailure, match="articles.revenue_group 77: no such omzetgroep"):
        resolver(backend, revenue_group=77).for_sku("NIEUW-2", "x", Decimal("1"))


def test_add_does_not_update_but_add_and_update_does(backend):
    resolver(backend, processing="add").for_sku("MOK-WIT", "Mok wit nieuw", Decimal("7.00"))
    assert backend.artikelen_by_code("MOK-WIT")[0].omschrijving == "Koffiemok wit"
    r = resolver(backend, processing="add_and_update")
    r.for_sku("MOK-WIT", "Mok wit nieuw", Decimal("7.00"))
    stored = backend.artikelen_by_code("MOK-WIT")[0]
    assert (stored.omschrijving, stored.verkoopprijs) == ("Mok wit nieuw", Decimal("7.00"))
    assert r.actions == ["update article MOK-WIT: 'Mok wit nieuw', price 7.00"]
    # unchanged: no update
    r2 = resolver(backend, processing="add_and_update")
    r2.for_sku("MOK-WIT", "Mok wit nieuw", Decimal("7.00"))
    assert r2.actions == []


def test_manual_never_touches_articles_and_uses_the_default(backend):
    r = resolver(backend, processing="manual", orders={"default_article": "WEBSHOP"})
    assert r.for_sku("ONBEKEND", "Iets", Decimal("1")).artikelcode == "WEBSHOP"
    assert backend.artikelen_by_code("ONBEKEND") == [] and r.created == []
    assert any("ONBEKEND is not in SnelStart" in w for w in r.warnings)
    assert r.for_sku("MOK-WIT", "Mok anders", Decimal("99")).omschrijving == "Koffiemok wit"
    with pytest.raises(
        OrderFailure, match="articles.processing is manual, and orders.default_article is not set"
    ):
        resolver(backend, processing="manual").for_sku("ONBEKEND", "Iets", Decimal("1"))
    with pytest.raises(OrderFailure, match="orders.default_article: article NIETS does not exist"):
        resolver(backend, processing="manual", orders={"default_article": "NIETS"}).for_sku(
            "X", "x", Decimal("1")
        )


def test_item_without_sku_uses_default_article(backend):
    r = resolver(backend, orders={"default_article": "WEBSHOP"})
    assert r.for_sku("  ", "Losse dienst", Decimal("5")).artikelcode == "WEBSHOP"
    with pytest.raises(OrderFailure, match="has no SKU, and orders.default_article is not set"):
        resolver(backend).for_sku(None, "Losse dienst", Decimal("5"))


def test_code_field_on_an_extra_field(backend):
    backend.define_extra_veld("artikel", "Webshop SKU")
    ean = backend.create_artikel(
        NieuwArtikel("8712345678906", "Koffiefilter EAN", gen._group_id(gen.seed_catalog(backend), Decimal("21")),
                     extra_velden={"Webshop SKU": "FILTER-EAN"})
    )  # fmt: skip
    r = resolver(backend, code_field="Webshop SKU")
    assert r.for_sku("filter-ean", "x", Decimal("1")).id == ean.id
    created = r.for_sku("NOG-NIET", "Nieuw via veld", Decimal("3"))
    assert created.extra_velden == {"Webshop SKU": "NOG-NIET"}
    assert backend.artikelen_by_code("NOG-NIET", "Webshop SKU")[0].id == created.id


def test_ambiguous_code_field_names_the_articles(backend):
    backend.define_extra_veld("artikel", "Webshop SKU")
    group = gen._group_id(gen.seed_catalog(backend), Decimal("21"))
    for code in ("A1", "A2"):
        backend.create_artikel(
            NieuwArtikel(code, f"Artikel {code}", group, extra_velden={"Webshop SKU": "DUBBEL"})
        )
    with pytest.raises(
        OrderFailure,
        match="SKU DUBBEL matches several SnelStart articles on Webshop SKU: A1 Artikel A1, A2 Artikel A2",
    ):
        resolver(backend, code_field="Webshop SKU").for_sku("DUBBEL", "x", Decimal("1"))


def test_dry_run_creates_no_article(backend):
    r = resolver(backend, dry_run=True)
    artikel = r.for_sku("DROOG-1", "Droog", Decimal("2"))
    assert artikel.id == PLACEHOLDER_PREFIX + "DROOG-1" and r.created == ["DROOG-1"]
    assert backend.artikelen_by_code("DROOG-1") == []
    r2 = resolver(backend, dry_run=True, processing="add_and_update")
    r2.for_sku("MOK-WIT", "Andere naam", Decimal("1"))
    assert r2.actions and backend.artikelen_by_code("MOK-WIT")[0].omschrijving == "Koffiemok wit"


# -- recipes -----------------------------------------------------------------------------------------------------


@pytest.fixture
def with_recipes(backend):
    proef = backend.artikelen_by_code("PAKKET-PROEF")[0]
    parts = [(backend.artikelen_by_code("KOF-ARABICA-1KG")[0].id, Decimal("1")),
             (backend.artikelen_by_code("MOK-WIT")[0].id, Decimal("2"))]  # fmt: skip
    backend.set_recept(proef.id, parts, "always")
    molen = backend.artikelen_by_code("MOLEN-HAND")[0]
    backend.set_recept(molen.id, [(backend.artikelen_by_code("FILTER-102")[0].id, Decimal("1"))], "choice")
    return backend


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("never", ["PAKKET-PROEF", "MOLEN-HAND"]),
        ("always", ["PAKKET-PROEF", "KOF-ARABICA-1KG", "MOK-WIT", "MOLEN-HAND"]),
        ("choice_or_always", ["PAKKET-PROEF", "KOF-ARABICA-1KG", "MOK-WIT", "MOLEN-HAND", "FILTER-102"]),
    ],
)
def test_recipe_modes(tmp_path, with_recipes, mode, expected):
    backend = with_recipes
    if backend.name == "b2b" and mode != "never":
        pytest.skip(
            "the B2B API does not expose recipe placement; config refuses recipes other than never on b2b"
        )
    profile = gen.profile(tmp_path, orders={"recipes": mode})
    order = gen.order([gen.bundle_fixed(2, item_id=1), gen.item("MOLEN-HAND", 1, item_id=2)])
    prepared = prepare_order(order, profile, backend)
    codes = [backend.get_artikel(r.artikel_id).artikelcode for r in prepared.verkooporder.regels]
    assert codes == expected
    by_code = dict(zip(codes, prepared.verkooporder.regels, strict=True))
    if mode != "never":
        # quantities per bundle × bundles; the parts carry no price, Magento's price covers the whole
        assert by_code["MOK-WIT"].aantal == Decimal("4") and by_code["MOK-WIT"].stuksprijs == 0
    created = backend.create_verkooporder(prepared.verkooporder)
    assert created.totaal_incl_btw == Decimal(order["totals"]["grand_total"]).quantize(Decimal("0.01"))


def test_inactive_cost_article_is_refused(backend):
    verzend = backend.artikelen_by_code("VERZEND")[0]
    backend.update_artikel(dataclasses.replace(verzend, is_non_actief=True))
    r = resolver(backend)
    with pytest.raises(
        OrderFailure,
        match="orders.shipping_costs: article VERZEND does not exist in SnelStart \\(or is inactive\\)",
    ):
        r.by_code("VERZEND", "orders.shipping_costs")


@pytest.mark.parametrize(
    ("rate", "soort"),
    [("9", "Laag"), ("21", "Hoog"), ("19", "Hoog"), ("0", "Hoog"), (None, "Hoog")],
)
def test_abroad_only_a_dutch_rate_above_zero_places_a_new_article_by_rate(backend, rate, soort):
    r = resolver(backend)
    r.country = "DE"
    charged = None if rate is None else Decimal(rate)
    assert r.dutch_rate(charged) is (soort == "Laag" or rate == "21")
    artikel = r.for_sku("NIEUW-DE", "Nieuw in Duitsland", Decimal("8.49"), charged)
    assert r.group_of(artikel).btw_soort == soort  # type: ignore[union-attr]
