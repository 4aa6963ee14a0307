"""The one error the rules raise, and SnelStart's field lengths the rules respect."""

from __future__ import annotations


class OrderFailure(Exception):
    """This order cannot be imported as configured; the message tells the user which setting or data to fix."""


class ProfileError(Exception):
    """A setting of the profile that no order can be imported with (a template or omzetgroep SnelStart does not
    have); the run stops before the first order and the message names the setting and the fix."""


# SnelStart's field lengths (B2B API error codes REL-00xx / VOR-00xx; the desktop program has the same limits).
LIMITS = {
    "naam": 50,
    "contactpersoon": 50,
    "straat": 50,
    "postcode": 25,
    "plaats": 50,
    "telefoon": 25,
    "email": 250,
    "btw_nummer": 50,
    "kvk_nummer": 12,
    "regel_omschrijving": 250,
    "artikel_omschrijving": 250,
    "order_omschrijving": 250,
    "orderreferentie": 50,
    "betalingskenmerk": 50,
}


def fit(value: str | None, field: str, what: str, warnings: list[str]) -> str | None:
    """Shorten a text field where cutting it is harmless (names, streets, descriptions), with a warning."""
    if value is None:
        return None
    value = value.strip()
    limit = LIMITS[field]
    if len(value) <= limit:
        return value or None
    warnings.append(f"{what} shortened to {limit} characters: {value!r}")
    return value[:limit].rstrip()


def fits_or_none(value: str | None, field: str, what: str, warnings: list[str]) -> str | None:
    """For fields that must not be cut (e-mail, phone, VAT number): left out with a warning when too long."""
    if value is None:
        return None
    value = value.strip()
    if len(value) <= LIMITS[field]:
        return value or None
    warnings.append(f"{what} left out: longer than SnelStart's {LIMITS[field]} characters ({value!r})")
    return None
