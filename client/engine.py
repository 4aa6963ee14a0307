"""One import run for one profile: Magento orders from the agent → SnelStart sales orders, exactly once.

Top to bottom a run (1) retries the failed orders and re-checks the deferred ones by id, (2) pages new orders
from the cursor, (3) per order: skip what the ledger has done, settle a pending create, defer or ignore by state,
else prepare (rules), mark pending, create, mark done, (4) moves the cursor after each fully handled page.
Locking and scheduling are the CLI's job.

Why exactly once holds: the ledger entry is committed as ``pending`` before SnelStart is asked to create the
order and as ``done`` after. A crash between the two leaves ``pending``; the next run then looks the order up
by betalingskenmerk (the Magento order number) and adopts what it finds instead of creating a second one, even
when the order has been canceled meanwhile (the ledger must say what SnelStart holds).
The cursor only moves past a page whose every order reached a final state (done, failed, deferred, ignored),
so a run stopped by a transient error (agent down, SnelStart unreachable) re-reads that page next time and the
ledger skips what was already done.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from client.agent_client import AgentClient, AgentError
from client.rules.journal import Change
from client.snelstart.base import (
    SnelStartBackend,
    SnelStartRefusal,
    SnelStartUnavailable,
    Verkooporder,
)
from client.state import StateStore, utcnow

PAGE_SIZE = 100
DEFAULT_EXCLUDED_STATES = ("canceled",)

Progress = Callable[[str, int, int | None], None]


@dataclass
class CreatedOrder:
    entity_id: int
    magento_number: str
    snelstart_nummer: int | None
    relatiecode: int | None
    how: str  # "created" | "adopted" (found after an unknown outcome) | "already_imported"
    customer: str | None = None  # "created" | "matched": what happened to the relatie (None: not known)


@dataclass
class ImportResult:
    profile: str
    dry_run: bool = False
    imported: int = 0  # new in SnelStart this run (created, or adopted after a crash)
    skipped: int = 0  # already imported: in the ledger, or found by unique betalingskenmerk
    deferred: int = 0  # waiting for payment (defer_states)
    dropped: int = 0  # deferred/failed orders given up: canceled, too old, gone from Magento
    ignored: int = 0  # state not imported (orders.import_states)
    failed: int = 0
    customers_created: int = 0
    customers_matched: int = 0
    customers_updated: int = 0
    articles_created: int = 0
    created: list[CreatedOrder] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (Magento number, reason)
    lines: list[str] = field(default_factory=list)  # what a dry run would do, for printing
    error: str | None = None  # why the run stopped early (transient); None when it ran to the end

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        text = (
            f"{self.profile}: {verb} {self.imported}, skipped {self.skipped}, deferred {self.deferred}, "
            f"failed {self.failed}, dropped {self.dropped}, ignored {self.ignored}; customers created "
            f"{self.customers_created}, matched {self.customers_matched}; articles created {self.articles_created}"
        )
        return text + (f" — stopped: {self.error}" if self.error else "")


class _Transient(Exception):
    """Stop the run; nothing is wrong with the order at hand."""


class _ProfileStop(Exception):
    """Stop the run before any order: a setting of the profile is wrong for every order."""


def _parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _cents(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError, TypeError):
        return None


class OrderImporter:
    """The per-order step, reusable without an agent (the benchmark feeds ORDER dicts straight in)."""

    def __init__(
        self,
        profile: Any,
        backend: SnelStartBackend,
        state: StateStore,
        result: ImportResult | None = None,
        *,
        dry_run: bool = False,
        task: str | None = None,
        now: Callable[[], dt.datetime] = utcnow,
        zone: Any = None,
    ) -> None:
        from client.rules.salesorder import OrderFailure, prepare_order  # the rules load config models

        self._prepare_order = prepare_order
        self._order_failure = OrderFailure
        self.profile = profile
        self.name: str = profile.name
        if dry_run:
            from client.dryrun import DryRunBackend

            # Remembers would-be-created customers and articles, so a later order matches them as it would
            # for real and the preview's counts equal the real run's.
            backend = DryRunBackend(backend)
        self.backend = backend
        self.state = state
        self.dry_run = dry_run
        self.task = task
        self.now = now
        self.zone = zone  # the config's time zone: the order date in SnelStart is the shop's local date
        self.result = result or ImportResult(profile=profile.name, dry_run=dry_run)
        orders = profile.orders
        self.import_states = None if orders.import_states is None else set(orders.import_states)
        self.defer_states = set(orders.defer_states or ())
        self.defer_days = orders.defer_days
        self.unique_reference = orders.unique_payment_reference

    # -- journal: the state log, or the dry run's printout -----------------------------------------------
    def log(
        self,
        level: str,
        message: str,
        *,
        essential: bool,
        order: str | None = None,
        detail: str | None = None,
        preview: bool = False,
    ) -> None:
        """``preview``: a dry run prints this detail too (it prints essentials, warnings and errors anyway)."""
        if self.dry_run:
            if essential or preview or level in ("warning", "error"):
                self.result.lines.append(message)
            return
        self.state.log(
            self.name, level, message, essential=essential, detail=detail, order=order, task=self.task
        )

    def check_profile(self) -> None:
        """Raise ``_ProfileStop`` when a setting every order needs is wrong (a template or omzetgroep SnelStart
        does not have): then no order is tried, failed or recorded, and the next run starts afresh."""
        from client.rules.salesorder import ProfileError, check_profile

        try:
            check_profile(self.profile, self.backend)
        except ProfileError as exc:
            raise _ProfileStop(str(exc)) from None

    # -- classification --------------------------------------------------------------------------------
    def eligible(self, magento_state: str | None) -> bool:
        if self.import_states is None:
            return magento_state not in DEFAULT_EXCLUDED_STATES
        return magento_state in self.import_states

    def too_old(self, order: dict) -> bool:
        created = _parse_time(order.get("created_at"))
        return created is not None and self.now() - created > dt.timedelta(days=self.defer_days)

    def handle(self, order: dict, source: str = "feed") -> str:
        """Bring one ORDER to a final state; returns what happened.

        ``source`` is "feed" (a new page), "failed" (a retry) or "deferred" (a re-check). Raises ``_Transient``
        when the run must stop (SnelStart unreachable).
        """
        seen = self._backend_warnings_seen()
        try:
            return self._handle(order, source)
        finally:
            self._log_backend_warnings(seen, str(order["number"]))

    def _backend_warnings_seen(self) -> int:
        return len(getattr(self.backend, "warnings", None) or ())

    def _log_backend_warnings(self, seen: int, number: str) -> None:
        """What the backend itself changed on the way in (b2b: fields cut to SnelStart's lengths) is news to
        the user: into the log with the order, where `koppel log` shows it without --verbose."""
        warnings = list(getattr(self.backend, "warnings", None) or ())
        if len(warnings) < seen:  # someone emptied the list meanwhile; all it holds now is new
            seen = 0
        for warning in warnings[seen:]:
            self.log("warning", f"Magento order {number}: {warning}", essential=True, order=number)

    def _handle(self, order: dict, source: str) -> str:
        eid, number = int(order["id"]), str(order["number"])
        entry = self.state.ledger_get(self.name, eid)
        if entry is not None and entry.state == "done":
            self._forget(eid)
            self.result.skipped += 1
            self.log(
                "debug", f"Magento order {number}: already imported, skipped", essential=False, order=number
            )
            return "skipped"
        if entry is not None and entry.state == "pending":
            settled = self._guarded(order, lambda: self._settle_pending(order))
            if settled is not None:
                return settled
            entry = None  # not in SnelStart: the interrupted create never happened
        magento_state = order.get("state")
        if magento_state in self.defer_states and entry is None:
            if self.too_old(order):
                return self._drop(
                    order,
                    f"still {magento_state} after {self.defer_days} days (orders.defer_days); not imported",
                )
            if not self.dry_run:
                self.state.deferred_add(
                    self.name,
                    eid,
                    number=number,
                    state=magento_state,
                    created_at=_parse_time(order["created_at"]),
                )
                if source == "failed":
                    self.state.failed_remove(self.name, eid)
            self.result.deferred += 1
            self.log(
                "info",
                f"Magento order {number}: deferred while {magento_state}",
                essential=source == "feed",
                order=number,
            )
            return "deferred"
        if not self.eligible(magento_state):
            if source != "feed":
                return self._drop(order, f"now {magento_state}; no longer imported")
            self.result.ignored += 1
            if self.import_states is None:
                which = "orders.import_states: every state except canceled"
            else:
                which = f"orders.import_states: {', '.join(sorted(self.import_states)) or 'none'}"
            self.log(
                "info",
                f"Magento order {number} ignored: its state {magento_state} is not imported ({which})",
                essential=False,
                order=number,
                preview=True,
            )
            return "ignored"
        outcome = self._guarded(order, lambda: self._import(order))
        assert outcome is not None  # an import always ends in an outcome
        return outcome

    def _forget(self, eid: int) -> None:
        if not self.dry_run:
            self.state.failed_remove(self.name, eid)
            self.state.deferred_remove(self.name, eid)

    def _drop(self, order: dict, why: str) -> str:
        number = str(order["number"])
        self._forget(int(order["id"]))
        self.result.dropped += 1
        self.log("warning", f"Magento order {number} dropped: {why}", essential=True, order=number)
        return "dropped"

    # -- import ----------------------------------------------------------------------------------------
    def _guarded(self, order: dict, step: Callable[[], str | None]) -> str | None:
        """Run one step for the order; what goes wrong fails this order only (a transient outage stops the run)."""
        number = str(order["number"])
        detail = None
        try:
            return step()
        except SnelStartUnavailable as exc:
            raise _Transient(f"SnelStart is not available: {exc}") from exc
        except (self._order_failure, SnelStartRefusal) as exc:
            reason = str(exc) or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - one broken order must never stop the others
            reason = f"unexpected error {type(exc).__name__}: {exc}"
            detail = traceback.format_exc()
        self.result.failed += 1
        self.result.failures.append((number, reason))
        if not self.dry_run:
            self.state.failed_record(self.name, int(order["id"]), number=number, reason=reason)
        self.log(
            "error", f"Magento order {number} failed: {reason}", essential=True, order=number, detail=detail
        )
        return "failed"

    def _settle_pending(self, order: dict) -> str | None:
        """A create of an earlier run whose outcome is unknown (the run died, or SnelStart did not answer, between
        the request and the record of its answer) is looked up by betalingskenmerk before anything else, whatever
        the order's Magento state is now: what SnelStart holds is adopted; what it does not hold was never created,
        and the mark goes. Returns the outcome when the order is settled, None to handle it as new."""
        eid, number = int(order["id"]), str(order["number"])
        _, free = self._unowned(order, self.backend.verkooporders_by_betalingskenmerk(number))
        if not free:
            if not self.dry_run:
                self.state.ledger_clear_pending(self.name, eid)
            return None
        self._done(order, free[0], self._relatiecode(free[0]), "adopted")
        magento_state = order.get("state")
        if magento_state in self.defer_states or not self.eligible(magento_state):
            self.log(
                "warning",
                f"Magento order {number} is now {magento_state}; SnelStart verkooporder {free[0].nummer} was "
                "created for it before; check that one in SnelStart (koppel does not change it)",
                essential=True,
                order=number,
            )
        return "imported"

    def _import(self, order: dict) -> str:
        eid, number = int(order["id"]), str(order["number"])
        kenmerk = number
        if self.unique_reference:
            found = self.backend.verkooporders_by_betalingskenmerk(kenmerk)
            if found:
                return self._existing(order, found)

        # In a dry run the backend is the in-memory overlay, so the rules run exactly as for real.
        prepared = self._prepare_order(
            order,
            self.profile,
            self.backend,
            dry_run=False,
            zone=self.zone,
            journal=lambda change: self._changed(change, number),
        )
        for action in prepared.actions:
            self.log("debug", f"Magento order {number}: {action}", essential=False, order=number)
        for warning in prepared.warnings:
            # What the rules warn of (VAT SnelStart books differently, data left out or shortened) is for the
            # bookkeeper to read, in the default view of the log.
            self.log("warning", f"Magento order {number}: {warning}", essential=True, order=number)
        relatie = prepared.relatie
        if relatie is None:
            relatie = self.backend.get_relatie(prepared.verkooporder.relatie_id) if not self.dry_run else None
        if not prepared.relatie_created:
            self.result.customers_matched += 1

        if self.dry_run:
            self._describe(order, prepared, relatie)
            self.result.imported += 1
            return "imported"

        self.state.ledger_mark_pending(self.name, eid, number=number, betalingskenmerk=kenmerk)
        try:
            created = self.backend.create_verkooporder(prepared.verkooporder)
        except SnelStartRefusal:
            # Refused means not created: a later retry must not go looking for it.
            self.state.ledger_clear_pending(self.name, eid)
            raise
        code = relatie.relatiecode if relatie is not None else None
        self._done(order, created, code, "created")
        self.result.created[-1].customer = "created" if prepared.relatie_created else "matched"
        self._note_replaced(order)
        expected = getattr(prepared, "expected_total", None)
        if expected is not None and _cents(created.totaal_incl_btw) != _cents(expected):
            self.log(
                "warning",
                f"Magento order {number}: SnelStart computed total {show_money(created.totaal_incl_btw)}, the rules "
                f"expected {show_money(expected)}; check verkooporder {created.nummer}",
                essential=True,
                order=number,
            )
        return "imported"

    def _note_replaced(self, order: dict) -> None:
        """An edited Magento order is a new order that cancels its original; SnelStart may hold both now."""
        relation = order.get("relation") or {}
        parent = relation.get("parent_id")
        if not parent:
            return
        earlier = self.state.ledger_get(self.name, int(parent))
        if earlier is None or earlier.state != "done":
            return
        number = str(order["number"])
        self.log(
            "warning",
            f"Magento order {number} is an edit of order {earlier.number}, which was imported as SnelStart "
            f"verkooporder {earlier.snelstart_nummer}; check that one in SnelStart (koppel does not change it)",
            essential=True,
            order=number,
        )

    def _existing(self, order: dict, found: list[Verkooporder]) -> str:
        """``orders.unique_payment_reference``: SnelStart orders already carry this order's betalingskenmerk.

        Returns "skipped" when one of them is this order (entered before koppel ran); fails the order otherwise.
        """
        eid, number = int(order["id"]), str(order["number"])
        owners, free = self._unowned(order, found)
        if free and self._same_order(free[0], order):
            self._done(order, free[0], self._relatiecode(free[0]), "already_imported")
            return "skipped"
        other = found[0]
        owner = owners[other.id]
        if owner is not None:
            whose = f"Magento order {owner.number} (entity_id {owner.entity_id})"
        else:
            whose = f"another order ({self._describe_found(other)})"
        raise self._order_failure(
            f"betalingskenmerk {number} is already used by SnelStart verkooporder {other.nummer}, imported for "
            f"{whose}; this is a different order (entity_id {eid}, store {order.get('store', {}).get('code')}, "
            f"total {order.get('totals', {}).get('grand_total')}, created {order.get('created_at')}). Two stores "
            "share this order number: import it by hand, or turn orders.unique_payment_reference off"
        )

    def _unowned(self, order: dict, found: list[Verkooporder]) -> tuple[dict[str, Any], list[Verkooporder]]:
        """(ledger owner per SnelStart order, the ones no other Magento order owns, the likeliest first)."""
        eid = int(order["id"])
        owners = {o.id: self.state.ledger_by_snelstart_id(self.name, o.id) for o in found}
        free = [o for o in found if owners[o.id] is None or owners[o.id].entity_id == eid]
        free.sort(key=lambda o: not self._same_order(o, order))
        return owners, free

    def _same_order(self, found: Verkooporder, order: dict) -> bool:
        """Is a SnelStart order with this betalingskenmerk plausibly this Magento order? Total and date."""
        total = _cents(order.get("totals", {}).get("grand_total"))
        if total is None or total not in (_cents(found.totaal_incl_btw), _cents(found.totaal_excl_btw)):
            return False
        created = _parse_time(order.get("created_at"))
        return created is None or abs((found.datum - created.date()).days) <= 1

    def _describe_found(self, found: Verkooporder) -> str:
        return f"relatie {self._relatiecode(found)}, total {show_money(found.totaal_incl_btw)}, date {found.datum.isoformat()}"

    def _relatiecode(self, found: Verkooporder) -> int | None:
        relatie = self.backend.get_relatie(found.relatie_id)
        return relatie.relatiecode if relatie is not None else None

    def _done(self, order: dict, created: Verkooporder, relatiecode: int | None, how: str) -> None:
        eid, number = int(order["id"]), str(order["number"])
        if not self.dry_run:
            self._record_done(eid, number, created, relatiecode, how)
        self.result.created.append(CreatedOrder(eid, number, created.nummer, relatiecode, how))
        if how == "already_imported":
            self.result.skipped += 1
            message = (
                f"Magento order {number} already in SnelStart as verkooporder {created.nummer} "
                f"(betalingskenmerk {number}), relatie {relatiecode}; recorded, not created again"
            )
        else:
            self.result.imported += 1
            message = (
                f"Magento order {number} → SnelStart verkooporder {created.nummer}, relatie {relatiecode}"
            )
            if how == "adopted":
                message += " (found after an interrupted run; not created twice)"
        self.log("info", message, essential=True, order=number)

    def _record_done(
        self, eid: int, number: str, created: Verkooporder, relatiecode: int | None, how: str
    ) -> None:
        self.state.ledger_mark_done(
            self.name,
            eid,
            number=number,
            snelstart_id=created.id,
            snelstart_nummer=created.nummer,
            betalingskenmerk=created.betalingskenmerk or number,
            relatiecode=relatiecode,
            how=how,
        )

    def _changed(self, change: Change, number: str) -> None:
        """A customer or article the rules just created (or a customer updated) for order ``number``: counted
        and logged now, so that it is accounted for even when the order fails after all."""
        if change.kind == "article_created":
            self.result.articles_created += 1
            verb = "would be created" if self.dry_run else "created"
            message = f"Article {change.name} {verb} (Magento order {number})"
        elif change.kind == "customer_created":
            self.result.customers_created += 1
            what = "would be created" if self.dry_run else f"created as relatie {change.relatiecode}"
            message = f"Customer {change.name} {what} (Magento order {number})"
        else:
            self.result.customers_updated += 1
            verb = "would be updated" if self.dry_run else "updated"
            message = f"Customer {change.name} (relatie {change.relatiecode}) {verb} (Magento order {number})"
        self.log("info", message, essential=True, order=number)

    def _describe(self, order: dict, prepared: Any, relatie: Any) -> None:
        vo = prepared.verkooporder
        from client.dryrun import ID_PREFIX

        if relatie is not None and not prepared.relatie_created and not str(relatie.id).startswith(ID_PREFIX):
            who = f"relatie {relatie.relatiecode} {relatie.naam}"
        elif relatie is not None and not prepared.relatie_created:
            who = f"new relatie {relatie.naam} (created for an earlier order of this run)"
        else:
            who = f"new relatie {relatie.naam if relatie is not None else _customer_name(order)}"
        lines = self.result.lines
        lines.append(
            f"Magento order {order['number']}: would create a verkooporder for {who}, betalingskenmerk "
            f"{vo.betalingskenmerk}, {len(vo.regels)} line{'' if len(vo.regels) == 1 else 's'}, Magento total "
            f"{show_money(order['totals']['grand_total'])}"
        )
        for regel in vo.regels:
            label = self._artikel_label(regel.artikel_id)
            lines.append(
                f"    {show_quantity(regel.aantal)} × {label}{regel.omschrijving} à {show_money(regel.stuksprijs)}"
            )
        for cost, label in ((vo.kostensoort_1, "kostensoort 1"), (vo.kostensoort_2, "kostensoort 2")):
            if cost:
                lines.append(f"    {label}: {cost}")
        lines.extend(f"    {action}" for action in prepared.actions)

    def _artikel_label(self, artikel_id: str | None) -> str:
        """ "code (SnelStart description): " of an existing article; empty for text lines and new articles."""
        if artikel_id is None:
            return ""
        try:
            artikel = self.backend.get_artikel(artikel_id)
        except (SnelStartRefusal, ValueError):  # a dry run's placeholder id for an article not created
            return ""
        return f"{artikel.artikelcode} ({artikel.omschrijving}): " if artikel is not None else ""


def show_quantity(value: Any) -> str:
    """A quantity for people: 3 not 3.0000, 1.5 stays 1.5."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return f"{amount.normalize():f}"


def show_money(value: Any) -> str:
    """An amount for people, in cents (SnelStart keeps more decimals for unit prices; the reader needs none)."""
    cents = _cents(value)
    return str(value) if cents is None else f"{cents:.2f}"


def _customer_name(order: dict | None) -> str:
    if not order:
        return "?"
    customer = order.get("customer") or {}
    billing = order.get("billing_address") or {}
    billing_name = " ".join(p for p in (billing.get("firstname"), billing.get("lastname")) if p)
    return customer.get("name") or billing.get("company") or billing_name or customer.get("email") or "?"


def _retry_lists(importer: OrderImporter, agent: AgentClient, progress: Progress | None) -> None:
    """Failed orders are retried, deferred ones re-checked, both fetched fresh by id."""
    state, name = importer.state, importer.name
    todo = [(f.entity_id, f.number, "failed") for f in state.failed_list(name)]
    todo += [(d.entity_id, d.number, "deferred") for d in state.deferred_list(name)]
    for done, (eid, number, source) in enumerate(todo):
        if progress:
            progress(source, done, len(todo))
        order = agent.order(eid)
        if order is None:
            importer._forget(eid)
            importer.result.dropped += 1
            importer.log(
                "warning", f"Magento order {number} dropped: it no longer exists in Magento", essential=True
            )
            continue
        importer.handle(order, source)


def _import_from_text(moment: dt.datetime | None) -> str:
    """magento.import_from as the state remembers it: ISO UTC, "" for "from the first order"."""
    return "" if moment is None else moment.astimezone(dt.UTC).isoformat()


def _feed_start(importer: OrderImporter) -> tuple[str | None, dt.datetime | None, str | None]:
    """Where the feed is read from: (cursor, created_from, the import_from to remember with the next cursor).

    The cursor remembers the magento.import_from it was started from. Moving that setting earlier reads the
    orders from the new moment again: orders ignored before (another import_states) get their chance, and the
    ledger skips the ones already imported. A later or equal setting changes nothing: those orders were read.
    """
    configured = importer.profile.magento.import_from
    wanted = _import_from_text(configured)
    cursor = importer.state.get_cursor(importer.name)
    if cursor is None:
        return None, configured, wanted
    remembered = importer.state.get_cursor_start(importer.name)
    if remembered is None:
        # A cursor of a koppel that did not remember its start: from now on the setting as it is counts.
        return cursor, None, wanted
    if remembered == "" or wanted == remembered:
        return cursor, None, None
    if configured is not None and configured >= dt.datetime.fromisoformat(remembered):
        return cursor, None, None
    if configured is None:
        moved = "magento.import_from was removed: the Magento orders are read again from the first one"
    else:
        moved = (
            f"magento.import_from moved back to {_local_time(configured, importer.zone)}: the Magento orders "
            "from then on are read again"
        )
    importer.log("info", f"{moved} (the ones already imported are skipped)", essential=True)
    return None, configured, wanted


def _local_time(moment: dt.datetime, zone: Any) -> str:
    return (moment.astimezone(zone) if zone is not None else moment).strftime("%Y-%m-%d %H:%M")


def _new_orders(importer: OrderImporter, agent: AgentClient, progress: Progress | None) -> None:
    profile, state = importer.profile, importer.state
    cursor, created_from, started_from = _feed_start(importer)
    seen = 0
    while True:
        page = agent.orders(
            after=cursor, created_from=created_from, limit=PAGE_SIZE, store=profile.magento.store
        )
        for order in page["orders"]:
            importer.handle(order, "feed")
            seen += 1
            if progress:
                progress("orders", seen, None)
        # Only now is every order of the page final (done, failed, deferred or ignored).
        cursor, created_from = page["next_cursor"], None
        if not importer.dry_run:
            state.set_cursor(importer.name, cursor, started_from=started_from)
            started_from = None
        if not page.get("has_more") or not page["orders"]:
            break


def run_import(
    config: Any,
    profile: Any,
    *,
    backend: SnelStartBackend | None = None,
    state: StateStore | None = None,
    agent: AgentClient | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    task: str | None = None,
    now: Callable[[], dt.datetime] = utcnow,
) -> ImportResult:
    """Import the new orders of one profile (``profile`` is a ``Profile`` or its name).

    Never raises for an order or a transient outage: those end up in the result (``failures``, ``error``) and
    the log. Raises only for what makes a run impossible to start (configuration, state file).
    Objects passed in are left open; those opened here are closed.
    """
    if isinstance(profile, str):
        profile = config.profile(profile)
    result = ImportResult(profile=profile.name, dry_run=dry_run)
    opened: list[Any] = []
    try:
        if state is None:
            state = StateStore(config.state)
            opened.append(state)
        importer = None
        try:
            if agent is None:
                agent = AgentClient.from_profile(profile)
                opened.append(agent)
            if backend is None:
                from client.snelstart.factory import open_backend

                backend = open_backend(profile.snelstart, _config_dir(config), state=state)
                opened.append(backend)
            importer = OrderImporter(
                profile,
                backend,
                state,
                result,
                dry_run=dry_run,
                task=task,
                now=now,
                zone=getattr(config, "zone", None),
            )
            backend.refresh()
            importer.check_profile()
            _retry_lists(importer, agent, progress)
            _new_orders(importer, agent, progress)
        except _ProfileStop as exc:
            result.error = str(exc)
            assert importer is not None  # only the importer raises it
            importer.log(
                "error",
                f"Import not started: {exc}. No order was touched; they are imported on the first run after "
                "the fix",
                essential=True,
            )
        except (_Transient, AgentError, SnelStartUnavailable) as exc:
            result.error = str(exc)
            message = f"Import stopped: {exc}; the rest follows on the next run"
            if importer is not None:
                importer.log("error", message, essential=True)
            elif not dry_run:
                state.log(profile.name, "error", message, essential=True, task=task)
        if importer is not None and not dry_run:
            importer.log("info", result.summary(), essential=True)
        return result
    finally:
        for thing in reversed(opened):
            thing.close()


def _config_dir(config: Any) -> Path:
    path = getattr(config, "path", None)
    return Path(path).parent if path else Path.cwd()


def main(argv: list[str] | None = None) -> int:
    """``python -m client.engine --config F --profile P [--dry-run]``: a bare run, no lock, no schedule."""
    from client.config import ConfigError, load_client_config

    parser = argparse.ArgumentParser(prog="python -m client.engine", description=main.__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    try:
        config = load_client_config(args.config)
        result = run_import(config, args.profile, dry_run=args.dry_run)
    except (ConfigError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in result.lines:
        print(line)
    print(result.summary())
    return 0 if result.ok and not result.failed else 1


if __name__ == "__main__":
    sys.exit(main())
