"""Web stock per article (manual 5): what the shop may still sell, computed from SnelStart alone.

Pure functions over the backend's dataclasses; nothing here reads or writes anywhere.

    web stock = vrije voorraad − quantities on unprocessed web orders, never below zero

SnelStart's free stock already counts the orders that its own settings let lower stock; an order still in
procesStatus "Order" lowers nothing there, so its quantities are claimed here (``open_claims``). Only
articles with stock control count, and composites (recipe articles) whose parts do. A composite can be sold as
often as its scarcest part allows: min over the parts of floor(part web stock / quantity per unit). A part
without stock control (and without a figure of its own) does not limit; a composite without stock control of
its own none of whose parts limits it gets no figure, since nothing in SnelStart says how many there are.

Recipe lines on open orders: when the import placed the recipe parts as lines of their own (``orders.recipes``),
those lines carry the claim on the parts; when it did not, the composite line claims its parts itself (and
theirs, for a part that is a composite too), because the parts leave the warehouse either way.
``parts_placed`` tells which case applies per composite article.

Magento orders koppel knows but has not imported yet (deferred while awaiting payment, or failed) hold their
quantities too (``magento_order_lines`` + ``sku_claims``): Magento keeps stock aside for them, and a pushed figure
that ignored them would hand those units out a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from client.snelstart.base import Artikel, Verkooporder

ZERO = Decimal(0)


@dataclass
class WebStock:
    """The outcome: SKU → web stock, and the articles that could not be given one, with the reason."""

    by_sku: dict[str, Decimal] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def qty_text(qty: Decimal) -> str:
    """The canonical text of a quantity ("5", "2.5"): equal quantities give equal text, never an exponent."""
    if qty == qty.to_integral_value():
        return str(int(qty))
    return format(qty.normalize(), "f")


def sku_of(artikel: Artikel, code_field: str) -> str | None:
    """The Magento SKU of an article per ``articles.code_field`` (the artikelcode or an extra field)."""
    if code_field == "artikelcode":
        value: str | None = artikel.artikelcode
    else:
        value = artikel.extra_velden.get(code_field)
        if value is None:
            # Extra field names are matched without regard to case, as SnelStart shows them to users.
            wanted = code_field.casefold()
            value = next((v for k, v in artikel.extra_velden.items() if k.casefold() == wanted), None)
    value = (value or "").strip()
    return value or None


def parts_placed_by(recipes_mode: str) -> Callable[[Artikel], bool]:
    """Whether the import places an article's recipe parts as order lines under ``orders.recipes``
    (the same rule as ``ArticleRules.recipe_parts``)."""
    if recipes_mode not in ("never", "always", "choice_or_always"):
        raise ValueError(f"orders.recipes must be never, always or choice_or_always, not {recipes_mode!r}")

    def placed(artikel: Artikel) -> bool:
        if recipes_mode == "never" or not artikel.recept or artikel.recept_plaatsing is None:
            return False
        return artikel.recept_plaatsing == "always" or recipes_mode == "choice_or_always"

    return placed


def open_claims(
    orders: Iterable[Verkooporder],
    artikelen: Mapping[str, Artikel],
    parts_placed: Callable[[Artikel], bool],
) -> dict[str, Decimal]:
    """Artikel id → quantity claimed by unprocessed web orders (procesStatus "Order" with a betalingskenmerk).

    ``artikelen`` holds the articles by id whose claims matter or whose recipe spreads a claim: the
    stock-controlled ones and the composites; lines on other articles claim nothing that matters.
    """
    claims: dict[str, Decimal] = {}
    for order in orders:
        if order.proces_status != "Order" or not (order.betalingskenmerk or "").strip():
            continue
        for regel in order.regels:
            if regel.artikel_id is None or regel.aantal <= 0:
                continue  # text lines, and credit lines that give nothing back to the warehouse yet
            claims[regel.artikel_id] = claims.get(regel.artikel_id, ZERO) + regel.aantal
            artikel = artikelen.get(regel.artikel_id)
            if artikel is not None and artikel.recept and not parts_placed(artikel):
                _claim_parts(claims, artikel, regel.aantal, artikelen, ())
    return claims


def _claim_parts(
    claims: dict[str, Decimal],
    artikel: Artikel,
    aantal: Decimal,
    artikelen: Mapping[str, Artikel],
    path: tuple[str, ...],
) -> None:
    """Add what ``aantal`` of a composite takes of its parts, down through parts that are composites themselves
    (a recipe cycle is not followed round; compute_web_stock reports it)."""
    if artikel.id in path:
        return
    for part in artikel.recept:
        if part.aantal <= 0:
            continue
        qty = aantal * part.aantal
        claims[part.artikel_id] = claims.get(part.artikel_id, ZERO) + qty
        sub = artikelen.get(part.artikel_id)
        if sub is not None and sub.recept:
            _claim_parts(claims, sub, qty, artikelen, (*path, artikel.id))


def magento_order_lines(order: Mapping[str, Any]) -> list[tuple[str, Decimal]]:
    """(SKU, quantity) of what an agent ORDER takes from the warehouse: a configurable's LINE already names the
    chosen simple product; a bundle's selections are the products that leave, whatever its price type."""
    out: list[tuple[str, Decimal]] = []
    for line in order.get("lines") or []:
        children = line.get("children") or []
        items = children if line.get("product_type") == "bundle" and children else [line]
        for item in items:
            sku = (item.get("sku") or "").strip()
            qty = Decimal(str(item.get("qty") or 0))
            if sku and qty > 0:
                out.append((sku, qty))
    return out


