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

PLACEHOLDER_PREFIX = "(new article) "
# The btw-soorten whose rate the administration's btw tarieven fix; "Overig" has no rate of its own.
RATED_SOORTEN = ("Hoog", "Laag", "Geen")


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
    warnings: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    _by_sku: dict[str, Artikel] = field(default_factory=dict)
    _by_code: dict[str, Artikel] = field(default_factory=dict)
    _omzetgroepen: list[Omzetgroep] | None = None

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
        groep = self.revenue_group(rate, f"new article {sku}")
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

        SnelStart takes the VAT of an order line from the article's omzetgroep, so the group must carry Magento's
        rate: ``articles.revenue_group`` when it does (or the rate is not known), else the one omzetgroep of
        btw-soort hoog, laag or geen at that rate. A mapping {VAT %: omzetgroep} chooses per rate instead."""
        wanted = self.articles.revenue_group
        if wanted is None:
            raise OrderFailure(f"{what} is needed, but articles.revenue_group is not set")
        if isinstance(wanted, dict):
            if rate is None:
                raise OrderFailure(
                    f"{what}: Magento gives no VAT rate for the line, and articles.revenue_group chooses the "
                    "omzetgroep by VAT rate; enter the article in SnelStart, or give articles.revenue_group one "
                    "omzetgroep"
                )
            for key, named in wanted.items():
                if Decimal(key) == rate:
                    return self.named_group(named, mapping_entry(key, named))
            configured = None
        else:
            configured = self.named_group(wanted)
            if rate is None or configured.btw_percentage == rate:
                return configured
        return self._group_at(rate, configured, what)

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
