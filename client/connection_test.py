"""`koppel test-connection`: every part a profile needs, one line per check, with cause and fix on failure.

The order follows the path of a run: can we reach the agent, does it accept our signature, do our clocks agree,
which Magento is behind it; then can we open SnelStart, does the configured template exist and does its VAT mode
fit. Later checks still run after an earlier one failed when they do not depend on it, so one run of the command
shows everything that needs fixing.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from client.config import ClientConfig, ConfigError, Profile

SKEW_LIMIT = 300  # the agent refuses signatures further off than this
SKEW_WARN = 60


MARK_WIDTH = len("WARNING")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warning: bool = False  # passes, but the user should look at it
    skipped: bool = False  # could not be made (the detail says why)
    notes: list[str] = field(default_factory=list)  # warnings that come with a passing check, one line each

    def line(self) -> str:
        """The check's own line: its mark (OK, FAILED, WARNING, SKIPPED), name, detail and fix or advice."""
        if not self.ok:
            word = "FAILED"
        elif self.skipped:
            word = "SKIPPED"
        else:
            word = "WARNING" if self.warning else "OK"
        text = f"{word:<{MARK_WIDTH}} {self.name}: {self.detail}"
        if not self.ok and self.fix:
            text += f" — fix: {self.fix}"
        elif (self.warning or self.skipped) and self.fix:
            text += f" — advice: {self.fix}"
        return text

    def lines(self) -> list[str]:
        """The check's line, then a WARNING line of its own for each note."""
        return [self.line()] + [f"{'WARNING':<{MARK_WIDTH}} {self.name}: {note}" for note in self.notes]


Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class ShopPrices:
    """How the shop's catalogue prices are entered: incl. VAT (True), excl. (False) or unknown (None)."""

    incl: bool | None
    # True: Magento's own setting (tax/calculation/price_includes_tax, from the agent's diagnostics), so a
    # template that disagrees is an error; False: a guess from recent orders, worth a warning only.
    configured: bool = False


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_agent(profile: Profile, clock: Clock = _now) -> tuple[list[Check], ShopPrices]:
    """The agent checks, and how the shop's prices are entered (Magento's setting, else a guess)."""
    checks: list[Check] = []
    url = profile.agent.url
    database_down = False
    try:
        # A plain-http agent never answers the TLS handshake: give that the connect timeout, not the read one.
        response = requests.get(f"{url}/v1/health", timeout=(5, 15), allow_redirects=False)
    except requests.RequestException as exc:
        fix = "check agent.url, that the agent runs (koppel-agent serve) and that no firewall blocks it"
        if url.startswith("https://") and isinstance(exc, requests.exceptions.SSLError | requests.Timeout):
            # A plain-http agent answers a TLS handshake with garbage or not at all.
            fix = (
                f"the TLS handshake failed; if the agent speaks plain http, use "
                f"{'http://' + url.removeprefix('https://')} in agent.url (or put TLS in front of it)"
            )
        checks.append(Check("agent reachable", False, f"{url} does not answer ({_short(exc)})", fix))
        return checks + _not_checked(AFTER_REACH, "the agent does not answer"), ShopPrices(None)
    if 300 <= response.status_code < 400:
        target = response.headers.get("Location", "?")
        checks.append(
            Check(
                "agent reachable",
                False,
                f"{url} redirects to {target}",
                "put the final address in agent.url (koppel does not follow redirects)",
            )
        )
        return checks + _not_checked(AFTER_REACH, "agent.url does not lead to the agent"), ShopPrices(None)
    health = _json(response)
    if response.status_code == 200 and isinstance(health, dict) and health.get("status") == "ok":
        checks.append(Check("agent reachable", True, f"{url} (its database answers)"))
    elif response.status_code == 503:
        database_down = True
        checks.append(
            Check(
                "agent reachable",
                False,
                f"{url} runs, but cannot reach the Magento database",
                "check database in agent.yml and that MySQL/MariaDB runs (koppel-agent check)",
            )
        )
    else:
        checks.append(
            Check(
                "agent reachable",
                False,
                f"{url}/v1/health gave HTTP {response.status_code}, not a koppel agent's answer",
                "agent.url must point at the koppel agent, not at the web shop itself",
            )
        )
        return checks + _not_checked(AFTER_REACH, "agent.url does not lead to the agent"), ShopPrices(None)

    skew = _date_skew(response, clock)
    if database_down:
        # Every signed call would get the same 503: that says nothing about the key, so do not blame it.
        checks.append(_signature_unchecked())
        checks.append(_skew_check(skew))
        return checks + _not_checked(["Magento"], "the agent cannot reach its database"), ShopPrices(None)
    from client.agent_client import AgentClient, AgentError

    try:
        client = AgentClient.from_profile(profile)
    except ConfigError as exc:
        checks.append(Check("signature", False, str(exc), _secret_fix(profile)))
        checks.append(_skew_check(skew))
        return checks + _not_checked(["Magento"], "no signed call without the secret"), ShopPrices(None)
    except AgentError as exc:  # a malformed URL
        checks.append(Check("signature", False, str(exc), "correct agent.url"))
        checks.append(_skew_check(skew))
        return checks + _not_checked(["Magento"], "no signed call was possible"), ShopPrices(None)
    except Exception as exc:  # noqa: BLE001 - reported as this check, naming what it was
        detail = f"unexpected error ({type(exc).__name__}): {exc}"
        checks.append(Check("signature", False, detail, "run koppel --debug test-connection for the details"))
        checks.append(_skew_check(skew))
        return checks + _not_checked(["Magento"], "no signed call was possible"), ShopPrices(None)
    diagnostics: dict[str, Any] | None = None
    failure: Check | None = None  # the Magento check, when the agent could not answer diagnostics
    prices = ShopPrices(None)
    with client:
        try:
            status, data = client.request("GET", "/v1/diagnostics")
        except AgentError as exc:
            checks.append(Check("signature", False, str(exc), "check agent.url"))
            status, data = None, None
        if status == 200 and isinstance(data, dict):
            configured = (data.get("magento") or {}).get("price_includes_tax")
            if isinstance(configured, bool):
                prices = ShopPrices(configured, configured=True)
            else:  # an older agent, or one that may not read core_config_data
                prices = ShopPrices(price_entry(_recent_orders(client, clock)))
        accepted = status in (200, 403) or (
            status is not None and status >= 500 and _agent_error(data)[0] is not None
        )
        scope_checks = _scope_checks(client, profile) if accepted else []
    if status == 200 and isinstance(data, dict):
        diagnostics = data
        checks.append(
            Check("signature", True, f"key {profile.agent.key_id!r} accepted (signed /v1/diagnostics)")
        )
    elif status == 401:
        if skew is not None and abs(skew) <= SKEW_LIMIT:
            # The agent does not say why (that would help an attacker); with the clocks in step, only the key
            # itself is left.
            cause = "the clocks agree, so key_id or the secret differs from agent.yml"
            fix = (
                f"give agent.key_id and the secret exactly as a key in agent.yml ({profile.agent.key_id!r} is "
                "not one, or its secret differs); koppel-agent new-key makes a fresh pair"
            )
        else:
            cause = "wrong key_id or secret, or the clocks differ too much"
            fix = "key_id and secret must equal a key in agent.yml, and this PC's clock must be right"
        checks.append(
            Check("signature", False, f"the agent refuses key {profile.agent.key_id!r} (401): {cause}", fix)
        )
    elif status is not None and status >= 500:
        code, message = _agent_error(data)
        if code is not None:
            # The agent checks the signature before it opens the database: its own error means it accepted it.
            checks.append(
                Check("signature", True, f"key {profile.agent.key_id!r} accepted (signed /v1/diagnostics)")
            )
        else:
            checks.append(_signature_unchecked(status))
        failure = _diagnostics_failure(status, code, message)
    elif status == 403:
        checks.append(
            Check(
                "signature",
                False,
                f"key {profile.agent.key_id!r} may not read diagnostics (403)",
                "give the key the scopes orders:read, stock:write and diagnostics:read in agent.yml",
            )
        )
    elif status is not None:
        checks.append(
            Check("signature", False, f"unexpected answer HTTP {status}", "look at the agent's log")
        )

    checks += scope_checks
    checks.append(_skew_check(skew))
    if diagnostics is not None:
        checks.append(_magento_check(diagnostics))
    elif failure is not None:
        checks.append(failure)
    else:
        checks += _not_checked(["Magento"], "the agent did not answer the signed call (see 'signature')")
    return checks, prices


