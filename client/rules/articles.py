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
from client.snelstart.base import Artikel, NieuwArtikel, Omzetgroep, SnelStartBackend

PLACEHOLDER_PREFIX = "(new article) "


@dataclass
class ArticleResolver:
    articles: ArticlesSettings
    orders: OrdersSettings
    backend: SnelStartBackend
    dry_run: bool = False
    actions: list[str] = field(default_factory=list)
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

    def for_sku(self, sku: str | None, name: str, price: Decimal) -> Artikel:
        """The article of a Magento SKU, per ``articles.processing``; ``price`` is the Magento unit price excl. VAT."""
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
            artikel = self._create(sku, name, price)
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

    def _create(self, sku: str, name: str, price: Decimal) -> Artikel:
        groep = self.revenue_group()
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
        self.actions.append(f"create article {sku} {omschrijving!r} in omzetgroep {groep.nummer}")
        self.created.append(sku)
        if self.dry_run:
            return Artikel(
                id=PLACEHOLDER_PREFIX + sku,
                artikelcode=sku,
                omschrijving=omschrijving,
                omzetgroep_id=groep.id,
                verkoopprijs=price,
                extra_velden=extra,
            )
        return self.backend.create_artikel(nieuw)

    def omzetgroepen(self) -> list[Omzetgroep]:
        if self._omzetgroepen is None:
            self._omzetgroepen = self.backend.omzetgroepen()
        return self._omzetgroepen

    def revenue_group(self) -> Omzetgroep:
        wanted = self.articles.revenue_group
        if wanted is None:
            raise OrderFailure("a new article is needed, but articles.revenue_group is not set")
        for groep in self.omzetgroepen():
            if (
                str(groep.nummer) == str(wanted).strip()
                or groep.omschrijving.lower() == str(wanted).strip().lower()
            ):
                return groep
        raise OrderFailure(f"articles.revenue_group {wanted}: no such omzetgroep in SnelStart")

    def vat_rate(self, artikel: Artikel) -> Decimal | None:
        """The VAT percentage SnelStart will charge on this article (from its omzetgroep), when known."""
        for groep in self.omzetgroepen():
            if groep.id == artikel.omzetgroep_id:
                return groep.btw_percentage
        return None

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
