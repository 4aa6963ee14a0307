"""agent.yml: valid files load, every kind of mistake is refused with a message naming the key."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from agent.config import ConfigError, config_from_dict, load_config, loose_file_text, loose_secret_files

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k" * 40


def base() -> dict[str, Any]:
    return {
        "database": {"name": "magento", "user": "koppel", "password": "pw"},
        "keys": [{"id": "office", "secret": GOOD_SECRET, "scopes": ["orders:read"]}],
    }


def refuse(data: dict[str, Any], tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, tmp_path)
    return str(info.value)


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    cfg = config_from_dict(base(), tmp_path)
    assert cfg.magento.version == "auto" and cfg.magento.table_prefix == ""
    assert (
        cfg.magento.stock == "auto"
        and cfg.magento.msi_source == "default"
        and cfg.magento.msi_mode == "salable"
    )
    assert cfg.settle_seconds == 120
    assert cfg.limits.max_page_size == 500 and cfg.limits.max_stock_items == 5000
    assert cfg.limits.max_body_bytes == 2_000_000
    assert cfg.database.port == 3306 and cfg.database.password == "pw"
    assert cfg.state_dir == (tmp_path / "agent-state").resolve()
    assert cfg.key("office") is not None and cfg.key("nobody") is None


def test_secrets_do_not_show_in_repr(tmp_path: Path) -> None:
    text = repr(config_from_dict(base(), tmp_path))
    assert GOOD_SECRET not in text and "'pw'" not in text


def test_example_file_is_complete_and_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_DB_PASSWORD", "db-pw")
    monkeypatch.setenv("KOPPEL_AGENT_SECRET", "e" * 48)
    cfg = load_config(ROOT / "agent.yml.example")
    assert cfg.database.password == "db-pw"
    assert cfg.keys[0].secret == "e" * 48
    assert set(cfg.keys[0].scopes) == {"orders:read", "stock:write", "diagnostics:read"}
    assert cfg.state_dir == (ROOT / "agent-state").resolve()


def test_secret_file_is_read_relative_to_the_config_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "office.secret").write_text(GOOD_SECRET + "\n")
    (tmp_path / "db.pw").write_text("from-file\n")
    data = base()
    data["keys"][0] = {"id": "office", "secret_file": "office.secret", "scopes": ["orders:read"]}
    data["database"] = {"name": "m", "user": "u", "password_file": "db.pw"}
    config = tmp_path / "agent.yml"
    import yaml

    config.write_text(yaml.safe_dump(data))
    cfg = load_config(config)
    assert cfg.keys[0].secret == GOOD_SECRET
    assert cfg.database.password == "from-file"


def test_secret_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOPPEL_TEST_SECRET", GOOD_SECRET)
    data = base()
    data["keys"][0] = {"id": "office", "secret_env": "KOPPEL_TEST_SECRET", "scopes": ["orders:read"]}
    assert config_from_dict(data, tmp_path).keys[0].secret == GOOD_SECRET


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(databse={}), "databse: unknown key"),
        (lambda d: d.setdefault("magento", {}).update(tabel_prefix="x"), "magento.tabel_prefix: unknown key"),
        (
            lambda d: d.setdefault("magento", {}).update(table_prefix="mg-"),
            "magento.table_prefix: may hold only",
        ),
        (lambda d: d.setdefault("magento", {}).update(table_prefix="a;DROP"), "magento.table_prefix"),
        (lambda d: d.setdefault("magento", {}).update(version=3), "magento.version: must be 1, 2 or auto"),
        (
            lambda d: d.setdefault("magento", {}).update(version="two"),
            "magento.version: must be 1, 2 or auto",
        ),
        (lambda d: d.setdefault("magento", {}).update(stock="both"), "magento.stock"),
        (
            lambda d: d.setdefault("magento", {}).update(version=1, stock="msi"),
            "msi exists only in Magento 2",
        ),
        (lambda d: d.setdefault("magento", {}).update(msi_mode="virtual"), "magento.msi_mode"),
        (lambda d: d["keys"][0].update(secret="too-short"), "keys[0].secret: too short"),
        (
            lambda d: d["keys"][0].update(scopes=["orders:write"]),
            "keys[0].scopes[0]: unknown scope 'orders:write'",
        ),
        (lambda d: d["keys"][0].update(scopes=[]), "keys[0].scopes"),
        (lambda d: d["keys"][0].update(id="bad id!"), "keys[0].id"),
        (lambda d: d["keys"].append(dict(d["keys"][0])), "key id 'office' appears twice"),
        (lambda d: d.update(keys=[]), "keys:"),
        (lambda d: d["database"].pop("name"), "database.name: required key is missing"),
        (lambda d: d["database"].update(port=70000), "database.port"),
        (lambda d: d.update(settle_seconds=-1), "settle_seconds"),
        (lambda d: d.update(limits={"max_page_size": 0}), "limits.max_page_size"),
        (lambda d: d.update(limits={"max_rows": 5}), "limits.max_rows: unknown key"),
    ],
)
def test_mistakes_are_refused_naming_the_key(change: Any, expected: str, tmp_path: Path) -> None:
    data = base()
    change(data)
    assert expected in refuse(data, tmp_path)


def test_missing_secret_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    data = base()
    data["keys"][0] = {"id": "office", "secret_file": "nowhere.secret", "scopes": ["orders:read"]}
    message = refuse(data, tmp_path)
    assert message.startswith("keys[0].secret_file:") and "nowhere.secret" in message


def test_missing_environment_variable_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KOPPEL_TEST_UNSET", raising=False)
    data = base()
    data["database"] = {"name": "m", "user": "u", "password_env": "KOPPEL_TEST_UNSET"}
    assert (
        refuse(data, tmp_path) == "database.password_env: environment variable KOPPEL_TEST_UNSET is not set"
    )


def test_a_key_without_any_secret_is_refused(tmp_path: Path) -> None:
    data = base()
    del data["keys"][0]["secret"]
    assert refuse(data, tmp_path).startswith("keys[0].secret: missing")


def test_two_secret_sources_are_refused(tmp_path: Path) -> None:
    data = base()
    data["keys"][0]["secret_env"] = "X"
    assert "keys[0].secret_env: give only one of" in refuse(data, tmp_path)


def test_several_problems_are_reported_together(tmp_path: Path) -> None:
    data = base()
    data["magento"] = {"table_prefix": "a b", "version": 7}
    message = refuse(data, tmp_path)
    assert "magento.table_prefix" in message and "magento.version" in message


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "absent.yml")
    (tmp_path / "empty.yml").write_text("")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(tmp_path / "empty.yml")
    (tmp_path / "broken.yml").write_text("database: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yml")
    (tmp_path / "list.yml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path / "list.yml")


def test_version_accepts_numbers_written_as_text(tmp_path: Path) -> None:
    data = base()
    data["magento"] = {"version": "1"}
    assert config_from_dict(data, tmp_path).magento.version == 1


# --- files that are not UTF-8 ----------------------------------------------------------------------------

GOOD_FILE = f"""database:
  name: magento  # database of the café
  user: koppel
