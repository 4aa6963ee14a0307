"""Opening the SnelStart backend a profile names (``snelstart.backend``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from client.snelstart.base import SnelStartBackend

# Where the b2b backend keeps its relaties/artikelen mirror when the caller passes no state store.
B2B_MIRROR_FILE = "koppel-b2b-mirror.sqlite"


def open_backend(
    settings: Any, config_dir: Path | str | None = None, *, state: Any = None
) -> SnelStartBackend:
    """The backend for a profile's ``snelstart`` settings (``client.config.SnelStartSettings`` or alike).

    ``config_dir`` is the folder of client.yml; relative paths are taken from there. ``state`` (b2b only) is
    the StateStore, sqlite3 connection or file that holds the b2b mirror. The b2b and desktop modules are
    imported only when chosen, so a local-only install needs neither requests nor pyodbc.
    """
    base = Path(config_dir) if config_dir is not None else Path.cwd()
    backend = getattr(settings, "backend", None) or "local"
    if backend == "local":
        path = getattr(settings, "path", None)
        if not path:
            raise ValueError("snelstart.path is required for backend local (the administration file)")
        path = Path(path)
        from client.snelstart.local import LocalBackend

        return LocalBackend(path if path.is_absolute() else base / path)
    if backend == "b2b":
        from client.snelstart.b2b import B2BBackend

        return B2BBackend.from_settings(settings, state if state is not None else base / B2B_MIRROR_FILE)
    if backend == "desktop":
        from client.snelstart.desktop import DesktopBackend

        return DesktopBackend(settings, base)  # type: ignore[return-value]
    raise ValueError(f"snelstart.backend must be local, b2b or desktop, not {backend!r}")