def exports_stock(profile: Profile) -> bool:
    """Whether the profile's schedule exports web stock (the task import_orders_and_export_stock, not paused)."""
    task = profile.tasks.import_orders_and_export_stock
    return task is not None and not task.paused


# The harmless read-only call that proves each scope a run needs (the agent's binding contract).
SCOPE_CALLS = (
    ("orders:read", "/v1/orders", {"limit": 1}),
    ("stock:write", "/v1/skus", {"limit": 1}),
)


def _scope_checks(client: Any, profile: Profile) -> list[Check]:
    """One check per scope a run needs, each made with a read-only call the scope guards.

    orders:read is always needed; stock:write only when the profile exports stock, so lacking it otherwise
    is a warning."""
    from client.agent_client import AgentError

    key = profile.agent.key_id
    checks: list[Check] = []
    for scope, path, params in SCOPE_CALLS:
        name = f"scope {scope}"
        needed = scope == "orders:read" or exports_stock(profile)
        try:
            status, data = client.request("GET", path, params)
        except AgentError as exc:
            checks.append(Check(name, True, f"not checked: {exc}", skipped=True))
            continue
        if status == 403:
            detail = f"the key {key!r} lacks scope {scope} in agent.yml (GET {path} gave HTTP 403)"
            fix = f"add {scope} to the scopes of key {key!r} in agent.yml and restart the agent"
            if needed:
                checks.append(Check(name, False, detail, fix))
            else:
                checks.append(
                    Check(
                        name,
                        True,
                        detail + "; this profile does not export stock, so it only matters once you add the "
                        "task import_orders_and_export_stock",
                        fix,
                        warning=True,
                    )
                )
        elif 200 <= status < 300:
            checks.append(Check(name, True, f"key {key!r} may use it (GET {path})"))
        elif status >= 500 and _agent_error(data)[0] is not None:
            # The agent checks the scope before it opens the database: its own error means the scope passed.
            checks.append(
                Check(name, True, f"key {key!r} may use it (GET {path} then failed, see 'Magento')")
            )
        else:
            code, message = _agent_error(data)
            said = f": {message}" if message else ""
            checks.append(
                Check(name, True, f"not checked: GET {path} gave HTTP {status}{said}", skipped=True)
            )
    return checks


