"""Real MariaDB for the tests; the code lives in ``client.demo.mariadb`` because the demo needs it too."""

from client.demo.mariadb import MariaDB, PrivateMariaDB, free_port, machine_or_private, reachable

# The names this module had before the move, for tests written against them.
_free_port = free_port
_reachable = reachable

__all__ = ["MariaDB", "PrivateMariaDB", "free_port", "machine_or_private", "reachable"]
