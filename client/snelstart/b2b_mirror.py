"""A copy of the B2B administration's relaties, artikelen and landen in the client's state SQLite.

Customer and article matching run many lookups per order; asking the API each time would cost calls against
the per-administration limit and seconds per order. So the backend keeps this mirror, brings it up to date with
``ModifiedOn`` filters (``refresh``) and writes its own creates and updates through. Lookups are index seeks on
the same normalised keys the local backend uses (``client.rules.normalize``).

The tables are the mirror's own (``b2b_*``), keyed by administration so that two profiles sharing one state file
never see each other's rows.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from client.rules.normalize import email_key, kvk_key, name_key, postcode_key, vat_key
from client.snelstart.base import Adres, Artikel, EmailVersturen, ReceptRegel, Relatie

_SCHEMA = """
CREATE TABLE IF NOT EXISTS b2b_objects (
    admin       TEXT NOT NULL,
    entity      TEXT NOT NULL,          -- 'relatie' | 'artikel'
    id          TEXT NOT NULL,
    modified_on TEXT,
    data        TEXT NOT NULL,          -- the dataclass as JSON (Decimals as strings)
    PRIMARY KEY (admin, entity, id)
);
CREATE TABLE IF NOT EXISTS b2b_keys (
    admin  TEXT NOT NULL,
    entity TEXT NOT NULL,
    kind   TEXT NOT NULL,               -- 'code', 'email:<field>', 'vat', 'kvk', 'name', 'extra:<name>'
    key    TEXT NOT NULL,
    id     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS b2b_keys_lookup ON b2b_keys (admin, entity, kind, key);
CREATE INDEX IF NOT EXISTS b2b_keys_owner ON b2b_keys (admin, entity, id);
CREATE TABLE IF NOT EXISTS b2b_sync (
    admin     TEXT NOT NULL,
    entity    TEXT NOT NULL,            -- 'relatie' | 'artikel' | 'landen'
    watermark TEXT,                     -- highest modifiedOn seen by a refresh (UTC ISO)
    full_at   TEXT NOT NULL,            -- last complete read (UTC ISO)
    PRIMARY KEY (admin, entity)
);
CREATE TABLE IF NOT EXISTS b2b_landen (
    admin TEXT NOT NULL,
    id    TEXT NOT NULL,
    iso   TEXT NOT NULL,
    naam  TEXT,
    PRIMARY KEY (admin, id)
);
"""

# The e-mail fields of base.SnelStartBackend.relaties_by_email_fields, and where each lives on a Relatie.
EMAIL_FIELDS: dict[str, tuple[str, str]] = {
    "email": ("email", ""),
    "factuur": ("factuur_email", "email"),
    "factuur_cc": ("factuur_email", "cc"),
    "offerte": ("offerte_email", "email"),
    "offerte_cc": ("offerte_email", "cc"),
    "bevestiging": ("bevestiging_email", "email"),
    "bevestiging_cc": ("bevestiging_email", "cc"),
    "aanmaning": ("aanmaning_email", "email"),
    "aanmaning_cc": ("aanmaning_email", "cc"),
}


def extra_key(value: str | None) -> str | None:
    """Extra-field values compare trimmed and case-insensitively."""
    if value is None:
        return None
    return value.strip().casefold() or None


def code_key(code: str | None) -> str | None:
    """Artikelcodes compare trimmed and case-insensitively (SnelStart treats "ab1" and "AB1" as one code)."""
    if code is None:
        return None
    return code.strip().casefold() or None


def _ts(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def _parse_ts(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


# -- (de)serialising the dataclasses ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _dump(obj: Relatie | Artikel) -> str:
    return json.dumps(asdict(obj), default=_plain)


def _adres(data: dict[str, Any] | None) -> Adres | None:
    return Adres(**data) if data is not None else None


def relatie_from_json(text: str) -> Relatie:
    d = json.loads(text)
    d["vestigingsadres"] = _adres(d["vestigingsadres"]) or Adres()
    d["correspondentieadres"] = _adres(d["correspondentieadres"])
    for name in ("factuur_email", "offerte_email", "bevestiging_email", "aanmaning_email"):
        d[name] = EmailVersturen(**d[name])
    d["relatiesoort"] = tuple(d["relatiesoort"])
    d["modified_on"] = _parse_ts(d["modified_on"])
    return Relatie(**d)


def artikel_from_json(text: str) -> Artikel:
    d = json.loads(text)
    for name in ("verkoopprijs", "technische_voorraad", "vrije_voorraad"):
        d[name] = Decimal(d[name])
    if d["inkoopprijs"] is not None:
        d["inkoopprijs"] = Decimal(d["inkoopprijs"])
    d["recept"] = [ReceptRegel(r["artikel_id"], r["artikelcode"], Decimal(r["aantal"])) for r in d["recept"]]
    d["modified_on"] = _parse_ts(d["modified_on"])
    return Artikel(**d)


def _split_emails(value: str | None) -> list[str]:
    """A SnelStart e-mail field may hold several addresses separated by ';'."""
    if not value:
        return []
    keys = (email_key(part) for part in value.replace(",", ";").split(";"))
    return [k for k in keys if k]


def relatie_keys(r: Relatie) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = [("code", str(r.relatiecode))]
    for field_name, (attr, sub) in EMAIL_FIELDS.items():
        holder = getattr(r, attr)
        value = getattr(holder, sub) if sub else holder
        keys.extend((f"email:{field_name}", k) for k in _split_emails(value))
    land = r.vestigingsadres.land
    for kind, key in (
        ("vat", vat_key(r.btw_nummer, land)),
        ("kvk", kvk_key(r.kvk_nummer)),
        ("name", name_key(r.naam)),
    ):
        if key:
            keys.append((kind, key))
    for naam, waarde in r.extra_velden.items():
        if (k := extra_key(waarde)) is not None:
            keys.append((f"extra:{naam.casefold()}", k))
    return keys


def artikel_keys(a: Artikel) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    if (k := code_key(a.artikelcode)) is not None:
        keys.append(("code", k))
    for naam, waarde in a.extra_velden.items():
        if (k := extra_key(waarde)) is not None:
            keys.append((f"extra:{naam.casefold()}", k))
    return keys


class B2BMirror:
    """The mirror of one administration (``admin``: a stable id of it) in one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection, admin: str) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.admin = admin
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # Explicit BEGIN: the state store's connections are in autocommit mode, where `with conn:` is no transaction.
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- writing -----------------------------------------------------------------------------------------------
    def _write(self, entity: str, objs: Iterable[Relatie | Artikel]) -> None:
        keys_of = relatie_keys if entity == "relatie" else artikel_keys
        c = self._conn
        for obj in objs:
            c.execute(
                "INSERT INTO b2b_objects (admin, entity, id, modified_on, data) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (admin, entity, id) DO UPDATE SET modified_on = excluded.modified_on, data = excluded.data",
                (self.admin, entity, obj.id, _ts(obj.modified_on), _dump(obj)),
            )
            c.execute(
                "DELETE FROM b2b_keys WHERE admin = ? AND entity = ? AND id = ?", (self.admin, entity, obj.id)
            )
            c.executemany(
                "INSERT INTO b2b_keys (admin, entity, kind, key, id) VALUES (?, ?, ?, ?, ?)",
                [(self.admin, entity, kind, key, obj.id) for kind, key in keys_of(obj)],  # type: ignore[arg-type]
            )

    def store(self, entity: str, objs: list[Relatie] | list[Artikel]) -> None:
        """Write-through of rows the backend itself created, changed or read."""
        with self._tx():
            self._write(entity, objs)

    def apply_refresh(
        self,
        entity: str,
        objs: list[Relatie] | list[Artikel],
        *,
        full: bool,
        read_at: dt.datetime,
    ) -> None:
        """Store one refresh in one transaction; a full read also drops rows SnelStart no longer returns."""
        seen = [o.modified_on for o in objs if o.modified_on is not None]
        with self._tx():
            if full:
                self._conn.execute(
                    "DELETE FROM b2b_objects WHERE admin = ? AND entity = ?", (self.admin, entity)
                )
                self._conn.execute(
                    "DELETE FROM b2b_keys WHERE admin = ? AND entity = ?", (self.admin, entity)
                )
            self._write(entity, objs)
            old = self.sync_state(entity)
            marks = [m for m in (*seen, old[0] if old and not full else None) if m is not None]
            watermark = max(marks) if marks else None
            full_at = read_at if full or old is None else old[1]
            self._conn.execute(
                "INSERT INTO b2b_sync (admin, entity, watermark, full_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (admin, entity) DO UPDATE SET watermark = excluded.watermark, full_at = excluded.full_at",
                (self.admin, entity, _ts(watermark), _ts(full_at)),
            )

    def sync_state(self, entity: str) -> tuple[dt.datetime | None, dt.datetime] | None:
        """(watermark, time of the last full read), None when never read."""
        with self._lock:
            row = self._conn.execute(
                "SELECT watermark, full_at FROM b2b_sync WHERE admin = ? AND entity = ?", (self.admin, entity)
            ).fetchone()
        if row is None:
            return None
        full_at = _parse_ts(row[1])
        assert full_at is not None
        return _parse_ts(row[0]), full_at

    # -- reading -----------------------------------------------------------------------------------------------
    def get(self, entity: str, obj_id: str) -> Relatie | Artikel | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM b2b_objects WHERE admin = ? AND entity = ? AND id = ?",
                (self.admin, entity, obj_id),
            ).fetchone()
        if row is None:
            return None
        return relatie_from_json(row[0]) if entity == "relatie" else artikel_from_json(row[0])

    def find(self, entity: str, kinds: Iterable[str], key: str) -> list[Any]:
        kinds = list(kinds)
        if not kinds:
            return []
        marks = ",".join("?" * len(kinds))
        with self._lock:
            rows = self._conn.execute(
                f"SELECT DISTINCT o.data FROM b2b_keys k JOIN b2b_objects o "  # noqa: S608 - only '?' marks
                f"ON o.admin = k.admin AND o.entity = k.entity AND o.id = k.id "
                f"WHERE k.admin = ? AND k.entity = ? AND k.kind IN ({marks}) AND k.key = ? ORDER BY o.id",
                (self.admin, entity, *kinds, key),
            ).fetchall()
        load = relatie_from_json if entity == "relatie" else artikel_from_json
        return [load(r[0]) for r in rows]

    def all(self, entity: str) -> list[Any]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT data FROM b2b_objects WHERE admin = ? AND entity = ? ORDER BY id",
                (self.admin, entity),
            ).fetchall()
        load = relatie_from_json if entity == "relatie" else artikel_from_json
        return [load(r[0]) for r in rows]

    def count(self, entity: str) -> int:
        with self._lock:
            return self._conn.execute(
                "SELECT COUNT(*) FROM b2b_objects WHERE admin = ? AND entity = ?", (self.admin, entity)
            ).fetchone()[0]

    # -- landen ------------------------------------------------------------------------------------------------
    def landen(self) -> tuple[dict[str, str], dt.datetime | None]:
        """(id → ISO code, when read); empty when never read."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, iso FROM b2b_landen WHERE admin = ?", (self.admin,)
            ).fetchall()
        state = self.sync_state("landen")
        return {r[0]: r[1] for r in rows}, (state[1] if state else None)

    def store_landen(self, landen: dict[str, tuple[str, str | None]], read_at: dt.datetime) -> None:
        """``landen``: id → (ISO code, naam)."""
        with self._tx():
            self._conn.execute("DELETE FROM b2b_landen WHERE admin = ?", (self.admin,))
            self._conn.executemany(
                "INSERT INTO b2b_landen (admin, id, iso, naam) VALUES (?, ?, ?, ?)",
                [(self.admin, i, iso, naam) for i, (iso, naam) in landen.items()],
            )
            self._conn.execute(
                "INSERT INTO b2b_sync (admin, entity, watermark, full_at) VALUES (?, 'landen', NULL, ?) "
                "ON CONFLICT (admin, entity) DO UPDATE SET full_at = excluded.full_at",
                (self.admin, _ts(read_at)),
            )


def postcode_matches(r: Relatie, key: str | None) -> bool:
    return key is None or postcode_key(r.vestigingsadres.postcode) == key
