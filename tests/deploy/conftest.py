"""Real servers on loopback for the deploy tests: OpenSSH's sshd, pyftpdlib with TLS, a database user with a
password, and an agent.yml whose secrets the tests look for in the output."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path

import pytest
import yaml

from tests.agent.conftest import make_magento
from tests.mariadb import MariaDB, free_port

SSHD = Path("/usr/sbin/sshd")
UNIT_FILE = Path(__file__).resolve().parents[2] / "deploy" / "koppel-agent.service"
UNIT_BASE = "/home/koppel/koppel"  # the base folder the shipped unit is written for
UNIT_BIND = "127.0.0.1:8080"
INSTALL_HINT = (
    "the deploy tests start a real OpenSSH server: apt-get install openssh-server (./run test does it)"
)
# The interpreter the test venv was made from: same platform and version, so "--packages local" fits.
SERVER_PYTHON = getattr(sys, "_base_executable", sys.executable)
KEY_SECRET = "deploy-test-key-secret-" + secrets.token_hex(12)
FILE_SECRET = "deploy-test-file-secret-" + secrets.token_hex(12)


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s") from None
            time.sleep(0.1)


def read_unit(path: Path = UNIT_FILE) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as {section: {key: [values]}}: comments dropped, backslash-continued lines joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


# --- database and agent.yml --------------------------------------------------------------------------


@dataclass
class ShopDatabase:
    name: str
    host: str
    port: int
    user: str
    password: str


@pytest.fixture
def shop_db(mariadb: MariaDB, database: str) -> Iterator[ShopDatabase]:
    """The Magento 2 fixture schema and a user of its own with a password (a secret to keep out of output)."""
    make_magento(mariadb, database, 2)
    user = f"koppel_d_{secrets.token_hex(4)}"
    password = "db-pass-" + secrets.token_hex(12)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT SUBSTRING_INDEX(USER(), '@', -1)")
        account = f"'{user}'@'{cur.fetchone()[0]}'"
        cur.execute(f"CREATE USER {account} IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT ALL PRIVILEGES ON `{database}`.* TO {account}")
    yield ShopDatabase(database, mariadb.host, mariadb.port, user, password)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS {account}")


@pytest.fixture
def agent_yml(shop_db: ShopDatabase, tmp_path: Path) -> Path:
    """The agent.yml an operator keeps on the office PC: inline secret, a relative secret file, a password."""
    folder = tmp_path / "office"
    folder.mkdir()
    (folder / "support.secret").write_text(FILE_SECRET + "\n", encoding="utf-8")
    data = {
        "database": {
            "host": shop_db.host,
            "port": shop_db.port,
            "name": shop_db.name,
            "user": shop_db.user,
            "password": shop_db.password,
        },
        "settle_seconds": 0,
        "state_dir": "agent-state",
        "keys": [
            {
                "id": "office",
                "secret": KEY_SECRET,
                "scopes": ["orders:read", "stock:write", "diagnostics:read"],
            },
            {"id": "support", "secret_file": "./support.secret", "scopes": ["diagnostics:read"]},
        ],
    }
    path = folder / "agent.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def secrets_of(shop_db: ShopDatabase) -> list[str]:
    return [KEY_SECRET, FILE_SECRET, shop_db.password]


# --- sshd --------------------------------------------------------------------------------------------


@dataclass
class SshServer:
    port: int
    user: str
    client_key: Path
    host_fingerprint: str  # as ssh-keygen -lf prints it
    root: Path  # a folder to deploy under


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    if not SSHD.exists() or shutil.which("ssh-keygen") is None:
        pytest.fail(INSTALL_HINT)
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    _keygen(d / "client_key")
    shutil.copyfile(d / "client_key.pub", d / "authorized_keys")
    fp = subprocess.run(
        ["ssh-keygen", "-lf", str(d / "host_key.pub")], check=True, capture_output=True, text=True
    ).stdout.split()[1]
    port = free_port()
    (d / "sshd_config").write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel ERROR
""",
        encoding="utf-8",
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    log = (d / "sshd.log").open("w")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=log)
    try:
        try:
            wait_port(port)
        except AssertionError:
            raise AssertionError("sshd did not start:\n" + (d / "sshd.log").read_text()) from None
        import getpass

        root = d / "server"
        root.mkdir()
        yield SshServer(port, getpass.getuser(), d / "client_key", fp, root)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def stop_pidfile(pidfile: Path) -> None:
    """Stop the agent a test's restart script started (its gunicorn master) and wait until it is gone."""
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


# --- FTPS --------------------------------------------------------------------------------------------


@dataclass
class FtpServer:
    port: int
    user: str
    password: str
    home: Path
    ca_file: Path


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture(scope="module")
def ftps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    """pyftpdlib with explicit TLS, refusing any unprotected data connection (so prot_p() is required)."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import TLS_FTPHandler
    from pyftpdlib.servers import FTPServer

    d = tmp_path_factory.mktemp("ftps")
    cert_file, key_file = self_signed(d)
    home = d / "home"
    home.mkdir()
    password = "ftp-pass-" + secrets.token_hex(10)
    authorizer = DummyAuthorizer()
    authorizer.add_user("deployer", password, str(home), perm="elradfmwMT")

    class Handler(TLS_FTPHandler):
        pass

    Handler.authorizer = authorizer
    Handler.certfile = str(cert_file)
    Handler.keyfile = str(key_file)
    Handler.tls_control_required = True
    Handler.tls_data_required = True
    Handler.passive_ports = None
    port = free_port()
    server = FTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.5}, daemon=True)
    thread.start()
    try:
        wait_port(port)
        yield FtpServer(port, "deployer", password, home, cert_file)
    finally:
        server.close_all()
        thread.join(10)
