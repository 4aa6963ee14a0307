"""`koppel autostart install|remove`: start `koppel schedule` when the user logs on.

Windows (the office PC koppel is made for): a Task Scheduler task with an "at logon" trigger, through
`schtasks.exe`. Linux: a systemd user unit (when a user systemd is running) or else an XDG autostart entry,
which desktop sessions start at login. The command always names the interpreter and the config file by absolute
path, because neither the working folder nor PATH at logon is the one of the shell that installed it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASK_NAME = "koppel schedule"
UNIT_NAME = "koppel-schedule.service"
DESKTOP_NAME = "koppel-schedule.desktop"


class AutostartError(Exception):
    """Registering or removing the autostart failed; the message says why and what to do."""


@dataclass
class AutostartResult:
    method: str  # "schtasks" | "systemd" | "xdg"
    location: str  # the task name or the file written/removed
    message: str
    warnings: list[str] = field(default_factory=list)  # what the user must still do for it to work


def schedule_command(config_path: Path) -> list[str]:
    """The argv that starts the planner for this config."""
    return [sys.executable, "-m", "client.cli", "--config", str(Path(config_path).resolve()), "schedule"]


def _config_home(home: Path | None) -> Path:
    if home is not None:
        return home / ".config"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return Path(xdg) if xdg else Path.home() / ".config"


SCHTASKS_TR_LIMIT = 261  # schtasks refuses a longer /TR command


def windows_wrapper(config_path: Path) -> Path:
    """Where the .cmd for a long command goes: the user's data folder, whose path is short on Windows."""
    import platformdirs

    return Path(platformdirs.user_data_dir("koppel", appauthor=False)) / "koppel-schedule.cmd"


def windows_create_args(config_path: Path) -> list[str]:
    """schtasks arguments; a command too long for /TR runs through a .cmd file in the user's data folder."""
    command = subprocess.list2cmdline(schedule_command(config_path))
    if len(command) > SCHTASKS_TR_LIMIT:
        command = subprocess.list2cmdline([str(windows_wrapper(config_path))])
    return ["schtasks", "/Create", "/TN", TASK_NAME, "/TR", command, "/SC", "ONLOGON", "/RL", "LIMITED", "/F"]


def windows_wrapper_text(config_path: Path) -> str:
    return "@echo off\r\n" + subprocess.list2cmdline(schedule_command(config_path)) + "\r\n"


def windows_delete_args() -> list[str]:
    return ["schtasks", "/Delete", "/TN", TASK_NAME, "/F"]


