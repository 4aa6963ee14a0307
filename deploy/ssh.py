"""The SSH/SFTP target: files go up over SFTP, commands run over SSH (paramiko).

The server's host key is checked against a known_hosts file. An unknown host is refused unless its
fingerprint is confirmed (at a terminal, or beforehand with --accept-host-key SHA256:...); a confirmed key
is added to known_hosts. A key that differs from the recorded one is always refused.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from deploy.flow import Console, DeployError
from deploy.release import SHARED_DIR, Release, is_release_name

# Matches deploy/koppel-agent.service and the sudoers line in README.md ("Deploy the agent").
DEFAULT_RESTART = "sudo -n systemctl restart koppel-agent"
PIP_TIMEOUT = 900
ENV_FILE_PROBLEM = (
    "{} is not a list of KEY=value lines that sh can read (sh's message is not shown: it would repeat the "
    "line, values and all); put values with spaces or $ in single quotes"
)


class HostKeyError(Exception):
    pass


def fingerprint(key: paramiko.PKey) -> str:
    """The key's fingerprint written the way OpenSSH prints it (ssh-keygen -lf)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _ConfirmHostKey(paramiko.MissingHostKeyPolicy):
    def __init__(
        self, known_hosts: Path, accept: str | None, ask: Callable[[str, str, str], bool] | None
    ) -> None:
        self.known_hosts = known_hosts
        self.accept = accept
        self.ask = ask

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        seen = fingerprint(key)
        if self.accept is not None:
            if self.accept != seen:
                raise HostKeyError(
                    f"the {key.get_name()} host key of {hostname} has fingerprint {seen}, not the "
                    f"{self.accept} given with --accept-host-key; not connecting"
                )
        elif self.ask is None or not self.ask(hostname, key.get_name(), seen):
            raise HostKeyError(
                f"{hostname} is not in {self.known_hosts}. Its {key.get_name()} host key has fingerprint "
                f"{seen}. Compare it with the server's own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub "
                f"on the server, or your hosting panel) and run again with --accept-host-key {seen}"
            )
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.known_hosts.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.known_hosts.open("a", encoding="ascii") as out:
            out.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


@dataclass
class SshSettings:
    host: str
    user: str
    base: str  # the folder on the server; relative paths are taken from the login's home
    port: int = 22
    key_file: Path | None = None
    key_passphrase: str | None = None
    password: str | None = None
    known_hosts: Path = Path("~/.ssh/known_hosts").expanduser()
    accept_host_key: str | None = None
    python: str = "python3"
    restart_command: str | None = DEFAULT_RESTART
    timeout: float = 20


