"""agent.yml: loading, validation and secret resolution.

Every problem is reported as a ``ConfigError`` whose message starts with the dotted key it is about
(``magento.table_prefix: ...``), because the person reading it is editing that file on a webserver.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

SCOPES = ("orders:read", "stock:write", "diagnostics:read")
Scope = Literal["orders:read", "stock:write", "diagnostics:read"]
MIN_SECRET_LENGTH = 32
KEY_ID_PATTERN = r"[A-Za-z0-9_.-]{1,64}"
TABLE_PREFIX_PATTERN = r"^[A-Za-z0-9_]*$"
TIME_ZONE_PATTERN = r"^([+-]\d{1,2}:\d{2}|SYSTEM|[A-Za-z][A-Za-z0-9_+/-]*)$"
# Every pattern a field of agent.yml is held to, in the words a person editing the file understands
# (tests/agent/test_config.py fails when a field gets a pattern that is not listed here).
PATTERN_WORDS = {
    f"^{KEY_ID_PATTERN}$": "use 1 to 64 letters A-Z, digits, '_', '.' or '-'",
    TABLE_PREFIX_PATTERN: "may hold only letters A-Z, digits and '_'",
    TIME_ZONE_PATTERN: "use an offset such as '+01:00', SYSTEM or a zone name such as 'Europe/Amsterdam'",
}


class ConfigError(ValueError):
    """agent.yml cannot be used; the message names the key (and, read from a file, the file and line)."""

    def __init__(self, message: str, loc: tuple[int | str, ...] | None = None) -> None:
        super().__init__(message)
        # (where in the file, text) per problem, so that a file reader can put a line number to each
        self.problems: list[tuple[tuple[int | str, ...], str]] = [(loc or (), message)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(3306, ge=1, le=65535)
    unix_socket: str | None = None
    name: str = Field(min_length=1)
    user: str = Field(min_length=1)
    password: str = Field("", repr=False)
    connect_timeout: int = Field(5, ge=1, le=120)
    read_timeout: int = Field(60, ge=1, le=3600)


class MagentoConfig(_Section):
    version: Literal["auto", 1, 2] = "auto"
    table_prefix: str = Field("", pattern=TABLE_PREFIX_PATTERN, max_length=64)
    stock: Literal["auto", "legacy", "msi"] = "auto"
    msi_source: str = Field("default", min_length=1, max_length=64)
    msi_mode: Literal["salable", "physical"] = "salable"
    session_time_zone: str | None = Field(None, pattern=TIME_ZONE_PATTERN)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() in ("1", "2"):
            return int(value)
        if value in ("auto", 1, 2) and not isinstance(value, bool):
            return value
        raise ValueError(f"must be 1, 2 or auto, not {value!r}")

    @field_validator("table_prefix", mode="before")
    @classmethod
    def _prefix(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("stock")
    @classmethod
    def _msi_needs_m2(cls, value: str, info: ValidationInfo) -> str:
        # A field validator (stock follows version), so that it runs even when another key is wrong too.
        if value == "msi" and info.data.get("version") == 1:
            raise ValueError("stock msi exists only in Magento 2, but version is 1")
        return value


class KeyConfig(_Section):
    id: str = Field(pattern=f"^{KEY_ID_PATTERN}$")
    secret: str = Field(min_length=MIN_SECRET_LENGTH, repr=False)
    scopes: list[Scope] = Field(min_length=1)


class LimitsConfig(_Section):
    max_page_size: int = Field(500, ge=1, le=10000)
    max_stock_items: int = Field(5000, ge=1, le=100000)
    max_body_bytes: int = Field(2_000_000, ge=1024, le=100_000_000)


class AgentConfig(_Section):
    database: DatabaseConfig
    magento: MagentoConfig = MagentoConfig()
    settle_seconds: int = Field(120, ge=0, le=86400)
    state_dir: Path = Path("agent-state")
    keys: list[KeyConfig] = Field(min_length=1)
    limits: LimitsConfig = LimitsConfig()
    # (dotted key, path) of every password_file / secret_file the secrets were read from
    _secret_files: list[tuple[str, Path]] = PrivateAttr(default_factory=list)

    def key(self, key_id: str) -> KeyConfig | None:
        return next((k for k in self.keys if k.id == key_id), None)


def loose_secret_files(cfg: AgentConfig) -> list[tuple[str, Path, int]]:
    """(dotted key, path, mode) of each secret file that group or others may read; empty on Windows, which
    has no such modes."""
    if os.name == "nt":
        return []
    loose = []
    for key, path in cfg._secret_files:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue  # it was read a moment ago; gone now is no question of modes
        if mode & 0o077:
            loose.append((key, path, mode))
    return loose


def loose_file_text(key: str, path: Path, mode: int) -> str:
    """One loose secret file in words, with the fix."""
    return f"{key}: {path} may be read by other users (mode {mode:04o}); chmod 600 {path}"


def _resolve_secret(
    section: dict[str, Any],
    name: str,
    loc: tuple[int | str, ...],
    base_dir: Path,
    required: bool,
    files: list[tuple[str, Path]] | None = None,
    min_length: int = 0,
) -> None:
    """Replace ``name_file`` / ``name_env`` by ``name`` in place; at most one of the three may be given.
    A file read is added to ``files``. A value from a file or variable shorter than ``min_length`` is
    reported on the ``_file`` / ``_env`` key the person wrote (the model would name ``name``, which the file
    does not have, and so the line of the entry above it)."""
    where = _dotted(loc)
    given = [k for k in (name, f"{name}_file", f"{name}_env") if section.get(k) not in (None, "")]
    if len(given) > 1:
        raise ConfigError(
            f"{where}.{given[1]}: give only one of {name}, {name}_file, {name}_env", (*loc, given[1])
        )
    if not given:
        if required:
            raise ConfigError(f"{where}.{name}: missing (give {name}, {name}_file or {name}_env)", loc)
        for k in (f"{name}_file", f"{name}_env"):
            section.pop(k, None)
        return
    source = given[0]
    raw = section.pop(source)
    for k in (f"{name}_file", f"{name}_env"):
        section.pop(k, None)
    if source == name:
        section[name] = str(raw)
        return  # its length is the model's to check, on this very key
    if source.endswith("_file"):
        path = Path(os.path.expanduser(str(raw)))
        path = path if path.is_absolute() else base_dir / path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{where}.{source}: file {path} does not exist", (*loc, source)) from None
        except OSError as exc:
            raise ConfigError(
                f"{where}.{source}: cannot read {path}: {exc.strerror}", (*loc, source)
            ) from None
        problem = utf8_problem(data)
        if problem:
            raise ConfigError(f"{where}.{source}: file {path}{problem}", (*loc, source))
        section[name] = data.decode("utf-8-sig").strip()
        if files is not None:
            files.append((f"{where}.{source}", path))
        origin = f"in {path}"
    else:
        value = os.environ.get(str(raw))
        if value is None:
            raise ConfigError(f"{where}.{source}: environment variable {raw} is not set", (*loc, source))
        section[name] = value.strip()
        origin = f"in environment variable {raw}"
    if len(section[name]) < min_length:
        raise ConfigError(
            f"{where}.{source}: the {name} {origin} is too short "
            f"({len(section[name])} characters; at least {min_length})",
            (*loc, source),
        )


def utf8_problem(data: bytes) -> str | None:
    """Why ``data`` is not UTF-8 text, saying where, as the end of a sentence that starts with the file name
    (``" line 2, column 17: ..."``); None when it is UTF-8.

    A UTF-16 file (Windows Notepad's "Unicode") is named as such; a byte that is no UTF-8 is most often a
    Latin-1 or Windows-1252 character such as an e-acute typed in an editor set to that encoding. The byte
    itself is not shown: it may be part of a password."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return ": the file is saved as UTF-16; save it as UTF-8"
    bad = data.find(b"\x00")
    kind = "a NUL byte (is the file saved as UTF-16?)"
    if bad < 0:
        try:
            data.decode("utf-8")
            return None
        except UnicodeDecodeError as exc:
            bad, kind = exc.start, "a character that is not UTF-8 (Latin-1 or Windows-1252?)"
    line_start = data.rfind(b"\n", 0, bad) + 1
    line = data.count(b"\n", 0, bad) + 1
    column = len(data[line_start:bad].decode("utf-8", errors="replace")) + 1
    return f" line {line}, column {column}: {kind}; save the file as UTF-8"


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # Literal/union errors carry a branch name in loc (e.g. 'literal['auto']'); it only confuses a reader.
    return tuple(p for p in loc if not (isinstance(p, str) and "[" in p))


def _shown(value: Any) -> str:
    """A value from agent.yml as the person wrote it, cut short when long."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 50 else text[:45] + "…" + text[-1]


def _explain(err: dict[str, Any]) -> str:
    """One problem in plain words (pydantic's own text names classes and regular expressions)."""
    loc = _clean_loc(err["loc"])
    kind, ctx, got = err["type"], err.get("ctx") or {}, _shown(err.get("input"))
    last = loc[-1] if loc else None
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "required key is missing"
    elif kind == "string_pattern_mismatch":
        words = PATTERN_WORDS.get(str(ctx.get("pattern")), "does not have the form this key needs")
        message = f"{words} (got {got})"
    elif kind == "string_too_short" and last == "secret":
        message = f"too short: a secret needs at least {MIN_SECRET_LENGTH} characters"
    elif kind == "string_too_short":
        message = "must not be empty"
    elif kind == "string_too_long":
        message = f"may be at most {ctx.get('max_length')} characters long (got {len(str(err['input']))})"
    elif kind == "too_short" and last == "keys":
        message = "give at least one key (`koppel-agent new-key` makes one)"
    elif kind == "too_short" and last == "scopes":
        message = f"give at least one scope (known: {', '.join(SCOPES)})"
    elif kind == "literal_error" and loc and loc[-2:-1] == ("scopes",):
        message = f"unknown scope {err['input']!r} (known: {', '.join(SCOPES)})"
    elif kind == "literal_error":
        message = f"must be {ctx.get('expected')} (got {got})"
    elif kind in ("model_type", "dict_type"):
        message = f"must be a mapping: indented 'key: value' lines under it (got {got})"
    elif kind == "list_type":
        message = f"must be a list: one '- ' line per entry, or [a, b] (got {got})"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"must be a whole number (got {got})"
    elif kind == "greater_than_equal":
        message = f"must be at least {ctx.get('ge')} (got {got})"
    elif kind == "less_than_equal":
        message = f"must be at most {ctx.get('le')} (got {got})"
    elif kind in ("string_type", "path_type"):
        message = f"must be text (got {got})"
    else:
        message = str(err["msg"]).removeprefix("Value error, ")
    return f"{_dotted(loc)}: {message}"


def config_from_dict(data: dict[str, Any], base_dir: Path) -> AgentConfig:
    """Validate a parsed agent.yml; relative paths (state_dir, *_file) are taken from ``base_dir``.

    Every mistake is reported at once: a secret that cannot be resolved (unset variable, missing file) is
    recorded and a stand-in validated in its place, so the keys around it are still checked."""
    if not isinstance(data, dict):
        raise ConfigError("(top level): agent.yml must be a mapping of keys to values")
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    problems: list[tuple[tuple[int | str, ...], str]] = []
    files: list[tuple[str, Path]] = []

    def resolve(
        section: dict[str, Any], name: str, loc: tuple[int | str, ...], required: bool, min_length: int = 0
    ) -> None:
        try:
            _resolve_secret(section, name, loc, base_dir, required, files, min_length)
        except ConfigError as exc:
            problems.extend(exc.problems)
            for k in (name, f"{name}_file", f"{name}_env"):
                section.pop(k, None)
            section[name] = "x" * MIN_SECRET_LENGTH  # a stand-in that raises no second problem

    if isinstance(data.get("database"), dict):
        resolve(data["database"], "password", ("database",), required=False)
    if isinstance(data.get("keys"), list):
        keys = []
        for i, key in enumerate(data["keys"]):
            if isinstance(key, dict):
                key = dict(key)
                resolve(key, "secret", ("keys", i), required=True, min_length=MIN_SECRET_LENGTH)
            keys.append(key)
        data["keys"] = keys
        # Checked here on the raw entries, not by the model: a model check would only run once every key is
        # valid, and so hide a duplicate behind another key's mistake.
        seen: dict[Any, int] = {}
        for i, key in enumerate(keys):
            key_id = key.get("id") if isinstance(key, dict) else None
            if isinstance(key_id, str) and key_id in seen:
                text = f"keys[{i}].id: key id {key_id!r} appears twice (also keys[{seen[key_id]}])"
                problems.append((("keys", i, "id"), text))
            elif isinstance(key_id, str):
                seen[key_id] = i
    cfg = None
    try:
        cfg = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend((_clean_loc(e["loc"]), _explain(e)) for e in exc.errors())
    if problems or cfg is None:
        error = ConfigError("; ".join(text for _, text in problems))
        error.problems = problems
        raise error
    state_dir = Path(os.path.expanduser(str(cfg.state_dir)))
    if not state_dir.is_absolute():
        state_dir = (base_dir / state_dir).resolve()
    cfg = cfg.model_copy(update={"state_dir": state_dir})
    cfg._secret_files = files
    return cfg


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate agent.yml; every ConfigError names the file and, where it can, the line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    problem = utf8_problem(raw)
    if problem:
        raise ConfigError(f"{path}{problem}")
    text = raw.decode("utf-8-sig")  # Notepad's "UTF-8 with BOM" is UTF-8 too
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # PyYAML's own text spans several lines with a caret drawing; its problem and mark say the same briefly.
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML: {problem} (check the indentation)") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty")
    try:
        return config_from_dict(data, path.resolve().parent)
    except ConfigError as exc:
        # In the order of the file, as someone going through it top to bottom fixes them.
        lines = sorted(((_line_of(root, loc), text) for loc, text in exc.problems), key=lambda p: p[0])
        raise ConfigError(f"{path} " + "; ".join(f"line {line}: {text}" for line, text in lines)) from None


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the deepest node on ``loc`` that the file has (a missing key: its parent's line)."""
    if root is None:
        return 1
    node, line = root, root.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    child, line = value_node, key_node.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