keys:
  - id: office
    secret: "{GOOD_SECRET}"
    scopes: [orders:read]
"""


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("latin-1", " line 2, column 39: a character that is not UTF-8 (Latin-1 or Windows-1252?)"),
        ("cp1252", " line 2, column 39: a character that is not UTF-8 (Latin-1 or Windows-1252?)"),
        ("utf-16", ": the file is saved as UTF-16"),  # with a byte order mark, as Notepad writes it
        ("utf-16-le", " line 1, column 2: a NUL byte (is the file saved as UTF-16?)"),
    ],
)
def test_a_config_file_that_is_not_utf8_is_named_with_where_and_what_to_do(
    tmp_path: Path, encoding: str, expected: str
) -> None:
    path = tmp_path / "agent.yml"
    path.write_bytes(GOOD_FILE.encode(encoding))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}{expected}"), message
    assert "save" in message and "as UTF-8" in message and "\n" not in message


def test_a_config_file_in_utf8_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "agent.yml"
    path.write_bytes(GOOD_FILE.encode("utf-8-sig"))
    assert load_config(path).database.name == "magento"


@pytest.mark.parametrize("key", ["password_file", "secret_file"])
def test_a_latin1_secret_file_names_the_key_the_file_and_where(tmp_path: Path, key: str) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_bytes(("geheim-é-" + "x" * 40 + "\n").encode("latin-1"))
    data = base()
    if key == "password_file":
        data["database"] = {"name": "m", "user": "u", "password_file": "secret.txt"}
        where = "database.password_file"
    else:
        data["keys"][0] = {"id": "office", "secret_file": "secret.txt", "scopes": ["orders:read"]}
        where = "keys[0].secret_file"
    message = refuse(data, tmp_path)
    assert message == (
        f"{where}: file {secret_file} line 1, column 8: a character that is not UTF-8 "
        "(Latin-1 or Windows-1252?); save the file as UTF-8"
    )


# --- every mistake at once, in the order of the file -------------------------------------------------------

MANY_MISTAKES = f"""database:
  name: magento
  user: koppel
  password_env: KOPPEL_TEST_UNSET_A
