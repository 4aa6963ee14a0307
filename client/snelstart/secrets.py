"""Secrets for the SnelStart connection: from the config value, an environment variable, a file or the OS keyring.

A resolved secret is wrapped in ``Secret`` so that an accidental ``print``, f-string, ``repr`` or log call shows
``***`` instead of the key; the value itself is only reachable through ``reveal()``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

KEYRING_DEFAULT_SERVICE = "koppel"


class SecretError(ValueError):
    """A secret could not be found; the message names the setting, never the value."""


class Secret:
    """A string that does not show itself in output or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise SecretError("empty secret")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def fingerprint(self) -> str:
        """A short one-way tag, usable as a cache key without exposing the value."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would be a way to leak the value into files or other processes.
        raise TypeError("a Secret cannot be pickled")


def _from_keyring(reference: str, setting: str) -> str | None:
    """``reference`` is ``service/name`` or just ``name`` (service "koppel")."""
    instead = f"give the key with {setting}_env (an environment variable) or {setting}_file instead"
    try:
        import keyring
        from keyring.errors import KeyringError, NoKeyringError
    except ImportError as exc:  # the client extra brings keyring; a bare install may not have it
        raise SecretError(f"{setting}_keyring: the 'keyring' package is not installed; {instead}") from exc
    service, _, name = reference.rpartition("/")
    service = service or KEYRING_DEFAULT_SERVICE
    try:
        return keyring.get_password(service, name)
    except NoKeyringError as exc:
        # A server or a container without a desktop session: there is no keyring to ask at all.
        raise SecretError(
            f"{setting}_keyring: no OS keyring is available on this machine; {instead}"
        ) from exc
    except KeyringError as exc:
        raise SecretError(
            f"{setting}_keyring: the OS keyring could not be read ({type(exc).__name__}); unlock it, or {instead}"
        ) from exc


def resolve_secret(
    setting: str,
    *,
    value: str | None = None,
    env: str | None = None,
    file: str | Path | None = None,
    keyring: str | None = None,
    base_dir: Path | None = None,
) -> Secret:
    """Resolve exactly one of the four sources of the secret named ``setting`` (e.g. "snelstart.client_key").

    ``file`` is relative to ``base_dir`` (the folder of client.yml) when not absolute; surrounding white space
    of a file or variable is dropped because editors and shells add newlines.
    """
    given = [name for name, v in (("", value), ("_env", env), ("_file", file), ("_keyring", keyring)) if v]
    if not given:
        raise SecretError(
            f"{setting}: not configured; set one of {setting}, {setting}_env, {setting}_file or {setting}_keyring"
        )
    if len(given) > 1:
        names = ", ".join(setting + suffix for suffix in given)
        raise SecretError(f"{setting}: give only one source, not {names}")
    if value:
        return Secret(value.strip())
    if env:
        found = os.environ.get(env, "").strip()
        if not found:
            raise SecretError(f"{setting}_env: environment variable {env} is not set or empty")
        return Secret(found)
    if file:
        path = Path(file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            found = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"{setting}_file: cannot read {path} ({exc.strerror or exc})") from exc
        if not found:
            raise SecretError(f"{setting}_file: {path} is empty")
        return Secret(found)
    assert keyring is not None
    found = (_from_keyring(keyring, setting) or "").strip()
    if not found:
        raise SecretError(f"{setting}_keyring: no entry {keyring!r} in the OS keyring")
    return Secret(found)
