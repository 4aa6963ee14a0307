"""The `koppel` command line: help everywhere, --config anywhere, one-sentence errors, exit codes, and the
commands that need no agent (profiles, snelstart init, autostart, refusals of run)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from client import autostart
from client.cli import hoist_global_options, main
from client.connection_test import _date_skew, _skew_check
from client.snelstart.local_init import init_local
from tests.client.conftest import client_profile, write_client_config

REPO = Path(__file__).resolve().parents[2]
COMMANDS = [
    ["run"], ["schedule"], ["status"], ["log"], ["test-connection"], ["agent"], ["profiles"], ["autostart"],
    ["snelstart", "init"], ["demo"], ["snelstart"],
]  # fmt: skip


def koppel(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    admin = tmp_path / "administratie.sqlite"
    init_local(admin, sample=True)
    profile = client_profile("http://127.0.0.1:9", admin, tasks={"import_orders": {"interval": "15m"}})
    return write_client_config(tmp_path, [profile])


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_help(command: list[str], capsys) -> None:  # noqa: ANN001
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage: koppel" in out and " ".join(command) in out


def test_global_options_are_moved_in_front() -> None:
    assert hoist_global_options(["status", "--config", "a.yml"]) == ["--config", "a.yml", "status"]
    assert hoist_global_options(["log", "--config=a.yml", "--debug", "-v"]) == [
        "--config=a.yml",
        "--debug",
        "log",
        "-v",
    ]
    assert hoist_global_options(["agent", "GET", "/x", "--", "--config"]) == [
        "agent",
        "GET",
        "/x",
        "--",
        "--config",
    ]


def test_config_before_after_and_from_the_environment(config_path: Path, tmp_path: Path) -> None:
    for args in (["--config", str(config_path), "profiles"], ["profiles", "--config", str(config_path)]):
        done = koppel(*args)
        assert done.returncode == 0, done.stderr
        assert (
            "shop" in done.stdout
            and "snelstart: local" in done.stdout
            and "import_orders every 15m" in done.stdout
        )
    env = dict(os.environ, KOPPEL_CONFIG=str(config_path))
    assert "shop: test shop" in koppel("profiles", env=env, cwd=tmp_path).stdout
    # ./client.yml in the current folder is found too.
    env.pop("KOPPEL_CONFIG")
    assert "shop: test shop" in koppel("profiles", env=env, cwd=tmp_path).stdout


def test_errors_are_one_sentence_unless_debug(config_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        config_path.read_text().replace("processing: add", "procesing: add", 1), encoding="utf-8"
    )
    done = koppel("status", "--config", str(broken))
    assert done.returncode == 2  # a wrong client.yml is wrong use, as --help documents
    assert done.stderr.startswith("koppel: ") and "procesing" in done.stderr and " line " in done.stderr
    assert "Traceback" not in done.stderr
    missing = koppel("status", "--config", str(tmp_path / "nope.yml"))
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == f"koppel: --config {tmp_path / 'nope.yml'}: no such file"
    )
    debug = koppel("--debug", "status", "--config", str(tmp_path / "nope.yml"))
    assert "Traceback" in debug.stderr
    usage = koppel("run", "--task", "export_stock", "--config", str(config_path))
    assert usage.returncode == 2 and "unknown task" in usage.stderr
    unknown = koppel("run", "--profile", "elders", "--config", str(config_path))
    assert unknown.returncode == 2 and "no profile named 'elders'" in unknown.stderr


def test_exit_codes_match_the_help(config_path: Path, tmp_path: Path) -> None:
    help_text = koppel("--help").stdout
    assert "2 wrong use" in help_text and "130 interrupted" in help_text
    # No arguments: the help, as wrong use.
    bare = koppel()
    assert bare.returncode == 2 and "Usage: koppel" in bare.stdout + bare.stderr
    assert koppel("status", "--config", str(tmp_path / "nope.yml")).returncode == 2
    assert koppel("log", "--profile", "elders", "--config", str(config_path)).returncode == 2
    assert koppel("status", "--bogus-option", "--config", str(config_path)).returncode == 2
    empty = tmp_path / "empty.yml"
    empty.write_text("", encoding="utf-8")
    assert koppel("profiles", "--config", str(empty)).returncode == 2
    # Something that failed while running stays 1: nothing listens on port 9.
    assert koppel("test-connection", "--config", str(config_path)).returncode == 1


def test_a_state_folder_that_may_not_be_written_is_named_and_is_a_setting_error(tmp_path: Path) -> None:
    import shutil

    admin = tmp_path / "administratie.sqlite"
    init_local(admin, sample=True)
    folder = tmp_path / "alleen-lezen"
    folder.mkdir()
    folder.chmod(0o555)
    state = folder / "koppel-state.sqlite"
    path = write_client_config(tmp_path, [client_profile("http://127.0.0.1:9", admin)], state=str(state))
    # root may write anywhere: without the capabilities that let it, the folder is read-only for it too.
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: no folder is read-only")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "client.cli", "run", "--config", str(path)],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        folder.chmod(0o755)
    assert done.returncode == 2, done.stdout + done.stderr  # the help's "wrong use", like a bad client.yml
    assert done.stderr.strip() == (
        f"koppel: the state file {state} cannot be written: the folder {folder} is not writable; give `state` "
        "in client.yml a folder this user may write to, or give the user that right"
    )
    # A state folder that does not exist is the same kind of error.
    missing = tmp_path / "nergens" / "koppel-state.sqlite"
    gone = write_client_config(tmp_path, [client_profile("http://127.0.0.1:9", admin)], state=str(missing))
    done = koppel("run", "--config", str(gone))
    assert done.returncode == 2 and "does not exist (setting `state`)" in done.stderr, done.stderr


SILENT_AGENT = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(5)
print(server.getsockname()[1], flush=True)
held = []
while True:
    conn, _ = server.accept()
    print("connected", flush=True)
    held.append(conn)
"""


