"""The web stock export against a real agent under gunicorn (Magento 2 with MSI in MariaDB) and the local
SnelStart backend: what is sent, what is not, batches, request ids, failures."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from client.agent_client import AgentClient, AgentError
from client.config import TASK_NAMES, load_client_config
from client.runner import run_task
from client.snelstart.base import NieuweVerkooporder, OrderRegel, SnelStartUnavailable
from client.snelstart.local import LocalBackend
from client.state import StateStore
from client.webstock import StockExportError, _Store, export_stock
from tests.agent.test_stock import StockShop
from tests.client.conftest import AgentServer, MagentoDB, client_profile, guest, write_client_config

D = Decimal
T0 = dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC)
IN_MAGENTO = ("1001", "1002", "1003", "1004", "1006")
GIFT_SET = "1005"


class RecordingAgent(AgentClient):
    """The real signed client, keeping the stock bodies it posted."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.posts: list[dict[str, Any]] = []
        self.sku_pages = 0

    def post(self, path: str, json_body: Any) -> Any:
        if path == "/v1/stock":
            self.posts.append(json_body)
        return super().post(path, json_body)

    def get(self, path: str, params: Any = None) -> Any:
        self.sku_pages += path == "/v1/skus"
        return super().get(path, params)


class Clock:
    def __init__(self, start: dt.datetime = T0) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Setup:
    magento: StockShop
    admin: Path
    agent_server: AgentServer
    state: StateStore
    config: Any
    clock: Clock

    @property
    def profile(self) -> Any:
        return self.config.profile("shop")

    def agent(self) -> RecordingAgent:
        s = self.agent_server
        return RecordingAgent(s.url, s.key_id, s.secret)

    def export(self, agent: AgentClient | None = None, backend: LocalBackend | None = None, **kw: Any) -> Any:
        own = backend is None
        backend = backend or LocalBackend(self.admin)
        agent = agent or self.agent()
        try:
            return export_stock(
                self.config,
                self.profile,
                backend=backend,
                state=self.state,
                agent=agent,
                now=self.clock,
                **kw,
            )
        finally:
            if own:
                backend.close()

    def magento_stock(self, *skus: str) -> dict[str, tuple[Decimal | None, Decimal | None]]:
        with self.agent_server.client() as agent:
            items = agent.get("/v1/stock", [("sku", s) for s in skus])["items"]
        return {
            i["sku"]: (
                None if i["qty"] is None else D(i["qty"]),
                None if i["salable_qty"] is None else D(i["salable_qty"]),
            )
            for i in items
        }

    def free(self) -> dict[str, Decimal]:
        with LocalBackend(self.admin) as backend:
            return {a.artikelcode: a.vrije_voorraad for a in backend.stock_artikelen()}

    def web_order(self, lines: list[tuple[str, int]], kenmerk: str) -> str:
        with LocalBackend(self.admin) as backend:
            klant = backend.relaties_by_code(4)[0].id
            sjabloon = next(s for s in backend.sjablonen() if s.omschrijving == "Webshop")
            regels = [
                OrderRegel(backend.artikelen_by_code(code)[0].id, "", D(qty), D("10")) for code, qty in lines
            ]
            made = backend.create_verkooporder(
                NieuweVerkooporder(
                    relatie_id=klant,
                    datum=dt.date(2026, 12, 3),
                    sjabloon_id=sjabloon.id,
                    prijs_incl_btw=True,
                    omschrijving=None,
                    betalingskenmerk=kenmerk,
                    regels=regels,
                )
            )
        return made.id


def stock_products(magento: StockShop, skus: tuple[str, ...] = IN_MAGENTO) -> dict[str, int]:
    """Products with a legacy stock item and an MSI source item at 0, as a fresh Magento 2.3+ shop has them."""
    return {sku: magento.product(sku, qty=0, in_stock=0, source_qty=0) for sku in skus}


