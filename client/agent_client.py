"""Signed HTTP client for the koppel agent (AGENT-API.md), on ``requests``.

Every request is signed with ``agent.protocol``; a retry is signed anew (the agent refuses a nonce it has
seen). The query string is sent exactly in its canonical form, so what is signed is byte for byte what the
agent receives. Redirects are refused: a redirect would carry a signature for another path, and the SPEC
wants the user told to configure the final URL.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from agent.protocol import canonical_query, signed_headers

DEFAULT_TIMEOUT = 60.0
# Connecting and the TLS handshake get at most this long: a plain-http agent behind an https:// URL never
# answers the handshake, and waiting the whole read timeout for that (60 s, four times) helps nobody.
CONNECT_TIMEOUT = 10.0
RETRY_STATUSES = frozenset({502, 503, 504})
# The agent's error codes that mean agent.yml does not fit the shop's database: waiting does not help.
SETUP_CODES = frozenset({"magento_not_found"})

Params = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


class AgentError(Exception):
    """A call to the agent failed; the message is meant for the user.

    ``transient`` is True when trying again later may work (agent or database down, timeout, 5xx): the
    engine then stops the run without moving the cursor. ``status`` is the HTTP status when there was one.
    """

    def __init__(
        self, message: str, *, status: int | None = None, transient: bool = False, code: str | None = None
    ):
        super().__init__(message)
        self.status = status
        self.transient = transient
        self.code = code


def _iso(value: dt.datetime | str) -> str:
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError(f"created_from {value!r} has no time zone")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AgentClient:
    """One agent: ``AgentClient("https://shop.example/koppel", "office", secret)``."""

    def __init__(
        self,
        url: str,
        key_id: str,
        secret: str,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AgentError(f"the agent URL {url!r} must start with http:// or https:// and name a host")
        if parts.query or parts.fragment:
            raise AgentError(f"the agent URL {url!r} must not contain a query or fragment")
        self.url = url.rstrip("/")
        self._base_path = parts.path.rstrip("/")
        self.key_id = key_id
        self._secret = secret
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = "koppel-client"

    @classmethod
    def from_profile(cls, profile: Any) -> AgentClient:
        """Build from a ``client.config.Profile`` (reads the secret from where the profile says)."""
        agent = profile.agent
        return cls(agent.url, agent.key_id, agent.secret_value(), timeout=agent.timeout_seconds)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the raw call ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, params: Params = None, body: Any = None) -> tuple[int, Any]:
        """One signed call, retried on 502/503/504, timeouts and refused connections.

        Returns (status, decoded JSON or None) for any answer that is not a redirect; raises ``AgentError``
        when no answer came, on a redirect, or when the answer is not JSON.
        """
        if not path.startswith("/"):
            raise ValueError(f"agent path must start with '/': {path!r}")
        method = method.upper()
        pairs = self._pairs(params)
        query = canonical_query(pairs)
        raw = b"" if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        full_path = self._base_path + path
        url = self.url + path + (f"?{query}" if query else "")
        attempt = 0
        while True:
            headers = signed_headers(self.key_id, self._secret, method, full_path, pairs, raw)
            headers["Accept"] = "application/json"
            if body is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self._session.request(
                    method,
                    url,
                    data=raw or None,
                    headers=headers,
                    timeout=(min(CONNECT_TIMEOUT, self.timeout), self.timeout),
                    allow_redirects=False,
                )
            except requests.Timeout as exc:
                if self._speaks_plain_http():
                    raise self._tls_mismatch(method, path) from exc
                error = AgentError(
                    f"the agent at {self.url} did not answer within {self.timeout:g} s ({method} {path})",
                    transient=True,
                )
                error.__cause__ = exc
            except requests.ConnectionError as exc:
                handshake = isinstance(exc, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY" not in str(
                    exc
                )
                if handshake and self._speaks_plain_http():
                    raise self._tls_mismatch(method, path) from exc
                error = AgentError(
                    f"cannot reach the agent at {self.url}: {_connection_reason(exc)}; is it running and is the "
                    "URL right?",
                    transient=True,
                )
                error.__cause__ = exc
            else:
                if (
                    response.status_code not in RETRY_STATUSES
                    or attempt >= self.retries
                    or _setting_error(response)
                ):
                    return self._answer(response, method, path)
                error = None
            if attempt >= self.retries and error is not None:
                raise error
            attempt += 1
            time.sleep(self._delay(attempt, None if error is not None else response))

    def _plain_url(self) -> str:
        """This https:// URL as plain http to the same port (443 when the URL names none)."""
        parts = urlsplit(self.url)
        netloc = parts.netloc if parts.port is not None else f"{parts.netloc}:443"
        return f"http://{netloc}{self._base_path}"

    def _speaks_plain_http(self) -> bool:
        """For an https:// URL that got no TLS answer: does a koppel agent answer plain http at that address?"""
        if not self.url.startswith("https://"):
            return False
        try:
            answer = self._session.get(self._plain_url() + "/v1/health", timeout=5, allow_redirects=False)
            body = answer.json()
        except (requests.RequestException, ValueError):
            return False
        # Only the agent's own health answer counts (a TLS server may answer plain http with an error page).
        return isinstance(body, dict) and body.get("status") in ("ok", "unavailable")

    def _tls_mismatch(self, method: str, path: str) -> AgentError:
        return AgentError(
            f"the TLS handshake with the agent at {self.url} failed ({method} {path}): the agent speaks plain "
            f"http; use {self._plain_url()} in agent.url (or put TLS in front of the agent)"
        )

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        delay = self.backoff * (2 ** (attempt - 1))
        if response is not None:
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                delay = max(delay, float(retry_after))
        return min(delay, self.max_backoff)

    @staticmethod
    def _pairs(params: Params) -> list[tuple[str, str]]:
        if params is None:
            return []
        items = params.items() if isinstance(params, Mapping) else params
        pairs: list[tuple[str, str]] = []
        for name, value in items:
            if value is None:
                continue
            if isinstance(value, list | tuple):
                pairs.extend((name, str(v)) for v in value)
            else:
                pairs.append((name, str(value)))
        return pairs

    def _answer(self, response: requests.Response, method: str, path: str) -> tuple[int, Any]:
        status = response.status_code
        if 300 <= status < 400:
            target = response.headers.get("Location", "(no Location header)")
            raise AgentError(
                f"the agent URL redirects to {target}; use the final URL in the profile's agent.url "
                f"(asked {method} {self.url}{path}, got HTTP {status})",
                status=status,
            )
        if not response.content:
            return status, None
        try:
            return status, response.json()
        except ValueError:
            kind = response.headers.get("Content-Type", "unknown type")
            raise AgentError(
                f"the agent at {self.url} answered {method} {path} with HTTP {status} and {kind} instead of "
                "JSON; is agent.url the koppel agent (not the shop's web page)?",
                status=status,
                transient=status >= 500,
            ) from None

    # -- checked calls ---------------------------------------------------------------------------------
    def _checked(self, method: str, path: str, params: Params = None, body: Any = None) -> Any:
        status, data = self.request(method, path, params, body)
        if 200 <= status < 300:
            return data
        raise self._error(status, data, method, path)

    def _error(self, status: int, data: Any, method: str, path: str) -> AgentError:
        code, message = None, None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            code = data["error"].get("code")
            message = data["error"].get("message")
        said = f": {message}" if message else ""
        where = f"{method} {path}"
        if status == 401:
            text = (
                f"the agent refused the signature of {where} (401{said}); check key_id {self.key_id!r} and the "
                "secret against agent.yml, and that this PC's clock is right (at most 5 minutes off)"
            )
        elif status == 403:
            text = f"key {self.key_id!r} may not do {where} (403{said}); give it the scope in agent.yml"
        elif code == "database_privileges":
            # Waiting does not help here: the agent's MySQL user needs a grant (the run is retried, though,
            # so it goes on by itself once the grant is given).
            text = (
                f"the agent's database user may not read or write what {where} needs (HTTP {status}{said}); "
                "give it the grants of README's 'MySQL privileges for the agent' (koppel-agent check lists them)"
            )
        elif code in SETUP_CODES:
            # agent.yml does not fit the database (a wrong table prefix, say): no point in waiting.
            text = (
                f"the agent could not answer {where} (HTTP {status}{said}); correct agent.yml on the agent's "
                "server and restart the agent (koppel-agent check shows what it finds)"
            )
        elif code == "database_unavailable":
            # An outage or a wrong database login (the agent may name which, or not): its own check tells.
            text = (
                f"the agent could not answer {where} (HTTP {status}{said}); if this lasts, koppel-agent check "
                "on the agent's server shows why (a wrong database password, for one)"
            )
        elif status >= 500:
            again = "" if _says_try_again(message) else "; try again later"
            text = f"the agent could not answer {where} (HTTP {status}{said}){again}"
        else:
            text = f"the agent refused {where} (HTTP {status}{said})"
        return AgentError(text, status=status, transient=status >= 500, code=code)

    def get(self, path: str, params: Params = None) -> Any:
        return self._checked("GET", path, params)

    def post(self, path: str, json_body: Any) -> Any:
        return self._checked("POST", path, None, json_body)

    # -- the order feed --------------------------------------------------------------------------------
    def orders(
        self,
        after: str | None = None,
        created_from: dt.datetime | str | None = None,
        limit: int = 100,
        store: str | None = None,
    ) -> dict:
        """One page of ``GET /v1/orders``: ``{"orders", "next_cursor", "has_more", "settled_until"}``."""
        if after and created_from is not None:
            raise ValueError("give either after (a cursor) or created_from, not both")
        params = {
            "after": after or None,
            "created_from": _iso(created_from) if created_from is not None else None,
            "limit": limit,
            "store": store,
        }
        page = self.get("/v1/orders", params)
        if (
            not isinstance(page, dict)
            or not isinstance(page.get("orders"), list)
            or not page.get("next_cursor")
        ):
            raise AgentError(f"the agent's answer to GET /v1/orders is not an order page: {str(page)[:200]}")
        return page

    def order(self, entity_id: int) -> dict | None:
        """One ORDER by Magento entity_id, settled or not; None when the agent does not know it (404)."""
        path = f"/v1/orders/{int(entity_id)}"
        status, data = self.request("GET", path)
        if status == 404:
            return None
        if 200 <= status < 300 and isinstance(data, dict):
            return data
        raise self._error(status, data, "GET", path)


def _says_try_again(message: str | None) -> bool:
    return (message or "").rstrip(" .").lower().endswith(("try again later", "try again"))


def _setting_error(response: requests.Response) -> bool:
    """True when the agent's JSON error names a wrong setting rather than an outage: not worth a retry."""
    try:
        data = response.json()
    except ValueError:
        return False
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return False
    # database_unavailable may be an outage (retried) or a refused login: the code does not tell.
    return error.get("code") in SETUP_CODES


def _connection_reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("getaddrinfo failed", "host name not found"),
        ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
        ("timed out", "connection timed out"),
    ):
        if needle in text:
            return reason
    return text
