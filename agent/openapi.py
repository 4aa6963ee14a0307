"""The agent's OpenAPI 3.1 description (filled out in the next step)."""

from __future__ import annotations

from typing import Any

from agent.config import AgentConfig


def document(cfg: AgentConfig) -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "koppel agent", "version": "1"}, "paths": {}}
