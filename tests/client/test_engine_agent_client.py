"""The agent HTTP client against the real agent under gunicorn, plus small local servers for the failure modes
the real agent cannot be made to show on demand (redirects, flapping 503s, HTML pages)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from agent.protocol import HEADER_NONCE, HEADER_SIGNATURE
from client.agent_client import AgentClient, AgentError
from tests.client.conftest import AGENT_SECRET, free_port


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers from a list of (status, headers, body); records what it was sent."""

    script: list[tuple[int, dict[str, str], bytes]] = []
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append({"path": self.path, **{k: v for k, v in self.headers.items()}})
        status, headers, body = self.script.pop(0) if self.script else (500, {}, b"{}")
        if "X-Sleep" in headers:  # answer too late for the client's timeout
            time.sleep(float(headers["X-Sleep"]))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[Scripted]]]:
    handler = type("H", (Scripted,), {"script": [], "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_signed_diagnostics_from_real_agent(agent_server):
    with agent_server.client() as agent:
        data = agent.get("/v1/diagnostics")
    assert data["magento"]["version"] == 2
    assert "clock_offset_seconds" in data["database"]


def test_query_parameters_are_signed_as_sent(agent_server):
    # A value needing percent-encoding (space, colon, plus) must verify on the agent side.
    with agent_server.client() as agent:
        status, data = agent.request("GET", "/v1/diagnostics", {"probe": "a b:+c"})
    assert status == 200, data


def test_wrong_secret_is_a_clear_permanent_error(agent_server):
    agent = AgentClient(agent_server.url, agent_server.key_id, "x" * 40, retries=0)
    with pytest.raises(AgentError) as info:
        agent.get("/v1/diagnostics")
    assert info.value.status == 401 and not info.value.transient
    assert "office" in str(info.value) and "clock" in str(info.value)


def test_unknown_key_is_refused(agent_server):
    agent = AgentClient(agent_server.url, "nobody", AGENT_SECRET, retries=0)
    with pytest.raises(AgentError, match="401"):
        agent.get("/v1/diagnostics")


def test_connection_refused_is_transient():
    agent = AgentClient(f"http://127.0.0.1:{free_port()}", "office", AGENT_SECRET, retries=1, backoff=0.01)
    with pytest.raises(AgentError, match="connection refused") as info:
        agent.get("/v1/diagnostics")
    assert info.value.transient


def test_redirect_is_refused_naming_the_target(scripted):
    url, handler = scripted
    handler.script.append((301, {"Location": "https://shop.example/koppel/v1/diagnostics"}, b""))
    with pytest.raises(
        AgentError, match=r"redirects to https://shop.example/koppel/v1/diagnostics; use the final URL"
    ):
        AgentClient(url, "office", AGENT_SECRET).get("/v1/diagnostics")
    assert len(handler.seen) == 1  # not followed


def test_503_is_retried_with_a_fresh_signature(scripted):
    url, handler = scripted
    busy = (
        503,
        {"Retry-After": "0", "Content-Type": "application/json"},
        b'{"error": {"code": "database_unavailable", "message": "down"}}',
    )
    handler.script += [busy, busy, (200, {"Content-Type": "application/json"}, b'{"status": "ok"}')]
    agent = AgentClient(url, "office", AGENT_SECRET, retries=3, backoff=0.01)
    assert agent.get("/v1/diagnostics", {"x": "1"}) == {"status": "ok"}
    assert len(handler.seen) == 3
    assert len({s[HEADER_NONCE] for s in handler.seen}) == 3
    assert len({s[HEADER_SIGNATURE] for s in handler.seen}) == 3
    assert handler.seen[0]["path"] == "/v1/diagnostics?x=1"


def test_503_after_all_retries_is_transient_with_the_agents_message(scripted):
    url, handler = scripted
    busy = (
        503,
        {"Content-Type": "application/json"},
        b'{"error": {"code": "database_unavailable", "message": "db down"}}',
    )
    handler.script += [busy, busy]
    agent = AgentClient(url, "office", AGENT_SECRET, retries=1, backoff=0.01)
    with pytest.raises(AgentError, match="db down") as info:
        agent.get("/v1/orders")
    assert info.value.transient and info.value.status == 503 and info.value.code == "database_unavailable"


def test_a_missing_grant_names_the_fix_instead_of_try_again_later(scripted):
    url, handler = scripted
    handler.script.append(
        (
            500,
            {"Content-Type": "application/json"},
            b'{"error": {"code": "database_privileges", "message": "SELECT denied on sales_order_tax"}}',
        )
    )
    with pytest.raises(AgentError) as info:
        AgentClient(url, "office", AGENT_SECRET, retries=0).get("/v1/orders")
    text = str(info.value)
    assert "sales_order_tax" in text and "MySQL privileges for the agent" in text
    assert "try again later" not in text
    assert info.value.code == "database_privileges"


def test_html_instead_of_json_is_explained(scripted):
    url, handler = scripted
    handler.script.append((200, {"Content-Type": "text/html"}, b"<html>shop front</html>"))
    with pytest.raises(AgentError, match="instead of JSON"):
        AgentClient(url, "office", AGENT_SECRET).get("/v1/diagnostics")


def test_base_path_is_part_of_the_signed_path(scripted):
    url, handler = scripted
    handler.script.append((200, {"Content-Type": "application/json"}, b"{}"))
    AgentClient(url + "/koppel/", "office", AGENT_SECRET).get("/v1/health")
    assert handler.seen[0]["path"] == "/koppel/v1/health"


def test_bad_urls_are_refused():
    with pytest.raises(AgentError, match="http:// or https://"):
        AgentClient("ftp://x", "k", "s")
    with pytest.raises(AgentError, match="query"):
        AgentClient("https://x/koppel?a=1", "k", "s")
    with pytest.raises(ValueError, match="not both"):
        AgentClient("https://x", "k", "s").orders(after="c", created_from="2026-01-01T00:00:00Z")


def test_orders_pages_and_single_order(shop, agent_server):
    shop.product("MUG", "Mok")
    ids = [
        shop.order(items=[{"sku": "MUG", "qty": 1, "price": "7.50"}], number=f"10000{i}", age_seconds=600 - i)
        for i in range(5)
    ]
    with agent_server.client() as agent:
        first = agent.orders(created_from="2000-01-01T00:00:00Z", limit=2)
        assert [o["id"] for o in first["orders"]] == ids[:2] and first["has_more"]
        rest = agent.orders(after=first["next_cursor"], limit=10)
        assert [o["id"] for o in rest["orders"]] == ids[2:] and not rest["has_more"]
        empty = agent.orders(after=rest["next_cursor"])
        assert empty["orders"] == [] and empty["next_cursor"] == rest["next_cursor"]
        one = agent.order(ids[3])
        assert one["number"] == rest["orders"][1]["number"]
        assert agent.order(999999) is None


def test_bad_parameter_is_a_permanent_error(agent_server):
    with agent_server.client() as agent, pytest.raises(AgentError, match="HTTP 400") as info:
        agent.orders(after="not-a-cursor")
    assert not info.value.transient


def test_timeouts_are_retried_then_reported_as_transient(scripted):
    url, handler = scripted
    slow = (200, {"X-Sleep": "1.0", "Content-Type": "application/json"}, b"{}")
    handler.script += [slow, slow]
    agent = AgentClient(url, "office", AGENT_SECRET, timeout=0.2, retries=1, backoff=0.01)
    with pytest.raises(AgentError, match="did not answer within 0.2 s") as info:
        agent.get("/v1/orders")
    assert info.value.transient
    time.sleep(1.0)  # let the handler threads finish their late answers
    assert len(handler.seen) == 2
