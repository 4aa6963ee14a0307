"""The ``b2b`` backend: SnelStart web through the SnelStart B2B API v2.

Matching lookups are answered from the mirror in the state file (``b2b_mirror``), so an order costs only its
writes (a verkooporder, sometimes a relatie or artikel) and, with "betalingskenmerk uniek", one look-up.
SnelStart's field limits are enforced here with a visible warning instead of a refusal for free text, because
a too long street line should not stop an order; an unknown country does stop it, since SnelStart would
silently book the address in the Netherlands.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from client.rules import normalize
from client.rules.normalize import kvk_key, vat_key
from client.snelstart import b2b_http as h
from client.snelstart.b2b_mirror import EMAIL_FIELDS, B2BMirror, code_key, extra_key, postcode_matches
from client.snelstart.base import (
    VOORRAAD_NIVEAUS,
    Adres,
    Artikel,
    EmailVersturen,
    NieuwArtikel,
    NieuweRelatie,
    NieuweVerkooporder,
    Omzetgroep,
    OrderRegel,
    PrijsAfspraak,
    ReceptRegel,
    Relatie,
    SnelStartRefusal,
    SnelStartUnavailable,
    Verkooporder,
    Verkoopsjabloon,
)
from client.snelstart.secrets import Secret

log = logging.getLogger("koppel.snelstart.b2b")

DEFAULT_API_URL = "https://b2bapi.snelstart.nl/v2"
DEFAULT_AUTH_URL = "https://auth.snelstart.nl/b2b/token"
FULL_REFRESH_AFTER = dt.timedelta(hours=24)
LANDEN_MAX_AGE = dt.timedelta(days=7)
# The ModifiedOn literal carries no offset and SnelStart may read it as Dutch local time; looking back this much
# further than the watermark costs a few re-read rows and never misses one.
MODIFIED_OVERLAP = dt.timedelta(hours=2, minutes=5)

STOCK_FILTER = "VoorraadControle eq true and IsNonActief eq false"
# Composites without stock control of their own: their web stock follows their parts.
RECIPE_FILTER = "IsHoofdartikel eq true and VoorraadControle eq false and IsNonActief eq false"
NON_STOCK_FILTER = "VoorraadControle eq false and IsNonActief eq false"
RECIPE_REUSE = dt.timedelta(minutes=10)

# Field limits from SnelStart's error catalogue (REL-/VOR- codes) and the OpenAPI file.
LIMITS = {
    "naam": 50,
    "straat": 50,
    "postcode": 25,
    "plaats": 50,
    "contactpersoon": 50,
    "telefoon": 25,
    "email": 250,
    "kvk": 12,
    "btw": 50,
    "regel_omschrijving": 250,
    "artikel_omschrijving": 250,
    "orderreferentie": 50,
}


def odata_string(value: str) -> str:
    """An OData string literal: single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value if value is not None else 0))


