"""Web stock export (manual 5): read SnelStart, compute, send what changed to the agent, remember what was sent.

Called by the runner after the import of task ``import_orders_and_export_stock`` (never on its own: the open
web orders must be in SnelStart before their quantities can be claimed).

The order of things is what keeps the shop's figures honest:

1. Read everything the figures depend on: SnelStart completely (open web orders, stock articles, composites
   without stock control of their own) and the Magento orders this profile knows but has not imported yet
   (deferred while awaiting payment, failed), which hold stock in Magento. Any error there ends the export
   before anything is sent: a half-read picture would push zeroes or overstated figures.
2. Settle batches a previous run sent without hearing the answer. They are sent again under their own request
   id; the agent answers a known id from its ledger without writing, so a batch is applied at most once, and
   the figures it carried are recorded as sent only once the agent confirmed them.
3. Send what differs from the last confirmed figure per SKU (everything once a day), only for SKUs that Magento
   has, in batches of at most the agent's ``max_stock_items``, each with a fresh request id recorded in the
   state before it goes out.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from client.agent_client import AgentClient, AgentError
from client.rules.webstock import (
    WebStock,
    compute_web_stock,
    magento_order_lines,
    open_claims,
    parts_placed_by,
    qty_text,
    sku_claims,
)
from client.snelstart.base import SnelStartBackend
from client.state import StateStore, utcnow
from client.wording import count

TASK = "import_orders_and_export_stock"
DEFAULT_MAX_ITEMS = 5000
FULL_PUSH_EVERY = dt.timedelta(days=1)
SKU_REFRESH_EVERY = dt.timedelta(days=1)
SKU_RECHECK_EVERY = dt.timedelta(hours=1)
RECORDED = (
    "updated",
    "unchanged",
    "not_managed",
)  # answers after which Magento holds the figure (or ignores it)

_TABLES = """
CREATE TABLE IF NOT EXISTS webstock_pushed (
    profile TEXT NOT NULL,
    sku_key TEXT NOT NULL,
    qty TEXT NOT NULL,
    pushed_at TEXT NOT NULL,
    PRIMARY KEY (profile, sku_key)
);
CREATE TABLE IF NOT EXISTS webstock_pending (
    profile TEXT NOT NULL,
    request_id TEXT NOT NULL,
    items TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (profile, request_id)
);
CREATE TABLE IF NOT EXISTS webstock_skus (
    profile TEXT NOT NULL,
    sku_key TEXT NOT NULL,
    sku TEXT NOT NULL,
    PRIMARY KEY (profile, sku_key)
);
"""


class StockExportError(Exception):
    """The export stopped; the message says why and what was (not) sent."""


@dataclass
class StockExportResult:
    articles: int = 0  # stock-controlled articles read from SnelStart
    open_orders: int = 0  # unprocessed web orders whose quantities were claimed
    held_orders: int = 0  # Magento orders not imported yet (deferred, failed) whose quantities were claimed
    skus: int = 0  # SKUs with a web stock figure
    sent: int = 0  # items sent in this run (resent batches included)
    updated: int = 0
    unchanged: int = 0
    unknown: int = 0  # answered unknown_sku
    not_managed: int = 0
    invalid: int = 0
    not_in_magento: int = 0  # not sent: Magento's SKU list does not have them
    without_figure: int = 0  # articles without a SKU, or sharing one, or in a recipe cycle
    batches: int = 0
    resent_batches: int = 0
    full: bool = False
    problems: list[str] = field(default_factory=list)

    def add_answer(self, counts: dict[str, int]) -> None:
        self.updated += counts.get("updated", 0)
        self.unchanged += counts.get("unchanged", 0)
        self.unknown += counts.get("unknown_sku", 0)
        self.not_managed += counts.get("not_managed", 0)
        self.invalid += counts.get("invalid", 0)


def _ts(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def _parse(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


class _Store:
    """The export's tables in the client's state file, on a connection of their own."""

    def __init__(self, state: StateStore, profile: str) -> None:
        self.state = state
        self.profile = profile
        self.conn = state.connect()
        self.conn.executescript(_TABLES)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def pushed(self) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT sku_key, qty FROM webstock_pushed WHERE profile = ?", (self.profile,)
        )
        return dict(rows.fetchall())

    def pending(self) -> list[tuple[str, list[dict[str, str]]]]:
        rows = self.conn.execute(
            "SELECT request_id, items FROM webstock_pending WHERE profile = ? ORDER BY created_at, rowid",
            (self.profile,),
        ).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def add_pending(self, request_id: str, items: list[dict[str, str]], now: dt.datetime) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO webstock_pending (profile, request_id, items, created_at) VALUES (?, ?, ?, ?)",
                (self.profile, request_id, json.dumps(items, separators=(",", ":")), _ts(now)),
            )

    def drop_pending(self, request_id: str, forget: Sequence[str] = ()) -> None:
        """Remove a batch the agent never applied; ``forget`` SKUs lose their record so they are sent again."""
        with self.tx() as conn:
            conn.execute(
                "DELETE FROM webstock_pending WHERE profile = ? AND request_id = ?",
                (self.profile, request_id),
            )
            conn.executemany(
                "DELETE FROM webstock_pushed WHERE profile = ? AND sku_key = ?",
                [(self.profile, sku.casefold()) for sku in forget],
            )

    def settle(
        self, request_id: str, sent: list[dict[str, str]], results: list[dict], now: dt.datetime
    ) -> bool:
        """Record a confirmed batch in one transaction; True when Magento did not know one of its SKUs."""
        qty_of = {item["sku"].casefold(): item["qty"] for item in sent}
        keep, forget, unknown = [], [], False
        for answer in results:
            key = answer["sku"].casefold()
            if answer["status"] in RECORDED and key in qty_of:
                keep.append((self.profile, key, qty_of[key], _ts(now)))
            else:
                forget.append((self.profile, key))
                unknown = unknown or answer["status"] == "unknown_sku"
        with self.tx() as conn:
            conn.executemany(
                "INSERT INTO webstock_pushed (profile, sku_key, qty, pushed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (profile, sku_key) DO UPDATE SET qty = excluded.qty, pushed_at = excluded.pushed_at",
                keep,
            )
            conn.executemany("DELETE FROM webstock_pushed WHERE profile = ? AND sku_key = ?", forget)
            conn.execute(
                "DELETE FROM webstock_pending WHERE profile = ? AND request_id = ?",
                (self.profile, request_id),
            )
        return unknown

    def forget_pushed(self, keys: Sequence[str]) -> None:
        with self.tx() as conn:
            conn.executemany(
                "DELETE FROM webstock_pushed WHERE profile = ? AND sku_key = ?",
                [(self.profile, k) for k in keys],
            )

    def magento_skus(self) -> dict[str, str]:
        rows = self.conn.execute("SELECT sku_key, sku FROM webstock_skus WHERE profile = ?", (self.profile,))
        return dict(rows.fetchall())

    def replace_skus(self, skus: list[dict[str, Any]]) -> None:
        with self.tx() as conn:
            conn.execute("DELETE FROM webstock_skus WHERE profile = ?", (self.profile,))
            conn.executemany(
                "INSERT OR REPLACE INTO webstock_skus (profile, sku_key, sku) VALUES (?, ?, ?)",
                [(self.profile, s["sku"].casefold(), s["sku"]) for s in skus],
            )


# -- reading SnelStart -------------------------------------------------------------------------------------


def read_web_stock(
    backend: SnelStartBackend,
    code_field: str,
    recipes_mode: str,
    unimported: Sequence[tuple[str, Decimal]] = (),
) -> tuple[WebStock, int, int]:
    """Web stock per SKU from SnelStart, with the number of stock articles and of open web orders.

    ``unimported``: (SKU, quantity) lines of Magento orders that are not in SnelStart yet; they claim stock too.
    Raises ``StockExportError`` when anything in the read fails, so that nothing is sent from a partial picture.
    """
    try:
        # Open orders before stock: an order the shop processes between the two reads then lowers free stock
        # and is claimed as well (a figure too low for one run), instead of neither (a figure too high).
        orders = backend.open_web_orders()
        artikelen = backend.stock_artikelen()
        # Composites without stock control of their own: their figure follows their parts, and an order for
        # one (open, or in Magento not imported yet) takes its parts.
        composites = backend.recipe_artikelen()
        by_id = {a.id: a for a in (*artikelen, *composites)}
        # An open order can also name a composite outside both lists (made inactive since): its parts still
        # leave the warehouse. There are only as many of these lookups as distinct such articles.
        others = {
            r.artikel_id for o in orders for r in o.regels if r.artikel_id and r.artikel_id not in by_id
        }
        for artikel_id in sorted(others):
            artikel = backend.get_artikel(artikel_id)
            if artikel is not None and artikel.recept:
                by_id[artikel_id] = artikel
    except Exception as exc:  # noqa: BLE001 - whatever broke the read, the answer is the same: send nothing
        raise StockExportError(f"reading stock from SnelStart failed, no stock was sent: {exc}") from exc
    claims = open_claims(orders, by_id, parts_placed_by(recipes_mode))
    for artikel_id, qty in sku_claims(unimported, [*artikelen, *composites], code_field).items():
        claims[artikel_id] = claims.get(artikel_id, Decimal(0)) + qty
    return compute_web_stock([*artikelen, *composites], claims, code_field), len(artikelen), len(orders)


def unimported_order_lines(
    state: StateStore, agent: AgentClient, profile: str
) -> tuple[list[tuple[str, Decimal]], int]:
    """The lines of Magento orders this profile knows but has not imported (deferred or failed), with their count.

    Canceled and closed orders gave their stock back in Magento and claim nothing. An order the agent cannot
    serve stops the export: figures without its claim could oversell."""
    ids = {d.entity_id for d in state.deferred_list(profile)} | {
        f.entity_id for f in state.failed_list(profile)
    }
    lines: list[tuple[str, Decimal]] = []
    held = 0
    for entity_id in sorted(ids):
        if state.ledger_get(profile, entity_id) is not None:
            continue  # in SnelStart already (or being created): its open order carries the claim
        try:
            order = agent.order(entity_id)
        except AgentError as exc:
            raise StockExportError(
                f"reading Magento order {entity_id} (not imported yet) failed, no stock was sent: {exc}"
            ) from exc
        if order is None or order.get("state") in ("canceled", "closed"):
            continue
        lines.extend(magento_order_lines(order))
        held += 1
    return lines, held


# -- talking to the agent ----------------------------------------------------------------------------------


def agent_limits(agent: AgentClient) -> tuple[int, int | None]:
    """(``limits.max_stock_items``, largest ``GET /v1/skus`` page) as the agent's OpenAPI document states them.

    Defaults when the document does not say: 5000 items, and the agent's own default page size (None)."""
    try:
        doc = agent.get("/v1/openapi.json")
    except AgentError:
        return DEFAULT_MAX_ITEMS, None
    items = _dig(doc, "components", "schemas", "StockRequest", "properties", "items", "maxItems")
    page = None
    for parameter in _dig(doc, "paths", "/v1/skus", "get", "parameters") or []:
        if isinstance(parameter, dict) and parameter.get("name") == "limit":
            page = _dig(parameter, "schema", "maximum")
    return (items if _positive(items) else DEFAULT_MAX_ITEMS), (page if _positive(page) else None)


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def fetch_magento_skus(agent: AgentClient, page: int | None = None) -> list[dict[str, Any]]:
    """Every catalog SKU through ``GET /v1/skus``; all pages or an error, never part of the list."""
    skus: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        answer = agent.get("/v1/skus", {"after": after, "limit": page})
        rows = answer.get("skus") if isinstance(answer, dict) else None
        if not isinstance(rows, list) or not all(
            isinstance(r, dict) and isinstance(r.get("sku"), str) for r in rows
        ):
            raise StockExportError(
                f"the agent's answer to GET /v1/skus is not a SKU page: {str(answer)[:200]}"
            )
        skus.extend(rows)
        if not answer.get("has_more"):
            return skus
        if not answer.get("next_cursor") or answer["next_cursor"] == after:
            raise StockExportError("the agent's GET /v1/skus says has_more but gives no new cursor")
        after = answer["next_cursor"]


