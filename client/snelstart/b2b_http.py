"""The HTTP layer of the SnelStart B2B API v2: token, rate limiter, retry policy and paging, as small classes.

Facts this follows (see research/snelstart.md §1): the token comes from ``POST {auth_url}`` with the form body
``grant_type=clientkey&clientkey=…`` and lives ``expires_in`` seconds, but SnelStart may drop it earlier, so a 401
gets one fresh token and one repeat; every call carries ``Authorization: Bearer`` and ``Ocp-Apim-Subscription-Key``;
OData lists return at most ``$top`` rows with no next link (500, but 25 on ``/artikelen``), so a short page is the
last one; limits are per administration (development 100/min, 1,000/h, 5 concurrent; production 500/min,
5,000/h, 50 concurrent) and excess is answered with 429.

Nothing here logs or puts a key into an exception message.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from client.snelstart.base import SnelStartRefusal, SnelStartUnavailable
from client.snelstart.secrets import Secret

log = logging.getLogger("koppel.snelstart.b2b")

RENEW_MARGIN_S = 60.0
PAGE_MAX = 500
PAGE_MAX_ARTIKELEN = 25  # the documented $top maximum of /artikelen and /artikelen/prijsafspraken


class OutcomeUnknown(SnelStartUnavailable):
    """A write was sent but no answer came back: SnelStart may or may not have stored it."""


class AccessRefused(SnelStartUnavailable):
    """SnelStart refused the koppelsleutel, the subscription key or a scope. Not the fault of any one order, so
    it stops the run (an "unavailable" to the engine) instead of failing the order being written."""


class NotFound(SnelStartRefusal):
    """HTTP 404 on a resource by id."""


# -- money on the wire ----------------------------------------------------------------------------------------


def encode_json(body: Any) -> bytes:
    """JSON with Decimals written as exact numbers (the stdlib would need a float, which rounds)."""
    decimals: dict[str, str] = {}

    def mark(value: Any) -> Any:
        if isinstance(value, Decimal):
            token = f"@@dec{uuid.uuid4().hex}@@"
            decimals[f'"{token}"'] = format(value.normalize(), "f") if value == value else "0"
            return token
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(body), ensure_ascii=False)
    for token, literal in decimals.items():
        text = text.replace(token, literal)
    return text.encode("utf-8")


def decode_json(data: bytes | str) -> Any:
    """Numbers with a fraction become Decimal, never float."""
    return json.loads(data, parse_float=Decimal)


# -- rate limiter -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tier:
    per_minute: int
    per_hour: int
    concurrent: int


TIERS: dict[str, Tier] = {
    "development": Tier(per_minute=100, per_hour=1000, concurrent=5),
    "production": Tier(per_minute=500, per_hour=5000, concurrent=50),
}


class RateLimiter:
    """Sliding-window limiter (per minute and per hour) plus a cap on calls in flight."""

    def __init__(
        self,
        tier: Tier,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tier = tier
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._in_flight = threading.BoundedSemaphore(tier.concurrent)
        self._minute: deque[float] = deque()
        self._hour: deque[float] = deque()
        self.waited_s = 0.0

    def _reserve(self) -> float:
        """Take a slot now (returns 0) or say how long to wait before asking again."""
        with self._lock:
            now = self._clock()
            while self._minute and self._minute[0] <= now - 60:
                self._minute.popleft()
            while self._hour and self._hour[0] <= now - 3600:
                self._hour.popleft()
            wait = 0.0
            if len(self._minute) >= self.tier.per_minute:
                wait = max(wait, self._minute[0] + 60 - now)
            if len(self._hour) >= self.tier.per_hour:
                wait = max(wait, self._hour[0] + 3600 - now)
            if wait <= 0:
                self._minute.append(now)
                self._hour.append(now)
            return wait

    @contextmanager
    def slot(self) -> Iterator[None]:
        self._in_flight.acquire()
        try:
            while (wait := self._reserve()) > 0:
                self.waited_s += wait
                self._sleep(wait)
            yield
        finally:
            self._in_flight.release()


_limiters: dict[tuple[str, str], RateLimiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(administration: str, tier_name: str) -> RateLimiter:
    """One limiter per administration and tier in this process, shared by every backend that talks to it."""
    if tier_name not in TIERS:
        raise ValueError(f"snelstart.tier: {tier_name!r} is not one of {', '.join(TIERS)}")
    with _limiters_lock:
        key = (administration, tier_name)
        if key not in _limiters:
            _limiters[key] = RateLimiter(TIERS[tier_name])
        return _limiters[key]


# -- retry policy ---------------------------------------------------------------------------------------------------


@dataclass
class RetryPolicy:
    attempts: int = 6  # tries in all, the first included
    base_s: float = 0.5
    cap_s: float = 30.0
    retry_after_cap_s: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Wait before try ``attempt + 1`` (attempt counts from 0): Retry-After when given, else exponential
        backoff with jitter so that parallel clients do not retry in step."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s) + random.uniform(0, 0.1)
        ceiling = min(self.cap_s, self.base_s * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None, now: Callable[[], dt.datetime] | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    current = now() if now else dt.datetime.now(dt.UTC)
    return max(0.0, (when - current).total_seconds())


# -- token ------------------------------------------------------------------------------------------------------------


class LoginUnavailable(SnelStartUnavailable):
    """No token: the auth server gave no answer or an error; the message names the cause and what to check."""


class TokenProvider:
    """Bearer token by grant_type=clientkey, renewed ``RENEW_MARGIN_S`` before expiry and on demand after a 401."""

    def __init__(
        self,
        auth_url: str,
        client_key: Secret,
        session: requests.Session,
        retry: RetryPolicy,
        timeout: tuple[float, float],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.auth_url = auth_url
        self._client_key = client_key
        self._session = session
        self._retry = retry
        self._timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.fetched = 0

    def bearer(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                self._token, lifetime, sent_at = self._fetch()
                # The lifetime runs from when SnelStart issued the token, which is after the request left but
                # before the answer came: counting from the send keeps the full margin however slow the answer.
                self._renew_at = sent_at + max(lifetime - RENEW_MARGIN_S, 0.0)
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (SnelStart refused it); a token another thread already renewed is kept."""
        with self._lock:
            if self._token == token:
                self._token = None

    def _fetch(self) -> tuple[str, float, float]:
        """A new token: (token, lifetime in seconds, clock time the successful request was sent)."""
        form = {"grant_type": "clientkey", "clientkey": self._client_key.reveal()}
        for attempt in range(self._retry.attempts):
            retry_after = None
            sent_at = self._clock()
            try:
                resp = self._session.post(self.auth_url, data=form, timeout=self._timeout)
            except requests.RequestException as exc:
                # No answer at all: the network, a proxy or the address, never the koppelsleutel.
                problem = (
                    f"the SnelStart auth server {self.auth_url} could not be reached ({type(exc).__name__}); "
                    "check this PC's network connection, its proxy (HTTPS_PROXY) and snelstart.auth_url"
                )
            else:
                if resp.status_code == 200:
                    try:
                        body = resp.json()
                        token, lifetime = str(body["access_token"]), float(body.get("expires_in", 3600))
                    except (ValueError, KeyError, TypeError) as exc:
                        raise SnelStartUnavailable(
                            f"SnelStart token endpoint {self.auth_url} gave an unreadable answer"
                        ) from exc
                    self.fetched += 1
                    return token, lifetime, sent_at
                if resp.status_code in (400, 401, 403):
                    # Retrying a refused key only burns calls: the koppelsleutel is wrong or revoked.
                    raise AccessRefused(
                        f"SnelStart refused the koppelsleutel (HTTP {resp.status_code} from {self.auth_url}); "
                        "check snelstart.client_key in client.yml or create a new key in SnelStart web"
                    )
                if resp.status_code == 429 or resp.status_code >= 500:
                    problem = (
                        f"the SnelStart auth server {self.auth_url} answered HTTP {resp.status_code}; SnelStart "
                        "is busy or has a disruption, try again later"
                    )
                else:
                    problem = (
                        f"the SnelStart auth server {self.auth_url} answered HTTP {resp.status_code}, not a "
                        "token; check snelstart.auth_url (leave it out for SnelStart's own address)"
                    )
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if attempt + 1 < self._retry.attempts:
                self._sleep(self._retry.delay(attempt, retry_after))
        raise LoginUnavailable(f"SnelStart login unavailable: {problem}")


