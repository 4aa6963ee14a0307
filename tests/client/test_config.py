"""client.yml: every key validated on load, errors naming the key and the line, lookup order, conversions."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml

from client.cli import main
from client.config import (
    ConfigError,
    find_config_path,
    load_client_config,
    parse_client_config,
    parse_interval,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "client.yml.example"


def write(tmp_path: Path, text: str, name: str = "client.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def example_with(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert old in text, old
    return write(tmp_path, text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


def test_example_is_complete_and_valid(tmp_path):
    config = load_client_config(EXAMPLE)
    profile = config.profile("webshop")
    assert config.timezone == "Europe/Amsterdam" and config.paused is False
    assert config.state == REPO / "koppel-state.sqlite"  # relative to the file, not the working folder
    assert profile.snelstart.path == REPO / "administratie.sqlite"
    # 2026-01-01 00:00 in Amsterdam (CET, UTC+1) is 23:00 UTC the day before.
    assert profile.magento.import_from == dt.datetime(2025, 12, 31, 23, 0, tzinfo=dt.UTC)
    assert profile.orders.shipping_costs is not None and profile.orders.shipping_costs.line == "VERZEND"
    assert profile.orders.defer_states == ["pending_payment", "payment_review"]
    assert profile.articles.revenue_group == 1
    assert profile.customers.matching == "smart" and profile.customers.payment_term_days == 14
    tasks = dict(profile.tasks.items())
    assert tasks["import_orders"].interval == dt.timedelta(minutes=15)
    assert tasks["import_orders_and_export_stock"].interval == dt.timedelta(hours=1)
    # Every key SPEC.md names appears in the example.
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    orders = data["profiles"][0]["orders"]
    for key in ("template", "template_use_last", "unique_payment_reference", "description", "addresses", "lines",
                "recipes", "shipping_costs", "discount", "payment_costs", "default_article", "import_states",
                "defer_states", "defer_days"):  # fmt: skip
        assert key in orders, key


SPEC = REPO.parent / "shared" / "docs" / "SPEC.md"


def key_paths(node: object, prefix: str = "") -> set[str]:
    """Every key path of a YAML mapping (``profiles[0].orders.lines``); a list contributes its items."""
    paths: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths |= {path} | key_paths(value, path)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths |= key_paths(value, f"{prefix}[{index}]")
    return paths


@pytest.mark.skipif(not SPEC.is_file(), reason=f"SPEC.md not found at {SPEC} (the project's shared docs)")
def test_every_key_of_the_spec_shape_is_accepted_and_in_the_example(tmp_path):
    # SPEC.md: "names are binding; add keys where needed, do not rename these".
    text = SPEC.read_text(encoding="utf-8").split("## `client.yml` — the shape", 1)[1]
    block = text.split("```yaml", 1)[1].split("```", 1)[0]
    spec = parse_client_config(block, tmp_path / "client.yml")  # the SPEC's own example loads as it is
    assert spec.profiles[0].customers.matching == "smart" and spec.profiles[0].orders.defer_days == 14
    spec_keys = key_paths(yaml.safe_load(block))
    missing = spec_keys - key_paths(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    assert (
        missing == set()
    ), f"keys of SPEC.md's client.yml missing from client.yml.example: {sorted(missing)}"
    # The keys SPEC lists in comments (b2b and desktop connection) are settings, and the example names them.
    from client.config import SnelStartSettings

    commented = set()
    for line in block.splitlines():
        if line.strip().startswith("#"):
            commented |= set(re.findall(r"\b([a-z][a-z0-9_]*):(?!/)", line.split("#", 1)[1]))
    commented -= {"b2b", "desktop"}  # the section labels
    assert {"client_key_env", "tier", "kind", "server", "password_env"} <= commented
    assert commented - set(SnelStartSettings.model_fields) == set()
    example = EXAMPLE.read_text(encoding="utf-8")
    assert [k for k in sorted(commented) if f"{k}:" not in example] == []


@pytest.mark.parametrize(
    ("old", "new", "key", "needle"),
    [
        ("lines: full", "lines: ful", "profiles[0].orders.lines", "lines: ful"),
        ("key_id: office", "key_id: office\n      secert: x", "profiles[0].agent.secert", "secert"),
        ("matching: smart", "matching: slim", "profiles[0].customers.matching", "matching: slim"),
        (
            "processing: add  ",
            "processing: update  ",
            "profiles[0].articles.processing",
            "processing: update",
        ),
        (
            "{interval: 15m,",
            "{interval: 15 minutes,",
            "profiles[0].tasks.import_orders.interval",
            "15 minutes",
        ),
        (
            "import_from: 2026-01-01 00:00",
            "import_from: gisteren",
            "profiles[0].magento.import_from",
            "gisteren",
        ),
        (
            "shipping_costs: {line: VERZEND}",
            "shipping_costs: {cost_type: 3}",
            "profiles[0].orders.shipping_costs.cost_type",
            "cost_type: 3",
        ),
        (
            "discount: {line: KORTING}",
            "discount: {line: KORTING, cost_type: 1}",
            "profiles[0].orders.discount",
            "KORTING, cost_type",
        ),
        ("backend: local", "backend: exact", "profiles[0].snelstart.backend", "backend: exact"),
        (
            "url: https://www.example.nl/koppel",
            "url: www.example.nl",
            "profiles[0].agent.url",
            "url: www.example",
        ),
        ("defer_days: 14", "defer_days: -1", "profiles[0].orders.defer_days", "defer_days: -1"),
        ("paused: false  ", "pauzed: false  ", "pauzed", "pauzed"),
    ],
)
def test_errors_name_key_and_line(tmp_path, old, new, key, needle):
    path = example_with(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_client_config(path)
    message = str(caught.value)
    assert key in message
    assert f"line {line_of(path, needle)}:" in message


def test_missing_required_key_points_at_its_parent(tmp_path):
    path = example_with(tmp_path, "key_id: office", "# key_id: office")
    with pytest.raises(
        ConfigError, match=r"line \d+: profiles\[0\]\.agent\.key_id: required setting is missing"
    ):
        load_client_config(path)


def test_duplicate_key_is_refused(tmp_path):
    path = example_with(tmp_path, "lines: full", "lines: full\n      lines: code_and_quantity")
    with pytest.raises(
        ConfigError,
        match=rf"line {line_of(path, 'code_and_quantity')}: profiles\[0\]\.orders\.lines: set twice",
    ):
        load_client_config(path)


def test_yaml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, "profiles:\n  - name: a\n    agent: {url: x\n")
    with pytest.raises(ConfigError, match=r"line 3: the '\{' on this line is not closed with '\}'"):
        load_client_config(path)


def test_unknown_timezone(tmp_path):
    path = example_with(tmp_path, "timezone: Europe/Amsterdam", "timezone: Europe/Amsterdm")
    with pytest.raises(ConfigError, match=rf"line {line_of(path, 'Amsterdm')}: timezone: unknown time zone"):
        load_client_config(path)


def test_times_are_local_per_timezone_and_utc_inside(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "timezone: Europe/Amsterdam", "timezone: America/New_York"
    )
    text = text.replace("import_from: 2026-01-01 00:00", "import_from: 2026-07-01 12:00")
    text = text.replace(
        "{interval: 15m, next_run: null", "{interval: 1h30m, next_run: 2026-03-29 02:30:00+02:00"
    )
    config = parse_client_config(text, tmp_path / "client.yml")
    profile = config.profiles[0]
    assert profile.magento.import_from == dt.datetime(2026, 7, 1, 16, 0, tzinfo=dt.UTC)  # EDT = UTC−4
    task = dict(profile.tasks.items())["import_orders"]
    assert task.interval == dt.timedelta(hours=1, minutes=30)
    assert task.next_run == dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)  # an explicit offset wins
    # A plain date is midnight local time.
    text2 = EXAMPLE.read_text(encoding="utf-8").replace(
        "import_from: 2026-01-01 00:00", "import_from: 2026-06-01"
    )
    assert parse_client_config(text2, tmp_path / "c.yml").profiles[0].magento.import_from == dt.datetime(
        2026, 5, 31, 22, 0, tzinfo=dt.UTC
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("15m", dt.timedelta(minutes=15)), ("1h", dt.timedelta(hours=1)), ("1d", dt.timedelta(days=1)),
     ("1h30m", dt.timedelta(minutes=90)), ("90s", dt.timedelta(seconds=90)), ("2D", dt.timedelta(days=2))],
)  # fmt: skip
def test_intervals(text, expected):
    assert parse_interval(text) == expected


@pytest.mark.parametrize("text", ["", "15", "m15", "30s", "1 week", "0m"])
def test_bad_intervals(text):
    with pytest.raises(ValueError):
        parse_interval(text)


def test_secret_resolved_lazily_with_clear_errors(tmp_path, monkeypatch):
    config = load_client_config(EXAMPLE)
    agent = config.profiles[0].agent
    monkeypatch.delenv("KOPPEL_AGENT_SECRET", raising=False)
    with pytest.raises(
        ConfigError, match="secret_env: the environment variable KOPPEL_AGENT_SECRET is not set"
    ):
        agent.secret_value()
    monkeypatch.setenv("KOPPEL_AGENT_SECRET", "s" * 40)
    assert agent.secret_value() == "s" * 40

    (tmp_path / "secret.txt").write_text("from-a-file-0123456789-abcdefghijkl\n", encoding="utf-8")
    path = example_with(tmp_path, "secret_env: KOPPEL_AGENT_SECRET", "secret_file: secret.txt")
    assert load_client_config(path).profiles[0].agent.secret_value() == "from-a-file-0123456789-abcdefghijkl"
    (tmp_path / "secret.txt").unlink()
    with pytest.raises(ConfigError, match="secret_file: cannot read"):
        load_client_config(path).profiles[0].agent.secret_value()

    both = example_with(
        tmp_path,
        "secret_env: KOPPEL_AGENT_SECRET",
        "secret_env: X\n      secret: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
    )
    with pytest.raises(ConfigError, match="give only one of secret, secret_file, secret_env"):
        load_client_config(both)


def test_b2b_profile_refuses_cost_types(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace("backend: local", "backend: b2b")
    text = text.replace("payment_costs: {line: BETAALKOSTEN}", "payment_costs: {cost_type: 2}")
    with pytest.raises(
        ConfigError,
        match=r"orders\.payment_costs: cost_type is not available through the SnelStart B2B API; use a cost article line",
    ):
        parse_client_config(text, tmp_path / "client.yml")
    ok = EXAMPLE.read_text(encoding="utf-8").replace("backend: local", "backend: b2b")
    assert parse_client_config(ok, tmp_path / "client.yml").profiles[0].snelstart.backend == "b2b"


def test_profile_lookup_and_unique_names(tmp_path):
    config = load_client_config(EXAMPLE)
    with pytest.raises(ConfigError, match=r"no profile named 'winkel'.*profiles: webshop"):
        config.profile("winkel")
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["profiles"].append(data["profiles"][0])
    path = write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="profile name 'webshop' is used twice"):
        load_client_config(path)


def test_empty_file_and_no_profiles(tmp_path):
    with pytest.raises(ConfigError, match="the file is empty"):
        load_client_config(write(tmp_path, "# nothing\n"))
    with pytest.raises(ConfigError, match="profiles"):
        load_client_config(write(tmp_path, "timezone: Europe/Amsterdam\nprofiles: []\n"))


def test_defaults_of_a_minimal_profile(tmp_path):
    path = write(
        tmp_path,
        "profiles:\n  - name: shop\n    agent: {url: 'http://agent', key_id: k, secret: ssssssssssssssssssssssssssssssss}\n"
        "    snelstart: {backend: local, path: admin.sqlite}\n",
    )
    profile = load_client_config(path).profiles[0]
    assert profile.orders.description == "order_number" and profile.orders.lines == "full"
    assert profile.orders.recipes == "never" and profile.orders.addresses == "from_order"
    assert profile.orders.unique_payment_reference is True and profile.orders.discount_mode == "separate"
    assert profile.articles.code_field == "artikelcode" and profile.articles.processing == "add"
    assert profile.customers.matching == "smart" and profile.customers.processing == "add"
    assert profile.snelstart.path == tmp_path / "admin.sqlite"
    assert profile.label == "Magento"


def test_lookup_order(tmp_path, monkeypatch):
    explicit = write(tmp_path, "x", "explicit.yml")
    env = write(tmp_path, "x", "env.yml")
    here = tmp_path / "cwd"
    here.mkdir()
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setattr("client.config.user_config_dir", lambda: user)
    monkeypatch.chdir(here)
    monkeypatch.setenv("KOPPEL_CONFIG", str(env))
    assert find_config_path(str(explicit)) == explicit
    assert find_config_path(None) == env
    monkeypatch.delenv("KOPPEL_CONFIG")
    with pytest.raises(ConfigError, match="no configuration found"):
        find_config_path(None)
    write(user, "x")
    assert find_config_path(None) == user / "client.yml"
    write(here, "x")
    assert find_config_path(None) == here / "client.yml"
    with pytest.raises(ConfigError, match="--config missing.yml: no such file"):
        find_config_path("missing.yml")
    monkeypatch.setenv("KOPPEL_CONFIG", str(tmp_path / "gone.yml"))
    with pytest.raises(ConfigError, match="KOPPEL_CONFIG="):
        find_config_path(None)


def test_backend_specific_requirements(tmp_path):
    no_path = example_with(tmp_path, "path: ./administratie.sqlite", "# no path")
    with pytest.raises(ConfigError, match=r"profiles\[0\]\.snelstart: backend local needs path"):
        load_client_config(no_path)
    desktop = EXAMPLE.read_text(encoding="utf-8").replace("backend: local", "backend: desktop")
    with pytest.raises(ConfigError, match="backend desktop needs kind"):
        parse_client_config(desktop, tmp_path / "client.yml")
    desktop = desktop.replace("# kind: sql ", "kind: lokaal ").replace(
        r"# folder: C:\SnelStart\Administraties", "folder: ./admins"
    )
    settings = parse_client_config(desktop, tmp_path / "client.yml").profiles[0].snelstart
    assert (
        settings.kind == "lokaal" and settings.folder == tmp_path / "admins" and settings.user == "Beheerder"
    )


@pytest.mark.parametrize(
    ("value", "line", "cost_type"),
    [("{line: VERZEND}", "VERZEND", None), ("{line: 1000}", "1000", None), ("{cost_type: 1}", None, 1),
     ("{cost_type: 2}", None, 2), ("null", None, None)],
)  # fmt: skip
def test_cost_setting_values(tmp_path, value, line, cost_type):
    path = example_with(tmp_path, "shipping_costs: {line: VERZEND}", f"shipping_costs: {value}")
    setting = load_client_config(path).profiles[0].orders.shipping_costs
    if value == "null":
        assert setting is None
    else:
        assert (setting.line, setting.cost_type) == (line, cost_type)


def test_a_short_secret_is_refused_at_load(tmp_path, monkeypatch):
    short = example_with(tmp_path, "secret_env: KOPPEL_AGENT_SECRET", "secret: short")
    with pytest.raises(
        ConfigError, match="secret has 5 characters; the agent requires at least 32"
    ) as caught:
        load_client_config(short)
    assert "secret" in str(caught.value) and " line " in str(caught.value)
    # A secret from the environment or a file is checked when it is read, with the same rule.
    monkeypatch.setenv("KOPPEL_AGENT_SECRET", "too-short")
    agent = load_client_config(EXAMPLE).profiles[0].agent
    with pytest.raises(ConfigError, match="9 characters; the agent requires at least 32"):
        agent.secret_value()


# -- files a new user may really have: other encodings, folders, hand-edited YAML ---------------------------


def test_a_file_that_is_not_utf8_names_line_and_byte_and_the_fix(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace("www.example.nl", "www.café.nl", 1)
    latin = tmp_path / "latin.yml"
    data = text.encode("latin-1", errors="replace")  # the arrows in comments become '?'
    latin.write_bytes(data)
    byte = data.index("é".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_client_config(latin)
    assert str(caught.value) == (
        f"{latin} line {line_of_bytes(latin, b'caf')}: byte {byte + 1} (0xE9, 'é' in "
        "Windows-1252/Latin-1) is not UTF-8; save it as UTF-8 text (Notepad: Save as, Encoding UTF-8)"
    )
    binary = tmp_path / "binary.yml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(
        ConfigError, match=r"binary\.yml: not a text file \(byte 1, on line 1, is the control"
    ):
        load_client_config(binary)
    # UTF-16 without a byte-order mark is full of NUL bytes: the same "not a text file", with the fix.
    bare = tmp_path / "bare16.yml"
    bare.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(ConfigError, match="not a text file .* save it as UTF-8"):
        load_client_config(bare)


def line_of_bytes(path: Path, needle: bytes) -> int:
    data = path.read_bytes()
    return data.count(b"\n", 0, data.index(needle)) + 1


@pytest.mark.parametrize("codec", ["utf-16", "utf-8-sig"])
def test_unicode_with_a_byte_order_mark_is_read(tmp_path, codec):
    # Notepad's "Unicode" is UTF-16 with a byte-order mark; "UTF-8 with BOM" starts with one too.
    text = EXAMPLE.read_text(encoding="utf-8").replace("www.example.nl", "www.café.nl", 1)
    path = tmp_path / "client.yml"
    path.write_bytes(text.encode(codec))
    assert load_client_config(path).profiles[0].description == "www.café.nl"


def test_a_secret_file_that_is_not_utf8_is_named(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes("geheim-wachtwoord-van-de-agent-é-0123456789".encode("latin-1"))
    path = example_with(tmp_path, "secret_env: KOPPEL_AGENT_SECRET", "secret_file: secret.txt")
    agent = load_client_config(path).profiles[0].agent
    with pytest.raises(ConfigError) as caught:
        agent.secret_value()
    assert str(caught.value).startswith(f"agent.secret_file: {secret} line 1: byte 32 (0xE9")
    assert "save it as UTF-8" in str(caught.value)
    secret.unlink()
    secret.mkdir()
    with pytest.raises(ConfigError, match=f"agent.secret_file: {re.escape(str(secret))} is a folder"):
        agent.secret_value()


@pytest.mark.parametrize(
    ("old", "new", "needle", "says"),
    [
        # One space less: the line lines up with nothing above it.
        ("    agent:  ", "   agent:  ", "   agent:", "the indentation is wrong: 'agent:' does not line up"),
        # Two spaces more, after a line that has its value.
        ("      key_id: office", "        key_id: office", "key_id: office",
         "the indentation is wrong: 'key_id: office' does not line up"),
        ("    paused: false\n", "    paused: false\n      agent_url: x\n", "agent_url: x",
         "the indentation is wrong: 'agent_url: x' is indented further than the setting above it"),
        ("      url: https://www.example.nl/koppel", "\t  url: https://www.example.nl/koppel", "url: https",
         "a tab character; use spaces, not tabs"),
        ("description: www.example.nl ", "description: 'www.example.nl ", "description: 'www",
         "a quote is opened but never closed"),
        ("description: www.example.nl ", "description: shop: www.example.nl ", "description: shop",
         "a second ': ' on one line; a value that contains ': ' must be put in quotes"),
        ("defer_states: [pending_payment, payment_review]", "defer_states: [pending_payment, payment_review",
         "defer_states: [", "the '[' on this line is not closed with ']'"),
        ("      key_id: office", "      key_id office", "key_id office", "a setting without ':'"),
    ],
)  # fmt: skip
def test_yaml_mistakes_are_said_plainly_with_their_line(tmp_path, old, new, needle, says):
    path = example_with(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_client_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line {line_of(path, needle)}: {says}"), message
    assert "<block" not in message and "not valid YAML" not in message


def test_a_tab_in_a_badly_indented_line_says_use_spaces(tmp_path):
    path = write(tmp_path, "profiles:\n  - name: shop\n    agent:\n      url: x\n  \t  key_id: y\n")
    with pytest.raises(ConfigError, match="line 5: .*use spaces, not tabs"):
        load_client_config(path)


def test_a_folder_given_as_client_yml_is_called_a_folder(tmp_path, monkeypatch):
    with pytest.raises(
        ConfigError, match=rf"^--config {re.escape(str(tmp_path))}: that is a folder, not a file"
    ):
        find_config_path(str(tmp_path))
    write(tmp_path, EXAMPLE.read_text(encoding="utf-8"))
    with pytest.raises(ConfigError, match=rf"did you mean {re.escape(str(tmp_path / 'client.yml'))}\?"):
        find_config_path(str(tmp_path))
    monkeypatch.setenv("KOPPEL_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match="^KOPPEL_CONFIG=.*: that is a folder"):
        find_config_path(None)
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        load_client_config(tmp_path)


def test_snelstart_path_pointing_at_a_folder_says_so_at_load(tmp_path):
    (tmp_path / "admins").mkdir()
    path = example_with(tmp_path, "path: ./administratie.sqlite", "path: ./admins")
    with pytest.raises(ConfigError) as caught:
        load_client_config(path)
    assert str(caught.value) == (
        f"{path} line {line_of(path, 'path: ./admins')}: profiles[0].snelstart.path: {tmp_path / 'admins'} is a "
        f"folder; give the administration file, e.g. {tmp_path / 'admins' / 'administratie.sqlite'}"
    )
    # With another backend the key is not used, so a folder there is no error.
    b2b = path.read_text(encoding="utf-8").replace("backend: local", "backend: b2b")
    assert parse_client_config(b2b, path).profiles[0].snelstart.backend == "b2b"


def test_the_b2b_rate_tier_defaults_to_development(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace("backend: local", "backend: b2b")
    assert parse_client_config(text, tmp_path / "client.yml").profiles[0].snelstart.tier == "development"
    chosen = text.replace("# tier: development ", "tier: production ")
    assert parse_client_config(chosen, tmp_path / "client.yml").profiles[0].snelstart.tier == "production"
    wrong = text.replace("# tier: development ", "tier: gold ")
    with pytest.raises(ConfigError, match=r"snelstart\.tier: .*'development' or 'production'"):
        parse_client_config(wrong, tmp_path / "client.yml")


def test_the_examples_path_and_its_init_command_agree():
    text = EXAMPLE.read_text(encoding="utf-8")
    path = re.search(r"^\s+path: \./(\S+)", text, re.M).group(1)  # type: ignore[union-attr]
    assert f"koppel snelstart init --local {path} --sample" in text


@pytest.mark.parametrize(
    ("old", "new", "key", "wrong", "nearest"),
    [
        ("import_states: null", "import_states: [procesing]", "import_states[0]", "procesing", "processing"),
        ("import_states: null", "import_states: [complete, Closed]", "import_states[1]", "Closed", "closed"),
        (
            "defer_states: [pending_payment, payment_review]",
            "defer_states: [pending_payment, paymentreview]",
            "defer_states[1]",
            "paymentreview",
            "payment_review",
        ),
    ],
)
def test_an_unknown_order_state_is_refused_naming_line_and_nearest_state(
    tmp_path, old, new, key, wrong, nearest
):
    path = example_with(tmp_path, old, new)
    with pytest.raises(ConfigError) as caught:
        load_client_config(path)
    message = str(caught.value)
    assert message.startswith(
        f"{path} line {line_of(path, wrong)}: profiles[0].orders.{key}: {wrong!r} is not a Magento order state; "
        f"did you mean {nearest}? (the states are new, pending_payment, payment_review, processing, complete, "
        "closed, canceled, holded)"
    ), message
    # The command line treats it as every other configuration error: wrong use, exit 2.
    assert main(["run", "--config", str(path)]) == 2


def test_every_magento_order_state_is_accepted(tmp_path):
    states = "[new, pending_payment, payment_review, processing, complete, closed, canceled, holded]"
    path = example_with(tmp_path, "import_states: null", f"import_states: {states}")
    profile = load_client_config(path).profiles[0]
    assert profile.orders.import_states == states.strip("[]").split(", ")
    assert profile.orders.defer_states == ["pending_payment", "payment_review"]
