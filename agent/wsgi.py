"""WSGI entry for any server: ``agent.wsgi:app``, configured by the file named in KOPPEL_AGENT_CONFIG."""

from __future__ import annotations

import os
import sys

from agent.app import create_app
from agent.config import ConfigError, load_config

_path = os.environ.get("KOPPEL_AGENT_CONFIG")
if not _path:
    sys.exit("koppel agent: set KOPPEL_AGENT_CONFIG to the path of agent.yml")
try:
    app = create_app(load_config(_path))
except ConfigError as exc:
    sys.exit(f"koppel agent: {exc}")
