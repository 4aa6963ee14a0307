"""koppel-agent deploy over SSH/SFTP against a real sshd on loopback: host key trust, a deploy whose
release builds its own virtual environment and passes `koppel-agent check` on the server, a running agent
answering /v1/health, a second release, an upload broken halfway, a rollback."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agent.cli import main as agent_main
from deploy.ssh import SshTarget
from tests.deploy.conftest import (
    SERVER_PYTHON,
    UNIT_BASE,
    UNIT_BIND,
    ShopDatabase,
    SshServer,
    read_unit,
    secrets_of,
    stop_pidfile,
)
from tests.mariadb import free_port

# What systemd does with deploy/koppel-agent.service, done with a pid file: stop the running agent, then start
# the unit's own ExecStart (its paths moved to this base folder, its port to a free one) in its
# WorkingDirectory, with its EnvironmentFile.
RESTART_SCRIPT = """#!/bin/sh
base="$(cd "$(dirname "$0")" && pwd)"
if [ -f "$base/shared/agent.pid" ]; then
    pid=$(cat "$base/shared/agent.pid")
    kill -TERM "$pid" 2>/dev/null
    n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
fi
cd {workdir} || exit 1
if [ -f {env_file} ]; then set -a; . {env_file}; set +a; fi
setsid {exec_start} </dev/null >>"$base/shared/agent.log" 2>&1 &
echo $! > "$base/shared/agent.pid"
echo "agent started as process $!"
"""


def restart_script(base: Path, port: int) -> str:
    service = read_unit()["Service"]

    def here(value: str) -> str:
        return value.replace(UNIT_BASE, str(base)).replace(UNIT_BIND, f"127.0.0.1:{port}")

    return RESTART_SCRIPT.format(
        workdir=here(service["WorkingDirectory"][0]),
        env_file=here(service["EnvironmentFile"][0].removeprefix("-")),
        exec_start=here(service["ExecStart"][0]),
    )


@pytest.fixture
def server(sshd: SshServer, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A fresh base folder on the SSH server with its restart script; the agent it starts is stopped after."""
    base = sshd.root / tmp_path.name
    (base / "shared").mkdir(parents=True)
    port = free_port()
    script = base / "restart.sh"
    script.write_text(restart_script(base, port), encoding="utf-8")
    script.chmod(0o755)
    yield base, port
    stop_pidfile(base / "shared" / "agent.pid")


def deploy(sshd: SshServer, base: Path, known_hosts: Path, *extra: str) -> int:
    return agent_main(
        [
            "deploy",
            f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{base}",
            "--key",
            str(sshd.client_key),
            "--known-hosts",
            str(known_hosts),
            "--python",
            SERVER_PYTHON,
            *extra,
        ]
    )


def current(base: Path) -> str:
    return os.readlink(base / "current")


def agent_pid(base: Path) -> int:
    return int((base / "shared" / "agent.pid").read_text())


