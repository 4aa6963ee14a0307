-- The embedded SnelStart administration of the `local` backend (one SQLite file).
-- Money and quantities are Decimal strings (TEXT), never REAL. Times are ISO 8601 UTC strings.
-- Columns ending in _key hold the values of client.rules.normalize so matching lookups are index seeks.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE landen (
    code       TEXT PRIMARY KEY,   -- ISO 3166-1 alpha-2
    naam       TEXT NOT NULL,
    vat_prefix TEXT NOT NULL       -- equal to code except Greece (EL)
);

-- VAT percentage per btw-soort of an omzetgroep (companyInfo / btwtarieven).
CREATE TABLE btwtarieven (
    btw_soort  TEXT PRIMARY KEY CHECK (btw_soort IN ('Geen', 'Laag', 'Hoog', 'Overig')),
    percentage TEXT NOT NULL
);

CREATE TABLE omzetgroepen (
    id           INTEGER PRIMARY KEY,
    nummer       INTEGER NOT NULL UNIQUE,
    omschrijving TEXT NOT NULL,
    btw_soort    TEXT NOT NULL REFERENCES btwtarieven (btw_soort)
);

-- Extra fields must be defined before a relatie or artikel can carry them, as in SnelStart.
CREATE TABLE extra_veld_definities (
    soort TEXT NOT NULL CHECK (soort IN ('relatie', 'artikel')),
    naam  TEXT NOT NULL COLLATE NOCASE,
    PRIMARY KEY (soort, naam)
);

CREATE TABLE relaties (
    id                  INTEGER PRIMARY KEY,
    relatiecode         INTEGER NOT NULL UNIQUE,
    naam                TEXT NOT NULL,
    relatiesoort        TEXT NOT NULL DEFAULT 'Klant',   -- comma separated
    v_contactpersoon    TEXT,
    v_straat            TEXT,
    v_postcode          TEXT,
    v_plaats            TEXT,
    v_land              TEXT NOT NULL REFERENCES landen (code),
    c_afwijkend         INTEGER NOT NULL DEFAULT 0,
    c_contactpersoon    TEXT,
    c_straat            TEXT,
    c_postcode          TEXT,
    c_plaats            TEXT,
    c_land              TEXT REFERENCES landen (code),
    telefoon            TEXT,
    mobiele_telefoon    TEXT,
    email               TEXT,
    factuur_email       TEXT,
    factuur_cc          TEXT,
    offerte_email       TEXT,
    offerte_cc          TEXT,
    bevestiging_email   TEXT,
    bevestiging_cc      TEXT,
    aanmaning_email     TEXT,
    aanmaning_cc        TEXT,
    btw_nummer          TEXT,
    kvk_nummer          TEXT,
    krediettermijn      INTEGER,
    nonactief           INTEGER NOT NULL DEFAULT 0,
    modified_on         TEXT NOT NULL,
    name_key            TEXT,
    postcode_key        TEXT,
    vat_key             TEXT,
    kvk_key             TEXT
);
CREATE INDEX relaties_name ON relaties (name_key, v_land, postcode_key);
CREATE INDEX relaties_vat ON relaties (vat_key);
CREATE INDEX relaties_kvk ON relaties (kvk_key);

-- One row per address per e-mail field; a field may hold several addresses separated by ";".
CREATE TABLE relatie_emails (
    relatie_id INTEGER NOT NULL REFERENCES relaties (id) ON DELETE CASCADE,
    veld       TEXT NOT NULL,
    email_key  TEXT NOT NULL
);
CREATE INDEX relatie_emails_key ON relatie_emails (email_key, veld);
CREATE INDEX relatie_emails_relatie ON relatie_emails (relatie_id);

CREATE TABLE relatie_extra_velden (
    relatie_id INTEGER NOT NULL REFERENCES relaties (id) ON DELETE CASCADE,
    naam       TEXT NOT NULL COLLATE NOCASE,
    waarde     TEXT NOT NULL,
    waarde_key TEXT NOT NULL,
    PRIMARY KEY (relatie_id, naam)
);
CREATE INDEX relatie_extra_velden_key ON relatie_extra_velden (naam, waarde_key);

