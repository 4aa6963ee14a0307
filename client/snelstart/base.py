"""The one interface every SnelStart backend implements (local, b2b, desktop).

Vocabulary is SnelStart's own. Values are plain dataclasses; money and quantities are Decimal.
Lookups used by customer matching take *normalised* keys from ``client.rules.normalize`` so that
each backend can answer them from an index (the local SQLite file, or the b2b mirror in the state
store) instead of scanning or calling the API per order.

Errors: a backend raises ``SnelStartRefusal`` when SnelStart refuses a write for a reason that will
not change by retrying (a rule broken, a field too long), ``SnelStartUnavailable`` when the outcome
is unknown or the service cannot be reached (the engine retries later and looks before it creates).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

# procesStatus values of a verkooporder (B2B enum); "Order" is the concept order "zonder afdruk".
PROCES_STATUSES = (
    "Order",
    "Offerte",
    "Bevestiging",
    "Werkbon",
    "Pakbon",
    "Afhaalbon",
    "Contantbon",
    "Factuur",
)

# companyInfo.verkooporderVoorraadVanafNiveau: from which level a verkooporder lowers free stock.
VOORRAAD_NIVEAUS = (
    "Alle",
    "Offerte",
    "BackOrder",
    "Bevestiging",
    "Werkbon",
    "PakbonEnAfhaalbon",
    "FactuurEnContantbon",
)


class SnelStartError(Exception):
    """Base of every backend error; the message is shown to the user as is."""


class SnelStartRefusal(SnelStartError):
    """SnelStart refused the request; retrying the same request will fail the same way."""


class SnelStartUnavailable(SnelStartError):
    """SnelStart could not be reached or the outcome of a write is unknown."""


@dataclass
class Adres:
    contactpersoon: str | None = None
    straat: str | None = None  # SnelStart keeps street lines in one field, lines joined by "\n" or ", "
    postcode: str | None = None
    plaats: str | None = None
    land: str | None = None  # ISO 3166-1 alpha-2 ("NL")


@dataclass
class EmailVersturen:
    """One of SnelStart's e-mail settings of a relatie (factuur, offerte, bevestiging, aanmaning)."""

    email: str | None = None  # "to"
    cc: str | None = None


@dataclass
class Relatie:
    id: str  # backend id (uuid in B2B, row id in local)
    relatiecode: int
    naam: str
    vestigingsadres: Adres = field(default_factory=Adres)
    correspondentieadres: Adres | None = None
    telefoon: str | None = None
    mobiele_telefoon: str | None = None
    email: str | None = None
    factuur_email: EmailVersturen = field(default_factory=EmailVersturen)
    offerte_email: EmailVersturen = field(default_factory=EmailVersturen)
    bevestiging_email: EmailVersturen = field(default_factory=EmailVersturen)
    aanmaning_email: EmailVersturen = field(default_factory=EmailVersturen)
    btw_nummer: str | None = None
    kvk_nummer: str | None = None
    krediettermijn: int | None = None
    relatiesoort: tuple[str, ...] = ("Klant",)
    extra_velden: dict[str, str] = field(default_factory=dict)
    nonactief: bool = False
    modified_on: dt.datetime | None = None


@dataclass
class NieuweRelatie:
    """A relatie to create; SnelStart assigns the relatiecode when ``relatiecode`` is None."""

    naam: str
    vestigingsadres: Adres
    correspondentieadres: Adres | None = None
    telefoon: str | None = None
    email: str | None = None
    factuur_email: EmailVersturen = field(default_factory=EmailVersturen)
    btw_nummer: str | None = None
    kvk_nummer: str | None = None
    krediettermijn: int | None = None
    relatiecode: int | None = None
    extra_velden: dict[str, str] = field(default_factory=dict)


@dataclass
class ReceptRegel:
    artikel_id: str
    artikelcode: str
    aantal: Decimal  # per unit of the composite article


@dataclass
class Artikel:
    id: str
    artikelcode: str
    omschrijving: str
    omzetgroep_id: str | None = None
    verkoopprijs: Decimal = Decimal("0")
    inkoopprijs: Decimal | None = None
    eenheid: str | None = None
    voorraad_controle: bool = False
    technische_voorraad: Decimal = Decimal("0")
    vrije_voorraad: Decimal = Decimal("0")
    extra_velden: dict[str, str] = field(default_factory=dict)
    recept: list[ReceptRegel] = field(default_factory=list)
    recept_plaatsing: Literal["always", "choice"] | None = None  # "altijd plaatsen" / "keuze"
    is_non_actief: bool = False
    modified_on: dt.datetime | None = None


@dataclass
class NieuwArtikel:
    artikelcode: str
    omschrijving: str
    omzetgroep_id: str  # required by SnelStart for a new article
    verkoopprijs: Decimal = Decimal("0")
    voorraad_controle: bool = False
    extra_velden: dict[str, str] = field(default_factory=dict)


@dataclass
class Omzetgroep:
    id: str
    nummer: int
    omschrijving: str
    btw_soort: str | None = None  # verkoopNederlandBtwSoort: "Geen" | "Laag" | "Hoog" | "Overig"
    btw_percentage: Decimal | None = None  # the current rate of that btw_soort


@dataclass
class Verkoopsjabloon:
    id: str
    omschrijving: str
    prijs_incl_btw: bool  # B2B: not prijsIngaveExclusiefBtw
    kostensoort_1: str | None = None  # label of footer cost type 1 on this template (None: not available)
    kostensoort_2: str | None = None
    nonactief: bool = False


