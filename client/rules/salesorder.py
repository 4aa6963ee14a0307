"""One Magento ORDER → one SnelStart sales order (manual 2.4), as configured per profile.

``prepare_order`` finds or creates the customer and the articles and builds the ``NieuweVerkooporder``: lines,
footer costs, description, addresses, template and betalingskenmerk. Creating the order itself, the ledger and
the unique-betalingskenmerk check belong to the engine.

Money: the order is built in the template's VAT mode from Magento's own amounts, then its SnelStart total is
compared with Magento's grand total. That total is foreseen with SnelStart's own VAT treatment of the order
(``client.snelstart.vat``: Dutch rates at home and for a private customer in the EU, 0 % for an intra-EU supply
to a relatie with btw-nummer and for export), taken from the relatie and the order's afleveradres. A difference
(per-rate versus per-line VAT rounding, or money an extension added that the ORDER does not explain) becomes one
explicit line on ``orders.rounding_article``. Prices taken
from SnelStart (``lines: code_and_quantity``) are meant to differ from the shop and are not balanced.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from client.config import CostSetting, OrdersSettings, Profile
from client.rules.articles import HOME_COUNTRY, ArticleResolver, mapping_entry, percent
from client.rules.customers import (
    CustomerOutcome,
    default_customer,
    new_relatie,
    order_adres,
    resolve_customer,
)
from client.rules.errors import OrderFailure, ProfileError, fit
from client.rules.journal import Journal, ignore
from client.rules.money import (
    CENT,
    HUNDRED,
    ZERO,
    Amount,
    balancing_amount,
    cents,
    dec,
    line_amount,
    snelstart_total,
    snelstart_vat,
    unit_price_for,
)
from client.snelstart.base import (
    Adres,
    Artikel,
    NieuweVerkooporder,
    OrderRegel,
    Relatie,
    SnelStartBackend,
    Verkoopsjabloon,
)
from client.snelstart.vat import OrderVat, order_country, order_vat

__all__ = ["OrderFailure", "PreparedOrder", "ProfileError", "check_profile", "prepare_order"]

DEFAULT_ZONE = ZoneInfo("Europe/Amsterdam")
# Above this the difference is not rounding any more: it is booked all the same, but with a warning.
ROUNDING_TOLERANCE = Decimal("0.05")


@dataclass
class PreparedOrder:
    verkooporder: NieuweVerkooporder
    relatie: Relatie | None  # None only in a dry run when the customer would be created
    relatie_created: bool
    relatie_updated: bool
    artikelen_created: list[str]
    actions: list[str]
    warnings: list[str]
    expected_total: Decimal | None = None  # SnelStart's total incl. VAT as the rules computed it


@dataclass
class _Builder:
    order: dict[str, Any]
    profile: Profile
    backend: SnelStartBackend
    articles: ArticleResolver
    relatie_id: str
    incl: bool
    vat: OrderVat  # how SnelStart books the VAT of this order (relatie and delivery country)
    regels: list[OrderRegel] = field(default_factory=list)
    amounts: list[Amount] = field(default_factory=list)  # mirrors regels (and footer costs) for the total
    kosten: dict[int, Decimal] = field(default_factory=dict)
    cost_rate: Decimal = Decimal("21")

    @property
    def settings(self) -> OrdersSettings:
        return self.profile.orders

    @property
    def dutch_both(self) -> bool:
        """Magento charged Dutch VAT (delivered in NL) and SnelStart books the omzetgroepen's Dutch rates."""
        return self.articles.domestic and self.vat.dutch_rates

    def dutch_line(self, rate: Decimal) -> bool:
        """Magento charged a Dutch rate on the line (delivered in NL, or abroad at a Dutch rate above 0 %: no
        OSS) and SnelStart books the omzetgroep's Dutch rate (self.vat, from the relatie and the afleveradres)."""
        return self.vat.dutch_rates and (self.articles.domestic or self.articles.dutch_rate(rate))

    def booked_rate(self, artikel: Artikel) -> Decimal | None:
        """The VAT % SnelStart books on a line of this article in this order, when known."""
        dutch = self.articles.vat_rate(artikel)
        return None if dutch is None else self.vat.rate(dutch)

    def add(
        self,
        artikel: Artikel,
        omschrijving: str,
        aantal: Decimal,
        prijs: Decimal,
        rate: Decimal | None,
        korting: Decimal = ZERO,
    ) -> None:
        """One order line; ``rate`` is the VAT % Magento charged on it (None: not known or not applicable)."""
        known = self.booked_rate(artikel)
        amount = line_amount(aantal, prijs, korting)
        # Abroad Magento charges 0 % (reverse charge, export), the Dutch rate (a shop without OSS) or the
        # customer's country's rate (OSS), where the omzetgroep carries the Dutch rate: at 0 % or a foreign rate
        # the country explains a difference, not the article. Only when Magento charged Dutch VAT (delivered in
        # NL, or abroad at one of the administration's Dutch rates above 0 %) and SnelStart books the omzetgroep's
        # Dutch rate does a difference point at the article; any other difference shows in the total (_balance),
        # with SnelStart's reason.
        if known is not None and rate is not None and known != rate and self.dutch_line(rate):
            self._rate_differs(artikel, known, rate, amount)
        rate = known if known is not None else (rate if rate is not None else ZERO)
        text = fit(
            omschrijving,
            "regel_omschrijving",
            f"line {artikel.artikelcode} description",
            self.articles.warnings,
        )
        self.regels.append(
            OrderRegel(
                artikel_id=artikel.id,
                omschrijving=text or artikel.omschrijving,
                aantal=aantal,
                stuksprijs=prijs,
                kortings_percentage=korting,
                btw_percentage=rate,
            )
        )
        self.amounts.append(Amount(amount, rate))

    def _vat(self, amount: Decimal, rate: Decimal) -> Decimal:
        """The VAT in ``amount`` (in the template's VAT mode) at ``rate``, in cents."""
        return cents(amount * rate / (HUNDRED + rate) if self.incl else amount * rate / HUNDRED)

    def _rate_differs(self, artikel: Artikel, known: Decimal, rate: Decimal, amount: Decimal) -> None:
        """SnelStart books an order line at the VAT of its article's omzetgroep, whatever Magento charged: the
        order is built all the same (SnelStart decides), but the bookkeeper must hear of the difference."""
        booked, charged = self._vat(amount, known), self._vat(amount, rate)
        if booked == charged:
            return
        groep = self.articles.group_of(artikel)
        where = f"omzetgroep {groep.nummer} {groep.omschrijving!r}" if groep is not None else "its omzetgroep"
        self.articles.warnings.append(
            f"article {artikel.artikelcode} is in {where} at {percent(known)} VAT, but Magento charged "
            f"{percent(rate)} on this line: SnelStart books {booked} VAT on this line ({amount} "
            f"{'incl.' if self.incl else 'excl.'} VAT) where Magento's rate gives {charged} (a difference of "
            f"{booked - charged}); if Magento is right, move the article to an omzetgroep at {percent(rate)} "
            "in SnelStart"
        )

    def magento_rate(self, tax: Decimal, base: Decimal) -> Decimal | None:
        """The VAT % Magento charged on a cost of ``base`` excl. VAT that carries ``tax``; None when not known.

        Magento stores no rate for shipping and fees, and ``tax / base`` is off by the rounding of ``tax`` (1.04 on
        4.95 is 21.01 %), so a rate of the administration or of the ORDER's taxes that gives the same rounded tax
        on that base is taken instead."""
        if base == 0:
            return None
        exact = tax * HUNDRED / base
        rates = {g.btw_percentage for g in self.articles.omzetgroepen() if g.btw_percentage is not None}
        for entry in self.order.get("taxes") or []:
            if entry.get("percent") is not None:
                rates.add(dec(entry.get("percent"), "taxes.percent"))
        same = [r for r in rates if cents(base * r / HUNDRED) == tax]
        return min(same, key=lambda r: abs(r - exact)) if same else cents(exact)

    def cost_rate_of(self, key: str) -> Decimal | None:
        """The VAT rate SnelStart will book the cost ``key`` at, None when it is not configured."""
        setting: CostSetting | None = getattr(self.settings, key)
        if setting is None:
            return None
        if setting.cost_type is not None:
            return self.cost_rate
        return self.booked_rate(self.articles.by_code(setting.line or "", f"orders.{key}"))

    def cost(self, key: str, amount: Decimal, description: str, magento_rate: Decimal | None) -> None:
        """Shipping, payment fee or discount: a line on the configured article or a footer cost type."""
        if amount == 0:
            return
        setting: CostSetting | None = getattr(self.settings, key)
        if setting is None:
            raise OrderFailure(
                f"orders.{key} is not set, and this order needs it ({description}: {amount}); "
                f"set it to {{line: <artikelcode>}} or {{cost_type: 1|2}}"
            )
        if setting.line is not None:
            artikel = self.articles.by_code(setting.line, f"orders.{key}")
            self.add(artikel, description, Decimal("1"), amount, magento_rate)
        else:
            assert setting.cost_type is not None
            self.kosten[setting.cost_type] = self.kosten.get(setting.cost_type, ZERO) + amount
            self.amounts.append(Amount(amount, self.cost_rate))


