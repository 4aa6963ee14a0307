"""Fixtures for the b2b backend, offered to every client test.

- ``b2b_fake`` → a started ``FakeSnelStart`` over a fresh sample local administration; the test fails when any
  request or response did not validate against the OpenAPI file.
- ``b2b_backend`` → a ``B2BBackend`` talking to that fake (short timeouts, fast retries, mirror in tmp_path).
- ``snelstart_backend`` → parametrized over "local" and "b2b": the same sample administration, reached directly
  or through the B2B API fake. Rule and engine tests that take this fixture run against both backends.
- ``snelstart_setup`` → the LocalBackend holding that administration, for set-up the API cannot do
  (``define_extra_veld``, ``add_prijsafspraak``, ``set_technische_voorraad``); call ``snelstart_backend.refresh()``
  after set-up so the b2b mirror sees it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from client.snelstart.b2b import B2BBackend
from client.snelstart.b2b_http import RetryPolicy
from client.snelstart.base import Artikel, Omzetgroep, Relatie, SnelStartBackend, Verkoopsjabloon
from client.snelstart.local import LocalBackend
from client.snelstart.secrets import Secret
from tests.client.b2b_fake import KIND, FakeSnelStart, from_uuid, to_uuid

FAST_RETRY = RetryPolicy(attempts=5, base_s=0.01, cap_s=0.05)
TEST_TIMEOUT = (2.0, 0.5)


def _fresh_admin(tmp_path: Path) -> Path:
    from client.snelstart.local_init import init_local

    path = tmp_path / "b2b-administratie.sqlite"
    if not path.exists():
        init_local(path, sample=True)
    return path


def make_b2b_backend(
    fake: FakeSnelStart, state: Path | str, cls: type[B2BBackend] = B2BBackend, **kwargs: object
) -> B2BBackend:
    options: dict[str, object] = {"timeout": TEST_TIMEOUT, "retry": FAST_RETRY, "tier": "production"}
    options.update(kwargs)
    return cls(
        client_key=Secret(fake.client_key),
        subscription_key=Secret(fake.subscription_key),
        state=state,
        api_url=fake.api_url,
        auth_url=fake.auth_url,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def b2b_fake(tmp_path: Path) -> Iterator[FakeSnelStart]:
    fake = FakeSnelStart(_fresh_admin(tmp_path), timeout_sleep=1.0).start()
    try:
        yield fake
    finally:
        fake.stop()
    assert not fake.violations, "requests/responses outside the OpenAPI contract:\n" + "\n".join(
        fake.violations
    )


@pytest.fixture
def b2b_backend(b2b_fake: FakeSnelStart, tmp_path: Path) -> Iterator[B2BBackend]:
    backend = make_b2b_backend(b2b_fake, tmp_path / "state-mirror.sqlite")
    backend.refresh()
    yield backend
    backend.close()


@pytest.fixture(params=["local", "b2b"])
def snelstart_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SnelStartBackend]:
    """The sample administration behind the local backend, or behind the B2B API fake."""
    if request.param == "local":
        yield request.getfixturevalue("snelstart_setup")
        return
    fake = request.getfixturevalue("b2b_fake")
    backend = make_b2b_backend(fake, tmp_path / "state-mirror.sqlite")
    backend.refresh()
    yield backend
    backend.close()


@pytest.fixture
def snelstart_setup(tmp_path: Path) -> Iterator[LocalBackend]:
    # The same file the fake serves (both open it in WAL mode), so set-up shows through the API.
    backend = LocalBackend(_fresh_admin(tmp_path))
    yield backend
    backend.close()


_FAKE_ID = re.compile(r"^0000000([1-5])-0000-4000-8000-[0-9a-f]{12}$")
_KINDS = {Relatie: "relatie", Artikel: "artikel", Verkoopsjabloon: "sjabloon", Omzetgroep: "omzetgroep"}


def _to_local(value: Any) -> Any:
    """The fake's uuids in set-up arguments → the local administration's row ids."""
    if isinstance(value, str) and (m := _FAKE_ID.match(value)):
        kind = next(k for k, n in KIND.items() if n == int(m.group(1)))
        return from_uuid(kind, value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value, **{f.name: _to_local(getattr(value, f.name)) for f in dataclasses.fields(value)}
        )
    if isinstance(value, list | tuple):
        return type(value)(_to_local(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_local(v) for k, v in value.items()}
    return value


class B2BUnderTest(B2BBackend):
    """A B2BBackend that also offers the local backend's set-up calls (``add_sjabloon``, ``define_extra_veld``,
    ``set_recept``, ``add_prijsafspraak``, …): what a user does in SnelStart itself, never through the API.
    They go to the administration behind the fake, with ids translated, and the mirror is refreshed after."""

    _local: LocalBackend

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        method = getattr(self._local, name)

        def setup_call(*args: Any, **kwargs: Any) -> Any:
            result = method(*_to_local(args), **_to_local(kwargs))
            self._sjablonen = self._omzetgroepen = None
            self.refresh()
            kind = _KINDS.get(type(result))
            if kind is None:
                return result
            uid = to_uuid(kind, result.id)
            if kind == "artikel":
                return self.get_artikel(uid)
            if kind == "relatie":
                return self.get_relatie(uid)
            return dataclasses.replace(result, id=uid)

        return setup_call


@contextmanager
def b2b_over(local: LocalBackend, tmp_path: Path) -> Iterator[B2BBackend]:
    """The administration of ``local`` behind the fake B2B API, reached through a B2BBackend.

    For parametrizing a rule test's own ``backend`` fixture over both backends:
    ``with b2b_over(local, tmp_path) as b2b: yield b2b``. Fails the test on any OpenAPI violation."""
    fake = FakeSnelStart(local.path, timeout_sleep=1.0).start()
    backend = make_b2b_backend(fake, tmp_path / "b2b-mirror.sqlite", cls=B2BUnderTest)
    backend._local = local  # type: ignore[attr-defined]
    try:
        backend.refresh()
        yield backend
    finally:
        backend.close()
        fake.stop()
    assert not fake.violations, "requests/responses outside the OpenAPI contract:\n" + "\n".join(
        fake.violations
    )
