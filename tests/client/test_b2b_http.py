"""Token, limiter, retries and the look-before-resend of verkooporders, against the fake B2B API."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from client.snelstart import b2b_http as h
from client.snelstart.b2b import B2BBackend
from client.snelstart.base import Adres, NieuweRelatie, NieuweVerkooporder, OrderRegel, SnelStartUnavailable
from client.snelstart.secrets import Secret
from tests.client.b2b_fake import FakeSnelStart
from tests.client.conftest_b2b import FAST_RETRY, make_b2b_backend


class Sleeps:
    """Records waits instead of sleeping, so backoff is asserted without slowing the suite."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def _order(b: B2BBackend, kenmerk: str) -> NieuweVerkooporder:
    sjabloon = next(s for s in b.sjablonen() if s.prijs_incl_btw)
    return NieuweVerkooporder(
        relatie_id=b.relaties_by_code(1)[0].id,
        datum=dt.date(2026, 12, 3),
        sjabloon_id=sjabloon.id,
        prijs_incl_btw=True,
        omschrijving=f"Webshop-order {kenmerk}",
        betalingskenmerk=kenmerk,
        regels=[
            OrderRegel(
                artikel_id=b.artikelen_by_code("1001")[0].id,
                omschrijving="Koffie",
                aantal=Decimal("1"),
                stuksprijs=Decimal("18.95"),
            )
        ],
    )


# -- token ----------------------------------------------------------------------------------------------------------


def test_token_by_clientkey_renewed_60_seconds_before_expiry(b2b_fake: FakeSnelStart) -> None:
    now = [1000.0]
    tokens = h.TokenProvider(
        b2b_fake.auth_url,
        Secret(b2b_fake.client_key),
        requests.Session(),
        FAST_RETRY,
        (2, 2),
        clock=lambda: now[0],
    )
    first = tokens.bearer()
    now[0] += 3600 - 61  # one second before the renewal point
    assert tokens.bearer() == first
    now[0] += 1
    second = tokens.bearer()
    assert second != first
    assert b2b_fake.token_requests == 2


def test_renewal_margin_counts_from_when_the_token_was_requested(b2b_fake: FakeSnelStart) -> None:
    """A slow token answer must not eat into the 60 s: SnelStart's clock starts when it issues the token."""
    now = [1000.0]

    class SlowSession(requests.Session):
        def post(self, *args: object, **kwargs: object) -> requests.Response:  # type: ignore[override]
            resp = super().post(*args, **kwargs)  # type: ignore[arg-type]
            now[0] += 30  # the answer arrives 30 s after the request left
            return resp

    tokens = h.TokenProvider(
        b2b_fake.auth_url,
        Secret(b2b_fake.client_key),
        SlowSession(),
        FAST_RETRY,
        (2, 2),
        clock=lambda: now[0],
    )
    first = tokens.bearer()  # requested at 1000, valid until at most 1000 + 3600
    now[0] = 1000 + 3600 - 60 - 0.5
    assert tokens.bearer() == first
    now[0] = 1000 + 3600 - 60
    assert tokens.bearer() != first, "renewed exactly 60 s before the expiry counted from the request"