# -- reading Magento amounts -----------------------------------------------------------------------------------


def _line_money(line: dict[str, Any], incl: bool) -> tuple[Decimal, Decimal, Decimal | None]:
    """(gross row amount, net row amount after Magento's discount, unit price) in the template's VAT mode.

    Magento's default tax model is used: the discount is taken off the price excl. VAT and VAT is computed
    afterwards, so the net amount incl. VAT is row total + tax − discount.
    """
    what = f"item {line.get('sku')!r}"
    row = dec(line.get("row_total"), f"{what} row_total")
    discount = dec(line.get("discount_amount"), f"{what} discount_amount")
    if incl:
        tax = dec(line.get("tax_amount"), f"{what} tax_amount")
        net = row + tax - discount
        if line.get("row_total_incl_tax") is not None:
            gross = dec(line.get("row_total_incl_tax"), f"{what} row_total_incl_tax")
        else:  # very old Magento 1 orders: the price incl. VAT before the discount, from the rate
            rate = _tax_percent(line)
            gross = row + cents(row * rate / HUNDRED) if rate is not None else row + tax
        unit = line.get("unit_price_incl_tax")
    else:
        gross, net, unit = row, row - discount, line.get("unit_price")
    return gross, net, (dec(unit, f"{what} unit price") if unit is not None else None)