settle_second: 5
magento:
  table_prefix: "mg-"
keys:
  - id: office
    secret_env: KOPPEL_TEST_UNSET_B
    scopes: [orders:read]
  - id: office
    secret: "{GOOD_SECRET}"
    scopes: [orders:write]
limits:
  max_page_size: 0
"""


def test_every_mistake_is_reported_at_once_in_line_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KOPPEL_TEST_UNSET_A", raising=False)
    monkeypatch.delenv("KOPPEL_TEST_UNSET_B", raising=False)
    path = tmp_path / "agent.yml"
    path.write_text(MANY_MISTAKES, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path} line 4: database.password_env: environment variable")
    found = [(int(line), text) for line, text in re.findall(r"line (\d+): ([^;]+)", message)]
    assert [line for line, _ in found] == [4, 5, 7, 10, 12, 14, 16], message
    texts = " | ".join(text for _, text in found)
    for fragment in [
        "KOPPEL_TEST_UNSET_A is not set",
        "settle_second: unknown key",
        "magento.table_prefix: may hold only",
        "keys[1].id: key id 'office' appears twice (also keys[0])",
        "keys[0].secret_env: environment variable KOPPEL_TEST_UNSET_B is not set",
        "keys[1].scopes[0]: unknown scope 'orders:write'",
        "limits.max_page_size",
    ]:
        assert fragment in texts, (fragment, message)


def test_an_unset_variable_does_not_hide_a_typo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    data = base()
    data["settle_second"] = 5
    data["keys"][0] = {"id": "office", "secret_env": "NOPE_NOT_SET", "scopes": ["orders:read"]}
    message = refuse(data, tmp_path)
    assert "keys[0].secret_env: environment variable NOPE_NOT_SET is not set" in message
    assert "settle_second: unknown key" in message
    # The stand-in put in place of the unresolved secret causes no problem of its own.
    assert message.count(";") == 1, message


def test_msi_on_magento_1_is_reported_beside_other_mistakes(tmp_path: Path) -> None:
    data = base()
    data["magento"] = {"version": 1, "stock": "msi", "table_prefix": "a b"}
    message = refuse(data, tmp_path)
    assert "magento.stock: stock msi exists only in Magento 2" in message
    assert "magento.table_prefix" in message


# --- plain words instead of pydantic's (class names, regular expressions) ---------------------------------


def _magento(d: dict[str, Any]) -> dict[str, Any]:
    return d.setdefault("magento", {})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d["keys"][0].update(id="sleütel"),
            "keys[0].id: use 1 to 64 letters A-Z, digits, '_', '.' or '-' (got 'sleütel')",
        ),
        (
            lambda d: d["keys"][0].update(id="k" * 65),
            "keys[0].id: use 1 to 64 letters A-Z, digits, '_', '.' or '-' (got 'kkkkk",
        ),
        (
            lambda d: _magento(d).update(table_prefix="mg-"),
            "magento.table_prefix: may hold only letters A-Z, digits and '_' (got 'mg-')",
        ),
        (
            lambda d: _magento(d).update(session_time_zone="+1"),
            "magento.session_time_zone: use an offset such as '+01:00', SYSTEM or a zone name such as "
            "'Europe/Amsterdam' (got '+1')",
        ),
        (
            lambda d: d.update(keys=[]),
            "keys: give at least one key (`koppel-agent new-key` makes one)",
        ),
        (
            lambda d: d["keys"][0].update(scopes=[]),
            "keys[0].scopes: give at least one scope (known: orders:read, stock:write, diagnostics:read)",
        ),
        (
            lambda d: d.update(database="magento"),
            "database: must be a mapping: indented 'key: value' lines under it (got 'magento')",
        ),
        (lambda d: d.update(keys="office"), "keys: must be a list: one '- ' line per entry, or [a, b]"),
        (lambda d: d["database"].update(name=""), "database.name: must not be empty"),
        (lambda d: d["database"].update(port="abc"), "database.port: must be a whole number (got 'abc')"),
        (lambda d: d["database"].update(port=70000), "database.port: must be at most 65535 (got 70000)"),
        (lambda d: d.update(state_dir=5), "state_dir: must be text (got 5)"),
        (
            lambda d: _magento(d).update(stock="both"),
            "magento.stock: must be 'auto', 'legacy' or 'msi' (got 'both')",
        ),
    ],
)
def test_mistakes_are_said_in_plain_words(change: Any, expected: str, tmp_path: Path) -> None:
    data = base()
    change(data)
    message = refuse(data, tmp_path)
    assert expected in message, message
    for library_text in ("should match pattern", "Input should", "instance of", "<class", "after validation"):
        assert library_text not in message, message


def test_every_pattern_of_agent_yml_has_plain_words() -> None:
    from pydantic import BaseModel

    from agent import config

    def patterns(model: type[BaseModel]) -> set[str]:
        found = set()
        for field in model.model_fields.values():
            for meta in field.metadata:
                if getattr(meta, "pattern", None):
                    found.add(meta.pattern)
            for arg in getattr(field.annotation, "__args__", ()):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    found |= patterns(arg)
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                found |= patterns(field.annotation)
        return found

    found = patterns(config.AgentConfig)
    assert len(found) == 3 and found <= set(config.PATTERN_WORDS), found - set(config.PATTERN_WORDS)


# --- secret files others may read ----------------------------------------------------------------------------


@pytest.mark.skipif(os.name == "nt", reason="Windows has no group/other modes")
def test_secret_files_readable_by_others_are_listed_with_their_mode(tmp_path: Path) -> None:
    (tmp_path / "office.secret").write_text(GOOD_SECRET + "\n")
    (tmp_path / "db.pw").write_text("from-file\n")
    (tmp_path / "office.secret").chmod(0o644)
    (tmp_path / "db.pw").chmod(0o600)
    data = base()
    data["keys"][0] = {"id": "office", "secret_file": "office.secret", "scopes": ["orders:read"]}
    data["database"] = {"name": "m", "user": "u", "password_file": "db.pw"}
    cfg = config_from_dict(data, tmp_path)
    assert loose_secret_files(cfg) == [("keys[0].secret_file", tmp_path / "office.secret", 0o644)]
    assert loose_file_text(*loose_secret_files(cfg)[0]) == (
        f"keys[0].secret_file: {tmp_path / 'office.secret'} may be read by other users (mode 0644); "
        f"chmod 600 {tmp_path / 'office.secret'}"
    )
    (tmp_path / "db.pw").chmod(0o640)
    assert [key for key, _, _ in loose_secret_files(cfg)] == ["database.password_file", "keys[0].secret_file"]
    (tmp_path / "office.secret").chmod(0o600)
    (tmp_path / "db.pw").chmod(0o400)
    assert loose_secret_files(cfg) == []
    assert loose_secret_files(config_from_dict(base(), tmp_path)) == []  # secrets written in agent.yml


# --- a short secret from a file or variable is named where it was written -------------------------------------

SHORT_FILE = f"""database:
  name: magento
  user: koppel
keys:
  - id: spare
    secret: "{GOOD_SECRET}"
    scopes: [orders:read]
  - id: office
    secret_file: office.secret
    scopes: [orders:read]
  - id: shop
    secret_env: KOPPEL_TEST_SHORT
    scopes: [orders:read]
"""


def test_a_short_secret_from_a_file_or_variable_names_that_key_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "office.secret").write_text("short-secret\n")
    monkeypatch.setenv("KOPPEL_TEST_SHORT", "tiny")
    path = tmp_path / "agent.yml"
    path.write_text(SHORT_FILE, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path} line 9: keys[1].secret_file: the secret in {tmp_path / 'office.secret'} is too short "
        f"(12 characters; at least 32); line 12: keys[2].secret_env: the secret in environment variable "
        "KOPPEL_TEST_SHORT is too short (4 characters; at least 32)"
    )