def test_one_token_for_many_calls_and_both_headers_on_each(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    for _ in range(5):
        b2b_backend.http.get("/landen")
    assert b2b_fake.token_requests == 1
    assert len(b2b_fake.calls) >= 5  # the fake rejects (and records) a call missing either header


def test_401_gets_one_new_token_and_one_repeat(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    b2b_fake.expire_tokens()
    assert b2b_backend.http.get("/landen")
    assert b2b_fake.token_requests == 2


def test_wrong_subscription_key_is_refused_without_looping(b2b_fake: FakeSnelStart, tmp_path: Path) -> None:
    backend = B2BBackend(
        client_key=Secret(b2b_fake.client_key),
        subscription_key=Secret("wrong-subscription-key"),
        state=tmp_path / "m.sqlite",
        api_url=b2b_fake.api_url,
        auth_url=b2b_fake.auth_url,
        retry=FAST_RETRY,
        timeout=(2, 2),
    )
    with pytest.raises(h.AccessRefused, match="401"):
        backend.http.get("/landen")
    assert len(b2b_fake.calls) == 2  # the call and its one repeat with a new token
    backend.close()


def test_wrong_client_key_is_refused_at_once(b2b_fake: FakeSnelStart, tmp_path: Path) -> None:
    backend = B2BBackend(
        client_key=Secret("not-the-key"),
        subscription_key=Secret(b2b_fake.subscription_key),
        state=tmp_path / "m.sqlite",
        api_url=b2b_fake.api_url,
        auth_url=b2b_fake.auth_url,
        retry=FAST_RETRY,
    )
    with pytest.raises(h.AccessRefused, match="koppelsleutel"):
        backend.administration_name()
    assert b2b_fake.token_requests == 1
    backend.close()


# -- retries ----------------------------------------------------------------------------------------------------------


def test_429_is_retried_honouring_retry_after(b2b_fake: FakeSnelStart, tmp_path: Path) -> None:
    sleeps = Sleeps()
    backend = make_b2b_backend(b2b_fake, tmp_path / "m.sqlite", sleep=sleeps)
    b2b_fake.inject("GET", "/landen", "429", times=2, retry_after="7")
    assert backend.http.get("/landen")
    assert len(sleeps.waits) == 2 and all(7 <= w < 7.2 for w in sleeps.waits)
    assert backend.http.calls == 3
    backend.close()


def test_5xx_and_timeouts_on_reads_are_retried_with_growing_backoff(
    b2b_fake: FakeSnelStart, tmp_path: Path
) -> None:
    sleeps = Sleeps()
    policy = h.RetryPolicy(attempts=5, base_s=1.0, cap_s=30.0)
    backend = make_b2b_backend(b2b_fake, tmp_path / "m.sqlite", sleep=sleeps, retry=policy)
    b2b_fake.inject("GET", "/landen", "503", times=2)
    b2b_fake.inject("GET", "/landen", "timeout_before", times=1)
    assert backend.http.get("/landen")
    assert backend.http.calls == 4
    # equal jitter: try n waits between half and all of base·2^n
    for n, wait in enumerate(sleeps.waits):
        assert 2**n / 2 <= wait <= 2**n
    backend.close()


def test_gives_up_after_the_last_try(b2b_fake: FakeSnelStart, tmp_path: Path) -> None:
    backend = make_b2b_backend(b2b_fake, tmp_path / "m.sqlite", sleep=Sleeps())
    b2b_fake.inject("GET", "/landen", "500", times=10)
    with pytest.raises(SnelStartUnavailable, match="HTTP 500"):
        backend.http.get("/landen")
    assert backend.http.calls == FAST_RETRY.attempts
    backend.close()


def test_retry_after_parsing() -> None:
    assert h.parse_retry_after("12") == 12.0
    assert h.parse_retry_after(None) is None
    assert h.parse_retry_after("soon") is None
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    assert h.parse_retry_after("Thu, 03 Dec 2026 12:00:30 GMT", now=lambda: now) == 30.0
    assert h.RetryPolicy().delay(0, retry_after=1000) <= 300.1


# -- creates whose outcome is unknown -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["timeout_after", "timeout_before", "500", "502"])
def test_verkooporder_with_unknown_outcome_is_looked_up_before_sending_again(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart, fault: str
) -> None:
    kenmerk = f"UNK-{fault}"
    order = _order(b2b_backend, kenmerk)
    b2b_fake.inject("POST", "/verkooporders", fault)
    b2b_fake.calls.clear()
    created = b2b_backend.create_verkooporder(order)
    stored = b2b_fake.local.verkooporders_by_betalingskenmerk(kenmerk)
    assert len(stored) == 1, "exactly one order, whatever happened to the answer"
    assert created.nummer == stored[0].nummer
    sequence = [(m, p, a.get("$filter", "")) for m, p, a in b2b_fake.calls if p == "/verkooporders"]
    assert sequence[0][0] == "POST"
    assert sequence[1] == ("GET", "/verkooporders", f"Betalingskenmerk eq '{kenmerk}'")
    posts = sum(1 for m, _, _ in sequence if m == "POST")
    assert posts == (1 if fault == "timeout_after" else 2)


@pytest.mark.parametrize("fault", ["timeout_after", "timeout_before", "500", "502"])
def test_relatie_with_unknown_outcome_is_looked_up_before_sending_again(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart, fault: str
) -> None:
    naam = f"Verloren Antwoord {fault} BV"
    nieuw = NieuweRelatie(
        naam=naam, vestigingsadres=Adres(None, "Kade 1", "2611 AA", "Delft", "NL"), email="inkoop@example.nl"
    )
    b2b_fake.inject("POST", "/relaties", fault)
    b2b_fake.calls.clear()
    created = b2b_backend.create_relatie(nieuw)
    stored = [r for r in b2b_fake.local.relaties_by_name(naam.casefold(), None, None) if r.naam == naam]
    assert len(stored) == 1, "exactly one relatie, whatever happened to the answer"
    assert created.relatiecode == stored[0].relatiecode and created.naam == naam
    sequence = [(m, p) for m, p, _ in b2b_fake.calls if p.startswith("/relaties")]
    assert sequence[:2] == [("POST", "/relaties"), ("GET", "/relaties")]  # looked up before anything else
    posts = sum(1 for m, _ in sequence if m == "POST")
    assert posts == (1 if fault == "timeout_after" else 2)
    assert b2b_backend.relaties_by_email("inkoop@example.nl", all_fields=False) == [created]


def test_an_existing_relatie_with_the_same_name_is_not_taken_for_the_lost_one(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    nieuw = NieuweRelatie(naam="Tweeling BV", vestigingsadres=Adres(None, "Kade 2", "2611 AB", "Delft", "NL"))
    first = b2b_backend.create_relatie(nieuw)
    b2b_fake.inject("POST", "/relaties", "timeout_before")
    second = b2b_backend.create_relatie(nieuw)
    assert (
        second.id != first.id
    )  # the one already in the mirror is not the lost one; the resend made a new one


def test_verkooporder_429_is_simply_retried(b2b_backend: B2BBackend, b2b_fake: FakeSnelStart) -> None:
    b2b_fake.inject("POST", "/verkooporders", "429")
    b2b_backend.create_verkooporder(_order(b2b_backend, "RL-1"))
    assert len(b2b_fake.local.verkooporders_by_betalingskenmerk("RL-1")) == 1


def test_an_earlier_order_with_the_same_kenmerk_is_not_taken_for_the_lost_one(
    b2b_backend: B2BBackend, b2b_fake: FakeSnelStart
) -> None:
    first = b2b_backend.create_verkooporder(_order(b2b_backend, "DUP-1"))
    b2b_backend.verkooporders_by_betalingskenmerk("DUP-1")  # what the engine does before a create
    b2b_fake.inject("POST", "/verkooporders", "timeout_before")
    second = b2b_backend.create_verkooporder(_order(b2b_backend, "DUP-1"))
    assert second.id != first.id
    assert len(b2b_fake.local.verkooporders_by_betalingskenmerk("DUP-1")) == 2


# -- limiter -----------------------------------------------------------------------------------------------------------


def test_limiter_windows_per_minute_and_per_hour() -> None:
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = h.RateLimiter(h.Tier(per_minute=3, per_hour=4, concurrent=2), clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        with limiter.slot():
            now[0] += 1
    assert waits == []
    with limiter.slot():  # 4th within the minute waits for the first to leave the window
        pass
    assert waits == [pytest.approx(57.0)]
    with limiter.slot():  # 5th exceeds the hour
        pass
    assert now[0] == pytest.approx(3600.0)


def test_tiers_are_the_documented_ones() -> None:
    assert h.TIERS["development"] == h.Tier(100, 1000, 5)
    assert h.TIERS["production"] == h.Tier(500, 5000, 50)
    assert h.limiter_for("admin-x", "development") is h.limiter_for("admin-x", "development")
    with pytest.raises(ValueError, match="tier"):
        h.limiter_for("admin-x", "gold")


def test_a_backend_built_without_a_tier_takes_the_one_the_config_defaults_to(
    b2b_fake: FakeSnelStart, tmp_path: Path
) -> None:
    """The 100/min development tier unless production is chosen, in client.yml and in code alike: assuming the
    larger tier costs 429s on an administration that has the smaller one."""
    from client.config import SnelStartSettings

    backend = B2BBackend(
        client_key=Secret(b2b_fake.client_key),
        subscription_key=Secret(b2b_fake.subscription_key),
        state=tmp_path / "m.sqlite",
        api_url=b2b_fake.api_url,
        auth_url=b2b_fake.auth_url,
    )
    try:
        configured = SnelStartSettings.model_fields["tier"].default
        assert configured == "development"
        assert backend.http.limiter.tier == h.TIERS[configured] == h.Tier(100, 1000, 5)
    finally:
        backend.close()


def test_no_more_calls_in_flight_than_the_tier_allows(b2b_fake: FakeSnelStart, tmp_path: Path) -> None:
    backend = make_b2b_backend(b2b_fake, tmp_path / "m.sqlite", tier="development")
    backend.http.get("/landen")  # token first, so the threads below only measure API calls
    b2b_fake.inject("GET", "/landen", "slow", times=12)
    threads = [threading.Thread(target=backend.http.get, args=("/landen",)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 2 <= b2b_fake.max_in_flight <= 5
    backend.close()


# -- wire format -------------------------------------------------------------------------------------------------------


def test_decimals_travel_exactly() -> None:
    body = {"a": Decimal("0.1") + Decimal("0.2"), "b": [Decimal("12.3450")], "c": Decimal("1E+2"), "d": "x"}
    assert h.encode_json(body) == b'{"a": 0.3, "b": [12.345], "c": 100, "d": "x"}'
    assert h.decode_json(b'{"p": 18.95, "n": 3}') == {"p": Decimal("18.95"), "n": 3}


def test_no_network_blames_the_network_not_the_keys(b2b_fake: FakeSnelStart, tmp_path: Path) -> None:
    from client.connection_test import _open_fix
    from tests.client.conftest import free_port

    closed = f"http://127.0.0.1:{free_port()}/b2b/token"  # nothing listens: as if the PC were offline
    backend = B2BBackend(
        client_key=Secret(b2b_fake.client_key),
        subscription_key=Secret(b2b_fake.subscription_key),
        state=tmp_path / "s.sqlite",
        api_url=b2b_fake.api_url,
        auth_url=closed,
        retry=FAST_RETRY,
        tier="production",
    )
    try:
        with pytest.raises(h.LoginUnavailable) as caught:
            backend.administration_name()
    finally:
        backend.close()
    message = str(caught.value)
    assert message.startswith(
        f"SnelStart login unavailable: the SnelStart auth server {closed} could not be reached"
    )
    assert "check this PC's network connection, its proxy (HTTPS_PROXY) and snelstart.auth_url" in message
    assert "koppelsleutel" not in message and b2b_fake.client_key not in message
    # test-connection adds no "check the koppelsleutel" fix of its own to it.
    assert _open_fix("b2b", caught.value) is None
    assert "koppelsleutel" in (_open_fix("b2b", RuntimeError("x")) or "")
