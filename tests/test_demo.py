"""`koppel demo` as the README's first command runs it: a subprocess, its summary, its clean-up."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest
import requests

from client.demo.run_demo import MARKER, DemoError, prepare_folder
from tests.mariadb import MariaDB

REPO = Path(__file__).resolve().parents[1]


def demo(folder: Path, *extra: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", "demo", "--dir", str(folder), "--orders", "24", *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_follow_up_commands_name_client_yml_by_its_absolute_path(
    tmp_path: Path, mariadb: MariaDB
) -> None:
    """`./run demo` runs in the checkout, `./run koppel` where the user is: a relative path fits only one."""
    done = subprocess.run(
        [sys.executable, "-m", "client.cli", "demo", "--dir", "koppel-demo", "--orders", "4"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f" --config {tmp_path / 'koppel-demo' / 'client.yml'} status" in done.stdout, done.stdout
    assert "--config koppel-demo/" not in done.stdout


def databases(server: MariaDB) -> set[str]:
    with server.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'koppel_demo%'")
        return {row[0] for row in cur.fetchall()}


def orders_by_reference(admin: Path) -> dict[str, int]:
    with sqlite3.connect(admin) as conn:
        rows = conn.execute(
            "SELECT betalingskenmerk, COUNT(*) FROM verkooporders WHERE betalingskenmerk IS NOT NULL "
            "GROUP BY betalingskenmerk"
        ).fetchall()
    return dict(rows)


def test_demo_imports_once_summarises_and_cleans_up(tmp_path: Path, mariadb: MariaDB) -> None:
    folder = tmp_path / "koppel-demo"
    done = demo(folder)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in out + done.stderr

    database = re.search(r"database (koppel_demo_\w+)", out).group(1)  # type: ignore[union-attr]
    url = re.search(r"koppel-agent serve on (http://127\.0\.0\.1:\d+)", out).group(1)  # type: ignore[union-attr]
    imported = int(re.search(r"Orders imported:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    known, known_orders = map(
        int,
        re.search(r"Customers matched:\s+(\d+) relaties already in SnelStart, on (\d+) orders", out).groups(),
    )  # type: ignore[union-attr]
    new, new_orders = map(
        int, re.search(r"Customers created:\s+(\d+) new relaties, on (\d+) orders", out).groups()
    )  # type: ignore[union-attr]
    assert "24 orders" in out
    # 24 orders: one awaits payment and one is canceled; every other order is imported.
    assert imported == 22
    assert known_orders + new_orders == imported
    # Each of the sample administration's four web customers is found (by klantcode, VAT number, invoice
    # e-mail and main e-mail); everyone else, guests included, becomes a new relatie of their own.
    assert known == 4 and new > 0
    assert "Earlier demo" not in out
    assert re.search(r"Articles created:\s+[1-9]", out)
    # The warnings the first import logged are counted in its summary, the same number as in the log.
    with sqlite3.connect(folder / "koppel-state.sqlite") as state:
        first_run = state.execute("SELECT MIN(id) FROM log WHERE message LIKE 'Task % started%'").fetchone()[
            0
        ]
        second_run = state.execute("SELECT MAX(id) FROM log WHERE message LIKE 'Task % started%'").fetchone()[
            0
        ]
        logged = state.execute(
            "SELECT COUNT(*) FROM log WHERE level = 'warning' AND id > ? AND id < ?", (first_run, second_run)
        ).fetchone()[0]
        warned = [m for (m,) in state.execute("SELECT message FROM log WHERE level = 'warning'")]
    # The demo shop charges VAT as SnelStart books it (Dutch rates at home and to consumers, none to EU
    # businesses with a VAT number), so a clean import warns of nothing.
    assert warned == [], warned
    expected = f"{logged} warning{'' if logged == 1 else 's'} in the log"
    assert re.search(rf"Warnings:\s+{expected}", out), (expected, out)
    assert re.search(r"Web stock:\s+\d+ items sent \(\d+ updated", out)
    assert "0 items sent" in out.split("Import 2")[1]
    assert "0 new orders imported" in out
    assert re.search(r"koppel --config \S*client\.yml status", out)

    # SnelStart holds each imported order exactly once, and the ledger agrees.
    counts = orders_by_reference(folder / "administratie.sqlite")
    with sqlite3.connect(folder / "koppel-state.sqlite") as state:
        ledger = [row[0] for row in state.execute("SELECT number FROM ledger WHERE state = 'done'")]
    assert len(ledger) == imported
    assert all(counts.get(number) == 1 for number in ledger)
    # The sample administration's own history (one earlier web order) is untouched.
    assert len(counts) == imported + 1

    # Clean-up: the agent is gone and its database dropped; the files stay for `koppel status` / `koppel log`,
    # but not the dead key's secret.
    assert database not in databases(mariadb)
    assert not (folder / "agent-secret.txt").exists() and not (folder / "agent.yml").exists()
    assert (folder / "client.yml").exists() and (folder / "agent.log").exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v1/health", timeout=3)
    status = subprocess.run(
        [sys.executable, "-m", "client.cli", "status", "--config", str(folder / "client.yml")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert "Now: Gereed" in status.stdout
    assert "Waiting: 1 order awaiting payment (deferred)" in status.stdout
    # The last run is the demo's second import: nothing new, the unpaid order still waiting.
    assert re.search(r"import_orders_and_export_stock:\n    last run:  .* \(manual\) — ok", status.stdout)
    assert "0 orders imported, 1 deferred" in status.stdout


def test_demo_keep_leaves_a_live_setup_that_the_next_demo_removes(tmp_path: Path, mariadb: MariaDB) -> None:
    folder = tmp_path / "demo"
    first = demo(folder, "--keep")
    assert first.returncode == 0, first.stdout + first.stderr
    database = re.search(r"database (koppel_demo_\w+)", first.stdout).group(1)  # type: ignore[union-attr]
    url = re.search(r"koppel-agent serve on (http://127\.0\.0\.1:\d+)", first.stdout).group(1)  # type: ignore[union-attr]
    try:
        assert database in databases(mariadb)
        assert requests.get(f"{url}/v1/health", timeout=5).json() == {"status": "ok"}
        # The kept setup answers the commands the summary suggests.
        config = str(folder / "client.yml")
        check = subprocess.run(
            [sys.executable, "-m", "client.cli", "test-connection", "--config", config],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        # Out of the box every check passes without a warning: the demo shop runs its stock indexers on Update
        # by Schedule, so the stock the demo pushed leaves no indexer needing a reindex.
        assert "Magento 2" in check.stdout
        assert "FAILED" not in check.stdout and "WARNING" not in check.stdout, check.stdout
        # The stock export wrote Magento: the agent reports a figure for a stock-controlled article.
        ask = [sys.executable, "-m", "client.cli", "agent", "GET", "/v1/stock?sku=1001", "--config", config]
        stock = subprocess.run(ask, cwd=REPO, capture_output=True, text=True, timeout=60)
        assert stock.returncode == 0, stock.stderr
        assert json.loads(stock.stdout)["items"][0]["qty"] is not None
    finally:
        second = demo(folder)
    assert second.returncode == 0, second.stdout + second.stderr
    # A second demo in the same folder says it starts over, so its imports do not look like double bookings.
    assert second.stdout.startswith(f"Earlier demo in {folder} removed: this demo starts again")
    assert database not in databases(mariadb)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v1/health", timeout=3)


def test_demo_stop_ends_a_kept_demo_and_says_so(tmp_path: Path, mariadb: MariaDB) -> None:
    folder = tmp_path / "demo"
    kept = demo(folder, "--keep")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert f"`koppel demo --stop --dir {folder}` stops them" in kept.stdout
    database = re.search(r"database (koppel_demo_\w+)", kept.stdout).group(1)  # type: ignore[union-attr]
    url = re.search(r"koppel-agent serve on (http://127\.0\.0\.1:\d+)", kept.stdout).group(1)  # type: ignore[union-attr]
    pid = json.loads((folder / "demo-info.json").read_text(encoding="utf-8"))["agent_pid"]
    stop = demo(folder, "--stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert stop.stdout == (
        f"Kept demo in {folder} ended: stopped the agent (process {pid}), dropped database {database}, "
        "removed the dead key's agent-secret.txt and agent.yml.\n"
    )
    # The key died with the agent: its secret and the database login are not left lying about.
    assert not (folder / "agent-secret.txt").exists() and not (folder / "agent.yml").exists()
    assert database not in databases(mariadb)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/v1/health", timeout=3)
    # The files stay for status and log; a second stop has nothing left to do.
    assert (folder / "client.yml").exists() and (folder / "koppel-state.sqlite").exists()
    again = demo(folder, "--stop")
    assert (
        again.returncode == 0 and again.stdout == f"Nothing to stop: no demo in {folder} was left running.\n"
    )
    elsewhere = demo(tmp_path / "nothing-here", "--stop")
    assert elsewhere.returncode == 2, elsewhere.stdout
    assert elsewhere.stdout.startswith(f"koppel demo --stop: no kept koppel demo is running in {tmp_path}")


def test_a_long_demo_says_how_far_it_got(
    tmp_path: Path, mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    import client.demo.run_demo as run_demo_module

    # Every step reports, as a 2000-order demo does every two seconds.
    monkeypatch.setattr(run_demo_module, "PROGRESS_SECONDS", 0.0)
    lines: list[str] = []
    assert run_demo_module.run_demo(tmp_path / "demo", orders=3, say=lines.append) == 0
    assert [line for line in lines if "demo order" in line] == [
        "  Magento 2: 1 of 3 demo orders written ...",
        "  Magento 2: 2 of 3 demo orders written ...",
        "  Magento 2: 3 of 3 demo orders written ...",
    ]
    assert any(line.startswith("  importing orders: ") for line in lines), lines
    # With the default pace a short demo stays quiet.
    monkeypatch.setattr(run_demo_module, "PROGRESS_SECONDS", 2.0)
    quiet: list[str] = []
    assert run_demo_module.run_demo(tmp_path / "demo", orders=3, say=quiet.append) == 0
    assert not [line for line in quiet if line.endswith(" ...") and "importing" in line]


def test_the_demo_summary_counts_one_of_a_kind_in_the_singular() -> None:
    from client.demo.data import DemoShop
    from client.demo.run_demo import describe_shop

    one = DemoShop(orders=1, registered=1, guests=0, business=1, with_discount=0, with_fee=1)
    assert describe_shop(one) == (
        "1 order (1 by a registered customer, 0 by guests, 1 business; 0 with a coupon, 1 with a payment fee; "
        "0 awaiting payment, 0 canceled)"
    )


def test_demo_refuses_a_folder_that_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "thesis.docx").write_text("precious", encoding="utf-8")
    with pytest.raises(DemoError, match="not empty"):
        prepare_folder(tmp_path)
    assert (tmp_path / "thesis.docx").read_text(encoding="utf-8") == "precious"
    fresh = tmp_path / "new"
    prepare_folder(fresh)
    assert (fresh / MARKER).exists()


def test_demo_starts_a_private_mariadb_when_none_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a fresh machine: nothing answers at 127.0.0.1:3306, so the demo starts its own server.
    import client.demo.run_demo as run_demo_module

    real = run_demo_module.reachable
    monkeypatch.setattr(run_demo_module, "reachable", lambda host, port: port != 3306 and real(host, port))
    lines: list[str] = []
    code = run_demo_module.run_demo(tmp_path / "demo", orders=8, say=lines.append)
    text = "\n".join(lines)
    assert code == 0, text
    private = re.search(r"private server on port (\d+) in (\S+)", text)
    assert private, text
    assert "Orders imported:     6" in text
    # Its server is stopped and its data folder removed with the rest.
    assert not Path(private.group(2)).exists()
    with pytest.raises(pymysql.err.OperationalError):
        MariaDB(port=int(private.group(1))).connect()


def test_demo_client_yml_names_the_samples_rounding_article(tmp_path: Path) -> None:
    # Without orders.rounding_article an excl.-VAT template fails every order with a one-cent VAT difference.
    from types import SimpleNamespace

    from client.config import load_client_config
    from client.demo.run_demo import write_client_yml
    from client.snelstart.local import LocalBackend
    from client.snelstart.local_init import init_local

    init_local(tmp_path / "administratie.sqlite", sample=True)
    agent = SimpleNamespace(url="http://127.0.0.1:9", secret="s" * 48)
    profile = load_client_config(write_client_yml(tmp_path, agent)).profile("demo")  # type: ignore[arg-type]
    assert profile.orders.rounding_article == "AFRONDING"
    with LocalBackend(tmp_path / "administratie.sqlite") as backend:
        (artikel,) = backend.artikelen_by_code(profile.orders.rounding_article)
        rates = {g.id: g.btw_percentage for g in backend.omzetgroepen()}
        assert rates[artikel.omzetgroep_id] == 0


KOPPEL = Path(sys.executable).with_name("koppel")


@pytest.mark.skipif(not KOPPEL.exists(), reason="the koppel console script is not installed")
def test_a_folder_named_agent_in_the_current_folder_does_not_shadow_the_agent(
    tmp_path: Path, mariadb: MariaDB
) -> None:
    shadow = tmp_path / "agent"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('this is not koppel')\n", encoding="utf-8")
    (shadow / "__main__.py").write_text("raise SystemExit('this is not koppel')\n", encoding="utf-8")
    done = subprocess.run(
        [str(KOPPEL), "demo", "--dir", "koppel-demo", "--orders", "6"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Orders imported:     " in done.stdout and "Traceback" not in done.stdout + done.stderr


def test_an_agent_that_dies_at_start_up_leaves_nothing_behind(
    tmp_path: Path, mariadb: MariaDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    import client.demo.run_demo as run_demo_module

    broken = [
        sys.executable,
        "-c",
        "import sys; print('Traceback: boom'); print('boom: no agent'); sys.exit(3)",
    ]
    monkeypatch.setattr(run_demo_module, "agent_command", lambda: broken)
    before = databases(mariadb)
    lines: list[str] = []
    code = run_demo_module.run_demo(tmp_path / "demo", keep=True, orders=4, say=lines.append)
    text = "\n".join(lines)
    assert code == 1
    assert "the agent stopped at start-up (boom: no agent)" in text
    assert "Left running" not in text and "agent pid" not in text
    made = re.search(r"database (koppel_demo_\w+)", text).group(1)  # type: ignore[union-attr]
    assert f"stopped what it started and dropped database {made}" in text
    assert databases(mariadb) == before


LOCK_HOLDER = """
import sys, time
from pathlib import Path
from client.demo.run_demo import lock_folder
lock = lock_folder(Path(sys.argv[1]))
print("locked", flush=True)
time.sleep(120)
"""


def test_a_second_demo_in_the_same_folder_is_told_one_is_running(tmp_path: Path, mariadb: MariaDB) -> None:
    folder = tmp_path / "demo"
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = databases(mariadb)
        second = demo(folder)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 1
    assert "already running" in second.stdout and f"process {holder.pid}" in second.stdout
    assert databases(mariadb) == before
    # Once the first has gone, the folder is free again.
    from client.demo.run_demo import lock_folder

    lock_folder(folder).release()


def test_the_summary_states_failures_plainly() -> None:
    from types import SimpleNamespace

    from client.demo.run_demo import say_outcome, second_run_line
    from client.engine import ImportResult

    result = ImportResult(profile="demo", imported=38, failed=2)
    result.failures = [("000000007", "totals differ by 0.01"), ("000000009", "totals differ by 0.01")]
    first = SimpleNamespace(result="partial", message="", import_result=result, stock_result=None)
    lines: list[str] = []
    say_outcome(first, lines.append)
    text = "\n".join(lines)
    assert "Warnings:            0 warnings in the log\n" in text
    lines.clear()
    say_outcome(SimpleNamespace(**{**vars(first), "counts": {"warnings": 1}}), lines.append)
    assert "  Warnings:            1 warning in the log (koppel log shows them)" in lines
    assert "FAILED:              2 orders not imported" in text and "FAILED 000000009: totals" in text
    again = ImportResult(profile="demo", imported=0, failed=2)
    line = second_run_line(SimpleNamespace(result="partial", message="", import_result=again))
    assert "2 orders FAILED again and are not in SnelStart" in line and "exactly once" not in line
    single = ImportResult(profile="demo", imported=1, failed=1)
    line = second_run_line(SimpleNamespace(result="partial", message="", import_result=single))
    assert line.startswith("  1 new order imported; 1 order FAILED again and is not in SnelStart")
    clean = second_run_line(
        SimpleNamespace(result="ok", message="", import_result=ImportResult(profile="demo"))
    )
    assert clean == "  0 new orders imported — every order is in SnelStart exactly once"
