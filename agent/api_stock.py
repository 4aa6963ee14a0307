"""Stock endpoints: POST/GET /v1/stock and GET /v1/skus (scope stock:write). The SQL lives in agent.stock."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pymysql
from flask import Blueprint, Response, jsonify, request

from agent import stock
from agent.db import Magento
from agent.errors import ApiError
from agent.web import (
    bad_param,
    get_config,
    get_db,
    get_magento,
    get_state,
    int_param,
    json_body,
    require_scope,
)

bp = Blueprint("stock", __name__)

MAX_REQUEST_ID_LENGTH = 128
RETRIES = 3
LOCK_CONFLICTS = {1205, 1213}  # lock wait timeout, deadlock: the transaction was rolled back
DEFAULT_SKU_PAGE = 1000


def _request_id(body: dict[str, Any]) -> str:
    if "request_id" not in body:
        bad_param("request_id", "is required (a unique id per push, e.g. a UUID)")
    value = body["request_id"]
    if not isinstance(value, str) or not value.strip():
        bad_param("request_id", "must be a non-empty string")
    if len(value) > MAX_REQUEST_ID_LENGTH or not value.isprintable():
        bad_param("request_id", f"must be at most {MAX_REQUEST_ID_LENGTH} printable characters")
    return value


def _body_hash(body: dict[str, Any]) -> str:
    # Hash the parsed body, not the bytes: a retry that re-serialises the same push is still the same push.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@bp.post("/v1/stock")
@require_scope("stock:write")
def push_stock() -> Response:
    limits = get_config().limits
    if request.content_length is not None and request.content_length > limits.max_body_bytes:
        raise ApiError(
            413, "body_too_large", f"the request body is larger than {limits.max_body_bytes} bytes"
        )
    body = json_body()
    request_id = _request_id(body)
    items = body.get("items")
    if items is None:
        bad_param("items", "is required (a list of {sku, qty})")
    if not isinstance(items, list):
        bad_param("items", "must be a list of {sku, qty}")
    if len(items) > limits.max_stock_items:
        raise ApiError(
            422,
            "too_many_items",
            f"items: {len(items)} items, at most {limits.max_stock_items} per request "
            "(limits.max_stock_items); split the push into batches",
        )
    body_hash = _body_hash(body)
    state = get_state()
    earlier = state.get_request(request_id)
    if earlier is not None:
        return _replay(request_id, body_hash, earlier)
    outcome = _write_with_retry(items)
    answer = {
        "request_id": request_id,
        "results": [r.as_dict() for r in outcome.results],
        "counts": outcome.counts(),
    }
    if not state.store_request(request_id, body_hash, answer):
        # Another worker finished the same request id first; its answer is the one to keep.
        again = state.get_request(request_id)
        if again is not None:
            return _replay(request_id, body_hash, again)
    return jsonify(answer)


# The shop's setup and agent.yml disagree (an MSI source that is not there, MSI tables not granted): asking
# again changes nothing until someone fixes agent.yml or the grants, so it is no 5xx ("try again later") but
# a 409, the request conflicting with the state of the shop. Documented in /v1/openapi.json.
SETUP_STATUS = 409


def _setup_error(problem: str) -> ApiError:
    return ApiError(
        SETUP_STATUS,
        "magento_setup",
        f"stock was not touched: {problem} (until then every stock call is refused; `koppel-agent check` on "
        "the server shows when it is fixed)",
    )


def _stock_magento() -> Magento:
    """The detected Magento, or a refusal when stock cannot be handled safely (e.g. MSI tables not granted)."""
    magento = get_magento()
    if magento.stock_problem:
        # Writing the legacy table of an MSI shop would "succeed" while the shop keeps selling the old figure.
        raise _setup_error(magento.stock_problem)
    return magento


def _write_with_retry(items: list[Any]) -> stock.WriteOutcome:
    """Write the push; a deadlock or lock timeout against Magento's own writers rolls back and retries it."""
    for attempt in range(1, RETRIES + 1):
        try:
            return stock.write_stock(get_db(), _stock_magento(), items)
        except stock.StockSetupError as exc:
            raise _setup_error(str(exc)) from exc
        except pymysql.err.OperationalError as exc:
            if not exc.args or exc.args[0] not in LOCK_CONFLICTS:
                raise
            if attempt == RETRIES:
                raise ApiError(
                    503,
                    "database_busy",
                    "the stock rows stayed locked by other database work; nothing was written, try again",
                    {"Retry-After": "10"},
                ) from exc
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _replay(request_id: str, body_hash: str, earlier: tuple[str, dict[str, Any]]) -> Response:
    stored_hash, answer = earlier
    if stored_hash != body_hash:
        raise ApiError(
            409,
            "request_id_conflict",
            f"request_id {request_id!r} was used before for a different push; use a new request_id",
        )
    return jsonify(answer)


@bp.get("/v1/stock")
@require_scope("stock:write")
def show_stock() -> Response:
    skus = request.args.getlist("sku")
    if not skus:
        bad_param("sku", "give at least one sku (repeat the parameter for more)")
    limit = get_config().limits.max_stock_items
    if len(skus) > limit:
        bad_param("sku", f"at most {limit} SKUs per request, not {len(skus)}")
    return jsonify({"items": stock.read_stock(get_db(), _stock_magento(), skus)})


@bp.get("/v1/skus")
@require_scope("stock:write")
def list_skus() -> Response:
    limits = get_config().limits
    maximum = max(limits.max_page_size, limits.max_stock_items)
    limit = int_param("limit", default=min(DEFAULT_SKU_PAGE, maximum), minimum=1, maximum=maximum)
    after_values = request.args.getlist("after")
    if len(after_values) > 1:
        bad_param("after", "given more than once")
    after = 0
    if after_values and after_values[0]:
        try:
            after = stock.decode_cursor(after_values[0])
        except ValueError as exc:
            bad_param("after", str(exc))
    rows, last, has_more = stock.list_skus(get_db(), _stock_magento(), after, limit)
    return jsonify({"skus": rows, "next_cursor": stock.encode_cursor(last), "has_more": has_more})
