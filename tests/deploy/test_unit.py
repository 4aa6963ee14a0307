"""deploy/koppel-agent.service: a unit systemd accepts, for gunicorn as a non-root user, restarted on failure,
hardened. (test_ssh.py runs the unit's ExecStart on a deployed release; here systemd's own tools judge it.)"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.conftest import UNIT_BASE, UNIT_BIND, UNIT_FILE, read_unit

# systemd-analyze security rates a unit from 0 (locked down) to 10 (nothing restricted); a bare unit is 9.6.
# 4.0 is the top of its "OK" band: taking away NoNewPrivileges, ProtectSystem and the empty capability set
# alone already gives 5.4.
MAX_EXPOSURE = 40  # tenths


def analyze() -> str:
    binary = shutil.which("systemd-analyze")
    if binary is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd): the unit is not verified")
    return binary


def test_unit_runs_gunicorn_from_the_current_release_as_a_plain_user() -> None:
    unit = read_unit()
    service = unit["Service"]
    assert service["User"] not in (["root"], ["0"], []) and service["Group"] not in (["root"], ["0"])
    assert service["Restart"] == ["on-failure"]
    [exec_start] = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == f"{UNIT_BASE}/current/venv/bin/python" and argv[1:4] == ["-m", "agent", "serve"]
    assert argv[argv.index("--config") + 1] == f"{UNIT_BASE}/current/agent.yml"
    assert argv[argv.index("--bind") + 1] == UNIT_BIND, "loopback only: the proxy snippets publish it"
    assert service["WorkingDirectory"] == [f"{UNIT_BASE}/current"]
    # It may write its state folder only, and that is where deploy puts state_dir.
    assert service["ReadWritePaths"] == [f"{UNIT_BASE}/shared"]
    assert service["ProtectSystem"] == ["strict"] and service["NoNewPrivileges"] == ["yes"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    binary = analyze()
    # verify insists that ExecStart exists here; point it at this interpreter, keep everything else.
    text = UNIT_FILE.read_text(encoding="utf-8").replace(
        f"{UNIT_BASE}/current/venv/bin/python", sys.executable
    )
    unit = tmp_path / UNIT_FILE.name
    unit.write_text(text, encoding="utf-8")
    done = subprocess.run([binary, "verify", "--man=no", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_unit_is_hardened(tmp_path: Path) -> None:
    binary = analyze()
    unit = tmp_path / UNIT_FILE.name
    shutil.copyfile(UNIT_FILE, unit)
    done = subprocess.run(
        [binary, "security", "--offline=true", f"--threshold={MAX_EXPOSURE}", str(unit)],
        capture_output=True,
        text=True,
    )
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, summary
    assert "Overall exposure level" in summary

    # The threshold can fail: the same unit without its hardening lines is refused.
    bare = tmp_path / "bare.service"
    bare.write_text(
        "\n".join(
            line
            for line in UNIT_FILE.read_text(encoding="utf-8").splitlines()
            if line.split("=", 1)[0] not in ("NoNewPrivileges", "ProtectSystem", "CapabilityBoundingSet")
        ),
        encoding="utf-8",
    )
    weak = subprocess.run(
        [binary, "security", "--offline=true", f"--threshold={MAX_EXPOSURE}", str(bare)],
        capture_output=True,
        text=True,
    )
    assert weak.returncode != 0, weak.stdout.strip().splitlines()[-1]
