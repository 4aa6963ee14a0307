"""The shipped nginx and Apache snippets in front of a real gunicorn agent: TLS, the /koppel prefix, signed
requests from the real client through the proxy, and the body limit. Needs nginx and apache2 installed
(apt-get install nginx apache2); without them these tests are skipped, saying so."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from client.agent_client import AgentClient
from tests.agent.conftest import KEY_ID, SECRET, config_dict, make_magento, write_config
from tests.deploy.conftest import self_signed, wait_port
from tests.mariadb import MariaDB, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
APACHE_MODULES = Path("/usr/lib/apache2/modules")
AGENT = str(Path(sys.executable).parent / "koppel-agent")


@pytest.fixture
def agent_port(mariadb: MariaDB, database: str, tmp_path: Path) -> Iterator[int]:
    make_magento(mariadb, database, 2)
    config = write_config(tmp_path / "agent.yml", config_dict(mariadb, database, tmp_path / "state"))
    port = free_port()
    log = (tmp_path / "agent.log").open("w")
    proc = subprocess.Popen(
        [AGENT, "serve", "--config", str(config), "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, 30)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()


def run_nginx(agent_port: int, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.skip(
            "nginx is not installed (apt-get install nginx): the shipped nginx snippet is not exercised"
        )
    d = tmp_path / "nginx"
    d.mkdir()
    cert, key = self_signed(d)
    snippet = (DEPLOY / "nginx-koppel.conf").read_text().replace("127.0.0.1:8080", f"127.0.0.1:{agent_port}")
    (d / "koppel.conf").write_text(snippet)
    port = free_port()
    temp = " ".join(
        f"{kind}_temp_path {d}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (d / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"""daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_processes 1;
events {{ worker_connections 64; }}
http {{
    access_log off;
    {temp}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        include {d}/koppel.conf;
    }}
}}
"""
    )
    check = subprocess.run([binary, "-t", "-c", str(d / "nginx.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([binary, "-c", str(d / "nginx.conf")], stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield f"https://127.0.0.1:{port}", cert
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_apache(agent_port: int, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    binary = shutil.which("apache2") or "/usr/sbin/apache2"
    if not Path(binary).exists() or not APACHE_MODULES.is_dir():
        pytest.skip("apache2 is not installed (apt-get install apache2): the Apache snippet is not exercised")
    d = tmp_path / "apache"
    d.mkdir()
    cert, key = self_signed(d)
    snippet = (DEPLOY / "apache-koppel.conf").read_text().replace("127.0.0.1:8080", f"127.0.0.1:{agent_port}")
    (d / "koppel.conf").write_text(snippet)
    port = free_port()
    modules = "\n".join(
        f"LoadModule {name}_module {APACHE_MODULES}/mod_{name}.so"
        for name in (
            "mpm_event",
            "authz_core",
            "proxy",
            "proxy_http",
            "headers",
            "ssl",
            "socache_shmcb",
            "rewrite",
        )
    )
    (d / "apache2.conf").write_text(
        f"""{modules}
ServerName 127.0.0.1
ServerRoot {d}
DefaultRuntimeDir {d}
PidFile {d}/apache2.pid
ErrorLog {d}/error.log
LogLevel warn
Listen 127.0.0.1:{port}
"""
        + ("User nobody\nGroup nogroup\n" if os.geteuid() == 0 else "")
        + f"""<VirtualHost 127.0.0.1:{port}>
    SSLEngine on
    SSLCertificateFile {cert}
    SSLCertificateKeyFile {key}
    Include {d}/koppel.conf
</VirtualHost>
"""
    )
    check = subprocess.run([binary, "-t", "-f", str(d / "apache2.conf")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        [binary, "-f", str(d / "apache2.conf"), "-DFOREGROUND"], stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        yield f"https://127.0.0.1:{port}", cert
    finally:
        proc.send_signal(signal.SIGTERM)  # apache2's "stop now"
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=["nginx", "apache"])
def proxy(request: pytest.FixtureRequest, agent_port: int, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    run = run_nginx if request.param == "nginx" else run_apache
    yield from run(agent_port, tmp_path)


def test_signed_requests_pass_the_proxy_snippet(proxy: tuple[str, Path]) -> None:
    base, cert = proxy
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
    session.verify = str(cert)
    assert session.get(base + "/koppel/v1/health", timeout=10).json() == {"status": "ok"}
    # The real client signs /koppel/v1/...; the agent sees /v1/... plus X-Forwarded-Prefix.
    with AgentClient(base + "/koppel", KEY_ID, SECRET, session=session) as client:
        diagnostics = client.get("/v1/diagnostics")
    assert diagnostics["magento"]["version"] == 2
    with AgentClient(
        base + "/koppel", KEY_ID, "a-wrong-secret-" + "x" * 30, session=session, retries=0
    ) as bad:
        status, _ = bad.request("GET", "/v1/diagnostics")
    assert status == 401


def test_proxy_refuses_bodies_above_the_limit(proxy: tuple[str, Path]) -> None:
    base, cert = proxy
    session = requests.Session()
    session.trust_env = False
    session.verify = str(cert)
    # Under the proxy's limit, the body reaches the agent (whose test limit is 20000 bytes: its JSON 413).
    r = session.post(base + "/koppel/v1/stock", data=b"x" * 100_000, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    # Above it, the proxy answers itself and the agent never sees the body.
    r = session.post(base + "/koppel/v1/stock", data=b"x" * 2_300_000, timeout=30)
    assert r.status_code == 413 and "body_too_large" not in r.text

    # Without Content-Length (chunked), the proxy refuses it too: nginx counts (413), Apache cannot (411).
    def chunks() -> Iterator[bytes]:
        for _ in range(230):
            yield b"x" * 10_000

    r = session.post(base + "/koppel/v1/stock", data=chunks(), timeout=30)
    assert r.status_code in (411, 413) and '"error"' not in r.text, (r.status_code, r.text[:200])
