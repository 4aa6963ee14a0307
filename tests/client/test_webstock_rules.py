"""The pure web stock rule (client.rules.webstock): examples from the manual's chapter 5, and properties."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.rules.webstock import (
    compute_web_stock,
    magento_order_lines,
    open_claims,
    parts_placed_by,
    qty_text,
    sku_claims,
    sku_of,
)
from client.snelstart.base import Artikel, OrderRegel, ReceptRegel, Verkooporder

D = Decimal
NEVER = parts_placed_by("never")


def art(
    id_: str,
    vrij: int | str,
    *,
    code: str | None = None,
    controle: bool = True,
    recept: list[tuple[str, int | str]] = (),
    plaatsing: str | None = None,
    extra: dict[str, str] | None = None,
    inactive: bool = False,
) -> Artikel:
    return Artikel(
        id=id_,
        artikelcode=code or f"ART-{id_}",
        omschrijving=f"article {id_}",
        voorraad_controle=controle,
        vrije_voorraad=D(vrij),
        technische_voorraad=D(vrij),
        recept=[ReceptRegel(sub, f"ART-{sub}", D(aantal)) for sub, aantal in recept],
        recept_plaatsing=plaatsing if recept else None,
        extra_velden=extra or {},
        is_non_actief=inactive,
    )


def order(
    lines: list[tuple[str | None, int | str]], *, status: str = "Order", kenmerk: str | None = "100001"
) -> Verkooporder:
    return Verkooporder(
        id="o",
        nummer=1,
        relatie_id="r",
        datum=dt.date(2026, 12, 3),
        betalingskenmerk=kenmerk,
        omschrijving=None,
        sjabloon_id=None,
        proces_status=status,
        totaal_excl_btw=D(0),
        totaal_incl_btw=D(0),
        regels=[OrderRegel(artikel_id=a, omschrijving="x", aantal=D(q)) for a, q in lines],
    )


def web(artikelen: list[Artikel], orders: list[Verkooporder], placed=NEVER, code_field="artikelcode"):  # noqa: ANN001, ANN201
    claims = open_claims(orders, {a.id: a for a in artikelen}, placed)
    return compute_web_stock(artikelen, claims, code_field)


# -- examples -----------------------------------------------------------------------------------------------


def test_free_stock_minus_open_web_orders_only():
    artikelen = [art("1", 10), art("2", 4)]
    orders = [
        order([("1", 3), ("2", 1)]),
        order([("1", 2)], kenmerk="100002"),
        order([("1", 5)], kenmerk=None),  # typed in by hand: no betalingskenmerk, not a web order
        order([("1", 5)], kenmerk="   "),
        order([("1", 4)], status="Pakbon"),  # processed: SnelStart's free stock counts it already
        order([(None, 1)]),  # a text line
    ]
    assert web(artikelen, orders).by_sku == {"ART-1": D(5), "ART-2": D(3)}


def test_never_below_zero_also_when_free_stock_is_negative():
    result = web([art("1", 2), art("2", -3)], [order([("1", 5)])])
    assert result.by_sku == {"ART-1": D(0), "ART-2": D(0)}


def test_only_active_stock_controlled_articles():
    result = web([art("1", 5), art("2", 5, controle=False), art("3", 5, inactive=True)], [])
    assert result.by_sku == {"ART-1": D(5)}


def test_recipe_takes_the_scarcest_part_rounded_down():
    artikelen = [
        art("A", 10),
        art("B", 7),
        art("C", 100, controle=False),  # not stock-controlled: never the limit
        art("SET", 50, recept=[("A", 2), ("B", 3), ("C", 1)], plaatsing="always"),
    ]
    # A: 10 → 5 sets; B: 7 → 2 sets (7/3 = 2.33, floor)
    assert web(artikelen, []).by_sku == {
        "ART-A": D(10),
        "ART-B": D(7),
        "ART-SET": D(2),
    }


def test_recipe_line_claims_its_parts_when_the_import_did_not_place_them():
    artikelen = [art("A", 10), art("B", 9), art("SET", 0, recept=[("A", 2), ("B", 1)], plaatsing="always")]
    orders = [order([("SET", 2)])]
    # Not placed: the SET line claims 4 A and 2 B.
    assert web(artikelen, orders).by_sku == {"ART-A": D(6), "ART-B": D(7), "ART-SET": D(3)}
    # Placed (orders.recipes always): the order carries the part lines itself, nothing is claimed twice.
    placed_orders = [order([("SET", 2), ("A", 4), ("B", 2)])]
    assert web(artikelen, placed_orders, parts_placed_by("always")).by_sku == {
        "ART-A": D(6),
        "ART-B": D(7),
        "ART-SET": D(3),
    }


def test_choice_recipes_are_placed_only_under_choice_or_always():
    artikel = art("SET", 0, recept=[("A", 1)], plaatsing="choice")
    assert not parts_placed_by("always")(artikel)
    assert parts_placed_by("choice_or_always")(artikel)
    assert not parts_placed_by("choice_or_always")(art("X", 0))
    with pytest.raises(ValueError, match="orders.recipes"):
        parts_placed_by("sometimes")


def test_recipe_without_stock_controlled_parts_uses_its_own_free_stock():
    artikelen = [art("C", 100, controle=False), art("SET", 6, recept=[("C", 1)], plaatsing="always")]
    assert web(artikelen, [order([("SET", 2)])]).by_sku == {"ART-SET": D(4)}


def test_composite_without_stock_control_follows_its_parts():
    """Issue 6: such a composite has no free stock of its own in SnelStart; the shop may sell as many as its
    scarcest part allows, after what the open web orders already claim."""
    artikelen = [
        art("A", 11),
        art("B", 7),
        art("C", 0, controle=False),  # not stock-controlled: never the limit, however little SnelStart shows
        art("SET", 0, controle=False, recept=[("A", 2), ("B", 3), ("C", 1)], plaatsing="choice"),
        art("HALF", 0, controle=False, recept=[("A", "0.5")]),
    ]
    assert web(artikelen, []).by_sku == {"ART-A": D(11), "ART-B": D(7), "ART-SET": D(2), "ART-HALF": D(22)}
    # An open order for one set, its recipe not placed as lines: the parts go with it (A 9, B 4).
    assert web(artikelen, [order([("SET", 1)])]).by_sku == {
        "ART-A": D(9),
        "ART-B": D(4),
        "ART-SET": D(1),
        "ART-HALF": D(18),
    }
    # A part claimed past zero: its figure and the set's stop at zero, the other part's stays.
    assert web(artikelen, [order([("B", 9)])]).by_sku == {
        "ART-A": D(11),
        "ART-B": D(0),
        "ART-SET": D(0),
        "ART-HALF": D(22),
    }


def test_composite_none_of_whose_parts_counts_gets_no_figure():
    artikelen = [
        art("C", 100, controle=False),
        art("D", 100, controle=False),
        art("SET", 0, controle=False, recept=[("C", 1), ("D", 2)]),
        art("GONE", 0, controle=False, recept=[("Z", 1)]),  # its part is not among the articles at all
        art("OLD", 0, controle=False, recept=[("A", 1)], inactive=True),
        art("A", 4),
    ]
    result = web(artikelen, [order([("SET", 1)])])
    assert result.by_sku == {"ART-A": D(4)}
    assert result.problems == []  # nothing to push is not a problem of the article


def test_composite_of_composites_without_stock_control():
    artikelen = [
        art("A", 40),
        art("INNER", 0, controle=False, recept=[("A", 2)]),
        art("OUTER", 0, controle=False, recept=[("INNER", 3)]),
    ]
    assert web(artikelen, []).by_sku == {"ART-A": D(40), "ART-INNER": D(20), "ART-OUTER": D(6)}
    # One OUTER on an open order takes 3 INNER, that is 6 A: the claim reaches the part SnelStart counts.
    assert web(artikelen, [order([("OUTER", 1)])]).by_sku == {
        "ART-A": D(34),
        "ART-INNER": D(17),
        "ART-OUTER": D(5),
    }
    # The same through Magento orders not imported yet.
    claims = sku_claims([("ART-OUTER", D(2))], artikelen, "artikelcode")
    assert claims == {"OUTER": D(2), "INNER": D(6), "A": D(12)}


def test_composite_without_stock_control_needs_its_own_sku():
    artikelen = [
        art("A", 6, code="A-1"),
        art("SET", 0, code="SET-1", controle=False, recept=[("A", 1)], extra={"SKU": ""}),
        art("NOSET", 0, code="NOSET-1", controle=False, recept=[("X", 1)]),
    ]
    result = web(artikelen, [], code_field="SKU")
    assert result.by_sku == {}
    # A has no SKU either; NOSET gets no figure, so its missing SKU is nobody's concern.
    assert sorted(result.problems) == [
        "article A-1 has no value in SKU; not pushed",
        "article SET-1 has no value in SKU; not pushed",
    ]


def test_nested_recipes_and_cycles():
    artikelen = [
        art("A", 12),
        art("INNER", 0, recept=[("A", 2)], plaatsing="always"),
        art("OUTER", 0, recept=[("INNER", 2)], plaatsing="always"),
        art("X", 5, recept=[("Y", 1)], plaatsing="always"),
        art("Y", 5, recept=[("X", 1)], plaatsing="always"),
    ]
    result = web(artikelen, [])
    assert result.by_sku == {"ART-A": D(12), "ART-INNER": D(6), "ART-OUTER": D(3)}
    assert sum("recipe cycle" in p for p in result.problems) == 2


def test_sku_from_an_extra_field_and_problems():
    artikelen = [
        art("1", 5, code="8712345678901", extra={"Webshop SKU": " MUG-1 "}),
        art("2", 5, code="8712345678902", extra={"webshop sku": "TEE-1"}),
        art("3", 5, code="8712345678903"),  # no SKU in the field: not pushed
        art("4", 5, code="8712345678904", extra={"Webshop SKU": "CAP"}),
        art("5", 5, code="8712345678905", extra={"Webshop SKU": "cap"}),  # the same SKU for Magento
    ]
    result = web(artikelen, [], code_field="Webshop SKU")
    assert result.by_sku == {"MUG-1": D(5), "TEE-1": D(5)}
    assert any("8712345678903" in p and "no value" in p for p in result.problems)
    assert any("several articles" in p and "8712345678904" in p for p in result.problems)
    assert sku_of(artikelen[0], "artikelcode") == "8712345678901"


def test_qty_text_is_canonical():
    assert qty_text(D("5.0000")) == "5"
    assert qty_text(D("2.50")) == "2.5"
    assert qty_text(D("1E+3")) == "1000"
    assert qty_text(D("0")) == "0"


# -- properties ---------------------------------------------------------------------------------------------

quantities = st.integers(min_value=-20, max_value=200)
order_qty = st.integers(min_value=1, max_value=30)


@st.composite
def shops(draw: st.DrawFn) -> tuple[list[Artikel], list[Verkooporder]]:
    n = draw(st.integers(min_value=1, max_value=8))
    simple = [art(str(i), draw(quantities), controle=draw(st.booleans())) for i in range(n)]
    composites = []
    for j in range(draw(st.integers(min_value=0, max_value=3))):
        parts = draw(st.lists(st.sampled_from([a.id for a in simple]), min_size=1, max_size=3, unique=True))
        recept = [(p, draw(st.integers(min_value=1, max_value=4))) for p in parts]
        # With stock control of its own or (as SnelStart composites usually are) without.
        controle = draw(st.booleans())
        composites.append(
            art(f"S{j}", draw(quantities), controle=controle, recept=recept, plaatsing="always")
        )
    ids = [a.id for a in simple + composites]
    orders = [
        order(
            draw(st.lists(st.tuples(st.sampled_from(ids), order_qty), max_size=4)),
            status=draw(st.sampled_from(["Order", "Order", "Factuur"])),
            kenmerk=draw(st.sampled_from(["1001", None])),
        )
        for _ in range(draw(st.integers(min_value=0, max_value=6)))
    ]
    return simple + composites, orders


@settings(max_examples=300, deadline=None)
@given(shops())
def test_property_bounds(shop: tuple[list[Artikel], list[Verkooporder]]):
    artikelen, orders = shop
    by_sku = web(artikelen, orders).by_sku
    by_id = {a.id: a for a in artikelen}
    for artikel in artikelen:
        sku = artikel.artikelcode
        counted = [p for p in artikel.recept if by_id[p.artikel_id].voorraad_controle]
        if not artikel.voorraad_controle and not counted:
            assert sku not in by_sku  # no stock control, and no part that SnelStart counts
            continue
        value = by_sku[sku]
        assert value >= 0
        if counted:
            # Selling `value` sets never needs more of a stock-controlled part than its web stock, and one set
            # more would: the figure is exactly what the scarcest part allows, whether or not the set itself
            # has stock control.
            assert value == value.to_integral_value()
            for part in counted:
                assert value * part.aantal <= by_sku[f"ART-{part.artikel_id}"]
            assert any((value + 1) * p.aantal > by_sku[f"ART-{p.artikel_id}"] for p in counted)
        else:
            assert value <= max(artikel.vrije_voorraad, D(0))


@settings(max_examples=300, deadline=None)
@given(shops())
def test_property_simple_article_exact_figure(shop: tuple[list[Artikel], list[Verkooporder]]):
    artikelen, orders = shop
    by_id = {a.id: a for a in artikelen}
    by_sku = web(artikelen, orders).by_sku
    for artikel in artikelen:
        if artikel.recept or not artikel.voorraad_controle:
            continue
        claimed = D(0)
        for o in orders:
            if o.proces_status != "Order" or not o.betalingskenmerk:
                continue
            for r in o.regels:
                if r.artikel_id == artikel.id:
                    claimed += r.aantal
                owner = by_id[r.artikel_id]
                claimed += sum(
                    (r.aantal * p.aantal for p in owner.recept if p.artikel_id == artikel.id), D(0)
                )
        assert by_sku[artikel.artikelcode] == max(artikel.vrije_voorraad - claimed, D(0))


@settings(max_examples=200, deadline=None)
@given(shops(), st.integers(min_value=1, max_value=10), st.data())
def test_property_more_open_orders_never_raise_a_figure(
    shop: tuple[list[Artikel], list[Verkooporder]], qty: int, data: st.DataObject
):
    artikelen, orders = shop
    before = web(artikelen, orders).by_sku
    extra = order([(data.draw(st.sampled_from([a.id for a in artikelen])), qty)])
    after = web(artikelen, [*orders, extra]).by_sku
    assert after.keys() == before.keys()
    assert all(after[sku] <= before[sku] for sku in before)


@settings(max_examples=200, deadline=None)
@given(shops())
def test_property_processed_and_hand_made_orders_do_not_count(shop: tuple[list[Artikel], list[Verkooporder]]):
    artikelen, orders = shop
    web_orders = [o for o in orders if o.proces_status == "Order" and o.betalingskenmerk]
    assert web(artikelen, orders).by_sku == web(artikelen, web_orders).by_sku


# -- Magento orders not imported yet -------------------------------------------------------------------------


def test_magento_order_lines_take_what_leaves_the_warehouse():
    order = {
        "lines": [
            {"sku": "MUG", "product_type": "simple", "qty": "2.0000", "children": []},
            # a configurable's LINE already names the chosen simple product
            {"sku": "TEE-M", "product_type": "configurable", "qty": "1.0000", "children": [{"sku": "TEE-M"}]},
            {
                "sku": "GIFTBOX",
                "product_type": "bundle",
                "qty": "1.0000",
                "children": [{"sku": "BEANS", "qty": "2.0000"}, {"sku": "CUPS", "qty": "1.0000"}],
            },
            {"sku": None, "product_type": "simple", "qty": "1.0000"},  # no SKU: nothing to hold
            {"sku": "FREE", "product_type": "simple", "qty": "0.0000"},
        ]
    }
    assert magento_order_lines(order) == [("MUG", D(2)), ("TEE-M", D(1)), ("BEANS", D(2)), ("CUPS", D(1))]


def test_sku_claims_follow_code_field_and_spread_over_recipe_parts():
    artikelen = [
        art("1", 10, extra={"SKU": "beans"}),
        art("2", 10, extra={"SKU": "CUPS"}),
        art("SET", 0, recept=[("1", 2), ("2", 1)], plaatsing="always", extra={"SKU": "GIFT"}),
    ]
    claims = sku_claims([("BEANS", D(1)), ("gift", D(2)), ("UNKNOWN", D(5))], artikelen, "SKU")
    assert claims == {"1": D(1) + D(4), "2": D(2), "SET": D(2)}
    web = compute_web_stock(artikelen, claims, "SKU").by_sku
    assert web == {"beans": D(5), "CUPS": D(8), "GIFT": D(2)}
