"""The Flask app: core endpoints (health, diagnostics, openapi), the feature blueprints, JSON errors.

The feature blueprints (``agent.api_orders.bp``, ``agent.api_stock.bp``) declare full paths (``/v1/orders``);
they are registered without a prefix.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pymysql
from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from agent import agent_version, api_orders, api_stock, openapi
from agent.config import AgentConfig
from agent.db import (
    DatabaseUnavailable,
    Magento,
    connect,
    denied_table,
    existing_tables,
    is_privilege_error,
    is_unreachable,
)
from agent.errors import ApiError
from agent.state import AgentState
from agent.web import (
    EXTENSION,
    AgentContext,
    close_db,
    database_unavailable,
    forget_magento,
    get_config,
    get_db,
    get_magento,
    require_scope,
)

log = logging.getLogger("koppel.agent")
core = Blueprint("core", __name__)

CLOCK_WARNING_SECONDS = 60
PRICE_INCLUDES_TAX_PATH = "tax/calculation/price_includes_tax"
_HTTP_CODES = {
    400: ("bad_request", "the request is not well-formed"),
    404: ("not_found", "no such endpoint"),
    405: ("method_not_allowed", "this endpoint does not accept that method"),
    413: ("body_too_large", "the request body is larger than limits.max_body_bytes"),
}


def _utc_text(value: datetime | None) -> str | None:
    # Magento stores UTC wall-clock times, read here in the same session zone Magento writes with.
    return None if value is None else value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


@core.get("/v1/health")
def health() -> tuple[Response, int]:
    try:
        conn = connect(get_config())
    except DatabaseUnavailable:
        return jsonify(status="unavailable"), 503
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    except pymysql.err.MySQLError:
        return jsonify(status="unavailable"), 503
    finally:
        try:
            conn.close()
        except pymysql.err.Error:
            pass
    return jsonify(status="ok"), 200


@core.get("/v1/openapi.json")
def openapi_document() -> Response:
    return jsonify(openapi.document(get_config()))


@core.get("/v1/diagnostics")
@require_scope("diagnostics:read")
def diagnostics() -> Response:
    magento = get_magento()
    conn = get_db()
    warnings: list[str] = []
    with conn.cursor() as cur:
        before = time.time()
        cur.execute(
            "SELECT VERSION() AS version, @@session.time_zone AS zone, @@system_time_zone AS system_zone, "
            "UTC_TIMESTAMP(6) AS now"
        )
        row = cur.fetchone()
        agent_now = (before + time.time()) / 2
        offset = round(row["now"].replace(tzinfo=UTC).timestamp() - agent_now, 3)
        cur.execute(f"SELECT COUNT(*) AS n, MAX(created_at) AS latest FROM {magento.orders_table}")
        orders = cur.fetchone()
    if abs(offset) > CLOCK_WARNING_SECONDS:
        warnings.append(f"the database clock differs {offset:+.0f} s from the agent's clock")
    zone = row["zone"]
    if (
        magento.version == 1
        and zone not in ("+00:00", "UTC")
        and not (zone == "SYSTEM" and row["system_zone"] in ("UTC", "GMT"))
    ):
        shown = f"SYSTEM ({row['system_zone']})" if zone == "SYSTEM" else zone
        warnings.append(
            f"Magento 1 times are read in session time zone {shown}; if that zone has daylight saving time, "
            "orders placed in the hour the clocks go back are ambiguous"
        )
    indexers = _indexers(conn, magento, warnings)
    price_includes_tax = _price_includes_tax(conn, magento, warnings)
    if magento.stock_problem:
        warnings.append(f"stock cannot be written: {magento.stock_problem}")
    elif magento.stock_mode == "msi":
        _check_msi_source(conn, magento, warnings)
    conn.rollback()
    return jsonify(
        {
            "agent_version": agent_version(),
            "magento": {
                "version": magento.version,
                "table_prefix": magento.prefix,
                "stock_mode": magento.stock_mode,
                "msi_source": magento.msi_source,
                "price_includes_tax": price_includes_tax,
            },
            "database": {
                "server_version": row["version"],
                "session_time_zone": zone,
                "clock_offset_seconds": offset,
            },
            "orders": {"count": int(orders["n"]), "latest_created_at": _utc_text(orders["latest"])},
            "indexers": indexers,
            "warnings": warnings,
        }
    )


def _indexers(conn: pymysql.connections.Connection, magento: Magento, warnings: list[str]) -> dict[str, str]:
    """Indexer code -> "mode/status" (M2: schedule|realtime, M1: real_time|manual)."""
    p = magento.prefix
    present = existing_tables(conn, [f"{p}indexer_state", f"{p}mview_state", f"{p}index_process"])
    out: dict[str, str] = {}
    with conn.cursor() as cur:
        if magento.version == 2 and f"{p}indexer_state" in present:
            if f"{p}mview_state" in present:
                cur.execute(
                    f"SELECT i.indexer_id AS code, i.status, m.mode FROM {magento.table('indexer_state')} i "
                    f"LEFT JOIN {magento.table('mview_state')} m ON m.view_id = i.indexer_id ORDER BY i.indexer_id"
                )
            else:
                cur.execute(
                    f"SELECT indexer_id AS code, status, NULL AS mode FROM {magento.table('indexer_state')} "
                    "ORDER BY indexer_id"
                )
            for r in cur.fetchall():
                if r["code"]:
                    mode = "schedule" if r["mode"] == "enabled" else "realtime"
                    out[r["code"]] = f"{mode}/{r['status']}"
        elif magento.version == 1 and f"{p}index_process" in present:
            cur.execute(
                f"SELECT indexer_code AS code, status, mode FROM {magento.table('index_process')} "
                "ORDER BY indexer_code"
            )
            for r in cur.fetchall():
                out[r["code"]] = f"{r['mode']}/{r['status']}"
    stock_code = "inventory" if magento.stock_mode == "msi" else "cataloginventory_stock"
    state = out.get(stock_code)
    if state is None:
        warnings.append(f"indexer {stock_code} not found: cannot tell whether Magento shows written stock")
    else:
        mode, _, status = state.partition("/")
        if status in ("invalid", "require_reindex"):
            warnings.append(f"indexer {stock_code} needs a reindex ({status}); the shop may show stale stock")
        if mode == "realtime":
            warnings.append(
                f"indexer {stock_code} runs Update on Save: stock written by koppel shows after the next "
                "full reindex; Update by Schedule picks it up within a minute"
            )
    return out


def _price_includes_tax(
    conn: pymysql.connections.Connection, magento: Magento, warnings: list[str]
) -> bool | None:
    """Whether catalogue prices are entered incl. VAT (default scope), or None when the agent cannot tell.

    The client checks the SnelStart template's VAT mode against it. No row means the setting was never saved,
    so Magento's shipped default applies: excl. VAT. Without SELECT on core_config_data (a key without
    stock:write needs none) information_schema hides the table, and the answer is None."""
    table = f"{magento.prefix}core_config_data"
    if table not in existing_tables(conn, [table]):
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT scope, scope_id, value FROM {magento.table('core_config_data')} WHERE path = %s "
                "ORDER BY scope, scope_id",
                (PRICE_INCLUDES_TAX_PATH,),
            )
            rows = cur.fetchall()
    except pymysql.err.OperationalError as exc:
        if exc.args and exc.args[0] in (1142, 1143):  # table/column access denied: unknown, not an outage
            return None
        raise
    values = {(r["scope"], int(r["scope_id"])): (r["value"] or "").strip() for r in rows}
    default = values.pop(("default", 0), "0")
    if default not in ("0", "1"):
        warnings.append(
            f"{PRICE_INCLUDES_TAX_PATH} holds {default!r}, not 0 or 1; cannot tell how prices are entered"
        )
        return None
    differing = sorted(f"{scope} {scope_id}" for (scope, scope_id), v in values.items() if v != default)
    if differing:
        warnings.append(
            f"{PRICE_INCLUDES_TAX_PATH} is {default} by default but differs for {', '.join(differing)}; "
            "price_includes_tax reports the default"
        )
    return default == "1"


def _check_msi_source(conn: pymysql.connections.Connection, magento: Magento, warnings: list[str]) -> None:
    if f"{magento.prefix}inventory_source" not in existing_tables(
        conn, [f"{magento.prefix}inventory_source"]
    ):
        return
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT enabled FROM {magento.table('inventory_source')} WHERE source_code = %s",
            (magento.msi_source,),
        )
        found = cur.fetchone()
    if found is None:
        warnings.append(f"MSI source {magento.msi_source!r} (magento.msi_source) does not exist in Magento")
    elif not found["enabled"]:
        warnings.append(f"MSI source {magento.msi_source!r} (magento.msi_source) is disabled in Magento")


# --- errors ------------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _on_api_error(exc: ApiError) -> Response:
    if exc.status == 413:
        _drain_body()
    return _error(exc.status, exc.code, exc.message, exc.headers)


def _on_http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 413:
        _drain_body()
    code, message = _HTTP_CODES.get(status, ("", ""))
    if not code:
        code = "_".join((exc.name or "error").lower().replace("'", "").split())
        message = exc.description or exc.name or "error"
    headers = {k: v for k, v in exc.get_headers() if k.lower() not in ("content-type", "content-length")}
    return _error(status, code, message, headers)


def _on_database_error(exc: pymysql.err.MySQLError) -> Response:
    if is_unreachable(exc):
        log.warning("database went away during a request: %s", exc)
        e = database_unavailable()
        return _error(e.status, e.code, e.message, e.headers)
    if is_privilege_error(exc):
        # Grants change while the agent runs; what was detected (e.g. the stock mode) may rest on old ones.
        forget_magento()
        table = denied_table(exc)
        what = f"table {table}" if table else "a table"
        log.warning("database privilege missing: %s", exc.args[1] if len(exc.args) > 1 else exc)
        return _error(
            500,
            "database_privileges",
            f"the agent's database user may not read or write {what}; run `koppel-agent check` on the "
            "server, it lists the grants that are missing",
        )
    log.exception("database error")
    return _error(500, "internal_error", "the agent failed on this request; its log has the details")


def _on_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return _error(500, "internal_error", "the agent failed on this request; its log has the details")


def _no_store(response: Response) -> Response:
    # Answers carry personal data and live stock; no proxy or browser should keep them.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


# Before answering 413 the agent reads the body it refuses and throws it away: a server that closes the
# connection with unread bytes makes the kernel reset it, and a proxy still sending the body (nginx, Apache)
# then reports "connection reset" and answers 502 instead of relaying the 413. Bounded in bytes and time, so
# a huge or stalled upload only costs that much; beyond either the 413 is sent anyway.
DRAIN_EXTRA_BYTES = 4_000_000
DRAIN_SECONDS = 10.0
_DRAIN_CHUNK = 64 * 1024


def _drain_body() -> None:
    """Read and discard what is left of the request body, within DRAIN_EXTRA_BYTES and DRAIN_SECONDS."""
    env = request.environ
    stream = env.get("wsgi.input")
    length = request.content_length
    if stream is None or env.get("koppel.drained"):
        return
    env["koppel.drained"] = True
    if length is None and not env.get("wsgi.input_terminated"):
        return  # no length and a stream that does not end at the body's end: reading could block forever
    budget = get_config().limits.max_body_bytes + DRAIN_EXTRA_BYTES
    if length is not None and length > budget:
        return  # too large to be worth reading; the connection is closed after the answer
    remaining = budget if length is None else length
    sock = env.get("gunicorn.socket")
    old_timeout = sock.gettimeout() if sock is not None else None
    deadline = time.monotonic() + DRAIN_SECONDS
    try:
        while remaining > 0 and (left := deadline - time.monotonic()) > 0:
            if sock is not None:  # gunicorn's socket: no read waits past the deadline
                sock.settimeout(left)
            chunk = stream.read(min(_DRAIN_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
    except Exception as exc:  # noqa: BLE001 - a timeout, a reset, a broken chunk: the 413 is sent anyway
        log.info("stopped reading a refused request body: %s: %s", type(exc).__name__, exc)
    finally:
        if sock is not None:
            try:
                sock.settimeout(old_timeout)
            except OSError:
                pass


def _refuse_large_body() -> None:
    # Checked before routing errors (404/405) so an oversized body is always a 413, on any path.
    limit = get_config().limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()


def create_app(cfg: AgentConfig) -> Flask:
    """The agent's WSGI app for one configuration."""
    app = Flask("agent")
    app.config["MAX_CONTENT_LENGTH"] = cfg.limits.max_body_bytes
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = AgentContext(cfg=cfg, state=AgentState(cfg.state_dir))
    app.register_blueprint(core)
    app.register_blueprint(api_orders.bp)
    app.register_blueprint(api_stock.bp)
    app.register_error_handler(ApiError, _on_api_error)
    app.register_error_handler(HTTPException, _on_http_error)
    app.register_error_handler(pymysql.err.MySQLError, _on_database_error)
    app.register_error_handler(Exception, _on_unexpected)
    app.teardown_appcontext(close_db)
    app.before_request(_refuse_large_body)
    app.after_request(_no_store)
    return app