@pytest.fixture
def setup(
    magento_db: MagentoDB,
    agent_server: AgentServer,
    local_admin: Path,
    client_config: Callable[..., Any],
    tmp_path: Path,
) -> Iterator[Setup]:
    conn = magento_db.connect()
    magento = StockShop(conn, 2, "")
    stock_products(magento)
    magento.product("MAGENTO-ONLY", qty=7, in_stock=1, source_qty=7)
    # The gift set (SnelStart: a recipe of 1001 + 1002 without stock control) is a bundle here, as in the demo:
    # Magento derives a bundle's salability from its selections, so the agent leaves it alone (not_managed).
    magento.product(GIFT_SET, type_id="bundle", qty=0, in_stock=1)
    state = StateStore(tmp_path / "koppel-state.sqlite")
    yield Setup(magento, local_admin, agent_server, state, client_config(), Clock())
    state.close()
    conn.close()


def test_first_export_pushes_every_stock_article_that_magento_has(setup: Setup) -> None:
    free = setup.free()
    setup.web_order([("1001", 3), ("1002", 2)], "100000001")
    setup.web_order([("1001", 1)], "100000002")
    agent = setup.agent()
    result = setup.export(agent)
    expected = {
        "1001": free["1001"] - 4,
        "1002": free["1002"] - 2,
        "1003": free["1003"],
        "1004": free["1004"],
        "1006": max(free["1006"], D(0)),
    }
    shown = setup.magento_stock(*IN_MAGENTO, "MAGENTO-ONLY")
    assert {sku: shown[sku][0] for sku in IN_MAGENTO} == expected
    # MSI without reservations: Magento's salable quantity is the figure sent.
    assert {sku: shown[sku][1] for sku in IN_MAGENTO} == expected
    assert shown["MAGENTO-ONLY"] == (D(7), D(7))  # not in SnelStart: left alone
    assert result.full and result.sent == 6 and result.batches == 1 and result.open_orders == 2
    assert result.updated + result.unchanged == 5 and result.unknown == 0
    # The gift set gets what its parts allow; Magento's bundle follows its selections itself.
    assert result.not_managed == 1
    posted = {item["sku"]: item["qty"] for item in agent.posts[0]["items"]}
    assert list(posted) == sorted((*IN_MAGENTO, GIFT_SET))
    assert posted[GIFT_SET] == str(min(expected["1001"], expected["1002"]))
    log = [e for e in setup.state.log_entries("shop") if e.message.startswith("Web stock")]
    assert "6 sent in 1 batch:" in log[-1].message and "2 open web orders" in log[-1].message
    assert "1 not managed" in log[-1].message


def test_second_run_sends_only_changes_and_a_full_push_a_day_later(setup: Setup) -> None:
    setup.export()
    agent = setup.agent()
    setup.clock.now += dt.timedelta(hours=1)
    quiet = setup.export(agent)
    assert quiet.sent == 0 and agent.posts == [] and not quiet.full
    assert agent.sku_pages == 0  # the SKU list comes from the cache within the day

    setup.web_order([("1003", 2)], "100000010")
    with LocalBackend(setup.admin) as backend:
        backend.set_technische_voorraad("1002", D(99))
    setup.clock.now += dt.timedelta(hours=1)
    changed = setup.export(agent)
    # 1002 and 1003, and the gift set whose scarcest part the cups were.
    assert changed.sent == 3 and changed.updated == 2 and changed.not_managed == 1
    assert sorted(i["sku"] for i in agent.posts[-1]["items"]) == ["1002", "1003", GIFT_SET]
    free = setup.free()
    assert setup.magento_stock("1002", "1003") == {
        "1002": (free["1002"], free["1002"]),
        "1003": (free["1003"] - 2, free["1003"] - 2),
    }

    setup.clock.now += dt.timedelta(days=1)
    daily = setup.export(agent)
    assert daily.full and daily.sent == 6 and daily.unchanged == 5 and daily.not_managed == 1
    assert agent.sku_pages >= 1  # the daily SKU refresh
    setup.clock.now += dt.timedelta(minutes=5)
    assert setup.export(agent).sent == 0


