"""The order feed: ``GET /v1/orders`` (keyset pages of settled orders) and ``GET /v1/orders/{id}``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from agent import orders
from agent.errors import ApiError
from agent.web import bad_param, get_config, get_db, get_magento, int_param, require_scope, str_param

bp = Blueprint("orders", __name__)

DEFAULT_LIMIT = 100


@bp.get("/v1/orders")
@require_scope("orders:read")
def list_orders() -> Response:
    cfg = get_config()
    limit = int_param("limit", default=DEFAULT_LIMIT, minimum=1, maximum=cfg.limits.max_page_size)
    after = str_param("after", max_length=200)
    created_from = str_param("created_from", max_length=64)
    store = str_param("store", max_length=64)
    if after is not None and created_from is not None:
        bad_param("after", "give either after or created_from, not both")
    if after is not None:
        try:
            position = orders.decode_cursor(after)
        except orders.CursorError as exc:
            bad_param("after", str(exc))
    elif created_from is not None:
        try:
            moment = orders.parse_time(created_from)
        except ValueError as exc:
            bad_param("created_from", f"not an ISO-8601 time with offset or Z ({created_from!r}): {exc}")
        try:
            position = orders.position_from(moment)
        except ValueError as exc:
            bad_param("created_from", f"{created_from!r} cannot be used: {exc}")
    else:
        position = orders.BEGINNING

    conn, mage = get_db(), get_magento()
    if store is not None and not orders.store_exists(conn, mage, store):
        bad_param("store", f"no store with code {store!r}")
    page = orders.fetch_page(
        conn,
        mage,
        after=position,
        limit=limit,
        settle_seconds=cfg.settle_seconds,
        store=store,
        asked_cursor=after,
    )
    return jsonify(
        orders=page.orders,
        next_cursor=page.next_cursor,
        has_more=page.has_more,
        settled_until=orders.iso_utc(page.settled_until.replace(tzinfo=None)),
    )


@bp.get("/v1/orders/<order_id>")
@require_scope("orders:read")
def get_order(order_id: str) -> Response:
    if not (order_id.isascii() and order_id.isdigit()) or len(order_id) > 10:
        bad_param("id", f"must be a Magento order entity_id (a whole number), not {order_id!r}")
    order = orders.fetch_order(get_db(), get_magento(), int(order_id))
    if order is None:
        raise ApiError(404, "order_not_found", f"no order with id {order_id}")
    return jsonify(order)
