"""Creating a new ``local`` SnelStart administration, optionally filled with realistic sample data."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from decimal import Decimal
from importlib import resources
from pathlib import Path

from client.snelstart.base import (
    Adres,
    EmailVersturen,
    NieuwArtikel,
    NieuweRelatie,
    NieuweVerkooporder,
    OrderRegel,
    PrijsAfspraak,
)
from client.snelstart.local import SCHEMA_VERSION, LocalBackend

# ISO 3166-1 alpha-2 code → Dutch name. Every EU member state plus the countries a Dutch webshop commonly ships to.
LANDEN = {
    "AT": "Oostenrijk", "BE": "België", "BG": "Bulgarije", "CY": "Cyprus", "CZ": "Tsjechië", "DE": "Duitsland",
    "DK": "Denemarken", "EE": "Estland", "ES": "Spanje", "FI": "Finland", "FR": "Frankrijk", "GR": "Griekenland",
    "HR": "Kroatië", "HU": "Hongarije", "IE": "Ierland", "IT": "Italië", "LT": "Litouwen", "LU": "Luxemburg",
    "LV": "Letland", "MT": "Malta", "NL": "Nederland", "PL": "Polen", "PT": "Portugal", "RO": "Roemenië",
    "SE": "Zweden", "SI": "Slovenië", "SK": "Slowakije",
    "AD": "Andorra", "AE": "Verenigde Arabische Emiraten", "AL": "Albanië", "AR": "Argentinië", "AU": "Australië",
    "AW": "Aruba", "BA": "Bosnië en Herzegovina", "BQ": "Caribisch Nederland", "BR": "Brazilië", "CA": "Canada",
    "CH": "Zwitserland", "CL": "Chili", "CN": "China", "CO": "Colombia", "CW": "Curaçao", "EG": "Egypte",
    "FO": "Faeröer", "GB": "Verenigd Koninkrijk", "GE": "Georgië", "GG": "Guernsey", "GI": "Gibraltar",
    "GL": "Groenland", "HK": "Hongkong", "ID": "Indonesië", "IL": "Israël", "IM": "Isle of Man", "IN": "India",
    "IS": "IJsland", "JE": "Jersey", "JP": "Japan", "KR": "Zuid-Korea", "LI": "Liechtenstein", "MA": "Marokko",
    "MC": "Monaco", "MD": "Moldavië", "ME": "Montenegro", "MK": "Noord-Macedonië", "MX": "Mexico",
    "MY": "Maleisië", "NO": "Noorwegen", "NZ": "Nieuw-Zeeland", "PH": "Filipijnen", "QA": "Qatar",
    "RS": "Servië", "SA": "Saoedi-Arabië", "SG": "Singapore", "SM": "San Marino", "SR": "Suriname",
    "SX": "Sint Maarten", "TH": "Thailand", "TN": "Tunesië", "TR": "Turkije", "TW": "Taiwan", "UA": "Oekraïne",
    "US": "Verenigde Staten", "VA": "Vaticaanstad", "VN": "Vietnam", "ZA": "Zuid-Afrika",
}  # fmt: skip

# The one betalingskenmerk the sample administration holds (its pakbon order).
SAMPLE_BETALINGSKENMERK = "KASSA-2026-0002"

# Dutch rates; "Overig" has no fixed rate in SnelStart, 0 here.
BTW_TARIEVEN = {"Hoog": "21", "Laag": "9", "Geen": "0", "Overig": "0"}

# The standard data of every new administration (see add_standard_data).
STANDARD_OMZETGROEPEN = (
    (1, "Omzet hoog", "Hoog"),
    (2, "Omzet laag", "Laag"),
    (3, "Omzet verlegd/0 %", "Geen"),
)
STANDARD_SJABLONEN = (("Webshop", True), ("Webshop excl", False))
# client.yml.example's shipping_costs, discount, payment_costs, default_article and rounding_article.
STANDARD_ARTIKELEN = {
    "VERZEND": ("Verzendkosten", "6.95"),
    "KORTING": ("Korting", "0"),
    "BETAALKOSTEN": ("Betaalkosten", "0.35"),
    "WEBSHOP": ("Webshop artikel", "0"),
    "AFRONDING": ("Afrondingsverschil", "0"),
}


def init_local(path: Path, *, sample: bool, administratie_naam: str | None = None) -> None:
    """Create a new administration file at ``path``; refuses when the file already exists.

    Every new administration holds what SnelStart sets up for one (``add_standard_data``); ``sample`` adds a
    small coffee shop's relaties, artikelen and history on top.

    The file is built under a temporary name and linked into place at the end, so a crash never leaves a
    half-made administration behind, and a file created meanwhile by someone else is never overwritten."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists; init_local does not overwrite an administration")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.init")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    try:
        _create_schema(tmp, administratie_naam or ("Voorbeeld Koffie BV" if sample else path.stem))
        with LocalBackend(tmp) as backend, backend.batch():
            add_standard_data(backend)
            if sample:
                add_sample_data(backend)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(
                f"{path} already exists; init_local does not overwrite an administration"
            ) from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


