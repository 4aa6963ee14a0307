"""Request signing as the agent checks it: every way a request can be refused, and what gets through."""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify, request

from agent import protocol
from agent.app import create_app
from agent.config import AgentConfig
from agent.state import NONCE_KEEP_SECONDS, AgentState
from agent.web import current_key_id, json_body, require_scope
from tests.agent.conftest import KEY_ID, LIMITED_ID, LIMITED_SECRET, SECRET, SigningClient

echo = Blueprint("echo", __name__)


@echo.route("/v1/test-echo", methods=["GET", "POST"])
@require_scope("stock:write")
def echo_view():  # noqa: ANN201
    body = json_body() if request.method == "POST" else None
    return jsonify(key=current_key_id(), args=list(request.args.items(multi=True)), body=body)


@pytest.fixture
def echo_app(bare_config: AgentConfig) -> Flask:
    app = create_app(bare_config)
    app.register_blueprint(echo)
    return app


@pytest.fixture
def client(echo_app: Flask) -> SigningClient:
    return SigningClient(echo_app.test_client())


def error_of(response) -> tuple[int, str, str]:  # noqa: ANN001
    assert response.is_json, response.data
    body = response.get_json()
    return response.status_code, body["error"]["code"], body["error"]["message"]


def test_signed_get_with_a_multi_value_query_passes(client: SigningClient) -> None:
    query = [("sku", "B 2"), ("sku", "A/1"), ("note", "é&="), ("empty", "")]
    r = client.get("/v1/test-echo", query)
    assert r.status_code == 200, r.data
    assert r.get_json()["key"] == KEY_ID
    assert sorted(map(tuple, r.get_json()["args"])) == sorted(query)


def test_query_order_on_the_wire_does_not_matter(echo_app: Flask) -> None:
    # The client signs the canonical (sorted) form, whatever order it puts the parameters in the URL.
    headers = protocol.signed_headers(
        KEY_ID, SECRET, "GET", "/v1/test-echo", [("b", "2"), ("a", "1"), ("a", "0")]
    )
    r = echo_app.test_client().get("/v1/test-echo?a=1&b=2&a=0", headers=headers)
    assert r.status_code == 200, r.data


def test_signed_post_body_passes_and_decimals_stay_exact(client: SigningClient) -> None:
    body = json.dumps({"request_id": "r-1", "items": [{"sku": "A", "qty": 2.50}]}).encode()
    r = client.post("/v1/test-echo", body)
    assert r.status_code == 200, r.data
    # Flask writes a Decimal as a string: the number never went through float.
    assert r.get_json()["body"]["items"][0]["qty"] == "2.5"


def test_tampered_body_is_refused(echo_app: Flask) -> None:
    body = b'{"items": [{"sku": "A", "qty": "1"}]}'
    headers = protocol.signed_headers(KEY_ID, SECRET, "POST", "/v1/test-echo", None, body)
    r = echo_app.test_client().post("/v1/test-echo", data=body.replace(b'"1"', b'"9"'), headers=headers)
    assert error_of(r) == (401, "unauthorized", "the request signature is not accepted")


def test_tampered_query_is_refused(echo_app: Flask) -> None:
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo", [("sku", "A")])
    r = echo_app.test_client().get("/v1/test-echo?sku=A&sku=B", headers=headers)
    assert error_of(r)[0] == 401


def test_signature_for_another_path_or_method_is_refused(echo_app: Flask) -> None:
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/diagnostics")
    assert echo_app.test_client().get("/v1/test-echo", headers=headers).status_code == 401
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo")
    assert echo_app.test_client().post("/v1/test-echo", data=b"{}", headers=headers).status_code == 401


@pytest.mark.parametrize(
    "dropped",
    [protocol.HEADER_KEY, protocol.HEADER_TIMESTAMP, protocol.HEADER_NONCE, protocol.HEADER_SIGNATURE],
)
def test_each_missing_header_is_named(echo_app: Flask, dropped: str) -> None:
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo")
    del headers[dropped]
    status, code, message = error_of(echo_app.test_client().get("/v1/test-echo", headers=headers))
    assert (status, code) == (401, "unauthorized") and dropped in message


def test_no_headers_at_all(echo_app: Flask) -> None:
    assert error_of(echo_app.test_client().get("/v1/test-echo"))[:2] == (401, "unauthorized")


