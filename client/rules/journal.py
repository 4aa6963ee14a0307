"""What the rules change in SnelStart while they prepare an order, reported the moment it is done.

An order can still fail after its customer or one of its articles was created (a cost setting it needs, an
ambiguous article further down). Those creations are real all the same, so the rules tell each one to a
``Journal`` as it happens, and the engine counts and logs it whatever becomes of the order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Change:
    kind: Literal["customer_created", "customer_updated", "article_created"]
    name: str  # the customer's name, or the article's code
    relatiecode: int | None = None  # of the customer; None when not known yet (a dry run's new customer)


Journal = Callable[[Change], None]


def ignore(change: Change) -> None:
    """The journal of a caller that keeps no account of changes."""