def test_ctrl_c_during_a_run_says_where_the_next_run_goes_on(tmp_path: Path) -> None:
    """An agent that accepts and never answers keeps `koppel run` waiting; Ctrl-C then ends it cleanly."""
    agent = subprocess.Popen([sys.executable, "-c", SILENT_AGENT], stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None
        port = int(agent.stdout.readline())
        admin = tmp_path / "administratie.sqlite"
        init_local(admin, sample=True)
        config = write_client_config(tmp_path, [client_profile(f"http://127.0.0.1:{port}", admin)])
        run = subprocess.Popen(
            [sys.executable, "-m", "client.cli", "run", "--config", str(config)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert agent.stdout.readline().strip() == "connected"
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        agent.kill()
        agent.wait()
    assert run.returncode == 130, out + err
    assert err.strip() == "koppel: interrupted (Ctrl-C); the next run continues where this one stopped"
    assert "Traceback" not in out + err and "Aborted" not in out + err
    # The history and the log say so too, in words (not an exception's class name).
    status = koppel("status", "--config", str(config)).stdout
    assert "(manual) — interrupted\n" in status
    assert "interrupted (Ctrl-C); the next run continues where this one stopped" in status
    assert "KeyboardInterrupt" not in status
    log = koppel("log", "--config", str(config)).stdout
    assert "WARNING  Task import_orders interrupted (Ctrl-C); the next run continues" in log


HOLDER = """
import sys, time
from pathlib import Path
from client.locking import ProfileLock
ProfileLock(Path(sys.argv[1]), "shop", what="import_orders (schedule)").acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_manual_run_while_the_profile_runs_elsewhere_exits_non_zero(
    config_path: Path, tmp_path: Path
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "koppel-state.sqlite")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        done = koppel("run", "--config", str(config_path))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert done.returncode == 3
    assert "already running" in done.stdout and f"process {holder.pid}" in done.stdout


def test_a_manual_run_while_koppel_schedule_runs_the_profile_is_told_already_running(tmp_path: Path) -> None:
    """The real scheduler process holds the profile (its run waits on an agent that never answers)."""
    agent = subprocess.Popen([sys.executable, "-c", SILENT_AGENT], stdout=subprocess.PIPE, text=True)
    scheduler = None
    try:
        assert agent.stdout is not None
        port = int(agent.stdout.readline())
        admin = tmp_path / "administratie.sqlite"
        init_local(admin, sample=True)
        profile = client_profile(
            f"http://127.0.0.1:{port}", admin, tasks={"import_orders": {"interval": "15m"}}
        )
        config = str(write_client_config(tmp_path, [profile]))
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "client.cli", "schedule", "--tick", "1", "--config", config],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert agent.stdout.readline().strip() == "connected"  # the scheduled run is under way
        manual = koppel("run", "--config", config)
        status = koppel("status", "--config", config)
    finally:
        if scheduler is not None:
            scheduler.kill()
            scheduler.wait()
        agent.kill()
        agent.wait()
    assert manual.returncode == 3, manual.stdout + manual.stderr
    assert "shop/import_orders: busy: profile 'shop' is already running" in manual.stdout
    assert f"(process {scheduler.pid}, import_orders (schedule))" in manual.stdout
    # `koppel status` in a third process shows what the scheduler process wrote.
    # Still "starting": the engine names its first stage when the agent's first page arrives, and this agent
    # never answers.
    assert "Now: import_orders: starting" in status.stdout, status.stdout
    assert "last run:  " in status.stdout and "(schedule) — running" in status.stdout
    # The scheduler died without clearing its activity: the free lock says it is idle again.
    after = koppel("status", "--config", config)
    assert "Now: Gereed" in after.stdout
    assert "import_orders:\n    last run:  " in after.stdout and "(schedule) — did not finish" in after.stdout
    assert (
        "Task import_orders not started: profile 'shop' is already running"
        in koppel("log", "--config", config).stdout
    )


def test_paused_profile_needs_force(tmp_path: Path) -> None:
    admin = tmp_path / "administratie.sqlite"
    init_local(admin, sample=False)
    config = write_client_config(tmp_path, [client_profile("http://127.0.0.1:9", admin, paused=True)])
    paused = koppel("run", "--config", str(config))
    assert paused.returncode == 3 and "--force" in paused.stdout
    forced = koppel("run", "--force", "--config", str(config))
    # It really runs now, and tells why it could not finish: nothing listens on port 9.
    assert forced.returncode == 1
    assert "cannot reach the agent" in forced.stdout
    assert "Traceback" not in forced.stdout + forced.stderr


def test_snelstart_init_creates_once(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    target = tmp_path / "nieuw.sqlite"
    assert main(["snelstart", "init", "--local", str(target), "--sample"]) == 0
    assert "with sample data" in capsys.readouterr().out
    from client.snelstart.local import LocalBackend

    with LocalBackend(target) as backend:
        assert {t.omschrijving for t in backend.sjablonen()} >= {"Webshop", "Webshop excl"}
    before = target.stat().st_mtime_ns
    assert main(["snelstart", "init", "--local", str(target)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert target.stat().st_mtime_ns == before


def test_snelstart_init_help_says_what_only_sample_adds(capsys) -> None:  # noqa: ANN001
    # Without --sample the administration already has its omzetgroepen, templates and cost articles
    # (test_local_backend.py checks them); --sample adds relaties and artikelen only.
    assert main(["snelstart", "init", "--help"]) == 0
    words = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert (
        "--sample Add sample relaties and artikelen (omzetgroepen, templates and cost articles are always "
        "created)." in words
    ), words


def test_test_connection_reports_each_failure_with_a_fix(tmp_path: Path) -> None:
    admin = tmp_path / "administratie.sqlite"
    init_local(admin, sample=True)
    profile = client_profile("http://127.0.0.1:9", admin, orders={"template": "Bestaat niet"})
    config = write_client_config(tmp_path, [profile])
    done = koppel("test-connection", "--config", str(config))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    agent_line = next(line for line in lines if "agent reachable" in line)
    assert (
        agent_line.strip().startswith("FAILED  agent reachable:")
        and "connection refused" in agent_line
        and "fix:" in agent_line
    )
    assert any(line.strip().startswith("OK      SnelStart (local)") for line in lines)
    template = next(line for line in lines if "template:" in line)
    assert template.strip().startswith("FAILED  template:") and "'Bestaat niet'" in template
    # The checks that need an answering agent say they were skipped and why; the last line counts failures.
    assert "  SKIPPED signature: the agent does not answer" in lines
    assert lines[-1] == "2 checks failed."


def test_clock_skew_check() -> None:
    mine = dt.datetime(2026, 12, 3, 12, 0, 0, tzinfo=dt.UTC)
    response = requests.Response()
    response.headers["Date"] = "Thu, 03 Dec 2026 12:07:00 GMT"
    skew = _date_skew(response, lambda: mine)
    assert skew == 420
    far = _skew_check(skew)
    assert not far.ok and "ahead of" in far.detail and far.fix
    assert _skew_check(-30).ok and "behind" in _skew_check(-30).detail
    assert _skew_check(0.4).ok and _skew_check(None).ok


def test_agent_command_refuses_bad_input(config_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["agent", "GET", "/v1/diagnostics", "--data", "{nope", "--config", str(config_path)]) == 2
    assert "--data is not valid JSON" in capsys.readouterr().err
    assert main(["agent", "GET", "https://elsewhere/v1", "--config", str(config_path)]) == 2
    assert "starting with /" in capsys.readouterr().err


def test_autostart_xdg_entry_written_and_removed_in_a_temp_home(config_path: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}
    env["HOME"] = str(home)
    done = koppel("autostart", "install", "--method", "xdg", "--config", str(config_path), env=env)
    assert done.returncode == 0, done.stderr
    entry = home / ".config" / "autostart" / "koppel-schedule.desktop"
    text = entry.read_text(encoding="utf-8")
    assert f"Exec={sys.executable} -m client.cli --config {config_path.resolve()} schedule" in text
    assert "Type=Application" in text
    assert "WARNING" not in done.stdout  # the secret is in client.yml: nothing to warn about
    assert done.stdout.startswith(f"autostart entry {entry} written; it starts at your next logon")
    removed = koppel("autostart", "remove", "--method", "xdg", env=env)
    assert removed.returncode == 0 and not entry.exists()


def test_autostart_warns_about_secrets_from_the_environment(tmp_path: Path) -> None:
    admin = tmp_path / "administratie.sqlite"
    init_local(admin, sample=True)
    profile = client_profile(
        "http://127.0.0.1:9", admin, agent={"secret": None, "secret_env": "KOPPEL_SHOP_SECRET"}
    )
    config = write_client_config(tmp_path, [profile])
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_CONFIG_HOME"}
    env.update(HOME=str(home), KOPPEL_SHOP_SECRET="x" * 40)  # set in this window only, as the user had it
    done = koppel("autostart", "install", "--method", "xdg", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    warning = next(line for line in done.stdout.splitlines() if line.startswith("WARNING: "))
    assert "shop: agent.secret_env" in warning and "KOPPEL_SHOP_SECRET" in warning
    assert "secret_file" in warning
    windows = autostart.environment_warnings(config, "schtasks")
    assert len(windows) == 1 and "setx KOPPEL_SHOP_SECRET <value>" in windows[0]


def test_autostart_systemd_unit_and_windows_task(config_path: Path, tmp_path: Path) -> None:
    result = autostart.install(config_path, method="systemd", home=tmp_path, activate=False)
    unit = Path(result.location)
    assert unit == tmp_path / ".config" / "systemd" / "user" / "koppel-schedule.service"
    text = unit.read_text(encoding="utf-8")
    assert f"ExecStart={sys.executable} -m client.cli --config {config_path.resolve()} schedule" in text
    assert "WantedBy=default.target" in text and "Restart=on-failure" in text
    autostart.remove(method="systemd", home=tmp_path, activate=False)
    assert not unit.exists()
    args = autostart.windows_create_args(config_path)
    assert args[:5] == ["schtasks", "/Create", "/TN", "koppel schedule", "/TR"]
    assert args[6:] == ["/SC", "ONLOGON", "/RL", "LIMITED", "/F"]
    assert "schedule" in args[5] and str(config_path.resolve()) in args[5]
    deep = tmp_path / ("x" * 120) / ("y" * 120)
    deep.mkdir(parents=True)
    long_config = deep / "client.yml"
    long_config.write_text(config_path.read_text(encoding="utf-8"), encoding="utf-8")
    long_args = autostart.windows_create_args(long_config)
    assert len(long_args[5]) <= autostart.SCHTASKS_TR_LIMIT
    assert long_args[5].endswith("koppel-schedule.cmd")
    assert str(long_config) in autostart.windows_wrapper_text(long_config)
    with pytest.raises(autostart.AutostartError, match="no such configuration"):
        autostart.install(tmp_path / "missing.yml", method="xdg", home=tmp_path)


def test_template_vat_mode_is_compared_with_how_the_shop_enters_prices(tmp_path: Path) -> None:
    from client.config import load_client_config
    from client.connection_test import _template_check, price_entry
    from client.snelstart.base import Verkoopsjabloon

    entered_incl = [{"lines": [{"unit_price": "17.3853", "unit_price_incl_tax": "18.9500"}]}]
    entered_excl = [{"lines": [{"unit_price": "10.0000", "unit_price_incl_tax": "12.1000"},
                               {"unit_price": "15.5000", "unit_price_incl_tax": "18.7550"}]}]  # fmt: skip
    assert price_entry(entered_incl) is True
    # 10.00 → 12.10 is whole cents both ways and does not vote; 15.50 → 18.755 does.
    assert price_entry(entered_excl) is False
    assert price_entry([]) is None
    admin = tmp_path / "a.sqlite"
    profile = load_client_config(write_client_config(tmp_path, [client_profile("http://x", admin)])).profile(
        "shop"
    )
    incl = Verkoopsjabloon("1", "Webshop", prijs_incl_btw=True)
    assert (
        _template_check(profile, [incl], True)
        .line()
        .startswith("OK      template: 'Webshop', prices including")
    )
    mismatch = _template_check(profile, [incl], False)
    assert mismatch.ok and mismatch.warning
    assert mismatch.line().startswith("WARNING template:") and "excluding VAT" in mismatch.line()


def test_status_shows_local_times_pausing_and_idle(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    admin = tmp_path / "administratie.sqlite"
    tasks = {
        "import_orders": {"interval": "15m", "next_run": "2027-06-24 10:00", "paused": True},
        "import_orders_and_export_stock": {"interval": "1h", "next_run": "2027-12-24 10:00"},
    }
    config = write_client_config(tmp_path, [client_profile("http://127.0.0.1:9", admin, tasks=tasks)])
    assert main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "shop (test shop)" in out and "Now: Gereed" in out
    # next_run is written and shown in Amsterdam time, summer and winter alike (stored in UTC).
    assert "next run:  2027-06-24 10:00 (every 15m)" in out
    assert "next run:  2027-12-24 10:00 (every 1h)" in out
    assert "paused:    yes — task import_orders is paused" in out
    assert "paused:    no" in out
    assert out.count("last run:  never") == 2


def test_created_orders_say_what_happened_to_the_relatie() -> None:
    from client.cli import describe_created
    from client.engine import CreatedOrder

    new = CreatedOrder(7, "100000007", 3, 12, "created", customer="created")
    assert describe_created(new) == "Magento order 100000007 → SnelStart order 3 (relatie 12 created)"
    known = CreatedOrder(8, "100000008", 4, 1, "created", customer="matched")
    assert describe_created(known) == "Magento order 100000008 → SnelStart order 4 (relatie 1 matched)"
    adopted = CreatedOrder(9, "100000009", 5, 1, "adopted")
    assert describe_created(adopted) == "Magento order 100000009 → SnelStart order 5 (relatie 1, adopted)"


def test_quantities_and_amounts_are_shown_as_people_write_them() -> None:
    from decimal import Decimal

    from client.engine import show_money, show_quantity

    assert show_quantity(Decimal("3.0000")) == "3" and show_quantity(Decimal("1.5000")) == "1.5"
    assert show_quantity(Decimal("10")) == "10" and show_quantity(Decimal("100.0000")) == "100"
    assert show_money(Decimal("13.9201")) == "13.92" and show_money("24.9500") == "24.95"


# -- what a new user following the README ran into ------------------------------------------------------------


def test_a_client_yml_in_another_encoding_is_wrong_use_named_in_one_line(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    latin = tmp_path / "client.yml"
    latin.write_bytes("profiles:\n  - name: shop\n    description: café\n".encode("latin-1"))
    assert main(["status", "--config", str(latin)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"koppel: {latin} line 3: byte 46 (0xE9, 'é' in Windows-1252/Latin-1) is not UTF-8; save it as UTF-8 "
        "text (Notepad: Save as, Encoding UTF-8)\n"
    )
    assert main(["profiles", "--config", str(tmp_path)]) == 2
    assert "that is a folder, not a file" in capsys.readouterr().err


def test_snelstart_init_on_a_folder_says_it_is_one(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["snelstart", "init", "--local", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{tmp_path} is a folder; give the file to create, e.g. --local {tmp_path / 'administratie.sqlite'}"
        in err
    )
    assert list(tmp_path.iterdir()) == []


def test_help_shows_flags_without_a_value_and_each_default_once(capsys) -> None:  # noqa: ANN001
    for command in [[], *COMMANDS]:
        assert main([*command, "--help"]) == 0
        out = capsys.readouterr().out
        assert "<bool>" not in out, command
    assert main(["schedule", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.count("default") == 1 and "[default: 20.0]" in out and "SECONDS" in out
    assert main(["--help"]) == 0
    assert "--version" in capsys.readouterr().out


def test_version(capsys) -> None:  # noqa: ANN001
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"koppel {version('koppel')}\n"
    done = koppel("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"koppel {version('koppel')}"


def test_status_right_after_a_manual_run_without_a_scheduler(config_path: Path) -> None:
    # Nothing listens on port 9: the manual run fails, but it is a run, and status must make sense after it.
    assert koppel("run", "--config", str(config_path)).returncode == 1
    out = koppel("status", "--config", str(config_path)).stdout
    assert out.startswith("Scheduler: not running — scheduled runs wait for `koppel schedule`")
    assert "(manual) — failed" in out
    assert "next run:  as soon as `koppel schedule` runs, then every 15m" in out
    assert "due now" not in out


def test_status_says_import_orders_runs_within_the_stock_task(tmp_path: Path) -> None:
    admin = tmp_path / "administratie.sqlite"
    init_local(admin, sample=True)
    tasks = {"import_orders": {"interval": "15m"}, "import_orders_and_export_stock": {"interval": "15m"}}
    path = write_client_config(tmp_path, [client_profile("http://127.0.0.1:9", admin, tasks=tasks)])
    out = koppel("status", "--config", str(path)).stdout
    imports = out.split("  import_orders:\n", 1)[1].splitlines()[0]
    assert imports == (
        "    last run:  never on its own — when both are due it runs as part of import_orders_and_export_stock, "
        "which imports first"
    ), out
    stock = out.split("  import_orders_and_export_stock:\n", 1)[1].splitlines()[0]
    assert stock == "    last run:  never", out


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> list[str]:
    import time

    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} not seen in {seen}")


def test_koppel_schedule_is_seen_by_status_refuses_a_second_and_exits_130_on_ctrl_c(
    config_path: Path,
) -> None:
    scheduler = subprocess.Popen(
        [sys.executable, "-u", "-m", "client.cli", "schedule", "--tick", "1", "--config", str(config_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = wait_for_line(scheduler, "Scheduler running for shop")
        # Due at once (no next_run in client.yml): said as status says it, not as a time already past.
        assert any(
            line.startswith("shop/import_orders: every 15m, next run now (due since 20") for line in banner
        ), banner
        status = koppel("status", "--config", str(config_path)).stdout
        assert status.startswith(f"Scheduler: koppel schedule is running (process {scheduler.pid})")
        second = koppel("schedule", "--tick", "1", "--config", str(config_path))
        assert second.returncode == 3
        assert (
            f"koppel schedule is already running for this client.yml's state file (process {scheduler.pid})"
            in (second.stderr)
        )
        wait_for_line(
            scheduler, "shop/import_orders: failed"
        )  # its first run, against an agent that is not there
    finally:
        scheduler.send_signal(signal.SIGINT)
        rest, _ = scheduler.communicate(timeout=60)
    assert scheduler.returncode == 130, rest  # as the README's exit codes say
    assert "Scheduler stopped (Ctrl-C)" in rest
    log = koppel("log", "--config", str(config_path)).stdout
    assert "Scheduler stopped (Ctrl-C); scheduled runs wait until koppel schedule runs again" in log
    after = koppel("status", "--config", str(config_path)).stdout
    assert after.startswith("Scheduler: not running")


def test_run_output_counts_agree_with_their_nouns() -> None:
    from types import SimpleNamespace

    from client.runner import describe_stock

    one = SimpleNamespace(sent=1, updated=1, unchanged=0, unknown=0, not_managed=0, invalid=0, full=False)
    assert describe_stock(one) == "web stock: 1 item sent (1 updated, 0 unchanged)"


def test_the_run_summary_counts_the_warnings_the_log_holds(shop, client_config) -> None:  # noqa: ANN001
    from client.state import StateStore
    from client.wording import count
    from tests.client.conftest import guest

    shop.product("1002", "Espressokopjes, set van 6")  # 21 % in SnelStart's sample administration
    item = {"sku": "1002", "qty": 2, "price": "20.6198"}
    shop.order(items=[{**item, "tax_percent": 9}], billing=guest("a@example.org"))  # a VAT difference: warned
    shop.order(items=[item], billing=guest("b@example.org"))
    config = client_config()
    done = koppel("run", "--config", str(config.path))
    assert done.returncode == 0, done.stdout + done.stderr
    with StateStore(config.state) as state:
        warnings = [e for e in state.log_entries("shop") if e.level == "warning"]
    assert warnings, "the 9 % line was not warned about"
    summary = next(line for line in done.stdout.splitlines() if line.startswith("shop/import_orders: "))
    assert summary.startswith("shop/import_orders: ok: 2 orders imported")
    assert summary.endswith(f", {count(len(warnings), 'warning')} (koppel log)"), summary
    # A second run logs no warning: the summary then says nothing of them.
    again = koppel("run", "--config", str(config.path))
    assert "warning" not in again.stdout, again.stdout