class BrokenBackend(LocalBackend):
    """The real local backend whose read of open orders fails halfway through the export's read."""

    def open_web_orders(self) -> list:
        raise SnelStartUnavailable("the administration is locked by another user")


def test_failed_read_of_snelstart_sends_nothing(setup: Setup) -> None:
    setup.export()
    before = setup.magento.snapshot()
    with LocalBackend(setup.admin) as backend:
        backend.set_technische_voorraad("1001", D(0))
    agent = setup.agent()
    with BrokenBackend(setup.admin) as broken, pytest.raises(StockExportError, match="no stock was sent"):
        setup.export(agent, broken)
    assert agent.posts == [] and setup.magento.snapshot() == before
    # The runner reports it as a failed run, with the import itself standing.
    with BrokenBackend(setup.admin) as broken:
        outcome = run_task(
            setup.config, "shop", "import_orders_and_export_stock", state=setup.state, backend=broken
        )
    assert outcome.result == "failed" and "no stock was sent" in outcome.message
    assert setup.magento.snapshot() == before


def test_batches_follow_the_agent_limit(magento_db: MagentoDB, local_admin: Path, tmp_path: Path) -> None:
    conn = magento_db.connect()
    stock_products(StockShop(conn, 2, ""))
    server = AgentServer(magento_db, tmp_path / "small", extra={"limits": {"max_stock_items": 2}})
    server.start()
    state = StateStore(tmp_path / "state.sqlite")
    try:
        config = load_client_config(write_client_config(tmp_path, [client_profile(server.url, local_admin)]))
        agent = RecordingAgent(server.url, server.key_id, server.secret)
        with LocalBackend(local_admin) as backend:
            learned = export_stock(
                config, config.profile("shop"), backend=backend, state=state, agent=agent, now=Clock()
            )
            assert [len(p["items"]) for p in agent.posts] == [2, 2, 1] and learned.batches == 3
            # A setting larger than the agent allows: the agent refuses before writing, the batch is split.
            agent.posts.clear()
            forced = export_stock(
                config,
                config.profile("shop"),
                backend=backend,
                state=state,
                agent=agent,
                now=Clock(),
                max_items=5,
                full=True,
            )
        assert [len(p["items"]) for p in agent.posts] == [5, 2, 3, 1, 2] and forced.batches == 3
        assert forced.sent == 5 and forced.unchanged == 5
        ids = [p["request_id"] for p in agent.posts]
        assert len(set(ids)) == len(ids)
        assert _pending(state) == []
    finally:
        state.close()
        server.stop()
        conn.close()


class LostAnswerAgent(RecordingAgent):
    """Delivers stock batches to the real agent, then acts as if the connection broke before the answer."""

    def post(self, path: str, json_body: Any) -> Any:
        super().post(path, json_body)
        raise AgentError("the agent did not answer within 60 s (POST /v1/stock)", transient=True)


def _pending(state: StateStore) -> list[tuple[str, list[dict[str, str]]]]:
    store = _Store(state, "shop")
    try:
        return store.pending()
    finally:
        store.close()


def test_batch_with_a_lost_answer_is_resent_under_its_id_and_applied_once(setup: Setup) -> None:
    lost = LostAnswerAgent(setup.agent_server.url, setup.agent_server.key_id, setup.agent_server.secret)
    with pytest.raises(StockExportError, match="0 items sent so far"):
        setup.export(lost)
    [(request_id, items)] = _pending(setup.state)
    assert lost.posts[0]["request_id"] == request_id and len(items) == 6
    free = setup.free()
    assert setup.magento_stock("1001")["1001"][0] == free["1001"]  # the agent did apply it

    # Magento moves on (a sale lowers the figure) before koppel retries.
    pid = setup.magento.run("SELECT entity_id FROM catalog_product_entity WHERE sku = '1001'")[0]["entity_id"]
    setup.magento.run("UPDATE inventory_source_item SET quantity = quantity - 1 WHERE sku = '1001'")
    setup.magento.run("UPDATE cataloginventory_stock_item SET qty = qty - 1 WHERE product_id = %s", (pid,))

    assert setup.magento_stock("1001")["1001"][0] == free["1001"] - 1

    agent = setup.agent()
    setup.clock.now += dt.timedelta(minutes=10)
    retry = setup.export(agent, full=False)
    assert agent.posts[0] == {"request_id": request_id, "items": items}  # the same batch, the same id
    assert retry.resent_batches == 1 and _pending(setup.state) == []
    # The agent answered from its ledger: the batch was not written a second time over the sale.
    assert setup.magento_stock("1001")["1001"][0] == free["1001"] - 1
    assert retry.sent == 6 and len(agent.posts) == 1  # nothing changed since: no new batch


