"""What request handlers use: config, the Magento database, the agent state, authentication, input helpers.

A handler looks like::

    @bp.get("/v1/things")
    @require_scope("orders:read")
    def things():
        limit = int_param("limit", default=100, minimum=1, maximum=get_config().limits.max_page_size)
        with get_db().cursor() as cur:
            cur.execute(f"SELECT ... FROM {get_magento().table('sales_order')} WHERE ...", (...,))
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import pymysql
from flask import current_app, g, request

from agent import protocol
from agent.config import AgentConfig, KeyConfig
from agent.db import (
    DatabaseUnavailable,
    Magento,
    MagentoNotFound,
    connect,
    detect,
    session_time_zone,
    set_time_zone,
)
from agent.errors import ApiError
from agent.state import AgentState

log = logging.getLogger("koppel.agent")

EXTENSION = "koppel"
RETRY_AFTER_SECONDS = "30"
# How long a worker trusts what it detected: a shop that gets MSI, or a user that gets new grants, is picked
# up within this time without a restart.
REDETECT_SECONDS = 300
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class AgentContext:
    """Per-app (per worker process) objects, kept in ``app.extensions["koppel"]``."""

    cfg: AgentConfig
    state: AgentState
    magento: Magento | None = None
    detected_at: float = 0.0  # time.monotonic() of the detection behind ``magento``
    # A random stand-in secret, so an unknown key id costs the same HMAC work as a known one.
    dummy_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    lock: threading.Lock = field(default_factory=threading.Lock)


def _ctx() -> AgentContext:
    return current_app.extensions[EXTENSION]


def get_config() -> AgentConfig:
    return _ctx().cfg


def get_state() -> AgentState:
    return _ctx().state


OUTAGE_MESSAGE = "the Magento database cannot be reached right now; try again later"


def database_unavailable(exc: DatabaseUnavailable | None = None) -> ApiError:
    """The 503 of AGENT-API.md. When agent.yml or the grants are at fault (a wrong password, an unknown
    database) the message says so, as waiting will not help; an outage gets the plain sentence."""
    message = exc.setup_problem if exc is not None and exc.setup_problem else OUTAGE_MESSAGE
    return ApiError(503, "database_unavailable", message, {"Retry-After": RETRY_AFTER_SECONDS})


def get_db() -> pymysql.connections.Connection:
    """This request's connection to the Magento database (opened on first use, closed at teardown)."""
    conn = g.get("koppel_db")
    if conn is not None:
        return conn
    ctx = _ctx()
    with ctx.lock:
        known, detected_at = ctx.magento, ctx.detected_at
    try:
        conn = connect(ctx.cfg, version=known.version if known else None)
    except DatabaseUnavailable as exc:
        log.warning("%s", exc)
        raise database_unavailable(exc) from exc
    g.koppel_db = conn
    if known is not None and time.monotonic() - detected_at < REDETECT_SECONDS:
        g.koppel_magento = known
        return conn
    try:
        found = detect(conn, ctx.cfg)
        if known is None or found.version != known.version:
            set_time_zone(conn, session_time_zone(ctx.cfg, found.version))
        conn.commit()
    except MagentoNotFound as exc:
        log.error("%s", exc)
        raise ApiError(503, "magento_not_found", str(exc), {"Retry-After": RETRY_AFTER_SECONDS}) from exc
    with ctx.lock:
        if found != ctx.magento:
            log.info("detected %s", found)
        ctx.magento, ctx.detected_at = found, time.monotonic()
    g.koppel_magento = found
    return conn


def get_magento() -> Magento:
    """The detected Magento (version, prefix, stock mode), the same for the whole request.

    Detected per worker and trusted for REDETECT_SECONDS, or until a privilege error calls ``forget_magento``.
    """
    get_db()
    return g.koppel_magento


def forget_magento() -> None:
    """Detect again on the next request (e.g. after a privilege error: the grants may have changed)."""
    ctx = _ctx()
    with ctx.lock:
        ctx.magento, ctx.detected_at = None, 0.0


def close_db(_exc: BaseException | None = None) -> None:
    g.pop("koppel_magento", None)
    conn = g.pop("koppel_db", None)
    if conn is None:
        return
    try:
        if conn.open:
            conn.rollback()
    except pymysql.err.MySQLError:
        pass
    finally:
        try:
            conn.close()
        except pymysql.err.Error:
            pass


