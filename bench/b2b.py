"""Benchmark: a 500-order import through the b2b backend against the fake SnelStart B2B API.

    ./run bench b2b [--orders 500] [--relaties 2000] [--artikelen 500]

Builds a local administration (sample data + ``--relaties`` relaties + ``--artikelen`` artikelen), serves it
through the fake B2B API of the tests (Flask on loopback, every request and response validated against the
OpenAPI file), opens the b2b backend from a client.yml (keys from the environment, limiter at the production
tier) and feeds generated ORDER dicts into the engine's per-order step (``OrderImporter.handle``), as
``bench/sync.py`` does for the local backend.

Prints the API calls of the cold mirror fill, of a warm refresh, and per order of the import (target: at most
3 once the mirror is warm), with the time per order. The fake's own cost (request validation, the local
administration behind it) is part of the time, so the time is an upper bound for the client's share.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from client.config import load_client_config  # noqa: E402
from client.engine import ImportResult, OrderImporter  # noqa: E402
from client.snelstart.factory import open_backend  # noqa: E402
from client.snelstart.local import LocalBackend  # noqa: E402
from client.snelstart.local_init import init_local  # noqa: E402
from client.state import StateStore  # noqa: E402
from tests.client.b2b_fake import SPEC_PATH, FakeSnelStart  # noqa: E402


def _sync_bench():  # noqa: ANN202 - the module object of bench/sync.py (order generator, data builder)
    spec = importlib.util.spec_from_file_location("koppel_bench_sync", ROOT / "bench" / "sync.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--relaties", type=int, default=2000)
    parser.add_argument("--artikelen", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    sync = _sync_bench()

    folder = args.dir or Path(tempfile.mkdtemp(prefix="koppel-bench-b2b-"))
    folder.mkdir(parents=True, exist_ok=True)
    admin = folder / "administratie.sqlite"
    if admin.exists():
        raise SystemExit(f"{admin} exists; give an empty --dir")
    print("bench/b2b: ORDER dicts → engine per-order step → b2b backend → fake B2B API (OpenAPI-validated)")
    print(f"OpenAPI description: {SPEC_PATH}")
    print(f"work folder {folder}")
    init_local(admin, sample=True)
    with LocalBackend(admin) as local:
        t = time.perf_counter()
        sync.grow_administration(local, (0, args.relaties), (0, args.artikelen))
        print(
            f"built administration: {args.relaties} relaties, {args.artikelen} artikelen in {time.perf_counter() - t:.1f} s"
        )
        # Freshly built rows all carry "now" as ModifiedOn, so the refresh's look-back overlap (2 h) would re-read
        # all of them every time; a real administration's rows were changed over months. Spread them over 90 days.
        now = dt.datetime.now(dt.UTC)
        for table in ("relaties", "artikelen"):
            ids = [r[0] for r in local._conn.execute(f"SELECT id FROM {table}")]  # noqa: S608 - fixed names
            local._conn.executemany(
                f"UPDATE {table} SET modified_on = ? WHERE id = ?",  # noqa: S608
                [((now - dt.timedelta(minutes=random.randrange(1, 90 * 1440))).isoformat(), i) for i in ids],
            )

    fake = FakeSnelStart(admin).start()
    os.environ["BENCH_SNELSTART_CLIENT_KEY"] = fake.client_key
    os.environ["BENCH_SNELSTART_SUBSCRIPTION_KEY"] = fake.subscription_key
    config_path = sync.write_config(folder, admin)
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    data["profiles"][0]["snelstart"] = {
        "backend": "b2b",
        "client_key_env": "BENCH_SNELSTART_CLIENT_KEY",
        "subscription_key_env": "BENCH_SNELSTART_SUBSCRIPTION_KEY",
        "api_url": fake.api_url,
        "auth_url": fake.auth_url,
        "tier": "production",
    }
    config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    config = load_client_config(config_path)
    profile = config.profile("bench")
    state = StateStore(config.state)
    backend = open_backend(profile.snelstart, folder, state=state)
    http = backend.http  # type: ignore[attr-defined]
    print(f"limiter tier: production {http.limiter.tier}")

    t = time.perf_counter()
    backend.refresh()
    cold_s, cold_calls = time.perf_counter() - t, http.calls
    t = time.perf_counter()
    backend.refresh()
    warm_s, warm_calls = time.perf_counter() - t, http.calls - cold_calls

    rng = random.Random(20261203)
    created = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    orders = [sync.make_order(n + 1, rng, args.relaties, args.artikelen, created) for n in range(args.orders)]
    result = ImportResult(profile="bench")
    importer = OrderImporter(profile, backend, state, result, zone=config.zone)
    # Run-level reads (templates, omzetgroepen, VAT rates) happen once per run; done here, counted apart.
    before_setup = http.calls
    importer.handle(orders[0])
    first_calls = http.calls - before_setup
    before = http.calls
    by_path_before = dict(http.calls_by_path)
    t = time.perf_counter()
    for order in orders[1:]:
        importer.handle(order)
    elapsed = time.perf_counter() - t
    calls = http.calls - before
    per_path = {
        k: v - by_path_before.get(k, 0) for k, v in http.calls_by_path.items() if v - by_path_before.get(k, 0)
    }
    n = len(orders) - 1

    print()
    print(f"mirror cold fill: {cold_calls} API calls (token excluded) in {cold_s:.2f} s")
    print(f"mirror warm refresh: {warm_calls} API calls in {warm_s:.3f} s")
    print(f"first order (with run-level reads): {first_calls} API calls")
    print(
        f"next {n} orders: {calls} API calls = {calls / n:.2f} per order (target ≤ 3), by resource: {per_path}"
    )
    waited = http.limiter.waited_s
    print(f"  {elapsed:.1f} s = {elapsed / n * 1000:.1f} ms per order = {n / elapsed:.1f} orders/s")
    print(
        f"  of which {waited:.1f} s waiting for the production limit (500 calls/min); without it "
        f"{(elapsed - waited) / n * 1000:.1f} ms per order (the fake's validation and local writes included)"
    )
    print(
        f"  imported {result.imported}, failed {result.failed}; customers matched {result.customers_matched}, "
        f"created {result.customers_created}; articles created {result.articles_created}"
    )
    print(f"  token requests {http.tokens.fetched}")
    if result.failed:
        print(f"  failures, e.g. {result.failures[:3]}")
    print(f"OpenAPI violations seen by the fake: {len(fake.violations)}")
    for line in fake.violations[:5]:
        print(f"  {line}")
    backend.close()
    state.close()
    fake.stop()
    return 0 if not fake.violations else 1


if __name__ == "__main__":
    sys.exit(main())