def test_unknown_sku_refreshes_the_sku_list_and_is_not_sent_again(setup: Setup) -> None:
    setup.export()
    setup.magento.run("DELETE FROM catalog_product_entity WHERE sku = '1003'")
    setup.magento.run("DELETE FROM inventory_source_item WHERE sku = '1003'")
    with LocalBackend(setup.admin) as backend:
        backend.set_technische_voorraad("1003", D(50))
    setup.clock.now += dt.timedelta(hours=1)
    told = setup.export()
    assert told.sent == 1 and told.unknown == 1
    agent = setup.agent()
    setup.clock.now += dt.timedelta(hours=1)
    after = setup.export(agent)
    assert agent.sku_pages >= 1 and after.not_in_magento == 1 and agent.posts == []


def test_sku_from_an_extra_field(setup: Setup, client_config: Callable[..., Any]) -> None:
    setup.config = client_config(articles={"code_field": "EAN"})
    setup.magento.product("8712345000011", qty=0, in_stock=0, source_qty=0)
    agent = setup.agent()
    result = setup.export(agent)
    free = setup.free()
    sent = {i["sku"]: i["qty"] for p in agent.posts for i in p["items"]}
    assert sent == {"8712345000011": str(int(free["1001"]))}
    assert result.not_in_magento == 4  # the other EANs are not Magento SKUs here
    assert setup.magento_stock("8712345000011")["8712345000011"][0] == free["1001"]


def test_there_is_no_stock_only_task(setup: Setup) -> None:
    assert TASK_NAMES == ("import_orders", "import_orders_and_export_stock")
    with pytest.raises(ValueError, match="unknown task 'export_stock'"):
        run_task(setup.config, "shop", "export_stock", state=setup.state)


def test_product_added_in_magento_gets_its_figure_within_the_hour(setup: Setup) -> None:
    setup.magento.run("DELETE FROM catalog_product_entity WHERE sku = '1006'")
    setup.magento.run("DELETE FROM inventory_source_item WHERE sku = '1006'")
    first = setup.export()
    assert first.not_in_magento == 1 and first.sent == 5
    setup.magento.product("1006", qty=5, in_stock=1, source_qty=5)
    setup.clock.now += dt.timedelta(minutes=20)
    assert setup.export().sent == 0  # the SKU list is 20 minutes old: not fetched again yet
    setup.clock.now += dt.timedelta(minutes=45)
    later = setup.export()
    assert later.sent == 1 and later.not_in_magento == 0
    free = setup.free()["1006"]
    assert setup.magento_stock("1006")["1006"] == (max(free, D(0)), max(free, D(0)))


def test_runner_imports_then_exports(setup: Setup, shop: Any) -> None:
    shop.order(
        [{"sku": "1002", "qty": 3, "price": "20.6198"}],
        billing=guest("s.visser@example.nl"),
        number="000000501",
    )
    free = setup.free()
    only_import = run_task(setup.config, "shop", "import_orders", state=setup.state)
    assert only_import.result == "ok" and only_import.stock_result is None
    assert setup.magento_stock("1002")["1002"][0] == D(0)  # no stock export in this task
    outcome = run_task(setup.config, "shop", "import_orders_and_export_stock", state=setup.state)
    assert outcome.result == "ok", outcome.message
    assert outcome.counts["stock_sent"] == 6 and "web stock: 6 items sent" in outcome.message
    assert setup.magento_stock("1002")["1002"] == (free["1002"] - 3, free["1002"] - 3)


