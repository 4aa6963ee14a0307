"""A dry run's memory of what it would have created, so that its counts equal those of the real run.

A dry run must not write to SnelStart, yet the real run creates a new customer for the first of her orders and
matches her for every later one (likewise an article). ``DryRunBackend`` wraps the real backend: reads go through,
creates and updates are kept in memory for this run only, and every lookup also searches that memory with the
same normalised keys the backends match on (``client.rules.normalize``; codes trimmed and case-insensitive).
The sales-order rules then run unchanged, as in a real run, against this overlay.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from client.rules import normalize
from client.snelstart.base import Artikel, NieuwArtikel, NieuweRelatie, Relatie, SnelStartRefusal

ID_PREFIX = "dry-run:"


def _code_key(value: Any) -> str:
    return str(value).strip().upper()


def _email_keys(value: str | None) -> set[str]:
    keys = (normalize.email_key(part) for part in (value or "").split(";"))
    return {key for key in keys if key}


def _email_field(relatie: Relatie, veld: str) -> str | None:
    """The text of one of SnelStart's e-mail fields by the names the backends use ("factuur_cc", ...)."""
    if veld == "email":
        return relatie.email
    kind, _, cc = veld.partition("_")
    setting = getattr(relatie, f"{kind}_email", None)
    if setting is None:
        return None
    return setting.cc if cc else setting.email


ALL_EMAIL_FIELDS = tuple(
    f"{kind}{suffix}" for kind in ("factuur", "offerte", "bevestiging", "aanmaning") for suffix in ("", "_cc")
)


