"""The wire contract shared by agent and client: request signing and cursor encoding.

Framework-free on purpose: the client imports this module without pulling in Flask.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from urllib.parse import quote

HEADER_KEY = "X-Koppel-Key"
HEADER_TIMESTAMP = "X-Koppel-Timestamp"
HEADER_NONCE = "X-Koppel-Nonce"
HEADER_SIGNATURE = "X-Koppel-Signature"

MAX_CLOCK_SKEW_SECONDS = 300
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _encode(value: str) -> str:
    # RFC 3986: unreserved characters stay, everything else (space too) is %XX.
    return quote(value, safe="-._~")


def canonical_query(params: Iterable[tuple[str, str]] | Mapping[str, str] | None) -> str:
    """Sort query parameters by name, then value, and percent-encode each per RFC 3986."""
    if params is None:
        return ""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    encoded = sorted((_encode(str(k)), _encode(str(v))) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def string_to_sign(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]] | Mapping[str, str] | None,
    timestamp: str,
    nonce: str,
    body: bytes,
) -> bytes:
    body_hash = hashlib.sha256(body or b"").hexdigest()
    parts = [method.upper(), path, canonical_query(query), str(timestamp), nonce, body_hash]
    return "\n".join(parts).encode("utf-8")


def sign(
    secret: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]] | Mapping[str, str] | None,
    timestamp: str,
    nonce: str,
    body: bytes,
) -> str:
    """Lower-case hex HMAC-SHA256 of the canonical request."""
    message = string_to_sign(method, path, query, timestamp, nonce, body)
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def signed_headers(
    key_id: str,
    secret: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
    body: bytes = b"",
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four X-Koppel-* headers for one request."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nc = nonce or new_nonce()
    return {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: ts,
        HEADER_NONCE: nc,
        HEADER_SIGNATURE: sign(secret, method, path, query, ts, nc, body),
    }


def signatures_match(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex signatures."""
    return hmac.compare_digest(expected.encode("ascii", "replace"), given.encode("ascii", "replace"))