# The agent's checks that need it to answer first; each still gets its line, saying it was not checked.
AFTER_REACH = ("signature", "clock", "Magento")


def _not_checked(names: Iterable[str], why: str) -> list[Check]:
    """A line for each check that could not be made, so the output always names every check."""
    return [Check(name, True, why, skipped=True) for name in names]


def _signature_unchecked(status: int | None = None) -> Check:
    if status is not None:  # not the agent's own error: a proxy or server in front of it answered
        return Check(
            "signature",
            True,
            f"/v1/diagnostics gave HTTP {status} without the agent's error, so the key could not be checked",
            "see 'Magento'",
            skipped=True,
        )
    return Check(
        "signature",
        True,
        "the agent's Magento database is unreachable (HTTP 503), so it cannot answer signed calls",
        "fix the database (see 'agent reachable') and run test-connection again",
        skipped=True,
    )


def _agent_error(data: Any) -> tuple[str | None, str | None]:
    """(code, message) of the agent's JSON error answer; (None, None) when the answer is not one."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return None, None
    message = error.get("message")
    return error["code"], message if isinstance(message, str) else None


def _diagnostics_failure(status: int, code: str | None, message: str | None) -> Check:
    """The Magento check when /v1/diagnostics failed with a 5xx: always FAILED, naming the agent's reason."""
    from client.agent_client import SETUP_CODES

    said = f": {message}" if message else ""
    if code in SETUP_CODES:
        return Check(
            "Magento",
            False,
            f"the agent finds no Magento in its database (HTTP {status}{said})",
            "correct the magento settings in agent.yml (table_prefix, version), restart the agent and run "
            "test-connection again; koppel-agent check on the agent's server shows what it finds",
        )
    if code == "database_unavailable":
        return Check(
            "Magento",
            False,
            f"the agent could not reach its Magento database for /v1/diagnostics (HTTP {status}{said})",
            "if it lasts, run koppel-agent check on the agent's server: it names the cause (a wrong database "
            "password, MySQL/MariaDB not running); then run test-connection again",
        )
    return Check(
        "Magento",
        False,
        f"the agent could not answer /v1/diagnostics (HTTP {status}{said})",
        "look at the agent's log (koppel-agent check on its server shows setup problems) and run "
        "test-connection again",
    )


