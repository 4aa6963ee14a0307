"""How SnelStart decides the VAT of a sales order: from the relatie and the delivery address, not per line.

SnelStart computes the VAT of a verkooporder itself ("SnelStart rekent de te betalen btw uit en boekt op
grootboekrekening gekoppeld aan de artikelomzetgroep", research/snelstart.md §1.8 and §5 point 8): an order line
carries the Dutch rate of its article's omzetgroep (``verkoopNederlandBtwSoort``), unless the country the order
goes to makes the sale one without Dutch VAT. That country is the order's afleveradres when it has one, else the
relatie's vestigingsadres. A klant without btw-nummer counts as a private customer (particulier).

- the Netherlands: the omzetgroep's Dutch rate;
- another EU member state, the relatie has a btw-nummer: 0 % (intra-community supply, btw verlegd);
- outside the EU: 0 % (export);
- another EU member state, no btw-nummer (particulier): the Dutch rate as well.

Not modelled: with ``companyInfo.factureerBuitenlandsBtw`` on, SnelStart books an EU private customer at the
rate of his own country (OSS, rates from ``/v2/vatrates``). koppel does not switch that on and books the Dutch
rate; a shop that charges the foreign rate then sees the difference as a balancing line with a warning.

The local backend uses this to enforce SnelStart's rule, the sales-order rules to foresee SnelStart's total.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from client.snelstart.base import Adres

# The administration's country: an omzetgroep carries its rates.
HOME_COUNTRY = "NL"

# The member states of the European Union (27 since 1 February 2020), by ISO 3166-1 alpha-2 code. Greece is GR
# here; its VAT numbers start with EL. Territories outside the EU VAT area that share a member state's code
# (Canary Islands, Åland, Mount Athos, ...) cannot be told apart by country code and count as that state.
EU_MEMBER_STATES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip

Kind = Literal["domestic", "intra_eu", "export", "eu_consumer"]


@dataclass(frozen=True)
class OrderVat:
    """The VAT treatment SnelStart gives one sales order."""

    country: str  # ISO code of the country the order goes to
    kind: Kind
    btw_nummer: str | None = None

    @property
    def dutch_rates(self) -> bool:
        """Whether the lines carry their omzetgroep's Dutch rate (else every line is at 0 %)."""
        return self.kind in ("domestic", "eu_consumer")

    def rate(self, dutch_rate: Decimal) -> Decimal:
        """The VAT % SnelStart books on a line whose omzetgroep carries ``dutch_rate``."""
        return dutch_rate if self.dutch_rates else Decimal("0")

    def describe(self) -> str:
        """How and why SnelStart books the order, to follow "SnelStart books this order" in a warning."""
        if self.kind == "intra_eu":
            return (
                f"at 0 % VAT, delivered in {self.country} (EU) to a relatie with btw-nummer {self.btw_nummer} "
                "(intra-community supply, btw verlegd)"
            )
        if self.kind == "export":
            return f"at 0 % VAT, delivered in {self.country}, outside the EU (export)"
        if self.kind == "eu_consumer":
            return (
                f"at the Dutch rates, delivered in {self.country} (EU) to a relatie without btw-nummer (a private "
                "customer; VAT of the customer's country (OSS) is not booked)"
            )
        return "at the Dutch rates"


def order_country(afleveradres: Adres | None, vestigingsadres: Adres | None) -> str:
    """The country SnelStart takes the order's VAT from: the afleveradres of the order if it has one, else the
    relatie's vestigingsadres; a missing country is Nederland, as SnelStart fills it in."""
    adres = afleveradres if afleveradres is not None else vestigingsadres
    land = (adres.land if adres is not None else None) or HOME_COUNTRY
    return land.strip().upper() or HOME_COUNTRY


def order_vat(country: str, btw_nummer: str | None) -> OrderVat:
    """SnelStart's VAT treatment of an order going to ``country`` for a relatie with ``btw_nummer``."""
    country = country.strip().upper()
    number = (btw_nummer or "").strip() or None
    if country == HOME_COUNTRY:
        return OrderVat(country, "domestic", number)
    if country not in EU_MEMBER_STATES:
        return OrderVat(country, "export", number)
    if number is not None:
        return OrderVat(country, "intra_eu", number)
    return OrderVat(country, "eu_consumer")
