"""Realistic demo data for a Magento 2 coffee shop: the catalogue, customers and orders the demo imports.

The shop sells to consumers and businesses in the Netherlands, Belgium and Germany, so the data carries what
makes a real import interesting: accents and multi-line streets, guests next to registered customers,
business customers with VAT numbers and a ``klantcode`` attribute that points at their SnelStart relatie,
a configurable hoodie, a fixed and a dynamic bundle, coupon discounts, shipping, a payment fee (as the Mollie
extension stores it), and a few orders that must not be imported yet (awaiting payment) or at all (canceled).
Several customers already exist in the sample SnelStart administration, so matching has something to find.
Generated from a seed: the same seed gives the same shop.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from client.demo.shop import Shop

CENT = Decimal("0.01")

# sku: (name, price excl. VAT, VAT %, stock in Magento). 1001-1006 also exist in the sample administration.
SIMPLES: dict[str, tuple[str, str, int, int]] = {
    "1001": ("Koffiebonen Arabica 1 kg", "17.3853", 9, 40),
    "1002": ("Espressokopjes, set van 6", "20.6198", 21, 15),
    "1003": ("Melkopschuimer RVS", "33.0165", 21, 8),
    "1004": ("Koffiemachine Barista Pro", "371.0744", 21, 3),
    "1006": ("Thee Earl Grey 250 g", "5.9633", 9, 25),
    "2001": ("Koffiefilters nr. 4 (100 stuks)", "2.4711", 21, 120),
    "2002": ("Ontkalker voor espressomachines 500 ml", "8.2231", 21, 60),
    "2003": ("Melkkan RVS 600 ml", "15.6198", 21, 12),
    "2004": ("Café crème bonen 500 g — Ethiopië", "9.1284", 9, 30),
}
HOODIE_VARIANTS = {
    "HOODIE-ZWART-M": "Zwart, M",
    "HOODIE-ZWART-L": "Zwart, L",
    "HOODIE-BEIGE-M": "Beige, M",
}
HOODIE_PRICE = "41.2397"
GIFT_BOX = ("1005", "Cadeaupakket koffieproeverij", "28.8843")  # fixed-price bundle of 1001 + 1002
BREAKFAST = ("ONTBIJTSET", "Ontbijtset koffie & thee")  # dynamic-price bundle of 1001 + 1006


@dataclass
class Person:
    firstname: str
    lastname: str
    email: str
    street: str  # lines separated by "\n", as Magento stores them
    postcode: str
    city: str
    country: str
    telephone: str
    company: str | None = None
    vat_id: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    registered: bool = True

    def address(self) -> dict[str, Any]:
        return {
            "firstname": self.firstname,
            "lastname": self.lastname,
            "street": self.street,
            "postcode": self.postcode,
            "city": self.city,
            "country_id": self.country,
            "telephone": self.telephone,
            "company": self.company,
            "vat_id": self.vat_id,
            "email": self.email,
        }


def people(known_codes: dict[str, int]) -> list[Person]:
    """Customers; ``known_codes`` maps a sample relatie's e-mail to its SnelStart relatiecode (for klantcode)."""
    jansen_code = known_codes.get("info@jansen-installatie.nl")
    return [
        # Matches the sample relatie by its klantcode attribute (the shop keeps SnelStart's number).
        Person(
            "Tom", "Jansen", "t.jansen@jansen-installatie.nl", "Westblaak 12", "3012 KL", "Rotterdam", "NL",
            "010-4123456", company="Jansen Installatietechniek B.V.", vat_id="NL812345678B01",
            attributes={"klantcode": str(jansen_code)} if jansen_code else {},
        ),
        # Matches by VAT number with the billing country (typed without the DE prefix).
        Person(
            "Katharina", "Müller", "bestellung@mueller-elektro.de", "Hohenzollernring 50\n2. Etage", "50672",
            "Köln", "DE", "+49 221 123456", company="Müller Elektro GmbH", vat_id="123456789",
        ),
        # Matches by e-mail in the relatie's invoice e-mail field.
        Person(
            "Camille", "Dupont", "compta@dupont.example", "Rue Neuve 8\nBoîte 4", "1000", "Bruxelles", "BE",
            "+32 2 512 34 56", company="Dupont SRL", vat_id="BE0123456789",
        ),
        # Matches by the main e-mail.
        Person("Pieter", "de Boer", "p.deboer@example.nl", "Oudegracht 101", "3511 AZ", "Utrecht", "NL", "06-12345678"),
        # New customers: created in SnelStart on their first order.
        Person(
            "Joris", "van den Berg", "joris.vdberg@example.nl", "Keizersgracht 221\n3-hoog", "1016 DV",
            "Amsterdam", "NL", "020-6234567",
        ),
        Person("Sanne", "de Jong", "sanne.dejong@example.nl", "Lange Nieuwstraat 7", "3512 PA", "Utrecht", "NL", "06-23456789"),
        Person(
            "Lotte", "Peeters", "lotte.peeters@example.be", "Meir 24\nbus 3", "2000", "Antwerpen", "BE",
            "+32 3 234 56 78",
        ),
        Person(
            "Élodie", "Dubois", "elodie.dubois@example.be", "Rue Léopold 12", "4000", "Liège", "BE",
            "+32 4 221 33 44",
        ),
        Person(
            "Jürgen", "Weiß", "j.weiss@example.de", "Maximilianstraße 8\nHinterhaus\n3. OG", "80539", "München",
            "DE", "+49 89 2345678",
        ),
        Person("Käthe", "Schröder", "kaethe.schroeder@example.de", "Jungfernstieg 30", "20354", "Hamburg", "DE", "+49 40 345678"),
        Person(
            "Mark", "van Dijk", "inkoop@vandijkhoreca.example", "Stationsweg 14\nUnit B", "2312 AV", "Leiden", "NL",
            "071-5123456", company="Van Dijk Horeca B.V.", vat_id="NL001234567B01",
            attributes={"kvk": "28012345"},
        ),
        Person(
            "Annelies", "Claes", "annelies@hetanker.example", "Grote Markt 3", "9000", "Gent", "BE",
            "+32 9 223 45 67", company="Brasserie Het Anker BV", vat_id="BE0412345678",
        ),
    ]  # fmt: skip


