"""Finding, creating and updating the SnelStart customer (relatie) of a Magento order (manual 2.6).

``match_customer`` walks the steps of ``customers.matching``; a step that finds several customers stops the
order (``OrderFailure`` naming them) rather than guessing. ``resolve_customer`` then applies
``customers.processing``: create, update, or fall back to ``customers.default_code``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from client.config import CustomersSettings
from client.rules.errors import OrderFailure, fit, fits_or_none
from client.rules.journal import Change, Journal, ignore
from client.rules.normalize import email_key, kvk_key, name_key, postcode_key, vat_key, vat_prefix
from client.snelstart.base import Adres, NieuweRelatie, Relatie, SnelStartBackend

# Magento customer attributes that may carry the SnelStart customer number, in the order they are tried.
CODE_ATTRIBUTES = ("klantcode", "klantnr", "klantnummer", "debiteurnr", "debiteurnummer")
KVK_ATTRIBUTES = ("kvk", "kvknummer", "kvk_nummer")

# The e-mail search of the `email` modes: main address, then invoice (to, cc), then the other mailings.
EMAIL_STEPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("main e-mail", ("email",)),
    ("invoice e-mail", ("factuur", "factuur_cc")),
    (
        "quote/confirmation/reminder e-mail",
        ("offerte", "offerte_cc", "bevestiging", "bevestiging_cc", "aanmaning", "aanmaning_cc"),
    ),
)

PLACEHOLDER_RELATIE_ID = "(new customer)"


@dataclass
class MatchResult:
    relatie: Relatie | None  # None: no customer found, a new one is due
    step: str | None = None  # which step matched, e.g. "customer_code", "email (invoice e-mail)", "vat"
    code: int | None = None  # the customer number Magento carries, when it carries one
    candidates: list[Relatie] = field(default_factory=list)


@dataclass
class CustomerOutcome:
    relatie: Relatie | None  # None only in a dry run for a customer that would be created
    relatie_id: str
    created: bool = False
    updated: bool = False
    step: str | None = None


# -- reading the ORDER ----------------------------------------------------------------------------------------


def customer_code(order: dict[str, Any], *, required: bool) -> int | None:
    """The SnelStart customer number from the Magento customer attributes, or None (OrderFailure if required)."""
    attributes = (order.get("customer") or {}).get("attributes") or {}
    for name in CODE_ATTRIBUTES:
        raw = attributes.get(name)
        if raw is None or not str(raw).strip():
            continue
        text = str(raw).strip()
        if not text.isdigit() or int(text) <= 0:
            raise OrderFailure(
                f"customer attribute {name} = {text!r} is not a SnelStart customer number (a positive whole number)"
            )
        return int(text)
    if required:
        raise OrderFailure(
            "customers.matching customer_code: the Magento customer has no attribute "
            f"{', '.join(CODE_ATTRIBUTES)} with a value (guest orders never have one)"
        )
    return None


def order_email(order: dict[str, Any]) -> str | None:
    customer = order.get("customer") or {}
    billing = order.get("billing_address") or {}
    return email_key(customer.get("email")) or email_key(billing.get("email"))


def _postcodes(order: dict[str, Any]) -> tuple[str | None, str | None]:
    billing = order.get("billing_address") or {}
    shipping = order.get("shipping_address") or {}
    return postcode_key(billing.get("postcode")), postcode_key(shipping.get("postcode"))


def _relatie_postcodes(relatie: Relatie) -> set[str]:
    keys = {postcode_key(relatie.vestigingsadres.postcode)}
    if relatie.correspondentieadres is not None:
        keys.add(postcode_key(relatie.correspondentieadres.postcode))
    return {k for k in keys if k}


def _names(relaties: list[Relatie]) -> str:
    return ", ".join(f"{r.relatiecode} {r.naam}" for r in relaties)


def is_klant(relatie: Relatie) -> bool:
    """Only a relatie of soort Klant can be a sales order's customer (SnelStart refuses others, VOR-0002)."""
    return "Klant" in relatie.relatiesoort


def _unique(hits: list[Relatie]) -> list[Relatie]:
    """The customers among the hits, each once: suppliers (Leverancier) with the same data never match."""
    seen: dict[str, Relatie] = {}
    for relatie in hits:
        if is_klant(relatie):
            seen.setdefault(relatie.id, relatie)
    return list(seen.values())


