"""The ``local`` SnelStart backend: an embedded administration in one SQLite file.

It is meant to refuse what SnelStart refuses, so the engine and the tests meet production's errors: field
lengths and formats of the B2B API (REL-/ART-/VOR- codes in the messages), unique relatiecode and artikelcode,
order numbers assigned here, VAT computed from the article's omzetgroep and the order's country and relatie
(``client.snelstart.vat``), and free stock per the administration's ``verkooporderVoorraadVanafNiveau``.

Every write is one ``BEGIN IMMEDIATE`` transaction in WAL mode, so several processes may open the file and a
crash leaves either the whole write or nothing. Ids handed out are row ids as strings.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

from client.rules import normalize
from client.snelstart.base import (
    PROCES_STATUSES,
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
from client.snelstart.vat import OrderVat, order_country, order_vat

SCHEMA_VERSION = "1"
CENT = Decimal("0.01")

# Ordering of verkooporderVoorraadVanafNiveau, using the numeric values SnelStart's own .NET client gives the
# enum (10…60). A verkooporder lowers free stock when the level of its procesStatus is at or above the
# administration's setting. "Order" (the concept order "zonder afdruk") has no level: the manual (5.2) says
# SnelStart treats it as parked input that never lowers stock, which is why koppel subtracts open web orders
# itself. There is no procesStatus for a backorder, so "BackOrder" behaves as "from Bevestiging on".
# Technische voorraad is whatever the administration set (set_technische_voorraad); orders never book it down
# here, so an invoiced order keeps lowering free stock through its level instead.
NIVEAU_LEVEL = {
    "Alle": 10,
    "Offerte": 20,
    "BackOrder": 25,
    "Bevestiging": 30,
    "Werkbon": 40,
    "PakbonEnAfhaalbon": 50,
    "FactuurEnContantbon": 60,
}
STATUS_LEVEL = {
    "Offerte": 20,
    "Bevestiging": 30,
    "Werkbon": 40,
    "Pakbon": 50,
    "Afhaalbon": 50,
    "Contantbon": 60,
    "Factuur": 60,
}
# The B2B API does not let a new order start as an invoice; invoicing stays a user action in SnelStart.
CREATE_STATUSES = tuple(s for s in PROCES_STATUSES if s not in ("Factuur", "Contantbon"))

# e-mail field name (as used by relaties_by_email_fields) → column of the relaties table
EMAIL_COLUMNS = {
    "email": "email",
    "factuur": "factuur_email",
    "factuur_cc": "factuur_cc",
    "offerte": "offerte_email",
    "offerte_cc": "offerte_cc",
    "bevestiging": "bevestiging_email",
    "bevestiging_cc": "bevestiging_cc",
    "aanmaning": "aanmaning_email",
    "aanmaning_cc": "aanmaning_cc",
}
_EMAIL_RE = re.compile(r"^[^@\s;,]+@[^@\s;,]+\.[^@\s;,]+$")
# Length of an extra field's text value; SnelStart's limit is per field definition, we assume one for all.
EXTRA_VELD_MAX = 250
_CHUNK = 500


def code_key(code: str) -> str:
    """Article codes and extra-field values compare trimmed and case-insensitively (SQL Server's default collation)."""
    return code.strip().upper()


def round_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def line_total(aantal: Decimal, stuksprijs: Decimal, kortings_percentage: Decimal) -> Decimal:
    """SnelStart's line amount: quantity × unit price × (1 − discount %), rounded to cents."""
    return round_cents(aantal * stuksprijs * (1 - kortings_percentage / 100))


def order_totals(
    amounts: Iterable[tuple[Decimal, Decimal]], *, prijs_incl_btw: bool
) -> tuple[Decimal, Decimal]:
    """(totaal excl. VAT, totaal incl. VAT) from (amount, VAT %) pairs given in the order's VAT mode.

    VAT is computed once per rate over the summed amounts, so cent rounding happens per rate, not per line."""
    per_rate: dict[Decimal, Decimal] = {}
    for amount, rate in amounts:
        per_rate[rate] = per_rate.get(rate, Decimal("0")) + amount
    total = sum(per_rate.values(), Decimal("0"))
    if prijs_incl_btw:
        vat = sum((round_cents(g * r / (100 + r)) for r, g in per_rate.items()), Decimal("0"))
        return round_cents(total - vat), round_cents(total)
    vat = sum((round_cents(g * r / 100) for r, g in per_rate.items()), Decimal("0"))
    return round_cents(total), round_cents(total + vat)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _refuse(message: str) -> NoReturn:
    raise SnelStartRefusal(message)


def _dec(value: Any, what: str) -> Decimal:
    if isinstance(value, float):
        raise TypeError(f"{what}: got a float ({value!r}); money and quantities must be Decimal")
    try:
        result = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError, ValueError):
        raise SnelStartRefusal(f"{what}: {value!r} is not a number") from None
    if not result.is_finite():
        raise SnelStartRefusal(f"{what}: {value!r} is not a finite number")
    return result


def _max_len(value: str | None, limit: int, what: str, code: str = "") -> None:
    if value is not None and len(value) > limit:
        suffix = f" ({code})" if code else ""
        _refuse(
            f"{what} is {len(value)} characters long; SnelStart allows at most {limit}{suffix}: {value!r}"
        )