def _tax_percent(line: dict[str, Any]) -> Decimal | None:
    value = line.get("tax_percent")
    return dec(value, "tax_percent") if value is not None else None


def _options_text(line: dict[str, Any]) -> str:
    options = [o for o in (line.get("options") or []) if o and (o.get("value") not in (None, ""))]
    return "; ".join(f"{o.get('label') or 'optie'}: {o.get('value')}" for o in options)


def _is_dynamic_bundle(line: dict[str, Any]) -> bool:
    # The agent puts a dynamic-price bundle's money on its selections and a fixed-price bundle's on the parent.
    children = line.get("children") or []
    return line.get("product_type") == "bundle" and any(
        dec(c.get("row_total")) != 0 or dec(c.get("row_total_incl_tax")) != 0 for c in children
    )


# -- the parts of the order ------------------------------------------------------------------------------------


def _template(profile: Profile, backend: SnelStartBackend, relatie_id: str | None) -> Verkoopsjabloon:
    sjablonen = backend.sjablonen()
    if profile.orders.template_use_last and relatie_id is not None:
        last = backend.last_order_sjabloon(relatie_id)
        for sjabloon in sjablonen:
            if last is not None and sjabloon.id == last and not sjabloon.nonactief:
                return sjabloon
    return _configured_template(profile, sjablonen)


def _configured_template(profile: Profile, sjablonen: list[Verkoopsjabloon]) -> Verkoopsjabloon:
    wanted = profile.orders.template
    active = ", ".join(s.omschrijving for s in sjablonen if not s.nonactief) or "none"
    if wanted is None:
        raise OrderFailure(
            f"orders.template is not set; set it to the verkoopsjabloon for web orders (SnelStart has: {active})"
        )
    for sjabloon in sjablonen:
        if sjabloon.omschrijving.strip().lower() == wanted.strip().lower() or sjabloon.id == wanted.strip():
            if sjabloon.nonactief:
                raise OrderFailure(
                    f"orders.template {wanted!r}: this verkoopsjabloon is inactive in SnelStart; make it active "
                    f"there or set orders.template to an active one ({active})"
                )
            return sjabloon
    raise OrderFailure(
        f"orders.template {wanted!r}: no such verkoopsjabloon in SnelStart; set orders.template to one it has "
        f"({active})"
    )