def _parse_dt(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _ref(obj: dict[str, Any] | None) -> str | None:
    return obj.get("id") if isinstance(obj, dict) else None


class B2BBackend:
    """SnelStartBackend over the B2B API. ``state`` is where the mirror lives: a StateStore (its ``connect()``),
    an sqlite3 connection, or a file path."""

    name = "b2b"

    def __init__(
        self,
        *,
        client_key: Secret,
        subscription_key: Secret,
        state: Any,
        api_url: str = DEFAULT_API_URL,
        auth_url: str = DEFAULT_AUTH_URL,
        tier: str = "development",
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: h.RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        if not isinstance(client_key, Secret) or not isinstance(subscription_key, Secret):
            raise TypeError("client_key and subscription_key must be Secret (see client.snelstart.secrets)")
        # The koppelsleutel opens exactly one administration, so it identifies it without an API call.
        self.admin = hashlib.sha256(f"{api_url}\n{client_key.reveal()}".encode()).hexdigest()[:20]
        session = session or requests.Session()
        retry = retry or h.RetryPolicy()
        tokens = h.TokenProvider(auth_url, client_key, session, retry, timeout, sleep=sleep)
        self.http = h.B2BHttp(
            api_url, tokens, subscription_key, h.limiter_for(self.admin, tier), retry, timeout, session, sleep
        )
        self._sleep = sleep
        self._now = now
        self.mirror = B2BMirror(self._open_state(state), self.admin)
        self.warnings: list[str] = []
        self._company: dict[str, Any] | None = None
        self._landen: dict[str, str] | None = None  # id → ISO
        self._sjablonen: list[Verkoopsjabloon] | None = None
        self._omzetgroepen: list[Omzetgroep] | None = None
        self._known_orders: dict[str, set[str]] = {}  # betalingskenmerk → order ids seen before a create
        self._every_artikel: tuple[dt.datetime, list[Artikel]] | None = None  # last unfiltered read, and when

    @classmethod
    def from_settings(cls, settings: Any, state: Any, **kwargs: Any) -> B2BBackend:
        """Build from ``client.config.SnelStartSettings`` (backend b2b); secrets are read now."""
        from client.snelstart.secrets import resolve_secret

        client_key = resolve_secret(
            "snelstart.client_key",
            value=settings.client_key,
            env=settings.client_key_env,
            file=settings.client_key_file,
            keyring=getattr(settings, "client_key_keyring", None),
        )
        subscription_key = resolve_secret(
            "snelstart.subscription_key",
            value=settings.subscription_key,
            env=settings.subscription_key_env,
            file=settings.subscription_key_file,
            keyring=getattr(settings, "subscription_key_keyring", None),
        )
        return cls(
            client_key=client_key,
            subscription_key=subscription_key,
            state=state,
            api_url=settings.api_url,
            auth_url=settings.auth_url,
            tier=settings.tier,
            **kwargs,
        )

    @staticmethod
    def _open_state(state: Any) -> sqlite3.Connection:
        if isinstance(state, sqlite3.Connection):
            return state
        if hasattr(state, "connect"):
            return state.connect()
        if isinstance(state, str | Path):
            return sqlite3.connect(state, isolation_level=None, check_same_thread=False, timeout=30)
        raise TypeError(
            f"state must be a StateStore, an sqlite3 connection or a path, not {type(state).__name__}"
        )

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning("%s", message)

    def _clip(self, value: str | None, limit_name: str, what: str) -> str | None:
        if value is None:
            return None
        value = value.strip()
        limit = LIMITS[limit_name]
        if len(value) > limit:
            self._warn(
                f"{what} is longer than SnelStart allows ({len(value)} > {limit}); shortened: {value!r}"
            )
            value = value[:limit]
        return value or None

    # -- administration --------------------------------------------------------------------------------------
    def _company_info(self) -> dict[str, Any]:
        if self._company is None:
            self._company = self.http.get("/companyInfo")
        return self._company

    def administration_name(self) -> str:
        info = self._company_info()
        return str(info.get("administratieNaam") or info.get("bedrijfsnaam") or "")

    def voorraad_vanaf_niveau(self) -> str:
        niveau = self._company_info().get("verkooporderVoorraadVanafNiveau") or "Alle"
        if niveau not in VOORRAAD_NIVEAUS:
            raise SnelStartRefusal(
                f"SnelStart companyInfo.verkooporderVoorraadVanafNiveau {niveau!r} is unknown"
            )
        return niveau

    def refresh(self) -> None:
        self._refresh("relatie", "/relaties", self._relatie_from_api)
        self._refresh("artikel", "/artikelen", self._artikel_from_api)

    def _refresh(self, entity: str, path: str, convert: Callable[[dict[str, Any]], Any]) -> None:
        read_at = self._now()
        state = self.mirror.sync_state(entity)
        full = state is None or state[0] is None or read_at - state[1] >= FULL_REFRESH_AFTER
        params = None
        if not full:
            assert state is not None and state[0] is not None
            since = (state[0] - MODIFIED_OVERLAP).astimezone(dt.UTC)
            params = {
                "$filter": f"ModifiedOn gt datetime'{since:%Y-%m-%dT%H:%M:%S}.{since.microsecond // 1000:03d}'"
            }
        # Read contiguously (get_all's default): a relatie or artikel that leaves its place in the list meanwhile
        # (removed, or renamed in a list kept in name order) must not make the walk step over another one. A full
        # read replaces the mirror, so that one would be missing, matching would not find it and the import would
        # create the customer a second time; an incremental read would lose its change (the watermark moves on).
        rows = self.http.get_all(path, params)
        self.mirror.apply_refresh(entity, [convert(r) for r in rows], full=full, read_at=read_at)

    def close(self) -> None:
        self.mirror.close()
        self.http.session.close()

    # -- landen ----------------------------------------------------------------------------------------------
    def _landen_map(self, *, reload: bool = False) -> dict[str, str]:
        if self._landen is not None and not reload:
            return self._landen
        stored, read_at = self.mirror.landen()
        if reload or not stored or read_at is None or self._now() - read_at > LANDEN_MAX_AGE:
            rows = self.http.get("/landen") or []
            table = {}
            for row in rows:
                iso = (row.get("landcodeISO") or row.get("landcode") or "").strip().upper()
                if row.get("id") and iso:
                    table[row["id"]] = (iso, row.get("naam"))
            self.mirror.store_landen(table, self._now())
            stored = {i: iso for i, (iso, _) in table.items()}
        self._landen = stored
        return stored

    def _land_iso(self, land_id: str | None) -> str | None:
        if not land_id:
            return None
        table = self._landen_map()
        if land_id not in table:
            table = self._landen_map(reload=True)
        return table.get(land_id)

    def _land_id(self, iso: str) -> str:
        iso = iso.strip().upper()
        for attempt in range(2):
            for land_id, code in self._landen_map(reload=attempt == 1).items():
                if code == iso:
                    return land_id
        # SnelStart would book an address without land in the Netherlands; that must never happen silently.
        raise SnelStartRefusal(f"country {iso!r} is not in SnelStart's list of countries (/landen)")

    # -- model mapping: API → dataclasses ---------------------------------------------------------------------
    def _adres_from_api(self, data: dict[str, Any] | None) -> Adres | None:
        if not data:
            return None
        return Adres(
            contactpersoon=data.get("contactpersoon"),
            straat=data.get("straat"),
            postcode=data.get("postcode"),
            plaats=data.get("plaats"),
            land=self._land_iso(_ref(data.get("land"))),
        )

    @staticmethod
    def _email_from_api(data: dict[str, Any] | None) -> EmailVersturen:
        data = data or {}
        return EmailVersturen(email=data.get("email") or None, cc=data.get("ccEmail") or None)

    def _relatie_from_api(self, d: dict[str, Any]) -> Relatie:
        corr = self._adres_from_api(d.get("correspondentieAdres"))
        if corr is not None and not any((corr.straat, corr.postcode, corr.plaats, corr.contactpersoon)):
            corr = None
        return Relatie(
            id=d["id"],
            relatiecode=int(d.get("relatiecode") or 0),
            naam=d.get("naam") or "",
            vestigingsadres=self._adres_from_api(d.get("vestigingsAdres")) or Adres(),
            correspondentieadres=corr,
            telefoon=d.get("telefoon"),
            mobiele_telefoon=d.get("mobieleTelefoon"),
            email=d.get("email"),
            factuur_email=self._email_from_api(d.get("factuurEmailVersturen")),
            offerte_email=self._email_from_api(d.get("offerteEmailVersturen")),
            bevestiging_email=self._email_from_api(d.get("bevestigingsEmailVersturen")),
            aanmaning_email=self._email_from_api(d.get("aanmaningEmailVersturen")),
            btw_nummer=d.get("btwNummer"),
            kvk_nummer=d.get("kvkNummer"),
            krediettermijn=d.get("krediettermijn"),
            relatiesoort=tuple(d.get("relatiesoort") or ()),
            extra_velden={
                e["naam"]: e.get("waarde") or "" for e in d.get("extraVeldenKlant") or [] if e.get("naam")
            },
            nonactief=bool(d.get("nonactief")),
            modified_on=_parse_dt(d.get("modifiedOn")),
        )

    def _artikel_from_api(self, d: dict[str, Any]) -> Artikel:
        return Artikel(
            id=d["id"],
            artikelcode=d.get("artikelcode") or "",
            omschrijving=d.get("omschrijving") or "",
            omzetgroep_id=_ref(d.get("artikelOmzetgroep")),
            verkoopprijs=_dec(d.get("verkoopprijs")),
            inkoopprijs=_dec(d["inkoopprijs"]) if d.get("inkoopprijs") is not None else None,
            eenheid=d.get("eenheid"),
            voorraad_controle=bool(d.get("voorraadControle")),
            technische_voorraad=_dec(d.get("technischeVoorraad")),
            vrije_voorraad=_dec(d.get("vrijeVoorraad")),
            extra_velden={
                e["naam"]: e.get("waarde") or "" for e in d.get("extraVelden") or [] if e.get("naam")
            },
            recept=[
                ReceptRegel(
                    artikel_id=s["id"], artikelcode=s.get("artikelcode") or "", aantal=_dec(s.get("aantal"))
                )
                for s in d.get("subartikelen") or []
                if s.get("id")
            ],
            recept_plaatsing=None,  # the API does not expose "altijd plaatsen" / "keuze"
            is_non_actief=bool(d.get("isNonActief")),
            modified_on=_parse_dt(d.get("modifiedOn")),
        )

    def _order_from_api(self, d: dict[str, Any]) -> Verkooporder:
        regels = [
            OrderRegel(
                artikel_id=_ref(r.get("artikel")),
                omschrijving=r.get("omschrijving") or "",
                aantal=_dec(r.get("aantal")),
                stuksprijs=_dec(r.get("stuksprijs")),
                kortings_percentage=_dec(r.get("kortingsPercentage")),
            )
            for r in d.get("regels") or []
        ]
        return Verkooporder(
            id=d["id"],
            nummer=int(d.get("nummer") or 0),
            relatie_id=_ref(d.get("relatie")) or "",
            datum=dt.date.fromisoformat(str(d.get("datum"))[:10]),
            betalingskenmerk=d.get("betalingskenmerk"),
            omschrijving=d.get("omschrijving"),
            sjabloon_id=_ref(d.get("verkoopordersjabloon")),
            proces_status=d.get("procesStatus") or "Order",
            totaal_excl_btw=_dec(d.get("totaalExclusiefBtw")),
            totaal_incl_btw=_dec(d.get("totaalInclusiefBtw")),
            regels=regels,
            factuuradres=self._adres_from_api(d.get("factuuradres")),
            afleveradres=self._adres_from_api(d.get("afleveradres")),
        )

    # -- model mapping: dataclasses → API (absent optional fields are left out, never sent as null) ----------
    def _adres_to_api(self, adres: Adres, what: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("contactpersoon", "straat", "postcode", "plaats"):
            value = self._clip(getattr(adres, name), name, f"{what} {name}")
            if value:
                out[name] = value
        if adres.land:
            out["land"] = {"id": self._land_id(adres.land)}
        elif out:
            raise SnelStartRefusal(f"{what} has no country; SnelStart would assume the Netherlands")
        return out

    def _email_to_api(self, e: EmailVersturen, what: str) -> dict[str, Any] | None:
        email = self._clip(e.email, "email", what)
        cc = self._clip(e.cc, "email", f"{what} cc")
        if not email and not cc:
            return None
        out: dict[str, Any] = {"shouldSend": bool(email)}
        if email:
            out["email"] = email
        if cc:
            out["ccEmail"] = cc
        return out

    def _relatie_to_api(self, r: Relatie | NieuweRelatie) -> dict[str, Any]:
        naam = self._clip(r.naam, "naam", "customer name")
        if not naam:
            raise SnelStartRefusal("a relatie needs a naam")
        body: dict[str, Any] = {"relatiesoort": list(getattr(r, "relatiesoort", ("Klant",))), "naam": naam}
        if r.relatiecode is not None:
            body["relatiecode"] = r.relatiecode
        vestiging = self._adres_to_api(r.vestigingsadres, f"address of {naam}")
        if vestiging:
            body["vestigingsAdres"] = vestiging
        if r.correspondentieadres is not None and (
            corr := self._adres_to_api(r.correspondentieadres, "postal address")
        ):
            body["correspondentieAdres"] = corr
        for key, value, limit in (
            ("telefoon", r.telefoon, "telefoon"),
            ("mobieleTelefoon", getattr(r, "mobiele_telefoon", None), "telefoon"),
            ("email", r.email, "email"),
        ):
            if clipped := self._clip(value, limit, f"{key} of {naam}"):
                body[key] = clipped
        emails = {"factuurEmailVersturen": r.factuur_email}
        if isinstance(r, Relatie):
            emails |= {
                "offerteEmailVersturen": r.offerte_email,
                "bevestigingsEmailVersturen": r.bevestiging_email,
                "aanmaningEmailVersturen": r.aanmaning_email,
            }
        for key, setting in emails.items():
            if (value := self._email_to_api(setting, f"{key} of {naam}")) is not None:
                body[key] = value
        if r.btw_nummer:
            vat = vat_key(r.btw_nummer, r.vestigingsadres.land)
            if vat is None or not 2 <= len(vat) <= LIMITS["btw"]:
                self._warn(f"VAT number {r.btw_nummer!r} of {naam} is not usable; left out")
            else:
                body["btwNummer"] = vat
        if r.kvk_nummer:
            kvk = kvk_key(r.kvk_nummer)
            if kvk is None or len(kvk) > LIMITS["kvk"]:
                self._warn(f"KvK number {r.kvk_nummer!r} of {naam} is not usable; left out")
            else:
                body["kvkNummer"] = kvk
        if r.krediettermijn is not None:
            body["krediettermijn"] = r.krediettermijn
        if isinstance(r, Relatie):
            body["nonactief"] = r.nonactief
        return body

    def _put_custom_fields(self, kind: str, obj_id: str, velden: dict[str, str]) -> None:
        if not velden:
            return
        fields = [{"name": naam, "value": waarde} for naam, waarde in velden.items()]
        if kind == "relaties":
            self.http.put(f"/relaties/{obj_id}/customFields", {"klantCustomFields": fields})
        else:
            self.http.put(f"/artikelen/{obj_id}/customFields", fields)

    # -- relaties --------------------------------------------------------------------------------------------
    def get_relatie(self, relatie_id: str) -> Relatie | None:
        found = self.mirror.get("relatie", relatie_id)
        if found is None:
            data = self.http.get_optional(f"/relaties/{relatie_id}")
            if data is None:
                return None
            found = self._relatie_from_api(data)
            self.mirror.store("relatie", [found])
        return found  # type: ignore[return-value]

    def relaties_by_code(self, relatiecode: int) -> list[Relatie]:
        return self.mirror.find("relatie", ["code"], str(relatiecode))

    def relaties_by_email(self, email_key: str, *, all_fields: bool) -> list[Relatie]:
        return self.relaties_by_email_fields(email_key, tuple(EMAIL_FIELDS) if all_fields else ("email",))

    # Matching lookups skip nonactief ("deleted") relaties, as the local backend does; by code they count.
    def _active(self, kinds: list[str], key: str | None) -> list[Relatie]:
        if not key or not kinds:
            return []
        return [r for r in self.mirror.find("relatie", kinds, key) if not r.nonactief]

    def relaties_by_email_fields(self, email_key: str, fields: tuple[str, ...]) -> list[Relatie]:
        unknown = [f for f in fields if f not in EMAIL_FIELDS]
        if unknown:
            raise ValueError(f"unknown e-mail field(s): {', '.join(unknown)}")
        return self._active([f"email:{f}" for f in fields], normalize.email_key(email_key))

    def relaties_by_vat(self, vat_key: str) -> list[Relatie]:
        return self._active(["vat"], normalize.vat_key(vat_key))

    def relaties_by_kvk(self, kvk_key: str) -> list[Relatie]:
        return self._active(["kvk"], normalize.kvk_key(kvk_key))

    def relaties_by_name(self, name_key: str, land: str | None, postcode_key: str | None) -> list[Relatie]:
        wanted_land = land.strip().upper() if land else None
        wanted_postcode = normalize.postcode_key(postcode_key)
        return [
            r
            for r in self._active(["name"], normalize.name_key(name_key))
            if (wanted_land is None or (r.vestigingsadres.land or "").upper() == wanted_land)
            and postcode_matches(r, wanted_postcode)
        ]

    def relaties_by_extra_veld(self, veld: str, waarde: str) -> list[Relatie]:
        return self._active([f"extra:{veld.casefold()}"], extra_key(waarde))

    def create_relatie(self, relatie: NieuweRelatie) -> Relatie:
        data = self._post_relatie(self._relatie_to_api(relatie))
        if relatie.extra_velden:
            self._put_custom_fields("relaties", data["id"], relatie.extra_velden)
            data = self.http.get(f"/relaties/{data['id']}")
        created = self._relatie_from_api(data)
        self.mirror.store("relatie", [created])
        return created

    def _post_relatie(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /relaties. When the outcome is unknown (timeout, 5xx) the mirror is refreshed first: a relatie
        that appeared since, with this body's name, code, e-mail and postcode, is the one just sent; only when
        none appeared is it sent again, so a lost answer never makes a second relatie."""
        name = normalize.name_key(body["naam"])
        before = {r.id for r in self.mirror.find("relatie", ["name"], name)} if name else set()
        for attempt in range(self.http.retry.attempts):
            try:
                return self.http.post("/relaties", body)
            except h.OutcomeUnknown:
                self._sleep(self.http.retry.delay(attempt))
                self._refresh("relatie", "/relaties", self._relatie_from_api)
                for found in self.mirror.find("relatie", ["name"], name) if name else []:
                    if found.id not in before and self._is_sent_relatie(found, body):
                        log.info("SnelStart had stored relatie %s despite the lost answer", found.relatiecode)
                        return self.http.get(f"/relaties/{found.id}")
        raise SnelStartUnavailable(
            f"SnelStart did not confirm relatie {body['naam']!r}; it was not found either, try again later"
        )

    @staticmethod
    def _is_sent_relatie(found: Relatie, body: dict[str, Any]) -> bool:
        postcode = (body.get("vestigingsAdres") or {}).get("postcode")
        return (
            found.naam == body["naam"]
            and ("relatiecode" not in body or found.relatiecode == body["relatiecode"])
            and normalize.email_key(found.email) == normalize.email_key(body.get("email"))
            and normalize.postcode_key(found.vestigingsadres.postcode) == normalize.postcode_key(postcode)
        )

    def update_relatie(self, relatie: Relatie) -> Relatie:
        data = self.http.put(f"/relaties/{relatie.id}", {**self._relatie_to_api(relatie), "id": relatie.id})
        before = self.mirror.get("relatie", relatie.id)
        if relatie.extra_velden and (before is None or before.extra_velden != relatie.extra_velden):
            self._put_custom_fields("relaties", relatie.id, relatie.extra_velden)
            data = self.http.get(f"/relaties/{relatie.id}")
        updated = self._relatie_from_api(data) if data else relatie
        self.mirror.store("relatie", [updated])
        return updated

    # -- artikelen -------------------------------------------------------------------------------------------
    def get_artikel(self, artikel_id: str) -> Artikel | None:
        found = self.mirror.get("artikel", artikel_id)
        if found is None:
            data = self.http.get_optional(f"/artikelen/{artikel_id}")
            if data is None:
                return None
            found = self._artikel_from_api(data)
            self.mirror.store("artikel", [found])
        return found  # type: ignore[return-value]

    def artikelen_by_code(self, code: str, code_field: str = "artikelcode") -> list[Artikel]:
        if code_field == "artikelcode":
            key = code_key(code)
            return self.mirror.find("artikel", ["code"], key) if key else []
        key = extra_key(code)
        return self.mirror.find("artikel", [f"extra:{code_field.casefold()}"], key) if key else []

    def _artikel_body(self, a: Artikel | NieuwArtikel) -> dict[str, Any]:
        omschrijving = self._clip(
            a.omschrijving, "artikel_omschrijving", f"description of article {a.artikelcode}"
        )
        body: dict[str, Any] = {
            "artikelcode": a.artikelcode,
            "omschrijving": omschrijving or a.artikelcode,
            "verkoopprijs": a.verkoopprijs,
            "voorraadControle": a.voorraad_controle,
        }
        if a.omzetgroep_id:
            body["artikelOmzetgroep"] = {"id": a.omzetgroep_id}
        if isinstance(a, Artikel):
            body["isNonActief"] = a.is_non_actief
            if a.inkoopprijs is not None:
                body["inkoopprijs"] = a.inkoopprijs
            if a.eenheid:
                body["eenheid"] = a.eenheid
        return body

    def create_artikel(self, artikel: NieuwArtikel) -> Artikel:
        try:
            data = self.http.post("/artikelen", self._artikel_body(artikel))
        except h.OutcomeUnknown:
            # artikelcode is unique in SnelStart: the article either exists now or was not made.
            self._sleep(self.http.retry.delay(0))
            self._refresh("artikel", "/artikelen", self._artikel_from_api)
            found = self.artikelen_by_code(artikel.artikelcode)
            if found:
                return found[0]
            data = self.http.post("/artikelen", self._artikel_body(artikel))
        if artikel.extra_velden:
            self._put_custom_fields("artikelen", data["id"], artikel.extra_velden)
            data = self.http.get(f"/artikelen/{data['id']}")
        created = self._artikel_from_api(data)
        self.mirror.store("artikel", [created])
        return created

    def update_artikel(self, artikel: Artikel) -> Artikel:
        data = self.http.put(f"/artikelen/{artikel.id}", {**self._artikel_body(artikel), "id": artikel.id})
        updated = self._artikel_from_api(data) if data else artikel
        self.mirror.store("artikel", [updated])
        return updated

    def omzetgroepen(self) -> list[Omzetgroep]:
        if self._omzetgroepen is None:
            rates = self._btw_percentages()
            self._omzetgroepen = [
                Omzetgroep(
                    id=g["id"],
                    nummer=int(g.get("nummer") or 0),
                    omschrijving=g.get("omschrijving") or "",
                    btw_soort=g.get("verkoopNederlandBtwSoort"),
                    btw_percentage=rates.get(g.get("verkoopNederlandBtwSoort") or ""),
                )
                for g in self.http.get("/artikelomzetgroepen") or []
            ]
        return list(self._omzetgroepen)

    def _btw_percentages(self) -> dict[str, Decimal]:
        """The rate of each btw-soort valid today (``/btwtarieven`` holds the history)."""
        today = self._now()
        current: dict[str, tuple[dt.datetime, Decimal]] = {}
        for row in self.http.get("/btwtarieven") or []:
            soort, start, end = (
                row.get("btwSoort"),
                _parse_dt(row.get("datumVanaf")),
                _parse_dt(row.get("datumTotEnMet")),
            )
            if not soort or row.get("btwPercentage") is None:
                continue
            if (start and start > today) or (end and end < today):
                continue
            since = start or dt.datetime.min.replace(tzinfo=dt.UTC)
            if soort not in current or since > current[soort][0]:
                current[soort] = (since, _dec(row["btwPercentage"]))
        return {soort: pct for soort, (_, pct) in current.items()}

    def prijsafspraken(self, relatie_id: str, artikel_id: str) -> list[PrijsAfspraak]:
        rows = self.http.get_all(
            "/prijsafspraken",
            {"$filter": f"Artikel/Id eq guid'{artikel_id}' and Relatie/Id eq guid'{relatie_id}'"},
            # PrijsafspraakModel has no id to overlap pages on, and two agreements of one customer on one
            # article may agree in every other field but the price. The filter leaves that customer's tiers
            # on that article, far fewer than a page of 500: one request, which nothing can change midway.
            contiguous=False,
        )
        out = []
        for row in rows:
            fixed = row.get("verkoopprijs")
            out.append(
                PrijsAfspraak(
                    relatie_id=_ref(row.get("relatie")) or relatie_id,
                    artikel_id=_ref(row.get("artikel")) or artikel_id,
                    vanaf_aantal=_dec(row.get("aantal") or 1),
                    prijs=_dec(fixed) if fixed is not None else None,
                    kortings_percentage=_dec(row["korting"])
                    if fixed is None and row.get("korting") is not None
                    else None,
                )
            )
        return out

    def stock_artikelen(self) -> list[Artikel]:
        # vrijeVoorraad moves without ModifiedOn changing, so stock is read in full every time. The filter keeps
        # that to the stock articles (pages of 25 count against the hourly limit).
        artikelen = self._web_stock_artikelen((STOCK_FILTER, None), "stock")
        return [a for a in artikelen if a.voorraad_controle and not a.is_non_actief]

    def recipe_artikelen(self) -> list[Artikel]:
        # Read afresh like the stock, so that a recipe changed in SnelStart counts at once. isHoofdartikel is a
        # read-only property that SnelStart may not filter on; then the articles without stock control are read.
        # Recipes need not be read to the second: when it comes to reading every article, the list the stock read
        # of this run just took serves (a second full read would double the calls, 25 articles each).
        artikelen = self._web_stock_artikelen(
            (RECIPE_FILTER, NON_STOCK_FILTER, None), "recipe", reuse=RECIPE_REUSE
        )
        return [a for a in artikelen if a.recept and not a.voorraad_controle and not a.is_non_actief]

    def _web_stock_artikelen(
        self, filters: tuple[str | None, ...], what: str, reuse: dt.timedelta | None = None
    ) -> list[Artikel]:
        """The articles of the first of ``filters`` that SnelStart accepts (None: every article, or the full list
        read within ``reuse``), read so that no row is skipped when the list moves during the read; the caller
        selects. The portal spells properties differently from the model, hence the fall-backs."""
        read_at = self._now()
        for odata_filter in filters:
            if odata_filter is None:
                if reuse is not None and self._every_artikel and read_at - self._every_artikel[0] <= reuse:
                    return self._every_artikel[1]
                artikelen = [
                    self._artikel_from_api(r) for r in self.http.get_all("/artikelen", contiguous=True)
                ]
                self.mirror.apply_refresh("artikel", artikelen, full=True, read_at=read_at)
                self._every_artikel = (read_at, artikelen)
                return artikelen
            try:
                rows = self.http.get_all("/artikelen", {"$filter": odata_filter}, contiguous=True)
            except h.NotFound:
                raise
            except SnelStartRefusal as exc:
                log.info(
                    "SnelStart refused the %s filter %r (%s); reading more widely", what, odata_filter, exc
                )
                continue
            artikelen = [self._artikel_from_api(r) for r in rows]
            # A subset: stored, but it must not move the ModifiedOn watermark past unseen other articles.
            self.mirror.store("artikel", artikelen)
            return artikelen
        raise ValueError("the last of the filters must be None (every article)")

    # -- verkooporders ---------------------------------------------------------------------------------------
    def sjablonen(self) -> list[Verkoopsjabloon]:
        if self._sjablonen is None:
            self._sjablonen = [
                Verkoopsjabloon(
                    id=s["id"],
                    omschrijving=s.get("omschrijving") or "",
                    prijs_incl_btw=not s.get("prijsIngaveExclusiefBtw", False),
                    nonactief=bool(s.get("nonactief")),
                )
                for s in self.http.get("/verkoopordersjablonen") or []
            ]
        return list(self._sjablonen)

    def last_order_sjabloon(self, relatie_id: str) -> str | None:
        rows = self.http.get_all("/verkooporders", {"$filter": f"Relatie/Id eq guid'{relatie_id}'"})
        rows = [r for r in rows if _ref(r.get("verkoopordersjabloon"))]
        if not rows:
            return None
        latest = max(rows, key=lambda r: (str(r.get("datum") or ""), int(r.get("nummer") or 0)))
        return _ref(latest.get("verkoopordersjabloon"))

    def verkooporders_by_betalingskenmerk(self, betalingskenmerk: str) -> list[Verkooporder]:
        rows = self.http.get_all(
            "/verkooporders", {"$filter": f"Betalingskenmerk eq {odata_string(betalingskenmerk)}"}
        )
        orders = [self._order_from_api(r) for r in rows if r.get("betalingskenmerk") == betalingskenmerk]
        self._known_orders[betalingskenmerk] = {o.id for o in orders}
        return orders

    def open_web_orders(self) -> list[Verkooporder]:
        # Orders leave this list whenever the shop processes one, also while it is being read.
        rows = self.http.get_all("/verkooporders", {"$filter": "ProcesStatus eq 'Order'"}, contiguous=True)
        return [self._order_from_api(r) for r in rows if r.get("betalingskenmerk")]

    def _order_body(self, order: NieuweVerkooporder) -> dict[str, Any]:
        if order.kostensoort_1 is not None or order.kostensoort_2 is not None:
            raise SnelStartRefusal(
                "the SnelStart B2B API has no footer cost types (kostensoort 1/2); "
                "book shipping and payment costs as an order line on a cost article instead"
            )
        body: dict[str, Any] = {
            "relatie": {"id": order.relatie_id},
            "datum": f"{order.datum.isoformat()}T00:00:00Z",
            "procesStatus": order.proces_status,
            "verkooporderBtwIngaveModel": "Inclusief" if order.prijs_incl_btw else "Exclusief",
            "regels": [],
        }
        if order.sjabloon_id:
            body["verkoopordersjabloon"] = {"id": order.sjabloon_id}
        if order.omschrijving:
            body["omschrijving"] = order.omschrijving
        if order.betalingskenmerk:
            body["betalingskenmerk"] = order.betalingskenmerk
        if order.krediettermijn is not None:
            body["krediettermijn"] = order.krediettermijn
        if order.memo:
            body["memo"] = order.memo
        if ref := self._clip(order.orderreferentie, "orderreferentie", "order reference"):
            body["orderreferentie"] = ref
        for key, adres in (("factuuradres", order.factuuradres), ("afleveradres", order.afleveradres)):
            if adres is not None and (value := self._adres_to_api(adres, key)):
                body[key] = value
        for number, regel in enumerate(order.regels, 1):
            line: dict[str, Any] = {}
            if regel.artikel_id:
                line["artikel"] = {"id": regel.artikel_id}
            text = self._clip(regel.omschrijving, "regel_omschrijving", f"description of line {number}")
            if text:
                line["omschrijving"] = text
            line["aantal"] = regel.aantal
            line["stuksprijs"] = regel.stuksprijs
            if regel.kortings_percentage:
                line["kortingsPercentage"] = regel.kortings_percentage
            body["regels"].append(line)
        return body

    def create_verkooporder(self, order: NieuweVerkooporder) -> Verkooporder:
        body = self._order_body(order)
        known = self._known_orders.get(order.betalingskenmerk or "")
        for attempt in range(self.http.retry.attempts):
            try:
                return self._order_from_api(self.http.post("/verkooporders", body))
            except h.OutcomeUnknown:
                if not order.betalingskenmerk:
                    raise
                self._sleep(self.http.retry.delay(attempt))
                if known is None:
                    # Without a list from before the POST, an order of this customer on this date with these
                    # lines and this kenmerk is taken as the one just sent.
                    known = set()
                found = [
                    o
                    for o in self.verkooporders_by_betalingskenmerk(order.betalingskenmerk)
                    if o.id not in known
                    and o.relatie_id == order.relatie_id
                    and o.datum == order.datum
                    and len(o.regels) == len(order.regels)
                ]
                if found:
                    log.info("SnelStart had stored verkooporder %s despite the lost answer", found[0].nummer)
                    return found[0]
        raise SnelStartUnavailable(
            f"SnelStart did not confirm verkooporder {order.betalingskenmerk}; it was not found either, try again later"
        )