def test_state_tables_survive_reopen(setup: Setup, tmp_path: Path) -> None:
    setup.export()
    rows = (
        sqlite3.connect(tmp_path / "koppel-state.sqlite")
        .execute("SELECT sku_key, qty FROM webstock_pushed WHERE profile = 'shop' ORDER BY sku_key")
        .fetchall()
    )
    free = {k: max(v, D(0)) for k, v in setup.free().items()}
    free[GIFT_SET] = min(free["1001"], free["1002"])
    skus = sorted((*IN_MAGENTO, GIFT_SET))
    assert [r[0] for r in rows] == skus  # not_managed is recorded too: not sent again while it stays the same
    assert json.dumps(dict(rows)) == json.dumps({k: str(int(free[k])) for k in skus})


def test_a_batch_the_agent_refuses_as_a_whole_is_dropped_and_its_skus_sent_afresh(setup: Setup) -> None:
    agent = setup.agent()
    setup.export(agent)
    used = agent.posts[0]["request_id"]
    # A pending batch under an id the agent already knows for another body (state files mixed up, say).
    store = _Store(setup.state, "shop")
    store.add_pending(used, [{"sku": "1001", "qty": "1"}, {"sku": "1002", "qty": "2"}], T0)
    store.close()
    setup.clock.now += dt.timedelta(hours=1)
    with pytest.raises(StockExportError, match="409"):
        setup.export()
    assert _pending(setup.state) == []
    assert setup.magento_stock("1001")["1001"][0] == setup.free()["1001"]  # nothing of it was written
    again = setup.export(agent)
    assert again.sent == 2 and sorted(i["sku"] for i in agent.posts[-1]["items"]) == ["1001", "1002"]
    assert again.unchanged == 2


def test_orders_awaiting_payment_hold_their_stock(setup: Setup, shop: Any) -> None:
    """Magento keeps stock aside for an order awaiting payment (MSI: a reservation); koppel defers its import, and
    the pushed figure must not hand those units out again. Paid: the open web order takes over the claim.
    Canceled: Magento gives the units back and so does the figure."""
    free = setup.free()
    for number, sku, qty in (("000000601", "1003", 2), ("000000602", "1004", 1)):
        shop.order(
            [{"sku": sku, "qty": qty, "price": "33.0165"}],
            billing=guest(f"klant{number}@example.nl"),
            number=number,
            state="pending_payment",
        )
        setup.magento.reservation(sku, -qty)
    first = run_task(setup.config, "shop", "import_orders_and_export_stock", state=setup.state)
    assert first.result == "ok", first.message
    assert first.import_result.deferred == 2 and first.stock_result.held_orders == 2
    shown = setup.magento_stock("1003", "1004")
    assert shown["1003"][1] == free["1003"] - 2 and shown["1004"][1] == free["1004"] - 1

    order = shop.table("order")
    shop.conn.cursor().execute(
        f"UPDATE {order} SET state = 'processing', status = 'processing' WHERE increment_id = '000000601'"
    )
    shop.conn.cursor().execute(
        f"UPDATE {order} SET state = 'canceled', status = 'canceled' WHERE increment_id = '000000602'"
    )
    setup.magento.reservation("1004", 1)  # Magento compensates the reservation of a canceled order
    second = run_task(setup.config, "shop", "import_orders_and_export_stock", state=setup.state)
    assert second.result == "ok", second.message
    assert second.import_result.imported == 1 and second.import_result.dropped == 1
    assert second.stock_result.held_orders == 0 and second.stock_result.open_orders == 1
    shown = setup.magento_stock("1003", "1004")
    assert shown["1003"][1] == free["1003"] - 2  # now claimed by the open web order in SnelStart, once
    assert shown["1004"][1] == free["1004"]