def check_profile(profile: Profile, backend: SnelStartBackend) -> None:
    """Raise ``ProfileError`` for a setting no order of the profile can be imported with, before any order is.

    These are the settings every order uses: ``orders.template``, ``articles.code_field`` (when the backend
    can list the extra fields: the local one; the B2B API cannot), the omzetgroepen ``articles.revenue_group``
    names (when articles may be created) and ``customers.default_code`` (when customers are never created).
    Settings SPEC validates only when an order needs them (cost lines, default and rounding article) are not
    checked here: an order that needs a wrong one fails by itself."""
    try:
        _configured_template(profile, backend.sjablonen())
        _check_code_field(profile.articles.code_field, backend)
        wanted = profile.articles.revenue_group
        if wanted is not None and profile.articles.processing != "manual":
            articles = ArticleResolver(profile.articles, profile.orders, backend)
            if isinstance(wanted, dict):
                for rate, named in wanted.items():
                    articles.named_group(named, mapping_entry(rate, named))
            else:
                articles.named_group(wanted)
        customers = profile.customers
        if customers.processing == "manual" and customers.default_code is not None:
            default_customer(customers, backend)
    except OrderFailure as exc:
        raise ProfileError(str(exc)) from None


def _check_code_field(code_field: str, backend: SnelStartBackend) -> None:
    """Every SKU is looked up on ``articles.code_field``: an extra field the administration lacks fails every
    order, after its customer was matched or created."""
    real = getattr(backend, "real", backend)  # under a dry run's overlay
    # Looked up on the class: only a backend of its own can list them (not the B2B API, nor a wrapper of it).
    listing = getattr(type(real), "extra_veld_namen", None)
    if code_field == "artikelcode" or listing is None:
        return
    known: list[str] = listing(real, "artikel")
    if code_field in known:
        return
    nearest = difflib.get_close_matches(code_field, known, n=1, cutoff=0.6)
    hint = f"did you mean {nearest[0]!r}? " if nearest else ""
    have = (
        f"the extra fields of articles in SnelStart are {', '.join(repr(n) for n in known)}"
        if known
        else "the administration has no extra fields for articles"
    )
    raise OrderFailure(
        f"articles.code_field {code_field!r}: articles have no extra field of that name in SnelStart; {hint}"
        f"set it to artikelcode or to the extra field that holds the Magento SKU ({have})"
    )


def _description(order: dict[str, Any], profile: Profile) -> str | None:
    mode = profile.orders.description
    if mode == "empty":
        return None
    if mode == "profile":
        return profile.label
    if mode == "order_number":
        return f"Webshop-order {order.get('number')}"
    payment = order.get("payment") or {}
    parts = [order.get("status") or order.get("state"), payment.get("title") or payment.get("method")]
    return " - ".join(str(p) for p in parts if p) or None


def _agreement_price(
    backend: SnelStartBackend, relatie_id: str | None, artikel: Artikel, aantal: Decimal
) -> tuple[Decimal, Decimal]:
    """(unit price excl. VAT, discount %) from SnelStart: the article price, or the best price agreement."""
    prijs, korting = artikel.verkoopprijs, ZERO
    if relatie_id is None or relatie_id.startswith("(") or artikel.id.startswith("("):
        return prijs, korting
    fitting = [a for a in backend.prijsafspraken(relatie_id, artikel.id) if a.vanaf_aantal <= aantal]
    if fitting:
        best = max(fitting, key=lambda a: a.vanaf_aantal)
        if best.prijs is not None:
            prijs = best.prijs
        elif best.kortings_percentage is not None:
            korting = best.kortings_percentage
    return prijs, korting


@dataclass
class _Discounts:
    """Magento discount still to book as one discount line/cost: per VAT rate, in template mode and incl. VAT."""

    by_rate: dict[Decimal, tuple[Decimal, Decimal]] = field(default_factory=dict)

    def add(self, rate: Decimal, amount: Decimal, incl_amount: Decimal) -> None:
        old = self.by_rate.get(rate, (ZERO, ZERO))
        self.by_rate[rate] = (old[0] + amount, old[1] + incl_amount)

    def amount(self, incl: bool, target_rate: Decimal | None) -> Decimal:
        """The discount in the template's VAT mode, as it must be booked at ``target_rate``.

        Excl. VAT, a discount on goods of another rate is converted through its amount incl. VAT, so that the
        customer's total stays right even though SnelStart books the discount at one rate."""
        total = ZERO
        for rate, (amount, incl_amount) in self.by_rate.items():
            if incl or target_rate is None or rate == target_rate:
                total += amount
            else:
                total += cents(incl_amount * HUNDRED / (HUNDRED + target_rate))
        return total


