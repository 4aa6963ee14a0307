"""Paging the feed: keyset order, settle time against late commits, created_from, store filter, query counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pymysql
import pytest

from agent import orders
from agent.db import Magento
from client.demo.shop import Shop

VARIANTS = [(1, ""), (1, "mage_"), (2, ""), (2, "mage_")]
IDS = ["m1", "m1-mage_", "m2", "m2-mage_"]


class Feed:
    """The agent's connection with a clock that the test moves (MariaDB's per-session ``timestamp``)."""

    def __init__(self, conn: pymysql.connections.Connection, mage: Magento) -> None:
        self.conn, self.mage = conn, mage

    def set_clock(self, unix_seconds: int) -> None:
        with self.conn.cursor() as cur:
            cur.execute("SET timestamp = %s", (unix_seconds,))

    def page(
        self,
        after: orders.Position = orders.BEGINNING,
        limit: int = 100,
        settle: int = 0,
        store: str | None = None,
    ) -> orders.Page:
        return orders.fetch_page(
            self.conn, self.mage, after=after, limit=limit, settle_seconds=settle, store=store
        )

    def questions(self) -> int:
        with self.conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Questions'")
            return int(cur.fetchone()["Value"])


@pytest.fixture(params=VARIANTS, ids=IDS)
def shop(request: pytest.FixtureRequest, mariadb, database: str) -> Iterator[Shop]:  # noqa: ANN001
    version, prefix = request.param
    conn = mariadb.connect(database, cursorclass=pymysql.cursors.DictCursor)
    yield Shop.install(conn, version, prefix)
    conn.close()


@pytest.fixture
def feed(shop: Shop, mariadb, database: str) -> Iterator[Feed]:  # noqa: ANN001
    conn = mariadb.connect(database, cursorclass=pymysql.cursors.DictCursor)
    conn.autocommit(False)
    if shop.version == 2:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
    yield Feed(conn, Magento(shop.version, shop.prefix, "legacy", "default", "salable"))
    conn.close()


def drain(feed: Feed, start: orders.Position, limit: int, settle: int = 0) -> list[int]:
    served, after = [], start
    for _ in range(10_000):
        page = feed.page(after, limit=limit, settle=settle)
        served += [o["id"] for o in page.orders]
        assert len(page.orders) <= limit
        after = orders.decode_cursor(page.next_cursor)
        if not page.has_more:
            return served
    raise AssertionError("the feed never ended")


def test_thousand_orders_in_one_second_paged_by_seven(shop: Shop, feed: Feed) -> None:
    second = shop.db_now().replace(microsecond=0) - timedelta(hours=1)
    for _ in shop.bulk_orders(1000, lines=1, start=second, per_second=1000, products=5):
        pass
    # A few neighbours in the seconds around it, inserted out of id order.
    later = shop.order(items=[{"sku": "BULK-00000"}], created_at=second + timedelta(seconds=1))
    earlier = shop.order(items=[{"sku": "BULK-00000"}], created_at=second - timedelta(seconds=1))
    served = drain(feed, orders.BEGINNING, limit=7)
    assert len(served) == len(set(served)) == 1002
    assert served[0] == earlier and served[-1] == later
    assert served[1:-1] == sorted(served[1:-1])  # within the second: by entity_id


def test_late_commit_with_earlier_created_at_is_served_exactly_once(
    shop: Shop,
    feed: Feed,
    mariadb,
    database: str,  # noqa: ANN001
) -> None:
    shop.product("MUG")
    now = int(shop._one("SELECT UNIX_TIMESTAMP()"))
    clock = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
    settle = 60
    # Magento stamps created_at when the order's transaction begins; this one stays open for a while.
    slow = Shop(mariadb.connect(database, cursorclass=pymysql.cursors.DictCursor), shop.version, shop.prefix)
    slow.conn.begin()  # Shop commits only in autocommit-off sessions; this transaction stays open
    late = slow.order(items=[{"sku": "MUG"}], created_at=clock - timedelta(seconds=10), number="200000001")
    quick = shop.order(items=[{"sku": "MUG"}], created_at=clock - timedelta(seconds=5), number="200000002")

    # Without a settle time the quick order is served at once and the cursor passes the late one by.
    feed.set_clock(now)
    eager = feed.page(settle=0)
    assert [o["id"] for o in eager.orders] == [quick]

    # With it, nothing that young is served yet ...
    first = feed.page(settle=settle)
    assert first.orders == [] and not first.has_more
    assert first.settled_until == datetime.fromtimestamp(now - settle, UTC)
    slow.conn.commit()
    slow.conn.close()
    # ... and once the settle time has passed, both come, in creation order, each once.
    feed.set_clock(now + settle + 1)
    second = feed.page(orders.decode_cursor(first.next_cursor), settle=settle)
    assert [o["id"] for o in second.orders] == [late, quick]
    third = feed.page(orders.decode_cursor(second.next_cursor), settle=settle)
    assert third.orders == [] and third.next_cursor == second.next_cursor
    assert eager.orders[0]["id"] not in [late]  # the eager feed would never have served `late`
    missed = feed.page(orders.decode_cursor(eager.next_cursor), settle=0)
    assert late not in [o["id"] for o in missed.orders]


def test_created_from_and_unchanged_cursor_when_nothing_new(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    base = datetime(2026, 11, 1, 12, 0, 0)
    before = shop.order(items=[{"sku": "MUG"}], created_at=base - timedelta(seconds=1))
    exact = shop.order(items=[{"sku": "MUG"}], created_at=base)
    after = shop.order(items=[{"sku": "MUG"}], created_at=base + timedelta(hours=2))
    # 13:00 in Amsterdam (winter time) is 12:00 UTC.
    start = orders.position_from(orders.parse_time("2026-11-01T13:00:00+01:00"))
    page = feed.page(start)
    assert [o["id"] for o in page.orders] == [exact, after] and before not in [o["id"] for o in page.orders]
    assert page.orders[0]["created_at"] == "2026-11-01T12:00:00Z"
    assert page.has_more is False
    empty = orders.fetch_page(
        feed.conn, feed.mage, after=orders.decode_cursor(page.next_cursor), limit=5, settle_seconds=0,
        asked_cursor=page.next_cursor,
    )  # fmt: skip
    assert empty.orders == [] and empty.next_cursor == page.next_cursor
    # No order at or after created_from: the cursor is the position of created_from itself.
    late = orders.position_from(orders.parse_time("2030-01-01T00:00:00Z"))
    nothing = feed.page(late)
    assert nothing.orders == [] and orders.decode_cursor(nothing.next_cursor) == late


def test_fractional_created_from_skips_the_same_second(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    base = datetime(2026, 11, 1, 12, 0, 0)
    shop.order(items=[{"sku": "MUG"}], created_at=base)
    nxt = shop.order(items=[{"sku": "MUG"}], created_at=base + timedelta(seconds=1))
    page = feed.page(orders.position_from(orders.parse_time("2026-11-01T12:00:00.500Z")))
    assert [o["id"] for o in page.orders] == [nxt]


def test_store_filter(shop: Shop, feed: Feed) -> None:
    shop.store("be", "België")
    shop.product("MUG")
    nl = shop.order(items=[{"sku": "MUG"}])
    be = shop.order(items=[{"sku": "MUG"}], store="be")
    assert [o["id"] for o in feed.page(store="be").orders] == [be]
    assert [o["id"] for o in feed.page(store="default").orders] == [nl]
    assert orders.store_exists(feed.conn, feed.mage, "be") and not orders.store_exists(
        feed.conn, feed.mage, "xx"
    )


def test_queries_per_page_do_not_grow_with_the_page(shop: Shop, feed: Feed) -> None:
    small, medium = shop.product("TS-S"), shop.product("TS-M")
    parent = shop.product("TS", type_id="configurable", children=[small, medium])
    customers = [shop.customer(f"c{i}@example.nl", attributes={"klantcode": f"K{i}"}) for i in range(3)]
    for i in range(30):
        shop.order(
            items=[
                {
                    "sku": "TS-M",
                    "product_id": parent,
                    "type": "configurable",
                    "price": "20",
                    "children": [{"sku": "TS-M", "product_id": medium}],
                },
                {"sku": "TS-S"},
            ],  # fmt: skip
            customer=customers[i % 3] if i % 4 else None,
        )
    counts = {}
    for limit in (2, 30):  # both hold a guest and a registered customer
        before = feed.questions()
        page = feed.page(limit=limit)
        counts[limit] = feed.questions() - before - 1  # the SHOW itself counts once
        assert len(page.orders) == limit
    # clock, orders, items, products, addresses, payments, taxes, attributes + the two snapshot rollbacks
    assert counts[2] == counts[30] == 10, counts


def test_page_query_uses_the_created_at_index(shop: Shop, feed: Feed) -> None:
    shop.product("MUG")
    for _ in shop.bulk_orders(300, lines=1, products=3):
        pass
    sql, args = orders.page_query(feed.mage, orders.BEGINNING, 50, shop.db_now(), None)
    with feed.conn.cursor() as cur:
        cur.execute("EXPLAIN " + sql, args)
        plan = {row["table"]: row for row in cur.fetchall()}
        cur.execute(f"SHOW INDEX FROM {shop.table('order')}")
        first_column = {
            row["Key_name"]: row["Column_name"] for row in cur.fetchall() if row["Seq_in_index"] == 1
        }
    used = plan["o"]["key"]
    assert used is not None and first_column[used] == "created_at", plan["o"]
    assert "filesort" not in (plan["o"]["Extra"] or "")
