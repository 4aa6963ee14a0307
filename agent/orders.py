"""Magento 1/2 order rows → the ORDER documents of AGENT-API.md, paged by (created_at, entity_id).

Reading rules that matter for "exactly once":
- Order times are read in the session zone Magento writes with (``agent.db.connect`` sets it), so the values
  are UTC wall-clock times in both versions; they are labelled UTC, never converted again.
- A page only holds orders whose ``created_at`` is at least ``settle_seconds`` older than the database's own
  UTC clock: Magento sets ``created_at`` when the order's transaction begins, so a younger order may still be
  invisible to us while an older-stamped one commits later.
- The cursor is the (created_at, entity_id) of the last order served; the next page starts strictly after it.

A page costs a fixed number of queries whatever its size: the clock, the orders, then items, catalog products,
addresses, payments, taxes and customer attributes for all orders of the page at once.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import pymysql.cursors

from agent import phpserial

# Customer EAV attributes that carry a SnelStart customer number or a chamber of commerce number.
CUSTOMER_ATTRIBUTES = (
    "klantcode",
    "klantnr",
    "klantnummer",
    "debiteurnr",
    "debiteurnummer",
    "kvk",
    "kvknummer",
    "kvk_nummer",
)

# Payment fee columns that extensions add to the order table: (amount column, tax column). The fee's tax is
# part of the order's tax_amount already (the extensions add it to the tax total), so only the amount counts
# towards the totals check.
KNOWN_FEES = (("mollie_payment_fee", "mollie_payment_fee_tax"),)

# Magento's own money that sits in grand_total besides subtotal, shipping, tax and discount: the tax that a
# discount on tax-inclusive prices "compensates" (M2 name, M1 name).
_HIDDEN_TAX = ("discount_tax_compensation_amount", "hidden_tax_amount")

_TABLES = {
    # logical name: (Magento 1 table, Magento 2 table)
    "order": ("sales_flat_order", "sales_order"),
    "item": ("sales_flat_order_item", "sales_order_item"),
    "address": ("sales_flat_order_address", "sales_order_address"),
    "payment": ("sales_flat_order_payment", "sales_order_payment"),
    "tax": ("sales_order_tax", "sales_order_tax"),
    "store": ("core_store", "store"),
    "product": ("catalog_product_entity", "catalog_product_entity"),
}

_ITEM_COLUMNS = (
    "item_id, order_id, parent_item_id, product_id, product_type, product_options, sku, name, qty_ordered, "
    "price, price_incl_tax, row_total, row_total_incl_tax, tax_percent, tax_amount, discount_amount"
)
_ADDRESS_COLUMNS = (
    "entity_id, parent_id, address_type, firstname, middlename, lastname, prefix, suffix, company, street, "
    "postcode, city, region, country_id, telephone, email, vat_id"
)


class MagentoTables(Protocol):
    """What the feed needs to know about the shop (``agent.db.Magento`` fits)."""

    version: int

    def table(self, name: str) -> str: ...


class CursorError(ValueError):
    """An ``after`` value that is not a cursor this agent handed out."""


@dataclass(frozen=True)
class Position:
    """A place in the feed: everything strictly after (created_at, entity_id) comes next."""

    created_at: datetime  # naive, UTC wall clock, whole seconds
    entity_id: int


# A day after the epoch: TIMESTAMP starts at 1970-01-01 00:00:01 UTC, and a session zone east of UTC
# must not turn the start into a negative time.
BEGINNING = Position(datetime(1970, 1, 2), 0)


@dataclass
class Page:
    orders: list[dict[str, Any]]
    next_cursor: str
    has_more: bool
    settled_until: datetime  # aware UTC


def _table(mage: MagentoTables, name: str) -> str:
    m1, m2 = _TABLES[name]
    return mage.table(m2 if mage.version == 2 else m1)


# --- cursor ---------------------------------------------------------------------------------------------------


def encode_cursor(position: Position) -> str:
    # isoformat pads the year to four digits, as decode_cursor's strptime wants (strftime's %Y does not).
    payload = {"t": position.created_at.isoformat(sep=" ", timespec="seconds"), "id": position.entity_id}
    raw = json.dumps(payload, separators=(",", ":")).encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(text: str) -> Position:
    """The position inside a cursor; CursorError when it was not made by ``encode_cursor``."""
    if not text or len(text) > 200 or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        raise CursorError("not a cursor handed out by this agent")
    try:
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        created_at = datetime.strptime(payload["t"], "%Y-%m-%d %H:%M:%S")
        entity_id = payload["id"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise CursorError("not a cursor handed out by this agent") from None
    if not isinstance(entity_id, int) or isinstance(entity_id, bool) or entity_id < 0:
        raise CursorError("not a cursor handed out by this agent")
    return Position(created_at, entity_id)


def position_from(created_from: datetime) -> Position:
    """The position just before the first order created at or after ``created_from`` (an aware time)."""
    if created_from.tzinfo is None:
        raise ValueError("created_from needs a UTC offset or Z")
    try:
        utc = created_from.astimezone(UTC).replace(tzinfo=None)
        if utc.microsecond:
            # Magento stores whole seconds; an order in the same second is older than the asked moment.
            utc = utc.replace(microsecond=0) + timedelta(seconds=1)
    except OverflowError:
        raise ValueError("in UTC it falls outside the years 1 to 9999") from None
    if utc < BEGINNING.created_at:
        return BEGINNING  # no order is older than the first day a TIMESTAMP column can hold
    return Position(utc, 0)


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with an offset or ``Z``; ValueError (with the reason) otherwise."""
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        raise ValueError("it has no UTC offset (add Z or +01:00)")
    return value