def test_unknown_host_key_is_refused_unless_its_fingerprint_is_confirmed(
    sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known = tmp_path / "known_hosts"
    base = sshd.root / "hostkey"

    assert deploy(sshd, base, known, "--list") == 1
    out = capsys.readouterr().out
    assert "failed at step connect" in out
    assert f"--accept-host-key {sshd.host_fingerprint}" in out, out
    assert not known.exists()

    wrong = "SHA256:" + "A" * 43
    assert deploy(sshd, base, known, "--list", "--accept-host-key", wrong) == 1
    assert f"has fingerprint {sshd.host_fingerprint}, not the {wrong}" in capsys.readouterr().out
    assert not known.exists()

    assert deploy(sshd, base, known, "--list", "--accept-host-key", sshd.host_fingerprint) == 0
    assert "no releases on the server yet" in capsys.readouterr().out
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in known.read_text()

    # Now known: no flag needed. A different key recorded for the host is refused as a possible attack.
    assert deploy(sshd, base, known, "--list") == 0
    capsys.readouterr()
    line = known.read_text().split()
    other = (sshd.client_key.with_suffix(".pub")).read_text().split()[1]
    known.write_text(f"{line[0]} ssh-ed25519 {other}\n")
    assert deploy(sshd, base, known, "--list") == 1
    out = capsys.readouterr().out
    assert f"the host key of 127.0.0.1 is {sshd.host_fingerprint}" in out
    assert "Someone may be in between" in out


def test_deploy_second_release_broken_upload_and_rollback(
    sshd: SshServer,
    server: tuple[Path, int],
    agent_yml: Path,
    shop_db: ShopDatabase,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    base, port = server
    health = f"http://127.0.0.1:{port}/v1/health"
    known = tmp_path / "known_hosts"
    common = ["--config", str(agent_yml), "--packages", "local", "--restart-command", "./restart.sh"]
    common += ["--health-url", health]

    # 1. First release: built, checked on the server, switched to, started, healthy.
    assert deploy(sshd, base, known, *common, "--accept-host-key", sshd.host_fingerprint) == 0
    out = capsys.readouterr().out
    first = current(base)
    assert first.startswith("releases/") and (base / first / "venv" / "bin" / "python").exists()
    assert "check passed" in out and "[switch]" in out and f"deployed {first.split('/')[1]}" in out
    release = base / first
    assert stat.S_IMODE((release / "agent.yml").stat().st_mode) == 0o600
    assert stat.S_IMODE((release / "support.secret").stat().st_mode) == 0o600
    assert not (release / "wheels").exists()
    assert requests.get(health, timeout=10).status_code == 200
    assert (base / "shared" / "agent-state").is_dir(), "state_dir lives outside the releases"
    assert "Using worker: gthread" in (base / "shared" / "agent.log").read_text()
    pid1 = agent_pid(base)

    # Secrets reached the server, but not the deploy's output or logs.
    shipped = (release / "agent.yml").read_text() + (release / "support.secret").read_text()
    logged = out + "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets_of(shop_db):
        assert secret in shipped
        assert secret not in logged

    # 2. Second release replaces it.
    assert deploy(sshd, base, known, *common) == 0
    capsys.readouterr()
    second = current(base)
    assert second != first and (base / second).is_dir() and (base / first).is_dir()
    assert requests.get(health, timeout=10).status_code == 200
    pid2 = agent_pid(base)
    assert pid2 != pid1

    # A restart that fails after the switch: current goes back, the running agent is the second release.
    failing = [a if a != "./restart.sh" else "echo unit failed >&2; exit 3" for a in common]
    assert deploy(sshd, base, known, *failing) == 1
    out = capsys.readouterr().out
    assert (
        "failed at step restart" in out
        and "unit failed" in out
        and f"switched current back to {second[9:]}" in out
    )
    assert current(base) == second
    assert sorted(p.name for p in (base / "releases").iterdir()) == sorted([first[9:], second[9:]])
    assert agent_pid(base) == pid2

    # 3. An upload that breaks halfway: the running release and current stay as they were.
    calls = {"n": 0}
    real_put = SshTarget._put_file

    def breaking_put(self: SshTarget, local: Path, remote: str, secret: bool) -> None:
        calls["n"] += 1
        if calls["n"] == 8:
            raise ConnectionResetError("connection lost (injected)")
        real_put(self, local, remote, secret)

    monkeypatch.setattr(SshTarget, "_put_file", breaking_put)
    assert deploy(sshd, base, known, *common) == 1
    out = capsys.readouterr().out
    monkeypatch.undo()
    assert calls["n"] == 8
    assert "failed at step upload" in out and "connection lost (injected)" in out
    assert current(base) == second
    assert sorted(p.name for p in (base / "releases").iterdir()) == sorted([first[9:], second[9:]])
    assert agent_pid(base) == pid2
    assert requests.get(health, timeout=10).status_code == 200

    # Ctrl-C while the server prepares the new release: the same, named as the step it stopped.
    def interrupted(self: SshTarget, stamp: str, console: object) -> None:
        assert (base / "releases" / stamp).is_dir()  # uploaded in full, then stopped
        raise KeyboardInterrupt

    monkeypatch.setattr(SshTarget, "prepare", interrupted)
    lean = [a if a != "local" else "pypi" for a in common]
    assert deploy(sshd, base, known, *lean) == 1
    out = capsys.readouterr().out
    monkeypatch.undo()
    assert "failed at step prepare: interrupted (Ctrl-C)" in out
    assert current(base) == second
    assert sorted(p.name for p in (base / "releases").iterdir()) == sorted([first[9:], second[9:]])
    assert agent_pid(base) == pid2

    # 4. Rollback: back to the first release, restarted.
    assert (
        deploy(sshd, base, known, "--rollback", "--restart-command", "./restart.sh", "--health-url", health)
        == 0
    )
    out = capsys.readouterr().out
    assert current(base) == first
    assert f"rolled back to {first[9:]} (was {second[9:]})" in out
    assert agent_pid(base) != pid2
    assert requests.get(health, timeout=10).status_code == 200

    assert deploy(sshd, base, known, "--list") == 0
    listing = capsys.readouterr().out
    assert f"* {first[9:]}" in listing and f"  {second[9:]}" in listing


def test_a_release_that_fails_the_check_on_the_server_is_never_switched_to(
    sshd: SshServer,
    server: tuple[Path, int],
    agent_yml: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, _ = server
    known = tmp_path / "known_hosts"
    broken = agent_yml.with_name("broken.yml")
    broken.write_text(agent_yml.read_text().replace("name: ", "name: no_such_db_", 1), encoding="utf-8")
    args = ["--config", str(broken), "--packages", "local", "--restart-command", "./restart.sh"]
    assert deploy(sshd, base, known, *args, "--accept-host-key", sshd.host_fingerprint) == 1
    out = capsys.readouterr().out
    assert "failed at step check" in out and "FAIL  database" in out
    assert not (base / "current").exists()
    assert list((base / "releases").iterdir()) == []
    assert not (base / "shared" / "agent.pid").exists(), "the restart command must not have run"


def test_too_old_python_on_the_server_stops_at_prepare(
    sshd: SshServer,
    server: tuple[Path, int],
    agent_yml: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, _ = server
    old = base / "python3.8"
    old.write_text('#!/bin/sh\n[ "$1" = -V ] && { echo "Python 3.8.10"; exit 0; }\nexit 1\n')
    old.chmod(0o755)
    args = ["--config", str(agent_yml), "--packages", "pypi", "--accept-host-key", sshd.host_fingerprint]
    assert (
        agent_main(
            [
                "deploy",
                f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{base}",
                "--key",
                str(sshd.client_key),
                "--known-hosts",
                str(tmp_path / "known_hosts"),
                "--python",
                str(old),
                *args,
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "failed at step prepare" in out and "is Python 3.8.10; koppel needs 3.11 or newer" in out
    assert list((base / "releases").iterdir()) == [] and not (base / "current").exists()


def _at_a_terminal(argv: list[str], answer: str, timeout: float = 60) -> tuple[int, str]:
    """Run koppel-agent with a pseudo-terminal as stdin/stdout; type ``answer`` when it asks."""
    import pty
    import select
    import subprocess
    import sys
    import time

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "koppel-agent"), *argv],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if not answered and b"[yes/no]" in seen:
                os.write(leader, answer.encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    assert answered, seen.decode(errors="replace")
    return code, seen.decode(errors="replace")


def test_unknown_host_key_confirmed_at_a_terminal(sshd: SshServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    argv = [
        "deploy",
        f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{sshd.root / 'terminal'}",
        "--key",
        str(sshd.client_key),
        "--known-hosts",
        str(known),
        "--list",
    ]
    code, out = _at_a_terminal(argv, "no")
    assert code == 1 and f"fingerprint\r\n    {sshd.host_fingerprint}" in out, out
    assert "failed at step connect" in out and not known.exists()

    code, out = _at_a_terminal(argv, "yes")
    assert code == 0 and "no releases on the server yet" in out, out
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519 " in known.read_text()
    # Recorded: the next run asks nothing (it would hang waiting, or fail, if it did).
    assert deploy(sshd, sshd.root / "terminal", known, "--list") == 0


def test_key_passphrase_and_password_never_reach_the_output(
    sshd: SshServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    passphrase = "key-passphrase-" + os.urandom(8).hex()
    key = tmp_path / "locked_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(key)], check=True)
    with (sshd.client_key.parent / "authorized_keys").open("a") as keys:
        keys.write(key.with_suffix(".pub").read_text())
    known = tmp_path / "known_hosts"
    target = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{sshd.root / 'locked'}"
    trust = ["--known-hosts", str(known), "--accept-host-key", sshd.host_fingerprint, "--list"]

    monkeypatch.setenv("KOPPEL_TEST_KEY_PASSPHRASE", passphrase)
    unlocked = ["deploy", target, "--key", str(key), "--key-passphrase-env", "KOPPEL_TEST_KEY_PASSPHRASE"]
    assert agent_main([*unlocked, *trust]) == 0
    assert "no releases on the server yet" in capsys.readouterr().out

    # An encrypted key without its passphrase, or with a wrong one: said plainly, at step connect.
    assert agent_main(["deploy", target, "--key", str(key), *trust]) == 1
    out = capsys.readouterr().out
    assert "failed at step connect" in out and "--key-passphrase-env" in out, out
    wrong = "wrong-passphrase-" + os.urandom(8).hex()
    monkeypatch.setenv("KOPPEL_TEST_KEY_PASSPHRASE", wrong)
    assert agent_main([*unlocked, *trust]) == 1
    out = capsys.readouterr().out
    assert "failed at step connect" in out and "passphrase" in out and wrong not in out, out

    with pytest.raises(SystemExit, match="no such file"):
        agent_main(["deploy", target, "--key", str(tmp_path / "no_key"), *trust])

    # A password login this server does not allow: refused, named, and the password nowhere.
    password = "ssh-password-" + os.urandom(8).hex()
    monkeypatch.setenv("KOPPEL_TEST_SSH_PASSWORD", password)
    assert agent_main(["deploy", target, "--password-env", "KOPPEL_TEST_SSH_PASSWORD", *trust]) == 1
    out = capsys.readouterr()
    assert "failed at step connect" in out.out and "refused the login" in out.out, out.out
    assert password not in out.out + out.err and passphrase not in out.out + out.err


def test_an_agent_env_sh_cannot_read_stops_without_repeating_its_lines(
    sshd: SshServer,
    server: tuple[Path, int],
    agent_yml: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base, _ = server
    hidden = "envsecret" + os.urandom(6).hex()
    # Unquoted, so sh runs the second word as a command and would say "<word>: not found".
    (base / "shared" / "agent.env").write_text(f"KOPPEL_DB_PASSWORD=first {hidden}\n")
    args = ["--config", str(agent_yml), "--packages", "pypi", "--restart-command", "./restart.sh"]
    assert (
        deploy(sshd, base, tmp_path / "known_hosts", *args, "--accept-host-key", sshd.host_fingerprint) == 1
    )
    out = capsys.readouterr()
    assert "failed at step prepare" in out.out and "agent.env is not a list of KEY=value lines" in out.out
    assert hidden not in out.out + out.err
    assert list((base / "releases").iterdir()) == [] and not (base / "current").exists()
