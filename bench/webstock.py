"""Benchmark: web stock for a large shop — compute from SnelStart and push through the agent.

    ./run bench webstock [--articles 50000] [--open-orders 5000] [--stock msi|legacy] [--changed 500]

Builds a Magento 2 database in MariaDB with ``--articles`` products (stock item, and with MSI a source item, at
0), a local SnelStart administration with the same number of stock-controlled articles and ``--open-orders``
unprocessed web orders (1–3 lines each), and starts the agent under gunicorn. Then times the client's
``export_stock`` three times against the real state file:

1. first run: read SnelStart, compute, fetch Magento's SKU list, push every figure (a full push);
2. nothing changed: read and compute again, compare with what was sent, send nothing;
3. ``--changed`` articles get new stock in SnelStart: only those are sent.

The reading of SnelStart and the computation are also timed on their own. Prints the figures; asserts nothing
about speed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from client.agent_client import AgentClient  # noqa: E402
from client.config import load_client_config  # noqa: E402
from client.demo.magento_schema import create_schema  # noqa: E402
from client.demo.mariadb import machine_or_private  # noqa: E402
from client.snelstart.base import NieuwArtikel, NieuweVerkooporder, OrderRegel  # noqa: E402
from client.snelstart.local import LocalBackend  # noqa: E402
from client.snelstart.local_init import init_local  # noqa: E402
from client.state import StateStore  # noqa: E402
from client.webstock import export_stock, read_web_stock  # noqa: E402
from client.wording import count  # noqa: E402
from tests.client.conftest import AgentServer, MagentoDB, client_profile, write_client_config  # noqa: E402

CHUNK = 2000


def sku(i: int) -> str:
    return f"WS-{i:06d}"


def build_magento(conn, articles: int, msi: bool) -> None:  # noqa: ANN001 - a PyMySQL connection
    create_schema(conn, 2, "")
    with conn.cursor() as cur:
        for start in range(0, articles, CHUNK):
            rows = [(4, "simple", sku(i)) for i in range(start, min(start + CHUNK, articles))]
            cur.executemany(
                "INSERT INTO catalog_product_entity (attribute_set_id, type_id, sku) VALUES (%s, %s, %s)",
                rows,
            )
        cur.execute(
            "INSERT INTO catalog_product_website (product_id, website_id) SELECT entity_id, 1 FROM catalog_product_entity"
        )
        cur.execute(
            "INSERT INTO cataloginventory_stock_item (product_id, stock_id, website_id, qty, is_in_stock) "
            "SELECT entity_id, 1, 0, 0, 0 FROM catalog_product_entity"
        )
        if msi:
            cur.execute(
                "INSERT INTO inventory_source_item (source_code, sku, quantity, status) "
                "SELECT 'default', sku, 0, 0 FROM catalog_product_entity"
            )
    conn.commit()


def build_snelstart(path: Path, articles: int, open_orders: int, rng: random.Random) -> None:
    init_local(path, sample=True)
    with LocalBackend(path) as backend:
        backend._conn.execute("PRAGMA synchronous = OFF")  # building data only: speed, not durability
        groep = backend.omzetgroepen()[0].id
        with backend.batch():
            ids = []
            for i in range(articles):
                made = backend.create_artikel(
                    NieuwArtikel(sku(i), f"Artikel {i}", groep, Decimal("9.95"), True)
                )
                ids.append(made.id)
                backend.set_technische_voorraad(sku(i), Decimal(rng.randint(0, 200)))
        klant = backend.relaties_by_code(4)[0].id
        sjabloon = next(s.id for s in backend.sjablonen() if s.omschrijving == "Webshop")
        with backend.batch():
            for n in range(open_orders):
                regels = [
                    OrderRegel(rng.choice(ids), "", Decimal(rng.randint(1, 4)), Decimal("9.95"))
                    for _ in range(rng.randint(1, 3))
                ]
                backend.create_verkooporder(
                    NieuweVerkooporder(
                        relatie_id=klant,
                        datum=dt.date(2026, 12, 3),
                        sjabloon_id=sjabloon,
                        prijs_incl_btw=True,
                        omschrijving=None,
                        betalingskenmerk=f"{200000000 + n}",
                        regels=regels,
                    )
                )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=50_000)
    parser.add_argument("--open-orders", type=int, default=5_000)
    parser.add_argument("--stock", choices=("msi", "legacy"), default="msi")
    parser.add_argument("--changed", type=int, default=500, help="articles changed before the third run")
    args = parser.parse_args()
    if args.articles < 1 or args.open_orders < 0:
        parser.error("--articles must be at least 1 and --open-orders at least 0")
    if not 0 <= args.changed <= args.articles:
        parser.error(f"--changed must be between 0 and --articles ({args.articles}), not {args.changed}")
    rng = random.Random(6)

    server = machine_or_private()
    database = server.create_database("koppel_bench")
    agent_server = None
    try:
        with tempfile.TemporaryDirectory(prefix="koppel-bench-webstock-") as tmp:
            folder = Path(tmp)
            started = time.perf_counter()
            conn = server.connect(database)
            build_magento(conn, args.articles, args.stock == "msi")
            admin = folder / "administratie.sqlite"
            build_snelstart(admin, args.articles, args.open_orders, rng)
            print(
                f"built: {args.articles} products and articles, {args.open_orders} open web orders "
                f"(Magento 2, {args.stock}) in {time.perf_counter() - started:.1f} s"
            )
            agent_server = AgentServer(
                MagentoDB(server, database, 2),
                folder / "agent",
                extra={"magento": {"version": 2, "table_prefix": "", "stock": args.stock}},
            )
            agent_server.start()
            config = load_client_config(
                write_client_config(folder, [client_profile(agent_server.url, admin)])
            )
            profile = config.profile("shop")
            state = StateStore(folder / "koppel-state.sqlite")
            agent = AgentClient(agent_server.url, agent_server.key_id, agent_server.secret, timeout=300)

            with LocalBackend(admin) as backend:
                t = time.perf_counter()
                web, _, _ = read_web_stock(backend, "artikelcode", "never")
                print(
                    f"read SnelStart + compute: {len(web.by_sku)} figures in {time.perf_counter() - t:.2f} s"
                )

                def timed(label: str) -> None:
                    t = time.perf_counter()
                    r = export_stock(config, profile, backend=backend, state=state, agent=agent)
                    print(
                        f"{label}: {time.perf_counter() - t:.2f} s — {r.sent} sent in {count(r.batches, 'batch', 'batches')} "
                        f"({r.updated} updated, {r.unchanged} unchanged), full push: {r.full}"
                    )

                timed("first run (full push)")
                timed("second run, nothing changed")
                for i in rng.sample(range(args.articles), args.changed):
                    backend.set_technische_voorraad(sku(i), Decimal(rng.randint(300, 400)))
                timed(f"third run, {args.changed} articles changed")
            agent.close()
            state.close()
            conn.close()
    finally:
        if agent_server is not None:
            agent_server.stop()
        server.drop_database(database)
        if server.private is not None:
            server.private.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