class SshTarget:
    def __init__(self, settings: SshSettings, ask: Callable[[str, str, str], bool] | None = None) -> None:
        self.s = settings
        self.description = f"{settings.user}@{settings.host}:{settings.port} {settings.base}"
        self.client = paramiko.SSHClient()
        if settings.known_hosts.exists():
            self.client.load_host_keys(str(settings.known_hosts))
        self.client.set_missing_host_key_policy(
            _ConfirmHostKey(settings.known_hosts, settings.accept_host_key, ask)
        )
        try:
            self._connect()
        except BaseException:
            self.client.close()  # no transport thread left behind after a refused connection
            raise
        try:
            self.sftp = self.client.open_sftp()
            home = self.sftp.normalize(".")
        except (OSError, paramiko.SSHException) as exc:
            self.client.close()
            raise DeployError("connect", f"SFTP is not available on {settings.host}: {exc}") from None
        self.base = posixpath.normpath(posixpath.join(home, settings.base))
        self.releases_dir = posixpath.join(self.base, "releases")

    def close(self) -> None:
        self.client.close()

    def _load_key(self) -> paramiko.PKey | None:
        """The --key, opened here so that a key problem is not mistaken for a refused login."""
        path, passphrase = self.s.key_file, self.s.key_passphrase
        if path is None:
            return None
        try:
            key = paramiko.PKey.from_path(path, passphrase.encode() if passphrase else None)
        except OSError as exc:
            raise DeployError("connect", f"cannot read the key {path}: {exc.strerror}") from None
        except TypeError:  # what paramiko raises for an encrypted key opened without a passphrase
            raise DeployError(
                "connect", f"the key {path} is encrypted: give its passphrase with --key-passphrase-env VAR"
            ) from None
        except (ValueError, paramiko.SSHException):
            if passphrase:
                raise DeployError(
                    "connect", f"the key {path} does not open with that passphrase (or is not a private key)"
                ) from None
            raise DeployError("connect", f"{path} is not a private key koppel can read") from None
        certificate = Path(f"{path}-cert.pub")
        if certificate.exists():  # what OpenSSH (and paramiko's key_filename) would use with it
            key.load_certificate(str(certificate))
        return key

    def _connect(self) -> None:
        settings = self.s
        key = self._load_key()
        try:
            self.client.connect(
                settings.host,
                port=settings.port,
                username=settings.user,
                pkey=key,
                password=settings.password,
                look_for_keys=settings.key_file is None and settings.password is None,
                allow_agent=settings.password is None,
                timeout=settings.timeout,
                banner_timeout=settings.timeout,
                auth_timeout=settings.timeout,
            )
        except HostKeyError as exc:
            raise DeployError("connect", str(exc)) from None
        except paramiko.BadHostKeyException as exc:
            raise DeployError(
                "connect",
                f"the host key of {settings.host} is {fingerprint(exc.key)}, but {settings.known_hosts} records "
                f"{fingerprint(exc.expected_key)}. Someone may be in between; if the server was reinstalled, "
                "remove its old line from known_hosts and confirm the new key",
            ) from None
        except paramiko.AuthenticationException as exc:
            raise DeployError(
                "connect", f"{settings.user}@{settings.host} refused the login: {exc}"
            ) from None
        except (OSError, paramiko.SSHException) as exc:
            raise DeployError("connect", f"cannot reach {settings.host}:{settings.port}: {exc}") from None

    # --- commands ------------------------------------------------------------------------------------

    def run(self, script: str, timeout: float = 120) -> tuple[int, str]:
        """Run a POSIX sh script on the server (whatever the login shell is); exit status and output."""
        channel = self.client.get_transport().open_session()  # type: ignore[union-attr]
        channel.set_combine_stderr(True)
        channel.settimeout(timeout)
        channel.exec_command("sh -c " + shlex.quote(script))
        chunks = []
        try:
            while True:
                data = channel.recv(65536)
                if not data:
                    break
                chunks.append(data)
            status = channel.recv_exit_status()
        finally:
            channel.close()
        return status, b"".join(chunks).decode("utf-8", "replace")

    def _must(self, step: str, script: str, what: str, timeout: float = 120) -> str:
        status, output = self.run(script, timeout)
        if status != 0:
            tail = "\n".join(output.strip().splitlines()[-20:])
            raise DeployError(step, f"{what} failed (exit status {status})" + (f":\n{tail}" if tail else ""))
        return output

    def _release(self, stamp: str) -> str:
        if not is_release_name(stamp):
            raise ValueError(f"not a release name: {stamp!r}")
        return posixpath.join(self.releases_dir, stamp)

    # --- Target --------------------------------------------------------------------------------------

    def releases(self) -> list[str]:
        try:
            return [n for n in self.sftp.listdir(self.releases_dir) if is_release_name(n)]
        except FileNotFoundError:
            return []

    def current(self) -> str | None:
        try:
            target = self.sftp.readlink(posixpath.join(self.base, "current"))
        except (FileNotFoundError, OSError):
            return None
        name = posixpath.basename((target or "").rstrip("/"))
        return name if is_release_name(name) else None

    def upload(self, release: Release, console: Console) -> None:
        q = shlex.quote
        partial = posixpath.join(self.releases_dir, f".{release.stamp}.partial")
        self._must(
            "upload",
            f"mkdir -p {q(self.releases_dir)} {q(posixpath.join(self.base, SHARED_DIR))} && rm -rf {q(partial)}",
            "creating the release folders",
        )
        try:
            count = 0
            for local in sorted(release.root.rglob("*")):
                rel = local.relative_to(release.root).as_posix()
                remote = posixpath.join(partial, rel)
                if local.is_dir():
                    continue
                self._makedirs(posixpath.dirname(remote))
                self._put_file(local, remote, secret=rel in release.secret_files)
                count += 1
            self.sftp.rename(partial, self._release(release.stamp))
        except BaseException:
            try:
                self.run(f"rm -rf {q(partial)}")
            except Exception:  # the connection may be what broke; the hidden folder is retried next time
                pass
            raise
        console.say(f"uploaded {count} files to {self._release(release.stamp)}")

    def _makedirs(self, path: str) -> None:
        missing = []
        while path and path != "/":
            try:
                if stat.S_ISDIR(self.sftp.stat(path).st_mode or 0):
                    break
            except FileNotFoundError:
                missing.append(path)
                path = posixpath.dirname(path)
                continue
            raise DeployError("upload", f"{path} exists on the server and is not a folder")
        for folder in reversed(missing):
            self.sftp.mkdir(folder)

    def _put_file(self, local: Path, remote: str, secret: bool) -> None:
        with local.open("rb") as src, self.sftp.open(remote, "wb") as dst:
            if secret:
                dst.chmod(0o600)  # before a byte of it is written
            dst.set_pipelined(True)
            while chunk := src.read(32768):
                dst.write(chunk)

    def prepare(self, stamp: str, console: Console) -> None:
        q = shlex.quote
        release = self._release(stamp)
        offline = "--no-index --find-links wheels" if self._exists(posixpath.join(release, "wheels")) else ""
        env_file = posixpath.join(self.base, SHARED_DIR, "agent.env")
        self._must(
            "prepare",
            f"{q(self.s.python)} -c 'import sys; sys.exit(sys.version_info < (3, 11))' || "
            f'{{ echo "{self.s.python} on the server is $({q(self.s.python)} -V 2>&1); koppel needs 3.11 or '
            'newer: give --python python3.11 (or newer)"; exit 1; }',
            "looking for Python 3.11+ on the server",
        )
        # The check reads shared/agent.env with sh. sh's complaints about a line quote that line, which may
        # hold a password: so read it here once with the messages thrown away, and stop if there were any.
        self._must(
            "prepare",
            f"if [ -f {q(env_file)} ]; then\n"
            f"  if [ ! -r {q(env_file)} ]; then\n"
            f'    echo {q(env_file)}" cannot be read by user $(id -un), so the check would miss its variables"\n'
            "    exit 1\n"
            "  fi\n"
            f'  if [ -n "$( (set -a; . {q(env_file)}) 2>&1 >/dev/null)" ]; then\n'
            f"    echo {q(ENV_FILE_PROBLEM.format(env_file))}; exit 1\n"
            "  fi\n"
            "fi",
            f"reading {env_file}",
        )
        console.say("building the virtual environment (python -m venv, pip install -r requirements.txt)")
        self._must(
            "prepare",
            f"cd {q(release)} && {q(self.s.python)} -m venv venv && "
            "venv/bin/python -m pip install --disable-pip-version-check --no-input --quiet "
            f"{offline} -r requirements.txt && rm -rf wheels && "
            # The agent package sits in app/; a .pth in the environment puts it on sys.path.
            "venv/bin/python -c 'import sys, sysconfig; "
            'open(sysconfig.get_paths()["purelib"] + "/koppel-agent.pth", "w").write(sys.argv[1] + "\\n")\' '
            f"{q(release + '/app')}",
            "building the virtual environment",
            timeout=PIP_TIMEOUT,
        )
        console.say("running koppel-agent check on the server")
        output = self._must(
            "check",
            f"cd {q(release)} || exit 1\n"
            f"if [ -f {q(env_file)} ]; then set -a; . {q(env_file)} 2>/dev/null; set +a; fi\n"
            "exec venv/bin/python -m agent check --config agent.yml",
            "koppel-agent check on the server",
        )
        for line in output.strip().splitlines():
            console.say(f"    {line}")

    def _exists(self, path: str) -> bool:
        try:
            self.sftp.stat(path)
            return True
        except FileNotFoundError:
            return False

    def switch(self, stamp: str) -> None:
        q = shlex.quote
        self._release(stamp)
        temp = f".current.{stamp}.tmp"
        # A new symlink renamed over the old one: rename(2) swaps it in one step, never a missing link.
        self._must(
            "switch",
            f"cd {q(self.base)} && rm -f {q(temp)} && {q(self.s.python)} -c "
            "'import os, sys; os.symlink(sys.argv[1], sys.argv[2]); os.replace(sys.argv[2], \"current\")' "
            f"{q('releases/' + stamp)} {q(temp)}",
            "switching the current link",
        )

    def restart(self, console: Console) -> None:
        command = self.s.restart_command
        if not command:
            console.say("no restart command given: restart the agent yourself")
            return
        output = self._must(
            "restart",
            f"cd {shlex.quote(self.base)} && {command}",
            f"the restart command ({command})",
            timeout=300,
        )
        for line in output.strip().splitlines()[-10:]:
            console.say(f"    {line}")

    def remove(self, stamp: str) -> None:
        self._must("prune", f"rm -rf {shlex.quote(self._release(stamp))}", f"removing release {stamp}")
