"""A Magento 1 or 2 webshop in a MariaDB database, built row by row for tests, the demo and benchmarks.

``Shop.install(conn, version, prefix)`` loads koppel's schema fixture; then one line per thing:

    shop.product("MUG", name="Mok")
    shop.customer(email="jan@example.nl", attributes={"klantcode": "1042"})
    shop.order(items=[{"sku": "MUG", "qty": 2, "price": "7.50"}], customer=cid)

Rows are written the way Magento writes them: times as UTC wall-clock values (Magento 2 in a ``+00:00``
session; Magento 1 in whatever zone the connection has, which is what Magento 1 itself does), M2 product
options as JSON and M1 ones PHP-serialized, order money in the order currency next to base money. Amounts
are computed with Decimal from the item prices unless given. ``bulk_orders`` is the fast path for benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import count
from typing import Any

import pymysql

from agent import phpserial
from client.demo.magento_schema import create_schema

_CENT = Decimal("0.0001")
_TABLES = {
    "order": ("sales_flat_order", "sales_order"),
    "item": ("sales_flat_order_item", "sales_order_item"),
    "address": ("sales_flat_order_address", "sales_order_address"),
    "payment": ("sales_flat_order_payment", "sales_order_payment"),
    "history": ("sales_flat_order_status_history", "sales_order_status_history"),
    "website": ("core_website", "store_website"),
    "group": ("core_store_group", "store_group"),
    "store": ("core_store", "store"),
}
_NAME_ATTRIBUTE = 73  # catalog_product / name in the fixture's seed rows
DEFAULT_ADDRESS = {
    "firstname": "Jan",
    "lastname": "Jansen",
    "street": "Dorpsstraat 1",
    "postcode": "1234 AB",
    "city": "Utrecht",
    "country_id": "NL",
    "telephone": "030-1234567",
}


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _q(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


class Shop:
    def __init__(self, conn: pymysql.connections.Connection, version: int, prefix: str = "") -> None:
        if version not in (1, 2):
            raise ValueError(f"Magento version must be 1 or 2, not {version!r}")
        self.conn = conn
        self.version = version
        self.prefix = prefix
        self._numbers = count(1)
        self._tables: dict[str, bool] = {}
        if version == 2:
            with conn.cursor() as cur:
                cur.execute("SET time_zone = '+00:00'")

    @classmethod
    def install(
        cls,
        conn: pymysql.connections.Connection,
        version: int,
        prefix: str = "",
        parts: Sequence[str] = ("core",),
    ) -> Shop:
        """Create the fixture tables (and install seed rows) in the connection's database."""
        create_schema(conn, version, prefix, tuple(parts))
        return cls(conn, version, prefix)

    # --- plumbing ---

    def table(self, name: str) -> str:
        """Back-quoted prefixed name; logical names (order, item, store, ...) map to the version's table."""
        if name in _TABLES:
            name = _TABLES[name][self.version - 1]
        return f"`{self.prefix}{name}`"

    def _insert(self, table: str, row: dict[str, Any]) -> int:
        cols = ", ".join(f"`{c}`" for c in row)
        marks = ", ".join(["%s"] * len(row))
        with self.conn.cursor() as cur:
            cur.execute(f"INSERT INTO {self.table(table)} ({cols}) VALUES ({marks})", list(row.values()))
            return cur.lastrowid

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            row = cur.fetchone()
        if row is None:
            return None
        return next(iter(row.values())) if isinstance(row, dict) else row[0]

    def _commit(self) -> None:
        if not self.conn.get_autocommit():
            self.conn.commit()

    def has_table(self, name: str) -> bool:
        if name not in self._tables:
            found = self._one(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                (self.prefix + name,),
            )
            self._tables[name] = bool(found)
        return self._tables[name]

    def db_now(self) -> datetime:
        """The database's UTC clock (naive), which the agent's settle rule is measured against."""
        return self._one("SELECT UTC_TIMESTAMP()")

    def encode_options(self, options: Any) -> str | None:
        """product_options the way this version stores them (str is taken as already stored text)."""
        if options is None or isinstance(options, str):
            return options
        if self.version == 1:
            return phpserial.dumps(options)
        return json.dumps(options, ensure_ascii=False, default=str)

    def set_config(self, path: str, value: str | None, scope: str = "default", scope_id: int = 0) -> None:
        """One core_config_data setting, as saving it in Magento's admin would store it (needs part "stock")."""
        with self.conn.cursor() as cur:
            cur.execute(
                f"INSERT INTO {self.table('core_config_data')} (scope, scope_id, path, value) "
                "VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE value = VALUES(value)",
                (scope, scope_id, path, value),
            )
        self._commit()

    # --- stores, customers, products ---

    def store(self, code: str, name: str | None = None, website: str = "base") -> int:
        """A store view (in a new website when ``website`` does not exist yet); returns store_id."""
        website_id = self._one(f"SELECT website_id FROM {self.table('website')} WHERE code = %s", (website,))
        if website_id is None:
            website_id = self._insert(
                "website", {"code": website, "name": website.title(), "default_group_id": 0}
            )
        group = {"website_id": website_id, "name": f"{website} store", "root_category_id": 2}
        group_id = self._insert("group", group)
        store_id = self._insert(
            "store",
            {
                "code": code,
                "website_id": website_id,
                "group_id": group_id,
                "name": name or code,
                "is_active": 1,
            },
        )
        self._commit()
        return store_id

    def store_id(self, code: str) -> int:
        found = self._one(f"SELECT store_id FROM {self.table('store')} WHERE code = %s", (code,))
        if found is None:
            raise ValueError(f"no store with code {code!r}")
        return found

    def attribute(self, entity_type_id: int, code: str, backend_type: str = "varchar") -> int:
        """The attribute_id of an EAV attribute, created when missing (custom attributes like klantcode)."""
        found = self._one(
            f"SELECT attribute_id FROM {self.table('eav_attribute')} WHERE entity_type_id = %s AND attribute_code = %s",
            (entity_type_id, code),
        )
        if found is not None:
            return found
        return self._insert(
            "eav_attribute",
            {
                "entity_type_id": entity_type_id,
                "attribute_code": code,
                "backend_type": backend_type,
                "frontend_input": "text",
                "is_user_defined": 1,
            },
        )

    def customer(
        self,
        email: str | None = None,
        firstname: str = "Jan",
        lastname: str = "Jansen",
        *,
        group_id: int = 1,
        website_id: int = 1,
        taxvat: str | None = None,
        attributes: dict[str, str | int] | None = None,
    ) -> int:
        """A registered customer; ``attributes`` are customer EAV values (varchar, int for int values)."""
        email = email or f"klant{next(self._numbers)}@example.nl"
        row: dict[str, Any] = {"website_id": website_id, "email": email, "group_id": group_id, "store_id": 1}
        if self.version == 2:
            row.update(firstname=firstname, lastname=lastname, taxvat=taxvat)
        else:
            row.update(entity_type_id=1, created_at=self.db_now(), updated_at=self.db_now())
        customer_id = self._insert("customer_entity", row)
        values: dict[str, Any] = dict(attributes or {})
        if self.version == 1:
            values.update({"firstname": firstname, "lastname": lastname})
            if taxvat is not None:
                values["taxvat"] = taxvat
        for code, value in values.items():
            backend = "int" if isinstance(value, int) else "varchar"
            value_row = {
                "attribute_id": self.attribute(1, code, backend),
                "entity_id": customer_id,
                "value": value,
            }
            if self.version == 1:
                value_row["entity_type_id"] = 1
            self._insert(f"customer_entity_{backend}", value_row)
        self._commit()
        return customer_id

    def product(
        self,
        sku: str,
        name: str | None = None,
        *,
        type_id: str = "simple",
        children: Sequence[int] = (),
        websites: Sequence[int] = (1,),
    ) -> int:
        """A catalog product; ``children`` are the simple products of a configurable. Returns entity_id."""
        row: dict[str, Any] = {"attribute_set_id": 4, "type_id": type_id, "sku": sku}
        if self.version == 1:
            row["entity_type_id"] = 4
        product_id = self._insert("catalog_product_entity", row)
        name_row = {
            "attribute_id": _NAME_ATTRIBUTE,
            "store_id": 0,
            "entity_id": product_id,
            "value": name or sku,
        }
        if self.version == 1:
            name_row["entity_type_id"] = 4
        if self.has_table("catalog_product_entity_varchar"):  # absent from the M1 reference schema
            self._insert("catalog_product_entity_varchar", name_row)
        for website_id in websites:
            self._insert("catalog_product_website", {"product_id": product_id, "website_id": website_id})
        for child in children:
            self._insert("catalog_product_super_link", {"product_id": child, "parent_id": product_id})
            self._insert("catalog_product_relation", {"parent_id": product_id, "child_id": child})
        self._commit()
        return product_id

    def product_id(self, sku: str) -> int | None:
        return self._one(
            f"SELECT entity_id FROM {self.table('catalog_product_entity')} WHERE sku = %s ORDER BY entity_id",
            (sku,),
        )

    def delete_product(self, product_id: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute(
                f"DELETE FROM {self.table('catalog_product_entity')} WHERE entity_id = %s", (product_id,)
            )
        self._commit()

    # --- orders ---

    def order(
        self,
        items: Sequence[dict[str, Any]] | None = None,
        customer: int | None = None,
        *,
        store: str = "default",
        number: str | None = None,
        created_at: datetime | None = None,
        age_seconds: int | None = None,
        currency: str = "EUR",
        base_currency: str | None = None,
        base_rate: Decimal | str = "1",
        billing: dict[str, Any] | None = None,
        shipping: dict[str, Any] | bool | None = None,
        payment: str = "checkmo",
        payment_info: Any = None,
        shipping_amount: Decimal | str = "5.0000",
        tax_percent: Decimal | str = "21",
        discount: Decimal | str = "0",
        state: str = "processing",
        taxes: Sequence[dict[str, Any]] | None = None,
        **columns: Any,
    ) -> int:
        """Insert one order with its items, addresses, payment and tax rows; returns its entity_id.

        ``items``: dicts with ``sku`` and optionally ``qty``, ``price`` (unit price excl. tax), ``name``,
        ``product_id`` (default: the catalog product with that SKU), ``type``, ``options`` (dict → encoded
        for this version; str → stored as is), ``tax_percent``, ``children`` (a list of item dicts; for a
        configurable the chosen simple, for a bundle its selections) and any other item column.
        ``created_at`` (naive UTC) or ``age_seconds`` before the database's UTC clock (default 3600).
        ``shipping=False`` makes a virtual order. Extra keyword arguments are order columns and win over
        everything computed (e.g. ``grand_total=...``, ``relation_parent_id=...``, ``mollie_payment_fee=...``).
        """
        items = list(items) if items is not None else [{"sku": "SIMPLE-1", "qty": 1, "price": "10.0000"}]
        if created_at is None:
            created_at = self.db_now() - timedelta(seconds=3600 if age_seconds is None else age_seconds)
        store_id = self.store_id(store)
        base_rate = _dec(base_rate)
        rate = _dec(tax_percent)
        number = number or f"{100000000 + self._next_number():09d}"

        prepared = [self._prepare_item(item, rate) for item in items]
        subtotal = tax = Decimal(0)
        for item in prepared:
            subtotal += item["priced_total"]
            tax += item["priced_tax"]
        ship = _dec(shipping_amount) if shipping is not False else Decimal(0)
        ship_tax = _q(ship * rate / 100)
        disc = -abs(_dec(discount))
        tax += ship_tax
        grand = subtotal + ship + tax + disc
        bill = {**DEFAULT_ADDRESS, **(billing or {})}
        customer_row = self._customer_row(customer)
        order: dict[str, Any] = {
            "increment_id": number,
            "store_id": store_id,
            "store_name": store,
            "state": state,
            "status": state,
            "created_at": created_at,
            "updated_at": created_at,
            "is_virtual": 1 if shipping is False else 0,
            "customer_id": customer,
            "customer_is_guest": 0 if customer else 1,
            "customer_group_id": customer_row.get("group_id", 0),
            "customer_email": customer_row.get("email") or bill.get("email") or "gast@example.nl",
            "customer_firstname": customer_row.get("firstname"),
            "customer_lastname": customer_row.get("lastname"),
            "order_currency_code": currency,
            "base_currency_code": base_currency or currency,
            "global_currency_code": base_currency or currency,
            "store_currency_code": base_currency or currency,
            "base_to_order_rate": base_rate,
            "shipping_method": None if shipping is False else "flatrate_flatrate",
            "shipping_description": None if shipping is False else "Flat Rate - Fixed",
            "total_item_count": len(prepared),
            "total_qty_ordered": sum((_dec(i.get("qty", 1)) for i in items), Decimal(0)),
        }
        money = {
            "subtotal": subtotal,
            "subtotal_incl_tax": subtotal + tax - ship_tax,
            "tax_amount": tax,
            "shipping_amount": ship,
            "shipping_tax_amount": ship_tax,
            "shipping_incl_tax": ship + ship_tax,
            "shipping_discount_amount": Decimal(0),
            "discount_amount": disc,
            "grand_total": grand,
        }
        for key, value in money.items():
            order[key] = _q(value)
            # Base amounts deliberately differ from order amounts when the rate is not 1, so a reader that
            # mixes them up is caught.
            order[f"base_{key}"] = _q(value / base_rate)
        order.update(columns)
        order_id = self._insert("order", order)

        for item in prepared:
            self._insert_item(order_id, store_id, item, None, created_at)
        self._insert_address(order_id, "billing", bill, customer)
        if shipping is not False:
            ship_address = {**bill, **shipping} if isinstance(shipping, dict) else bill
            self._insert_address(order_id, "shipping", ship_address, customer)
        self._insert(
            "payment", {"parent_id": order_id, "method": payment, **self._payment_info(payment_info)}
        )
        for tax_row in (
            taxes if taxes is not None else [{"code": "NL-21", "title": "BTW 21%", "percent": rate}]
        ):
            self._insert(
                "sales_order_tax",
                {
                    "order_id": order_id,
                    "code": tax_row.get("code"),
                    "title": tax_row.get("title"),
                    "percent": tax_row.get("percent"),
                    "amount": tax_row.get("amount", order["tax_amount"]),
                    "base_amount": tax_row.get("amount", order["base_tax_amount"]),
                    "base_real_amount": tax_row.get("amount", order["base_tax_amount"]),
                    "priority": 0,
                    "position": 0,
                    "process": 0,
                },
            )
        self._commit()
        return order_id

    def _next_number(self) -> int:
        return int(self._one(f"SELECT COALESCE(MAX(entity_id), 0) + 1 FROM {self.table('order')}")) + next(
            self._numbers
        )

    def _customer_row(self, customer: int | None) -> dict[str, Any]:
        if customer is None:
            return {}
        row: dict[str, Any] = {
            "email": self._one(
                f"SELECT email FROM {self.table('customer_entity')} WHERE entity_id = %s", (customer,)
            ),
            "group_id": self._one(
                f"SELECT group_id FROM {self.table('customer_entity')} WHERE entity_id = %s", (customer,)
            ),
        }
        if self.version == 2:
            row["firstname"] = self._one(
                f"SELECT firstname FROM {self.table('customer_entity')} WHERE entity_id = %s", (customer,)
            )
            row["lastname"] = self._one(
                f"SELECT lastname FROM {self.table('customer_entity')} WHERE entity_id = %s", (customer,)
            )
        else:
            for code in ("firstname", "lastname"):
                row[code] = self._one(
                    f"SELECT v.value FROM {self.table('customer_entity_varchar')} v "
                    f"JOIN {self.table('eav_attribute')} a ON a.attribute_id = v.attribute_id "
                    "WHERE a.entity_type_id = 1 AND a.attribute_code = %s AND v.entity_id = %s",
                    (code, customer),
                )
        return row

    def _payment_info(self, info: Any) -> dict[str, Any]:
        if info is None:
            return {}
        return {"additional_information": self.encode_options(info)}

    def _prepare_item(self, spec: dict[str, Any], rate: Decimal) -> dict[str, Any]:
        item = dict(spec)
        item.setdefault("qty", 1)
        item.setdefault("type", "simple")
        children = [self._prepare_item(child, rate) for child in item.pop("children", [])]
        qty = _dec(item["qty"])
        price = _dec(item.get("price", "0"))
        item_rate = _dec(item.get("tax_percent", rate))
        row_total = _q(price * qty)
        tax = _q(row_total * item_rate / 100)
        item.update(
            price=_q(price),
            row_total=row_total,
            tax_amount=tax,
            tax_percent=_q(item_rate),
            price_incl_tax=_q(price * (1 + item_rate / 100)),
            row_total_incl_tax=row_total + tax,
            children=children,
        )
        dynamic_bundle = item["type"] == "bundle" and _calculation(item.get("options")) == 0
        if dynamic_bundle:
            item["priced_total"] = sum((c["row_total"] for c in children), Decimal(0))
            item["priced_tax"] = sum((c["tax_amount"] for c in children), Decimal(0))
        else:
            item["priced_total"], item["priced_tax"] = row_total, tax
        return item

    def _insert_item(
        self, order_id: int, store_id: int, item: dict[str, Any], parent: int | None, created_at: datetime
    ) -> int:
        product_id = item["product_id"] if "product_id" in item else self.product_id(item["sku"])
        reserved = {"sku", "qty", "price", "name", "product_id", "type", "options", "children"}
        reserved |= {"priced_total", "priced_tax", "tax_percent", "tax_amount", "row_total", "price_incl_tax"}
        reserved |= {"row_total_incl_tax"}
        row: dict[str, Any] = {
            "order_id": order_id,
            "parent_item_id": parent,
            "store_id": store_id,
            "created_at": created_at,
            "updated_at": created_at,
            "product_id": product_id,
            "product_type": item["type"],
            "product_options": self.encode_options(item.get("options")),
            "sku": item["sku"],
            "name": item.get("name", item["sku"]),
            "qty_ordered": _dec(item["qty"]),
        }
        for key in (
            "price",
            "row_total",
            "tax_amount",
            "tax_percent",
            "price_incl_tax",
            "row_total_incl_tax",
        ):
            row[key] = item[key]
            if key != "tax_percent":
                row[f"base_{key}"] = item[key]
        row["discount_amount"] = _dec(item.get("discount_amount", "0"))
        row.update({k: v for k, v in item.items() if k not in reserved and k != "discount_amount"})
        item_id = self._insert("item", row)
        for child in item["children"]:
            self._insert_item(order_id, store_id, child, item_id, created_at)
        return item_id

    def _insert_address(
        self, order_id: int, kind: str, address: dict[str, Any], customer: int | None
    ) -> None:
        row = {"parent_id": order_id, "address_type": kind, "customer_id": customer, **address}
        self._insert("address", row)

    # --- bulk (benchmarks) ---

    def bulk_orders(
        self,
        n: int,
        *,
        lines: int = 3,
        start: datetime | None = None,
        per_second: int = 1,
        products: int = 100,
        batch: int = 2000,
    ) -> Iterator[int]:
        """Insert ``n`` simple orders fast (multi-row INSERTs, committed per batch); yields progress counts.

        Orders get ``created_at`` from ``start`` on, ``per_second`` orders per second, each with ``lines``
        items over ``products`` catalog products, two addresses, a payment and a tax row.
        """
        start = start or (self.db_now() - timedelta(days=30))
        skus = [f"BULK-{i:05d}" for i in range(products)]
        have = {self.product_id(s) for s in skus[:1]}
        if None in have:
            for sku in skus:
                self.product(sku, f"Artikel {sku}")
        pids = [self.product_id(s) for s in skus]
        first_id = int(self._one(f"SELECT COALESCE(MAX(entity_id), 0) + 1 FROM {self.table('order')}"))
        item_id = int(self._one(f"SELECT COALESCE(MAX(item_id), 0) + 1 FROM {self.table('item')}"))
        store_id = self.store_id("default")
        done = 0
        while done < n:
            size = min(batch, n - done)
            orders, items, addresses, payments, taxes = [], [], [], [], []
            for k in range(size):
                oid = first_id + done + k
                when = start + timedelta(seconds=(done + k) // per_second)
                subtotal = Decimal(0)
                for line in range(lines):
                    pidx = (oid * 7 + line) % products
                    qty = Decimal(1 + (oid + line) % 3)
                    price = Decimal(5 + pidx % 40) + Decimal("0.9500")
                    row_total = price * qty
                    tax = _q(row_total * Decimal("0.21"))
                    subtotal += row_total
                    items.append(
                        (
                            item_id,
                            oid,
                            store_id,
                            when,
                            when,
                            pids[pidx],
                            "simple",
                            skus[pidx],
                            f"Artikel {skus[pidx]}",
                            qty,
                            price,
                            price,
                            _q(price * Decimal("1.21")),
                            row_total,
                            row_total,
                            row_total + tax,
                            Decimal("21.0000"),
                            tax,
                            tax,
                            Decimal(0),
                        )  # fmt: skip
                    )
                    item_id += 1
                tax = _q(subtotal * Decimal("0.21")) + Decimal("1.0500")
                grand = subtotal + Decimal(5) + tax
                orders.append(
                    (
                        oid,
                        f"{100000000 + oid:09d}",
                        store_id,
                        "processing",
                        "processing",
                        when,
                        when,
                        1,
                        f"gast{oid}@example.nl",
                        "Gast",
                        f"Klant {oid}",
                        "EUR",
                        "EUR",
                        "flatrate_flatrate",
                        "Flat Rate - Fixed",
                        subtotal,
                        subtotal,
                        tax,
                        tax,
                        Decimal(5),
                        Decimal("1.0500"),
                        Decimal("6.0500"),
                        Decimal(0),
                        grand,
                        grand,
                        subtotal + tax - Decimal("1.0500"),
                        lines,
                    )  # fmt: skip
                )
                for kind in ("billing", "shipping"):
                    addresses.append(
                        (
                            oid,
                            kind,
                            "Gast",
                            f"Klant {oid}",
                            f"Straat {oid}\n{oid % 200}",
                            "1234 AB",
                            "Utrecht",
                            "NL",
                            "030-1234567",
                        )  # fmt: skip
                    )
                payments.append((oid, "checkmo"))
                taxes.append((oid, "NL-21", "BTW 21%", Decimal(21), tax, tax, tax, 0, 0, 0))
            with self.conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {self.table('order')} (entity_id, increment_id, store_id, state, status, "
                    "created_at, updated_at, customer_is_guest, customer_email, customer_firstname, "
                    "customer_lastname, order_currency_code, base_currency_code, shipping_method, "
                    "shipping_description, subtotal, base_subtotal, tax_amount, base_tax_amount, shipping_amount, "
                    "shipping_tax_amount, shipping_incl_tax, discount_amount, grand_total, base_grand_total, "
                    "subtotal_incl_tax, total_item_count) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "%s, %s, %s, %s)",
                    orders,
                )
                cur.executemany(
                    f"INSERT INTO {self.table('item')} (item_id, order_id, store_id, created_at, updated_at, "
                    "product_id, product_type, sku, name, qty_ordered, price, base_price, price_incl_tax, "
                    "row_total, base_row_total, row_total_incl_tax, tax_percent, tax_amount, base_tax_amount, "
                    "discount_amount) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    items,
                )
                cur.executemany(
                    f"INSERT INTO {self.table('address')} (parent_id, address_type, firstname, lastname, street, "
                    "postcode, city, country_id, telephone) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    addresses,
                )
                cur.executemany(
                    f"INSERT INTO {self.table('payment')} (parent_id, method) VALUES (%s, %s)",
                    payments,
                )
                cur.executemany(
                    f"INSERT INTO {self.table('sales_order_tax')} (order_id, code, title, percent, amount, "
                    "base_amount, base_real_amount, priority, position, process) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    taxes,
                )
            self._commit()
            done += size
            yield done


def _calculation(options: Any) -> int | None:
    if isinstance(options, dict) and "product_calculations" in options:
        return int(options["product_calculations"])
    return None
