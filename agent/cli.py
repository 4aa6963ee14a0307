"""koppel-agent command line (filled out in the next step)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    raise SystemExit("koppel-agent: not yet available")