def _blank(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _check_emails(value: str | None, what: str) -> None:
    if value is None:
        return
    _max_len(value, 250, what, "REL-0085")
    for part in value.split(";"):
        if part.strip() and not _EMAIL_RE.match(part.strip()):
            _refuse(f"{what}: {part.strip()!r} is not a valid e-mail address (REL-0061)")


def _split_emails(value: str | None) -> list[str]:
    if not value:
        return []
    keys = (normalize.email_key(part) for part in value.split(";"))
    return [k for k in keys if k]


def _adres_json(adres: Adres | None) -> str | None:
    if adres is None:
        return None
    return json.dumps(
        {k: getattr(adres, k) for k in ("contactpersoon", "straat", "postcode", "plaats", "land")}
    )


def _adres_from_json(text: str | None) -> Adres | None:
    return Adres(**json.loads(text)) if text else None


class LocalBackend:
    """SnelStart administration in one SQLite file (see ``local_init.init_local`` to create one)."""

    name = "local"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SnelStartUnavailable(
                f"local SnelStart administration {self.path} does not exist; create it with "
                f"`koppel snelstart init --local {self.path} --sample` (--sample adds demo data)"
            )
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=30000")
            version = self._conn.execute("SELECT value FROM settings WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise SnelStartUnavailable(f"{self.path} is not a local SnelStart administration: {exc}") from exc
        if version is None or version[0] != SCHEMA_VERSION:
            raise SnelStartUnavailable(f"{self.path}: unsupported administration schema version {version}")
        # One connection shared by the threads of this process; SQLite itself serialises other processes.
        self._lock = threading.RLock()
        self._batching = 0

    # -- plumbing -------------------------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._batching:
                # Inside batch(): a savepoint, so a refused write is undone without ending the batch.
                self._conn.execute("SAVEPOINT one_write")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK TO one_write")
                    self._conn.execute("RELEASE one_write")
                    raise
                self._conn.execute("RELEASE one_write")
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise SnelStartUnavailable(f"local administration {self.path} is busy: {exc}") from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._conn.execute("ROLLBACK")
                raise SnelStartUnavailable(f"could not commit to {self.path}: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so multi-query reads (stock) see one consistent snapshot."""
        with self._lock:
            if self._conn.in_transaction:  # within batch(): read what the batch wrote so far
                yield self._conn
                return
            try:
                self._conn.execute("BEGIN")
                yield self._conn
            except sqlite3.OperationalError as exc:
                raise SnelStartUnavailable(f"could not read {self.path}: {exc}") from exc
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")

    @contextmanager
    def batch(self) -> Iterator[LocalBackend]:
        """Run many writes as one transaction (loading sample or benchmark data); all or nothing."""
        with self._write():
            self._batching += 1
            try:
                yield self
            finally:
                self._batching -= 1

    def _setting(self, conn: sqlite3.Connection, key: str) -> str | None:
        row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_setting(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @staticmethod
    def _maybe_id(value: str | int | None) -> int | None:
        try:
            return int(str(value))
        except ValueError:
            return None

    @staticmethod
    def _id(value: str | int | None, what: str) -> int:
        try:
            return int(str(value))
        except ValueError:
            raise SnelStartRefusal(f"{what}: {value!r} is not an id of this administration") from None

    # -- administration -------------------------------------------------------------------------------------
    def administration_name(self) -> str:
        with self._read() as conn:
            return self._setting(conn, "administratie_naam") or self.path.stem

    def voorraad_vanaf_niveau(self) -> str:
        with self._read() as conn:
            return self._setting(conn, "voorraad_vanaf_niveau") or "PakbonEnAfhaalbon"

    def set_voorraad_vanaf_niveau(self, niveau: str) -> None:
        if niveau not in VOORRAAD_NIVEAUS:
            _refuse(f"verkooporderVoorraadVanafNiveau {niveau!r} is not one of {', '.join(VOORRAAD_NIVEAUS)}")
        with self._write() as conn:
            self._set_setting(conn, "voorraad_vanaf_niveau", niveau)

    def refresh(self) -> None:
        """Nothing to refresh: every read goes to the file."""

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def landen(self) -> list[tuple[str, str]]:
        """(ISO code, name) of every country the administration knows."""
        with self._read() as conn:
            return [(r[0], r[1]) for r in conn.execute("SELECT code, naam FROM landen ORDER BY code")]

    def define_extra_veld(self, soort: str, naam: str) -> None:
        """Define an extra field for "relatie" or "artikel" (done in SnelStart's settings, not by the API)."""
        if soort not in ("relatie", "artikel"):
            _refuse(f"extra field kind {soort!r} must be 'relatie' or 'artikel'")
        if not naam or not naam.strip():
            _refuse("an extra field needs a name")
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO extra_veld_definities (soort, naam) VALUES (?, ?)",
                (soort, naam.strip()),
            )

    def extra_veld_namen(self, soort: str) -> list[str]:
        """The names of the extra fields defined for "relatie" or "artikel" in this administration."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT naam FROM extra_veld_definities WHERE soort = ? ORDER BY naam", (soort,)
            ).fetchall()
        return [r[0] for r in rows]

    # -- validation shared by relaties and orders -----------------------------------------------------------
    def _check_land(self, conn: sqlite3.Connection, land: str | None, what: str, code: str) -> str:
        """The ISO code to store; SnelStart takes Nederland when no country is given."""
        value = (land or "NL").strip().upper()
        if conn.execute("SELECT 1 FROM landen WHERE code = ?", (value,)).fetchone() is None:
            _refuse(f"{what}: country {land!r} is not a known country code of this administration ({code})")
        return value

    def _check_adres(
        self, conn: sqlite3.Connection, adres: Adres, what: str, codes: tuple[str, str], complete: bool
    ) -> Adres:
        """Field lengths of an AdresModel; ``complete``: REL-0060, street, postcode and city all or none."""
        length_code, land_code = codes
        _max_len(adres.contactpersoon, 50, f"{what} contactpersoon", length_code)
        _max_len(adres.straat, 50, f"{what} straat", length_code)
        _max_len(adres.postcode, 25, f"{what} postcode", length_code)
        _max_len(adres.plaats, 50, f"{what} plaats", length_code)
        land = self._check_land(conn, adres.land, what, land_code)
        parts = {"straat": adres.straat, "postcode": adres.postcode, "plaats": adres.plaats}
        filled = [k for k, v in parts.items() if _blank(v)]
        if complete and filled and len(filled) < len(parts):
            missing = ", ".join(k for k in parts if k not in filled)
            _refuse(
                f"{what}: {missing} missing; SnelStart requires straat, postcode and plaats together (REL-0060)"
            )
        return Adres(adres.contactpersoon, adres.straat, adres.postcode, adres.plaats, land)

    # -- relaties -------------------------------------------------------------------------------------------
    def _relatie_columns(self, conn: sqlite3.Connection, r: Relatie | NieuweRelatie) -> dict[str, Any]:
        """Validate a relatie the way SnelStart does and return the column values to store."""
        naam = _blank(r.naam)
        if naam is None:
            _refuse("relatie naam is required (REL-0007)")
        _max_len(r.naam, 50, "relatie naam")
        vest = self._check_adres(
            conn, r.vestigingsadres or Adres(), "vestigingsadres", ("REL-0020", "REL-0056"), True
        )
        corr = r.correspondentieadres
        if corr is not None:
            corr = self._check_adres(conn, corr, "correspondentieadres", ("REL-0024", "REL-0055"), True)
        _max_len(r.telefoon, 25, "telefoon", "REL-0012")
        mobiel = getattr(r, "mobiele_telefoon", None)
        _max_len(mobiel, 25, "mobiele telefoon", "REL-0013")
        _max_len(r.kvk_nummer, 12, "kvkNummer")
        if r.krediettermijn is not None and not -365 <= r.krediettermijn <= 1000:
            _refuse(f"krediettermijn {r.krediettermijn} must lie between -365 and 1000 days (REL-0003)")
        btw = _blank(r.btw_nummer)
        if btw is not None:
            self._check_btw(btw, vest.land or "NL")
        soorten = tuple(getattr(r, "relatiesoort", ("Klant",)))
        if not soorten or any(s not in ("Klant", "Leverancier") for s in soorten):
            _refuse(f"relatiesoort {soorten!r} must be Klant and/or Leverancier (REL-0001)")
        if set(soorten) == {"Klant", "Leverancier"}:
            _refuse("a relatie cannot be both Klant and Leverancier (REL-0065)")
        emails = {
            "email": r.email,
            "factuur_email": r.factuur_email.email,
            "factuur_cc": r.factuur_email.cc,
        }
        for name in ("offerte", "bevestiging", "aanmaning"):
            setting: EmailVersturen = getattr(r, f"{name}_email", EmailVersturen())
            emails[f"{name}_email"] = setting.email
            emails[f"{name}_cc"] = setting.cc
        for column, value in emails.items():
            _check_emails(value, column.replace("_", " "))
        self._check_extra_velden(conn, "relatie", r.extra_velden)
        return {
            "naam": r.naam,
            "relatiesoort": ",".join(soorten),
            "v_contactpersoon": vest.contactpersoon,
            "v_straat": vest.straat,
            "v_postcode": vest.postcode,
            "v_plaats": vest.plaats,
            "v_land": vest.land,
            "c_afwijkend": int(corr is not None),
            "c_contactpersoon": corr.contactpersoon if corr else None,
            "c_straat": corr.straat if corr else None,
            "c_postcode": corr.postcode if corr else None,
            "c_plaats": corr.plaats if corr else None,
            "c_land": corr.land if corr else None,
            "telefoon": r.telefoon,
            "mobiele_telefoon": mobiel,
            **emails,
            "btw_nummer": btw,
            "kvk_nummer": r.kvk_nummer,
            "krediettermijn": r.krediettermijn,
            "nonactief": int(bool(getattr(r, "nonactief", False))),
            "modified_on": _now(),
            "name_key": normalize.name_key(r.naam),
            "postcode_key": normalize.postcode_key(vest.postcode),
            "vat_key": normalize.vat_key(btw, vest.land),
            "kvk_key": normalize.kvk_key(r.kvk_nummer),
        }

    def _check_btw(self, btw: str, land: str) -> None:
        _max_len(btw, 50, "btwNummer", "REL-0057")
        if len(btw) < 2:
            _refuse(f"btwNummer {btw!r} is shorter than 2 characters (REL-0058)")
        if not btw.isascii() or not btw.isalnum():
            _refuse(f"btwNummer {btw!r} may hold only letters and digits, no spaces or dots (REL-0059)")
        prefix = normalize.vat_prefix(land)
        if btw[:2].upper() != prefix:
            _refuse(
                f"btwNummer {btw!r} must start with the country code {prefix} of the vestigingsadres ({land}) (REL-0087)"
            )
        if prefix == "NL" and not re.fullmatch(r"NL\d{9}B\d{2}", btw.upper()):
            _refuse(f"btwNummer {btw!r} is not a valid Dutch VAT number NLnnnnnnnnnBnn (REL-0088)")
        if len(btw) < 4:
            _refuse(f"btwNummer {btw!r} has no number after the country code (REL-0088)")

    def _check_extra_velden(self, conn: sqlite3.Connection, soort: str, velden: dict[str, str]) -> None:
        for naam, waarde in velden.items():
            known = conn.execute(
                "SELECT 1 FROM extra_veld_definities WHERE soort = ? AND naam = ?", (soort, naam)
            ).fetchone()
            if known is None:
                _refuse(f"extra field {naam!r} is not defined for {soort} in this administration")
            if waarde is not None:
                _max_len(str(waarde), EXTRA_VELD_MAX, f"extra field {naam!r}")

    def _store_relatie_keys(
        self, conn: sqlite3.Connection, relatie_id: int, cols: dict[str, Any], extra: dict
    ) -> None:
        conn.execute("DELETE FROM relatie_emails WHERE relatie_id = ?", (relatie_id,))
        rows = [
            (relatie_id, veld, key)
            for veld, column in EMAIL_COLUMNS.items()
            for key in dict.fromkeys(_split_emails(cols[column]))
        ]
        conn.executemany("INSERT INTO relatie_emails (relatie_id, veld, email_key) VALUES (?, ?, ?)", rows)
        conn.execute("DELETE FROM relatie_extra_velden WHERE relatie_id = ?", (relatie_id,))
        conn.executemany(
            "INSERT INTO relatie_extra_velden (relatie_id, naam, waarde, waarde_key) VALUES (?, ?, ?, ?)",
            [(relatie_id, n, str(w), code_key(str(w))) for n, w in extra.items() if w is not None],
        )

    def create_relatie(self, relatie: NieuweRelatie) -> Relatie:
        with self._write() as conn:
            cols = self._relatie_columns(conn, relatie)
            code = relatie.relatiecode
            if code is None:
                code = conn.execute("SELECT COALESCE(MAX(relatiecode), 0) + 1 FROM relaties").fetchone()[0]
            elif code <= 0:
                _refuse(f"relatiecode {code} must be a positive number")
            elif conn.execute("SELECT 1 FROM relaties WHERE relatiecode = ?", (code,)).fetchone():
                _refuse(f"relatiecode {code} is already in use (REL-0008)")
            cols["relatiecode"] = code
            names = ", ".join(cols)
            cur = conn.execute(
                f"INSERT INTO relaties ({names}) VALUES ({', '.join('?' * len(cols))})", tuple(cols.values())
            )
            relatie_id = cur.lastrowid
            self._store_relatie_keys(conn, relatie_id, cols, relatie.extra_velden)
            return self._relaties_by_ids(conn, [relatie_id])[0]

    def update_relatie(self, relatie: Relatie) -> Relatie:
        relatie_id = self._id(relatie.id, "relatie id")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM relaties WHERE id = ?", (relatie_id,)).fetchone() is None:
                _refuse(f"relatie {relatie.id} does not exist")
            cols = self._relatie_columns(conn, relatie)
            if relatie.relatiecode <= 0:
                _refuse(f"relatiecode {relatie.relatiecode} must be a positive number")
            clash = conn.execute(
                "SELECT 1 FROM relaties WHERE relatiecode = ? AND id <> ?", (relatie.relatiecode, relatie_id)
            ).fetchone()
            if clash:
                _refuse(f"relatiecode {relatie.relatiecode} is already in use (REL-0008)")
            cols["relatiecode"] = relatie.relatiecode
            assignments = ", ".join(f"{c} = ?" for c in cols)
            conn.execute(f"UPDATE relaties SET {assignments} WHERE id = ?", (*cols.values(), relatie_id))
            self._store_relatie_keys(conn, relatie_id, cols, relatie.extra_velden)
            return self._relaties_by_ids(conn, [relatie_id])[0]

    def _relaties_by_ids(self, conn: sqlite3.Connection, ids: Sequence[int]) -> list[Relatie]:
        result: list[Relatie] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            marks = ",".join("?" * len(chunk))
            extra: dict[int, dict[str, str]] = {}
            for row in conn.execute(
                f"SELECT relatie_id, naam, waarde FROM relatie_extra_velden WHERE relatie_id IN ({marks})",
                chunk,
            ):
                extra.setdefault(row[0], {})[row[1]] = row[2]
            rows = conn.execute(f"SELECT * FROM relaties WHERE id IN ({marks}) ORDER BY relatiecode", chunk)
            result.extend(self._relatie_from_row(row, extra.get(row["id"], {})) for row in rows)
        return result

    @staticmethod
    def _relatie_from_row(row: sqlite3.Row, extra: dict[str, str]) -> Relatie:
        corr = None
        if row["c_afwijkend"]:
            corr = Adres(
                row["c_contactpersoon"], row["c_straat"], row["c_postcode"], row["c_plaats"], row["c_land"]
            )
        return Relatie(
            id=str(row["id"]),
            relatiecode=row["relatiecode"],
            naam=row["naam"],
            vestigingsadres=Adres(
                row["v_contactpersoon"], row["v_straat"], row["v_postcode"], row["v_plaats"], row["v_land"]
            ),
            correspondentieadres=corr,
            telefoon=row["telefoon"],
            mobiele_telefoon=row["mobiele_telefoon"],
            email=row["email"],
            factuur_email=EmailVersturen(row["factuur_email"], row["factuur_cc"]),
            offerte_email=EmailVersturen(row["offerte_email"], row["offerte_cc"]),
            bevestiging_email=EmailVersturen(row["bevestiging_email"], row["bevestiging_cc"]),
            aanmaning_email=EmailVersturen(row["aanmaning_email"], row["aanmaning_cc"]),
            btw_nummer=row["btw_nummer"],
            kvk_nummer=row["kvk_nummer"],
            krediettermijn=row["krediettermijn"],
            relatiesoort=tuple(row["relatiesoort"].split(",")),
            extra_velden=extra,
            nonactief=bool(row["nonactief"]),
            modified_on=dt.datetime.fromisoformat(row["modified_on"]),
        )

    def _find_relaties(self, sql: str, params: Sequence[Any]) -> list[Relatie]:
        """Run a query yielding relatie ids and load them; matching lookups skip nonactief ("deleted") ones."""
        with self._read() as conn:
            ids = [r[0] for r in conn.execute(sql, params)]
            return self._relaties_by_ids(conn, list(dict.fromkeys(ids)))

    def get_relatie(self, relatie_id: str) -> Relatie | None:
        own = self._maybe_id(relatie_id)
        if own is None:
            return None
        with self._read() as conn:
            found = self._relaties_by_ids(conn, [own])
        return found[0] if found else None

    def relaties_by_code(self, relatiecode: int) -> list[Relatie]:
        """Every relatie with this code, nonactief included (the code stays taken); check ``nonactief``."""
        return self._find_relaties("SELECT id FROM relaties WHERE relatiecode = ?", (int(relatiecode),))

    def relaties_by_email(self, email_key: str, *, all_fields: bool) -> list[Relatie]:
        return self.relaties_by_email_fields(email_key, tuple(EMAIL_COLUMNS) if all_fields else ("email",))

    def relaties_by_email_fields(self, email_key: str, fields: tuple[str, ...]) -> list[Relatie]:
        unknown = [f for f in fields if f not in EMAIL_COLUMNS]
        if unknown:
            raise ValueError(f"unknown e-mail field(s) {unknown}; known: {', '.join(EMAIL_COLUMNS)}")
        key = normalize.email_key(email_key)
        if not key or not fields:
            return []
        return self._find_relaties(
            "SELECT e.relatie_id FROM relatie_emails e JOIN relaties r ON r.id = e.relatie_id "
            f"WHERE e.email_key = ? AND e.veld IN ({','.join('?' * len(fields))}) AND r.nonactief = 0",
            (key, *fields),
        )

    def relaties_by_vat(self, vat_key: str) -> list[Relatie]:
        key = normalize.vat_key(vat_key)
        if not key:
            return []
        return self._find_relaties("SELECT id FROM relaties WHERE vat_key = ? AND nonactief = 0", (key,))

    def relaties_by_kvk(self, kvk_key: str) -> list[Relatie]:
        key = normalize.kvk_key(kvk_key)
        if not key:
            return []
        return self._find_relaties("SELECT id FROM relaties WHERE kvk_key = ? AND nonactief = 0", (key,))

    def relaties_by_name(self, name_key: str, land: str | None, postcode_key: str | None) -> list[Relatie]:
        """Same name key; ``land`` / ``postcode_key`` narrow the search when given (vestigingsadres)."""
        key = normalize.name_key(name_key)
        if not key:
            return []
        sql = "SELECT id FROM relaties WHERE name_key = ? AND nonactief = 0"
        params: list[Any] = [key]
        if land:
            sql += " AND v_land = ?"
            params.append(land.strip().upper())
        if postcode_key:
            sql += " AND postcode_key = ?"
            params.append(normalize.postcode_key(postcode_key))
        return self._find_relaties(sql, params)

    def relaties_by_extra_veld(self, veld: str, waarde: str) -> list[Relatie]:
        if not waarde or not waarde.strip():
            return []
        return self._find_relaties(
            "SELECT x.relatie_id FROM relatie_extra_velden x JOIN relaties r ON r.id = x.relatie_id "
            "WHERE x.naam = ? AND x.waarde_key = ? AND r.nonactief = 0",
            (veld, code_key(waarde)),
        )

    # -- omzetgroepen, sjablonen, prijsafspraken ------------------------------------------------------------
    def omzetgroepen(self) -> list[Omzetgroep]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT o.id, o.nummer, o.omschrijving, o.btw_soort, t.percentage FROM omzetgroepen o "
                "JOIN btwtarieven t ON t.btw_soort = o.btw_soort ORDER BY o.nummer"
            ).fetchall()
        return [Omzetgroep(str(r[0]), r[1], r[2], r[3], Decimal(r[4])) for r in rows]

    def add_omzetgroep(self, nummer: int, omschrijving: str, btw_soort: str) -> Omzetgroep:
        """Administration set-up (SnelStart's UI; the API cannot create omzetgroepen)."""
        if btw_soort not in ("Geen", "Laag", "Hoog", "Overig"):
            _refuse(f"btw_soort {btw_soort!r} must be Geen, Laag, Hoog or Overig")
        if not omschrijving or not omschrijving.strip():
            _refuse("an omzetgroep needs an omschrijving")
        _max_len(omschrijving, 50, "omzetgroep omschrijving")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM omzetgroepen WHERE nummer = ?", (nummer,)).fetchone():
                _refuse(f"omzetgroep nummer {nummer} already exists")
            cur = conn.execute(
                "INSERT INTO omzetgroepen (nummer, omschrijving, btw_soort) VALUES (?, ?, ?)",
                (nummer, omschrijving, btw_soort),
            )
            new_id = str(cur.lastrowid)
        return next(o for o in self.omzetgroepen() if o.id == new_id)

    def sjablonen(self) -> list[Verkoopsjabloon]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM sjablonen ORDER BY id").fetchall()
        return [self._sjabloon_from_row(r) for r in rows]

    @staticmethod
    def _sjabloon_from_row(r: sqlite3.Row) -> Verkoopsjabloon:
        return Verkoopsjabloon(
            str(r["id"]), r["omschrijving"], bool(r["prijs_incl_btw"]), r["kostensoort_1"], r["kostensoort_2"],
            bool(r["nonactief"]),
        )  # fmt: skip

    def add_sjabloon(
        self,
        omschrijving: str,
        *,
        prijs_incl_btw: bool,
        kostensoort_1: str | None = None,
        kostensoort_2: str | None = None,
    ) -> Verkoopsjabloon:
        """Administration set-up: a verkoopsjabloon with its VAT mode and footer cost types."""
        if not omschrijving or not omschrijving.strip():
            _refuse("a verkoopsjabloon needs an omschrijving")
        _max_len(omschrijving, 50, "sjabloon omschrijving")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM sjablonen WHERE omschrijving = ?", (omschrijving,)).fetchone():
                _refuse(f"verkoopsjabloon {omschrijving!r} already exists")
            cur = conn.execute(
                "INSERT INTO sjablonen (omschrijving, prijs_incl_btw, kostensoort_1, kostensoort_2) "
                "VALUES (?, ?, ?, ?)",
                (omschrijving, int(prijs_incl_btw), kostensoort_1, kostensoort_2),
            )
            return self._sjabloon_from_row(
                conn.execute("SELECT * FROM sjablonen WHERE id = ?", (cur.lastrowid,)).fetchone()
            )

    def prijsafspraken(self, relatie_id: str, artikel_id: str) -> list[PrijsAfspraak]:
        """The relatie's agreements on the article, lowest ``vanaf_aantal`` first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM prijsafspraken WHERE relatie_id = ? AND artikel_id = ?",
                (self._id(relatie_id, "relatie id"), self._id(artikel_id, "artikel id")),
            ).fetchall()
        result = [
            PrijsAfspraak(
                relatie_id=str(r["relatie_id"]),
                artikel_id=str(r["artikel_id"]),
                vanaf_aantal=Decimal(r["vanaf_aantal"]),
                prijs=Decimal(r["prijs"]) if r["prijs"] is not None else None,
                kortings_percentage=(
                    Decimal(r["kortings_percentage"]) if r["kortings_percentage"] is not None else None
                ),
            )
            for r in rows
        ]
        return sorted(result, key=lambda p: p.vanaf_aantal)

    def add_prijsafspraak(self, afspraak: PrijsAfspraak) -> None:
        """Administration set-up: a fixed price or a discount % for a relatie on an article from a quantity."""
        if (afspraak.prijs is None) == (afspraak.kortings_percentage is None):
            _refuse("a prijsafspraak has either a fixed prijs or a kortings_percentage, not both or neither")
        vanaf = _dec(afspraak.vanaf_aantal, "prijsafspraak vanaf_aantal")
        if vanaf <= 0:
            _refuse(f"prijsafspraak vanaf_aantal {vanaf} must be positive")
        prijs = None if afspraak.prijs is None else _dec(afspraak.prijs, "prijsafspraak prijs")
        korting = None
        if afspraak.kortings_percentage is not None:
            korting = _dec(afspraak.kortings_percentage, "prijsafspraak kortings_percentage")
            if not 0 <= korting <= 100:
                _refuse(f"prijsafspraak kortings_percentage {korting} must lie between 0 and 100")
        relatie_id = self._id(afspraak.relatie_id, "relatie id")
        artikel_id = self._id(afspraak.artikel_id, "artikel id")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM relaties WHERE id = ?", (relatie_id,)).fetchone() is None:
                _refuse(f"prijsafspraak: relatie {afspraak.relatie_id} does not exist")
            if conn.execute("SELECT 1 FROM artikelen WHERE id = ?", (artikel_id,)).fetchone() is None:
                _refuse(f"prijsafspraak: artikel {afspraak.artikel_id} does not exist")
            conn.execute(
                "INSERT INTO prijsafspraken (relatie_id, artikel_id, vanaf_aantal, prijs, kortings_percentage) "
                "VALUES (?, ?, ?, ?, ?)",
                (relatie_id, artikel_id, str(vanaf), None if prijs is None else str(prijs),
                 None if korting is None else str(korting)),
            )  # fmt: skip

    # -- artikelen ------------------------------------------------------------------------------------------
    def _check_artikel(
        self,
        conn: sqlite3.Connection,
        artikelcode: str,
        omschrijving: str,
        omzetgroep_id: str | None,
        own_id: int | None,
    ) -> tuple[str, int]:
        """Validate code, description and omzetgroep; returns (trimmed code, omzetgroep row id)."""
        code = (artikelcode or "").strip()
        if not code:
            _refuse("artikelcode is required (ART-0002)")
        max_len = int(self._setting(conn, "artikelcode_max_lengte") or 30)
        _max_len(code, max_len, "artikelcode", "ART-0004")
        if self._setting(conn, "artikelcode_soort") == "Numeriek" and not code.isdigit():
            _refuse(f"artikelcode {code!r} must be a number in this administration (ART-0003)")
        clash = conn.execute(
            "SELECT id, artikelcode FROM artikelen WHERE code_key = ?", (code_key(code),)
        ).fetchone()
        if clash is not None and clash[0] != own_id:
            _refuse(f"artikelcode {code!r} already exists (as {clash[1]!r}) (ART-0005)")
        if not omschrijving or not omschrijving.strip():
            _refuse(f"artikel {code}: omschrijving is required (ART-0006)")
        _max_len(omschrijving, 250, f"artikel {code} omschrijving", "ART-0007")
        if omzetgroep_id is None or str(omzetgroep_id).strip() == "":
            _refuse(f"artikel {code}: an omzetgroep is required (ART-0008)")
        group = conn.execute(
            "SELECT id FROM omzetgroepen WHERE id = ?", (self._id(omzetgroep_id, "omzetgroep id"),)
        )
        row = group.fetchone()
        if row is None:
            _refuse(f"artikel {code}: omzetgroep {omzetgroep_id!r} does not exist (ART-0009)")
        return code, row[0]

    def create_artikel(self, artikel: NieuwArtikel) -> Artikel:
        prijs = _dec(artikel.verkoopprijs, "verkoopprijs")
        with self._write() as conn:
            code, group = self._check_artikel(
                conn, artikel.artikelcode, artikel.omschrijving, artikel.omzetgroep_id, None
            )
            self._check_extra_velden(conn, "artikel", artikel.extra_velden)
            cur = conn.execute(
                "INSERT INTO artikelen (artikelcode, code_key, omschrijving, omzetgroep_id, verkoopprijs, "
                "voorraad_controle, modified_on) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    code,
                    code_key(code),
                    artikel.omschrijving,
                    group,
                    str(prijs),
                    int(artikel.voorraad_controle),
                    _now(),
                ),
            )
            self._store_artikel_extra(conn, cur.lastrowid, artikel.extra_velden)
            return self._artikelen_where(conn, "a.id = ?", (cur.lastrowid,))[0]

    def update_artikel(self, artikel: Artikel) -> Artikel:
        """Updates code, description, prices, unit, stock control, omzetgroep, extra fields and nonactief.

        Stock and recipe are read-only here as in the B2B API (see set_technische_voorraad / set_recept)."""
        artikel_id = self._id(artikel.id, "artikel id")
        prijs = _dec(artikel.verkoopprijs, "verkoopprijs")
        inkoop = None if artikel.inkoopprijs is None else _dec(artikel.inkoopprijs, "inkoopprijs")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM artikelen WHERE id = ?", (artikel_id,)).fetchone() is None:
                _refuse(f"artikel {artikel.id} does not exist")
            code, group = self._check_artikel(
                conn, artikel.artikelcode, artikel.omschrijving, artikel.omzetgroep_id, artikel_id
            )
            self._check_extra_velden(conn, "artikel", artikel.extra_velden)
            conn.execute(
                "UPDATE artikelen SET artikelcode = ?, code_key = ?, omschrijving = ?, omzetgroep_id = ?, "
                "verkoopprijs = ?, inkoopprijs = ?, eenheid = ?, voorraad_controle = ?, is_non_actief = ?, "
                "modified_on = ? WHERE id = ?",
                (code, code_key(code), artikel.omschrijving, group, str(prijs),
                 None if inkoop is None else str(inkoop), artikel.eenheid, int(artikel.voorraad_controle),
                 int(artikel.is_non_actief), _now(), artikel_id),
            )  # fmt: skip
            self._store_artikel_extra(conn, artikel_id, artikel.extra_velden)
            return self._artikelen_where(conn, "a.id = ?", (artikel_id,))[0]

    @staticmethod
    def _store_artikel_extra(conn: sqlite3.Connection, artikel_id: int, velden: dict[str, str]) -> None:
        conn.execute("DELETE FROM artikel_extra_velden WHERE artikel_id = ?", (artikel_id,))
        conn.executemany(
            "INSERT INTO artikel_extra_velden (artikel_id, naam, waarde, waarde_key) VALUES (?, ?, ?, ?)",
            [(artikel_id, n, str(w), code_key(str(w))) for n, w in velden.items() if w is not None],
        )

    def set_technische_voorraad(self, artikelcode: str, aantal: Decimal | int) -> None:
        """Set the article's technical stock (SnelStart books it from receipts and deliveries; tests and demo set it)."""
        qty = _dec(aantal, "technische voorraad")
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE artikelen SET technische_voorraad = ?, modified_on = ? WHERE code_key = ?",
                (str(qty), _now(), code_key(artikelcode)),
            )
            if cur.rowcount == 0:
                _refuse(f"artikel {artikelcode!r} does not exist")

    def set_recept(
        self, artikel_id: str, regels: Sequence[tuple[str, Decimal]], plaatsing: str | None
    ) -> Artikel:
        """Administration set-up: the article's recipe as (sub-article id, quantity per unit) and its placement."""
        own = self._id(artikel_id, "artikel id")
        if regels and plaatsing not in ("always", "choice"):
            _refuse(f"recept plaatsing {plaatsing!r} must be 'always' or 'choice'")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM artikelen WHERE id = ?", (own,)).fetchone() is None:
                _refuse(f"artikel {artikel_id} does not exist")
            conn.execute("DELETE FROM recept_regels WHERE artikel_id = ?", (own,))
            for volgorde, (sub_id, aantal) in enumerate(regels, start=1):
                sub = self._id(sub_id, "recept artikel id")
                qty = _dec(aantal, "recept aantal")
                if sub == own:
                    _refuse("an article cannot be part of its own recipe")
                if qty <= 0:
                    _refuse(f"recept aantal {qty} must be positive")
                if conn.execute("SELECT 1 FROM artikelen WHERE id = ?", (sub,)).fetchone() is None:
                    _refuse(f"recept: artikel {sub_id} does not exist")
                conn.execute(
                    "INSERT INTO recept_regels (artikel_id, volgorde, sub_artikel_id, aantal) VALUES (?, ?, ?, ?)",
                    (own, volgorde, sub, str(qty)),
                )
            conn.execute(
                "UPDATE artikelen SET recept_plaatsing = ?, modified_on = ? WHERE id = ?",
                (plaatsing if regels else None, _now(), own),
            )
            return self._artikelen_where(conn, "a.id = ?", (own,))[0]

    def _counting_statuses(self, conn: sqlite3.Connection) -> list[str]:
        niveau = self._setting(conn, "voorraad_vanaf_niveau") or "PakbonEnAfhaalbon"
        level = NIVEAU_LEVEL[niveau]
        return [status for status, lvl in STATUS_LEVEL.items() if lvl >= level]

    def _artikelen_where(self, conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[Artikel]:
        """Articles matching ``where`` (on alias ``a``) with extra fields, recipe and free stock, in 4 queries."""
        subset = f"SELECT a.id FROM artikelen a WHERE {where}"
        extra: dict[int, dict[str, str]] = {}
        for row in conn.execute(
            f"SELECT artikel_id, naam, waarde FROM artikel_extra_velden WHERE artikel_id IN ({subset})",
            params,
        ):
            extra.setdefault(row[0], {})[row[1]] = row[2]
        recept: dict[int, list[ReceptRegel]] = {}
        for row in conn.execute(
            "SELECT r.artikel_id, r.sub_artikel_id, s.artikelcode, r.aantal FROM recept_regels r "
            f"JOIN artikelen s ON s.id = r.sub_artikel_id WHERE r.artikel_id IN ({subset}) ORDER BY r.volgorde",
            params,
        ):
            recept.setdefault(row[0], []).append(ReceptRegel(str(row[1]), row[2], Decimal(row[3])))
        statuses = self._counting_statuses(conn)
        reserved: dict[int, Decimal] = {}
        if statuses:
            marks = ",".join("?" * len(statuses))
            for row in conn.execute(
                "SELECT l.artikel_id, l.aantal FROM verkooporder_regels l JOIN verkooporders o ON o.id = l.order_id "
                f"WHERE o.proces_status IN ({marks}) AND l.artikel_id IN ({subset})",
                (*statuses, *params),
            ):
                reserved[row[0]] = reserved.get(row[0], Decimal("0")) + Decimal(row[1])
        result = []
        for r in conn.execute(f"SELECT a.* FROM artikelen a WHERE {where} ORDER BY a.artikelcode", params):
            technisch = Decimal(r["technische_voorraad"])
            result.append(
                Artikel(
                    id=str(r["id"]),
                    artikelcode=r["artikelcode"],
                    omschrijving=r["omschrijving"],
                    omzetgroep_id=str(r["omzetgroep_id"]),
                    verkoopprijs=Decimal(r["verkoopprijs"]),
                    inkoopprijs=Decimal(r["inkoopprijs"]) if r["inkoopprijs"] is not None else None,
                    eenheid=r["eenheid"],
                    voorraad_controle=bool(r["voorraad_controle"]),
                    technische_voorraad=technisch,
                    vrije_voorraad=technisch - reserved.get(r["id"], Decimal("0")),
                    extra_velden=extra.get(r["id"], {}),
                    recept=recept.get(r["id"], []),
                    recept_plaatsing=r["recept_plaatsing"],
                    is_non_actief=bool(r["is_non_actief"]),
                    modified_on=dt.datetime.fromisoformat(r["modified_on"]),
                )
            )
        return result

    def get_artikel(self, artikel_id: str) -> Artikel | None:
        own = self._maybe_id(artikel_id)
        if own is None:
            return None
        with self._read() as conn:
            found = self._artikelen_where(conn, "a.id = ?", (own,))
        return found[0] if found else None

    def artikelen_by_code(self, code: str, code_field: str = "artikelcode") -> list[Artikel]:
        """Trimmed, case-insensitive match on the artikelcode or on an extra field; nonactief ones included."""
        if not code or not code.strip():
            return []
        with self._read() as conn:
            if code_field == "artikelcode":
                return self._artikelen_where(conn, "a.code_key = ?", (code_key(code),))
            known = conn.execute(
                "SELECT 1 FROM extra_veld_definities WHERE soort = 'artikel' AND naam = ?", (code_field,)
            ).fetchone()
            if known is None:
                _refuse(f"articles have no extra field named {code_field!r} in this administration")
            return self._artikelen_where(
                conn,
                "a.id IN (SELECT artikel_id FROM artikel_extra_velden WHERE naam = ? AND waarde_key = ?)",
                (code_field, code_key(code)),
            )

    def stock_artikelen(self) -> list[Artikel]:
        with self._read() as conn:
            return self._artikelen_where(conn, "a.voorraad_controle = 1 AND a.is_non_actief = 0", ())

    def recipe_artikelen(self) -> list[Artikel]:
        with self._read() as conn:
            return self._artikelen_where(
                conn,
                "a.voorraad_controle = 0 AND a.is_non_actief = 0 "
                "AND a.id IN (SELECT artikel_id FROM recept_regels)",
                (),
            )

    # -- verkooporders --------------------------------------------------------------------------------------
    def last_order_sjabloon(self, relatie_id: str) -> str | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT sjabloon_id FROM verkooporders WHERE relatie_id = ? AND sjabloon_id IS NOT NULL "
                "ORDER BY datum DESC, nummer DESC LIMIT 1",
                (self._id(relatie_id, "relatie id"),),
            ).fetchone()
        return str(row[0]) if row else None

    def verkooporders_by_betalingskenmerk(self, betalingskenmerk: str) -> list[Verkooporder]:
        with self._read() as conn:
            return self._orders_where(conn, "betalingskenmerk = ?", (betalingskenmerk,))

    def open_web_orders(self) -> list[Verkooporder]:
        with self._read() as conn:
            return self._orders_where(
                conn,
                "proces_status = 'Order' AND betalingskenmerk IS NOT NULL AND betalingskenmerk <> ''",
                (),
            )

    def get_verkooporder(self, order_id: str) -> Verkooporder | None:
        own = self._maybe_id(order_id)
        if own is None:
            return None
        with self._read() as conn:
            found = self._orders_where(conn, "id = ?", (own,))
        return found[0] if found else None

    def set_proces_status(self, order_id: str, status: str) -> None:
        """Move an order through SnelStart's process (user actions such as printing a pakbon or invoicing)."""
        if status not in PROCES_STATUSES:
            _refuse(f"procesStatus {status!r} is not one of {', '.join(PROCES_STATUSES)}")
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE verkooporders SET proces_status = ?, modified_on = ? WHERE id = ?",
                (status, _now(), self._id(order_id, "verkooporder id")),
            )
            if cur.rowcount == 0:
                _refuse(f"verkooporder {order_id} does not exist")

    def _orders_where(
        self, conn: sqlite3.Connection, where: str, params: Sequence[Any]
    ) -> list[Verkooporder]:
        regels: dict[int, list[OrderRegel]] = {}
        for r in conn.execute(
            f"SELECT * FROM verkooporder_regels WHERE order_id IN (SELECT id FROM verkooporders WHERE {where}) "
            "ORDER BY order_id, volgorde",
            params,
        ):
            regels.setdefault(r["order_id"], []).append(
                OrderRegel(
                    artikel_id=str(r["artikel_id"]) if r["artikel_id"] is not None else None,
                    omschrijving=r["omschrijving"],
                    aantal=Decimal(r["aantal"]),
                    stuksprijs=Decimal(r["stuksprijs"]),
                    kortings_percentage=Decimal(r["kortings_percentage"]),
                    btw_percentage=Decimal(r["btw_percentage"]) if r["btw_percentage"] is not None else None,
                )
            )
        result = []
        for o in conn.execute(f"SELECT * FROM verkooporders WHERE {where} ORDER BY nummer", params):
            result.append(
                Verkooporder(
                    id=str(o["id"]),
                    nummer=o["nummer"],
                    relatie_id=str(o["relatie_id"]),
                    datum=dt.date.fromisoformat(o["datum"]),
                    betalingskenmerk=o["betalingskenmerk"],
                    omschrijving=o["omschrijving"],
                    sjabloon_id=str(o["sjabloon_id"]) if o["sjabloon_id"] is not None else None,
                    proces_status=o["proces_status"],
                    totaal_excl_btw=Decimal(o["totaal_excl_btw"]),
                    totaal_incl_btw=Decimal(o["totaal_incl_btw"]),
                    regels=regels.get(o["id"], []),
                    kostensoort_1=Decimal(o["kostensoort_1"]) if o["kostensoort_1"] is not None else None,
                    kostensoort_2=Decimal(o["kostensoort_2"]) if o["kostensoort_2"] is not None else None,
                    factuuradres=_adres_from_json(o["factuuradres"]),
                    afleveradres=_adres_from_json(o["afleveradres"]),
                )
            )
        return result

    def _check_order_header(
        self, conn: sqlite3.Connection, order: NieuweVerkooporder
    ) -> tuple[int, int | None, bool, OrderVat]:
        """Validate relatie, sjabloon, VAT mode and header fields; returns (relatie id, sjabloon id, incl. VAT,
        the order's VAT treatment)."""
        relatie_id = self._id(order.relatie_id, "verkooporder relatie")
        rel = conn.execute(
            "SELECT relatiesoort, nonactief, naam, v_land, btw_nummer FROM relaties WHERE id = ?",
            (relatie_id,),
        ).fetchone()
        if rel is None:
            _refuse(f"verkooporder: relatie {order.relatie_id} does not exist")
        if "Klant" not in rel["relatiesoort"].split(","):
            _refuse(f"verkooporder: relatie {rel['naam']!r} is not a Klant (VOR-0002)")
        if rel["nonactief"]:
            _refuse(f"verkooporder: relatie {rel['naam']!r} is nonactief (ALG-0105)")
        if order.proces_status not in CREATE_STATUSES:
            _refuse(
                f"verkooporder procesStatus {order.proces_status!r} must be one of {', '.join(CREATE_STATUSES)}"
            )
        if order.krediettermijn is not None and not 0 <= order.krediettermijn <= 100:
            _refuse(f"verkooporder krediettermijn {order.krediettermijn} must lie between 0 and 100")
        _max_len(order.orderreferentie, 50, "verkooporder orderreferentie", "VOR-0011")
        # The OpenAPI gives these two no limit; the desktop program has one, we assume 250 and 50.
        _max_len(order.omschrijving, 250, "verkooporder omschrijving")
        _max_len(order.betalingskenmerk, 50, "verkooporder betalingskenmerk")
        if not isinstance(order.datum, dt.date):
            _refuse(f"verkooporder datum {order.datum!r} is not a date")
        for label, adres in (("factuuradres", order.factuuradres), ("afleveradres", order.afleveradres)):
            if adres is not None:
                self._check_adres(conn, adres, f"verkooporder {label}", ("VOR-0006", "VOR-0010"), False)
        incl = bool(order.prijs_incl_btw)
        sjabloon_id = None
        kostensoorten: tuple[str | None, str | None] = (None, None)
        if order.sjabloon_id is not None:
            sjabloon_id = self._id(order.sjabloon_id, "verkoopsjabloon id")
            sj = conn.execute("SELECT * FROM sjablonen WHERE id = ?", (sjabloon_id,)).fetchone()
            if sj is None:
                _refuse(f"verkooporder: verkoopsjabloon {order.sjabloon_id} does not exist")
            if sj["nonactief"]:
                _refuse(f"verkooporder: verkoopsjabloon {sj['omschrijving']!r} is nonactief")
            # The template fixes how prices are entered; an order claiming the other mode would be off by the VAT.
            if bool(sj["prijs_incl_btw"]) != incl:
                mode = "including" if sj["prijs_incl_btw"] else "excluding"
                _refuse(
                    f"verkooporder: verkoopsjabloon {sj['omschrijving']!r} takes prices {mode} VAT, "
                    f"but the order's prices are {'including' if incl else 'excluding'} VAT"
                )
            kostensoorten = (sj["kostensoort_1"], sj["kostensoort_2"])
        for nr, amount, label in (
            (1, order.kostensoort_1, kostensoorten[0]),
            (2, order.kostensoort_2, kostensoorten[1]),
        ):
            if amount is not None and label is None:
                where = (
                    f"verkoopsjabloon {order.sjabloon_id}"
                    if sjabloon_id
                    else "an order without verkoopsjabloon"
                )
                _refuse(f"verkooporder: kostensoort {nr} is not available on {where}")
        # SnelStart decides the VAT from where the order goes and whether the relatie has a btw-nummer.
        country = order_country(order.afleveradres, Adres(land=rel["v_land"]))
        return relatie_id, sjabloon_id, incl, order_vat(country, rel["btw_nummer"])

    def _check_regel(
        self, conn: sqlite3.Connection, nr: int, regel: OrderRegel
    ) -> tuple[int | None, str, Decimal, Decimal, Decimal, Decimal | None]:
        """Validate one line; returns (artikel id, omschrijving, aantal, stuksprijs, korting %, the Dutch VAT % of
        the article's omzetgroep)."""
        aantal = _dec(regel.aantal, f"regel {nr} aantal")
        prijs = _dec(regel.stuksprijs, f"regel {nr} stuksprijs")
        korting = _dec(regel.kortings_percentage, f"regel {nr} kortingsPercentage")
        if not 0 <= korting <= 100:
            _refuse(f"regel {nr}: kortingsPercentage {korting} must lie between 0 and 100")
        omschrijving = regel.omschrijving or ""
        _max_len(omschrijving, 250, f"regel {nr} omschrijving")
        if regel.artikel_id is None:
            if not omschrijving.strip():
                _refuse(f"regel {nr}: a text line needs an omschrijving")
            if prijs != 0 or korting != 0:
                _refuse(f"regel {nr}: a text line (no artikel) cannot carry a price or discount")
            return None, omschrijving, aantal, Decimal("0"), Decimal("0"), None
        artikel_id = self._id(regel.artikel_id, f"regel {nr} artikel")
        art = conn.execute(
            "SELECT a.artikelcode, a.omschrijving, a.is_non_actief, t.percentage FROM artikelen a "
            "JOIN omzetgroepen g ON g.id = a.omzetgroep_id JOIN btwtarieven t ON t.btw_soort = g.btw_soort "
            "WHERE a.id = ?",
            (artikel_id,),
        ).fetchone()
        if art is None:
            _refuse(f"regel {nr}: artikel {regel.artikel_id} does not exist")
        if art["is_non_actief"]:
            _refuse(f"regel {nr}: artikel {art['artikelcode']!r} is nonactief (ALG-0105)")
        # SnelStart fills an empty line description from the article.
        return (
            artikel_id,
            omschrijving or art["omschrijving"],
            aantal,
            prijs,
            korting,
            Decimal(art["percentage"]),
        )

    def create_verkooporder(self, order: NieuweVerkooporder) -> Verkooporder:
        with self._write() as conn:
            relatie_id, sjabloon_id, incl, vat = self._check_order_header(conn, order)
            checked = [self._check_regel(conn, nr, regel) for nr, regel in enumerate(order.regels, start=1)]
            # A line's VAT: its omzetgroep's Dutch rate, or 0 % when the order is one without Dutch VAT.
            lines = [(*line[:5], None if line[5] is None else vat.rate(line[5])) for line in checked]
            amounts = [(line_total(a, p, k), rate) for (_, _, a, p, k, rate) in lines if rate is not None]
            costs = [
                _dec(c, f"kostensoort {n}")
                for n, c in ((1, order.kostensoort_1), (2, order.kostensoort_2))
                if c is not None
            ]
            # Assumption: footer costs (kostensoort 1/2) are booked at the high VAT rate, as shipping and
            # payment fees of a shop selling mostly high-rate goods are; SnelStart lets a user choose per type.
            # An order without Dutch VAT (intra-EU supply, export) carries none on its costs either.
            hoog = Decimal(
                conn.execute("SELECT percentage FROM btwtarieven WHERE btw_soort = 'Hoog'").fetchone()[0]
            )
            excl, incl_total = order_totals(
                [*amounts, *((round_cents(c), vat.rate(hoog)) for c in costs)], prijs_incl_btw=incl
            )
            nummer = int(self._setting(conn, "volgend_verkoopordernummer") or 1)
            top = conn.execute("SELECT MAX(nummer) FROM verkooporders").fetchone()[0]
            nummer = max(nummer, (top or 0) + 1)
            self._set_setting(conn, "volgend_verkoopordernummer", str(nummer + 1))
            now = _now()
            cur = conn.execute(
                "INSERT INTO verkooporders (nummer, relatie_id, datum, sjabloon_id, prijs_incl_btw, omschrijving, "
                "betalingskenmerk, proces_status, totaal_excl_btw, totaal_incl_btw, kostensoort_1, kostensoort_2, "
                "krediettermijn, memo, orderreferentie, factuuradres, afleveradres, created_on, modified_on) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    nummer, relatie_id, order.datum.isoformat(), sjabloon_id, int(incl), order.omschrijving,
                    order.betalingskenmerk, order.proces_status, str(excl), str(incl_total),
                    None if order.kostensoort_1 is None else str(round_cents(_dec(order.kostensoort_1, "kostensoort 1"))),
                    None if order.kostensoort_2 is None else str(round_cents(_dec(order.kostensoort_2, "kostensoort 2"))),
                    order.krediettermijn, order.memo, order.orderreferentie,
                    _adres_json(order.factuuradres), _adres_json(order.afleveradres), now, now,
                ),
            )  # fmt: skip
            order_id = cur.lastrowid
            conn.executemany(
                "INSERT INTO verkooporder_regels (order_id, volgorde, artikel_id, omschrijving, aantal, stuksprijs, "
                "kortings_percentage, totaal, btw_percentage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (order_id, nr, art, oms, str(a), str(p), str(k),
                     str(line_total(a, p, k)), None if rate is None else str(rate))
                    for nr, (art, oms, a, p, k, rate) in enumerate(lines, start=1)
                ],
            )  # fmt: skip
            return self._orders_where(conn, "id = ?", (order_id,))[0]
