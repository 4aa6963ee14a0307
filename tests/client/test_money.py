"""Money is exact: over a generated set of orders the SnelStart total equals Magento's grand total to the cent.

The orders go through ``prepare_order`` and the real ``local`` backend's ``create_verkooporder``; the total
compared is the one the backend computed (per-rate VAT rounding, and SnelStart's VAT treatment of the order's
country and relatie: 0 % for a business with a VAT number elsewhere in the EU and for export), never one the
rules computed.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.rules.money import Amount, balancing_amount, line_amount, snelstart_total, unit_price_for
from client.rules.salesorder import prepare_order
from client.snelstart.vat import EU_MEMBER_STATES
from tests.client import orders as gen

ORDER_COUNT = 1000


@pytest.mark.slow
@pytest.mark.parametrize("template", ["Webshop", "Webshop excl"])
@pytest.mark.parametrize("discount_mode", ["separate", "on_lines"])
def test_thousand_orders_total_to_the_cent(tmp_path, template, discount_mode):
    backend = gen.fresh_admin(tmp_path)
    profile = gen.profile(tmp_path, orders={"template": template, "discount_mode": discount_mode})
    rounding_lines = unexplained = 0
    kinds = {"bundle": 0, "configurable": 0, "discount": 0, "foreign": 0, "fee": 0, "shipping": 0}
    abroad = {"intra-EU business": 0, "EU consumer": 0, "export": 0}
    for order in gen.order_set(ORDER_COUNT):
        prepared = prepare_order(order, profile, backend)
        created = backend.create_verkooporder(prepared.verkooporder)
        grand_total = Decimal(order["totals"]["grand_total"]).quantize(Decimal("0.01"))
        assert created.totaal_incl_btw == grand_total, (order["number"], prepared.verkooporder.regels)
        assert created.totaal_incl_btw == prepared.expected_total
        # SnelStart's VAT treatment is Magento's: none on a reverse-charge or export order, Dutch VAT for a
        # private customer in the EU.
        vat = created.totaal_incl_btw - created.totaal_excl_btw
        magento_vat = Decimal(order["totals"]["tax_amount"])
        country = order["shipping_address"]["country"]
        if country != "NL":
            if country not in EU_MEMBER_STATES:
                kind = "export"
            else:
                kind = "intra-EU business" if order["billing_address"]["vat_id"] else "EU consumer"
            abroad[kind] += 1
            if kind == "EU consumer":
                assert (vat == 0) == (magento_vat == 0), (order["number"], vat, magento_vat)
            else:
                assert magento_vat == 0 and vat == 0, (order["number"], kind, vat)
        rounding_lines += sum(r.omschrijving == "Afrondingsverschil" for r in created.regels)
        unexplained += sum(r.omschrijving.startswith("Niet verklaard") for r in created.regels)
        kinds["bundle"] += any(x["product_type"] == "bundle" for x in order["lines"])
        kinds["configurable"] += any(x["product_type"] == "configurable" for x in order["lines"])
        kinds["discount"] += Decimal(order["discount"]["amount"]) != 0
        kinds["foreign"] += order["billing_address"]["country"] != "NL"
        kinds["fee"] += order["payment"]["fee"] is not None
        kinds["shipping"] += Decimal(order["shipping"]["amount"]) != 0
    # The set really mixes every kind of order, and nothing needed more than a rounding cent.
    assert min(kinds.values()) > 50, kinds
    assert min(abroad.values()) > 50, abroad
    assert unexplained == 0
    if template == "Webshop":
        assert rounding_lines == 0  # incl. VAT: the line amounts add up to Magento's total by themselves
    print(
        f"{template}/{discount_mode}: {rounding_lines} rounding lines in {ORDER_COUNT} orders, abroad {abroad}"
    )


def test_excl_template_books_the_rounding_cent(tmp_path):
    # Three lines of 0.05 at 21 %: Magento rounds VAT per line (0.01 each = 0.03), SnelStart per rate
    # (0.15 × 21 % = 0.03 → 0.03); at 0.06 it is 3 × 0.01 = 0.03 against round(0.0378) = 0.04.
    backend = gen.fresh_admin(tmp_path)
    profile = gen.profile(tmp_path, orders={"template": "Webshop excl"})
    order = gen.order([gen.item("MOK-WIT", 1, price=Decimal("0.06"), item_id=i) for i in range(3)])
    assert order["totals"]["grand_total"] == "0.2100"
    prepared = prepare_order(order, profile, backend)
    rounding = [r for r in prepared.verkooporder.regels if r.omschrijving == "Afrondingsverschil"]
    assert len(rounding) == 1 and rounding[0].stuksprijs == Decimal("-0.01")
    created = backend.create_verkooporder(prepared.verkooporder)
    assert created.totaal_incl_btw == Decimal("0.21")


def test_rounding_needed_without_rounding_article_names_the_setting(tmp_path):
    backend = gen.fresh_admin(tmp_path)
    profile = gen.profile(tmp_path, orders={"template": "Webshop excl", "rounding_article": None})
    order = gen.order([gen.item("MOK-WIT", 1, price=Decimal("0.06"), item_id=i) for i in range(3)])
    with pytest.raises(gen_failure(), match="orders.rounding_article"):
        prepare_order(order, profile, backend)
    # An order without a rounding difference does not need the setting.
    fine = gen.order([gen.item("MOK-WIT", 2)])
    assert prepare_order(fine, profile, backend).expected_total == Decimal(fine["totals"]["grand_total"])


def test_unexplained_money_is_booked_visibly(tmp_path):
    backend = gen.fresh_admin(tmp_path)
    profile = gen.profile(tmp_path)
    order = gen.order([gen.item("MOK-WIT", 2)], unexplained=Decimal("2.50"))
    prepared = prepare_order(order, profile, backend)
    created = backend.create_verkooporder(prepared.verkooporder)
    assert created.totaal_incl_btw == Decimal(order["totals"]["grand_total"]).quantize(Decimal("0.01"))
    assert any(r.omschrijving.startswith("Niet verklaard") for r in created.regels)
    assert any("2.50" in w for w in prepared.warnings)


def gen_failure():
    from client.rules.errors import OrderFailure

    return OrderFailure


# -- the pure parts ------------------------------------------------------------------------------------------

amounts = st.decimals(min_value=Decimal("-500"), max_value=Decimal("5000"), places=2)
rates = st.sampled_from([Decimal("0"), Decimal("9"), Decimal("21")])


@given(row=st.decimals(min_value=Decimal("0"), max_value=Decimal("10000"), places=2), qty=st.integers(1, 50))
def test_unit_price_reproduces_the_row_total_when_possible(row, qty):
    price = unit_price_for(row, Decimal(qty))
    if line_amount(Decimal(qty), price) != row:
        # Only when no four-decimal price exists, e.g. 0.01 over 7 pieces needs 0.00143.
        candidates = [row / qty + Decimal(k) / 10000 for k in (-1, 0, 1)]
        assert all(line_amount(Decimal(qty), c.quantize(Decimal("0.0001"))) != row for c in candidates)


@given(lines=st.lists(st.tuples(amounts, rates), min_size=1, max_size=8), target=amounts)
def test_balancing_at_zero_rate_always_hits_the_target(lines, target):
    items = [Amount(a, r) for a, r in lines]
    for incl in (True, False):
        extra = balancing_amount(items, incl, target, Decimal("0"))
        assert extra is not None
        assert snelstart_total([*items, Amount(extra, Decimal("0"))], incl) == target


@given(lines=st.lists(st.tuples(amounts, rates), min_size=1, max_size=8), target=amounts, rate=rates)
def test_balancing_at_a_vat_rate_is_exact_or_says_so(lines, target, rate):
    items = [Amount(a, r) for a, r in lines]
    extra = balancing_amount(items, False, target, rate)
    if extra is not None:
        assert snelstart_total([*items, Amount(extra, rate)], False) == target


def test_snelstart_total_rounds_per_rate():
    items = [Amount(Decimal("0.06"), Decimal("21"))] * 3
    assert snelstart_total(items, False) == Decimal("0.22")  # 0.18 + round(0.0378)
    assert snelstart_total(items, True) == Decimal("0.18")


COST_SETTINGS = st.sampled_from(
    [{"line": "VERZEND"}, {"line": "BETAALKOSTEN"}, {"cost_type": 1}, {"cost_type": 2}]
)


@pytest.fixture(scope="module")
def shared_admin(tmp_path_factory):
    backend = gen.fresh_admin(tmp_path_factory.mktemp("money"))
    yield backend
    backend.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10**6),
    shipping=COST_SETTINGS,
    payment=COST_SETTINGS,
    discount=st.sampled_from([{"line": "KORTING"}, {"cost_type": 1}, {"cost_type": 2}]),
    template=st.sampled_from(["Webshop", "Webshop excl"]),
    mode=st.sampled_from(["separate", "on_lines"]),
)
def test_any_cost_mapping_keeps_the_total(
    tmp_path, shared_admin, seed, shipping, payment, discount, template, mode
):
    """Wherever shipping, payment fee and discount are booked (line or cost type 1/2), the total holds."""
    import random

    order = gen.random_order(random.Random(seed), entity_id=seed % 9999 + 1)
    profile = gen.profile(
        tmp_path,
        orders={"template": template, "discount_mode": mode, "shipping_costs": shipping,
                "payment_costs": payment, "discount": discount},
    )  # fmt: skip
    prepared = prepare_order(order, profile, shared_admin)
    created = shared_admin.create_verkooporder(prepared.verkooporder)
    assert created.totaal_incl_btw == Decimal(order["totals"]["grand_total"]).quantize(Decimal("0.01"))
    # Cost articles appear only where a setting put them; cost types only where a setting chose them.
    used = {shared_admin.get_artikel(r.artikel_id).artikelcode for r in prepared.verkooporder.regels}
    lines = {s["line"] for s in (shipping, payment, discount) if "line" in s}
    assert used & set(gen.COST_ARTICLES) <= lines
    types = {s["cost_type"] for s in (shipping, payment, discount) if "cost_type" in s}
    v = prepared.verkooporder
    assert {n for n, k in ((1, v.kostensoort_1), (2, v.kostensoort_2)) if k is not None} <= types


def test_the_sample_administration_books_the_rounding_cent_as_it_comes(tmp_path):
    # Only what `koppel snelstart init --sample` makes: no article added for the test.
    from client.snelstart.local import LocalBackend
    from client.snelstart.local_init import init_local

    init_local(tmp_path / "admin.sqlite", sample=True)
    with LocalBackend(tmp_path / "admin.sqlite") as backend:
        profile = gen.profile(tmp_path, orders={"template": "Webshop excl", "rounding_article": "AFRONDING"})
        order = gen.order([gen.item("1002", 1, price=Decimal("0.06"), item_id=i) for i in range(3)])
        prepared = prepare_order(order, profile, backend)
        (rounding,) = [r for r in prepared.verkooporder.regels if r.omschrijving == "Afrondingsverschil"]
        assert backend.get_artikel(rounding.artikel_id).artikelcode == "AFRONDING"
        assert rounding.btw_percentage == 0 and rounding.stuksprijs == Decimal("-0.01")
        created = backend.create_verkooporder(prepared.verkooporder)
        # 0.18 of goods less the cent, plus VAT 0.04 (per rate): Magento's 0.21 exactly.
        assert (created.totaal_excl_btw, created.totaal_incl_btw) == (Decimal("0.17"), Decimal("0.21"))