def _incl_discount(line: dict[str, Any]) -> Decimal:
    gross, net, _ = _line_money(line, True)
    return gross - net


def _add_item(b: _Builder, line: dict[str, Any], discounts: _Discounts) -> None:
    """One Magento item (a LINE, or a selection of a dynamic bundle) as one or more order lines."""
    mode = b.settings.lines
    qty = dec(line.get("qty"), f"item {line.get('sku')!r} qty")
    name = str(line.get("name") or line.get("sku") or "artikel")
    gross, net, unit = _line_money(line, b.incl)
    excl_unit = dec(line.get("unit_price"), "unit_price")
    rate = _tax_percent(line)
    artikel = b.articles.for_sku(line.get("sku"), name, excl_unit, rate)
    options = _options_text(line)
    described = name if mode == "full" else artikel.omschrijving
    omschrijving = f"{described} ({options})" if options else described

    if mode == "code_and_quantity":
        prijs, korting = _agreement_price(b.backend, b.relatie_id, artikel, qty)
        known = b.booked_rate(artikel)
        if b.incl and known is not None:
            prijs = cents(prijs * (HUNDRED + known) / HUNDRED)
        b.add(artikel, omschrijving, qty, prijs, rate, korting)
    elif b.settings.discount_mode == "on_lines" and net != gross:
        korting = ZERO if gross == 0 else ((gross - net) * HUNDRED / gross).quantize(CENT)
        price = unit_price_for(gross, qty, unit)
        if line_amount(qty, price, korting) != net or not (0 <= korting <= 100):
            price, korting = unit_price_for(net, qty), ZERO
        b.add(artikel, omschrijving, qty, price, rate, korting)
    else:
        b.add(artikel, omschrijving, qty, unit_price_for(gross, qty, unit), rate)
        if gross != net:
            discounts.add(b.amounts[-1].rate, gross - net, _incl_discount(line))

    parts = b.articles.recipe_parts(artikel, qty)
    for sub, aantal in parts:
        # Magento's price already covers the whole article; its recipe parts are placed for picking and stock.
        prijs = ZERO
        if mode == "code_and_quantity":
            prijs, _ = _agreement_price(b.backend, b.relatie_id, sub, aantal)
        b.add(sub, sub.omschrijving, aantal, prijs, None)


def _add_lines(b: _Builder) -> _Discounts:
    """All item lines; returns the discount still to book separately (``discount_mode: separate``)."""
    discounts = _Discounts()
    for line in b.order.get("lines") or []:
        if _is_dynamic_bundle(line):
            for child in line.get("children") or []:
                _add_item(b, child, discounts)
        else:
            _add_item(b, line, discounts)
    return discounts


def _add_costs(b: _Builder, discounts: _Discounts) -> None:
    order = b.order
    shipping = order.get("shipping") or {}
    ship_excl = dec(shipping.get("amount"), "shipping.amount")
    ship_tax = dec(shipping.get("tax_amount"), "shipping.tax_amount")
    ship_discount = dec(shipping.get("discount_amount"), "shipping.discount_amount")
    ship_rate = b.magento_rate(ship_tax, ship_excl - ship_discount)
    ship_gross_incl = dec(shipping.get("amount_incl_tax"), "shipping.amount_incl_tax") or ship_excl + ship_tax
    ship_net_incl = ship_excl + ship_tax - ship_discount
    if b.incl:
        gross, net = ship_gross_incl, ship_net_incl
    else:
        gross, net = ship_excl, ship_excl - ship_discount
    if b.settings.discount_mode == "separate" and gross != net:
        target = b.cost_rate_of("shipping_costs")
        discounts.add(
            target if target is not None else ship_rate or ZERO, gross - net, ship_gross_incl - ship_net_incl
        )
        shipping_amount = gross
    else:
        shipping_amount = net
    label = shipping.get("description") or "Verzendkosten"
    b.cost("shipping_costs", shipping_amount, str(label), ship_rate)

    payment = order.get("payment") or {}
    fee = payment.get("fee") or {}
    fee_excl = dec(fee.get("amount"), "payment.fee.amount")
    fee_tax = dec(fee.get("tax_amount"), "payment.fee.tax_amount")
    fee_rate = b.magento_rate(fee_tax, fee_excl)
    title = payment.get("title") or payment.get("method") or ""
    b.cost(
        "payment_costs", fee_excl + fee_tax if b.incl else fee_excl, f"Betaalkosten {title}".strip(), fee_rate
    )

    info = order.get("discount") or {}
    label = "Korting " + str(info.get("description") or info.get("coupon_code") or "").strip()
    if discounts.by_rate:
        b.cost("discount", -discounts.amount(b.incl, b.cost_rate_of("discount")), label.strip(), None)


