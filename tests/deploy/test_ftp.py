"""koppel-agent deploy over FTPS (pyftpdlib with TLS on loopback, protected data channel required): the
release with its packages, the CURRENT pointer, passenger_wsgi.py serving the release, a second release,
a rollback, pruning, and no secret in the output."""

from __future__ import annotations

import ftplib
import json
import logging
import stat
import subprocess
from pathlib import Path

import pytest

from agent.cli import main as agent_main
from deploy.ftp import FtpSettings, FtpTarget
from tests.deploy.conftest import SERVER_PYTHON, FtpServer, ShopDatabase, secrets_of

# Passenger's part, played by a bare interpreter (-I -S: no site-packages at all, so every package the
# agent imports must come from the release): load passenger_wsgi.py, call the application once.
PASSENGER = """
import json, runpy, sys
from wsgiref.util import setup_testing_defaults
ns = runpy.run_path(sys.argv[1])
environ = {"PATH_INFO": "/v1/health", "REQUEST_METHOD": "GET"}
setup_testing_defaults(environ)
status = []
body = b"".join(ns["application"](environ, lambda s, h, e=None: status.append(s)))
print(json.dumps([status[0], body.decode(), ns["RELEASE"]]))
"""


def passenger_health(app_root: Path) -> tuple[str, str, str]:
    done = subprocess.run(
        [SERVER_PYTHON, "-I", "-S", "-c", PASSENGER, str(app_root / "passenger_wsgi.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    status, body, release = json.loads(done.stdout.strip().splitlines()[-1])
    return status, body, release


def deploy(ftps: FtpServer, *extra: str) -> int:
    return agent_main(
        [
            "deploy",
            f"ftps://{ftps.user}@127.0.0.1:{ftps.port}/koppel",
            "--ca-file",
            str(ftps.ca_file),
            "--password-env",
            "KOPPEL_TEST_FTP_PASSWORD",
            *extra,
        ]
    )


def test_ftps_deploy_second_release_rollback_and_prune(
    ftps: FtpServer,
    agent_yml: Path,
    shop_db: ShopDatabase,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)  # the server side: not the deploy's output
    monkeypatch.setenv("KOPPEL_TEST_FTP_PASSWORD", ftps.password)
    root = ftps.home / "koppel"
    args = ["--config", str(agent_yml), "--packages", "local"]

    assert deploy(ftps, *args) == 0
    out = capsys.readouterr().out
    first = (root / "CURRENT").read_text().strip()
    assert first.startswith("releases/") and (root / first / "site-packages" / "flask").is_dir()
    assert stat.S_IMODE((root / first / "agent.yml").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / first / "support.secret").stat().st_mode) == 0o600
    assert (root / "tmp" / "restart.txt").exists() and (root / "passenger_wsgi.py").exists()
    assert not list((root / "releases").glob(".*")), "no partial upload left behind"
    status, body, release = passenger_health(root)
    assert status == "200 OK" and '"ok"' in body and release.endswith(first)
    assert (root / "shared" / "agent-state").is_dir()
    logged = out + "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("pyftpdlib"))
    shipped = (root / first / "agent.yml").read_text() + (root / first / "support.secret").read_text()
    for secret in [*secrets_of(shop_db), ftps.password]:
        assert secret not in logged
    for secret in secrets_of(shop_db):
        assert secret in shipped

    restarted = (root / "tmp" / "restart.txt").read_text()
    assert deploy(ftps, *args) == 0
    capsys.readouterr()
    second = (root / "CURRENT").read_text().strip()
    assert second != first and (root / first).is_dir()
    assert (root / "tmp" / "restart.txt").read_text() != restarted
    assert passenger_health(root)[2].endswith(second)

    # An upload that breaks halfway: CURRENT, passenger_wsgi.py and the releases stay as they were.
    entry = (root / "passenger_wsgi.py").read_bytes()
    (root / "passenger_wsgi.py").write_bytes(entry + b"# as an older koppel wrote it\n")
    calls = {"n": 0}
    real_put = FtpTarget._put_file

    def breaking_put(self: FtpTarget, local: Path, remote: str, secret: bool) -> None:
        calls["n"] += 1
        if calls["n"] == 8:
            raise ConnectionResetError("connection lost (injected)")
        real_put(self, local, remote, secret)

    monkeypatch.setattr(FtpTarget, "_put_file", breaking_put)
    assert deploy(ftps, *args) == 1
    out = capsys.readouterr().out
    monkeypatch.setattr(FtpTarget, "_put_file", real_put)
    assert "failed at step upload" in out and "connection lost (injected)" in out
    assert (root / "CURRENT").read_text().strip() == second
    assert (root / "passenger_wsgi.py").read_bytes() == entry + b"# as an older koppel wrote it\n"
    assert {p.name for p in (root / "releases").iterdir()} == {first[9:], second[9:]}
    assert passenger_health(root)[2].endswith(second)

    assert deploy(ftps, "--rollback") == 0
    assert (root / "passenger_wsgi.py").read_bytes() == entry, "the switch writes koppel's own entry"
    assert f"rolled back to {first[9:]} (was {second[9:]})" in capsys.readouterr().out
    assert (root / "CURRENT").read_text().strip() == first
    status, _, release = passenger_health(root)
    assert status == "200 OK" and release.endswith(first)

    # Two more with --keep 2: the newest two stay, and so does the one a rollback would go back to.
    # (Packages from PyPI here: nothing is vendored, the upload is small, pruning is what is looked at.)
    lean = ["--config", str(agent_yml), "--packages", "pypi", "--keep", "2"]
    assert deploy(ftps, *lean) == 0  # previous = first: nothing goes
    third = (root / "CURRENT").read_text().strip()
    assert (root / third / "requirements.txt").exists() and not (root / third / "site-packages").exists()
    assert {p.name for p in (root / "releases").iterdir()} == {first[9:], second[9:], third[9:]}
    assert deploy(ftps, *lean) == 0
    fourth = (root / "CURRENT").read_text().strip()
    assert {p.name for p in (root / "releases").iterdir()} == {third[9:], fourth[9:]}
    assert "removed release" in capsys.readouterr().out


def test_plain_ftp_is_refused_without_the_explicit_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        agent_main(["deploy", "ftp://someone@127.0.0.1:1/koppel", "--config", "agent.yml"])
    assert "unencrypted" in str(exc.value)


def test_a_rename_whose_source_is_missing_leaves_the_destination(ftps: FtpServer) -> None:
    """The pointer switch falls back to delete-then-rename only when RNTO is refused, never when RNFR is."""
    folder = ftps.home / "rename"
    folder.mkdir()
    (folder / "CURRENT").write_text("releases/20260101T000000Z\n")
    target = FtpTarget(
        FtpSettings("127.0.0.1", ftps.user, ftps.password, "/rename", port=ftps.port, ca_file=ftps.ca_file)
    )
    try:
        with pytest.raises(ftplib.error_perm):
            target._replace("/rename/CURRENT.tmp", "/rename/CURRENT")
        assert (folder / "CURRENT").read_text() == "releases/20260101T000000Z\n"
        target.switch("20260202T000000Z")
    finally:
        target.close()
    assert (folder / "CURRENT").read_text() == "releases/20260202T000000Z\n"
    assert not (folder / "CURRENT.tmp").exists() and (folder / "passenger_wsgi.py").exists()


def test_a_password_in_the_target_is_refused_without_repeating_it() -> None:
    for target in ("ftps://someone:Pw-in-url-123456@127.0.0.1/koppel", "ftpx://someone:Pw-in-url-123456@h/k"):
        with pytest.raises(SystemExit) as exc:
            agent_main(["deploy", target, "--config", "agent.yml"])
        assert "put no password in the target" in str(exc.value) and "Pw-in-url" not in str(exc.value)
    with pytest.raises(SystemExit, match="the port must be a number"):
        agent_main(["deploy", "ftps://someone@127.0.0.1:port/koppel", "--config", "agent.yml"])


def test_an_unexpected_error_is_one_redacted_line_unless_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import deploy.ftp

    password = "Ftp-password-for-this-test-77"
    monkeypatch.setenv("KOPPEL_TEST_FTP_PASSWORD", password)

    def broken(settings: FtpSettings) -> None:
        raise RuntimeError(f"library said: login {settings.password} failed oddly")

    monkeypatch.setattr(deploy.ftp, "FtpTarget", broken)
    argv = [
        "deploy",
        "ftps://someone@127.0.0.1/koppel",
        "--list",
        "--password-env",
        "KOPPEL_TEST_FTP_PASSWORD",
    ]
    assert agent_main(argv) == 1
    out, err = capsys.readouterr()
    assert out == (
        "koppel-agent deploy: unexpected error: RuntimeError: library said: login [secret] failed oddly "
        "(run it again with --debug for the details)\n"
    )
    assert err == "" and "Traceback" not in out
    with pytest.raises(RuntimeError, match="failed oddly"):
        agent_main([*argv, "--debug"])