class DryRunBackend:
    """The real backend for reading, an in-memory notebook for writing (one run long)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self._relaties: dict[str, Relatie] = {}  # would-be-created and would-be-updated, by id
        self._artikelen: dict[str, Artikel] = {}

    def __getattr__(self, name: str) -> Any:
        # Everything the overlay does not know (templates, omzetgroepen, settings) is the real backend's.
        return getattr(self._backend, name)

    @property
    def real(self) -> Any:
        """The backend under the overlay (to ask what kind of backend it is)."""
        return self._backend

    # -- relaties ----------------------------------------------------------------------------------------
    def _remembered(self, found: list[Relatie], test: Any) -> list[Relatie]:
        """Real hits (in their remembered, updated form) plus remembered relaties that pass ``test``."""
        hits = [self._relaties.get(r.id, r) for r in found]
        ids = {r.id for r in hits}
        return hits + [r for r in self._relaties.values() if r.id not in ids and not r.nonactief and test(r)]

    def create_relatie(self, relatie: NieuweRelatie) -> Relatie:
        new_id = f"{ID_PREFIX}relatie:{len(self._relaties) + 1}"
        fields = {f.name: getattr(relatie, f.name) for f in dataclasses.fields(relatie)}
        code = fields.pop("relatiecode") or 0  # SnelStart would number it; 0 marks "not yet numbered"
        made = Relatie(id=new_id, relatiecode=code, **fields)
        self._relaties[new_id] = made
        return made

    def update_relatie(self, relatie: Relatie) -> Relatie:
        self._relaties[relatie.id] = relatie
        return relatie

    def get_relatie(self, relatie_id: str) -> Relatie | None:
        if relatie_id in self._relaties:
            return self._relaties[relatie_id]
        if str(relatie_id).startswith(ID_PREFIX):
            return None
        return self._backend.get_relatie(relatie_id)

    def relaties_by_code(self, relatiecode: int) -> list[Relatie]:
        return self._remembered(
            self._backend.relaties_by_code(relatiecode),
            lambda r: r.relatiecode and r.relatiecode == relatiecode,
        )

    def relaties_by_email(self, email_key: str, *, all_fields: bool) -> list[Relatie]:
        fields = ("email", *ALL_EMAIL_FIELDS) if all_fields else ("email",)
        return self._by_email(
            self._backend.relaties_by_email(email_key, all_fields=all_fields), email_key, fields
        )

    def relaties_by_email_fields(self, email_key: str, fields: tuple[str, ...]) -> list[Relatie]:
        return self._by_email(self._backend.relaties_by_email_fields(email_key, fields), email_key, fields)

    def _by_email(self, found: list[Relatie], email_key: str, fields: tuple[str, ...]) -> list[Relatie]:
        key = normalize.email_key(email_key)
        return self._remembered(
            found, lambda r: key is not None and any(key in _email_keys(_email_field(r, f)) for f in fields)
        )

    def relaties_by_vat(self, vat_key: str) -> list[Relatie]:
        key = normalize.vat_key(vat_key)
        return self._remembered(
            self._backend.relaties_by_vat(vat_key),
            lambda r: key is not None and normalize.vat_key(r.btw_nummer, r.vestigingsadres.land) == key,
        )

    def relaties_by_kvk(self, kvk_key: str) -> list[Relatie]:
        key = normalize.kvk_key(kvk_key)
        return self._remembered(
            self._backend.relaties_by_kvk(kvk_key),
            lambda r: key is not None and normalize.kvk_key(r.kvk_nummer) == key,
        )

    def relaties_by_name(self, name_key: str, land: str | None, postcode_key: str | None) -> list[Relatie]:
        key = normalize.name_key(name_key)
        postcode = normalize.postcode_key(postcode_key) if postcode_key else None

        def same(r: Relatie) -> bool:
            adres = r.vestigingsadres
            return (
                key is not None
                and normalize.name_key(r.naam) == key
                and (not land or adres.land == land)
                and (not postcode or normalize.postcode_key(adres.postcode) == postcode)
            )

        return self._remembered(self._backend.relaties_by_name(name_key, land, postcode_key), same)

    def relaties_by_extra_veld(self, veld: str, waarde: str) -> list[Relatie]:
        return self._remembered(
            self._backend.relaties_by_extra_veld(veld, waarde),
            lambda r: r.extra_velden.get(veld) is not None
            and _code_key(r.extra_velden[veld]) == _code_key(waarde),
        )

    # -- artikelen ---------------------------------------------------------------------------------------
    def create_artikel(self, artikel: NieuwArtikel) -> Artikel:
        fields = {f.name: getattr(artikel, f.name) for f in dataclasses.fields(artikel)}
        made = Artikel(id=f"{ID_PREFIX}artikel:{_code_key(artikel.artikelcode)}", **fields)
        self._artikelen[made.id] = made
        return made

    def update_artikel(self, artikel: Artikel) -> Artikel:
        self._artikelen[artikel.id] = artikel
        return artikel

    def get_artikel(self, artikel_id: str) -> Artikel | None:
        if artikel_id in self._artikelen:
            return self._artikelen[artikel_id]
        if str(artikel_id).startswith(ID_PREFIX):
            return None
        return self._backend.get_artikel(artikel_id)

    def artikelen_by_code(self, code: str, code_field: str = "artikelcode") -> list[Artikel]:
        def same(a: Artikel) -> bool:
            value = a.artikelcode if code_field == "artikelcode" else a.extra_velden.get(code_field)
            return value is not None and bool(code and code.strip()) and _code_key(value) == _code_key(code)

        hits = [self._artikelen.get(a.id, a) for a in self._backend.artikelen_by_code(code, code_field)]
        ids = {a.id for a in hits}
        return hits + [a for a in self._artikelen.values() if a.id not in ids and same(a)]

    # -- what only exists for real ones ------------------------------------------------------------------
    def prijsafspraken(self, relatie_id: str, artikel_id: str) -> list[Any]:
        if str(relatie_id).startswith(ID_PREFIX) or str(artikel_id).startswith(ID_PREFIX):
            return []  # a new customer or article has no price agreements yet
        return self._backend.prijsafspraken(relatie_id, artikel_id)

    def last_order_sjabloon(self, relatie_id: str) -> str | None:
        if str(relatie_id).startswith(ID_PREFIX):
            return None
        return self._backend.last_order_sjabloon(relatie_id)

    def create_verkooporder(self, order: Any) -> Any:
        raise SnelStartRefusal("a dry run creates no sales orders")