def _check_answer(answer: Any, request_id: str, items: list[dict[str, str]]) -> list[dict]:
    results = answer.get("results") if isinstance(answer, dict) else None
    if (
        not isinstance(results, list)
        or answer.get("request_id") != request_id
        or not all(isinstance(r, dict) and isinstance(r.get("sku"), str) and "status" in r for r in results)
        or len(results) != len(items)
    ):
        raise StockExportError(
            f"the agent's answer to stock batch {request_id} is not a stock answer: {str(answer)[:200]}"
        )
    return results


class _Pusher:
    def __init__(
        self, agent: AgentClient, store: _Store, result: StockExportResult, now: Callable[[], dt.datetime]
    ):
        self.agent = agent
        self.store = store
        self.result = result
        self.now = now

    def send(self, request_id: str, items: list[dict[str, str]], *, resent: bool = False) -> None:
        """Send one recorded batch and record the answer; splits it when the agent finds it too large."""
        try:
            answer = self.agent.post("/v1/stock", {"request_id": request_id, "items": items})
        except AgentError as exc:
            if (
                exc.status in (413, 422)
                and exc.code in ("body_too_large", "too_many_items")
                and len(items) > 1
            ):
                # Refused before anything was written: the id is spent, its halves go under new ids.
                self.store.drop_pending(request_id)
                half = len(items) // 2
                self.new_batch(items[:half])
                self.new_batch(items[half:])
                return
            if exc.status is not None and 400 <= exc.status < 500:
                # Refused as a whole (a 409 conflicting replay, a key without the scope, ...): the agent wrote
                # nothing of it. The same body would be refused again, so the batch is dropped and its SKUs
                # lose their record, to be sent afresh once the cause is fixed.
                self.store.drop_pending(request_id, [i["sku"] for i in items])
            raise StockExportError(
                f"stock push stopped, {count(self.result.sent, 'item')} sent so far: {exc}"
            ) from exc
        results = _check_answer(answer, request_id, items)
        self.result.sent += len(items)
        self.result.batches += 1
        self.result.resent_batches += int(resent)
        counts = {}
        for r in results:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
            if r["status"] == "invalid":
                self.result.problems.append(f"SKU {r['sku']}: the agent called the figure invalid")
        self.result.add_answer(counts)
        if self.store.settle(request_id, items, results, self.now()):
            # Magento lost a product since the SKU list was fetched: fetch it again before the next push.
            self.store.state.set_value(self.store.profile, "webstock.skus_stale", "1")

    def new_batch(self, items: list[dict[str, str]]) -> None:
        request_id = str(uuid.uuid4())
        self.store.add_pending(request_id, items, self.now())
        self.send(request_id, items)