def _create_schema(path: Path, naam: str) -> None:
    ddl = resources.files("client.snelstart").joinpath("local_schema.sql").read_text(encoding="utf-8")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript("BEGIN;\n" + ddl)
        settings = {
            "schema_version": SCHEMA_VERSION,
            "administratie_naam": naam,
            # SnelStart's default: stock leaves with the pakbon (manual 5.2).
            "voorraad_vanaf_niveau": "PakbonEnAfhaalbon",
            "volgend_verkoopordernummer": "1",
            "artikelcode_soort": "Alfanumeriek",
            # companyInfo.artikelcodeMaxLengte differs per administration; 30 is our assumption for new ones.
            "artikelcode_max_lengte": "30",
        }
        conn.executemany("INSERT INTO settings (key, value) VALUES (?, ?)", settings.items())
        conn.executemany(
            "INSERT INTO landen (code, naam, vat_prefix) VALUES (?, ?, ?)",
            [(code, naam, "EL" if code == "GR" else code) for code, naam in LANDEN.items()],
        )
        conn.executemany(
            "INSERT INTO btwtarieven (btw_soort, percentage) VALUES (?, ?)", BTW_TARIEVEN.items()
        )
        conn.execute("COMMIT")
    finally:
        conn.close()


def add_standard_data(b: LocalBackend) -> None:
    """What a new administration starts with, so that client.yml.example works on it without any set-up.

    SnelStart creates a new administration with an omzetgroep per Dutch VAT rate and a verkoopsjabloon; here
    these are the omzetgroepen 1 hoog (21 %), 2 laag (9 %) and 3 geen (0 %), the templates ``orders.template``
    of client.yml.example names ("Webshop", prices incl. VAT) and its excl.-VAT twin ("Webshop excl"), both
    with the footer cost types 1 and 2, and the articles the example's cost, default and rounding settings
    name. Without them every order would fail, and koppel itself can create neither omzetgroepen nor templates.
    """
    hoog, _, nul = (b.add_omzetgroep(nummer, naam, soort) for nummer, naam, soort in STANDARD_OMZETGROEPEN)
    for naam, incl in STANDARD_SJABLONEN:
        b.add_sjabloon(naam, prijs_incl_btw=incl, kostensoort_1="Verzendkosten", kostensoort_2="Betaalkosten")
    for code, (omschrijving, prijs) in STANDARD_ARTIKELEN.items():
        # orders.rounding_article carries the cent that per-rate and per-line VAT rounding differ by; it must
        # carry no VAT itself, or booking it would change the VAT as well.
        groep = nul if code == "AFRONDING" else hoog
        b.create_artikel(NieuwArtikel(code, omschrijving, groep.id, Decimal(prijs)))


