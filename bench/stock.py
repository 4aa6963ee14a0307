"""Stock push benchmark: N SKUs through a real agent (``koppel-agent serve``, gunicorn, signed requests).

Prints:
1. a raw bulk UPDATE baseline: the same final values written straight into the same rows (values loaded into
   a temporary table, then one UPDATE … JOIN per stock table), in one transaction;
2. the agent push of the same figures in batches, its time and the ratio to the baseline;
3. the same push again: rows written (counted by Magento-style changelog triggers; must be 0) and its time.
It exits non-zero when the agent's rows differ from the baseline's or the repeated push wrote anything.

The shop is Magento 2 with MSI in ``salable`` mode by default (the most work per item: reservations, source
item, legacy mirror, configurable parents) and its stock indexers in Update by Schedule, so every row the
agent writes lands in a changelog exactly as in a real shop. ``--version 1`` benchmarks Magento 1 (stock items
plus per-website status rows, counted by the same kind of trigger). The script creates and drops its own
database. Usage: ``./run bench stock [--skus 100000] [--batch 5000] [--version 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymysql
import requests
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.protocol import signed_headers  # noqa: E402
from client.demo.magento_schema import create_schema  # noqa: E402

KEY_ID, SECRET = "bench", secrets.token_urlsafe(36)
CHUNK = 5000
CHILDREN_PER_PARENT = 3
CHILD_SHARE = 10  # 3 of every 10 SKUs are children of a configurable


def log(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sku_of(i: int) -> str:
    return f"BENCH-{i:06d}"


def pushed_qty(i: int) -> Decimal:
    return Decimal(i % 20)  # one in twenty goes out of stock


def reservation_of(i: int) -> Decimal:
    return Decimal(-2) if i % 7 == 0 else Decimal(0)  # open orders on one SKU in seven


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.version = args.version
        self.db = f"koppel_bench_stock_{uuid.uuid4().hex[:8]}"
        self.server = dict(host=args.host, port=args.port, user=args.user, password=args.password)
        self.tmp = Path(tempfile.mkdtemp(prefix="koppel-bench-stock-"))
        self.agent: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def connect(self, **kw: Any) -> pymysql.connections.Connection:
        return pymysql.connect(database=self.db, charset="utf8mb4", autocommit=True, **self.server, **kw)

    # --- the shop ---

    def build(self) -> None:
        n = self.args.skus
        with pymysql.connect(charset="utf8mb4", autocommit=True, **self.server) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        conn = self.connect()
        create_schema(conn, self.version, "")
        m1 = self.version == 1
        with conn.cursor() as cur:
            cols = "(entity_type_id, attribute_set_id, type_id, sku)"
            rows = [(4, 4, "simple", sku_of(i)) for i in range(n)]
            rows += [(4, 4, "configurable", f"PARENT-{p:06d}") for p in range(self._parents())]
            for chunk in _chunks(rows):
                if m1:
                    cur.executemany(
                        f"INSERT INTO catalog_product_entity {cols} VALUES (%s, %s, %s, %s)", chunk
                    )
                else:
                    cur.executemany(
                        "INSERT INTO catalog_product_entity (attribute_set_id, type_id, sku) VALUES (%s, %s, %s)",
                        [r[1:] for r in chunk],
                    )
            cur.execute("INSERT INTO catalog_product_website SELECT entity_id, 1 FROM catalog_product_entity")
            cur.execute(
                "INSERT INTO cataloginventory_stock_item (product_id, stock_id, qty, is_in_stock) "
                "SELECT entity_id, 1, IF(type_id = 'simple', 1, 0), 1 FROM catalog_product_entity"
            )
            cur.execute("SELECT entity_id, sku FROM catalog_product_entity ORDER BY entity_id")
            ids = {sku: pid for pid, sku in cur.fetchall()}
            self.parent_ids = {pid for sku, pid in ids.items() if sku.startswith("PARENT-")}
            links = []
            parent = 0
            for i in range(n):
                if i % CHILD_SHARE < CHILDREN_PER_PARENT:
                    links.append((ids[sku_of(i)], ids[f"PARENT-{parent // CHILDREN_PER_PARENT:06d}"]))
                    parent += 1
            for chunk in _chunks(links):
                cur.executemany(
                    "INSERT INTO catalog_product_super_link (product_id, parent_id) VALUES (%s, %s)", chunk
                )
            if m1:
                cur.execute(
                    "INSERT INTO cataloginventory_stock_status (product_id, website_id, stock_id, qty, stock_status) "
                    "SELECT product_id, 1, 1, qty, is_in_stock FROM cataloginventory_stock_item"
                )
            else:
                cur.execute(
                    "INSERT INTO inventory_source_item (source_code, sku, quantity, status) "
                    "SELECT 'default', sku, 1, 1 FROM catalog_product_entity WHERE type_id = 'simple'"
                )
                reservations = [(1, sku_of(i), reservation_of(i)) for i in range(n) if reservation_of(i)]
                for chunk in _chunks(reservations):
                    cur.executemany(
                        "INSERT INTO inventory_reservation (stock_id, sku, quantity) VALUES (%s, %s, %s)",
                        chunk,
                    )
            self._count_writes(cur)
        self.initial = self.state(conn)
        conn.close()

    def _parents(self) -> int:
        children = sum(1 for i in range(self.args.skus) if i % CHILD_SHARE < CHILDREN_PER_PARENT)
        return -(-children // CHILDREN_PER_PARENT)

    def _count_writes(self, cur: Any) -> None:
        """Changelog triggers on every table the push writes; Magento 2 gets its real Update-by-Schedule ones."""
        if self.version == 2:
            watched = {
                "cataloginventory_stock": ("cataloginventory_stock_item", "product_id"),
                "inventory": ("inventory_source_item", "source_item_id"),
            }
        else:
            watched = {
                "koppel_bench_item": ("cataloginventory_stock_item", "product_id"),
                "koppel_bench_status": ("cataloginventory_stock_status", "product_id"),
            }
        for view, (table, column) in watched.items():
            cur.execute(
                f"CREATE TABLE `{view}_cl` (version_id int unsigned NOT NULL AUTO_INCREMENT, "
                "entity_id int unsigned NOT NULL DEFAULT 0, PRIMARY KEY (version_id)) ENGINE=InnoDB"
            )
            for event in ("INSERT", "UPDATE"):
                cur.execute(
                    f"CREATE TRIGGER `trg_{table}_after_{event.lower()}` AFTER {event} ON `{table}` FOR EACH ROW "
                    f"INSERT INTO `{view}_cl` (entity_id) VALUES (NEW.`{column}`)"
                )
            if self.version == 2:
                cur.execute("UPDATE mview_state SET mode = 'enabled' WHERE view_id = %s", (view,))
        self.changelogs = [f"{view}_cl" for view in watched]

    def writes_so_far(self) -> int:
        with self.connect() as conn, conn.cursor() as cur:
            total = 0
            for table in self.changelogs:
                cur.execute(f"SELECT COUNT(*) FROM `{table}`")
                total += cur.fetchone()[0]
            return total

    def state(self, conn: pymysql.connections.Connection) -> dict[str, Any]:
        """What the push changes, per stock table, as sortable rows."""
        out = {}
        queries = {
            "item": "SELECT product_id, qty, is_in_stock FROM cataloginventory_stock_item ORDER BY product_id"
        }
        if self.version == 2:
            queries["source"] = "SELECT sku, quantity, status FROM inventory_source_item ORDER BY sku"
        else:
            queries["status"] = (
                "SELECT product_id, website_id, qty, stock_status FROM cataloginventory_stock_status "
                "ORDER BY product_id, website_id"
            )
        with conn.cursor() as cur:
            for name, sql in queries.items():
                cur.execute(sql)
                out[name] = cur.fetchall()
        return out

    def pushed_rows(self, state: dict[str, Any]) -> dict[str, Any]:
        """The rows of the pushed SKUs: parents are the agent's extra work, which the baseline does not do."""
        return {
            name: [
                row for row in rows if row[0] not in self.parent_ids and not str(row[0]).startswith("PARENT-")
            ]
            for name, rows in state.items()
        }

    def reset(self) -> None:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE cataloginventory_stock_item i JOIN catalog_product_entity p ON p.entity_id = i.product_id "
                "SET i.qty = IF(p.type_id = 'simple', 1, 0), i.is_in_stock = 1, i.stock_status_changed_auto = 0"
            )
            if self.version == 2:
                cur.execute("UPDATE inventory_source_item SET quantity = 1, status = 1")
                cur.execute("UPDATE indexer_state SET status = 'valid'")
            else:
                cur.execute(
                    "UPDATE cataloginventory_stock_status s JOIN catalog_product_entity p ON p.entity_id = s.product_id "
                    "SET s.qty = IF(p.type_id = 'simple', 1, 0), s.stock_status = 1"
                )
            for table in self.changelogs:
                cur.execute(f"DELETE FROM `{table}`")
            assert self.state(conn) == self.initial, "reset did not restore the starting rows"

    # --- the baseline ---

    def baseline(self) -> float:
        """The same final qty and stock flags, written by hand-made bulk SQL (no rules, no HTTP)."""
        n = self.args.skus
        values = []
        for i in range(n):
            qty = pushed_qty(i)
            stored = qty - reservation_of(i) if self.version == 2 else qty
            values.append((sku_of(i), stored, int(qty > 0)))
        conn = self.connect()
        start = time.perf_counter()
        conn.autocommit(False)
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TEMPORARY TABLE bench_values (sku varchar(64) NOT NULL PRIMARY KEY, "
                "qty decimal(12,4) NOT NULL, flag smallint NOT NULL) ENGINE=InnoDB"
            )
            for chunk in _chunks(values):
                cur.executemany("INSERT INTO bench_values (sku, qty, flag) VALUES (%s, %s, %s)", chunk)
            cur.execute(
                "UPDATE cataloginventory_stock_item i JOIN catalog_product_entity p ON p.entity_id = i.product_id "
                "JOIN bench_values v ON v.sku = p.sku SET i.qty = v.qty, i.is_in_stock = v.flag"
            )
            if self.version == 2:
                cur.execute(
                    "UPDATE inventory_source_item s JOIN bench_values v ON v.sku = s.sku "
                    "SET s.quantity = v.qty, s.status = v.flag WHERE s.source_code = 'default'"
                )
            else:
                cur.execute(
                    "UPDATE cataloginventory_stock_status s JOIN catalog_product_entity p ON p.entity_id = s.product_id "
                    "JOIN bench_values v ON v.sku = p.sku SET s.qty = v.qty, s.stock_status = v.flag"
                )
        conn.commit()
        elapsed = time.perf_counter() - start
        self.baseline_state = self.state(conn)
        conn.close()
        return elapsed

    # --- the agent ---

    def start_agent(self) -> None:
        port = free_port()
        config = {
            "database": {**{k: v for k, v in self.server.items()}, "name": self.db},
            "magento": {"version": self.version, "table_prefix": "", "msi_mode": "salable"},
            "state_dir": str(self.tmp / "state"),
            "keys": [{"id": KEY_ID, "secret": SECRET, "scopes": ["stock:write", "diagnostics:read"]}],
            "limits": {"max_stock_items": self.args.batch, "max_body_bytes": 2_000_000},
        }
        if self.version == 1:
            config["magento"]["session_time_zone"] = "+00:00"
        path = self.tmp / "agent.yml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        exe = shutil.which("koppel-agent", path=str(Path(sys.executable).parent)) or "koppel-agent"
        self.agent = subprocess.Popen(
            [exe, "serve", "--config", str(path), "--bind", f"127.0.0.1:{port}", "--workers", "2"],
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmp / "agent.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base_url + "/v1/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.agent.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit(f"the agent did not come up; see {self.tmp / 'agent.log'}")

    def push(self, label: str) -> tuple[float, dict[str, int]]:
        n, batch = self.args.skus, self.args.batch
        counts: dict[str, int] = {}
        session = requests.Session()
        start = time.perf_counter()
        for first in range(0, n, batch):
            items = [
                {"sku": sku_of(i), "qty": str(pushed_qty(i))} for i in range(first, min(first + batch, n))
            ]
            body = json.dumps({"request_id": f"{label}-{first}", "items": items}).encode()
            headers = signed_headers(KEY_ID, SECRET, "POST", "/v1/stock", None, body)
            headers["Content-Type"] = "application/json"
            r = session.post(self.base_url + "/v1/stock", data=body, headers=headers, timeout=300)
            if r.status_code != 200:
                raise SystemExit(f"push {label} batch at {first}: HTTP {r.status_code} {r.text[:300]}")
            for status, count in r.json()["counts"].items():
                counts[status] = counts.get(status, 0) + count
        return time.perf_counter() - start, counts

    def stop_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            os.killpg(self.agent.pid, signal.SIGTERM)
            try:
                self.agent.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.agent.pid, signal.SIGKILL)
                self.agent.wait()

    def cleanup(self) -> None:
        self.stop_agent()
        with pymysql.connect(autocommit=True, **self.server) as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.db}`")
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- the run ---

    def run(self) -> None:
        a = self.args
        what = "Magento 2, MSI salable, Update by Schedule" if self.version == 2 else "Magento 1"
        log(f"stock bench: {a.skus:,} SKUs in batches of {a.batch:,}; {what}; database {self.db}")
        t = time.perf_counter()
        self.build()
        log(f"  shop built in {time.perf_counter() - t:.1f} s ({self._parents():,} configurable parents)")

        base = self.baseline()
        base_writes = self.writes_so_far()
        log(
            f"baseline (temporary table + bulk UPDATE … JOIN, one transaction): {base:.2f} s, {base_writes:,} rows written"
        )
        self.reset()

        self.start_agent()
        first_time, first_counts = self.push("first")
        first_writes = self.writes_so_far()
        with self.connect() as conn:
            final = self.state(conn)
        same = self.pushed_rows(final) == self.pushed_rows(self.baseline_state)
        log(
            f"agent push (gunicorn, signed HTTP, {-(-a.skus // a.batch)} requests): {first_time:.2f} s, "
            f"{a.skus / first_time:,.0f} SKUs/s, {first_writes:,} rows written, counts {first_counts}"
        )
        log(f"  same item rows as the baseline: {'yes' if same else 'NO'}")
        log(f"ratio agent / baseline: {first_time / base:.1f}x")

        second_time, second_counts = self.push("second")
        second_writes = self.writes_so_far() - first_writes
        log(f"same push again: {second_time:.2f} s, rows written: {second_writes}, counts {second_counts}")
        failures = []
        if not same:
            failures.append("the agent's rows differ from the baseline's")
        if second_writes != 0:
            failures.append("an unchanged push wrote rows")
        if second_counts.get("unchanged", 0) != a.skus:
            failures.append(f"the repeated push did not report all {a.skus:,} SKUs unchanged")
        if failures:
            raise SystemExit("FAIL: " + "; ".join(failures))


def _chunks(rows: list[Any], size: int = CHUNK) -> list[list[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--skus", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=5_000)
    p.add_argument("--version", type=int, choices=(1, 2), default=2)
    p.add_argument("--host", default=os.environ.get("KOPPEL_TEST_MYSQL_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("KOPPEL_TEST_MYSQL_PORT", "3306")))
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="")
    bench = Bench(p.parse_args())
    try:
        bench.run()
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
