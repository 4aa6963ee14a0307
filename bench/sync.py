"""Benchmark: the import engine's per-order step into a large local SnelStart administration.

    ./run bench sync [--orders 10000] [--relaties 100000] [--artikelen 50000] [--small-relaties 10000]

Builds a local administration (``init_local`` + the backend's own create calls), then feeds generated ORDER
dicts straight into the engine's per-order step (``client.engine.OrderImporter.handle``: ledger check,
customer matching/creation, article resolution/creation, sales order creation, ledger and log writes in the
real state file). There is no agent in this loop: HTTP paging is measured by ``bench/feed.py``.

Builds ``--small-relaties`` relaties and ``--artikelen`` artikelen, copies that administration, grows the
original to ``--relaties`` relaties, then measures both sizes in alternation (so that the machine's load falls
on both alike): customer matching alone (read-only) and the whole per-order step. Finally imports ``--orders``
orders in total into the large one and prints orders per second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sqlite3
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from client.config import load_client_config  # noqa: E402
from client.engine import ImportResult, OrderImporter  # noqa: E402
from client.snelstart.base import Adres, NieuwArtikel, NieuweRelatie  # noqa: E402
from client.snelstart.local import LocalBackend  # noqa: E402
from client.snelstart.local_init import init_local  # noqa: E402
from client.state import StateStore  # noqa: E402

CITIES = [
    ("Utrecht", "3511"),
    ("Amsterdam", "1012"),
    ("Rotterdam", "3011"),
    ("Groningen", "9711"),
    ("Gent", "9000"),
]
FIRST = [
    "Jan",
    "Anna",
    "Pieter",
    "Sanne",
    "Lotte",
    "Bram",
    "Eva",
    "Daan",
    "Sophie",
    "Thijs",
    "Zoë",
    "Sébastien",
]
LAST = ["Jansen", "de Vries", "van Dijk", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "Bos"]


def relatie_email(i: int) -> str:
    return f"relatie{i}@example.nl"


def artikel_code(i: int) -> str:
    return f"ART-{i:06d}"


def grow_administration(backend: LocalBackend, relaties: tuple[int, int], artikelen: tuple[int, int]) -> None:
    """Add relaties/artikelen numbered [start, stop) through the backend's own create calls."""
    # Building test data only: durability of each create does not matter here, speed does.
    backend._conn.execute("PRAGMA synchronous = OFF")
    for i in range(*relaties):
        city, pc = CITIES[i % len(CITIES)]
        backend.create_relatie(
            NieuweRelatie(
                naam=f"{FIRST[i % len(FIRST)]} {LAST[(i // 7) % len(LAST)]} {i}",
                vestigingsadres=Adres(
                    straat=f"Kerkstraat {i % 300 + 1}", postcode=f"{pc} AB", plaats=city, land="NL"
                ),
                email=relatie_email(i),
                telefoon="030-1234567",
            )
        )
    for i in range(*artikelen):
        backend.create_artikel(
            NieuwArtikel(
                artikelcode=artikel_code(i),
                omschrijving=f"Artikel {i}",
                omzetgroep_id="1",
                verkoopprijs=Decimal(5 + i % 50) + Decimal("0.95"),
                voorraad_controle=i % 2 == 0,
            )
        )
    backend._conn.execute("PRAGMA synchronous = FULL")


def money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.0001")))