def _not_a_klant(relatie: Relatie) -> str:
    soort = ", ".join(relatie.relatiesoort) or "no relatiesoort"
    return f"relatie {relatie.relatiecode} {relatie.naam} is a {soort}, not a Klant"


def _ambiguous(what: str, hits: list[Relatie]) -> OrderFailure:
    return OrderFailure(
        f"several SnelStart customers match {what}: {_names(hits)}; make the data unique in SnelStart "
        "or choose another customers.matching"
    )


# -- matching -------------------------------------------------------------------------------------------------


def match_customer(
    order: dict[str, Any], settings: CustomersSettings, backend: SnelStartBackend
) -> MatchResult:
    mode = settings.matching
    if mode == "customer_code":
        code = customer_code(order, required=True)
        assert code is not None
        return _by_code(code, backend) or MatchResult(None, code=code)
    code = customer_code(order, required=False)
    if mode in ("code_or_email", "code_or_email_and_postcode", "smart") and code is not None:
        found = _by_code(code, backend)
        if found is not None:
            return found
    if mode in ("email", "code_or_email"):
        result = _by_email_steps(order, backend, postcode=False)
    elif mode in ("email_and_postcode", "code_or_email_and_postcode"):
        result = _by_email_steps(order, backend, postcode=True)
    else:
        result = _smart(order, backend)
    result.code = code
    return result


def _by_code(code: int, backend: SnelStartBackend) -> MatchResult | None:
    every = backend.relaties_by_code(code)
    found = _unique(every)
    if every and not found:
        raise OrderFailure(
            f"the Magento customer carries customer number {code}, but SnelStart {_not_a_klant(every[0])}; "
            f"correct the customer's {'/'.join(CODE_ATTRIBUTES)} attribute in Magento"
        )
    hits = [r for r in found if not r.nonactief]
    if found and not hits:
        raise OrderFailure(f"customer number {code} ({found[0].naam}) is inactive in SnelStart")
    if len(hits) > 1:
        raise _ambiguous(f"customer number {code}", hits)
    return MatchResult(hits[0], "customer_code", code) if hits else None


def _by_email_steps(order: dict[str, Any], backend: SnelStartBackend, *, postcode: bool) -> MatchResult:
    key = order_email(order)
    if key is None:
        return MatchResult(None)
    # The "verzendpostcode" of the manual: the delivery postcode, the billing one for orders without delivery.
    billing_pc, shipping_pc = _postcodes(order)
    wanted = shipping_pc or billing_pc
    for label, fields in EMAIL_STEPS:
        hits = _unique(backend.relaties_by_email_fields(key, fields))
        if postcode:
            hits = [
                r for r in hits if wanted is not None and postcode_key(r.vestigingsadres.postcode) == wanted
            ]
        if len(hits) > 1:
            extra = f" and postcode {wanted}" if postcode else ""
            raise _ambiguous(f"the e-mail {key}{extra} ({label})", hits)
        if hits:
            step = f"email_and_postcode ({label})" if postcode else f"email ({label})"
            return MatchResult(hits[0], step)
    return MatchResult(None)