GUESTS = [
    Person("Femke", "Visser", "femke.visser@example.nl", "Dorpsstraat 1a", "1234 AB", "Broek in Waterland", "NL", "06-34567890", registered=False),
    Person("Luc", "Janssens", "luc.janssens@example.be", "Kerkstraat 45\nappartement 2", "3000", "Leuven", "BE", "+32 16 22 33 44", registered=False),
    Person("Ömer", "Yılmaz", "oemer.yilmaz@example.de", "Sonnenallee 112", "12045", "Berlin", "DE", "+49 30 1234567", registered=False),
    Person("Noël", "Hermans", "noel.hermans@example.nl", "Vrijthof 9", "6211 LD", "Maastricht", "NL", "043-3214567", registered=False),
    Person("Saskia", "Bos", "saskia.bos@example.nl", "Hoofdweg 250\n(achterom)", "9681 AJ", "Midwolda", "NL", "0597-591234", registered=False),
]  # fmt: skip


@dataclass
class DemoShop:
    orders: int = 0
    guests: int = 0
    registered: int = 0
    business: int = 0
    awaiting_payment: int = 0
    canceled: int = 0
    with_fee: int = 0
    with_discount: int = 0
    skus: list[str] = field(default_factory=list)


def _q(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def build_catalogue(shop: Shop) -> dict[str, int]:
    """Products (simple, configurable, bundles) and their Magento stock rows; returns sku → product id."""
    ids: dict[str, int] = {}
    for sku, (name, _, _, _) in SIMPLES.items():
        ids[sku] = shop.product(sku, name)
    for sku, variant in HOODIE_VARIANTS.items():
        ids[sku] = shop.product(sku, f"Barista hoodie {variant}")
    ids["HOODIE"] = shop.product(
        "HOODIE", "Barista hoodie", type_id="configurable", children=[ids[s] for s in HOODIE_VARIANTS]
    )
    ids[GIFT_BOX[0]] = shop.product(GIFT_BOX[0], GIFT_BOX[1], type_id="bundle")
    ids[BREAKFAST[0]] = shop.product(BREAKFAST[0], BREAKFAST[1], type_id="bundle")
    stock = {sku: data[3] for sku, data in SIMPLES.items()} | dict.fromkeys(HOODIE_VARIANTS, 10)
    with shop.conn.cursor() as cur:
        for sku, qty in stock.items():
            cur.execute(
                f"INSERT INTO {shop.table('cataloginventory_stock_item')} "
                "(product_id, stock_id, qty, is_in_stock, website_id) VALUES (%s, 1, %s, %s, 0)",
                (ids[sku], qty, int(qty > 0)),
            )
            cur.execute(
                f"INSERT INTO {shop.table('inventory_source_item')} (source_code, sku, quantity, status) "
                "VALUES ('default', %s, %s, %s)",
                (sku, qty, int(qty > 0)),
            )
        # The Mollie extension adds these columns to the order table; the agent reports the fee from them.
        cur.execute(
            f"ALTER TABLE {shop.table('sales_order')} ADD COLUMN mollie_payment_fee DECIMAL(20,4) NULL, "
            "ADD COLUMN mollie_payment_fee_tax DECIMAL(20,4) NULL"
        )
    shop.conn.commit()
    return ids


def _simple_item(rng: random.Random) -> dict[str, Any]:
    sku = rng.choice(list(SIMPLES))
    name, price, rate, _ = SIMPLES[sku]
    return {"sku": sku, "name": name, "qty": rng.choice((1, 1, 1, 2, 3)), "price": price, "tax_percent": rate}


def _hoodie_item(rng: random.Random, ids: dict[str, int]) -> dict[str, Any]:
    variant = rng.choice(list(HOODIE_VARIANTS))
    colour, size = HOODIE_VARIANTS[variant].split(", ")
    options = {
        "attributes_info": [{"label": "Kleur", "value": colour}, {"label": "Maat", "value": size}],
        "simple_sku": variant,
    }
    child = {
        "sku": variant,
        "product_id": ids[variant],
        "price": "0",
        "name": f"Barista hoodie {colour}, {size}",
    }
    return {
        "sku": variant,
        "product_id": ids["HOODIE"],
        "type": "configurable",
        "name": "Barista hoodie",
        "qty": 1,
        "price": HOODIE_PRICE,
        "options": options,
        "children": [child],
    }


def _gift_box_item(ids: dict[str, int]) -> dict[str, Any]:
    kids = [
        {"sku": "1001", "product_id": ids["1001"], "price": "0", "name": SIMPLES["1001"][0]},
        {"sku": "1002", "product_id": ids["1002"], "price": "0", "name": SIMPLES["1002"][0]},
    ]
    sku, name, price = GIFT_BOX
    options = {
        "product_calculations": 1,
        "bundle_options": {
            "1": {"option_id": 1, "label": "Koffie", "value": [{"title": SIMPLES["1001"][0], "qty": 1}]},
            "2": {"option_id": 2, "label": "Servies", "value": [{"title": SIMPLES["1002"][0], "qty": 1}]},
        },
    }
    return {
        "sku": sku, "product_id": ids[sku], "type": "bundle", "name": name, "qty": 1, "price": price,
        "options": options, "children": kids,
    }  # fmt: skip


def _breakfast_item(ids: dict[str, int]) -> dict[str, Any]:
    kids = [
        {"sku": "1001", "product_id": ids["1001"], "price": SIMPLES["1001"][1], "tax_percent": 9, "name": SIMPLES["1001"][0]},
        {"sku": "1006", "product_id": ids["1006"], "price": SIMPLES["1006"][1], "tax_percent": 9, "qty": 2, "name": SIMPLES["1006"][0]},
    ]  # fmt: skip
    price = Decimal(SIMPLES["1001"][1]) + 2 * Decimal(SIMPLES["1006"][1])
    return {
        "sku": "ONTBIJTSET-1001-1006", "product_id": ids[BREAKFAST[0]], "type": "bundle", "name": BREAKFAST[1],
        "qty": 1, "price": str(price), "tax_percent": 9, "options": {"product_calculations": 0}, "children": kids,
    }  # fmt: skip


def _without_vat(item: dict[str, Any]) -> dict[str, Any]:
    """The item (and its children) at 0 % VAT."""
    children = [_without_vat(child) for child in item.get("children", [])]
    return {**item, "tax_percent": 0, **({"children": children} if children else {})}


def build_orders(
    shop: Shop,
    count: int,
    known_codes: dict[str, int],
    *,
    seed: int = 2026,
    progress: Callable[[int], None] | None = None,
) -> DemoShop:
    """The catalogue plus ``count`` orders spread over the last ten days; returns what was made.

    ``progress`` is called with the number of orders written so far, after each one."""
    rng = random.Random(seed)
    if shop.has_table("core_config_data"):
        # The catalogue's prices were typed incl. VAT (18.95, not 17.3853), as Dutch shops do; the shop's tax
        # setting says so, which `koppel test-connection` holds the SnelStart template against.
        shop.set_config("tax/calculation/price_includes_tax", "1")
    ids = build_catalogue(shop)
    summary = DemoShop(skus=sorted(ids))
    customers = people(known_codes)
    customer_ids = {
        p.email: shop.customer(
            p.email, p.firstname, p.lastname, taxvat=p.vat_id, attributes=p.attributes or None
        )
        for p in customers
    }
    registered_turn = 0
    for index in range(count):
        # Every third order is a guest's; registered customers take their turns in list order, so each of
        # them (the Belgian business, the three-line German street, ...) orders before anyone orders twice.
        if index % 3 == 2:
            buyer = GUESTS[index % len(GUESTS)]
        else:
            buyer = customers[registered_turn % len(customers)]
            registered_turn += 1
        items = [_simple_item(rng) for _ in range(rng.choice((1, 1, 2, 3)))]
        extra = rng.random()
        if extra < 0.2:
            items.append(_hoodie_item(rng, ids))
        elif extra < 0.3:
            items.append(_gift_box_item(ids))
        elif extra < 0.38:
            items.append(_breakfast_item(ids))
        # A business in another EU country with a VAT number buys without Dutch VAT (intra-community supply,
        # reverse charge), as a shop's B2B tax rule charges it; SnelStart books such an order at 0 % as well.
        reverse_charge = bool(buyer.vat_id) and buyer.country != "NL"
        if reverse_charge:
            items = [_without_vat(i) for i in items]
        subtotal = sum(Decimal(str(i["price"])) * i["qty"] for i in items)
        coupon = index % 5 == 1
        shipping = Decimal("0") if subtotal >= 75 else Decimal("4.0909")
        state = "processing"
        if index == count - 2:
            state = "pending_payment"
        elif index == count - 4:
            state = "canceled"
        method = (
            "mollie_methods_ideal",
            "mollie_methods_creditcard",
            "mollie_methods_bancontact",
            "checkmo",
        )[index % 4]
        columns: dict[str, Any] = {}
        if coupon:
            columns.update(coupon_code="WELKOM10", discount_description="Welkomstkorting 10%")
        order_id = shop.order(
            items=items,
            customer=customer_ids[buyer.email] if buyer.registered else None,
            billing=buyer.address(),
            shipping=True,
            shipping_amount=str(shipping),
            payment=method,
            payment_info={"method_title": _title(method)},
            tax_percent="0" if reverse_charge else "21",
            state=state,
            # Magento 2's own numbering; it never clashes with the sample administration's history.
            number=f"{index + 1:09d}",
            age_seconds=int((10 * 24 * 3600) * (count - index) / count) + 600,
            **columns,
        )
        if coupon:
            _apply_coupon(shop, order_id, Decimal("0.10"))
        if method == "mollie_methods_creditcard":
            _add_fee(shop, order_id, Decimal("0.2479"), Decimal("0") if reverse_charge else Decimal("0.0521"))
            summary.with_fee += 1
        summary.orders += 1
        summary.guests += not buyer.registered
        summary.registered += buyer.registered
        summary.business += buyer.company is not None
        summary.awaiting_payment += state == "pending_payment"
        summary.canceled += state == "canceled"
        summary.with_discount += coupon
        if progress is not None:
            progress(summary.orders)
    return summary


# Magento 2's stock indexers and the table and column their changelog triggers watch.
STOCK_VIEWS = {
    "cataloginventory_stock": ("cataloginventory_stock_item", "product_id"),
    "inventory": ("inventory_source_item", "source_item_id"),
}


def use_update_by_schedule(shop: Shop) -> list[str]:
    """Put the stock indexers on "Update by Schedule", the way Magento does it: the view's mode, a changelog
    table and triggers that record every change of the watched table in it.

    This is the mode a shop should run in: stock the agent writes then reaches the storefront through
    Magento's cron, and the agent has no reason to mark an indexer invalid. Returns the views switched."""
    if not shop.has_table("mview_state"):
        return []
    switched = []
    with shop.conn.cursor() as cur:
        for view, (table, column) in STOCK_VIEWS.items():
            if not shop.has_table(table):
                continue
            changelog = shop.table(f"{view}_cl")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {changelog} (version_id int unsigned NOT NULL AUTO_INCREMENT, "
                "entity_id int unsigned NOT NULL DEFAULT 0, PRIMARY KEY (version_id)) ENGINE=InnoDB"
            )
            for event, row in (("insert", "NEW"), ("update", "NEW"), ("delete", "OLD")):
                trigger = f"`trg_{shop.prefix}{table}_after_{event}`"
                cur.execute(f"DROP TRIGGER IF EXISTS {trigger}")
                cur.execute(
                    f"CREATE TRIGGER {trigger} AFTER {event.upper()} ON {shop.table(table)} FOR EACH ROW "
                    f"INSERT IGNORE INTO {changelog} (entity_id) VALUES ({row}.`{column}`)"
                )
            cur.execute(
                f"UPDATE {shop.table('mview_state')} SET mode = 'enabled' WHERE view_id = %s", (view,)
            )
            switched.append(view)
    if not shop.conn.get_autocommit():
        shop.conn.commit()
    return switched


def _title(method: str) -> str:
    return {
        "mollie_methods_ideal": "iDEAL",
        "mollie_methods_creditcard": "Creditcard",
        "mollie_methods_bancontact": "Bancontact",
        "checkmo": "Betaling op rekening",
    }[method]


def _apply_coupon(shop: Shop, order_id: int, share: Decimal) -> None:
    """A percentage coupon as Magento's default tax model books it: off each item's price excl. VAT, VAT after.

    The coupon's rule leaves bundles out (their money sits on their selections), as shop owners often do.
    """
    item, order = shop.table("sales_order_item"), shop.table("sales_order")
    with shop.conn.cursor() as cur:
        cur.execute(
            f"SELECT item_id, row_total, tax_percent, tax_amount FROM {item} "
            "WHERE order_id = %s AND parent_item_id IS NULL AND product_type IN ('simple', 'configurable')",
            (order_id,),
        )
        rows = cur.fetchall()
        total_discount = total_tax_change = Decimal(0)
        for row in rows:
            values = list(row.values()) if isinstance(row, dict) else list(row)
            item_id, row_total, percent, old_tax = values
            discount = _q(row_total * share)
            tax = _q((row_total - discount) * percent / 100)
            cur.execute(
                f"UPDATE {item} SET discount_amount = %s, base_discount_amount = %s, discount_percent = %s, "
                "tax_amount = %s, base_tax_amount = %s WHERE item_id = %s",
                (discount, discount, share * 100, tax, tax, item_id),
            )
            total_discount += discount
            total_tax_change += tax - old_tax
        change = total_tax_change - total_discount
        cur.execute(
            f"UPDATE {order} SET discount_amount = %s, base_discount_amount = %s, "
            "tax_amount = tax_amount + %s, base_tax_amount = base_tax_amount + %s, "
            "grand_total = grand_total + %s, base_grand_total = base_grand_total + %s WHERE entity_id = %s",
            (-total_discount, -total_discount, total_tax_change, total_tax_change, change, change, order_id),
        )
    shop.conn.commit()


def _add_fee(shop: Shop, order_id: int, fee: Decimal, fee_tax: Decimal) -> None:
    # As the Mollie extension does: the fee in its own column, its tax inside tax_amount, both in grand_total.
    with shop.conn.cursor() as cur:
        cur.execute(
            f"UPDATE {shop.table('sales_order')} SET mollie_payment_fee = %s, mollie_payment_fee_tax = %s, "
            "tax_amount = tax_amount + %s, base_tax_amount = base_tax_amount + %s, "
            "grand_total = grand_total + %s, base_grand_total = base_grand_total + %s WHERE entity_id = %s",
            (fee, fee_tax, fee_tax, fee_tax, fee + fee_tax, fee + fee_tax, order_id),
        )
    shop.conn.commit()