def _balance(b: _Builder, warnings: list[str]) -> Decimal:
    """Make SnelStart's total equal Magento's grand total with one line; returns the resulting total."""
    totals = b.order.get("totals") or {}
    target = cents(dec(totals.get("grand_total"), "totals.grand_total"))
    current = snelstart_total(b.amounts, b.incl)
    if current == target:
        return current
    difference = target - current
    code = b.settings.rounding_article
    if code is None:
        raise OrderFailure(
            f"the SnelStart lines total {current} but Magento's grand total is {target}; "
            "set orders.rounding_article to book the difference of "
            f"{difference}"
        )
    artikel = b.articles.by_code(code, "orders.rounding_article")
    rate = b.booked_rate(artikel) or ZERO
    amount = balancing_amount(b.amounts, b.incl, target, rate)
    if amount is None:
        raise OrderFailure(
            f"orders.rounding_article {code} carries {rate}% VAT, so the difference of {difference} cannot be "
            "booked on it exactly; use an article in an omzetgroep without VAT"
        )
    unexplained = dec(totals.get("unexplained_amount"), "totals.unexplained_amount")
    if abs(difference) > ROUNDING_TOLERANCE or unexplained != 0:
        text = "Niet verklaard bedrag (Magento)"
        reason = "" if b.vat.kind == "domestic" else f" (SnelStart books this order {b.vat.describe()})"
        warnings.append(
            f"Magento's grand total {target} differs by {difference} from what the order lines explain; "
            f"booked on {code} as {text!r}{reason}"
        )
    else:
        text = "Afrondingsverschil"
    b.add(artikel, text, Decimal("1"), amount, rate)
    return snelstart_total(b.amounts, b.incl)


def _vat_treatment_differs(b: _Builder, warnings: list[str]) -> None:
    """Warn when SnelStart books no VAT where Magento charged some, or VAT where Magento charged none.

    With an incl.-VAT template the total matches whatever the VAT, so nothing else tells of it; with an excl.-VAT
    template the difference is booked by ``_balance``, which warns already. On a domestic sale with Dutch rates on
    both sides the per-line warning of ``_Builder.add`` names the article instead. Two different rates above
    0 % (a foreign rate under OSS, not modelled) are left to those warnings as well."""
    if not b.incl or b.dutch_both:
        return
    charged = cents(dec((b.order.get("totals") or {}).get("tax_amount"), "totals.tax_amount"))
    booked = snelstart_vat(b.amounts, b.incl)
    if (charged == 0) == (booked == 0):
        return
    warnings.append(
        f"Magento charged {charged} VAT on this order, SnelStart {booked}: it books this order {b.vat.describe()}; "
        "the prices incl. VAT are booked as they are, so check the VAT rules in Magento or the customer's "
        "btw-nummer in SnelStart"
    )


def _order_date(order: dict[str, Any], zone: ZoneInfo) -> dt.date:
    created = order.get("created_at")
    if not created:
        return dt.datetime.now(zone).date()
    moment = dt.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(zone).date()


# -- the whole order -----------------------------------------------------------------------------------------