@dataclass
class OrderRegel:
    artikel_id: str | None  # None: a text-only line
    omschrijving: str
    aantal: Decimal = Decimal("1")
    stuksprijs: Decimal = Decimal("0")  # in the template's VAT mode
    kortings_percentage: Decimal = Decimal("0")
    btw_percentage: Decimal | None = None  # informational; SnelStart takes VAT from the article's omzetgroep


@dataclass
class NieuweVerkooporder:
    relatie_id: str
    datum: dt.date
    sjabloon_id: str | None
    prijs_incl_btw: bool
    omschrijving: str | None
    betalingskenmerk: str | None
    regels: list[OrderRegel]
    factuuradres: Adres | None = None  # None: SnelStart takes the relatie's card
    afleveradres: Adres | None = None
    kostensoort_1: Decimal | None = None  # footer costs (in the template's VAT mode)
    kostensoort_2: Decimal | None = None
    krediettermijn: int | None = None
    memo: str | None = None
    orderreferentie: str | None = None
    proces_status: str = "Order"


@dataclass
class Verkooporder:
    id: str
    nummer: int  # assigned by SnelStart
    relatie_id: str
    datum: dt.date
    betalingskenmerk: str | None
    omschrijving: str | None
    sjabloon_id: str | None
    proces_status: str
    totaal_excl_btw: Decimal
    totaal_incl_btw: Decimal
    regels: list[OrderRegel] = field(default_factory=list)
    kostensoort_1: Decimal | None = None
    kostensoort_2: Decimal | None = None
    factuuradres: Adres | None = None
    afleveradres: Adres | None = None


@dataclass
class PrijsAfspraak:
    relatie_id: str
    artikel_id: str
    vanaf_aantal: Decimal = Decimal("1")
    prijs: Decimal | None = None  # fixed price, or
    kortings_percentage: Decimal | None = None  # a discount on the article price


@runtime_checkable
class SnelStartBackend(Protocol):
    """What the engine needs from SnelStart. Implemented by local, b2b and desktop."""

    name: str  # "local" | "b2b" | "desktop"

    # -- administration ---------------------------------------------------------------------------------
    def administration_name(self) -> str: ...

    def voorraad_vanaf_niveau(self) -> str:
        """companyInfo.verkooporderVoorraadVanafNiveau (one of VOORRAAD_NIVEAUS)."""
        ...

    def refresh(self) -> None:
        """Bring any cache/mirror up to date (b2b: relaties and artikelen by ModifiedOn). Local: no-op."""
        ...

    def close(self) -> None: ...

    # -- relaties (matching lookups take normalised keys, see client.rules.normalize) ---------------------
    def get_relatie(self, relatie_id: str) -> Relatie | None: ...

    def relaties_by_code(self, relatiecode: int) -> list[Relatie]: ...

    def relaties_by_email(self, email_key: str, *, all_fields: bool) -> list[Relatie]:
        """``all_fields`` False: the main e-mail only; True: also factuur/offerte/bevestiging/aanmaning to and cc."""
        ...

    def relaties_by_email_fields(self, email_key: str, fields: tuple[str, ...]) -> list[Relatie]:
        """Search the named e-mail fields only: any of "email", "factuur", "factuur_cc", "offerte",
        "offerte_cc", "bevestiging", "bevestiging_cc", "aanmaning", "aanmaning_cc"."""
        ...

    def relaties_by_vat(self, vat_key: str) -> list[Relatie]: ...

    def relaties_by_kvk(self, kvk_key: str) -> list[Relatie]: ...

    def relaties_by_name(
        self, name_key: str, land: str | None, postcode_key: str | None
    ) -> list[Relatie]: ...

    def relaties_by_extra_veld(self, veld: str, waarde: str) -> list[Relatie]: ...

    def create_relatie(self, relatie: NieuweRelatie) -> Relatie: ...

    def update_relatie(self, relatie: Relatie) -> Relatie: ...

    # -- artikelen ----------------------------------------------------------------------------------------
    def get_artikel(self, artikel_id: str) -> Artikel | None: ...

    def artikelen_by_code(self, code: str, code_field: str = "artikelcode") -> list[Artikel]:
        """``code_field`` is "artikelcode" or the name of an extra field on articles."""
        ...

    def create_artikel(self, artikel: NieuwArtikel) -> Artikel: ...

    def update_artikel(self, artikel: Artikel) -> Artikel: ...

    def omzetgroepen(self) -> list[Omzetgroep]: ...

    def prijsafspraken(self, relatie_id: str, artikel_id: str) -> list[PrijsAfspraak]: ...

    def stock_artikelen(self) -> list[Artikel]:
        """Every active article with voorraad_controle, with its vrije_voorraad (and recept).

        Must raise (never return a partial list) when the read fails."""
        ...

    def recipe_artikelen(self) -> list[Artikel]:
        """Every active composite (recipe) article without voorraad_controle of its own, with its recept: the
        shop may sell as many as its parts allow.

        Must raise (never return a partial list) when the read fails."""
        ...

    # -- verkooporders ------------------------------------------------------------------------------------
    def sjablonen(self) -> list[Verkoopsjabloon]: ...

    def last_order_sjabloon(self, relatie_id: str) -> str | None:
        """Template id of the relatie's latest order or invoice, None when it has none."""
        ...

    def verkooporders_by_betalingskenmerk(self, betalingskenmerk: str) -> list[Verkooporder]: ...

    def open_web_orders(self) -> list[Verkooporder]:
        """Orders in procesStatus "Order" that carry a betalingskenmerk (unprocessed web orders), with lines."""
        ...

    def create_verkooporder(self, order: NieuweVerkooporder) -> Verkooporder: ...
