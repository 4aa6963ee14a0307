"""Benchmark of the order feed: a generated Magento 2 shop, the agent under gunicorn, the whole feed paged.

    ./run bench feed [--orders 200000] [--limit 500] [--host 127.0.0.1] [--port 3306] [--user root]

Prints the time to page every order through the agent (signed HTTP), the time of the same keyset and
related-row queries run directly with PyMySQL (the floor), their ratio, the first and last page times and
the SQL statements per page. The generated database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pymysql
import pymysql.cursors
import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent import orders, protocol  # noqa: E402
from agent.db import Magento  # noqa: E402
from client.demo.shop import Shop  # noqa: E402

SECRET = "bench-secret-" + "x" * 40
START = "2000-01-01T00:00:00Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(args: argparse.Namespace, database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=args.host,
        port=args.port,
        user=args.user,
        password=args.password,
        database=database,
        charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
    )


def generate(args: argparse.Namespace, database: str) -> float:
    began = time.perf_counter()
    conn = connect(args, database)
    shop = Shop.install(conn, 2, "")
    last = 0.0
    for done in shop.bulk_orders(args.orders, lines=3, batch=2000):
        if time.perf_counter() - last > 10:
            print(f"  generated {done:,} orders", flush=True)
            last = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("ANALYZE TABLE sales_order, sales_order_item, sales_order_address")
        cur.fetchall()
    conn.close()
    return time.perf_counter() - began


def start_agent(
    args: argparse.Namespace, database: str, workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    config = {
        "database": {"host": args.host, "port": args.port, "name": database, "user": args.user},
        "magento": {"version": 2, "table_prefix": ""},
        "settle_seconds": 0,
        "state_dir": str(workdir / "state"),
        "keys": [{"id": "bench", "secret": SECRET, "scopes": ["orders:read"]}],
        "limits": {"max_page_size": args.limit},
    }
    if args.password:
        config["database"]["password"] = args.password
    path = workdir / "agent.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    script = Path(sys.executable).with_name("koppel-agent")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "agent"]
    log = open(workdir / "agent.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [*command, "serve", "--config", str(path), "--bind", f"127.0.0.1:{port}"],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the agent exited:\n{(workdir / 'agent.log').read_text()[-3000:]}")
        try:
            if requests.get(url + "/v1/health", timeout=2).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the agent did not become healthy within 60 s")


class Floor:
    """The same SQL the agent runs for a page, straight through PyMySQL, without building documents."""

    def __init__(self, args: argparse.Namespace, database: str) -> None:
        self.conn = connect(args, database)
        self.conn.autocommit(False)
        with self.conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
        self.mage = Magento(2, "", "legacy", "default", "salable")

    def page(self, after: orders.Position, limit: int) -> list[dict]:
        conn, mage = self.conn, self.mage
        conn.rollback()
        until = orders.settled_until(conn, 0)
        with conn.cursor() as cur:
            cur.execute(*orders.page_query(mage, after, limit, until, None))
            rows = cur.fetchall()[:limit]
            if rows:
                loaded = {}
                for kind, (sql, params) in orders.related_queries(
                    mage, [r["entity_id"] for r in rows]
                ).items():
                    cur.execute(sql, params)
                    loaded[kind] = cur.fetchall()
                cur.execute(
                    *orders.products_query(
                        mage, {i["product_id"] for i in loaded["items"] if i["product_id"]}
                    )
                )
                cur.fetchall()
                customers = {r["customer_id"] for r in rows if r["customer_id"]}
                if customers:
                    cur.execute(*orders.attributes_query(mage, customers))
                    cur.fetchall()
        conn.rollback()
        return list(rows)


def page_through(url: str, floor: Floor, limit: int) -> tuple[list[float], list[float], list[float], int]:
    """Page the whole feed through the agent; right after each page, the floor reads the same page.

    Interleaving keeps both measurements under the same machine load (the test machine is shared). The
    agent's time is the signed request until the whole answer is received; the client's JSON parsing of it
    is timed apart.
    """
    session = requests.Session()
    params: list[tuple[str, str]] = [("created_from", START), ("limit", str(limit))]
    position = orders.position_from(orders.parse_time(START))
    agent_times: list[float] = []
    floor_times: list[float] = []
    parse_times: list[float] = []
    seen: set[int] = set()
    served = 0
    while True:
        t0 = time.perf_counter()
        headers = protocol.signed_headers("bench", SECRET, "GET", "/v1/orders", params)
        answer = session.get(url + "/v1/orders", params=params, headers=headers, timeout=120)
        if answer.status_code != 200:
            raise SystemExit(f"agent answered {answer.status_code}: {answer.text[:500]}")
        agent_times.append(time.perf_counter() - t0)
        t_parse = time.perf_counter()
        body = answer.json()
        parse_times.append(time.perf_counter() - t_parse)
        t1 = time.perf_counter()
        rows = floor.page(position, limit)
        floor_times.append(time.perf_counter() - t1)
        if [r["entity_id"] for r in rows] != [o["id"] for o in body["orders"]]:
            raise SystemExit("the floor read other orders than the agent served")
        served += len(body["orders"])
        seen.update(o["id"] for o in body["orders"])
        if not body["has_more"]:
            break
        params = [("after", body["next_cursor"]), ("limit", str(limit))]
        position = orders.decode_cursor(body["next_cursor"])
    if served != len(seen):
        raise SystemExit(f"an order was served twice: {served} served, {len(seen)} distinct")
    return agent_times, floor_times, parse_times, served


def queries_per_page(args: argparse.Namespace, database: str) -> list[int]:
    """Statements the feed's own page function sends, for a few pages spread over the feed."""
    conn = connect(args, database)
    conn.autocommit(False)
    with conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
    mage = Magento(2, "", "legacy", "default", "salable")
    counts: list[int] = []
    after = orders.BEGINNING
    for limit in (1, args.limit, 7, args.limit):
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
            before = int(cur.fetchone()["Value"])
        page = orders.fetch_page(conn, mage, after=after, limit=limit, settle_seconds=0)
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
            counts.append(int(cur.fetchone()["Value"]) - before - 1)
        after = orders.decode_cursor(page.next_cursor)
    conn.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200_000, help="orders to generate (default 200000)")
    parser.add_argument("--limit", type=int, default=500, help="page size (default 500)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3306)
    parser.add_argument("--user", default="root")
    parser.add_argument("--password", default=os.environ.get("KOPPEL_BENCH_DB_PASSWORD", ""))
    args = parser.parse_args()
    if args.orders < 1 or args.limit < 1:
        parser.error("--orders and --limit must be at least 1")

    database = f"koppel_bench_feed_{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="koppel-bench-feed-"))
    admin = connect(args)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    proc = None
    try:
        print(f"generating {args.orders:,} Magento 2 orders (3 lines each) in {database} ...", flush=True)
        generated = generate(args, database)
        print(f"  done in {generated:.1f} s")
        proc, url = start_agent(args, database, workdir)
        floor = Floor(args, database)
        times, floor_times, parse_times, served = page_through(url, floor, args.limit)
        floor.conn.close()
        agent_total, floor_total = sum(times), sum(floor_times)
        counts = queries_per_page(args, database)
        if served != args.orders:
            raise SystemExit(f"expected {args.orders} orders, the agent served {served}")
        print()
        print(f"orders served            {served:,} in {len(times):,} pages of up to {args.limit}")
        print(f"through the agent (HTTP) {agent_total:8.2f} s   {served / agent_total:10,.0f} orders/s")
        print(f"same queries, PyMySQL    {floor_total:8.2f} s   {served / floor_total:10,.0f} orders/s")
        print(f"ratio agent / floor      {agent_total / floor_total:8.2f}   (target <= 2)")
        parse_total = sum(parse_times)
        print(
            f"client JSON parsing      {parse_total:8.2f} s   (ratio with it {(agent_total + parse_total) / floor_total:.2f})"
        )
        print(f"first page               {times[0] * 1000:8.1f} ms")
        print(f"last page                {times[-1] * 1000:8.1f} ms")
        print(
            f"median page              {statistics.median(times) * 1000:8.1f} ms (floor {statistics.median(floor_times) * 1000:.1f} ms)"
        )
        print(f"SQL statements per page  {counts} (page sizes 1, {args.limit}, 7, {args.limit})")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
