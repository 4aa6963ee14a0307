"""``client.yml``: finding it, reading it, validating every key (names per SPEC.md).

Validation happens once, at load, with pydantic; an error names the key path *and* the line in the file, taken
from PyYAML's node marks, because a bookkeeper edits this file by hand and a typo must point at itself.
Unknown keys are refused for the same reason. Times written in the file are local times (``timezone``) and are
turned into aware UTC datetimes here; everything inside koppel is UTC.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

CONFIG_ENV = "KOPPEL_CONFIG"
CONFIG_NAME = "client.yml"
DEFAULT_TIMEZONE = "Europe/Amsterdam"


class ConfigError(Exception):
    """A configuration problem; the message names the file, the line and the key."""


# -- helpers used by the validators -------------------------------------------------------------------------

_INTERVAL_RE = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_interval(value: Any) -> dt.timedelta:
    """``15m``, ``1h``, ``1d``, ``1h30m``, ``90s`` → timedelta (at least one minute)."""
    if isinstance(value, dt.timedelta):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"an interval like 15m, 1h or 1d is needed, not {value!r}")
    match = _INTERVAL_RE.match(value.lower())
    if not match or not any(match.groups()):
        raise ValueError(f"{value!r} is not an interval; write it like 15m, 1h, 1d or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    interval = dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if interval < dt.timedelta(minutes=1):
        raise ValueError(f"interval {value!r} is shorter than one minute")
    return interval


def to_utc(value: Any, zone: ZoneInfo) -> dt.datetime | None:
    """A moment written in the file (local time unless it carries an offset) → aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time())
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(f"{value!r} is not a date and time; write it like 2026-01-01 00:00") from None
    else:
        raise ValueError(f"{value!r} is not a date and time; write it like 2026-01-01 00:00")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC)


def _zone(info: ValidationInfo) -> ZoneInfo:
    context = info.context or {}
    return context.get("zone") or ZoneInfo(DEFAULT_TIMEZONE)


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    return context.get("base_dir") or Path.cwd()


def _resolve(path: Path | None, info: ValidationInfo) -> Path | None:
    if path is None:
        return None
    path = Path(os.path.expanduser(str(path)))
    return path if path.is_absolute() else (_base_dir(info) / path).resolve()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# -- agent and magento --------------------------------------------------------------------------------------


# The agent refuses a key whose secret is shorter (agent.yml's rule); a client with a shorter one can never sign.
MIN_SECRET_LENGTH = 32


def _check_secret_length(value: str, where: str) -> None:
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{where}: the agent secret has {len(value)} characters; the agent requires at least "
            f"{MIN_SECRET_LENGTH} (use the same secret as the key in agent.yml)"
        )


