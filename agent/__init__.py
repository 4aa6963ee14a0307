"""The koppel agent: reads Magento's orders and writes its stock, next to Magento (see AGENT-API.md)."""

from __future__ import annotations

from importlib import metadata


def agent_version() -> str:
    """The installed koppel version ("0+unknown" when run from files that were not installed)."""
    try:
        return metadata.version("koppel")
    except metadata.PackageNotFoundError:
        return "0+unknown"