def _secret_fix(profile: Profile) -> str:
    """How to give the key's secret, naming what exactly is missing."""
    agent = profile.agent
    if agent.secret_env is not None:
        return (
            f"set the environment variable {agent.secret_env} to the key's secret (Windows: setx "
            f"{agent.secret_env} <secret>, then open a new window), or use agent.secret_file"
        )
    if agent.secret_file is not None:
        return f"put the key's secret (the same as in agent.yml) in {agent.secret_file}"
    return "give agent.secret_file (or secret_env) with the key's secret from agent.yml"


def _recent_orders(client: Any, clock: Clock) -> list[dict[str, Any]]:
    """Up to 20 orders of the last 90 days, to see how the shop's prices are entered; [] when unavailable."""
    since = (clock() - dt.timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        status, data = client.request("GET", "/v1/orders", {"created_from": since, "limit": 20})
    except Exception:  # noqa: BLE001 - only a hint for the template check; never a failure of its own
        return []
    if status != 200 or not isinstance(data, dict):
        return []
    return [o for o in data.get("orders") or [] if isinstance(o, dict)]


def _whole_cents(value: Any) -> bool:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return False
    return amount == amount.quantize(Decimal("0.01"))


def price_entry(orders: list[dict[str, Any]]) -> bool | None:
    """True when the shop's catalogue prices look entered incl. VAT, False excl., None when unclear.

    Magento stores both amounts to four decimals; the side the shop owner typed is in whole cents while the
    computed side usually is not (18.95 incl. → 17.3853 excl.). The lines of recent orders vote.
    """
    incl = excl = 0
    for order in orders:
        for line in order.get("lines") or []:
            a, b = _whole_cents(line.get("unit_price_incl_tax")), _whole_cents(line.get("unit_price"))
            if a and not b:
                incl += 1
            elif b and not a:
                excl += 1
    if incl == excl:
        return None
    return incl > excl


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
        return Check("clock", True, "the agent sent no Date header; cannot compare clocks")
    # The Date header has whole seconds and the request took a moment: one second either way is noise.
    text = f"the agent's clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} this PC"
    if abs(skew) <= 1:
        return Check("clock", True, "in step with the agent (within 1 s)")
    if abs(skew) > SKEW_LIMIT:
        return Check(
            "clock",
            False,
            text,
            f"synchronise both clocks (NTP / Windows time service); beyond {SKEW_LIMIT} s the agent refuses "
            "every request",
        )
    note = f" (close to the {SKEW_LIMIT} s the agent allows)" if abs(skew) > SKEW_WARN else ""
    return Check("clock", True, text + note)


def _magento_check(diagnostics: dict[str, Any]) -> Check:
    magento = diagnostics.get("magento") or {}
    database = diagnostics.get("database") or {}
    version = magento.get("version")
    if version not in (1, 2):
        return Check(
            "Magento", False, "the agent finds no Magento tables", "check magento.table_prefix in agent.yml"
        )
    parts = [f"Magento {version}"]
    if magento.get("table_prefix"):
        parts.append(f"prefix {magento['table_prefix']!r}")
    if magento.get("stock_mode"):
        parts.append(f"stock {magento['stock_mode']}")
    includes = magento.get("price_includes_tax")
    if isinstance(includes, bool):
        parts.append(f"catalogue prices {'incl.' if includes else 'excl.'} VAT")
    orders = diagnostics.get("orders") or {}
    if orders.get("count") is not None:
        parts.append(f"{orders['count']} orders")
    offset = database.get("clock_offset_seconds")
    if isinstance(offset, int | float) and abs(offset) > SKEW_WARN:
        parts.append(f"database clock {offset:+.0f} s off the agent's")
    warnings = [str(w) for w in diagnostics.get("warnings") or []]
    return Check("Magento", True, ", ".join(parts), notes=warnings)


def check_snelstart(
    config: ClientConfig, profile: Profile, prices: ShopPrices | bool | None = None
) -> list[Check]:
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
                _open_fix(settings.backend, exc),
            )
        )
        return checks
    try:
        try:
            name = backend.administration_name()
            templates = backend.sjablonen()
        except Exception as exc:  # noqa: BLE001
            checks.append(
                Check(f"SnelStart ({settings.backend})", False, str(exc), _open_fix(settings.backend, exc))
            )
            return checks
        checks.append(
            Check(
                f"SnelStart ({settings.backend})",
                True,
                f"administration {name!r}, {len(templates)} templates",
            )
        )
        checks.append(_template_check(profile, templates, prices))
    finally:
        backend.close()
    return checks