def iso_utc(value: datetime | None) -> str | None:
    """``2026-12-03T10:00:00Z`` (fractions only when there are any) for a naive UTC or an aware time."""
    if not isinstance(value, datetime):
        return None  # NULL, or a zero date PyMySQL hands back as text
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


# --- paging ----------------------------------------------------------------------------------------------------


def settled_until(conn: pymysql.connections.Connection, settle_seconds: int) -> datetime:
    """The database's UTC clock minus the settle time (naive UTC)."""
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SELECT UTC_TIMESTAMP() - INTERVAL %s SECOND AS settled", (int(settle_seconds),))
        return cur.fetchone()["settled"]


def page_query(
    mage: MagentoTables, after: Position, limit: int, until: datetime, store: str | None
) -> tuple[str, list[Any]]:
    """The keyset query of one page (``limit + 1`` rows, to know whether more follow)."""
    where = [
        "o.created_at <= %s",
        # The OR form keeps both halves a range on the created_at index (InnoDB appends entity_id to it).
        "(o.created_at > %s OR (o.created_at = %s AND o.entity_id > %s))",
    ]
    args: list[Any] = [until, after.created_at, after.created_at, after.entity_id]
    if store is not None:
        where.append("s.code = %s")
        args.append(store)
    sql = (
        "SELECT o.*, s.code AS koppel_store_code, s.name AS koppel_store_name, "
        "s.website_id AS koppel_website_id "
        f"FROM {_table(mage, 'order')} o LEFT JOIN {_table(mage, 'store')} s ON s.store_id = o.store_id "
        f"WHERE {' AND '.join(where)} ORDER BY o.created_at, o.entity_id LIMIT %s"
    )
    args.append(limit + 1)
    return sql, args


def store_exists(conn: pymysql.connections.Connection, mage: MagentoTables, code: str) -> bool:
    with conn.cursor() as cur:
        cur.execute(f"SELECT 1 FROM {_table(mage, 'store')} WHERE code = %s", (code,))
        return cur.fetchone() is not None


def fetch_page(
    conn: pymysql.connections.Connection,
    mage: MagentoTables,
    *,
    after: Position,
    limit: int,
    settle_seconds: int,
    store: str | None = None,
    asked_cursor: str | None = None,
) -> Page:
    """One page of settled orders strictly after ``after``; ``asked_cursor`` is echoed when nothing is new."""
    _fresh_snapshot(conn)
    try:
        until = settled_until(conn, settle_seconds)
        sql, args = page_query(mage, after, limit, until, store)
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(sql, args)
            rows = list(cur.fetchall())
        has_more = len(rows) > limit
        rows = rows[:limit]
        orders = build_orders(conn, mage, rows)
    finally:
        _fresh_snapshot(conn)
    if rows:
        last = rows[-1]
        next_cursor = encode_cursor(Position(last["created_at"], last["entity_id"]))
    else:
        next_cursor = asked_cursor or encode_cursor(after)
    return Page(orders, next_cursor, has_more, until.replace(tzinfo=UTC))


