"""Where the SnelStart keys come from (value, environment, file, OS keyring), and that they never show."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from client.config import ConfigError, parse_client_config
from client.snelstart.factory import open_backend
from client.snelstart.secrets import Secret, SecretError, resolve_secret
from tests.client.b2b_fake import FakeSnelStart


class MemoryKeyring(KeyringBackend):
    """An OS keyring stand-in: same API, kept in memory."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)


def test_each_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring) -> None:
    monkeypatch.setenv("KEY_ENV", "  from-env\n")
    (tmp_path / "key.txt").write_text("from-file\n", encoding="utf-8")
    memory_keyring.set_password("koppel", "snelstart", "from-ring")
    memory_keyring.set_password("shop-a", "snelstart", "from-other-service")
    assert resolve_secret("s", value="plain").reveal() == "plain"
    assert resolve_secret("s", env="KEY_ENV").reveal() == "from-env"
    assert resolve_secret("s", file="key.txt", base_dir=tmp_path).reveal() == "from-file"
    assert resolve_secret("s", keyring="snelstart").reveal() == "from-ring"
    assert resolve_secret("s", keyring="shop-a/snelstart").reveal() == "from-other-service"


def test_clear_messages_that_name_the_setting(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    with pytest.raises(SecretError, match="snelstart.client_key: not configured"):
        resolve_secret("snelstart.client_key")
    with pytest.raises(SecretError, match="only one source"):
        resolve_secret("snelstart.client_key", value="a", env="B")
    with pytest.raises(SecretError, match="NOPE_NOT_SET is not set"):
        resolve_secret("snelstart.client_key", env="NOPE_NOT_SET")
    with pytest.raises(SecretError, match="cannot read"):
        resolve_secret("snelstart.client_key", file=tmp_path / "missing.txt")
    with pytest.raises(SecretError, match="no entry 'absent'"):
        resolve_secret("snelstart.client_key", keyring="absent")


def test_a_secret_does_not_show_itself(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("hunter2-koppelsleutel")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("koppel").info("key is %s / %r / %s", secret, secret, f"{secret}")
    assert "hunter2" not in caplog.text
    assert "hunter2" not in repr([secret]) + str({"k": secret})
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert secret.reveal() == "hunter2-koppelsleutel"
    assert secret.fingerprint() != secret.reveal() and len(secret.fingerprint()) == 16


def _yaml(admin: Path, state: Path, snelstart: str, orders: str = "") -> str:
    return f"""
state: {state}
profiles:
  - name: shop
    agent: {{url: "http://127.0.0.1:9", key_id: office, secret: s3cret-s3cret-s3cret-s3cret-s3cret}}
    magento: {{import_from: "2026-01-01 00:00"}}
    snelstart: {snelstart}
    orders: {{template: Webshop{orders}}}
"""


def test_b2b_from_config_with_keyring_keys(
    b2b_fake: FakeSnelStart, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    memory_keyring.set_password("koppel", "client-key", b2b_fake.client_key)
    memory_keyring.set_password("koppel", "subscription-key", b2b_fake.subscription_key)
    snelstart = (
        f"{{backend: b2b, client_key_keyring: client-key, subscription_key_keyring: subscription-key, "
        f'api_url: "{b2b_fake.api_url}", auth_url: "{b2b_fake.auth_url}", tier: development}}'
    )
    config = parse_client_config(
        _yaml(b2b_fake.local_path, tmp_path / "s.sqlite", snelstart), tmp_path / "client.yml"
    )
    backend = open_backend(config.profile("shop").snelstart, tmp_path)
    try:
        assert backend.name == "b2b"
        assert backend.administration_name() == "Voorbeeld Koffie BV"
        assert backend.http.limiter.tier.concurrent == 5  # type: ignore[attr-defined]
    finally:
        backend.close()


def test_footer_cost_types_are_refused_when_the_config_is_loaded(tmp_path: Path) -> None:
    snelstart = "{backend: b2b, client_key_env: K, subscription_key_env: S}"
    text = _yaml(tmp_path / "a.sqlite", tmp_path / "s.sqlite", snelstart, ", shipping_costs: {cost_type: 1}")
    with pytest.raises(ConfigError, match="cost_type is not available through the SnelStart B2B API.*line"):
        parse_client_config(text, tmp_path / "client.yml")


def test_recipe_expansion_is_refused_on_b2b_when_the_config_is_loaded(tmp_path: Path) -> None:
    snelstart = "{backend: b2b, client_key_env: K, subscription_key_env: S}"
    text = _yaml(tmp_path / "a.sqlite", tmp_path / "s.sqlite", snelstart, ", recipes: always")
    with pytest.raises(ConfigError, match="recipes: always is not available through the SnelStart B2B API"):
        parse_client_config(text, tmp_path / "client.yml")
    parse_client_config(text.replace("recipes: always", "recipes: never"), tmp_path / "client.yml")


def test_no_os_keyring_suggests_the_env_and_file_settings(tmp_path: Path) -> None:
    from keyring.backends import fail

    from client.connection_test import check_snelstart

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())  # what keyring picks on a machine without any OS keyring
    try:
        snelstart = "{backend: b2b, client_key_keyring: client-key, subscription_key_env: KOPPEL_NO_SUCH_VAR}"
        config = parse_client_config(
            _yaml(tmp_path / "a.sqlite", tmp_path / "s.sqlite", snelstart), tmp_path / "c.yml"
        )
        with pytest.raises(SecretError) as caught:
            open_backend(config.profile("shop").snelstart, tmp_path)
        [check] = check_snelstart(config, config.profile("shop"))
    finally:
        keyring.set_keyring(previous)
    assert str(caught.value) == (
        "snelstart.client_key_keyring: no OS keyring is available on this machine; give the key with "
        "snelstart.client_key_env (an environment variable) or snelstart.client_key_file instead"
    )
    assert check.line() == f"FAILED  SnelStart (b2b): {caught.value}"  # no "check the koppelsleutel" on top