def _open_fix(backend: str, exc: BaseException | None = None) -> str | None:
    """What to check when the backend does not open; None when the error's own message says it."""
    from client.snelstart.b2b_http import LoginUnavailable
    from client.snelstart.secrets import SecretError

    if isinstance(exc, LoginUnavailable | SecretError):
        return None  # a network problem is not the keys' fault, and a secret's message names its setting
    return {
        "local": "check snelstart.path, or create the administration with `koppel snelstart init --local PATH`",
        "b2b": "check the koppelsleutel (client key) and subscription key of the SnelStart B2B API",
        "desktop": "check server/administration and that the SnelStart Gateway is installed (Windows only)",
    }.get(backend, "check the snelstart settings")


def _template_check(profile: Profile, templates: list[Any], prices: ShopPrices | bool | None = None) -> Check:
    """Does the template exist, and does its VAT mode fit the shop? A bare bool or None is a guess."""
    if not isinstance(prices, ShopPrices):
        prices = ShopPrices(prices)
    wanted = profile.orders.template
    names = ", ".join(t.omschrijving for t in templates) or "none"
    if wanted is None:
        return Check(
            "template",
            True,
            "orders.template is not set; SnelStart uses its default template",
        )
    found = [t for t in templates if wanted in (t.id, t.omschrijving)]
    if not found:
        found = [t for t in templates if t.omschrijving.casefold() == wanted.casefold()]
    if not found:
        return Check(
            "template",
            False,
            f"orders.template {wanted!r} does not exist in SnelStart (there are: {names})",
            "put the name of an existing verkoopsjabloon in orders.template",
        )
    template = found[0]
    mode = "including" if template.prijs_incl_btw else "excluding"
    if getattr(template, "nonactief", False):
        return Check("template", False, f"{template.omschrijving!r} is inactive", "activate it in SnelStart")
    detail = (
        f"{template.omschrijving!r}, prices {mode} VAT (koppel takes Magento's amounts {mode} VAT to match)"
    )
    if prices.incl is not None and prices.incl != template.prijs_incl_btw and prices.configured:
        shop = "including" if prices.incl else "excluding"
        # SPEC: a disagreeing VAT mode is warned about, not refused; the rules convert (with a rounding line).
        return Check(
            "template",
            True,
            f"{template.omschrijving!r} has prices {mode} VAT, but Magento's catalogue prices are entered {shop} "
            f"VAT (tax/calculation/price_includes_tax = {int(prices.incl)}); amounts converted between the two "
            "can differ from the shop's by a cent per line",
            f"put a verkoopsjabloon with prices {shop} VAT in orders.template, or, if the shop's setting is "
            "wrong, correct Magento's Stores > Configuration > Sales > Tax > Calculation Settings > Catalog Prices",
            warning=True,
        )
    if prices.incl is not None and prices.incl != template.prijs_incl_btw:
        shop = "including" if prices.incl else "excluding"
        return Check(
            "template",
            True,
            f"{detail}; but the shop's recent orders look priced {shop} VAT, so converted amounts may differ "
            "from the shop's by a cent",
            f"use a verkoopsjabloon with prices {shop} VAT in orders.template",
            warning=True,
        )
    if prices.configured:
        detail += "; Magento's catalogue prices are entered the same way"
    return Check("template", True, detail)


def run_checks(config: ClientConfig, profile: Profile, clock: Clock = _now) -> list[Check]:
    agent_checks, prices = check_agent(profile, clock)
    return agent_checks + check_snelstart(config, profile, prices)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _short(exc: Exception) -> str:
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("getaddrinfo failed", "host name not found"),
        ("timed out", "timed out"),
        ("CERTIFICATE_VERIFY_FAILED", "its TLS certificate is not trusted"),
    ):
        if needle in text:
            return reason
    return text[:200]