# -- paging a list that may change while it is read ----------------------------------------------------------------

MAX_LIST_REPAIRS = 5


def read_pages(fetch: Callable[[int], list[Any]], top: int, what: str) -> list[Any]:
    """Every row of a list read in pages of ``top`` by ``fetch(skip)``, missing none of the rows that were in it
    for the whole read, however rows come and go between two pages.

    The OpenAPI file offers no ``$orderby``; this relies on SnelStart serving a list in the same order on every
    request (the rows are told apart by ``id``). Each page after the first starts at the last row of the one
    before. When that row is not where it was, rows came or went before it: the read goes back until it finds a
    row it already has, which fixes where the unread rows begin now, and goes on from there (rows read twice
    are kept once, in their later state). After ``MAX_LIST_REPAIRS`` such repairs the list is changing too fast
    to be read and ``SnelStartUnavailable`` is raised; nothing else would be safe to compute from it.
    """
    if top < 2:
        raise ValueError("pages that overlap by a row need at least 2 rows")
    rows: dict[str, Any] = {}
    skip = 0
    expect: str | None = None  # id that must open the page at ``skip``; None: any row already read may anchor
    repairs = 0
    while True:
        page = fetch(skip)
        ids = []
        for row in page:
            row_id = row.get("id") if isinstance(row, dict) else None
            if not isinstance(row_id, str) or not row_id:
                raise SnelStartUnavailable(f"SnelStart {what} returned a row without an id")
            ids.append(row_id)
        if len(set(ids)) != len(ids):
            raise SnelStartUnavailable(f"SnelStart {what} returned the same row twice in one page")
        if expect is not None and ids[:1] != [expect]:
            repairs += 1
            if repairs > MAX_LIST_REPAIRS:
                raise SnelStartUnavailable(
                    f"SnelStart {what}: the list changed {repairs} times while it was read page by page; "
                    "it is read again on the next run"
                )
            log.info("SnelStart %s changed between two pages (at $skip=%s); reading back", what, skip)
            expect = None
        if expect is not None:
            start = 1
        else:
            known = [i for i, row_id in enumerate(ids) if row_id in rows]
            if known:
                start = known[-1] + 1
            elif skip == 0:
                start = 0
            else:
                # Rows left before this point: the first unread row now lies further back.
                skip = max(0, skip - (top - 1))
                continue
        for row_id, row in zip(ids[start:], page[start:], strict=True):
            rows[row_id] = row  # a row read again keeps its place and takes its later state
        if len(page) < top:
            return list(rows.values())
        expect = ids[-1]
        skip += top - 1


