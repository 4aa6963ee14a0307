"""A stock export killed (SIGKILL) in the middle of its batches: just before a batch goes out, or after the agent
applied it but before koppel recorded the answer. The next export settles the batch under its own request id and
Magento ends with exactly SnelStart's figures; no batch is ever applied under two ids."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from client.config import load_client_config
from client.snelstart.local import LocalBackend
from client.state import StateStore
from client.webstock import export_stock
from tests.agent.test_stock import StockShop
from tests.client.conftest import AgentServer, MagentoDB, client_profile, write_client_config
from tests.client.test_webstock import IN_MAGENTO, RecordingAgent, stock_products

REPO = Path(__file__).resolve().parents[2]

# The child runs a real export with one item per batch and kills itself at the chosen point of batch N.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from client.agent_client import AgentClient
    from client.config import load_client_config
    from client.snelstart.local import LocalBackend
    from client.state import StateStore
    import client.webstock as webstock

    config_path, point, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = load_client_config(config_path)
    profile = config.profile("shop")
    posts = 0

    class Dying(AgentClient):
        def post(self, path, body):
            global posts
            posts += 1
            if posts == n and point == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            answer = super().post(path, body)
            if posts == n and point == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return answer

    agent = Dying(profile.agent.url, profile.agent.key_id, profile.agent.secret_value())
    with LocalBackend(profile.snelstart.path) as backend, StateStore(config.state) as state:
        webstock.export_stock(config, profile, backend=backend, state=state, agent=agent, max_items=1)
    """
)


def agent_ledger(server: AgentServer) -> list[dict[str, Any]]:
    """Every request the agent wrote, from its own state file."""
    conn = sqlite3.connect(server.workdir / "agent-state" / "agent-state.sqlite")
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(requests)")]
        return [dict(zip(cols, row, strict=True)) for row in conn.execute("SELECT * FROM requests")]
    finally:
        conn.close()


@pytest.mark.parametrize(("point", "batch"), [("before", 1), ("before", 3), ("after", 2), ("after", 5)])
def test_killed_export_is_settled_by_the_next_one(
    point: str,
    batch: int,
    magento_db: MagentoDB,
    agent_server: AgentServer,
    local_admin: Path,
    tmp_path: Path,
) -> None:
    conn = magento_db.connect()
    stock_products(StockShop(conn, 2, ""))
    config_path = write_client_config(tmp_path, [client_profile(agent_server.url, local_admin)])
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(config_path), point, str(batch)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    written_before = len(agent_ledger(agent_server))
    assert written_before == (batch - 1 if point == "before" else batch)

    config = load_client_config(config_path)
    agent = RecordingAgent(agent_server.url, agent_server.key_id, agent_server.secret)
    with LocalBackend(local_admin) as backend, StateStore(config.state) as state:
        result = export_stock(config, config.profile("shop"), backend=backend, state=state, agent=agent)
        free = {a.artikelcode: max(a.vrije_voorraad, Decimal(0)) for a in backend.stock_artikelen()}
    # The batch in flight at the kill was sent again under its own id, first.
    assert result.resent_batches == 1
    with agent_server.client() as client:
        items = client.get("/v1/stock", [("sku", s) for s in IN_MAGENTO])["items"]
    assert {i["sku"]: Decimal(i["qty"]) for i in items} == {s: free[s] for s in IN_MAGENTO}
    ledger = agent_ledger(agent_server)
    ids = [row["request_id"] for row in ledger]
    assert len(ids) == len(set(ids))
    # The resent batch is a new entry only when it never arrived; a replay of an applied one writes nothing.
    assert len(ledger) == written_before + (1 if point == "before" else 0) + len(agent.posts) - 1
    state_db = sqlite3.connect(config.state)
    try:
        assert state_db.execute("SELECT count(*) FROM webstock_pending").fetchone()[0] == 0
        pushed = dict(state_db.execute("SELECT sku_key, qty FROM webstock_pushed WHERE profile = 'shop'"))
    finally:
        state_db.close()
    assert pushed == {s.casefold(): str(int(free[s])) for s in IN_MAGENTO}
    assert result.problems == []
    conn.close()
