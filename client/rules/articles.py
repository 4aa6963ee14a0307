"""Finding, creating and updating SnelStart articles for Magento SKUs (manual 2.5), and recipe expansion.

One ``ArticleResolver`` serves one order: it remembers what it found or created, so a SKU that appears twice
is looked up (and created) once, and it records every change as an action line for the run log / dry run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal

from client.config import ArticlesSettings, OrdersSettings
from client.rules.errors import OrderFailure, fit
from client.rules.journal import Change, Journal, ignore
from client.snelstart.base import Artikel, NieuwArtikel, Omzetgroep, SnelStartBackend
from client.snelstart.vat import HOME_COUNTRY

PLACEHOLDER_PREFIX = "(new article) "
# The btw-soorten whose rate the administration's btw tarieven fix; "Overig" has no rate of its own.
RATED_SOORTEN = ("Hoog", "Laag", "Geen")
# The btw-soorten whose rates are the administration's Dutch VAT rates above 0 %.
DUTCH_SOORTEN = ("Hoog", "Laag")
# HOME_COUNTRY, the administration's country: an omzetgroep carries its (Dutch) rates. Orders delivered elsewhere
# are charged 0 % (intra-EU reverse charge, export), the Dutch rate (a small shop without OSS charges its EU
# consumers Dutch VAT) or the customer's country's rate (OSS); SnelStart takes its treatment from the relatie and
# the delivery address, not from the article (client.snelstart.vat).


def percent(rate: Decimal | None) -> str:
    """A VAT rate for people: 9 %, not 9.0000 %."""
    return "?" if rate is None else f"{rate.normalize():f} %"


def mapping_entry(rate: Decimal, named: int | str) -> str:
    """One entry of an ``articles.revenue_group`` mapping as the user wrote it."""
    return f"articles.revenue_group {{{Decimal(rate).normalize():f}: {named}}}"


def _group(groep: Omzetgroep) -> str:
    return f"{groep.nummer} {groep.omschrijving!r} ({percent(groep.btw_percentage)})"


@dataclass
class ArticleResolver:
    articles: ArticlesSettings
    orders: OrdersSettings
    backend: SnelStartBackend
    dry_run: bool = False
    actions: list[str] = field(default_factory=list)
    journal: Journal = ignore  # told of every article created, as it is created
    country: str = (
        HOME_COUNTRY  # where the order goes: abroad only a Dutch rate of Magento's is the article's
    )
    warnings: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    _by_sku: dict[str, Artikel] = field(default_factory=dict)
    _by_code: dict[str, Artikel] = field(default_factory=dict)
    _omzetgroepen: list[Omzetgroep] | None = None

    @property
    def domestic(self) -> bool:
        """Whether the order goes to the administration's country, so that Magento charged Dutch rates."""
        return self.country == HOME_COUNTRY

    def dutch_rate(self, rate: Decimal | None) -> bool:
        """Whether ``rate`` is above 0 % and one of the administration's Dutch rates (btw-tarief hoog or laag)."""
        if not rate:
            return False
        rates = {g.btw_percentage for g in self.omzetgroepen() if g.btw_soort in DUTCH_SOORTEN}
        return rate in (rates - {None} or {self.hoog_rate()})

    # -- lookups ----------------------------------------------------------------------------------------------

    def by_code(self, code: str, setting: str) -> Artikel:
        """An article named by a setting (cost lines, default article): it must exist, exactly once."""
        if code in self._by_code:
            return self._by_code[code]
        hits = [a for a in self.backend.artikelen_by_code(code, "artikelcode") if not a.is_non_actief]
        if not hits:
            raise OrderFailure(f"{setting}: article {code} does not exist in SnelStart (or is inactive)")
        if len(hits) > 1:
            raise OrderFailure(f"{setting}: several SnelStart articles have code {code}")
        self._by_code[code] = hits[0]
        return hits[0]

    def default_article(self, why: str) -> Artikel:
        if not self.orders.default_article:
            raise OrderFailure(f"{why}, and orders.default_article is not set")
        return self.by_code(self.orders.default_article, "orders.default_article")

    def for_sku(self, sku: str | None, name: str, price: Decimal, rate: Decimal | None = None) -> Artikel:
        """The article of a Magento SKU, per ``articles.processing``; ``price`` is the Magento unit price excl. VAT
        and ``rate`` the VAT % Magento charged on the line (None: not known), which a new article's omzetgroep
        must carry."""
        sku = (sku or "").strip()
        if not sku:
            self.warnings.append(f"item {name!r} has no SKU; booked on orders.default_article")
            return self.default_article(f"item {name!r} has no SKU")
        if sku in self._by_sku:
            return self._by_sku[sku]
        field_name = self.articles.code_field
        hits = self.backend.artikelen_by_code(sku, field_name)
        if len(hits) > 1:
            listed = ", ".join(f"{a.artikelcode} {a.omschrijving}" for a in hits)
            raise OrderFailure(f"SKU {sku} matches several SnelStart articles on {field_name}: {listed}")
        if hits:
            artikel = self._maybe_update(hits[0], name, price)
        elif self.articles.processing == "manual":
            self.warnings.append(f"SKU {sku} is not in SnelStart; booked on orders.default_article")
            artikel = self.default_article(f"SKU {sku} is not in SnelStart and articles.processing is manual")
        else:
            artikel = self._create(sku, name, price, rate)
        self._by_sku[sku] = artikel
        return artikel

    # -- changes ----------------------------------------------------------------------------------------------

    def _maybe_update(self, artikel: Artikel, name: str, price: Decimal) -> Artikel:
        if self.articles.processing != "add_and_update":
            return artikel
        omschrijving = fit(name, "artikel_omschrijving", f"description of article {artikel.artikelcode}", [])
        if artikel.omschrijving == omschrijving and artikel.verkoopprijs == price:
            return artikel
        self.actions.append(f"update article {artikel.artikelcode}: {omschrijving!r}, price {price}")
        changed = dataclasses.replace(
            artikel, omschrijving=omschrijving or artikel.omschrijving, verkoopprijs=price
        )
        return changed if self.dry_run else self.backend.update_artikel(changed)

    def _create(self, sku: str, name: str, price: Decimal, rate: Decimal | None) -> Artikel:
        groep, why = self._placement(rate, f"new article {sku}")
        omschrijving = (
            fit(name, "artikel_omschrijving", f"description of new article {sku}", self.warnings) or sku
        )
        extra = {} if self.articles.code_field == "artikelcode" else {self.articles.code_field: sku}
        nieuw = NieuwArtikel(
            artikelcode=sku,
            omschrijving=omschrijving,
            omzetgroep_id=groep.id,
            verkoopprijs=price,
            extra_velden=extra,
        )
        self.actions.append(
            f"create article {sku} {omschrijving!r} in omzetgroep {groep.nummer} ({percent(groep.btw_percentage)})"
            + (f" ({why})" if why else "")
        )
        self.created.append(sku)
        if self.dry_run:
            self.journal(Change("article_created", sku))
            return Artikel(
                id=PLACEHOLDER_PREFIX + sku,
                artikelcode=sku,
                omschrijving=omschrijving,
                omzetgroep_id=groep.id,
                verkoopprijs=price,
                extra_velden=extra,
            )
        made = self.backend.create_artikel(nieuw)
        self.journal(Change("article_created", made.artikelcode))
        return made

    def omzetgroepen(self) -> list[Omzetgroep]:
        if self._omzetgroepen is None:
            self._omzetgroepen = self.backend.omzetgroepen()
        return self._omzetgroepen

    def named_group(self, wanted: int | str, setting: str | None = None) -> Omzetgroep:
        """The omzetgroep a setting names by number or name; ``setting`` says where, as the user wrote it."""
        for groep in self.omzetgroepen():
            if (
                str(groep.nummer) == str(wanted).strip()
                or groep.omschrijving.lower() == str(wanted).strip().lower()
            ):
                return groep
        known = ", ".join(_group(g) for g in self.omzetgroepen()) or "none"
        raise OrderFailure(
            f"{setting or f'articles.revenue_group {wanted}'}: no such omzetgroep in SnelStart; name one it has "
            f"by number or name ({known})"
        )

    def revenue_group(self, rate: Decimal | None = None, what: str = "a new article") -> Omzetgroep:
        """The omzetgroep for a new article on a Magento line charged ``rate`` % VAT (None: not known).

        SnelStart takes the VAT of an order line from the article's omzetgroep, which carries the Dutch rate.
        On a domestic order Magento's rate is that rate, so the group must carry it: ``articles.revenue_group``
        when it does (or the rate is not known), else the one omzetgroep of btw-soort hoog, laag or geen at that
        rate; a mapping {VAT %: omzetgroep} chooses per rate instead. On an order delivered abroad the same holds
        when Magento charged one of the administration's Dutch rates above 0 % (a small shop without OSS charges
        its EU consumers Dutch VAT: 9 % to Germany is the laag rate); at 0 % or another rate see ``_abroad``."""
        return self._placement(rate, what)[0]

    def _placement(self, rate: Decimal | None, what: str) -> tuple[Omzetgroep, str | None]:
        """``revenue_group`` and, for an order abroad, how Magento's rate was taken (or why it was not)."""
        wanted = self.articles.revenue_group
        if wanted is None:
            raise OrderFailure(f"{what} is needed, but articles.revenue_group is not set")
        if self.domestic:
            return self._by_rate(wanted, rate, what), None
        if not self.dutch_rate(rate):
            return self._abroad(wanted, rate, what)
        note = f"the order goes to {self.country} at {percent(rate)}, a Dutch rate"
        return self._by_rate(wanted, rate, what), note

    def _by_rate(
        self, wanted: int | str | dict[Decimal, int | str], rate: Decimal | None, what: str
    ) -> Omzetgroep:
        """The omzetgroep of a new article by Magento's ``rate`` (None: not known), taken as a Dutch rate."""
        if isinstance(wanted, dict):
            if rate is None:
                raise OrderFailure(
                    f"{what}: Magento gives no VAT rate for the line, and articles.revenue_group chooses the "
                    "omzetgroep by VAT rate; enter the article in SnelStart, or give articles.revenue_group one "
                    "omzetgroep"
                )
            found = self._mapped(wanted, rate)
            if found is not None:
                return found[0]
            configured = None
        else:
            configured = self.named_group(wanted)
            if rate is None or configured.btw_percentage == rate:
                return configured
        return self._group_at(rate, configured, what)

    def _mapped(self, wanted: dict[Decimal, int | str], rate: Decimal) -> tuple[Omzetgroep, str] | None:
        """The omzetgroep a mapping names for ``rate``, with the entry as the user wrote it; None: no entry."""
        for key, named in wanted.items():
            if Decimal(key) == rate:
                entry = mapping_entry(key, named)
                return self.named_group(named, entry), entry
        return None

    def _abroad(
        self, wanted: int | str | dict[Decimal, int | str], rate: Decimal | None, what: str
    ) -> tuple[Omzetgroep, str]:
        """The omzetgroep of a new article first sold on an order delivered outside the Netherlands, and why.

        Only for a rate that is not a Dutch one above 0 % (those are placed as at home, ``_placement``): 0 %
        (reverse charge, export) or the customer's country's rate (OSS), which tells nothing of the article's
        Dutch rate, so the article goes to ``articles.revenue_group``. A mapping gives the entry of a line rate
        above 0 % it names, else its entry for the hoog rate, else the one omzetgroep of btw-soort hoog."""
        if rate is None:
            why = f"the order goes to {self.country}, and Magento gives no VAT rate for the line"
        else:
            why = f"the order goes to {self.country}, so Magento's {percent(rate)} is not the article's Dutch rate"
        if not isinstance(wanted, dict):
            return self.named_group(wanted), f"{why}: articles.revenue_group"
        if rate:
            found = self._mapped(wanted, rate)
            if found is not None:
                return found[0], f"the order goes to {self.country}: {found[1]}"
        hoog = self.hoog_rate()
        found = self._mapped(wanted, hoog)
        if found is not None:
            return found[0], f"{why}: the hoog rate's {found[1]}"
        groups = [g for g in self.omzetgroepen() if g.btw_soort == "Hoog" and g.btw_percentage == hoog]
        if len(groups) == 1:
            return groups[0], f"{why}: the omzetgroep of the hoog rate {percent(hoog)}"
        raise OrderFailure(
            f"{what}: {why}, and the article goes to the omzetgroep of the hoog rate {percent(hoog)}; "
            f"articles.revenue_group names none for {percent(hoog)}, and "
            + (
                f"several omzetgroepen of btw-soort hoog carry it ({', '.join(_group(g) for g in groups)})"
                if groups
                else "no omzetgroep of btw-soort hoog carries it"
            )
            + f"; add {hoog.normalize():f}: <omzetgroep> to articles.revenue_group"
        )

    def hoog_rate(self) -> Decimal:
        """The administration's hoog VAT rate (21 % when no omzetgroep of btw-soort hoog tells it)."""
        for groep in self.omzetgroepen():
            if groep.btw_soort == "Hoog" and groep.btw_percentage is not None:
                return groep.btw_percentage
        return Decimal("21")

    def _group_at(self, rate: Decimal, configured: Omzetgroep | None, what: str) -> Omzetgroep:
        fitting = [
            g for g in self.omzetgroepen() if g.btw_soort in RATED_SOORTEN and g.btw_percentage == rate
        ]
        if len(fitting) == 1:
            return fitting[0]
        if configured is not None:
            head = f"articles.revenue_group {_group(configured)} does not carry it"
        else:
            head = "articles.revenue_group names no omzetgroep for it"
        if not fitting:
            rates = sorted(
                {g.btw_percentage for g in self.omzetgroepen() if g.btw_soort in RATED_SOORTEN} - {None}
            )
            raise OrderFailure(
                f"{what}: Magento charged {percent(rate)} VAT on the line; {head}, and no omzetgroep of btw-soort "
                f"hoog, laag or geen does (the administration's omzetgroepen carry "
                f"{', '.join(percent(r) for r in rates) or 'no rate'}); check the VAT settings in Magento, or "
                "set articles.revenue_group to a mapping {VAT %: omzetgroep} naming the omzetgroep for "
                f"{percent(rate)}"
            )
        raise OrderFailure(
            f"{what}: Magento charged {percent(rate)} VAT on the line; {head}, and several omzetgroepen do: "
            f"{', '.join(_group(g) for g in fitting)}; set articles.revenue_group to a mapping "
            "{VAT %: omzetgroep} to choose one"
        )

    def group_of(self, artikel: Artikel) -> Omzetgroep | None:
        for groep in self.omzetgroepen():
            if groep.id == artikel.omzetgroep_id:
                return groep
        return None

    def vat_rate(self, artikel: Artikel) -> Decimal | None:
        """The VAT percentage SnelStart will charge on this article (from its omzetgroep), when known."""
        groep = self.group_of(artikel)
        return groep.btw_percentage if groep is not None else None

    # -- recipes ----------------------------------------------------------------------------------------------

    def recipe_parts(self, artikel: Artikel, aantal: Decimal) -> list[tuple[Artikel, Decimal]]:
        """The recipe lines SnelStart would place for this article under ``orders.recipes``."""
        mode = self.orders.recipes
        if mode == "never" or not artikel.recept or artikel.recept_plaatsing is None:
            return []
        if artikel.recept_plaatsing == "choice" and mode != "choice_or_always":
            return []
        parts = []
        for regel in artikel.recept:
            sub = self.backend.get_artikel(regel.artikel_id)
            if sub is None:
                raise OrderFailure(
                    f"recipe of article {artikel.artikelcode}: part {regel.artikelcode} is missing"
                )
            parts.append((sub, aantal * regel.aantal))
        return parts
