"""Small helpers for the words koppel prints: a count with its noun in the right number."""

from __future__ import annotations

# Nouns whose plural is not the singular plus "s".
_PLURALS = {"entry": "entries", "batch": "batches", "relatie": "relaties"}


def plural(number: int, singular: str, plural_form: str | None = None) -> str:
    """The noun for ``number`` of it: ``order`` for 1, ``orders`` otherwise."""
    if number == 1:
        return singular
    return plural_form or _PLURALS.get(singular) or f"{singular}s"


def count(number: int, singular: str, plural_form: str | None = None) -> str:
    """``1 order``, ``2 orders``, ``0 orders``; the last word of ``singular`` is the one that changes."""
    head, _, noun = singular.rpartition(" ")
    words = plural(number, noun, plural_form)
    return f"{number} {head + ' ' if head else ''}{words}"
