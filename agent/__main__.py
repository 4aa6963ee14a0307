"""``python -m agent`` is ``koppel-agent``."""

from agent.cli import main

raise SystemExit(main())
