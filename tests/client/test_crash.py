"""Exactly once under SIGKILL: a 300-order import is killed at random moments, at least 20 times, and
restarted each time; afterwards SnelStart holds every order once, whole, and the ledger agrees.

The client runs as a separate process (``koppel run``), the agent under gunicorn over MariaDB, SnelStart is
the local backend file. The kills are spread over the whole import: before the loop one order count is drawn at
random in each of ``MIN_KILLS`` equal stretches of the import, plus the last order of every page but the last.
A run is killed once SnelStart holds its aimed-at number of orders, after a further random delay of up to one
observed per-order time (cut short when the next order appears), so the kill lands anywhere inside the per-order
step (between the pending mark, the create and the done mark); at a page's end the delay may cover the cursor
write and the next page's fetch. Some
runs are killed during start-up and the first page fetch instead. Because the kills follow the observed progress
rather than fixed delays, a loaded machine and a fast idle one both get at least ``MIN_KILLS`` kills inside the
import, in every page of it; only then is the import allowed to finish.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from client.engine import PAGE_SIZE
from client.snelstart.local import LocalBackend, line_total
from client.state import StateStore
from tests.client.b2b_fake import FakeSnelStart, to_uuid
from tests.client.conftest import client_profile, snelstart_orders, write_client_config

ORDERS = 300
MIN_KILLS = 20
RESERVE = (
    30  # orders after the last aimed kill, for make-up kills should an aimed kill overshoot the next aim
)
PAGE_CHANGE_S = 0.3  # after a page's last order: how long the kill may wait (cursor write, next page's fetch)
STARTUP_SHARE = 0.15  # of the runs are killed during start-up / the first page fetch, on top of the MIN_KILLS
MAX_RUNS = 200  # guard against a loop that never gets its kills in (the assertion then says why)
RUN_LIMIT_S = 120.0  # a run still going after this long is killed anyway (stuck, or far too slow)
KOPPEL = Path(sys.executable).with_name("koppel")


def client_command(config: Path) -> list[str]:
    if KOPPEL.exists():
        return [str(KOPPEL), "--config", str(config), "run", "--profile", "shop"]
    return [sys.executable, "-m", "client.engine", "--config", str(config), "--profile", "shop"]


def count_orders(admin: Path) -> int:
    """SnelStart orders of the bulk orders (numbers 100000001 and up, 100000000 + entity_id)."""
    conn = sqlite3.connect(f"file:{admin}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(
            "SELECT count(*) FROM verkooporders WHERE betalingskenmerk GLOB '1000[0-9][0-9][0-9][0-9][0-9]'"
        ).fetchone()[0]
    except sqlite3.OperationalError:  # busy for a moment: ask again next poll
        return -1
    finally:
        conn.close()


@dataclass
class Kills:
    """What the kill loop did; ``in_import`` counts kills after the run had created an order, orders still missing."""

    in_import: int = 0
    at_startup: int = 0
    completed_runs: int = 0
    seconds_per_order: float = 0.05
    startup_seconds: float = 1.0
    positions: list[int] = field(default_factory=list)  # orders in SnelStart after each kill in the import

    @property
    def between_pages(self) -> int:
        """Kills after a page's last order and before the next page's first create."""
        return sum(1 for p in self.positions if p % PAGE_SIZE == 0)

    def __str__(self) -> str:
        return (
            f"kills during the import {self.in_import} (after orders {self.positions}; between pages "
            f"{self.between_pages}), at start-up {self.at_startup}, completed runs {self.completed_runs}, "
            f"~{self.seconds_per_order * 1000:.0f} ms per order, start-up ~{self.startup_seconds:.1f} s"
        )


def settled_count(admin: Path) -> int:
    for _ in range(100):
        n = count_orders(admin)
        if n >= 0:
            return n
        time.sleep(0.05)
    raise AssertionError(f"{admin} stayed locked for 5 s")


def kill_targets(rng: random.Random) -> list[int]:
    """The order counts the kills aim at: one at random in each of ``MIN_KILLS`` equal stretches of the import
    (the stretches do not overlap, so the kills spread over all of it), and the last order of every page."""
    span = ORDERS - RESERVE
    targets = {rng.randint(1 + k * span // MIN_KILLS, (k + 1) * span // MIN_KILLS) for k in range(MIN_KILLS)}
    return sorted(targets | set(range(PAGE_SIZE, ORDERS, PAGE_SIZE)))


def kill_loop(command: list[str], cwd: Path, env: dict[str, str], admin: Path, rng: random.Random) -> Kills:
    """Start the client again and again and SIGKILL it at the aimed-at moments, until every aim is used and at
    least ``MIN_KILLS`` kills landed inside the import."""
    kills = Kills()
    targets = kill_targets(rng)
    for _ in range(MAX_RUNS):
        before = settled_count(admin)
        targets = [t for t in targets if t > before]  # an aim a run overshot is gone
        if before >= ORDERS or (kills.in_import >= MIN_KILLS and not targets):
            break
        # The aimed kills first; if overshooting used some up, make-up kills on the next new order.
        aim = targets[0] if targets else before + 1
        window = PAGE_CHANGE_S if aim % PAGE_SIZE == 0 else kills.seconds_per_order
        extra = rng.uniform(0, window)
        startup_kill = rng.random() < STARTUP_SHARE
        startup_delay = rng.uniform(0.05, kills.startup_seconds)
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        started = time.monotonic()
        seen, last_change = before, None
        while proc.poll() is None:
            now = time.monotonic()
            if (startup_kill and now >= started + startup_delay) or now >= started + RUN_LIMIT_S:
                break
            n = count_orders(admin)
            if n > seen:
                if last_change is None:
                    kills.startup_seconds = 0.7 * kills.startup_seconds + 0.3 * (now - started)
                else:
                    step = min((now - last_change) / (n - seen), 1.0)
                    kills.seconds_per_order = 0.7 * kills.seconds_per_order + 0.3 * step
                seen, last_change = n, now
                if n >= aim:
                    # The random moment lies before the next order's create: the kill never overshoots far.
                    deadline = time.monotonic() + extra
                    while time.monotonic() < deadline and count_orders(admin) <= n and proc.poll() is None:
                        time.sleep(0.002)
                    break
            time.sleep(0.002)
        if proc.poll() is not None:
            kills.completed_runs += 1
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = settled_count(admin)
        if before < after < ORDERS:
            kills.in_import += 1
            kills.positions.append(after)
        elif after == before:
            kills.at_startup += 1
    return kills


def magento_grand_totals(shop) -> dict[str, Decimal]:  # noqa: ANN001 - client.demo.shop.Shop
    with shop.conn.cursor() as cur:
        cur.execute(f"SELECT increment_id, grand_total FROM {shop.table('order')}")
        return {str(number): Decimal(total).quantize(Decimal("0.01")) for number, total in cur.fetchall()}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("snelstart", "unique_reference"),
    [("local", True), ("local", False), ("b2b", True)],
    ids=["local", "local-ledger-only", "b2b"],
)
def test_sigkill_at_random_moments_imports_every_order_exactly_once(
    shop, agent_server, local_admin, tmp_path, request, snelstart, unique_reference
):
    """With ``unique_payment_reference`` off, only the ledger's pending mark prevents a second create."""
    for _ in shop.bulk_orders(ORDERS, lines=3, products=40):
        pass
    overrides, env_keys, snelstart_id = {"orders": {"unique_payment_reference": unique_reference}}, {}, str
    if snelstart == "b2b":  # the same administration, reached through the fake B2B API (b2b backend)
        fake = FakeSnelStart(local_admin).start()
        request.addfinalizer(fake.stop)
        overrides["snelstart"] = {"backend": "b2b", "client_key_env": "CRASH_CK", "subscription_key_env": "CRASH_SK",
                                  "api_url": fake.api_url, "auth_url": fake.auth_url}  # fmt: skip
        env_keys = {"CRASH_CK": fake.client_key, "CRASH_SK": fake.subscription_key}
        snelstart_id = lambda local_id: to_uuid("order", local_id)  # noqa: E731
    config = write_client_config(tmp_path, [client_profile(agent_server.url, local_admin, **overrides)])
    numbers = [f"{100000000 + i}" for i in range(1, 1 + ORDERS)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", **env_keys)
    rng = random.Random(int(os.environ.get("KOPPEL_CRASH_SEED", time.time())))

    kills = kill_loop(client_command(config), tmp_path, env, local_admin, rng)

    # Now let it finish undisturbed (a second run would find nothing left to do).
    final = subprocess.run(
        client_command(config), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert final.returncode == 0, final.stdout + final.stderr
    assert kills.in_import >= MIN_KILLS, f"only {kills.in_import} kills landed during the import ({kills})"
    pages = {(p - 1) // PAGE_SIZE for p in kills.positions}
    assert pages == set(range(ORDERS // PAGE_SIZE)), f"not every page of the import had a kill ({kills})"

    in_snelstart = snelstart_orders(local_admin)
    wrong = {n: in_snelstart.get(n, 0) for n in numbers if in_snelstart.get(n, 0) != 1}
    assert wrong == {}, f"orders not in SnelStart exactly once: {wrong}"
    assert sum(in_snelstart.values()) == ORDERS + 1  # plus the sample administration's own order

    with StateStore(tmp_path / "koppel-state.sqlite") as state, LocalBackend(local_admin) as backend:
        ledger = {e.number: e for e in state.ledger_entries("shop")}
        assert sorted(ledger) == sorted(numbers)
        assert {e.state for e in ledger.values()} == {"done"}
        assert state.failed_list("shop") == []
        grand_totals = magento_grand_totals(shop)
        for number in numbers:
            (order,) = backend.verkooporders_by_betalingskenmerk(number)
            assert (ledger[number].snelstart_id, ledger[number].snelstart_nummer) == (
                snelstart_id(order.id),
                order.nummer,
            )
            # Whole, never half-written: three items and the shipping line, adding up to Magento's total
            # (the template takes prices incl. VAT, so the lines add up to the total incl. VAT).
            lines = sum(line_total(r.aantal, r.stuksprijs, r.kortings_percentage) for r in order.regels)
            assert len(order.regels) >= 4 and lines == order.totaal_incl_btw == grand_totals[number], number
        # Customers too: a kill after a relatie was created must not create it again on the next run.
        not_once = [
            i
            for i in range(1, ORDERS + 1)
            if len(backend.relaties_by_email(f"gast{i}@example.nl", all_fields=True)) != 1
        ]
        assert not_once == [], f"guests without exactly one relatie: {not_once}"
        adopted = sum(1 for e in ledger.values() if e.how == "adopted")
    print(f"{kills}, adopted {adopted}")
