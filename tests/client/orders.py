"""Realistic Magento ORDER documents (the shape of AGENT-API.md) for tests, the run engine and the demo.

Amounts follow Magento's default tax model: catalog prices excl. VAT, the discount taken off the price excl.
VAT, VAT computed per item after the discount and rounded per item. Every total is derived from the parts,
so ``grand_total`` is exactly what Magento would store. All money is a four-decimal string, as the agent sends.

``CATALOG`` lists the SKUs the generator uses with their VAT rate; ``seed_catalog(backend)`` creates them (and
the cost articles) in a ``local`` administration so rates in SnelStart agree with Magento's.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")


def _c(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal | int | str) -> str:
    return str(Decimal(value).quantize(Decimal("0.0001")))


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    price: Decimal  # excl. VAT
    rate: Decimal  # VAT %


CATALOG: tuple[Product, ...] = (
    Product("KOF-ARABICA-1KG", "Koffiebonen Arabica 1 kg", Decimal("18.95"), Decimal("9")),
    Product("KOF-ROBUSTA-500", "Koffiebonen Robusta 500 g", Decimal("8.49"), Decimal("9")),
    Product("THEE-EARL-GREY", "Earl Grey thee 100 g", Decimal("4.13"), Decimal("9")),
    Product("MOLEN-HAND", "Handkoffiemolen", Decimal("41.32"), Decimal("21")),
    Product("MOK-WIT", "Koffiemok wit", Decimal("6.57"), Decimal("21")),
    Product("FILTER-102", "Filterzakjes 102 (80 st.)", Decimal("2.06"), Decimal("21")),
    Product("KETEL-ZWANENHALS", "Waterkoker zwanenhals", Decimal("57.02"), Decimal("21")),
    Product("TSHIRT-ROOD-M", "T-shirt Koffie rood M", Decimal("16.49"), Decimal("21")),
    Product("TSHIRT-ROOD-L", "T-shirt Koffie rood L", Decimal("16.49"), Decimal("21")),
    Product("TSHIRT-BLAUW-M", "T-shirt Koffie blauw M", Decimal("16.49"), Decimal("21")),
    Product("BOEK-BARISTA", "Boek: De barista", Decimal("22.94"), Decimal("9")),
    Product("CADEAUBON", "Cadeaubon", Decimal("25.00"), Decimal("0")),
    Product("PAKKET-PROEF", "Proefpakket koffie (vast)", Decimal("29.95"), Decimal("9")),
    Product("PAKKET-START", "Startpakket (samen te stellen)", Decimal("0"), Decimal("21")),
    Product("GRAVEER-MOK", "Mok met gravering", Decimal("12.40"), Decimal("21")),
)
PRODUCTS = {p.sku: p for p in CATALOG}
CONFIGURABLE_PARENT = {"TSHIRT-ROOD-M": "TSHIRT", "TSHIRT-ROOD-L": "TSHIRT", "TSHIRT-BLAUW-M": "TSHIRT"}
SIMPLE_SKUS = ("KOF-ARABICA-1KG", "KOF-ROBUSTA-500", "THEE-EARL-GREY", "MOLEN-HAND", "MOK-WIT", "FILTER-102",
               "KETEL-ZWANENHALS", "BOEK-BARISTA", "CADEAUBON")  # fmt: skip
COST_ARTICLES = {"VERZEND": "Verzendkosten", "BETAALKOSTEN": "Betaalkosten", "KORTING": "Korting"}


# -- building blocks ------------------------------------------------------------------------------------------


def address(
    firstname: str = "Sanne",
    lastname: str = "de Vries",
    street: tuple[str, ...] = ("Kerkstraat", "12"),
    postcode: str = "1234 AB",
    city: str = "Amsterdam",
    country: str = "NL",
    *,
    company: str | None = None,
    email: str | None = None,
    telephone: str | None = "0612345678",
    vat_id: str | None = None,
    middlename: str | None = None,
) -> dict[str, Any]:
    return {
        "firstname": firstname,
        "middlename": middlename,
        "lastname": lastname,
        "prefix": None,
        "suffix": None,
        "company": company,
        "street": list(street),
        "postcode": postcode,
        "city": city,
        "region": None,
        "country": country,
        "telephone": telephone,
        "email": email,
        "vat_id": vat_id,
    }


def item(
    sku: str,
    qty: int | Decimal = 1,
    *,
    price: Decimal | None = None,
    rate: Decimal | None = None,
    discount: Decimal = Decimal("0"),
    name: str | None = None,
    product_type: str = "simple",
    order_sku: str | None = None,
    options: list[dict[str, str]] | None = None,
    children: list[dict[str, Any]] | None = None,
    item_id: int = 1,
) -> dict[str, Any]:
    """One LINE with Magento's arithmetic: VAT per item, after the discount (which is excl. VAT)."""
    product = PRODUCTS.get(sku)
    price = price if price is not None else (product.price if product else Decimal("10.00"))
    rate = rate if rate is not None else (product.rate if product else Decimal("21"))
    qty = Decimal(qty)
    row = _c(price * qty)
    discount = min(discount, row)
    tax = _c((row - discount) * rate / 100)
    return {
        "item_id": item_id,
        "product_id": 1000 + item_id,
        "sku": sku,
        "order_sku": order_sku or sku,
        "name": name or (product.name if product else sku),
        "product_type": product_type,
        "qty": money(qty),
        "unit_price": money(price),
        "unit_price_incl_tax": money(_c(price * (100 + rate) / 100)),
        "row_total": money(row),
        "row_total_incl_tax": money(row + _c(row * rate / 100)),
        "tax_percent": money(rate),
        "tax_amount": money(tax),
        "discount_amount": money(discount),
        "options": options or [],
        "children": children or [],
        "product_missing": False,
    }


