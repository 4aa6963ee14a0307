"""`koppel log`: essentials by default, detail with --verbose, Excel export, clearing, four-week retention."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from client.cli import main
from client.logview import COLUMNS, export_xlsx, format_entries
from client.state import StateStore
from tests.client.conftest import client_profile, write_client_config

AMS = ZoneInfo("Europe/Amsterdam")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    profile = client_profile("http://127.0.0.1:9", tmp_path / "admin.sqlite")
    return write_client_config(tmp_path, [profile])


def fill(state: StateStore) -> None:
    state.log(
        "shop",
        "info",
        "Magento order 100000012 → SnelStart order 1042 (relatie 2001, Müller GmbH)",
        essential=True,
        order="100000012",
        task="import_orders",
    )
    state.log(
        "shop",
        "debug",
        "customer matched by e-mail in factuur cc",
        essential=False,
        detail="step 1: code absent\nstep 2: e-mail m.muller@example.de found 1",
        order="100000012",
        task="import_orders",
    )
    state.log(
        "shop", "error", "Magento order 100000013 failed: orders.shipping_costs is not set", essential=True
    )


def test_default_view_shows_essentials_and_verbose_the_detail(
    config_path: Path, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        fill(state)
    assert main(["log", "--config", str(config_path)]) == 0
    short = capsys.readouterr().out
    assert "SnelStart order 1042" in short and "Müller GmbH" in short
    assert "ERROR  Magento order 100000013 failed: orders.shipping_costs" in short
    assert "matched by e-mail" not in short
    # --config before the sub-command works the same.
    assert main(["--config", str(config_path), "log", "--verbose"]) == 0
    long = capsys.readouterr().out
    assert "matched by e-mail" in long
    assert "    step 2: e-mail m.muller@example.de found 1" in long
    assert "[debug] import_orders" in long


def test_export_writes_a_workbook_with_every_entry(config_path: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        fill(state)
        entries = state.log_entries()
    target = tmp_path / "log.xlsx"
    assert main(["log", "--config", str(config_path), "--export", str(target)]) == 0
    assert "3 log entries written" in capsys.readouterr().out
    book = load_workbook(target)
    sheet = book["Log"]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == COLUMNS
    assert len(rows) == 4
    first = rows[1]
    assert rows[0] == ("Time", "Profile", "Task", "Level", "Essential", "Order", "Message", "Detail")
    assert first[1:7] == ("shop", "import_orders", "info", "yes", "100000012", entries[0].message)
    # Times are the local wall time of client.yml's zone, as a real Excel date.
    assert first[0] == entries[0].ts.astimezone(AMS).replace(tzinfo=None, microsecond=0)
    assert rows[2][7].startswith("step 1: code absent")
    assert rows[3][3] == "error"
    assert sheet.freeze_panes == "A2"


def test_export_does_not_replace_an_existing_file_unless_forced(
    config_path: Path, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        fill(state)
    target = tmp_path / "log.xlsx"
    target.write_bytes(b"last month's archive")
    # Refused, and nothing is cleared either: the log is still all there is.
    assert main(["log", "--export", str(target), "--clear", "--config", str(config_path)]) == 2
    err = capsys.readouterr().err
    assert f"--export {target}: that file already exists; add --force to replace it" in err
    assert target.read_bytes() == b"last month's archive"
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        assert len(state.log_entries()) == 3
    assert main(["log", "--export", str(target), "--force", "--config", str(config_path)]) == 0
    assert "3 log entries written" in capsys.readouterr().out
    assert len(list(load_workbook(target)["Log"].iter_rows(values_only=True))) == 4


def test_counts_in_log_messages_agree_with_their_number(config_path: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        state.log("shop", "info", "the one entry", essential=True)
    target = tmp_path / "one.xlsx"
    assert main(["log", "--export", str(target), "--clear", "--config", str(config_path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"1 log entry written to {target}",
        "Log cleared (1 entry removed).",
    ]
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        for number in range(2):
            state.log("shop", "info", f"entry {number}", essential=True)
    assert main(["log", "--limit", "1", "--config", str(config_path)]) == 0
    assert "(only the newest 1 entry is shown; " in capsys.readouterr().out


def test_web_stock_lines_say_batch_article_and_order_in_the_number_of_their_count(
    config_path: Path, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    from client.webstock import StockExportResult, _log

    def result(n: int) -> StockExportResult:
        problems = [f"SKU P{i}: the agent called the figure invalid" for i in range(n)]
        return StockExportResult(
            sent=n, batches=n, updated=n, skus=n, open_orders=n, held_orders=n, invalid=n, problems=problems
        )

    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        _log(state, "shop", result(1))
        _log(state, "shop", result(2))
    assert main(["log", "--verbose", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "(s)" not in out and "(es)" not in out
    assert "1 sent in 1 batch: 1 updated" in out and "2 sent in 2 batches: 2 updated" in out
    assert "; 1 article with a web stock, 1 open web order, 1 Magento order not imported yet" in out
    assert "; 2 articles with a web stock, 2 open web orders, 2 Magento orders not imported yet" in out
    assert "Web stock: 1 article got no figure or was refused" in out
    assert "Web stock: 2 articles got no figure or were refused" in out


def test_dry_run_says_line_or_lines_as_the_order_has(shop, agent_server, local_admin, tmp_path) -> None:  # noqa: ANN001
    from client.config import load_client_config
    from client.engine import run_import
    from tests.client.conftest import guest

    shop.product("1002", "Espressokopjes, set van 6")
    shop.product("1003", "Melkopschuimer RVS")
    cup, frother = (
        {"sku": "1002", "qty": 1, "price": "20.6198"},
        {"sku": "1003", "qty": 1, "price": "24.7934"},
    )
    virtual = {"shipping": False, "shipping_amount": "0"}
    shop.order(items=[cup], number="500000001", billing=guest("een@example.org"), **virtual)
    shop.order(items=[cup, frother], number="500000002", billing=guest("twee@example.org"), **virtual)
    config = load_client_config(
        write_client_config(tmp_path, [client_profile(agent_server.url, local_admin)])
    )
    lines = run_import(config, "shop", dry_run=True).lines
    said = {
        n: line for line in lines for n in ("500000001", "500000002") if f"Magento order {n}: would" in line
    }
    assert ", 1 line, Magento total" in said["500000001"]
    assert ", 2 lines, Magento total" in said["500000002"]
    assert not any("line(s)" in line for line in lines)


def test_export_refuses_a_wrong_file_name_without_writing(config_path: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    target = tmp_path / "log.csv"
    assert main(["log", "--config", str(config_path), "--export", str(target)]) == 2
    assert ".xlsx" in capsys.readouterr().err
    assert not target.exists()


def test_export_to_a_folder_says_it_is_a_folder(config_path: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "archive"
    folder.mkdir()
    for extra in ([], ["--force"]):  # not "already exists" first and "must end in .xlsx" after --force
        assert main(["log", "--config", str(config_path), "--export", str(folder), *extra]) == 2
        err = capsys.readouterr().err
        assert f"--export {folder}: that is a folder; give a file name ending in .xlsx" in err, err
        assert "already exists" not in err
    assert list(folder.iterdir()) == []


def test_clear_empties_the_log(config_path: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        fill(state)
    assert main(["log", "--clear", "--yes", "--config", str(config_path)]) == 0
    assert "3 entries removed" in capsys.readouterr().out
    assert main(["log", "--verbose", "--config", str(config_path)]) == 0
    assert "The log is empty." in capsys.readouterr().out


def test_entries_older_than_four_weeks_disappear(config_path: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    path = tmp_path / "koppel-state.sqlite"
    now = dt.datetime.now(dt.UTC)
    with StateStore(path, now=lambda: now - dt.timedelta(days=29)) as old:
        old.log("shop", "info", "an order from long ago", essential=True)
    with StateStore(path, now=lambda: now - dt.timedelta(days=27)) as recent:
        recent.log("shop", "info", "an order from last month", essential=True)
    assert main(["log", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "last month" in out
    assert "long ago" not in out


def test_format_without_entries_and_export_of_nothing(tmp_path: Path) -> None:
    assert format_entries([], AMS) == []
    assert export_xlsx([], tmp_path / "empty.xlsx", AMS) == 0
    assert list(load_workbook(tmp_path / "empty.xlsx").active.iter_rows(values_only=True)) == [COLUMNS]


def test_clear_without_a_terminal_needs_yes(config_path: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        fill(state)
    assert main(["log", "--clear", "--config", str(config_path)]) == 2
    assert "--yes" in capsys.readouterr().err
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        assert len(state.log_entries()) == 3


def test_export_and_clear_writes_the_workbook_first(config_path: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        fill(state)
    # A workbook that cannot be written clears nothing.
    bad = tmp_path / "archive.csv"
    assert main(["log", "--export", str(bad), "--clear", "--config", str(config_path)]) == 2
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        assert len(state.log_entries()) == 3
    capsys.readouterr()
    target = tmp_path / "archive.xlsx"
    assert main(["log", "--export", str(target), "--clear", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "3 log entries written" in out and "3 entries removed" in out
    assert len(list(load_workbook(target)["Log"].iter_rows(values_only=True))) == 4
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        assert state.log_entries() == []


def test_clear_up_to_an_id_keeps_newer_entries(tmp_path: Path) -> None:
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        fill(state)
        exported = state.log_entries()
        state.log("shop", "info", "written after the export", essential=True)
        assert state.clear_log("shop", up_to_id=exported[-1].id) == 3
        assert [e.message for e in state.log_entries()] == ["written after the export"]


def test_status_names_the_reason_of_a_failed_order_after_the_log_is_cleared(
    config_path: Path, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        state.failed_record("shop", 13, number="100000013", reason="orders.shipping_costs is not set")
        fill(state)
    assert main(["log", "--clear", "--yes", "--config", str(config_path)]) == 0
    assert main(["status", "--config", str(config_path)]) == 0
    short = capsys.readouterr().out
    assert "1 failed order, retried" in short and "koppel log says why" not in short
    assert "koppel status --verbose" in short
    assert main(["status", "--verbose", "--config", str(config_path)]) == 0
    assert (
        "FAILED Magento order 100000013 (1 attempt): orders.shipping_costs is not set"
        in capsys.readouterr().out
    )


def test_a_cut_off_view_says_that_older_entries_were_left_out(
    config_path: Path, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    with StateStore(tmp_path / "koppel-state.sqlite") as state:
        for number in range(5):
            state.log("shop", "info", f"Magento order 10000000{number} imported", essential=True)
    assert main(["log", "--limit", "3", "--config", str(config_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # The newest three, oldest first, and a last line saying there is more and how to see it.
    assert [line.split("  ")[-1] for line in lines[:3]] == [
        f"Magento order 10000000{n} imported" for n in (2, 3, 4)
    ]
    assert (
        lines[3]
        == "(only the newest 3 entries are shown; --limit N shows more, --export FILE.xlsx writes them all)"
    )
    assert len(lines) == 4
    assert main(["log", "--limit", "5", "--config", str(config_path)]) == 0
    assert "only the newest" not in capsys.readouterr().out


def test_a_run_removes_entries_older_than_four_weeks_without_anyone_reading_the_log(tmp_path: Path) -> None:
    import sqlite3

    from client.config import load_client_config
    from client.runner import run_task

    # A profile whose administration does not exist: the run starts (and logs), then fails on opening it.
    config = load_client_config(
        write_client_config(tmp_path, [client_profile("http://127.0.0.1:9", tmp_path / "admin.sqlite")])
    )
    now = dt.datetime.now(dt.UTC)
    with StateStore(config.state) as state:
        # The scheduler's store stays open for months: it was opened (and pruned) long before these entries aged.
        state._now = lambda: now - dt.timedelta(days=29)
        state.log("shop", "info", "Customer Käthe Schröder created as relatie 15", essential=True)
        state._now = lambda: now
        state.log("shop", "info", "Customer Femke Visser created as relatie 10", essential=True)
        outcome = run_task(config, "shop", "import_orders", state=state)
        assert outcome.result == "failed"
    # Read the table itself: log_entries() would prune on its own and prove nothing about the run.
    with sqlite3.connect(config.state) as conn:
        messages = [row[0] for row in conn.execute("SELECT message FROM log ORDER BY id")]
    assert "Customer Käthe Schröder created as relatie 15" not in messages
    assert messages[0] == "Customer Femke Visser created as relatie 10" and len(messages) > 1


def test_verbose_log_keeps_tracebacks_for_unexpected_errors_only(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from client.config import load_client_config
    from client.runner import run_task

    path = write_client_config(tmp_path, [client_profile("http://127.0.0.1:9", tmp_path / "admin.sqlite")])
    config = load_client_config(path)
    # Expected: the local administration is not there. Its message says it all.
    assert run_task(config, "shop", "import_orders").result == "failed"
    assert main(["log", "--verbose", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Task import_orders stopped: local SnelStart administration" in out
    assert "Traceback" not in out

    class Broken:
        def close(self) -> None:
            pass

        def __getattr__(self, name: str) -> None:
            raise ZeroDivisionError("a bug in koppel")

    # Unexpected: a bug. Its traceback is what a helpdesk needs, so the detail keeps it.
    with StateStore(config.state) as state:
        state.clear_log()
        assert run_task(config, "shop", "import_orders", state=state, backend=Broken()).result == "failed"
    assert main(["log", "--verbose", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Traceback (most recent call last)" in out and "ZeroDivisionError: a bug in koppel" in out