def test_wrong_secret_and_unknown_key_look_the_same(client: SigningClient, echo_app: Flask) -> None:
    wrong = SigningClient(echo_app.test_client(), KEY_ID, SECRET + "x")
    unknown = SigningClient(echo_app.test_client(), "intruder", SECRET)
    assert error_of(wrong.get("/v1/test-echo")) == error_of(unknown.get("/v1/test-echo"))
    assert error_of(wrong.get("/v1/test-echo"))[0] == 401


def test_every_signature_is_checked_with_the_same_constant_time_work(
    echo_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hmac.compare_digest decides, over the whole given signature, for a right, a nearly right and a wrong
    signature and for an unknown key id (checked against a stand-in secret): how long the check takes tells
    an attacker neither which key ids exist nor how much of a signature was right."""
    compared: list[tuple[bytes, bytes]] = []
    hmacs: list[bytes] = []
    real_compare, real_new = protocol.hmac.compare_digest, protocol.hmac.new

    def compare_spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    def new_spy(key: bytes, msg: bytes | None = None, digestmod: Any = "") -> Any:
        hmacs.append(key)
        return real_new(key, msg, digestmod)

    monkeypatch.setattr(protocol.hmac, "compare_digest", compare_spy)
    monkeypatch.setattr(protocol.hmac, "new", new_spy)
    right = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo")
    nearly = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo")
    last = nearly[protocol.HEADER_SIGNATURE][-1]
    nearly[protocol.HEADER_SIGNATURE] = nearly[protocol.HEADER_SIGNATURE][:-1] + ("0" if last != "0" else "1")
    cases = {
        "right": (right, 200),
        "last character wrong": (nearly, 401),
        "wrong secret": (protocol.signed_headers(KEY_ID, SECRET + "x", "GET", "/v1/test-echo"), 401),
        "unknown key": (protocol.signed_headers("intruder", SECRET, "GET", "/v1/test-echo"), 401),
    }
    work = {}
    for name, (headers, status) in cases.items():
        compared.clear()
        hmacs.clear()
        assert echo_app.test_client().get("/v1/test-echo", headers=headers).status_code == status, name
        given = headers[protocol.HEADER_SIGNATURE].encode()
        assert compared and all(b == given and len(a) == 64 for a, b in compared), (name, compared)
        work[name] = (len(hmacs), len(compared))
    assert len(set(work.values())) == 1, work
    assert b"intruder" not in b"".join(hmacs)


def test_garbage_signature_is_refused(echo_app: Flask) -> None:
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo")
    headers[protocol.HEADER_SIGNATURE] = "zz\u00e9" * 30
    assert error_of(echo_app.test_client().get("/v1/test-echo", headers=headers))[0] == 401


@pytest.mark.parametrize("offset", [-301, 301, -10_000])
def test_stale_or_future_timestamp_is_refused(client: SigningClient, offset: int) -> None:
    status, code, message = error_of(client.get("/v1/test-echo", timestamp=int(time.time()) + offset))
    assert (status, code) == (401, "unauthorized") and "300 s" in message


def test_timestamp_just_inside_the_window_passes(client: SigningClient) -> None:
    assert client.get("/v1/test-echo", timestamp=int(time.time()) - 290).status_code == 200


@pytest.mark.parametrize("timestamp", ["12.5", "-5", "now", "１２３"])
def test_malformed_timestamp_is_refused(echo_app: Flask, timestamp: str) -> None:
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo")
    headers[protocol.HEADER_TIMESTAMP] = timestamp
    assert error_of(echo_app.test_client().get("/v1/test-echo", headers=headers))[0] == 401


@pytest.mark.parametrize("nonce", ["short", "x" * 65, "has space in it ok", "bad/characters!!!!"])
def test_malformed_nonce_is_refused(client: SigningClient, nonce: str) -> None:
    status, _, message = error_of(client.get("/v1/test-echo", nonce=nonce))
    assert status == 401 and protocol.HEADER_NONCE in message


def test_replayed_request_is_refused(echo_app: Flask) -> None:
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo")
    assert echo_app.test_client().get("/v1/test-echo", headers=headers).status_code == 200
    status, code, message = error_of(echo_app.test_client().get("/v1/test-echo", headers=headers))
    assert (status, code) == (401, "unauthorized") and "nonce" in message


def test_replay_is_caught_by_another_worker(bare_config: AgentConfig) -> None:
    # Two apps over one state_dir stand for two gunicorn worker processes.
    first, second = create_app(bare_config), create_app(bare_config)
    for app in (first, second):
        app.register_blueprint(echo)
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo")
    assert first.test_client().get("/v1/test-echo", headers=headers).status_code == 200
    assert second.test_client().get("/v1/test-echo", headers=headers).status_code == 401


def test_the_same_nonce_for_another_key_is_its_own(echo_app: Flask) -> None:
    nonce = protocol.new_nonce()
    h1 = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo", nonce=nonce)
    h2 = protocol.signed_headers(LIMITED_ID, LIMITED_SECRET, "GET", "/v1/test-echo", nonce=nonce)
    assert echo_app.test_client().get("/v1/test-echo", headers=h1).status_code == 200
    assert echo_app.test_client().get("/v1/test-echo", headers=h2).status_code == 200


def test_a_refused_signature_does_not_use_up_the_nonce(echo_app: Flask) -> None:
    nonce = protocol.new_nonce()
    bad = protocol.signed_headers(KEY_ID, SECRET + "x", "GET", "/v1/test-echo", nonce=nonce)
    good = protocol.signed_headers(KEY_ID, SECRET, "GET", "/v1/test-echo", nonce=nonce)
    assert echo_app.test_client().get("/v1/test-echo", headers=bad).status_code == 401
    assert echo_app.test_client().get("/v1/test-echo", headers=good).status_code == 200


def test_missing_scope_is_403(echo_app: Flask) -> None:
    limited = SigningClient(echo_app.test_client(), LIMITED_ID, LIMITED_SECRET)
    assert limited.get("/v1/test-echo").status_code == 200  # has stock:write
    status, code, message = error_of(limited.get("/v1/diagnostics"))
    assert (status, code) == (403, "forbidden") and "diagnostics:read" in message


def test_path_as_sent_through_a_prefixing_proxy_is_accepted(echo_app: Flask) -> None:
    # The client signs /koppel/v1/test-echo; a proxy strips /koppel and says so in X-Forwarded-Prefix.
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/koppel/v1/test-echo")
    headers["X-Forwarded-Prefix"] = "/koppel"
    assert echo_app.test_client().get("/v1/test-echo", headers=headers).status_code == 200
    # ... and mounted under SCRIPT_NAME (e.g. Passenger or a WSGI server mounted at /koppel).
    headers = protocol.signed_headers(KEY_ID, SECRET, "GET", "/koppel/v1/test-echo")
    r = echo_app.test_client().get(
        "/v1/test-echo", headers=headers, environ_overrides={"SCRIPT_NAME": "/koppel"}
    )
    assert r.status_code == 200


def test_bad_json_body_is_400_after_auth(client: SigningClient) -> None:
    status, code, _ = error_of(client.post("/v1/test-echo", b"{not json"))
    assert (status, code) == (400, "bad_body")
    status, code, message = error_of(client.post("/v1/test-echo", b"[1, 2]"))
    assert (status, code) == (400, "bad_body") and "object" in message


def test_nonces_expire_and_are_pruned(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    now = time.time()
    assert state.remember_nonce("k", "n" * 16, int(now), now=now)
    assert not state.remember_nonce("k", "n" * 16, int(now), now=now + 10)
    later = now + NONCE_KEEP_SECONDS + 5
    assert state.remember_nonce("k", "m" * 16, int(later), now=later)  # prunes the old one
    with sqlite3.connect(state.path) as conn:
        assert conn.execute("SELECT nonce FROM nonces").fetchall() == [("m" * 16,)]


def test_request_ledger_keeps_the_first_answer(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    assert state.get_request("r1") is None
    assert state.store_request("r1", "hash-a", {"results": [], "counts": {"updated": 1}})
    assert not state.store_request("r1", "hash-b", {"results": ["other"]})
    assert state.get_request("r1") == ("hash-a", {"results": [], "counts": {"updated": 1}})
    assert AgentState(tmp_path).get_request("r1") is not None  # survives a restart


# --- the state's SQLite connections: one per thread, nonces shared by every process ---------------------------


def claim_nonces(state_dir: str, nonces: list[str], threads: int, start: Any) -> list[str]:
    """In a process of its own (a gunicorn worker): ``threads`` threads each try every nonce, as fast as they
    can; the nonces this process won."""
    state = AgentState(state_dir)
    won: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        start.wait()
        for nonce in nonces:
            if state.remember_nonce("office", nonce, int(time.time())):
                with lock:
                    won.append(nonce)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return won


def test_every_nonce_is_accepted_once_across_processes_and_threads(tmp_path: Path) -> None:
    AgentState(tmp_path)
    nonces = [f"race-{i:04d}-{'x' * 8}" for i in range(300)]
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        start = manager.Event()
        with concurrent.futures.ProcessPoolExecutor(3, mp_context=context) as pool:
            runs = [pool.submit(claim_nonces, str(tmp_path), nonces, 4, start) for _ in range(3)]
            time.sleep(1.0)  # let every process get to the start line
            start.set()
            won = [nonce for run in runs for nonce in run.result(timeout=120)]
    assert sorted(won) == nonces  # each nonce won exactly once, by one thread of one process


def test_a_thread_keeps_its_connection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    real_connect = sqlite3.connect

    def counting(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(threading.get_ident())
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", counting)
    state = AgentState(tmp_path)
    assert len(opened) == 1  # the set-up connection, closed again

    def work(n: int) -> None:
        for i in range(20):
            assert state.remember_nonce("k", f"thread-{n}-nonce-{i:04d}", int(time.time()))
            assert not state.remember_nonce("k", f"thread-{n}-nonce-{i:04d}", int(time.time()))
        assert state.store_request(f"r{n}", "h", {"n": n}) and state.get_request(f"r{n}") == ("h", {"n": n})

    pool = [threading.Thread(target=work, args=(n,)) for n in range(3)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    work(3)
    # 3 threads and this one, 42 operations each: one connection per thread.
    assert len(opened) == 5 and len(set(opened[1:])) == 4


def test_a_connection_that_failed_is_replaced(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    assert state.remember_nonce("k", "first-nonce-0001", int(time.time()))
    state._local.conn.close()  # whatever broke it: the operation on it fails ...
    with pytest.raises(sqlite3.ProgrammingError):
        state.remember_nonce("k", "second-nonce-001", int(time.time()))
    # ... and the next one runs on a fresh connection, with the nonces so far still known.
    assert state.remember_nonce("k", "second-nonce-001", int(time.time()))
    assert not state.remember_nonce("k", "first-nonce-0001", int(time.time()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_opens_its_own_connection(tmp_path: Path) -> None:
    state = AgentState(tmp_path)
    assert state.remember_nonce("k", "parent-nonce-001", int(time.time()))
    inherited = state._local.conn
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only when it worked on a connection of its own
        ok = (
            not state.remember_nonce("k", "parent-nonce-001", int(time.time()))
            and state.remember_nonce("k", "child-nonce-0001", int(time.time()))
            and state._local.conn is not inherited
            and state._inherited == [inherited]
        )
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not state.remember_nonce("k", "child-nonce-0001", int(time.time()))
    assert state._local.conn is inherited  # the parent's own connection goes on


def open_state_at(folder: str, start: Any) -> str:
    """Open the agent's state at the start signal, as a freshly booted gunicorn worker does."""
    start.wait()
    try:
        AgentState(folder)
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok"


def test_workers_booting_together_on_a_new_state_file_all_start(tmp_path: Path) -> None:
    # gunicorn boots its workers at the same moment; each opens the state file and sets it up. SQLite refuses
    # a switch to WAL with "database is locked" without waiting while another connection holds the file, and
    # a worker that fails to boot makes gunicorn shut the whole agent down.
    context = multiprocessing.get_context("spawn")
    outcomes: list[str] = []
    with context.Manager() as manager, concurrent.futures.ProcessPoolExecutor(6, mp_context=context) as pool:
        for round_ in range(8):
            folder = tmp_path / f"round-{round_}"  # a new state file each round
            start = manager.Event()
            runs = [pool.submit(open_state_at, str(folder), start) for _ in range(6)]
            time.sleep(
                0.3 if round_ else 1.5
            )  # every process at the start line (the first round spawns them)
            start.set()
            outcomes += [run.result(timeout=60) for run in runs]
    assert outcomes == ["ok"] * len(outcomes), sorted(set(outcomes))
    assert AgentState(tmp_path / "round-0").remember_nonce("k", "after-the-race-01", int(time.time()))
