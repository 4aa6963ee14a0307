"""Normalisation of the values customer matching compares. Pure functions; every backend indexes on these."""

from __future__ import annotations

import re
import unicodedata

# Legal forms removed before names are compared (lower case, dots and spaces already gone).
LEGAL_FORMS = (
    "bv",
    "nv",
    "vof",
    "cv",
    "gmbh",
    "ag",
    "kg",
    "ug",
    "ohg",
    "ev",
    "bvba",
    "bvio",
    "vzw",
    "sprl",
    "srl",
    "sa",
    "ltd",
    "limited",
    "llc",
    "inc",
    "sarl",
    "eenmanszaak",
    "stichting",
    "holding",
)
_LEGAL_SET = frozenset(LEGAL_FORMS)


def email_key(email: str | None) -> str | None:
    """E-mail as compared: trimmed and lower-cased; None when empty."""
    if not email:
        return None
    value = email.strip().lower()
    return value or None


def postcode_key(postcode: str | None) -> str | None:
    """Postcode without spaces and dashes, upper case (``1234 ab`` → ``1234AB``)."""
    if not postcode:
        return None
    value = re.sub(r"[\s\-]", "", postcode).upper()
    return value or None


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def name_key(name: str | None) -> str | None:
    """Name as compared: no accents, spaces, dots or punctuation, lower case, legal form removed."""
    if not name:
        return None
    value = strip_accents(name).lower().replace(".", "")
    tokens = [t for t in re.split(r"[^0-9a-zß]+", value) if t]
    kept = [t for t in tokens if t not in _LEGAL_SET] or tokens
    value = "".join(kept)
    return value or None


def vat_key(vat: str | None, country: str | None = None) -> str | None:
    """VAT number with its country prefix, upper case, alphanumeric only.

    ``NL 8123.45.678.B01`` and ``812345678B01`` with country ``NL`` both become ``NL812345678B01``.
    Greece uses ``EL`` as VAT prefix although its ISO code is ``GR``.
    """
    if not vat:
        return None
    value = re.sub(r"[^0-9A-Za-z]", "", vat).upper()
    if not value:
        return None
    prefix = vat_prefix(country) if country else None
    if value[:2].isalpha():
        return value
    if prefix:
        return prefix + value
    return value


def vat_prefix(country: str | None) -> str | None:
    if not country:
        return None
    code = country.strip().upper()
    return "EL" if code == "GR" else code


def kvk_key(kvk: str | None) -> str | None:
    """KvK number: digits only."""
    if not kvk:
        return None
    value = re.sub(r"\D", "", kvk)
    return value or None
