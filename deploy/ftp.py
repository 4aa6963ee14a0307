"""The FTP(S) target, for shared hosting that runs Python apps through Passenger and offers no SSH.

FTP runs no commands and has no symlinks, so the release that runs is named by a pointer file, CURRENT,
next to passenger_wsgi.py; it is written under a temporary name and renamed over the old one. Passenger
reads it when it starts the app, and touching tmp/restart.txt makes it start the app anew.
"""

from __future__ import annotations

import ftplib
import io
import posixpath
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy.flow import Console, DeployError
from deploy.release import PASSENGER_ENTRY, SHARED_DIR, Release, is_release_name

POINTER = "CURRENT"


class _FTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session.

    Many servers (vsftpd, ProFTPD with TLSOptions NoSessionReuseRequired unset, FileZilla Server) refuse a
    protected data connection that does not, to stop another client hijacking it; ftplib alone does not.
    """

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[Any, Any]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size


@dataclass
class FtpSettings:
    host: str
    user: str
    password: str
    base: str  # the app's folder as the FTP login sees it ("Application root" in cPanel)
    port: int = 21
    tls: bool = True
    ca_file: Path | None = None  # trust this certificate (chain) instead of the system's
    timeout: float = 30


class FtpTarget:
    def __init__(self, settings: FtpSettings) -> None:
        self.s = settings
        scheme = "ftps" if settings.tls else "ftp"
        self.description = f"{scheme}://{settings.user}@{settings.host}:{settings.port}{settings.base}"
        try:
            if settings.tls:
                context = ssl.create_default_context(
                    cafile=str(settings.ca_file) if settings.ca_file else None
                )
                self.ftp: ftplib.FTP = _FTP_TLS(context=context, timeout=settings.timeout)
            else:
                self.ftp = ftplib.FTP(timeout=settings.timeout)
            self.ftp.connect(settings.host, settings.port)
            if isinstance(self.ftp, ftplib.FTP_TLS):
                self.ftp.auth()
            self.ftp.login(settings.user, settings.password)
            if isinstance(self.ftp, ftplib.FTP_TLS):
                self.ftp.prot_p()  # file contents (agent.yml!) travel encrypted too, not only the login
        except ssl.SSLError as exc:
            raise DeployError(
                "connect",
                f"TLS with {settings.host} failed: {exc} (a self-signed certificate? give --ca-file)",
            ) from None
        except ftplib.error_perm as exc:
            raise DeployError("connect", f"{settings.host} refused the login: {exc}") from None
        except (OSError, ftplib.Error) as exc:
            raise DeployError("connect", f"cannot reach {settings.host}:{settings.port}: {exc}") from None
        self.base = posixpath.normpath(posixpath.join(self.ftp.pwd(), settings.base))
        self.releases_dir = posixpath.join(self.base, "releases")

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, ftplib.Error):
            self.ftp.close()

    # --- small FTP helpers ---------------------------------------------------------------------------

    def _is_dir(self, path: str) -> bool:
        here = self.ftp.pwd()
        try:
            self.ftp.cwd(path)
        except ftplib.error_perm:
            return False
        self.ftp.cwd(here)
        return True

    def _list(self, path: str) -> dict[str, str]:
        """Names in ``path`` with their type ("dir" or "file"); {} when it does not exist."""
        try:
            return {n: f.get("type", "file") for n, f in self.ftp.mlsd(path) if n not in (".", "..")}
        except ftplib.error_perm as exc:
            failure = exc
        # Servers word "no such folder" differently (550, 501, ...), so look for the folder itself.
        if not self._is_dir(path):
            return {}
        if not str(failure).startswith(("500", "502", "504")):
            raise failure
        # No MLSD (e.g. vsftpd): NLST, and tell folders from files by trying to enter them.
        return {
            posixpath.basename(n): "dir"
            if self._is_dir(posixpath.join(path, posixpath.basename(n)))
            else "file"
            for n in self.ftp.nlst(path)
        }

    def _mkdirs(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        for i in range(len(parts)):
            folder = "/" + "/".join(parts[: i + 1])
            try:
                self.ftp.mkd(folder)
            except ftplib.error_perm as exc:
                if not str(exc).startswith("550") and not str(exc).startswith("521"):
                    raise

    def _store(self, path: str, data: bytes) -> None:
        self.ftp.storbinary(f"STOR {path}", io.BytesIO(data))

    def _read(self, path: str) -> bytes | None:
        out = io.BytesIO()
        try:
            self.ftp.retrbinary(f"RETR {path}", out.write)
        except ftplib.error_perm as exc:
            if str(exc).startswith("550"):
                return None
            raise
        return out.getvalue()

    def _replace(self, source: str, dest: str) -> None:
        # RNFR and RNTO one by one: only a refused RNTO (some servers will not rename onto an existing
        # file) may delete dest first - a short gap, never a half file. A refused RNFR leaves dest alone.
        reply = self.ftp.sendcmd(f"RNFR {source}")
        if not reply.startswith("3"):
            raise ftplib.error_reply(reply)
        try:
            self.ftp.voidcmd(f"RNTO {dest}")
        except ftplib.error_perm:
            self.ftp.delete(dest)
            self.ftp.rename(source, dest)

    def _rmtree(self, path: str) -> None:
        for name, kind in self._list(path).items():
            child = posixpath.join(path, name)
            if kind == "dir":
                self._rmtree(child)
            else:
                self.ftp.delete(child)
        try:
            self.ftp.rmd(path)
        except ftplib.error_perm as exc:
            if not str(exc).startswith("550"):
                raise

    def _release(self, stamp: str) -> str:
        if not is_release_name(stamp):
            raise ValueError(f"not a release name: {stamp!r}")
        return posixpath.join(self.releases_dir, stamp)

    # --- Target --------------------------------------------------------------------------------------

    def releases(self) -> list[str]:
        return [
            n for n, kind in self._list(self.releases_dir).items() if kind == "dir" and is_release_name(n)
        ]

    def current(self) -> str | None:
        data = self._read(posixpath.join(self.base, POINTER))
        if data is None:
            return None
        name = posixpath.basename(data.decode("utf-8", "replace").strip())
        return name if is_release_name(name) else None

    def upload(self, release: Release, console: Console) -> None:
        partial = posixpath.join(self.releases_dir, f".{release.stamp}.partial")
        for folder in (
            self.releases_dir,
            posixpath.join(self.base, SHARED_DIR),
            posixpath.join(self.base, "tmp"),
        ):
            self._mkdirs(folder)
        self._rmtree(partial)
        try:
            self._mkdirs(partial)
            count = 0
            for local in sorted(release.root.rglob("*")):
                remote = posixpath.join(partial, local.relative_to(release.root).as_posix())
                if local.is_dir():
                    self._mkdirs(remote)
                    continue
                self._put_file(
                    local, remote, secret=local.relative_to(release.root).as_posix() in release.secret_files
                )
                count += 1
            self.ftp.rename(partial, self._release(release.stamp))
        except BaseException:
            try:
                self._rmtree(partial)
            except (OSError, ftplib.Error):
                pass
            raise
        console.say(f"uploaded {count} files to {self._release(release.stamp)}")

    def _put_file(self, local: Path, remote: str, secret: bool) -> None:
        if secret:
            # An empty file first, made private, then filled: the secret is never readable by others.
            self._store(remote, b"")
            try:
                self.ftp.sendcmd(f"SITE CHMOD 600 {remote}")
            except ftplib.error_perm as exc:
                raise DeployError(
                    "upload", f"the server refused SITE CHMOD 600 for {posixpath.basename(remote)}: {exc}"
                ) from None
        with local.open("rb") as src:
            self.ftp.storbinary(f"STOR {remote}", src)

    def prepare(self, stamp: str, console: Console) -> None:
        console.say(
            "FTP cannot run commands on the server: the packages come with the release or from the hosting "
            "panel's pip; give --health-url to check the agent after the switch"
        )

    def switch(self, stamp: str) -> None:
        # The entry is the same for every release; written here, not at upload, so that a deploy failing
        # before the switch leaves the application root exactly as it was.
        entry = posixpath.join(self.base, "passenger_wsgi.py")
        if self._read(entry) != PASSENGER_ENTRY.read_bytes():
            self._store(entry + ".tmp", PASSENGER_ENTRY.read_bytes())
            self._replace(entry + ".tmp", entry)
        pointer = posixpath.join(self.base, POINTER)
        self._store(pointer + ".tmp", f"releases/{self._release(stamp).rsplit('/', 1)[1]}\n".encode())
        self._replace(pointer + ".tmp", pointer)

    def restart(self, console: Console) -> None:
        # Passenger restarts the app when this file's modification time changes.
        self._store(posixpath.join(self.base, "tmp", "restart.txt"), datetime.now(UTC).isoformat().encode())
        console.say("touched tmp/restart.txt: Passenger starts the new release with the next request")

    def remove(self, stamp: str) -> None:
        self._rmtree(self._release(stamp))