def make_order(n: int, rng: random.Random, relaties: int, artikelen: int, created: dt.datetime) -> dict:
    """An ORDER document (AGENT-API.md) with 1-4 lines, shipping, 21 % VAT, excl.-VAT prices."""
    existing = rng.random() < 0.6
    if existing:
        r = rng.randrange(relaties)
        email, first, last = relatie_email(r), FIRST[r % len(FIRST)], f"{LAST[(r // 7) % len(LAST)]} {r}"
        city, pc = CITIES[r % len(CITIES)]
    else:
        email, first, last = f"nieuw{n}@example.org", rng.choice(FIRST), rng.choice(LAST)
        city, pc = rng.choice(CITIES)
    address = {
        "firstname": first,
        "middlename": None,
        "lastname": last,
        "prefix": None,
        "suffix": None,
        "company": None,
        "street": [f"Kerkstraat {n % 300 + 1}"],
        "postcode": f"{pc} AB",
        "city": city,
        "region": None,
        "country": "NL",
        "telephone": "030-1234567",
        "email": email,
        "vat_id": None,
    }
    lines, subtotal, tax = [], Decimal(0), Decimal(0)
    for k in range(rng.randint(1, 4)):
        # Mostly known articles; now and then one SnelStart does not have yet.
        sku = artikel_code(rng.randrange(artikelen)) if rng.random() < 0.97 else f"NEW-{n}-{k}"
        qty = Decimal(rng.randint(1, 3))
        price = Decimal(rng.randint(2, 60)) + Decimal("0.95")
        row = price * qty
        row_tax = (row * Decimal("0.21")).quantize(Decimal("0.01"))
        subtotal += row
        tax += row_tax
        lines.append(
            {
                "item_id": n * 10 + k,
                "product_id": 1000 + k,
                "sku": sku,
                "order_sku": sku,
                "name": f"Product {sku}",
                "product_type": "simple",
                "qty": money(qty),
                "unit_price": money(price),
                "unit_price_incl_tax": money((price * Decimal("1.21")).quantize(Decimal("0.01"))),
                "row_total": money(row),
                "row_total_incl_tax": money(row + row_tax),
                "tax_percent": "21.0000",
                "tax_amount": money(row_tax),
                "discount_amount": "0.0000",
                "options": [],
                "children": [],
                "product_missing": False,
            }
        )
    ship, ship_tax = Decimal("5.0000"), Decimal("1.0500")
    tax += ship_tax
    grand = subtotal + ship + tax
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "id": n,
        "number": f"{200000000 + n}",
        "store": {"id": 1, "code": "default", "name": "Default Store View", "website_id": 1},
        "created_at": stamp,
        "updated_at": stamp,
        "state": "processing",
        "status": "processing",
        "currency": "EUR",
        "base_currency": "EUR",
        "customer": {
            "id": None if not existing else n,
            "is_guest": not existing,
            "email": email,
            "firstname": first,
            "lastname": last,
            "name": f"{first} {last}",
            "company": None,
            "taxvat": None,
            "group_id": 1,
            "attributes": {},
        },
        "billing_address": address,
        "shipping_address": dict(address),
        "lines": lines,
        "shipping": {
            "method": "flatrate_flatrate",
            "description": "Verzending",
            "amount": money(ship),
            "amount_incl_tax": money(ship + ship_tax),
            "tax_amount": money(ship_tax),
            "discount_amount": "0.0000",
        },
        "discount": {"amount": "0.0000", "description": None, "coupon_code": None},
        "payment": {"method": "checkmo", "title": "Check / Money order", "fee": None},
        "totals": {
            "subtotal": money(subtotal),
            "subtotal_incl_tax": money(subtotal + tax - ship_tax),
            "tax_amount": money(tax),
            "grand_total": money(grand),
            "base_grand_total": money(grand),
            "unexplained_amount": "0.0000",
        },
        "taxes": [{"code": "NL-21", "title": "BTW 21%", "percent": "21.0000", "amount": money(tax)}],
        "customer_note": None,
        "relation": {"parent_id": None, "original_number": None},
        "warnings": [],
    }


def write_config(folder: Path, admin: Path) -> Path:
    profile = {
        "name": "bench",
        "agent": {"url": "http://127.0.0.1:9", "key_id": "bench", "secret": "x" * 40},
        "snelstart": {"backend": "local", "path": str(admin)},
        "orders": {
            "template": "Webshop excl",
            "unique_payment_reference": True,
            "shipping_costs": {"line": "VERZEND"},
            "discount": {"line": "KORTING"},
            "payment_costs": {"line": "BETAALKOSTEN"},
            "default_article": "WEBSHOP",
            "rounding_article": "AFRONDING",
        },
        "articles": {"revenue_group": 1, "processing": "add"},
        "customers": {"matching": "smart", "processing": "add"},
    }
    path = folder / "client.yml"
    data = {"state": str(folder / "state.sqlite"), "profiles": [profile]}
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def match_only(profile: object, backend: LocalBackend, orders: list[dict]) -> float:
    """Seconds per order for customer matching alone: read-only, so no disk syncs blur the figure."""
    from client.rules.customers import match_customer
    from client.rules.errors import OrderFailure

    best = float("inf")
    for _ in range(3):  # best of three: other processes on the machine only ever add time
        start = time.perf_counter()
        for order in orders:
            try:
                match_customer(order, profile.customers, backend)
            except OrderFailure:
                pass
        best = min(best, time.perf_counter() - start)
    return best / len(orders)


def import_batch(importer: OrderImporter, orders: list[dict]) -> float:
    start = time.perf_counter()
    for order in orders:
        importer.handle(order)
    return time.perf_counter() - start