def sku_claims(
    lines: Iterable[tuple[str, Decimal]], artikelen: Iterable[Artikel], code_field: str
) -> dict[str, Decimal]:
    """Artikel id → quantity claimed by Magento order lines (by SKU per ``code_field``). A composite's line also
    claims its parts: in Magento it is one line, and no import has placed its recipe yet."""
    by_sku: dict[str, Artikel] = {}
    by_id: dict[str, Artikel] = {}
    for artikel in artikelen:
        by_id[artikel.id] = artikel
        sku = sku_of(artikel, code_field)
        if sku is not None:
            by_sku[sku.casefold()] = artikel
    claims: dict[str, Decimal] = {}
    for sku, qty in lines:
        artikel = by_sku.get(sku.casefold())
        if artikel is None:
            continue
        claims[artikel.id] = claims.get(artikel.id, ZERO) + qty
        _claim_parts(claims, artikel, qty, by_id, ())
    return claims


def compute_web_stock(
    artikelen: Sequence[Artikel], claims: Mapping[str, Decimal], code_field: str = "artikelcode"
) -> WebStock:
    """Web stock per SKU for every active article in ``artikelen`` with stock control, and for every active
    composite without it that has a part with a figure (a stock-controlled part, or a composite that has one).

    Articles without a SKU, and SKUs held by more than one article, get no figure (listed in ``problems``):
    pushing a guess would be worse than leaving the shop's figure alone.
    """
    result = WebStock()
    by_id = {a.id: a for a in artikelen if not a.is_non_actief and (a.voorraad_controle or a.recept)}
    memo: dict[str, Decimal | None] = {}

    def web(artikel_id: str, path: tuple[str, ...]) -> Decimal | None:
        """The figure, or None for an article that has none and so limits no composite it is part of."""
        if artikel_id in memo:
            return memo[artikel_id]
        artikel = by_id.get(artikel_id)
        if artikel is None:
            return None  # no stock control, inactive, or unknown here
        if artikel_id in path:
            cycle = " → ".join(by_id[i].artikelcode for i in (*path[path.index(artikel_id) :], artikel_id))
            raise _RecipeCycle(f"recipe cycle {cycle}")
        limits = []
        for part in artikel.recept:
            if part.aantal <= 0:
                continue
            part_web = web(part.artikel_id, (*path, artikel_id))
            if part_web is not None:
                limits.append((part_web / part.aantal).to_integral_value(ROUND_FLOOR))
        value: Decimal | None
        if limits:
            value = max(min(limits), ZERO)
        elif artikel.voorraad_controle:
            value = max(artikel.vrije_voorraad - claims.get(artikel_id, ZERO), ZERO)
        else:
            value = None  # a composite none of whose parts SnelStart counts
        memo[artikel_id] = value
        return value

    skus: dict[str, list[tuple[Artikel, Decimal]]] = {}
    for artikel in by_id.values():
        try:
            value = web(artikel.id, ())
        except _RecipeCycle as exc:
            result.problems.append(f"article {artikel.artikelcode}: {exc}; not pushed")
            continue
        if value is None:
            continue
        sku = sku_of(artikel, code_field)
        if sku is None:
            result.problems.append(f"article {artikel.artikelcode} has no value in {code_field}; not pushed")
            continue
        # Magento compares SKUs without regard to case, so "abc" and "ABC" are one product there.
        skus.setdefault(sku.casefold(), []).append((artikel, value))
    for holders in skus.values():
        first, value = holders[0]
        sku = sku_of(first, code_field) or ""
        if len(holders) > 1:
            codes = ", ".join(sorted(a.artikelcode for a, _ in holders))
            result.problems.append(f"SKU {sku} belongs to several articles ({codes}); not pushed")
            continue
        result.by_sku[sku] = value
    return result


class _RecipeCycle(Exception):
    pass