def _smart(order: dict[str, Any], backend: SnelStartBackend) -> MatchResult:
    billing = order.get("billing_address") or {}
    customer = order.get("customer") or {}
    country = (billing.get("country") or "").upper() or None

    key = order_email(order)
    if key is not None:
        hits = _unique(backend.relaties_by_email(key, all_fields=True))
        if len(hits) > 1:
            postcodes = {pc for pc in _postcodes(order) if pc}
            narrowed = [r for r in hits if _relatie_postcodes(r) & postcodes]
            if len(narrowed) != 1:
                raise _ambiguous(f"the e-mail {key} (also after comparing postcodes)", narrowed or hits)
            return MatchResult(narrowed[0], "email + postcode")
        if hits:
            return MatchResult(hits[0], "email")

    vat = vat_key(billing.get("vat_id") or customer.get("taxvat"), country)
    if vat is not None:
        hits = _unique(backend.relaties_by_vat(vat))
        if len(hits) > 1:
            raise _ambiguous(f"VAT number {vat}", hits)
        if hits:
            return MatchResult(hits[0], "vat")

    attributes = customer.get("attributes") or {}
    kvk = next((kvk_key(str(attributes[a])) for a in KVK_ATTRIBUTES if attributes.get(a)), None)
    if kvk is not None:
        hits = [
            r
            for r in _unique(backend.relaties_by_kvk(kvk))
            if country is None or (r.vestigingsadres.land or "").upper() == country
        ]
        if len(hits) > 1:
            raise _ambiguous(f"KvK number {kvk} in {country}", hits)
        if hits:
            return MatchResult(hits[0], "kvk")

    postcode = postcode_key(billing.get("postcode"))
    for name in (billing.get("company"), customer.get("company"), _person(billing), customer.get("name")):
        nkey = name_key(name)
        if nkey is None:
            continue
        hits = _unique(backend.relaties_by_name(nkey, country, postcode))
        if len(hits) > 1:
            raise _ambiguous(f"the name {name!r} with postcode {postcode} in {country}", hits)
        if hits:
            return MatchResult(hits[0], "name")
    return MatchResult(None)


# -- building and applying ------------------------------------------------------------------------------------


def _person(address: dict[str, Any]) -> str | None:
    parts = [address.get(k) for k in ("firstname", "middlename", "lastname")]
    text = " ".join(str(p).strip() for p in parts if p and str(p).strip())
    return text or None


def order_adres(address: dict[str, Any] | None, warnings: list[str], what: str) -> Adres | None:
    """A Magento ADDRESS as SnelStart address: street lines joined, company name first when both are given."""
    if not address:
        return None
    person = _person(address)
    company = (address.get("company") or "").strip() or None
    street = " ".join(str(s).strip() for s in (address.get("street") or []) if s and str(s).strip())
    postcode = (address.get("postcode") or "").strip() or None
    if postcode is not None and len(postcode) > 25:
        raise OrderFailure(f"{what}: postcode {postcode!r} is longer than SnelStart's 25 characters")
    contact = person if company else None
    return Adres(
        contactpersoon=fit(contact, "contactpersoon", f"{what} contact person", warnings),
        straat=fit(street or None, "straat", f"{what} street", warnings),
        postcode=postcode,
        plaats=fit(address.get("city"), "plaats", f"{what} city", warnings),
        land=(address.get("country") or "NL").upper(),
    )


def _naam(order: dict[str, Any]) -> str:
    billing = order.get("billing_address") or {}
    customer = order.get("customer") or {}
    return (
        (billing.get("company") or "").strip()
        or (customer.get("company") or "").strip()
        or (_person(billing) or "")  # the invoice's addressee, who may differ from the account holder
        or (customer.get("name") or "").strip()
        or (customer.get("email") or "")
    )


def _vat_number(typed: str | None, country: str, warnings: list[str]) -> str | None:
    """The VAT number as SnelStart stores it, or None (with a warning) when SnelStart would refuse it: a number
    of another country than the address, or a Dutch number not of the form NLnnnnnnnnnBnn."""
    key = vat_key(typed, country)
    if key is None:
        return None
    prefix = vat_prefix(country)
    if prefix and not key.startswith(prefix):
        warnings.append(
            f"VAT number {typed!r} left out: it is not a number of {country}, the billing country"
        )
        return None
    if prefix == "NL" and not re.fullmatch(r"NL\d{9}B\d{2}", key):
        warnings.append(f"VAT number {typed!r} left out: not a Dutch VAT number (NLnnnnnnnnnBnn)")
        return None
    return fits_or_none(key, "btw_nummer", "VAT number", warnings)