CREATE TABLE artikelen (
    id                  INTEGER PRIMARY KEY,
    artikelcode         TEXT NOT NULL,
    code_key            TEXT NOT NULL UNIQUE,
    omschrijving        TEXT NOT NULL,
    omzetgroep_id       INTEGER NOT NULL REFERENCES omzetgroepen (id),
    verkoopprijs        TEXT NOT NULL DEFAULT '0',
    inkoopprijs         TEXT,
    eenheid             TEXT,
    voorraad_controle   INTEGER NOT NULL DEFAULT 0,
    technische_voorraad TEXT NOT NULL DEFAULT '0',
    recept_plaatsing    TEXT CHECK (recept_plaatsing IN ('always', 'choice')),
    is_non_actief       INTEGER NOT NULL DEFAULT 0,
    modified_on         TEXT NOT NULL
);
CREATE INDEX artikelen_stock ON artikelen (voorraad_controle, is_non_actief);

CREATE TABLE artikel_extra_velden (
    artikel_id INTEGER NOT NULL REFERENCES artikelen (id) ON DELETE CASCADE,
    naam       TEXT NOT NULL COLLATE NOCASE,
    waarde     TEXT NOT NULL,
    waarde_key TEXT NOT NULL,
    PRIMARY KEY (artikel_id, naam)
);
CREATE INDEX artikel_extra_velden_key ON artikel_extra_velden (naam, waarde_key);

CREATE TABLE recept_regels (
    artikel_id     INTEGER NOT NULL REFERENCES artikelen (id) ON DELETE CASCADE,
    volgorde       INTEGER NOT NULL,
    sub_artikel_id INTEGER NOT NULL REFERENCES artikelen (id),
    aantal         TEXT NOT NULL,
    PRIMARY KEY (artikel_id, volgorde)
);

CREATE TABLE prijsafspraken (
    id                  INTEGER PRIMARY KEY,
    relatie_id          INTEGER NOT NULL REFERENCES relaties (id) ON DELETE CASCADE,
    artikel_id          INTEGER NOT NULL REFERENCES artikelen (id) ON DELETE CASCADE,
    vanaf_aantal        TEXT NOT NULL DEFAULT '1',
    prijs               TEXT,
    kortings_percentage TEXT,
    CHECK ((prijs IS NULL) <> (kortings_percentage IS NULL))
);
CREATE INDEX prijsafspraken_pair ON prijsafspraken (relatie_id, artikel_id);

CREATE TABLE sjablonen (
    id            INTEGER PRIMARY KEY,
    omschrijving  TEXT NOT NULL UNIQUE COLLATE NOCASE,
    prijs_incl_btw INTEGER NOT NULL,
    kostensoort_1 TEXT,
    kostensoort_2 TEXT,
    nonactief     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE verkooporders (
    id               INTEGER PRIMARY KEY,
    nummer           INTEGER NOT NULL UNIQUE,
    relatie_id       INTEGER NOT NULL REFERENCES relaties (id),
    datum            TEXT NOT NULL,
    sjabloon_id      INTEGER REFERENCES sjablonen (id),
    prijs_incl_btw   INTEGER NOT NULL,
    omschrijving     TEXT,
    betalingskenmerk TEXT,
    proces_status    TEXT NOT NULL,
    totaal_excl_btw  TEXT NOT NULL,
    totaal_incl_btw  TEXT NOT NULL,
    kostensoort_1    TEXT,
    kostensoort_2    TEXT,
    krediettermijn   INTEGER,
    memo             TEXT,
    orderreferentie  TEXT,
    factuuradres     TEXT,   -- JSON of base.Adres, NULL: the relatie's card
    afleveradres     TEXT,
    created_on       TEXT NOT NULL,
    modified_on      TEXT NOT NULL
);
CREATE INDEX verkooporders_kenmerk ON verkooporders (betalingskenmerk);
CREATE INDEX verkooporders_relatie ON verkooporders (relatie_id, datum, nummer);
CREATE INDEX verkooporders_status ON verkooporders (proces_status);

CREATE TABLE verkooporder_regels (
    order_id            INTEGER NOT NULL REFERENCES verkooporders (id) ON DELETE CASCADE,
    volgorde            INTEGER NOT NULL,
    artikel_id          INTEGER REFERENCES artikelen (id),
    omschrijving        TEXT NOT NULL,
    aantal              TEXT NOT NULL,
    stuksprijs          TEXT NOT NULL,
    kortings_percentage TEXT NOT NULL,
    totaal              TEXT NOT NULL,
    btw_percentage      TEXT,
    PRIMARY KEY (order_id, volgorde)
);
CREATE INDEX verkooporder_regels_artikel ON verkooporder_regels (artikel_id);