# -- the export --------------------------------------------------------------------------------------------


def export_stock(
    config: Any,
    profile: Any,
    *,
    backend: SnelStartBackend,
    state: StateStore,
    agent: AgentClient,
    now: Callable[[], dt.datetime] = utcnow,
    max_items: int | None = None,
    full: bool | None = None,
) -> StockExportResult:
    """Export the web stock of one profile. ``max_items`` overrides what the agent states; ``full`` forces (True)
    or suppresses (False) the daily full push. Raises ``StockExportError`` (logged by the caller) when it stops."""
    name = profile.name
    held_lines, held = unimported_order_lines(state, agent, name)
    web, articles, open_orders = read_web_stock(
        backend, profile.articles.code_field, profile.orders.recipes, held_lines
    )
    result = StockExportResult(
        articles=articles, open_orders=open_orders, held_orders=held, skus=len(web.by_sku)
    )
    result.problems.extend(web.problems)
    result.without_figure = len(web.problems)
    store = _Store(state, name)
    try:
        pusher = _Pusher(agent, store, result, now)
        for request_id, items in store.pending():
            pusher.send(request_id, items, resent=True)

        agent_items, sku_page = agent_limits(agent)
        limit = max_items or agent_items
        wanted = {sku.casefold() for sku in web.by_sku}
        magento = _magento_skus(agent, state, store, name, now(), sku_page, wanted)
        last_full = _parse(state.get_value(name, "webstock.last_full"))
        result.full = full if full is not None else last_full is None or now() - last_full >= FULL_PUSH_EVERY
        pushed = store.pushed()
        items: list[dict[str, str]] = []
        for sku in sorted(web.by_sku):
            key = sku.casefold()
            if key not in magento:
                result.not_in_magento += 1
                continue
            qty = qty_text(web.by_sku[sku])
            if result.full or pushed.get(key) != qty:
                items.append({"sku": magento[key], "qty": qty})
        gone = [k for k in pushed if k not in wanted]
        if gone:
            store.forget_pushed(gone)  # so an article that returns to stock control is sent again
        for start in range(0, len(items), limit):
            pusher.new_batch(items[start : start + limit])
        if result.full:
            state.set_value(name, "webstock.last_full", _ts(now()))
    except Exception:
        if result.batches:
            # Figures of the batches answered before the stop are in Magento: their counts belong in the log.
            _log(state, name, result, stopped=True)
        raise
    finally:
        store.close()
    _log(state, name, result)
    return result