# --- authentication -------------------------------------------------------------------------------


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def _signed_paths() -> list[str]:
    """The request paths a client may have signed: as sent, and as the app sees it behind a proxy."""
    env = request.environ
    out: list[str] = []
    raw = env.get("RAW_URI") or env.get("REQUEST_URI")
    if raw:
        out.append(urlsplit(raw).path if "://" in raw else raw.split("?", 1)[0])
    app_path = quote(env.get("SCRIPT_NAME", "") + env.get("PATH_INFO", ""), safe="/-._~!$&'()*+,;=:@")
    out.append(app_path)
    prefix = request.headers.get("X-Forwarded-Prefix", "").rstrip("/")
    if prefix:
        out.append(prefix + quote(env.get("PATH_INFO", ""), safe="/-._~!$&'()*+,;=:@"))
    return list(dict.fromkeys(out))


def authenticate() -> KeyConfig:
    """Check the X-Koppel-* headers of the current request; the key that signed it, or ApiError 401."""
    headers = request.headers
    names = (protocol.HEADER_KEY, protocol.HEADER_TIMESTAMP, protocol.HEADER_NONCE, protocol.HEADER_SIGNATURE)
    values = [headers.get(name, "") for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if missing:
        raise _unauthorized(f"missing header {', '.join(missing)}")
    key_id, timestamp, nonce, signature = values
    if not protocol.NONCE_RE.match(nonce):
        raise _unauthorized(f"{protocol.HEADER_NONCE} must be 16 to 64 characters of A-Z a-z 0-9 _ -")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise _unauthorized(f"{protocol.HEADER_TIMESTAMP} must be Unix seconds")
    if abs(time.time() - int(timestamp)) > protocol.MAX_CLOCK_SKEW_SECONDS:
        raise _unauthorized(
            f"{protocol.HEADER_TIMESTAMP} is more than {protocol.MAX_CLOCK_SKEW_SECONDS} s away from the "
            "agent's clock; check the clocks of both machines"
        )
    ctx = _ctx()
    body = request.get_data(cache=True)
    key = ctx.cfg.key(key_id)
    secret = key.secret if key is not None else ctx.dummy_secret
    query = list(request.args.items(multi=True))
    matched = False
    for path in _signed_paths():
        expected = protocol.sign(secret, request.method, path, query, timestamp, nonce, body)
        matched |= protocol.signatures_match(expected, signature)
    if key is None or not matched:
        raise _unauthorized("the request signature is not accepted")
    # Only a correctly signed request may take up room in the nonce table.
    if not ctx.state.remember_nonce(key.id, nonce, int(timestamp)):
        raise _unauthorized("this nonce was used before (replayed request)")
    return key


def require_scope(scope: str) -> Callable[[F], F]:
    """Decorator: the request must be signed by a key that has ``scope`` (401 unsigned, 403 lacking scope)."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = authenticate()
            g.koppel_key_id = key.id
            if scope not in key.scopes:
                raise ApiError(403, "forbidden", f"key {key.id!r} does not have scope {scope}")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def current_key_id() -> str:
    """The id of the key that signed the current request (inside a ``require_scope`` view)."""
    key_id = g.get("koppel_key_id")
    if key_id is None:
        raise RuntimeError("current_key_id() used outside a require_scope view")
    return key_id


# --- input helpers ---------------------------------------------------------------------------------


def bad_param(name: str, message: str) -> NoReturn:
    """Refuse the request with 400 naming the parameter: ``{"code": "bad_parameter", "message": "limit: ..."}``."""
    raise ApiError(400, "bad_parameter", f"{name}: {message}")


def int_param(name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within [minimum, maximum]; ``default`` when absent."""
    values = request.args.getlist(name)
    if not values:
        return default
    if len(values) > 1:
        bad_param(name, "given more than once")
    raw = values[0].strip()
    if not (raw.lstrip("-").isdigit() and raw.isascii()):
        bad_param(name, f"must be a whole number, not {values[0]!r}")
    value = int(raw)
    if not minimum <= value <= maximum:
        bad_param(name, f"must be between {minimum} and {maximum}, not {value}")
    return value


def str_param(name: str, *, required: bool = False, max_length: int = 1000) -> str | None:
    """A single-valued string query parameter (None when absent and not required)."""
    values = request.args.getlist(name)
    if not values:
        if required:
            bad_param(name, "is required")
        return None
    if len(values) > 1:
        bad_param(name, "given more than once")
    if len(values[0]) > max_length:
        bad_param(name, f"longer than {max_length} characters")
    return values[0]


def json_body() -> dict[str, Any]:
    """The request body as a JSON object (fractions as Decimal, never float), or 400 ``bad_body``."""
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "bad_body", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_body", "the request body must be a JSON object")
    return data
