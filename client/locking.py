"""One run per profile at a time, across processes (the scheduler, a manual `koppel run`, a second PC session).

The lock is an OS file lock on a small file next to the state database. The operating system releases it
when the holding process dies, so a crashed or killed run never leaves a stale lock behind that someone would
have to delete by hand. The file also records who holds it, only to tell the user.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class AlreadyRunning(Exception):
    """Another process is running this profile right now."""

    def __init__(self, profile: str, holder: dict[str, object] | None) -> None:
        self.profile = profile
        self.holder = holder or {}
        who = ""
        if self.holder.get("pid"):
            who = f" (process {self.holder['pid']}"
            if self.holder.get("what"):
                who += f", {self.holder['what']}"
            who += ")"
        super().__init__(f"profile {profile!r} is already running{who}; try again when it has finished")


def lock_path(state_path: Path, profile: str) -> Path:
    """The lock file of one profile, next to the state database."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", profile)
    return Path(state_path).with_name(f"{Path(state_path).name}.{safe}.lock")


class ProfileLock:
    """Non-blocking exclusive lock for one profile; use as a context manager or acquire()/release()."""

    def __init__(self, state_path: Path, profile: str, what: str = "") -> None:
        self.path = lock_path(state_path, profile)
        self.profile = profile
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise AlreadyRunning at once; never waits."""
        if self._fd is not None:
            raise RuntimeError("lock already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Not O_TRUNC: truncating would wipe the holder's note before we know we own the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise AlreadyRunning(self.profile, read_holder(self.path))
        self._fd = fd
        note = {"pid": os.getpid(), "host": socket.gethostname(), "what": self.what, "since": time.time()}
        data = json.dumps(note).encode()
        # Byte 0 is the locked byte on Windows; the note starts after a newline so it stays readable there too.
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, b"\n" + data)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
            _unlock(fd)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> ProfileLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, object] | None:
    """Who wrote the lock file last (pid, host, what, since), or None when unknown."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_running(state_path: Path, profile: str) -> bool:
    """True when some process holds the profile's lock right now (probing takes and drops it)."""
    path = lock_path(state_path, profile)
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        if _try_lock(fd):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)
