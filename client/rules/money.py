"""Money arithmetic of the sales-order rules: Magento decimal strings in, SnelStart's own rounding mirrored.

SnelStart rounds each line amount to the cent and computes VAT once per rate over the sum of the lines of that
rate (per-rate rounding); Magento rounds VAT per line. With an excl.-VAT template the two totals can therefore
differ by a cent or two, which the rules book as an explicit rounding line instead of hiding it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0")
HUNDRED = Decimal("100")
PRICE_STEP = Decimal("0.0001")  # SnelStart keeps unit prices with four decimals


def dec(value: object, what: str = "amount") -> Decimal:
    """A Magento decimal string (or None) as Decimal; a clear error names the field when it is not a number."""
    if value is None or value == "":
        return ZERO
    if isinstance(value, float):
        raise TypeError(f"{what}: money must not be a float ({value!r})")
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a number") from None
    if not result.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return result


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def line_amount(aantal: Decimal, stuksprijs: Decimal, korting: Decimal = ZERO) -> Decimal:
    """A line's amount the way SnelStart computes it."""
    return cents(aantal * stuksprijs * (HUNDRED - korting) / HUNDRED)


def unit_price_for(row_total: Decimal, qty: Decimal, unit_price: Decimal | None = None) -> Decimal:
    """A unit price (at most four decimals) whose line amount is exactly ``row_total``, when one exists.

    Magento stores a rounded unit price next to a row total that was computed on its own; the row total is what
    the customer pays, so it wins. Falls back to the given unit price when no four-decimal price reproduces it.
    """
    if qty == 0:
        return unit_price if unit_price is not None else ZERO
    if unit_price is not None and line_amount(qty, unit_price) == row_total:
        return unit_price
    candidate = (row_total / qty).quantize(PRICE_STEP, rounding=ROUND_HALF_UP)
    for step in (ZERO, PRICE_STEP, -PRICE_STEP):
        if line_amount(qty, candidate + step) == row_total:
            return candidate + step
    return unit_price if unit_price is not None else candidate


@dataclass(frozen=True)
class Amount:
    """One line or footer cost as SnelStart will total it: its amount and its VAT percentage."""

    amount: Decimal
    rate: Decimal


def snelstart_total(amounts: Iterable[Amount], prijs_incl_btw: bool) -> Decimal:
    """The order total incl. VAT that SnelStart computes for these line amounts (per-rate VAT rounding)."""
    items = list(amounts)
    total = sum((a.amount for a in items), ZERO)
    return total if prijs_incl_btw else total + snelstart_vat(items, False)


def snelstart_vat(amounts: Iterable[Amount], prijs_incl_btw: bool) -> Decimal:
    """The VAT SnelStart computes for these line amounts: once per rate over the rate's sum, in cents."""
    by_rate: dict[Decimal, Decimal] = {}
    for item in amounts:
        by_rate[item.rate] = by_rate.get(item.rate, ZERO) + item.amount
    if prijs_incl_btw:
        return sum((cents(base * rate / (HUNDRED + rate)) for rate, base in by_rate.items()), ZERO)
    return sum((cents(base * rate / HUNDRED) for rate, base in by_rate.items()), ZERO)


def balancing_amount(
    amounts: list[Amount], prijs_incl_btw: bool, target: Decimal, rate: Decimal
) -> Decimal | None:
    """The amount of one extra line at ``rate`` that brings the SnelStart total to ``target``; None when no
    cent amount does (possible with a VAT rate, as its VAT steps can jump over the target)."""
    current = snelstart_total(amounts, prijs_incl_btw)
    difference = target - current
    if difference == 0:
        return ZERO
    if prijs_incl_btw or rate == 0:
        return difference
    start = cents(difference * HUNDRED / (HUNDRED + rate))
    for k in range(0, 6):
        for candidate in {start + k * CENT, start - k * CENT}:
            if snelstart_total([*amounts, Amount(candidate, rate)], False) == target:
                return candidate
    return None