def systemd_unit(config_path: Path) -> str:
    command = " ".join(shlex.quote(part) for part in schedule_command(config_path))
    return (
        "[Unit]\n"
        "Description=koppel: Magento orders into SnelStart on schedule\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        f"ExecStart={command}\n"
        f"WorkingDirectory={Path(config_path).resolve().parent}\n"
        "Restart=on-failure\n"
        "RestartSec=30\n\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def desktop_entry(config_path: Path) -> str:
    # The Exec key has its own quoting rules: double quotes around arguments with spaces.
    command = " ".join(f'"{p}"' if " " in p else p for p in schedule_command(config_path))
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=koppel schedule\n"
        "Comment=Magento orders into SnelStart on schedule\n"
        f"Exec={command}\n"
        f"Path={Path(config_path).resolve().parent}\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def user_systemd_available() -> bool:
    if not shutil.which("systemctl"):
        return False
    probe = subprocess.run(
        ["systemctl", "--user", "show-environment"], capture_output=True, text=True, timeout=10, check=False
    )
    return probe.returncode == 0


def environment_settings(config_path: Path) -> list[tuple[str, str]]:
    """(setting, variable) for every `*_env` setting of the config's profiles, e.g. ("shop: agent.secret_env",
    "KOPPEL_AGENT_SECRET")."""
    from client.config import load_client_config

    found: list[tuple[str, str]] = []

    def walk(value: Any, where: str, profile: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                path = f"{where}.{key}" if where else str(key)
                if str(key).endswith("_env") and isinstance(item, str) and item:
                    found.append((f"{profile}: {path}", item))
                else:
                    walk(item, path, profile)

    for profile in load_client_config(config_path).profiles:
        walk(profile.model_dump(), "", profile.name)
    return found


def environment_warnings(config_path: Path, method: str) -> list[str]:
    """The autostart entry starts with the logon environment only: a variable set in this window is missing."""
    warnings = []
    for setting, variable in environment_settings(config_path):
        how = (
            f"setx {variable} <value> (then log off and on)"
            if method == "schtasks"
            else f"a line {variable}=<value> in ~/.config/environment.d/koppel.conf (systemd) or ~/.profile"
        )
        warnings.append(
            f"{setting} reads the environment variable {variable}, which the autostart entry does not set: "
            f"set it permanently with {how}, or use secret_file instead"
        )
    return warnings


def install(
    config_path: Path, *, method: str = "auto", home: Path | None = None, activate: bool = True
) -> AutostartResult:
    """Register the planner to start at logon. ``home`` redirects the files (tests); ``activate`` runs systemctl."""
    config_path = Path(config_path).resolve()
    if not config_path.is_file():
        raise AutostartError(f"{config_path}: no such configuration file")
    method = _choose(method)
    result = _install(config_path, method, home, activate)
    result.warnings = environment_warnings(config_path, method)
    return result


def _install(config_path: Path, method: str, home: Path | None, activate: bool) -> AutostartResult:
    if method == "schtasks":
        args = windows_create_args(config_path)
        if str(windows_wrapper(config_path)) in args[5]:
            _write(windows_wrapper(config_path), windows_wrapper_text(config_path))
        _run(args, "registering the task")
        return AutostartResult(
            method, TASK_NAME, f"Task '{TASK_NAME}' registered: it starts when you log on to Windows"
        )
    if method == "systemd":
        path = _config_home(home) / "systemd" / "user" / UNIT_NAME
        _write(path, systemd_unit(config_path))
        if activate:
            _run(["systemctl", "--user", "daemon-reload"], "reloading systemd")
            _run(["systemctl", "--user", "enable", "--now", UNIT_NAME], "enabling the unit")
        return AutostartResult(method, str(path), f"systemd user unit {UNIT_NAME} installed and started")
    path = _config_home(home) / "autostart" / DESKTOP_NAME
    _write(path, desktop_entry(config_path))
    return AutostartResult(method, str(path), f"autostart entry {path} written; it starts at your next logon")


def remove(*, method: str = "auto", home: Path | None = None, activate: bool = True) -> AutostartResult:
    """Undo `install`; removing what is not there is not an error."""
    method = _choose(method)
    if method == "schtasks":
        _run(windows_delete_args(), "removing the task")
        return AutostartResult(method, TASK_NAME, f"Task '{TASK_NAME}' removed")
    if method == "systemd":
        path = _config_home(home) / "systemd" / "user" / UNIT_NAME
        if activate and path.exists():
            _run(["systemctl", "--user", "disable", "--now", UNIT_NAME], "disabling the unit")
        path.unlink(missing_ok=True)
        if activate:
            _run(["systemctl", "--user", "daemon-reload"], "reloading systemd")
        return AutostartResult(method, str(path), f"systemd user unit {UNIT_NAME} removed")
    path = _config_home(home) / "autostart" / DESKTOP_NAME
    path.unlink(missing_ok=True)
    return AutostartResult(method, str(path), f"autostart entry {path} removed")


def _choose(method: str) -> str:
    if method not in ("auto", "schtasks", "systemd", "xdg"):
        raise AutostartError(f"unknown autostart method {method!r}; choose auto, schtasks, systemd or xdg")
    if method != "auto":
        return method
    if sys.platform == "win32":
        return "schtasks"
    return "systemd" if user_systemd_available() else "xdg"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _run(args: list[str], doing: str) -> None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise AutostartError(f"{doing} needs {args[0]}, which is not on this computer") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        hint = ""
        if args[0] == "schtasks" and "denied" in " ".join(said).lower():
            hint = "; run the command once from a command prompt opened as administrator"
        raise AutostartError(f"{doing} failed: {said[-1] if said else f'exit {done.returncode}'}{hint}")