# -- the API client ----------------------------------------------------------------------------------------------------


def _error_text(resp: requests.Response) -> str:
    """The readable part of a SnelStart error body; its shapes vary (modelState, [{errorCode, message}], message)."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300].strip() or resp.reason or ""
    parts: list[str] = []
    if isinstance(body, list):
        for item in body:
            if isinstance(item, dict):
                code, msg = item.get("errorCode"), item.get("message") or item.get("Message")
                parts.append(f"{code}: {msg}" if code else str(msg))
    elif isinstance(body, dict):
        state = body.get("modelState") or body.get("ModelState")
        if isinstance(state, dict):
            for name, msgs in state.items():
                msgs = msgs if isinstance(msgs, list) else [msgs]
                parts.extend(f"{name}: {m}" for m in msgs)
        msg = body.get("message") or body.get("Message")
        if msg and not parts:
            parts.append(str(msg))
    return "; ".join(parts) or json.dumps(body)[:300]


class B2BHttp:
    """Signed, limited, retried calls to one administration.

    ``calls`` counts requests sent to the API (retries included), ``calls_by_path`` the same per first path segment.
    """

    def __init__(
        self,
        api_url: str,
        tokens: TokenProvider,
        subscription_key: Secret,
        limiter: RateLimiter,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self._subscription_key = subscription_key
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.session = session or requests.Session()
        self._sleep = sleep
        self.calls = 0
        self.calls_by_path: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    # Public verbs ---------------------------------------------------------------------------------------------------
    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._call("GET", path, params=params)

    def get_optional(self, path: str, params: dict[str, Any] | None = None) -> Any | None:
        try:
            return self._call("GET", path, params=params)
        except NotFound:
            return None

    def get_all(
        self, path: str, params: dict[str, Any] | None = None, *, contiguous: bool = True
    ) -> list[Any]:
        """Every row of an OData list, page by page; a failure of any page raises (never a partial list).

        ``contiguous`` (the default): any list may change while it is read; a row that leaves its place (an
        order processed, an article losing stock control, a relatie removed, or renamed in a list served in
        name order) moves the rows behind it one place forward, so that a plain ``$skip`` walk steps over one.
        The pages therefore overlap by a row and a row that was there for the whole read is never missed
        (``read_pages``); a list that keeps changing raises instead. ``contiguous=False`` walks ``$skip``
        plainly, for a list whose rows have no ``id``."""
        top = PAGE_MAX_ARTIKELEN if path.startswith("/artikelen") else PAGE_MAX

        def fetch(skip: int) -> list[Any]:
            page = self._call("GET", path, params={**(params or {}), "$skip": skip, "$top": top})
            if not isinstance(page, list):
                raise SnelStartUnavailable(f"SnelStart GET {path} did not return a list")
            return page

        if contiguous:
            return read_pages(fetch, top, f"GET {path}")
        rows: list[Any] = []
        skip = 0
        while True:
            page = fetch(skip)
            rows.extend(page)
            if len(page) < top:
                return rows
            skip += top

    def post(self, path: str, body: Any) -> Any:
        """A create. Not repeated when its outcome is unknown: ``OutcomeUnknown`` lets the caller look first."""
        return self._call("POST", path, body=body, repeatable=False)

    def put(self, path: str, body: Any) -> Any:
        return self._call("PUT", path, body=body)

    # Machinery -------------------------------------------------------------------------------------------------------
    def _send(self, method: str, path: str, params: Any, body: Any) -> tuple[requests.Response, str]:
        token = self.tokens.bearer()
        headers = {
            "Authorization": f"Bearer {token}",
            "Ocp-Apim-Subscription-Key": self._subscription_key.reveal(),
            "Accept": "application/json",
        }
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = encode_json(body)
        with self.limiter.slot():
            with self._count_lock:
                self.calls += 1
                self.calls_by_path[path.split("/")[1] if "/" in path else path] += 1
            resp = self.session.request(
                method, self.api_url + path, params=params, data=data, headers=headers, timeout=self.timeout
            )
        log.debug("SnelStart %s %s -> %s", method, path, resp.status_code)
        return resp, token

    def _call(
        self, method: str, path: str, params: Any = None, body: Any = None, repeatable: bool = True
    ) -> Any:
        renewed = False
        attempt = 0
        while True:
            retry_after = None
            try:
                resp, token = self._send(method, path, params, body)
            except requests.ConnectTimeout as exc:
                problem = f"no connection ({type(exc).__name__})"  # nothing was sent: always safe to repeat
            except (requests.Timeout, requests.ConnectionError) as exc:
                if not repeatable:
                    raise OutcomeUnknown(
                        f"SnelStart {method} {path}: no answer ({type(exc).__name__}); it may have been stored"
                    ) from exc
                problem = f"no answer ({type(exc).__name__})"
            else:
                status = resp.status_code
                if status in (200, 201, 204):
                    return decode_json(resp.content) if resp.content else None
                if status == 401 and not renewed:
                    self.tokens.invalidate(token)
                    renewed = True
                    continue
                if status == 404:
                    raise NotFound(f"SnelStart {method} {path}: not found")
                if status == 429 or status >= 500:
                    if status >= 500 and not repeatable:
                        raise OutcomeUnknown(
                            f"SnelStart {method} {path}: HTTP {status} ({_error_text(resp)}); it may have been stored"
                        )
                    problem = f"HTTP {status}"
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                elif status == 401:
                    raise AccessRefused(
                        f"SnelStart refused access twice (HTTP 401: {_error_text(resp)}); check the koppelsleutel "
                        "and the subscription key"
                    )
                elif status == 403:
                    raise AccessRefused(
                        f"SnelStart {method} {path}: not allowed (HTTP 403, the key lacks a scope): {_error_text(resp)}"
                    )
                else:
                    raise SnelStartRefusal(f"SnelStart {method} {path}: HTTP {status}: {_error_text(resp)}")
            attempt += 1
            if attempt >= self.retry.attempts:
                raise SnelStartUnavailable(
                    f"SnelStart {method} {path}: {problem}, gave up after {attempt} tries"
                )
            self._sleep(self.retry.delay(attempt - 1, retry_after))
