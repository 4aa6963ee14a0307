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
    ShopDatabase,
    SshServer,
    secrets_of,
    stop_pidfile,
)
from tests.mariadb import free_port

# What a VPS does with systemd, done with a pid file: stop the running agent, start the one `current` names.
RESTART_SCRIPT = """#!/bin/sh
cd "$(dirname "$0")" || exit 1
if [ -f shared/agent.pid ]; then
    pid=$(cat shared/agent.pid)
    kill -TERM "$pid" 2>/dev/null
    n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 300 ]; do sleep 0.1; n=$((n + 1)); done
fi
setsid current/venv/bin/python -m agent serve --config current/agent.yml --bind 127.0.0.1:{port} \\
    --workers 1 --threads 2 </dev/null >>shared/agent.log 2>&1 &
echo $! > shared/agent.pid
echo "agent started as process $!"
"""


@pytest.fixture
def server(sshd: SshServer, tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A fresh base folder on the SSH server with its restart script; the agent it starts is stopped after."""
    base = sshd.root / tmp_path.name
    (base / "shared").mkdir(parents=True)
    port = free_port()
    script = base / "restart.sh"
    script.write_text(RESTART_SCRIPT.format(port=port), encoding="utf-8")
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