def configurable(sku: str, qty: int = 1, **kw: Any) -> dict[str, Any]:
    """A configurable item: the chosen variant's SKU in ``sku``, the parent's (with options) in ``order_sku``."""
    parent = CONFIGURABLE_PARENT.get(sku, sku.split("-")[0])
    return item(sku, qty, product_type="configurable", order_sku=f"{parent}-{sku.rsplit('-', 1)[-1]}", **kw)


def bundle_fixed(qty: int = 1, **kw: Any) -> dict[str, Any]:
    """Fixed-price bundle: the money on the parent, the selections without money."""
    children = [
        _zero_money(item("KOF-ARABICA-1KG", qty, item_id=901)),
        _zero_money(item("MOK-WIT", 2 * qty, item_id=902)),
    ]
    return item("PAKKET-PROEF", qty, product_type="bundle", children=children, **kw)


def bundle_dynamic(qty: int = 1, *, discount: Decimal = Decimal("0"), item_id: int = 1) -> dict[str, Any]:
    """Dynamic-price bundle: the money on each selection, with its own quantity; the parent without money."""
    children = [
        item("MOLEN-HAND", qty, item_id=item_id * 10 + 1, discount=discount),
        item("FILTER-102", 3 * qty, item_id=item_id * 10 + 2),
        item("KOF-ROBUSTA-500", 2 * qty, item_id=item_id * 10 + 3),
    ]
    parent = item("PAKKET-START", qty, product_type="bundle", children=children, item_id=item_id)
    return _zero_money(parent)


def _zero_money(line: dict[str, Any]) -> dict[str, Any]:
    for key in (
        "unit_price",
        "unit_price_incl_tax",
        "row_total",
        "row_total_incl_tax",
        "tax_amount",
        "discount_amount",
    ):
        line[key] = money(0)
    return line