def test_an_unimported_order_for_a_composite_without_stock_control_holds_its_parts(
    setup: Setup, shop: Any
) -> None:
    """The gift set (1005: recipe of one 1001 and one 1002, no stock control of its own) is not in SnelStart's
    stock list, yet an order for it that awaits payment takes beans and cups away all the same."""
    free = setup.free()
    shop.order(
        [{"sku": "1005", "qty": 2, "price": "28.8843"}],
        billing=guest("cadeau@example.nl"),
        number="000000611",
        state="pending_payment",
    )
    outcome = run_task(setup.config, "shop", "import_orders_and_export_stock", state=setup.state)
    assert outcome.result == "ok", outcome.message
    assert outcome.import_result.deferred == 1 and outcome.stock_result.held_orders == 1
    shown = setup.magento_stock("1001", "1002", "1003")
    assert shown["1001"][1] == free["1001"] - 2 and shown["1002"][1] == free["1002"] - 2
    assert shown["1003"][1] == free["1003"]


class FeedDownAgent(RecordingAgent):
    """The real client, but the agent's order feed fails: the import of the run stops."""

    def get(self, path: str, params: Any = None) -> Any:
        if path == "/v1/orders":
            raise AgentError("the agent did not answer within 60 s (GET /v1/orders)", transient=True)
        return super().get(path, params)


def test_an_import_that_stops_is_not_followed_by_an_export(setup: Setup, shop: Any) -> None:
    """The open web orders may not all be in SnelStart: figures from there could hand out what Magento sold."""
    shop.order(
        [{"sku": "1002", "qty": 3, "price": "20.6198"}], billing=guest("a@example.nl"), number="000000701"
    )
    before = setup.magento.snapshot()
    server = setup.agent_server
    agent = FeedDownAgent(server.url, server.key_id, server.secret)
    outcome = run_task(setup.config, "shop", TASK_NAMES[1], state=setup.state, agent=agent)
    assert outcome.result == "failed" and "GET /v1/orders" in outcome.message
    assert outcome.stock_result is None and agent.posts == []
    assert setup.magento.snapshot() == before
    assert not [e for e in setup.state.log_entries("shop") if e.message.startswith("Web stock")]


class FailsOnBatch(RecordingAgent):
    """Lets ``ok`` stock batches through to the real agent, then the agent's host refuses with a 503."""

    def __init__(self, *args: Any, ok: int, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.ok = ok

    def post(self, path: str, json_body: Any) -> Any:
        if path == "/v1/stock" and len(self.posts) >= self.ok:
            self.posts.append(json_body)
            raise AgentError("HTTP 503 from the agent (POST /v1/stock)", status=503, transient=True)
        return super().post(path, json_body)


def test_counts_are_logged_also_when_the_push_stops_halfway(setup: Setup) -> None:
    server = setup.agent_server
    agent = FailsOnBatch(server.url, server.key_id, server.secret, ok=2)
    with pytest.raises(StockExportError, match="4 items sent so far"):
        setup.export(agent, max_items=2)
    [line] = [e for e in setup.state.log_entries("shop") if e.message.startswith("Web stock")]
    assert line.level == "warning" and "stopped before the end" in line.message
    assert "4 sent in 2 batches: 4 updated, 0 unchanged, 0 unknown in Magento" in line.message
    # The batch the agent never received goes out under its own id first on the next run, and the stopped full
    # push is not taken for done: it is made again (the figures already written come back unchanged).
    setup.clock.now += dt.timedelta(minutes=5)
    retry = setup.export()
    assert retry.resent_batches == 1 and retry.full and _pending(setup.state) == []
    # The batch that never arrived held 1005 (the bundle: not managed) and 1006.
    assert retry.sent == 2 + 6 and retry.updated == 0 and retry.unchanged == 1 + 5 and retry.not_managed == 2
    free = setup.free()
    assert {s: q for s, (q, _) in setup.magento_stock(*IN_MAGENTO).items()} == {
        s: max(free[s], D(0)) for s in IN_MAGENTO
    }
    last = [e for e in setup.state.log_entries("shop") if e.message.startswith("Web stock")][-1]
    assert "8 sent in 2 batches: 0 updated, 6 unchanged" in last.message and last.level == "info"