def add_sample_data(b: LocalBackend) -> None:
    """A small coffee webshop on top of the standard data: customers, articles, recipes, agreements, history."""
    groepen = {g.nummer: g for g in b.omzetgroepen()}
    hoog, laag, nul = groepen[1], groepen[2], groepen[3]
    sjablonen = {s.omschrijving: s for s in b.sjablonen()}
    webshop, excl = sjablonen["Webshop"], sjablonen["Webshop excl"]
    b.define_extra_veld("relatie", "Magento klant-id")
    b.define_extra_veld("relatie", "Debiteurnummer oud")
    b.define_extra_veld("artikel", "EAN")
    b.define_extra_veld("artikel", "Leverancierscode")

    def relatie(naam: str, adres: Adres, **fields: object) -> str:
        return b.create_relatie(NieuweRelatie(naam=naam, vestigingsadres=adres, **fields)).id  # type: ignore[arg-type]

    jansen = relatie(
        "Jansen Installatietechniek B.V.",
        Adres("T. Jansen", "Westblaak 12", "3012 KL", "Rotterdam", "NL"),
        telefoon="010-4123456",
        email="info@jansen-installatie.nl",
        factuur_email=EmailVersturen("facturen@jansen-installatie.nl", "boekhouding@jansen-installatie.nl"),
        btw_nummer="NL812345678B01",
        kvk_nummer="24123456",
        krediettermijn=30,
        extra_velden={"Magento klant-id": "1001"},
    )
    devries = relatie(
        "Bakkerij De Vries",
        Adres(None, "Vismarkt 3", "9712 CA", "Groningen", "NL"),
        email="bestellingen@bakkerijdevries.nl",
        kvk_nummer="02098765",
        extra_velden={"Debiteurnummer oud": "D-0042"},
    )
    relatie(
        "Müller Elektro GmbH",
        Adres("Frau K. Müller", "Hohenzollernring 50", "50672", "Köln", "DE"),
        email="einkauf@mueller-elektro.de",
        btw_nummer="DE123456789",
    )
    deboer = relatie(
        "P. de Boer",
        Adres(None, "Oudegracht 101", "3511 AZ", "Utrecht", "NL"),
        telefoon="06-12345678",
        email="p.deboer@example.nl",
        extra_velden={"Magento klant-id": "1002"},
    )
    relatie(
        "Papadopoulos Trading",
        Adres(None, "Ermou 20", "105 63", "Athene", "GR"),
        email="orders@papadopoulos.example",
        btw_nummer="EL094012345",
    )
    relatie(
        "Dupont SRL",
        Adres(None, "Rue Neuve 8", "1000", "Brussel", "BE"),
        factuur_email=EmailVersturen("compta@dupont.example", None),
        btw_nummer="BE0123456789",
    )
    groen = b.create_relatie(
        NieuweRelatie(
            naam="Hoveniersbedrijf Groen VOF",
            vestigingsadres=Adres(None, "Utrechtseweg 5", "3811 NA", "Amersfoort", "NL"),
            kvk_nummer="30123456",
        )
    )
    groen.aanmaning_email = EmailVersturen("groen@hovenier.example", "boekhouding@hovenier.example")
    groen.offerte_email = EmailVersturen("offertes@hovenier.example", None)
    b.update_relatie(groen)
    oud = b.create_relatie(
        NieuweRelatie(
            naam="Oude Klant BV",
            vestigingsadres=Adres(None, "Stationsplein 1", "1012 AB", "Amsterdam", "NL"),
            email="info@oudeklant.example",
        )
    )
    oud.nonactief = True
    b.update_relatie(oud)

    def artikel(code: str, oms: str, group: str, prijs: str, stock: str | None = None, **extra: str) -> str:
        new = NieuwArtikel(
            code, oms, group, Decimal(prijs), voorraad_controle=stock is not None, extra_velden=extra
        )
        made = b.create_artikel(new)
        if stock is not None:
            b.set_technische_voorraad(code, Decimal(stock))
        return made.id

    bonen = artikel("1001", "Koffiebonen Arabica 1 kg", laag.id, "18.95", "40", EAN="8712345000011")
    kopjes = artikel("1002", "Espressokopjes, set van 6", hoog.id, "24.95", "15", EAN="8712345000028")
    artikel(
        "1003", "Melkopschuimer RVS", hoog.id, "39.95", "8", EAN="8712345000035", Leverancierscode="MO-77"
    )
    machine = artikel("1004", "Koffiemachine Barista Pro", hoog.id, "449.00", "3", EAN="8712345000042")
    artikel("1006", "Thee Earl Grey 250 g", laag.id, "6.50", "0", EAN="8712345000066")
    bijdrage = artikel("VERWIJDERING", "Verwijderingsbijdrage klein huishoudelijk", hoog.id, "2.50")
    pakket = artikel("1005", "Cadeaupakket koffieproeverij", hoog.id, "34.95")
    artikel("EXPORT", "Levering buiten de EU (0 %)", nul.id, "0")
    b.set_recept(machine, [(bijdrage, Decimal("1"))], "always")
    b.set_recept(pakket, [(bonen, Decimal("1")), (kopjes, Decimal("1"))], "choice")
    old = b.get_artikel(artikel("0999", "Filterhouder (uit assortiment)", hoog.id, "12.00", "2"))
    assert old is not None
    old.is_non_actief = True
    b.update_artikel(old)

    b.add_prijsafspraak(PrijsAfspraak(jansen, kopjes, Decimal("1"), prijs=Decimal("19.95")))
    b.add_prijsafspraak(PrijsAfspraak(jansen, bonen, Decimal("10"), kortings_percentage=Decimal("10")))
    b.add_prijsafspraak(PrijsAfspraak(devries, bonen, Decimal("5"), prijs=Decimal("16.50")))

    # History: an invoiced order on the excl. template (template_use_last), a pakbon that holds stock. The
    # pakbon's betalingskenmerk is a till receipt number, not shaped like a Magento increment id, so no shop
    # order clashes with it under orders.unique_payment_reference.
    invoiced = b.create_verkooporder(
        NieuweVerkooporder(
            relatie_id=jansen, datum=dt.date(2026, 11, 2), sjabloon_id=excl.id, prijs_incl_btw=False,
            omschrijving="Bestelling telefonisch", betalingskenmerk=None,
            regels=[OrderRegel(kopjes, "", Decimal("4"), Decimal("19.95"))],
        )
    )  # fmt: skip
    b.set_proces_status(invoiced.id, "Factuur")
    pakbon = b.create_verkooporder(
        NieuweVerkooporder(
            relatie_id=deboer, datum=dt.date(2026, 11, 28), sjabloon_id=webshop.id, prijs_incl_btw=True,
            omschrijving="Afhaalorder winkel", betalingskenmerk=SAMPLE_BETALINGSKENMERK,
            regels=[OrderRegel(bonen, "", Decimal("2"), Decimal("18.95"))], kostensoort_1=Decimal("6.95"),
        )
    )  # fmt: skip
    b.set_proces_status(pakbon.id, "Pakbon")