def prepare_order(
    order: dict[str, Any],
    profile: Profile,
    backend: SnelStartBackend,
    *,
    dry_run: bool = False,
    zone: ZoneInfo | None = None,
    journal: Journal = ignore,
) -> PreparedOrder:
    """Find/create customer and articles and build the sales order; raises ``OrderFailure`` with the cause.

    Each customer or article created (or customer updated) on the way is told to ``journal`` when it is made,
    also when the order fails afterwards."""
    actions: list[str] = []
    warnings: list[str] = list(order.get("warnings") or [])
    number = str(order.get("number") or "").strip()
    if not number:
        raise OrderFailure("the Magento order has no order number")
    currency = order.get("currency")
    if currency and currency != "EUR":
        warnings.append(f"the order is in {currency}; its amounts are booked as they are, without conversion")

    try:
        customer = resolve_customer(
            order,
            profile.customers,
            backend,
            dry_run=dry_run,
            actions=actions,
            warnings=warnings,
            journal=journal,
        )
        sjabloon = _template(profile, backend, None if customer.created else customer.relatie_id)
        articles = ArticleResolver(
            profile.articles,
            profile.orders,
            backend,
            dry_run=dry_run,
            actions=actions,
            journal=journal,
            country=delivery_country(order),
        )
        # The afleveradres the order will carry decides SnelStart's VAT, so it is read first; its warnings
        # (shortened fields) follow the billing address's below, as they always did.
        from_order = profile.orders.addresses == "from_order"
        delivery_warnings: list[str] = []
        afleveradres = (
            order_adres(order.get("shipping_address"), delivery_warnings, "delivery address")
            if from_order
            else None
        )
        vat = _snelstart_vat(order, profile, customer, afleveradres)
        b = _Builder(order, profile, backend, articles, customer.relatie_id, sjabloon.prijs_incl_btw, vat)
        b.cost_rate = vat.rate(_footer_rate(articles))
        _add_costs(b, _add_lines(b))
        warnings.extend(articles.warnings)
        articles.warnings.clear()
        if profile.orders.lines != "code_and_quantity":
            expected = _balance(b, warnings)
        else:
            expected = snelstart_total(b.amounts, b.incl)
        _vat_treatment_differs(b, warnings)
        warnings.extend(articles.warnings)
    except ValueError as exc:  # a malformed amount in the ORDER
        raise OrderFailure(f"order {number}: {exc}") from None

    omschrijving = fit(_description(order, profile), "order_omschrijving", "order description", warnings)
    factuuradres = (
        order_adres(order.get("billing_address"), warnings, "billing address") if from_order else None
    )
    warnings.extend(delivery_warnings)
    verkooporder = NieuweVerkooporder(
        relatie_id=customer.relatie_id,
        datum=_order_date(order, zone or DEFAULT_ZONE),
        sjabloon_id=sjabloon.id,
        prijs_incl_btw=sjabloon.prijs_incl_btw,
        omschrijving=omschrijving,
        betalingskenmerk=number,
        regels=b.regels,
        factuuradres=factuuradres,
        afleveradres=afleveradres,
        kostensoort_1=b.kosten.get(1),
        kostensoort_2=b.kosten.get(2),
        memo=(order.get("customer_note") or None),
        orderreferentie=fit(number, "orderreferentie", "order reference", warnings),
    )
    return PreparedOrder(
        verkooporder=verkooporder,
        relatie=customer.relatie,
        relatie_created=customer.created,
        relatie_updated=customer.updated,
        artikelen_created=list(articles.created),
        actions=actions,
        warnings=warnings,
        expected_total=expected,
    )


def _snelstart_vat(
    order: dict[str, Any], profile: Profile, customer: CustomerOutcome, afleveradres: Adres | None
) -> OrderVat:
    """SnelStart's VAT treatment of the order: from the afleveradres it will carry, else the relatie's
    vestigingsadres, and the relatie's btw-nummer (in a dry run, of the relatie that would be created)."""
    relatie = customer.relatie
    if relatie is not None:
        vestiging, btw_nummer = relatie.vestigingsadres, relatie.btw_nummer
    else:
        fresh = new_relatie(order, profile.customers, None, [])
        vestiging, btw_nummer = fresh.vestigingsadres, fresh.btw_nummer
    return order_vat(order_country(afleveradres, vestiging), btw_nummer)


def _footer_rate(articles: ArticleResolver) -> Decimal:
    # SnelStart books footer costs at the VAT of the cost type; the high rate is what shops use for shipping
    # and payment fees, and what the local backend applies.
    return articles.hoog_rate()


def delivery_country(order: dict[str, Any]) -> str:
    """The ISO code of the country the order goes to: the delivery address's, the billing address's for a
    virtual order (no delivery address) or one whose delivery address has no country; the Netherlands when
    neither names one, as for the customer's address."""
    for key in ("shipping_address", "billing_address"):
        address = order.get(key) or {}
        country = str(address.get("country") or "").strip().upper()
        if country:
            return country
    return HOME_COUNTRY
