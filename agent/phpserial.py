"""Reading (and, for fixtures, writing) PHP ``serialize()`` data without executing anything.

Magento 1 stores ``sales_flat_order_item.product_options`` and payment ``additional_information`` this way, and
some Magento 2 shops kept such values after the 2.2 JSON migration. Objects are returned as plain dicts (their
class name under ``"__class__"``); nothing is ever instantiated. String lengths in the format count bytes, so
parsing works on the UTF-8 encoding of the text.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


class PhpSerialError(ValueError):
    """The text is not valid PHP-serialized data."""


def loads(data: str | bytes) -> Any:
    """Decode one serialized value; the whole input must be consumed."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    parser = _Parser(raw)
    value = parser.value(depth=0)
    if parser.pos != len(raw):
        raise PhpSerialError(f"unexpected data after the value at byte {parser.pos}")
    return value


def looks_serialized(text: str) -> bool:
    """A cheap test before trying ``loads``: PHP values start with a type letter and a colon (or ``N;``)."""
    return len(text) >= 2 and (text[:2] in ("a:", "s:", "i:", "d:", "b:", "O:") or text == "N;")


_MAX_DEPTH = 64


class _Parser:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0

    def _fail(self, what: str) -> PhpSerialError:
        return PhpSerialError(f"{what} at byte {self.pos}")

    def _expect(self, token: bytes) -> None:
        if self.raw[self.pos : self.pos + len(token)] != token:
            raise self._fail(f"expected {token.decode()!r}")
        self.pos += len(token)

    def _until(self, stop: bytes) -> bytes:
        end = self.raw.find(stop, self.pos)
        if end < 0:
            raise self._fail(f"missing {stop.decode()!r}")
        chunk = self.raw[self.pos : end]
        self.pos = end + len(stop)
        return chunk

    def _int(self, stop: bytes) -> int:
        chunk = self._until(stop)
        try:
            return int(chunk)
        except ValueError:
            raise self._fail(f"bad integer {chunk!r}") from None

    def _string(self) -> str:
        length = self._int(b":")
        self._expect(b'"')
        chunk = self.raw[self.pos : self.pos + length]
        if len(chunk) != length:
            raise self._fail("string shorter than its declared length")
        self.pos += length
        self._expect(b'"')
        try:
            return chunk.decode("utf-8")
        except UnicodeDecodeError:
            # Old shops wrote Latin-1 into utf8 tables now and then; keep the text rather than fail the order.
            return chunk.decode("latin-1")

    def _entries(self, depth: int) -> dict[Any, Any]:
        count = self._int(b":")
        self._expect(b"{")
        result: dict[Any, Any] = {}
        for _ in range(count):
            key = self.value(depth + 1)
            if not isinstance(key, int | str):
                raise self._fail("array key must be an integer or a string")
            result[key] = self.value(depth + 1)
        self._expect(b"}")
        return result

    def value(self, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise self._fail("nesting too deep")
        kind = self.raw[self.pos : self.pos + 2]
        if kind == b"N;":
            self.pos += 2
            return None
        self.pos += 2
        if kind == b"i:":
            return self._int(b";")
        if kind == b"b:":
            flag = self._until(b";")
            if flag not in (b"0", b"1"):
                raise self._fail("bad boolean")
            return flag == b"1"
        if kind == b"d:":
            chunk = self._until(b";").decode("ascii", "replace")
            if chunk in ("INF", "-INF", "NAN"):
                return chunk
            try:
                return Decimal(chunk)
            except ArithmeticError:
                raise self._fail(f"bad number {chunk!r}") from None
        if kind == b"s:":
            text = self._string()
            self._expect(b";")
            return text
        if kind == b"a:":
            entries = self._entries(depth)
            # PHP has one array type; a list in PHP is an array keyed 0..n-1, which Python callers expect as a list.
            if list(entries) == list(range(len(entries))):
                return list(entries.values())
            return entries
        if kind == b"O:":
            name = self._string()
            self._expect(b":")
            members = self._entries(depth)
            return {"__class__": name, **{str(k): v for k, v in members.items()}}
        self.pos -= 2
        raise self._fail(f"unknown value type {kind!r}")


def dumps(value: Any) -> str:
    """Serialize dicts, lists, strings, numbers, booleans and None the way PHP's ``serialize()`` does."""
    return _dump(value)


def _dump(value: Any) -> str:
    if value is None:
        return "N;"
    if isinstance(value, bool):
        return f"b:{int(value)};"
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, float | Decimal):
        return f"d:{value};"
    if isinstance(value, str):
        return f's:{len(value.encode("utf-8"))}:"{value}";'
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if isinstance(value, dict):
        body = "".join(_dump(k if isinstance(k, int) else str(k)) + _dump(v) for k, v in value.items())
        return f"a:{len(value)}:{{{body}}}"
    raise TypeError(f"cannot serialize {type(value).__name__}")