def new_relatie(
    order: dict[str, Any], settings: CustomersSettings, code: int | None, warnings: list[str]
) -> NieuweRelatie:
    billing = order.get("billing_address") or order.get("shipping_address")
    if not billing:
        raise OrderFailure("the order has no billing address to create the customer from")
    customer = order.get("customer") or {}
    country = (billing.get("country") or "NL").upper()
    naam = fit(_naam(order), "naam", "customer name", warnings)
    if not naam:
        raise OrderFailure("the order carries no name, company or e-mail to create the customer with")
    vestiging = order_adres(billing, warnings, "billing address")
    assert vestiging is not None
    attributes = customer.get("attributes") or {}
    kvk = next((kvk_key(str(attributes[a])) for a in KVK_ATTRIBUTES if attributes.get(a)), None)
    return NieuweRelatie(
        naam=naam,
        vestigingsadres=vestiging,
        telefoon=fits_or_none(billing.get("telephone"), "telefoon", "telephone number", warnings),
        email=fits_or_none(customer.get("email") or billing.get("email"), "email", "e-mail", warnings),
        btw_nummer=_vat_number(billing.get("vat_id") or customer.get("taxvat"), country, warnings),
        kvk_nummer=fits_or_none(kvk, "kvk_nummer", "KvK number", warnings),
        krediettermijn=settings.payment_term_days,
        relatiecode=code,
    )


def updated_relatie(relatie: Relatie, fresh: NieuweRelatie) -> Relatie | None:
    """The relatie with the order's data applied, or None when nothing would change. Payment term stays."""
    changes: dict[str, Any] = {"naam": fresh.naam, "vestigingsadres": fresh.vestigingsadres}
    for name in ("telefoon", "email", "btw_nummer", "kvk_nummer"):
        value = getattr(fresh, name)
        if value is not None:  # an empty field in the shop never wipes what SnelStart knows
            changes[name] = value
    if all(getattr(relatie, k) == v for k, v in changes.items()):
        return None
    return dataclasses.replace(relatie, **changes)


def default_customer(settings: CustomersSettings, backend: SnelStartBackend) -> Relatie:
    """The active Klant ``customers.default_code`` names; OrderFailure saying what to fix otherwise."""
    code = settings.default_code
    every = backend.relaties_by_code(code) if code is not None else []
    hits = [r for r in every if not r.nonactief]
    if not hits:
        raise OrderFailure(
            f"customers.default_code {code}: no active SnelStart customer has this number; set it to the "
            "relatiecode of an active Klant"
        )
    if not is_klant(hits[0]):
        raise OrderFailure(
            f"customers.default_code {code}: SnelStart {_not_a_klant(hits[0])}; set it to the relatiecode of "
            "an active Klant"
        )
    return hits[0]


def resolve_customer(
    order: dict[str, Any],
    settings: CustomersSettings,
    backend: SnelStartBackend,
    *,
    dry_run: bool,
    actions: list[str],
    warnings: list[str],
    journal: Journal = ignore,
) -> CustomerOutcome:
    """The order's customer per ``customers.matching`` and ``customers.processing``; every creation or update
    in SnelStart is told to ``journal`` as soon as it is made."""
    match = match_customer(order, settings, backend)
    if match.relatie is not None:
        relatie = match.relatie
        if settings.processing == "add_and_update":
            changed = updated_relatie(relatie, new_relatie(order, settings, None, warnings))
            if changed is not None:
                actions.append(f"update customer {relatie.relatiecode} {relatie.naam}")
                if not dry_run:
                    changed = backend.update_relatie(changed)
                journal(Change("customer_updated", changed.naam, changed.relatiecode))
                return CustomerOutcome(changed, changed.id, updated=True, step=match.step)
        return CustomerOutcome(relatie, relatie.id, step=match.step)

    if settings.processing == "manual":
        if settings.default_code is None:
            raise OrderFailure(
                "no SnelStart customer matches this order and customers.processing is manual, "
                "but customers.default_code is not set"
            )
        relatie = default_customer(settings, backend)
        return CustomerOutcome(relatie, relatie.id, step="default_code")

    code = match.code
    if code is not None and backend.relaties_by_code(code):
        code = None  # taken (only possible when matching skipped the code); let SnelStart number it
    fresh = new_relatie(order, settings, code, warnings)
    actions.append(f"create customer {fresh.naam}" + (f" with number {code}" if code else ""))
    if dry_run:
        journal(Change("customer_created", fresh.naam))
        return CustomerOutcome(None, PLACEHOLDER_RELATIE_ID, created=True)
    created = backend.create_relatie(fresh)
    journal(Change("customer_created", created.naam, created.relatiecode or None))
    return CustomerOutcome(created, created.id, created=True)