def _magento_skus(
    agent: AgentClient,
    state: StateStore,
    store: _Store,
    profile: str,
    now: dt.datetime,
    page: int | None,
    wanted: set[str],
) -> dict[str, str]:
    """SKU key → Magento's spelling, from the cache. Fetched anew once a day, after an unknown_sku answer, and
    hourly while SnelStart has SKUs the cache lacks (a product just added in Magento gets its figure soon)."""
    fetched = _parse(state.get_value(profile, "webstock.skus_fetched_at"))
    stale = state.get_value(profile, "webstock.skus_stale") == "1"
    skus = store.magento_skus()
    age = None if fetched is None else now - fetched
    lacking = age is not None and age >= SKU_RECHECK_EVERY and not wanted.issubset(skus)
    if stale or age is None or age >= SKU_REFRESH_EVERY or lacking:
        store.replace_skus(fetch_magento_skus(agent, page))
        state.set_value(profile, "webstock.skus_fetched_at", _ts(now))
        state.set_value(profile, "webstock.skus_stale", None)
        skus = store.magento_skus()
    return skus


def _log(state: StateStore, profile: str, r: StockExportResult, *, stopped: bool = False) -> None:
    kind = ("full push" if r.full else "changes only") + (", stopped before the end" if stopped else "")
    message = (
        f"Web stock ({kind}): {r.sent} sent in {count(r.batches, 'batch')}: {r.updated} updated, "
        f"{r.unchanged} unchanged, {r.unknown} unknown in Magento, {r.not_managed} not managed, {r.invalid} invalid; "
        f"{r.not_in_magento} not sent (not in Magento); {count(r.skus, 'article')} with a web stock, "
        f"{count(r.open_orders, 'open web order')}, {count(r.held_orders, 'Magento order')} not imported yet"
    )
    level = "warning" if stopped or r.invalid or r.problems else "info"
    state.log(profile, level, message, essential=True, task=TASK)
    if r.problems:
        shown = r.problems[:20] + ([f"… and {len(r.problems) - 20} more"] if len(r.problems) > 20 else [])
        state.log(
            profile,
            "warning",
            f"Web stock: {count(len(r.problems), 'article')} got no figure or "
            f"{'was' if len(r.problems) == 1 else 'were'} refused",
            essential=False,
            detail="\n".join(shown),
            task=TASK,
        )
