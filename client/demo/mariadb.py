"""A real MariaDB for the demo and the tests: the machine's server at 127.0.0.1:3306 when present, else a private one.

A private server is started from the installed binaries (``mariadbd`` + ``mariadb-install-db``) in a
temporary directory. Install them with ``apt-get install mariadb-server`` when missing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pymysql


@dataclass
class MariaDB:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    unix_socket: str | None = None
    private: PrivateMariaDB | None = field(default=None, repr=False)

    def connect(self, database: str | None = None, **kw: object) -> pymysql.connections.Connection:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            charset="utf8mb4",
            autocommit=True,
            **kw,
        )

    def create_database(self, prefix: str = "koppel_t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        return name

    def drop_database(self, name: str) -> bool:
        """Drop the database if it is there; True when it was."""
        with self.connect() as conn, conn.cursor() as cur:
            found = cur.execute("SHOW DATABASES LIKE %s", (name.replace("_", "\\_"),))
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        return bool(found)


def reachable(host: str, port: int) -> bool:
    """True when a MariaDB answers there and root logs in without a password."""
    try:
        with socket.create_connection((host, port), timeout=1):
            pass
    except OSError:
        return False
    try:
        pymysql.connect(host=host, port=port, user="root", password="", connect_timeout=3).close()
    except pymysql.MySQLError:
        return False
    return True


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateMariaDB:
    """A throw-away mariadbd on a free loopback port; ``stop()``/``start()`` simulate an outage."""

    def __init__(self, basedir: str | None = None, port: int | None = None) -> None:
        binary = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if not os.path.exists(binary) or not install:
            raise RuntimeError(
                "No MariaDB at 127.0.0.1:3306 and no mariadbd to start one: apt-get install mariadb-server"
            )
        self.binary = binary
        self.dir = Path(basedir or tempfile.mkdtemp(prefix="koppel-mariadb-"))
        self.datadir = self.dir / "data"
        self.socket = str(self.dir / "mysqld.sock")
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        if not self.datadir.exists():
            user = ["--user=root"] if os.geteuid() == 0 else []
            subprocess.run(
                [
                    install,
                    "--no-defaults",
                    f"--datadir={self.datadir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                    *user,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def start(self, timeout: float = 60) -> None:
        user = ["--user=root"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.dir / 'mysqld.pid'}",
                "--innodb-buffer-pool-size=64M",
                "--character-set-server=utf8mb4",
                f"--log-error={self.dir / 'error.log'}",
                *user,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private mariadbd exited; see {self.dir / 'error.log'}")
            if reachable("127.0.0.1", self.port):
                return
            time.sleep(0.2)
        raise RuntimeError(f"private mariadbd did not start within {timeout}s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def server(self) -> MariaDB:
        return MariaDB(host="127.0.0.1", port=self.port, private=self)


def machine_or_private() -> MariaDB:
    """The machine's MariaDB when reachable (root, empty password), else a newly started private one."""
    host = os.environ.get("KOPPEL_TEST_MYSQL_HOST", "127.0.0.1")
    port = int(os.environ.get("KOPPEL_TEST_MYSQL_PORT", "3306"))
    if reachable(host, port):
        return MariaDB(host=host, port=port)
    private = PrivateMariaDB()
    private.start()
    return private.server()