def _money_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The items that carry money: top-level lines, or the selections of a dynamic bundle."""
    result = []
    for line in lines:
        if line["product_type"] == "bundle" and any(Decimal(c["row_total"]) != 0 for c in line["children"]):
            result.extend(line["children"])
        else:
            result.append(line)
    return result


def order(
    lines: list[dict[str, Any]],
    *,
    entity_id: int = 1,
    number: str | None = None,
    email: str = "sanne@example.nl",
    firstname: str = "Sanne",
    lastname: str = "de Vries",
    guest: bool = False,
    attributes: dict[str, str] | None = None,
    billing: dict[str, Any] | None = None,
    shipping_address: dict[str, Any] | None | bool = True,
    shipping: Decimal = Decimal("0"),
    shipping_rate: Decimal = Decimal("21"),
    shipping_discount: Decimal = Decimal("0"),
    fee: Decimal = Decimal("0"),
    fee_rate: Decimal = Decimal("21"),
    coupon: str | None = None,
    taxvat: str | None = None,
    status: str = "processing",
    payment_title: str = "iDEAL",
    created_at: dt.datetime | None = None,
    customer_note: str | None = None,
    unexplained: Decimal = Decimal("0"),
) -> dict[str, Any]:
    """A whole ORDER; totals are derived from the lines, shipping and fee exactly as Magento stores them."""
    billing = billing or address(firstname, lastname, email=email)
    ship_addr = dict(billing) if shipping_address is True else (shipping_address or None)
    money_lines = _money_lines(lines)
    subtotal = sum((Decimal(x["row_total"]) for x in money_lines), Decimal("0"))
    subtotal_incl = sum((Decimal(x["row_total_incl_tax"]) for x in money_lines), Decimal("0"))
    item_tax = sum((Decimal(x["tax_amount"]) for x in money_lines), Decimal("0"))
    item_discount = sum((Decimal(x["discount_amount"]) for x in money_lines), Decimal("0"))
    shipping_discount = min(shipping_discount, shipping)
    ship_tax = _c((shipping - shipping_discount) * shipping_rate / 100)
    fee_tax = _c(fee * fee_rate / 100)
    tax = item_tax + ship_tax
    discount = -(item_discount + shipping_discount)
    grand = subtotal + shipping + tax + discount + fee + fee_tax + unexplained
    created = created_at or dt.datetime(2026, 11, 30, 10, 15, tzinfo=dt.UTC) + dt.timedelta(minutes=entity_id)
    stamp = created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    taxes: dict[Decimal, Decimal] = {}
    for x in money_lines:
        taxes[Decimal(x["tax_percent"])] = taxes.get(Decimal(x["tax_percent"]), Decimal("0")) + Decimal(
            x["tax_amount"]
        )
    if ship_tax:
        taxes[shipping_rate] = taxes.get(shipping_rate, Decimal("0")) + ship_tax
    return {
        "id": entity_id,
        "number": number or str(100000000 + entity_id),
        "store": {"id": 1, "code": "default", "name": "Default Store View", "website_id": 1},
        "created_at": stamp,
        "updated_at": stamp,
        "state": "processing" if status == "processing" else "new",
        "status": status,
        "currency": "EUR",
        "base_currency": "EUR",
        "customer": {
            "id": None if guest else 500 + entity_id,
            "is_guest": guest,
            "email": email,
            "firstname": firstname,
            "lastname": lastname,
            "name": f"{firstname} {lastname}",
            "company": billing.get("company"),
            "taxvat": taxvat,
            "group_id": 0 if guest else 1,
            "attributes": {} if guest else dict(attributes or {}),
        },
        "billing_address": billing,
        "shipping_address": ship_addr,
        "lines": lines,
        "shipping": {
            "method": "flatrate_flatrate" if shipping_address is not None else None,
            "description": "Verzending - PostNL" if shipping else None,
            "amount": money(shipping),
            "amount_incl_tax": money(shipping + _c(shipping * shipping_rate / 100)),
            "tax_amount": money(ship_tax),
            "discount_amount": money(shipping_discount),
        },
        "discount": {
            "amount": money(discount),
            "description": coupon,
            "coupon_code": coupon,
        },
        "payment": {
            "method": "mollie_methods_ideal",
            "title": payment_title,
            "fee": {"amount": money(fee), "tax_amount": money(fee_tax)} if fee else None,
        },
        "totals": {
            "subtotal": money(subtotal),
            "subtotal_incl_tax": money(subtotal_incl),
            "tax_amount": money(tax),
            "grand_total": money(grand),
            "base_grand_total": money(grand),
            "unexplained_amount": money(unexplained),
        },
        "taxes": [
            {
                "code": f"NL-{rate.normalize()}",
                "title": f"BTW {rate.normalize()}%",
                "percent": money(rate),
                "amount": money(v),
            }
            for rate, v in sorted(taxes.items())
        ],
        "customer_note": customer_note,
        "relation": {"parent_id": None, "original_number": None},
        "warnings": [],
    }


# -- random but realistic orders ------------------------------------------------------------------------------

FOREIGN = (
    ("DE", "Hohenzollernring 50", "50672", "Köln", "DE123456789"),
    ("BE", "Rue Neuve 8", "1000", "Bruxelles", "BE0123456789"),
    ("FR", "12 rue de la Paix", "75002", "Paris", "FR12345678901"),
    ("GR", "Ermou 20", "105 63", "Athina", "EL094012345"),
    ("CH", "Bahnhofstrasse 1", "8001", "Zürich", "CHE123456789"),
    ("US", "350 5th Avenue", "10118", "New York", None),
)
# The countries above outside the EU: what goes there is exported, without VAT.
OUTSIDE_EU = ("CH", "US")
FIRST = ("Sanne", "Daan", "Émilie", "Jürgen", "Fatima", "Pieter-Jan", "Zoë", "Ángel", "Lars", "Noor")
LAST = ("de Vries", "Jansen", "Müller", "Dubois", "El Amrani", "van den Berg", "Papadopoulos", "Smit")
COMPANIES = (
    "Koffiebar De Hoek B.V.",
    "Müller Kaffee GmbH",
    "Brasserie Léon SRL",
    "Groen & Zn VOF",
    None,
    None,
    None,
)


def random_order(rng: random.Random, entity_id: int) -> dict[str, Any]:
    """One order mixing what shops see: discounts, both bundle kinds, configurables, options, costs, abroad."""
    lines: list[dict[str, Any]] = []
    for n in range(rng.randint(1, 5)):
        item_id = entity_id * 100 + n
        kind = rng.random()
        discount = Decimal("0")
        if rng.random() < 0.3:
            discount = _c(Decimal(rng.randint(5, 400)) / 100)
        if kind < 0.55:
            sku = rng.choice(SIMPLE_SKUS)
            lines.append(item(sku, rng.randint(1, 7), discount=discount, item_id=item_id))
        elif kind < 0.7:
            sku = rng.choice(("TSHIRT-ROOD-M", "TSHIRT-ROOD-L", "TSHIRT-BLAUW-M"))
            lines.append(configurable(sku, rng.randint(1, 3), discount=discount, item_id=item_id))
        elif kind < 0.8:
            lines.append(bundle_fixed(rng.randint(1, 2), discount=discount, item_id=item_id))
        elif kind < 0.9:
            lines.append(bundle_dynamic(rng.randint(1, 2), discount=discount, item_id=item_id))
        else:
            text = rng.choice(("Voor Oma", "Happy birthday!", "Léon & Zoë", "Bedankt voor alles"))
            lines.append(
                item("GRAVEER-MOK", rng.randint(1, 4), discount=discount, item_id=item_id,
                     options=[{"label": "Gravering", "value": text}])
            )  # fmt: skip
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company = rng.choice(COMPANIES)
    vat = None
    if rng.random() < 0.3:
        country, street, postcode, city, vat_abroad = rng.choice(FOREIGN)
        vat = vat_abroad if company else None
        billing = address(first, last, (street,), postcode, city, country, company=company, vat_id=vat)
    else:
        billing = address(
            first, last, ("Kerkstraat", str(rng.randint(1, 300))), f"{rng.randint(1000, 9999)} AB",
            "Utrecht", "NL", company=company, vat_id="NL812345678B01" if company and rng.random() < 0.5 else None,
        )  # fmt: skip
    # One e-mail address is one customer: abroad the domain tells the country and whether it is a business, so a
    # customer matched by e-mail has the btw-nummer and country the order has.
    domain = (
        "example.nl"
        if billing["country"] == "NL"
        else f"{'firma.' if vat else ''}example.{billing['country'].lower()}"
    )
    email = f"{first.lower().replace(' ', '')}.{entity_id % 97}@{domain}"
    shipping_address: dict[str, Any] | bool = True
    if rng.random() < 0.2:
        shipping_address = address(first, last, ("Andere straat", "1"), "9999 ZZ", "Zwolle", "NL")
    delivered = shipping_address["country"] if isinstance(shipping_address, dict) else billing["country"]
    # Magento's tax rules: delivered in another EU country to a business with a VAT number (reverse charge) or
    # outside the EU (export) is 0 %; a private customer in the EU pays Dutch VAT (a shop below the OSS threshold).
    zero_rated = delivered != "NL" and (delivered in OUTSIDE_EU or vat is not None)
    if zero_rated:
        lines = [_zero_rated(line) for line in lines]
    shipping = rng.choice((Decimal("0"), Decimal("4.95"), Decimal("6.95"), Decimal("12.40")))
    return order(
        lines,
        entity_id=entity_id,
        email=email,
        firstname=first,
        lastname=last,
        guest=rng.random() < 0.3,
        billing=billing,
        shipping_address=shipping_address,
        shipping=shipping,
        shipping_discount=shipping if shipping and rng.random() < 0.1 else Decimal("0"),
        shipping_rate=Decimal("0") if zero_rated else Decimal("21"),
        fee=rng.choice((Decimal("0"), Decimal("0"), Decimal("0.29"), Decimal("1.95"))),
        fee_rate=Decimal("0") if zero_rated else Decimal("21"),
        coupon="WELKOM10" if any(Decimal(x["discount_amount"]) for x in lines) else None,
        customer_note="Graag bij de buren afgeven" if rng.random() < 0.1 else None,
    )


def _zero_rated(line: dict[str, Any]) -> dict[str, Any]:
    """The same item charged at 0 % VAT (and its bundle selections)."""
    return {
        **line,
        "unit_price_incl_tax": line["unit_price"],
        "row_total_incl_tax": line["row_total"],
        "tax_percent": money(0),
        "tax_amount": money(0),
        "children": [_zero_rated(child) for child in line["children"]],
    }


def order_set(count: int, seed: int = 20261203) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [random_order(rng, entity_id) for entity_id in range(1, count + 1)]


# -- the matching SnelStart side ------------------------------------------------------------------------------


def seed_catalog(backend: Any) -> dict[Decimal, Any]:
    """Every CATALOG article and the cost articles in a local administration, each in the omzetgroep of its
    VAT rate (a new administration has one per rate: 1 hoog, 2 laag, 3 geen).

    Returns the omzetgroep per rate. The rounding article (AFRONDING) sits in the 0 % group."""
    groups = {g.btw_percentage: g for g in backend.omzetgroepen() if g.nummer in (1, 2, 3)}
    from client.snelstart.base import NieuwArtikel

    def ensure(code: str, name: str, rate: Decimal, price: Decimal = Decimal("0")) -> None:
        if not backend.artikelen_by_code(code):
            backend.create_artikel(NieuwArtikel(code, name, _group_id(groups, rate), price))

    for product in CATALOG:
        ensure(product.sku, product.name, product.rate, product.price)
    for code, name in COST_ARTICLES.items():
        ensure(code, name, Decimal("21"))
    ensure("AFRONDING", "Afrondingsverschil", Decimal("0"))
    ensure("WEBSHOP", "Webshop artikel", Decimal("21"))
    return groups


def _group_id(groups: dict[Decimal, Any], rate: Decimal) -> str:
    for key, group in groups.items():
        if key is not None and Decimal(key) == rate:
            return group.id
    raise KeyError(rate)


# -- a profile and an administration for rules tests ----------------------------------------------------------


def profile(tmp_path: Any, **sections: dict[str, Any]) -> Any:
    """A validated ``Profile`` for a local administration at ``tmp_path/admin.sqlite``; ``sections`` override
    whole-key values per section, e.g. ``profile(p, orders={"lines": "code_and_quantity"})``."""
    from client.config import Profile

    data: dict[str, Any] = {
        "name": "shop",
        "description": "www.koffie.example",
        "agent": {"url": "http://127.0.0.1:9", "key_id": "office", "secret": "x" * 32},
        "snelstart": {"backend": "local", "path": str(tmp_path / "admin.sqlite")},
        "orders": {
            "template": "Webshop",
            "shipping_costs": {"line": "VERZEND"},
            "discount": {"line": "KORTING"},
            "payment_costs": {"line": "BETAALKOSTEN"},
            "rounding_article": "AFRONDING",
            "default_article": "WEBSHOP",
        },
        "articles": {"revenue_group": 1},
        "customers": {"matching": "smart", "processing": "add", "payment_term_days": 14},
    }
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return Profile.model_validate(data, context={"base_dir": tmp_path})


def fresh_admin(tmp_path: Any, *, sample: bool = False) -> Any:
    """A new local administration with the CATALOG, the cost articles and the templates "Webshop" (incl.
    VAT, both cost types) and "Webshop excl" (excl. VAT, both cost types)."""
    from client.snelstart.local import LocalBackend
    from client.snelstart.local_init import init_local

    path = tmp_path / "admin.sqlite"
    init_local(path, sample=sample)
    backend = LocalBackend(path)
    seed_catalog(backend)
    names = {s.omschrijving for s in backend.sjablonen()}
    if "Webshop" not in names:
        backend.add_sjabloon(
            "Webshop", prijs_incl_btw=True, kostensoort_1="Verzendkosten", kostensoort_2="Betaalkosten"
        )
    if "Webshop excl" not in names:
        backend.add_sjabloon(
            "Webshop excl", prijs_incl_btw=False, kostensoort_1="Verzendkosten", kostensoort_2="Betaalkosten"
        )
    return backend