class Side:
    """One administration with its own state file and importer."""

    def __init__(self, folder: Path, admin: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.backend = LocalBackend(admin)
        self.config = load_client_config(write_config(folder, admin))
        self.profile = self.config.profile("bench")
        self.state = StateStore(self.config.state)
        self.result = ImportResult(profile="bench")
        self.importer = OrderImporter(
            self.profile, self.backend, self.state, self.result, zone=self.config.zone
        )
        self.seconds = 0.0
        self.count = 0

    def run(self, orders: list[dict]) -> None:
        self.seconds += import_batch(self.importer, orders)
        self.count += len(orders)

    def close(self) -> None:
        self.state.close()
        self.backend.close()


def copy_sqlite(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000, help="orders imported at --relaties")
    parser.add_argument("--relaties", type=int, default=100_000)
    parser.add_argument("--small-relaties", type=int, default=10_000)
    parser.add_argument("--artikelen", type=int, default=50_000)
    parser.add_argument(
        "--sample", type=int, default=1_000, help="orders timed on each size for the comparison"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="work folder, kept afterwards (default: a temporary one, removed)",
    )
    args = parser.parse_args()

    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        if (args.dir / "administratie.sqlite").exists():
            raise SystemExit(f"{args.dir / 'administratie.sqlite'} exists; give an empty --dir")
        return measure(args, args.dir)
    # The administrations of a full-size run take hundreds of megabytes: a temporary folder goes afterwards.
    with tempfile.TemporaryDirectory(prefix="koppel-bench-sync-") as folder:
        return measure(args, Path(folder))


def measure(args: argparse.Namespace, folder: Path) -> int:
    """Build both administrations in ``folder``, measure, print; 1 when any order failed (figures not valid)."""
    large_admin, small_admin = folder / "administratie.sqlite", folder / "administratie-klein.sqlite"
    print("bench/sync: ORDER dicts fed straight into the engine's per-order step (no agent, no HTTP)")
    print(f"work folder {folder}")

    init_local(large_admin, sample=True)
    with LocalBackend(large_admin) as backend:
        t = time.perf_counter()
        grow_administration(backend, (0, args.small_relaties), (0, args.artikelen))
        print(
            f"built {args.small_relaties} relaties, {args.artikelen} artikelen in {time.perf_counter() - t:.1f} s"
        )
        copy_sqlite(large_admin, small_admin)
        t = time.perf_counter()
        grow_administration(backend, (args.small_relaties, args.relaties), (0, 0))
        print(
            f"grew the original (a copy keeps the small size) to {args.relaties} relaties in {time.perf_counter() - t:.1f} s"
        )

    small, large = Side(folder / "klein", small_admin), Side(folder / "groot", large_admin)
    rng = random.Random(20261203)
    created = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    ids = iter(range(1, 10**9))

    def orders(count: int, relaties: int) -> list[dict]:
        return [make_order(next(ids), rng, relaties, args.artikelen, created) for _ in range(count)]

    # Both sizes are measured in alternation, so that the load of the machine falls on both alike.
    match_small = match_large = float("inf")
    probe_small, probe_large = orders(500, args.small_relaties), orders(500, args.relaties)
    for _ in range(3):
        match_small = min(match_small, match_only(small.profile, small.backend, probe_small))
        match_large = min(match_large, match_only(large.profile, large.backend, probe_large))
    chunk = 100
    for _ in range(0, args.sample, chunk):
        small.run(orders(chunk, args.small_relaties))
        large.run(orders(chunk, args.relaties))
    per_small = small.seconds / small.count * 1000
    per_large = large.seconds / large.count * 1000

    rest = max(args.orders - large.count, 0)
    large.run(orders(rest, args.relaties))
    total_seconds, total = large.seconds, large.count

    for label, side in (("small", small), ("large", large)):
        if side.result.failed:
            print(f"{label}: {side.result.failed} orders failed, e.g. {side.result.failures[:3]}")
    print()
    print("customer matching alone (smart mode, read-only, best of 3 over 500 orders):")
    print(f"  at {args.small_relaties:>7} relaties: {match_small * 1e6:7.1f} µs per order")
    print(f"  at {args.relaties:>7} relaties: {match_large * 1e6:7.1f} µs per order")
    print(f"  ratio: {match_large / match_small:.2f}  (must not grow with the number of relaties)")
    print("whole per-order step (matching, customer/article creation, the order, ledger, log, disk syncs):")
    print(f"  at {args.small_relaties:>7} relaties: {per_small:7.2f} ms per order  ({small.count} orders)")
    print(
        f"  at {args.relaties:>7} relaties: {per_large:7.2f} ms per order  ({small.count} orders, alternating)"
    )
    print(f"  ratio: {per_large / per_small:.2f}")
    print(
        f"import of {total} orders at {args.relaties} relaties / {args.artikelen} artikelen: "
        f"{total_seconds:.1f} s = {total / total_seconds:.1f} orders/s ({total_seconds / total * 1000:.2f} ms per order)"
    )
    r = large.result
    print(
        f"  imported {r.imported}, failed {r.failed}; customers matched {r.customers_matched}, "
        f"created {r.customers_created}; articles created {r.articles_created}"
    )
    small.close()
    large.close()
    if small.result.failed or large.result.failed:
        print("FAILED: orders failed, so the figures above do not measure complete imports")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