def fetch_order(
    conn: pymysql.connections.Connection, mage: MagentoTables, order_id: int
) -> dict[str, Any] | None:
    """One ORDER by entity_id, settled or not; None when there is no such order."""
    _fresh_snapshot(conn)
    try:
        with conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(
                "SELECT o.*, s.code AS koppel_store_code, s.name AS koppel_store_name, "
                "s.website_id AS koppel_website_id "
                f"FROM {_table(mage, 'order')} o LEFT JOIN {_table(mage, 'store')} s ON s.store_id = o.store_id "
                "WHERE o.entity_id = %s",
                (order_id,),
            )
            row = cur.fetchone()
        return build_orders(conn, mage, [row])[0] if row else None
    finally:
        _fresh_snapshot(conn)


def _fresh_snapshot(conn: pymysql.connections.Connection) -> None:
    # The feed only reads. Ending the transaction lets a reused connection see orders committed since its last
    # request, while the queries of one page still share one snapshot.
    conn.rollback()


# --- loading a page's related rows (one query per kind) ---------------------------------------------------------


def _in(values: Iterable[Any]) -> tuple[str, list[Any]]:
    items = list(values)
    return ", ".join(["%s"] * len(items)), items


def _rows(conn: pymysql.connections.Connection, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def related_queries(mage: MagentoTables, order_ids: Sequence[int]) -> dict[str, tuple[str, list[Any]]]:
    """The queries that load a page's items, addresses, payments and taxes, one per kind."""
    marks, ids = _in(order_ids)
    return {
        "items": (
            f"SELECT {_ITEM_COLUMNS} FROM {_table(mage, 'item')} WHERE order_id IN ({marks}) "
            "ORDER BY order_id, item_id",
            ids,
        ),
        "addresses": (
            f"SELECT {_ADDRESS_COLUMNS} FROM {_table(mage, 'address')} WHERE parent_id IN ({marks}) "
            "ORDER BY entity_id",
            ids,
        ),
        "payments": (
            f"SELECT parent_id, method, additional_information FROM {_table(mage, 'payment')} "
            f"WHERE parent_id IN ({marks}) ORDER BY entity_id",
            ids,
        ),
        "taxes": (
            f"SELECT order_id, code, title, percent, amount FROM {_table(mage, 'tax')} "
            f"WHERE order_id IN ({marks}) ORDER BY order_id, priority, position, tax_id",
            ids,
        ),
    }


def products_query(mage: MagentoTables, product_ids: Iterable[int]) -> tuple[str, list[Any]]:
    marks, ids = _in(sorted(product_ids))
    return f"SELECT entity_id, sku FROM {_table(mage, 'product')} WHERE entity_id IN ({marks})", ids


def attributes_query(mage: MagentoTables, customer_ids: Iterable[int]) -> tuple[str, list[Any]]:
    """One UNION over the customer EAV value tables for the attributes in CUSTOMER_ATTRIBUTES."""
    cmarks, cids = _in(sorted(customer_ids))
    amarks, codes = _in(CUSTOMER_ATTRIBUTES)
    parts, args = [], []
    for backend in ("varchar", "int", "text", "decimal"):
        parts.append(
            f"SELECT v.entity_id, a.attribute_code, v.value FROM {mage.table('customer_entity_' + backend)} v "
            f"JOIN {mage.table('eav_attribute')} a ON a.attribute_id = v.attribute_id "
            f"JOIN {mage.table('eav_entity_type')} t ON t.entity_type_id = a.entity_type_id "
            f"WHERE t.entity_type_code = 'customer' AND a.backend_type = %s "
            f"AND a.attribute_code IN ({amarks}) AND v.entity_id IN ({cmarks})"
        )
        args += [backend, *codes, *cids]
    return " UNION ALL ".join(parts), args


def build_orders(
    conn: pymysql.connections.Connection, mage: MagentoTables, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """ORDER documents for order rows (``page_query`` shape), loading their related rows in bulk."""
    if not rows:
        return []
    loaded = {
        kind: _rows(conn, sql, args)
        for kind, (sql, args) in related_queries(mage, [r["entity_id"] for r in rows]).items()
    }
    product_ids = {item["product_id"] for item in loaded["items"] if item["product_id"] is not None}
    catalog: dict[int, str | None] = {}
    if product_ids:
        catalog = {row["entity_id"]: row["sku"] for row in _rows(conn, *products_query(mage, product_ids))}
    customer_ids = {r["customer_id"] for r in rows if r["customer_id"]}
    attributes: dict[int, dict[str, str]] = defaultdict(dict)
    if customer_ids:
        for row in _rows(conn, *attributes_query(mage, customer_ids)):
            value = row["value"]
            if value is not None and str(value).strip() != "":
                attributes[row["entity_id"]][row["attribute_code"]] = str(value)

    grouped: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for kind, key in (
        ("items", "order_id"),
        ("addresses", "parent_id"),
        ("payments", "parent_id"),
        ("taxes", "order_id"),
    ):
        grouped[kind] = defaultdict(list)
        for row in loaded[kind]:
            grouped[kind][row[key]].append(row)
    return [
        _order(
            row,
            grouped["items"][row["entity_id"]],
            grouped["addresses"][row["entity_id"]],
            grouped["payments"][row["entity_id"]],
            grouped["taxes"][row["entity_id"]],
            catalog,
            attributes.get(row["customer_id"], {}),
        )
        for row in rows
    ]


# --- one ORDER ---------------------------------------------------------------------------------------------------


def _money(value: Any) -> str | None:
    return None if value is None else str(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _order(
    row: dict[str, Any],
    items: list[dict[str, Any]],
    addresses: list[dict[str, Any]],
    payments: list[dict[str, Any]],
    taxes: list[dict[str, Any]],
    catalog: dict[int, str | None],
    attributes: dict[str, str],
) -> dict[str, Any]:
    warnings: list[str] = []
    billing = next((a for a in addresses if a["address_type"] == "billing"), None)
    shipping = next((a for a in addresses if a["address_type"] == "shipping"), None)
    lines = _lines(items, catalog, warnings)
    payment = payments[0] if payments else None
    fee = _fee(row)
    return {
        "id": row["entity_id"],
        "number": row["increment_id"],
        "store": {
            "id": row["store_id"],
            "code": row["koppel_store_code"],
            "name": row["koppel_store_name"],
            "website_id": row["koppel_website_id"],
        },
        "created_at": iso_utc(row["created_at"]),
        "updated_at": iso_utc(row["updated_at"]),
        "state": row["state"],
        "status": row["status"],
        "currency": row["order_currency_code"],
        "base_currency": row["base_currency_code"],
        "customer": _customer(row, billing, attributes),
        "billing_address": _address(billing),
        "shipping_address": _address(shipping),
        "lines": lines,
        "shipping": {
            "method": row["shipping_method"],
            "description": row["shipping_description"],
            "amount": _money(row["shipping_amount"]),
            "amount_incl_tax": _money(row["shipping_incl_tax"]),
            "tax_amount": _money(row["shipping_tax_amount"]),
            "discount_amount": _money(row["shipping_discount_amount"]),
        },
        "discount": {
            "amount": _money(row["discount_amount"]),
            "description": row["discount_description"],
            "coupon_code": row["coupon_code"],
        },
        "payment": {
            "method": payment["method"] if payment else None,
            "title": _payment_title(payment),
            "fee": fee,
        },
        "totals": {
            "subtotal": _money(row["subtotal"]),
            "subtotal_incl_tax": _money(row["subtotal_incl_tax"]),
            "tax_amount": _money(row["tax_amount"]),
            "grand_total": _money(row["grand_total"]),
            "base_grand_total": _money(row["base_grand_total"]),
            "unexplained_amount": _unexplained(row, fee),
        },
        "taxes": [
            {
                "code": t["code"],
                "title": t["title"],
                "percent": _money(t["percent"]),
                "amount": _money(t["amount"]),
            }
            for t in taxes
        ],
        "customer_note": row["customer_note"],
        "relation": {
            "parent_id": _int_or_text(row["relation_parent_id"]),
            "original_number": row["original_increment_id"],
        },
        "warnings": warnings,
    }


def _int_or_text(value: Any) -> int | str | None:
    if value is None or value == "":
        return None
    text = str(value)
    return int(text) if text.isdigit() else text


def _customer(
    row: dict[str, Any], billing: dict[str, Any] | None, attributes: dict[str, str]
) -> dict[str, Any]:
    is_guest = row["customer_id"] is None
    first, last = row["customer_firstname"], row["customer_lastname"]
    if is_guest or not (first or last):
        # Guests (and some imported orders) carry no name of their own; the billing address always has one.
        first = billing["firstname"] if billing else first
        last = billing["lastname"] if billing else last
    name = " ".join(part.strip() for part in (first, last) if part and part.strip()) or None
    group = row["customer_group_id"]
    return {
        "id": row["customer_id"],
        "is_guest": is_guest,
        "email": row["customer_email"],
        "firstname": first,
        "lastname": last,
        "name": name,
        "company": billing["company"] if billing else None,
        "taxvat": row["customer_taxvat"],
        "group_id": 0 if is_guest and group is None else group,
        "attributes": {} if is_guest else dict(attributes),
    }


def _address(address: dict[str, Any] | None) -> dict[str, Any] | None:
    if address is None:
        return None
    street = address["street"]
    return {
        "firstname": address["firstname"],
        "middlename": address["middlename"],
        "lastname": address["lastname"],
        "prefix": address["prefix"],
        "suffix": address["suffix"],
        "company": address["company"],
        # Every stored line in order, empty ones too: which line holds the house number is shop-specific.
        "street": _street_lines(street),
        "postcode": address["postcode"],
        "city": address["city"],
        "region": address["region"],
        "country": address["country_id"],
        "telephone": address["telephone"],
        "email": address["email"],
        "vat_id": _text(address["vat_id"]),
    }


def _street_lines(street: str | None) -> list[str]:
    if street is None:
        return []
    return re.split(r"\r?\n", street) if "\r" in street else street.split("\n")


def _fee(row: dict[str, Any]) -> dict[str, str | None] | None:
    for amount_col, tax_col in KNOWN_FEES:
        if amount_col in row and row[amount_col] is not None:
            return {"amount": _money(row[amount_col]), "tax_amount": _money(row.get(tax_col))}
    return None


def _unexplained(row: dict[str, Any], fee: dict[str, str | None] | None) -> str | None:
    if row["grand_total"] is None:
        return None
    known = Decimal(0)
    for col in ("subtotal", "shipping_amount", "tax_amount", "discount_amount", *_HIDDEN_TAX):
        if row.get(col) is not None:
            known += row[col]
    if fee and fee["amount"] is not None:
        known += Decimal(fee["amount"])
    return str((row["grand_total"] - known).quantize(Decimal("0.0001")))


def _payment_title(payment: dict[str, Any] | None) -> str | None:
    if not payment or not payment["additional_information"]:
        return None
    info, problem = decode_options(payment["additional_information"])
    if problem or not isinstance(info, dict):
        return None  # the title is a nicety; a method code is always there
    title = info.get("method_title")
    return None if title is None else str(title)


# --- product_options ---------------------------------------------------------------------------------------------

# One decoder for every value (json.loads would build a new one per call); fractions stay exact.
_JSON = json.JSONDecoder(parse_float=Decimal)


def decode_options(raw: Any) -> tuple[dict[str, Any], str | None]:
    """product_options as a dict: JSON, PHP-serialized, or either wrapped once more in a string.

    Returns (options, problem); on a problem the options are empty and ``problem`` says why.
    """
    if raw is None or raw == "":
        return {}, None
    value: Any = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    for _ in range(3):
        if not isinstance(value, str):
            break
        value = _decode_text(value)
        if value is None:
            return {}, "neither JSON nor PHP-serialized data"
    if isinstance(value, list) and not value:
        return {}, None  # PHP's empty array
    if not isinstance(value, dict):
        return {}, f"decoded to {type(value).__name__}, not a set of options"
    return value, None


def _decode_text(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"'):
        try:
            return _JSON.decode(stripped)
        except ValueError:
            pass
    if phpserial.looks_serialized(stripped):
        try:
            return phpserial.loads(stripped)
        except phpserial.PhpSerialError:
            pass
    return None


def _label_value(label: Any, value: Any) -> dict[str, str]:
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return {"label": "" if label is None else str(label), "value": "" if value is None else str(value)}


def _entries(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list) else []


def option_list(options: dict[str, Any]) -> list[dict[str, str]]:
    """Human-readable label/value pairs: chosen variant, custom options, bundle selections."""
    result: list[dict[str, str]] = []
    for entry in _entries(options.get("attributes_info")):
        if isinstance(entry, dict):
            result.append(_label_value(entry.get("label"), entry.get("value")))
    for key in ("options", "additional_options"):
        for entry in _entries(options.get(key)):
            if isinstance(entry, dict):
                shown = entry.get("print_value", entry.get("value"))
                result.append(_label_value(entry.get("label"), shown))
    for entry in _entries(options.get("bundle_options")):
        if not isinstance(entry, dict):
            continue
        chosen = []
        for selection in _entries(entry.get("value")):
            if isinstance(selection, dict):
                chosen.append(f"{selection.get('qty', '')} x {selection.get('title', '')}".strip())
        result.append(_label_value(entry.get("label"), ", ".join(chosen)))
    return result


# --- lines -------------------------------------------------------------------------------------------------------


def _lines(
    items: list[dict[str, Any]], catalog: dict[int, str | None], warnings: list[str]
) -> list[dict[str, Any]]:
    children: dict[int, list[dict[str, Any]]] = defaultdict(list)
    top: list[dict[str, Any]] = []
    known_ids = {item["item_id"] for item in items}
    for item in items:
        parent = item["parent_item_id"]
        if parent is not None and parent in known_ids:
            children[parent].append(item)
        else:
            top.append(item)
    return [_line(item, children.get(item["item_id"], []), catalog, warnings) for item in top]


def _line(
    item: dict[str, Any],
    kids: list[dict[str, Any]],
    catalog: dict[int, str | None],
    warnings: list[str],
) -> dict[str, Any]:
    options, problem = decode_options(item["product_options"])
    if problem:
        warnings.append(
            f"item {item['item_id']} ({item['sku']}): product options could not be read ({problem})"
        )
    product_id, order_sku = item["product_id"], item["sku"]
    fallback_sku = order_sku
    child_lines: list[dict[str, Any]] = []
    if item["product_type"] == "configurable":
        # The money is on the parent row; which article was sold is on the child row.
        if kids:
            product_id, fallback_sku = kids[0]["product_id"], kids[0]["sku"]
        elif options.get("simple_sku"):
            product_id, fallback_sku = None, str(options["simple_sku"])
            warnings.append(f"item {item['item_id']} ({order_sku}): configurable item without its child row")
    else:
        child_lines = [_line(kid, [], catalog, warnings) for kid in kids]
    exists = product_id is not None and product_id in catalog
    if not exists:
        warnings.append(
            f"item {item['item_id']} ({order_sku}): product {product_id} no longer exists in the catalog"
        )
    line_options = option_list(options)
    selection = options.get("bundle_selection_attributes")
    if isinstance(selection, str):
        decoded, bad = decode_options(selection)
        if bad:
            warnings.append(
                f"item {item['item_id']} ({order_sku}): bundle selection could not be read ({bad})"
            )
        selection = decoded
    if isinstance(selection, dict) and selection.get("option_label") is not None:
        line_options.append(_label_value(selection["option_label"], item["name"]))
    return {
        "item_id": item["item_id"],
        "product_id": product_id,
        "sku": catalog.get(product_id) if exists else fallback_sku,
        "order_sku": order_sku,
        "name": item["name"],
        "product_type": item["product_type"],
        "qty": _money(item["qty_ordered"]),
        "unit_price": _money(item["price"]),
        "unit_price_incl_tax": _money(item["price_incl_tax"]),
        "row_total": _money(item["row_total"]),
        "row_total_incl_tax": _money(item["row_total_incl_tax"]),
        "tax_percent": _money(item["tax_percent"]),
        "tax_amount": _money(item["tax_amount"]),
        "discount_amount": _money(item["discount_amount"]),
        "options": line_options,
        "children": child_lines,
        "product_missing": not exists,
        # Not in the LINE of AGENT-API.md: tells the client whether a bundle's money is on this line (fixed)
        # or on its children (dynamic), which the stored amounts alone do not show reliably.
        "bundle_price_type": _bundle_price_type(item["product_type"], options),
    }


def _bundle_price_type(product_type: str | None, options: dict[str, Any]) -> str | None:
    if product_type != "bundle":
        return None
    # product_calculations: 1 = the bundle's own price (money on the parent), 0 = priced per selection.
    try:
        return "fixed" if int(options.get("product_calculations")) == 1 else "dynamic"
    except (TypeError, ValueError):
        return None
