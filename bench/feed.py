"""Benchmark of the order feed: a generated Magento 2 shop, the agent under gunicorn, the whole feed paged.

    ./run bench feed [--orders 200000] [--limit 500] [--host 127.0.0.1] [--port 3306] [--user root]

Prints the time to page every order through the agent (signed HTTP), the time of the same keyset and
related-row queries run directly with PyMySQL (the floor), their ratio, the first and last page times (and
the means of the first and last tenth of the pages, which one slow page cannot tip) and the SQL statements
of a whole request per page size. The orders carry what Magento 2 stores with them (product_options JSON on
every item, payment additional_information, a registered customer with a klantcode on every other order),
so the agent decodes what it decodes in a real shop. The generated database is dropped at the end.
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
from typing import Any

import pymysql
import pymysql.cursors
import requests
import yaml
from pymysql.constants import COMMAND

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent import db as agent_db  # noqa: E402
from agent import orders, protocol  # noqa: E402
from agent.app import create_app  # noqa: E402
from agent.config import AgentConfig, config_from_dict  # noqa: E402
from agent.db import Magento  # noqa: E402
from client.demo.shop import Shop  # noqa: E402

SECRET = "bench-secret-" + "x" * 40
START = "2000-01-01T00:00:00Z"
CUSTOMERS = 50


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
    make_realistic(shop)
    with conn.cursor() as cur:
        cur.execute("ANALYZE TABLE sales_order, sales_order_item, sales_order_address, sales_order_payment")
        cur.fetchall()
    conn.close()
    return time.perf_counter() - began


def make_realistic(shop: Shop) -> None:
    """What Magento 2 stores besides the bulk rows, so the agent decodes what it decodes in a real shop.

    Every item gets the product_options JSON Magento writes for a simple product (info_buyRequest), every
    payment its additional_information, and every other order a registered customer (out of 50, each with
    a klantcode), so the customer attribute query runs on every page.
    """
    customers = [
        shop.customer(f"klant{i}@example.nl", "Klant", f"Nummer {i}", attributes={"klantcode": f"K{i:04d}"})
        for i in range(CUSTOMERS)
    ]
    if customers != list(range(customers[0], customers[0] + CUSTOMERS)):
        raise SystemExit(f"expected {CUSTOMERS} consecutive customer ids, got {customers}")
    with shop.conn.cursor() as cur:
        cur.execute(
            'UPDATE sales_order_item SET product_options = CONCAT(\'{"info_buyRequest":{"uenc":'
            '"aHR0cHM6Ly93aW5rZWwuZXhhbXBsZS5ubC9hcnRpa2VsLmh0bWw,","product":"\', product_id, '
            '\'","selected_configurable_option":"","related_product":"","item":"\', '
            'product_id, \'","qty":"\', FLOOR(qty_ordered), \'"}}\')'
        )
        cur.execute(
            "UPDATE sales_order_payment SET additional_information = "
            '\'{"method_title":"Check \\\\/ Money order"}\''
        )
        cur.execute(
            "UPDATE sales_order SET customer_id = %s + MOD(entity_id, %s), customer_is_guest = 0, "
            "customer_group_id = 1 WHERE MOD(entity_id, 2) = 0",
            (customers[0], CUSTOMERS),
        )
    shop.conn.commit()


def agent_config(args: argparse.Namespace, database: str, workdir: Path) -> dict[str, Any]:
    config: dict[str, Any] = {
        "database": {"host": args.host, "port": args.port, "name": database, "user": args.user},
        "magento": {"version": 2, "table_prefix": ""},
        "settle_seconds": 0,
        "state_dir": str(workdir / "state"),
        "keys": [{"id": "bench", "secret": SECRET, "scopes": ["orders:read"]}],
        "limits": {"max_page_size": args.limit},
    }
    if args.password:
        config["database"]["password"] = args.password
    return config


def start_agent(config: dict[str, Any], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    path = workdir / "agent.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = open(workdir / "agent.log", "wb")  # noqa: SIM115 - lives as long as the process
    # `python -m agent` from the checkout, so the agent measured is this checkout's code (the installed
    # koppel-agent script would run whatever koppel the environment holds).
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "serve", "--config", str(path), "--bind", f"127.0.0.1:{port}"],
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
    """The same SQL the agent runs for a page, straight through PyMySQL, without building documents.

    The connection is made by the agent's own ``agent.db.connect`` (same charset, cursor class, session
    zone and TLS choice), so the two differ only in what the agent does on top of the queries.
    """

    def __init__(self, cfg: AgentConfig) -> None:
        self.conn = agent_db.connect(cfg, version=2)
        self.mage = Magento(2, "", "legacy", "default", "salable")

    def page(self, after: orders.Position, limit: int) -> list[dict[str, Any]]:
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
    # Untimed: a worker's first request also detects Magento; fresh connections reach either worker.
    for warm in [requests.Session() for _ in range(4)] + [session]:
        warm_params = [("limit", "1")]
        headers = protocol.signed_headers("bench", SECRET, "GET", "/v1/orders", warm_params)
        if warm.get(url + "/v1/orders", params=warm_params, headers=headers, timeout=60).status_code != 200:
            raise SystemExit("the agent does not answer /v1/orders")
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


class StatementCounter:
    """Counts the SQL statements (COM_QUERY packets: queries, ROLLBACK, SET ...) every PyMySQL connection of
    this process sends, by wrapping the one method all of them go through."""

    def __init__(self) -> None:
        self.count = 0
        self._original = pymysql.connections.Connection._execute_command

    def __enter__(self) -> StatementCounter:
        original = self._original

        def counting(conn: pymysql.connections.Connection, command: int, sql: Any) -> Any:
            if command == COMMAND.COM_QUERY:
                self.count += 1
            return original(conn, command, sql)

        pymysql.connections.Connection._execute_command = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        pymysql.connections.Connection._execute_command = self._original  # type: ignore[method-assign]


def statements_per_request(cfg: AgentConfig, limit: int) -> tuple[int, list[tuple[int, int, bool]]]:
    """SQL statements of whole /v1/orders requests (connect, auth, page, teardown) in an agent app in this
    process: (the first request, which also detects Magento; [(page size, statements, whether the page
    holds only guests, which need no customer attribute query)] of the later ones)."""
    client = create_app(cfg).test_client()
    params: list[tuple[str, str]] = [("created_from", START), ("limit", "1")]
    first = 0
    counts: list[tuple[int, int, bool]] = []
    for index, size in enumerate((1, limit, 7, limit, 1)):
        params = [p for p in params if p[0] != "limit"] + [("limit", str(size))]
        headers = protocol.signed_headers("bench", SECRET, "GET", "/v1/orders", params)
        with StatementCounter() as counter:
            answer = client.get("/v1/orders", query_string=params, headers=headers)
        if answer.status_code != 200:
            raise SystemExit(f"agent answered {answer.status_code}: {answer.get_data(as_text=True)[:500]}")
        body = answer.get_json()
        if len(body["orders"]) != size:
            raise SystemExit(f"asked for {size} orders, got {len(body['orders'])}")
        if index == 0:
            first = counter.count
        else:
            guests_only = all(o["customer"]["is_guest"] for o in body["orders"])
            counts.append((size, counter.count, guests_only))
        params = [("after", body["next_cursor"])]
    return first, counts


def tenth_means(times: list[float]) -> tuple[float, float]:
    """Mean page time of the first and of the last tenth of the pages (at least one page each)."""
    n = max(1, len(times) // 10)
    return statistics.fmean(times[:n]), statistics.fmean(times[-n:])


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
    if args.orders < 2 * args.limit + 9:
        parser.error(f"--orders must be at least {2 * args.limit + 9} (two full pages and a few more)")

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
        config = agent_config(args, database, workdir)
        cfg = config_from_dict(config, workdir)
        proc, url = start_agent(config, workdir)
        floor = Floor(cfg)
        times, floor_times, parse_times, served = page_through(url, floor, args.limit)
        floor.conn.close()
        agent_total, floor_total = sum(times), sum(floor_times)
        first_request, counts = statements_per_request(cfg, args.limit)
        if served != args.orders:
            raise SystemExit(f"expected {args.orders} orders, the agent served {served}")
        early, late = tenth_means(times)
        floor_early, floor_late = tenth_means(floor_times)
        tenth = max(1, len(times) // 10)
        print()
        print(f"orders served            {served:,} in {len(times):,} pages of up to {args.limit}")
        print(f"through the agent (HTTP) {agent_total:8.2f} s   {served / agent_total:10,.0f} orders/s")
        print(f"same queries, PyMySQL    {floor_total:8.2f} s   {served / floor_total:10,.0f} orders/s")
        print(f"ratio agent / floor      {agent_total / floor_total:8.2f}   (target <= 2)")
        parse_total = sum(parse_times)
        print(
            f"client JSON parsing      {parse_total:8.2f} s   (ratio with it {(agent_total + parse_total) / floor_total:.2f})"
        )
        print(f"first page               {times[0] * 1000:8.1f} ms (floor {floor_times[0] * 1000:.1f} ms)")
        print(f"last page                {times[-1] * 1000:8.1f} ms (floor {floor_times[-1] * 1000:.1f} ms)")
        print(
            f"first / last {tenth} pages    {early * 1000:8.1f} / {late * 1000:.1f} ms mean "
            f"(floor {floor_early * 1000:.1f} / {floor_late * 1000:.1f} ms)"
        )
        print(
            f"median page              {statistics.median(times) * 1000:8.1f} ms (floor {statistics.median(floor_times) * 1000:.1f} ms)"
        )
        shown = ", ".join(
            f"{n} at limit {size}" + (" (guests only)" if guests else "") for size, n, guests in counts
        )
        print(f"SQL statements / request {shown}")
        print(
            f"                         (the first request of a worker also detects Magento: {first_request})"
        )
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