class AgentSettings(_Strict):
    url: str
    key_id: str = Field(min_length=1)
    secret: str | None = None
    secret_file: Path | None = None
    secret_env: str | None = None
    timeout_seconds: float = Field(default=60, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// address")
        return value.rstrip("/")

    @field_validator("secret_file")
    @classmethod
    def _secret_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolve(value, info)

    @field_validator("secret")
    @classmethod
    def _secret_length(cls, value: str | None) -> str | None:
        # Written in client.yml, so refused at load; a file or variable is read (and checked) when needed.
        if value is not None and len(value.strip()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"the secret has {len(value.strip())} characters; the agent requires at least {MIN_SECRET_LENGTH}"
            )
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> AgentSettings:
        given = [n for n in ("secret", "secret_file", "secret_env") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of secret, secret_file, secret_env (found {', '.join(given)})")
        return self

    def secret_value(self, setting: str = "agent") -> str:
        """The shared secret, read now (so a missing environment variable only hurts when it is needed)."""
        if self.secret is not None:
            value = self.secret
        elif self.secret_file is not None:
            where = f"{setting}.secret_file"
            if self.secret_file.is_dir():
                raise ConfigError(
                    f"{where}: {self.secret_file} is a folder; give the file that holds the secret"
                )
            try:
                data = self.secret_file.read_bytes()
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read {self.secret_file}: {exc.strerror or exc}") from None
            value = decode_text(data, f"{where}: {self.secret_file}").strip()
        elif self.secret_env is not None:
            value = os.environ.get(self.secret_env, "").strip()
            if not value:
                raise ConfigError(
                    f"{setting}.secret_env: the environment variable {self.secret_env} is not set or empty"
                )
        else:
            raise ConfigError(f"{setting}: set one of secret, secret_file or secret_env")
        if not value:
            raise ConfigError(f"{setting}: the agent secret is empty")
        _check_secret_length(value, setting)
        return value


class MagentoSettings(_Strict):
    import_from: dt.datetime | None = None
    store: str | None = None

    @field_validator("import_from", mode="before")
    @classmethod
    def _import_from(cls, value: Any, info: ValidationInfo) -> dt.datetime | None:
        return to_utc(value, _zone(info))


# -- snelstart ------------------------------------------------------------------------------------------------


class SnelStartSettings(_Strict):
    """Connection settings. Flat, as in SPEC.md: the keys of the chosen backend are used, the rest ignored."""

    backend: Literal["local", "b2b", "desktop"] = "local"
    # local
    path: Path | None = None
    # b2b
    client_key: str | None = None
    client_key_env: str | None = None
    client_key_file: Path | None = None
    client_key_keyring: str | None = None
    subscription_key: str | None = None
    subscription_key_env: str | None = None
    subscription_key_file: Path | None = None
    subscription_key_keyring: str | None = None
    api_url: str = "https://b2bapi.snelstart.nl/v2"
    auth_url: str = "https://auth.snelstart.nl/b2b/token"
    # The development tier (100 calls a minute) is the safe default: going over a tier's limits costs 429s.
    tier: Literal["development", "production"] = "development"
    # desktop
    kind: Literal["sql", "mdb", "lokaal"] | None = None
    server: str | None = None
    administration: str | None = None
    sql_user: str | None = None
    sql_password: str | None = None
    sql_password_env: str | None = None
    folder: Path | None = None
    user: str = "Beheerder"
    password: str | None = None
    password_env: str | None = None

    @field_validator("path", "client_key_file", "subscription_key_file", "folder")
    @classmethod
    def _paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        resolved = _resolve(value, info)
        local = info.data.get("backend", "local") == "local"
        if info.field_name == "path" and local and resolved is not None and resolved.is_dir():
            # Caught here: opening it would say "does not exist" and `snelstart init` would refuse it.
            raise ValueError(
                f"{resolved} is a folder; give the administration file, e.g. {resolved / 'administratie.sqlite'}"
            )
        return resolved

    @model_validator(mode="after")
    def _backend_needs(self) -> SnelStartSettings:
        if self.backend == "local" and self.path is None:
            raise ValueError(
                "backend local needs path (the administration file, e.g. ./administratie.sqlite)"
            )
        if self.backend == "desktop" and self.kind is None:
            raise ValueError("backend desktop needs kind (sql, mdb or lokaal)")
        return self


# -- orders, articles, customers ----------------------------------------------------------------------------


class CostSetting(_Strict):
    """Where a Magento amount without article goes: an order line on an article, or footer cost type 1/2."""

    line: str | None = None
    cost_type: Literal[1, 2] | None = None

    @field_validator("line", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @model_validator(mode="after")
    def _exactly_one(self) -> CostSetting:
        if (self.line is None) == (self.cost_type is None):
            raise ValueError("give either {line: <artikelcode>} or {cost_type: 1} / {cost_type: 2}")
        if self.line is not None and not self.line.strip():
            raise ValueError("line needs an artikelcode")
        return self

    def describe(self) -> str:
        return f"line {self.line}" if self.line is not None else f"cost type {self.cost_type}"


# The order states of Magento 1 and 2 (sales_order.state); a status is a shop's own name and is not used here.
MAGENTO_ORDER_STATES = (
    "new",
    "pending_payment",
    "payment_review",
    "processing",
    "complete",
    "closed",
    "canceled",
    "holded",
)


def _order_state(value: str) -> str:
    # A misspelt state would match no order ever, so every order would be ignored or never deferred, silently.
    if value in MAGENTO_ORDER_STATES:
        return value
    nearest = difflib.get_close_matches(value.lower(), MAGENTO_ORDER_STATES, n=1, cutoff=0.5)
    hint = f"did you mean {nearest[0]}? " if nearest else ""
    raise ValueError(
        f"{value!r} is not a Magento order state; {hint}(the states are {', '.join(MAGENTO_ORDER_STATES)})"
    )


MagentoState = Annotated[str, AfterValidator(_order_state)]


def _code_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class OrdersSettings(_Strict):
    template: str | None = None
    template_use_last: bool = False
    unique_payment_reference: bool = True
    description: Literal["auto", "empty", "profile", "order_number"] = "order_number"
    addresses: Literal["from_order", "from_customer"] = "from_order"
    lines: Literal["full", "code_and_quantity", "description_from_snelstart"] = "full"
    recipes: Literal["never", "always", "choice_or_always"] = "never"
    shipping_costs: CostSetting | None = None
    discount: CostSetting | None = None
    payment_costs: CostSetting | None = None
    # Magento discounts: lowered line prices (``on_lines``) or one discount line/cost (``separate``, the manual's way).
    discount_mode: Literal["separate", "on_lines"] = "separate"
    # Article for the cent that per-line VAT rounding (Magento) and per-rate rounding (SnelStart) can differ by.
    rounding_article: str | None = None
    default_article: str | None = None
    import_states: list[MagentoState] | None = None
    defer_states: list[MagentoState] = Field(default_factory=lambda: ["pending_payment", "payment_review"])
    defer_days: int = Field(default=14, ge=0)

    @field_validator("template", "default_article", "rounding_article", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _code_text(value)


class ArticlesSettings(_Strict):
    code_field: str = "artikelcode"
    # The omzetgroep (number or name) of new articles, or one per VAT rate: {21: 1, 9: 2, 0: 3}. An order to
    # the Netherlands, or abroad at a Dutch rate above 0 %, places a new article by Magento's rate; one abroad at
    # 0 % or a foreign (OSS) rate by this setting.
    revenue_group: int | str | dict[Decimal, int | str] | None = None
    processing: Literal["add", "add_and_update", "manual"] = "add"

    @field_validator("revenue_group")
    @classmethod
    def _groups(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if not value:
                raise ValueError("give an omzetgroep, or one per VAT rate like {21: 1, 9: 2, 0: 3}")
            wrong = [f"{rate}" for rate in value if not 0 <= rate <= 100]
            if wrong:
                raise ValueError(f"VAT rates lie between 0 and 100, not {', '.join(wrong)}")
        return value

    @field_validator("code_field")
    @classmethod
    def _field(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("code_field needs artikelcode or the name of an extra field")
        return value.strip()


MATCHING_MODES = (
    "customer_code",
    "email",
    "code_or_email",
    "email_and_postcode",
    "code_or_email_and_postcode",
    "smart",
)


class CustomersSettings(_Strict):
    matching: Literal[
        "customer_code", "email", "code_or_email", "email_and_postcode", "code_or_email_and_postcode", "smart"
    ] = "smart"
    processing: Literal["add", "add_and_update", "manual"] = "add"
    default_code: int | None = None
    payment_term_days: int | None = Field(default=None, ge=0, le=999)


# -- tasks ---------------------------------------------------------------------------------------------------


class TaskSettings(_Strict):
    interval: dt.timedelta
    next_run: dt.datetime | None = None
    paused: bool = False

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> dt.timedelta:
        return parse_interval(value)

    @field_validator("next_run", mode="before")
    @classmethod
    def _next_run(cls, value: Any, info: ValidationInfo) -> dt.datetime | None:
        return to_utc(value, _zone(info))


TASK_NAMES = ("import_orders", "import_orders_and_export_stock")


class TasksSettings(_Strict):
    import_orders: TaskSettings | None = None
    import_orders_and_export_stock: TaskSettings | None = None

    def items(self) -> list[tuple[str, TaskSettings]]:
        return [(n, t) for n in TASK_NAMES if (t := getattr(self, n)) is not None]


# -- profile and file ----------------------------------------------------------------------------------------


class Profile(_Strict):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    paused: bool = False
    agent: AgentSettings
    magento: MagentoSettings = Field(default_factory=MagentoSettings)
    snelstart: SnelStartSettings
    orders: OrdersSettings = Field(default_factory=OrdersSettings)
    articles: ArticlesSettings = Field(default_factory=ArticlesSettings)
    customers: CustomersSettings = Field(default_factory=CustomersSettings)
    tasks: TasksSettings = Field(default_factory=TasksSettings)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", value):
            raise ValueError(f"{value!r}: a profile name holds letters, digits, '_', '-' and '.' only")
        return value

    @model_validator(mode="after")
    def _b2b_has_no_recipe_placement(self) -> Profile:
        # The B2B API shows an article's recipe but not its placement ("altijd plaatsen" / "keuze"), so
        # expanding "always" recipes could never be told apart from "choice" ones.
        if self.snelstart.backend == "b2b" and self.orders.recipes != "never":
            raise ValueError(
                f"orders.recipes: {self.orders.recipes} is not available through the SnelStart B2B API (it does "
                "not tell whether a recipe is placed always or by choice); use recipes: never"
            )
        return self

    @model_validator(mode="after")
    def _b2b_has_no_cost_types(self) -> Profile:
        # The B2B API has no field for the footer cost types, so such a setting could never be honoured.
        if self.snelstart.backend == "b2b":
            for key in ("shipping_costs", "discount", "payment_costs"):
                setting: CostSetting | None = getattr(self.orders, key)
                if setting is not None and setting.cost_type is not None:
                    raise ValueError(
                        f"orders.{key}: cost_type is not available through the SnelStart B2B API; "
                        f"use a cost article line instead, e.g. {{line: {key.split('_')[0].upper()}}}"
                    )
        return self

    @property
    def label(self) -> str:
        """The profile description, or "Magento" (what the `profile` order description shows)."""
        return self.description or "Magento"


class ClientConfig(_Strict):
    timezone: str = DEFAULT_TIMEZONE
    state: Path = Path("koppel-state.sqlite")
    paused: bool = False
    profiles: list[Profile] = Field(min_length=1)
    _path: Path | None = PrivateAttr(default=None)  # the file it came from; not a key of the file

    @property
    def path(self) -> Path | None:
        return self._path

    @field_validator("state")
    @classmethod
    def _state(cls, value: Path, info: ValidationInfo) -> Path:
        resolved = _resolve(value, info)
        assert resolved is not None
        return resolved

    @field_validator("profiles")
    @classmethod
    def _unique(cls, value: list[Profile]) -> list[Profile]:
        seen: set[str] = set()
        for profile in value:
            if profile.name in seen:
                raise ValueError(f"profile name {profile.name!r} is used twice")
            seen.add(profile.name)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def profile(self, name: str) -> Profile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        known = ", ".join(p.name for p in self.profiles)
        raise ConfigError(f"no profile named {name!r} in {self.path or CONFIG_NAME} (profiles: {known})")


# -- finding and loading -------------------------------------------------------------------------------------


def find_config_path(explicit: str | None) -> Path:
    """--config, else $KOPPEL_CONFIG, else ./client.yml, else client.yml in the user's configuration folder."""
    if explicit:
        return _given_file(Path(explicit).expanduser(), f"--config {explicit}")
    env = os.environ.get(CONFIG_ENV)
    if env:
        return _given_file(Path(env).expanduser(), f"{CONFIG_ENV}={env}")
    here = Path.cwd() / CONFIG_NAME
    if here.is_file():
        return here.resolve()
    user = user_config_dir() / CONFIG_NAME
    if user.is_file():
        return user
    raise ConfigError(
        f"no configuration found: give --config FILE, set {CONFIG_ENV}, "
        f"or create {CONFIG_NAME} here or in {user_config_dir()}"
    )


def _given_file(path: Path, given: str) -> Path:
    if path.is_dir():
        inside = path / CONFIG_NAME
        hint = (
            f"; did you mean {inside}?" if inside.is_file() else f"; give the path of the {CONFIG_NAME} file"
        )
        raise ConfigError(f"{given}: that is a folder, not a file{hint}")
    if not path.is_file():
        raise ConfigError(f"{given}: no such file")
    return path.resolve()


def user_config_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_config_dir("koppel", appauthor=False))


def load_client_config(path: Path) -> ClientConfig:
    """Read and validate ``client.yml``; raise ``ConfigError`` naming the line and key of the first problem."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a file; give the path of the {CONFIG_NAME} file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_client_config(decode_text(data, str(path)), path)


_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def decode_text(data: bytes, what: str) -> str:
    """A file's bytes as text: UTF-8, or UTF-16/32 with a byte-order mark (Notepad's "Unicode").

    Anything else raises ConfigError naming ``what``, the line and the byte, and how to fix it."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                break  # a mark, then no such text: report it as what it is below
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
    else:
        if "\x00" not in text:
            return text
        start = data.index(b"\x00")
    fix = "save it as UTF-8 text (Notepad: Save as, Encoding UTF-8)"
    control = next((i for i, b in enumerate(data) if b < 0x20 and b not in b"\t\n\r"), None)
    if control is not None:
        # Text in any 8-bit code page has no control bytes; these are a binary file or UTF-16 without its mark.
        line = data.count(b"\n", 0, control) + 1
        raise ConfigError(
            f"{what}: not a text file (byte {control + 1}, on line {line}, is the control code "
            f"0x{data[control]:02X}); {fix}"
        )
    line, byte = data.count(b"\n", 0, start) + 1, data[start]
    seen = bytes([byte]).decode("cp1252", errors="replace")
    looks = f", {seen!r} in Windows-1252/Latin-1" if seen.isprintable() and seen != "\ufffd" else ""
    raise ConfigError(f"{what} line {line}: byte {start + 1} (0x{byte:02X}{looks}) is not UTF-8; {fix}")


def parse_client_config(text: str, path: Path) -> ClientConfig:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(describe_yaml_error(exc, text, path)) from None
    if root is None:
        raise ConfigError(f"{path}: the file is empty; it needs at least one profile under profiles:")
    _check_duplicate_keys(root, path, ())
    data = yaml.SafeLoader(text).get_single_data()
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} line 1: the file must be a mapping of settings (timezone, state, profiles, …)"
        )

    zone_name = data.get("timezone") or DEFAULT_TIMEZONE
    try:
        zone = ZoneInfo(str(zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        line = _line_of(root, ("timezone",))
        raise ConfigError(
            f"{path} line {line}: timezone: unknown time zone {zone_name!r} (e.g. Europe/Amsterdam)"
        ) from None

    context = {"zone": zone, "base_dir": path.resolve().parent}
    try:
        config = ClientConfig.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, root, path)) from None
    config._path = path.resolve()
    return config


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _setting(line: str) -> str:
    """A line without its comment and surrounding blanks, to quote in a message."""
    return line.split(" #", 1)[0].strip()


_QUOTED_VALUE = re.compile(r"""(?:^|:\s|-\s)\s*(['"])""")


def _unclosed_quote(lines: list[str]) -> int | None:
    """The 1-based number of the first line whose value opens a quote that the line does not close."""
    for number, line in enumerate(lines, start=1):
        match = None if line.lstrip().startswith("#") else _QUOTED_VALUE.search(line)
        if match is None:
            continue
        quote = match.group(1)
        rest = line[match.end() :]
        if quote == "'":
            rest = rest.replace("''", "")  # a doubled quote is a quote inside the value
        else:
            rest = rest.replace("\\\\", "").replace('\\"', "")
        if quote not in rest:
            return number
    return None


def describe_yaml_error(exc: yaml.YAMLError, text: str, path: Path) -> str:
    """PyYAML's complaint in words a person editing the file understands, with the line it is on."""
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or "")
    if mark is None:
        position = getattr(exc, "position", None)
        if isinstance(exc, yaml.reader.ReaderError) and position is not None:
            line = text.count("\n", 0, position) + 1
            code = exc.character if isinstance(exc.character, int) else ord(exc.character)
            return f"{path} line {line}: a control character (code 0x{code:02X}) that YAML does not allow; remove it"
        return f"{path}: not valid YAML: {problem or exc}"
    lines = text.splitlines()
    number = mark.line + 1
    current = lines[mark.line] if mark.line < len(lines) else ""
    head = f"{path} line {number}: "
    tabs = "\t" in current[: _indent(current)] or current[mark.column : mark.column + 1] == "\t"
    tab_note = "; use spaces, not tabs (YAML does not accept tabs)" if tabs else ""
    if "'\\t'" in problem or (tabs and "cannot start any token" in problem):
        return head + "a tab character; use spaces, not tabs (YAML does not accept tabs for indenting)"
    unclosed = _unclosed_quote(lines[: mark.line + 1])
    if unclosed is not None:
        # A quoted value runs on over the next lines, so YAML trips over something later; the quote is the cause.
        return f"{path} line {unclosed}: a quote is opened but never closed; close it on the same line"
    for opener, closer in (("{", "}"), ("[", "]")):
        context = getattr(exc, "context_mark", None)
        if f"expected ',' or '{closer}'" in problem and context is not None:
            return (
                f"{path} line {context.line + 1}: the '{opener}' on this line is not closed with '{closer}' "
                "(or a ',' is missing between two of its values)"
            )
        if f"found '{closer}'" in problem:
            return head + f"a '{closer}' without the '{opener}' that opens it"
    if "expected <block end>" in problem or "did not find expected" in problem:
        return (
            head
            + f"the indentation is wrong: {_setting(current)!r} does not line up with the settings above "
            "it; indent each setting exactly like the others at its level" + tab_note
        )
    if "mapping values are not allowed" in problem:
        # At the line's first ':' the line itself is out of place; at a later one the value holds ': '.
        if current.find(":") == mark.column:
            return (
                head + f"the indentation is wrong: {_setting(current)!r} is indented further than the "
                "setting above it, which already has a value; indent it like the others at its level"
                + tab_note
            )
        return (
            head + "a second ': ' on one line; a value that contains ': ' must be put in quotes, "
            "like 'a: b'" + tab_note
        )
    if "could not find expected ':'" in problem:
        context = getattr(exc, "context_mark", None)
        line = context.line + 1 if context is not None else number
        return f"{path} line {line}: a setting without ':'; write it as name: value"
    if "alias" in problem or "anchor" in problem:
        return head + "a value that starts with '*' or '&' must be put in quotes"
    if "cannot start any token" in problem:
        return (
            head + f"a value cannot start with that character ({problem.split()[2]}); put the value in quotes"
        )
    return head + f"not valid YAML: {problem or exc}" + tab_note


def _describe(exc: ValidationError, root: yaml.Node, path: Path) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = _clean_loc(error["loc"])
        key = _key_text(loc)
        line = _line_of(root, loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling; see client.yml.example)"
        elif error["type"] == "missing":
            message = "required setting is missing"
        elif error["type"] == "literal_error":
            message = f"{message} (got {error.get('input')!r})"
        lines.append(f"{path} line {line}: {key or '(top level)'}: {message}")
    return "\n".join(lines)


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic adds the union member / literal tag into the location; those are not keys of the file.
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def _key_text(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _line_of(root: yaml.Node, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest node on ``loc`` that exists in the file."""
    node = root
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    child = value_node
                    line = key_node.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
    return line


def _check_duplicate_keys(node: yaml.Node, path: Path, loc: tuple[Any, ...]) -> None:
    # PyYAML keeps the last of two equal keys silently; in a settings file that hides an edit.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                where = _key_text((*loc, key))
                raise ConfigError(f"{path} line {key_node.start_mark.line + 1}: {where}: set twice")
            seen.add(key)
            _check_duplicate_keys(value_node, path, (*loc, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(item, path, (*loc, index))
