"""`koppel test-connection`: every part a profile needs, one line per check, with cause and fix on failure.

The order follows the path of a run: can we reach the agent, does it accept our signature, do our clocks agree,
which Magento is behind it; then can we open SnelStart, does the configured template exist and does its VAT mode
fit. Later checks still run after an earlier one failed when they do not depend on it, so one run of the command
shows everything that needs fixing.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from client.config import ClientConfig, ConfigError, Profile

SKEW_LIMIT = 300  # the agent refuses signatures further off than this
SKEW_WARN = 60


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def line(self) -> str:
        word = "OK  " if self.ok else "FOUT"
        text = f"{word} {self.name}: {self.detail}"
        if not self.ok and self.fix:
            text += f" — oplossing: {self.fix}"
        return text


Clock = Callable[[], dt.datetime]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_agent(profile: Profile, clock: Clock = _now) -> list[Check]:
    checks: list[Check] = []
    url = profile.agent.url
    try:
        response = requests.get(f"{url}/v1/health", timeout=15, allow_redirects=False)
    except requests.RequestException as exc:
        checks.append(
            Check(
                "agent bereikbaar",
                False,
                f"{url} antwoordt niet ({type(exc).__name__}: {_short(exc)})",
                "controleer agent.url en of de agent draait (koppel-agent serve) en de firewall hem doorlaat",
            )
        )
        return checks
    if 300 <= response.status_code < 400:
        target = response.headers.get("Location", "?")
        checks.append(
            Check(
                "agent bereikbaar",
                False,
                f"{url} stuurt door naar {target}",
                "zet het uiteindelijke adres in agent.url (koppel volgt geen doorverwijzingen)",
            )
        )
        return checks
    health = _json(response)
    if response.status_code == 200 and isinstance(health, dict) and health.get("status") == "ok":
        checks.append(Check("agent bereikbaar", True, f"{url} (database bereikbaar)"))
    elif response.status_code == 503:
        checks.append(
            Check(
                "agent bereikbaar",
                False,
                f"{url} draait, maar bereikt de Magento-database niet",
                "controleer database in agent.yml en of MySQL/MariaDB draait (koppel-agent check)",
            )
        )
    else:
        checks.append(
            Check(
                "agent bereikbaar",
                False,
                f"{url}/v1/health gaf HTTP {response.status_code} zonder koppel-antwoord",
                "agent.url moet naar de koppel-agent wijzen, niet naar de webwinkel zelf",
            )
        )
        return checks

    skew = _date_skew(response, clock)
    try:
        from client.agent_client import AgentClient, AgentError

        client = AgentClient.from_profile(profile)
    except ConfigError as exc:
        checks.append(Check("handtekening", False, str(exc), "vul het geheim van de agent-sleutel in client.yml in"))
        return checks
    except Exception as exc:  # noqa: BLE001 - AgentError for a malformed URL
        checks.append(Check("handtekening", False, str(exc), "corrigeer agent.url"))
        return checks
    diagnostics: dict[str, Any] | None = None
    with client:
        try:
            status, data = client.request("GET", "/v1/diagnostics")
        except AgentError as exc:
            checks.append(Check("handtekening", False, str(exc), "controleer agent.url"))
            status, data = None, None
    if status == 200 and isinstance(data, dict):
        diagnostics = data
        checks.append(Check("handtekening", True, f"sleutel {profile.agent.key_id!r} geaccepteerd"))
    elif status == 401:
        checks.append(
            Check(
                "handtekening",
                False,
                f"de agent weigert sleutel {profile.agent.key_id!r} (401)",
                "key_id en geheim moeten gelijk zijn aan een sleutel in agent.yml; klopt de klok van deze pc?",
            )
        )
    elif status == 403:
        checks.append(
            Check(
                "handtekening",
                False,
                f"sleutel {profile.agent.key_id!r} mag geen diagnose opvragen (403)",
                "geef de sleutel in agent.yml de scopes orders:read, stock:write en diagnostics:read",
            )
        )
    elif status is not None:
        checks.append(
            Check("handtekening", False, f"onverwacht antwoord HTTP {status}", "bekijk het log van de agent")
        )

    checks.append(_skew_check(skew))
    if diagnostics is not None:
        checks.append(_magento_check(diagnostics))
    return checks


def _date_skew(response: requests.Response, clock: Clock) -> float | None:
    header = response.headers.get("Date")
    if not header:
        return None
    try:
        theirs = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if theirs.tzinfo is None:
        theirs = theirs.replace(tzinfo=dt.UTC)
    return (theirs - clock()).total_seconds()


def _skew_check(skew: float | None) -> Check:
    if skew is None:
        return Check("klok", True, "de agent gaf geen Date-kop mee; niet te controleren")
    # The Date header has whole seconds and the request took a moment: one second either way is noise.
    text = f"de klok van de agent loopt {abs(skew):.0f} s {'voor' if skew > 0 else 'achter'} op deze pc"
    if abs(skew) <= 1:
        return Check("klok", True, "gelijk met de agent")
    if abs(skew) > SKEW_LIMIT:
        return Check(
            "klok",
            False,
            text,
            f"zet de klokken gelijk (NTP / Windows tijdsynchronisatie); meer dan {SKEW_LIMIT} s verschil "
            "laat de agent elke aanvraag weigeren",
        )
    note = " (let op: ruim binnen de grens van 300 s houden)" if abs(skew) > SKEW_WARN else ""
    return Check("klok", True, text + note)


def _magento_check(diagnostics: dict[str, Any]) -> Check:
    magento = diagnostics.get("magento") or {}
    database = diagnostics.get("database") or {}
    version = magento.get("version")
    if version not in (1, 2):
        return Check(
            "Magento", False, "de agent herkent geen Magento-tabellen", "controleer magento.table_prefix in agent.yml"
        )
    parts = [f"Magento {version}"]
    if magento.get("table_prefix"):
        parts.append(f"prefix {magento['table_prefix']!r}")
    if magento.get("stock_mode"):
        parts.append(f"voorraad {magento['stock_mode']}")
    orders = diagnostics.get("orders") or {}
    if orders.get("count") is not None:
        parts.append(f"{orders['count']} orders")
    offset = database.get("clock_offset_seconds")
    if isinstance(offset, int | float) and abs(offset) > SKEW_WARN:
        parts.append(f"databaseklok wijkt {offset:+.0f} s af van de agent")
    warnings = diagnostics.get("warnings") or []
    if warnings:
        parts.append("waarschuwingen: " + "; ".join(str(w) for w in warnings))
    return Check("Magento", True, ", ".join(parts))


def check_snelstart(config: ClientConfig, profile: Profile) -> list[Check]:
    checks: list[Check] = []
    settings = profile.snelstart
    try:
        from client.snelstart.factory import open_backend

        backend = open_backend(settings, config.path.parent if config.path else None)
    except Exception as exc:  # noqa: BLE001 - any failure to open is reported as this check
        checks.append(
            Check(
                f"SnelStart ({settings.backend})",
                False,
                str(exc) or type(exc).__name__,
                _open_fix(settings.backend),
            )
        )
        return checks
    try:
        try:
            name = backend.administration_name()
            templates = backend.sjablonen()
        except Exception as exc:  # noqa: BLE001
            checks.append(Check(f"SnelStart ({settings.backend})", False, str(exc), _open_fix(settings.backend)))
            return checks
        checks.append(
            Check(f"SnelStart ({settings.backend})", True, f"administratie {name!r}, {len(templates)} verkoopsjablonen")
        )
        checks.append(_template_check(profile, templates))
    finally:
        backend.close()
    return checks


def _open_fix(backend: str) -> str:
    return {
        "local": "controleer snelstart.path of maak de administratie aan met `koppel snelstart init --local PAD`",
        "b2b": "controleer de koppelsleutel en subscription key van de SnelStart B2B API",
        "desktop": "controleer server/administratie en dat de SnelStart Gateway geïnstalleerd is (alleen Windows)",
    }.get(backend, "controleer de snelstart-instellingen")


def _template_check(profile: Profile, templates: list[Any]) -> Check:
    wanted = profile.orders.template
    names = ", ".join(t.omschrijving for t in templates) or "geen"
    if wanted is None:
        return Check(
            "verkoopsjabloon",
            True,
            "orders.template niet ingesteld; SnelStart kiest zijn standaardsjabloon",
        )
    found = [t for t in templates if wanted in (t.id, t.omschrijving)]
    if not found:
        found = [t for t in templates if t.omschrijving.casefold() == wanted.casefold()]
    if not found:
        return Check(
            "verkoopsjabloon",
            False,
            f"orders.template {wanted!r} bestaat niet in SnelStart (wel: {names})",
            "zet de naam van een bestaand verkoopsjabloon in orders.template",
        )
    template = found[0]
    mode = "inclusief" if template.prijs_incl_btw else "exclusief"
    if getattr(template, "nonactief", False):
        return Check("verkoopsjabloon", False, f"{template.omschrijving!r} is non-actief", "activeer het in SnelStart")
    return Check(
        "verkoopsjabloon",
        True,
        f"{template.omschrijving!r}, prijzen {mode} btw (koppel neemt de Magento-bedragen {mode} btw over)",
    )


def run_checks(config: ClientConfig, profile: Profile, clock: Clock = _now) -> list[Check]:
    return check_agent(profile, clock) + check_snelstart(config, profile)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _short(exc: Exception) -> str:
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "verbinding geweigerd"),
        ("Name or service not known", "hostnaam onbekend"),
        ("getaddrinfo failed", "hostnaam onbekend"),
        ("timed out", "time-out"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS-certificaat niet vertrouwd"),
    ):
        if needle in text:
            return reason
    return text[:200]
