"""The steps of a deploy and a rollback, the same for every kind of server.

Layout on the server, under the base folder::

    releases/<stamp>/    one folder per release (see deploy.release)
    current              which release runs: a symlink (SSH) or a pointer file CURRENT (FTP)
    shared/              what outlives releases: the agent's state_dir, agent.env (SSH)

Until the switch nothing the running agent uses is touched, so a deploy that fails before it leaves the
running release as it was; a restart or health check that fails after it switches back.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from deploy.release import Release, ReleaseError, is_release_name, release_order

MIN_KEEP = 2  # the running release and the one a rollback goes back to


class DeployError(Exception):
    """A step failed; ``step`` names it for the person running the deploy."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


class Console:
    """Everything a deploy prints goes through here, so no secret of agent.yml can reach the output."""

    def __init__(self, write: Callable[[str], object] = print) -> None:
        self._write = write
        self._secrets: set[str] = set()

    def add_secrets(self, values: list[str]) -> None:
        # Very short values would blank out ordinary words; agent.yml refuses secrets under 32 characters.
        self._secrets.update(v for v in values if len(v) >= 6)

    def redact(self, text: str) -> str:
        for value in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(value, "[secret]")
        return text

    def say(self, text: str) -> None:
        self._write(self.redact(text))


class Target(Protocol):
    """One server reached over SSH/SFTP or FTP(S); every path is below its base folder."""

    description: str

    def releases(self) -> list[str]: ...
    def current(self) -> str | None: ...
    def upload(self, release: Release, console: Console) -> None: ...
    def prepare(self, stamp: str, console: Console) -> None: ...
    def switch(self, stamp: str) -> None: ...
    def restart(self, console: Console) -> None: ...
    def remove(self, stamp: str) -> None: ...


@contextmanager
def step(console: Console, name: str, what: str) -> Iterator[None]:
    console.say(f"[{name}] {what}")
    try:
        yield
    except DeployError:
        raise
    except KeyboardInterrupt:
        # Ctrl-C is a failed step like any other: the unfinished release is removed, current stays.
        raise DeployError(name, "interrupted (Ctrl-C)") from None
    except ReleaseError as exc:
        raise DeployError(name, str(exc)) from exc
    except Exception as exc:  # any library error becomes a message naming the step
        raise DeployError(name, f"{type(exc).__name__}: {exc}") from exc


def sorted_releases(names: list[str]) -> list[str]:
    return sorted((n for n in names if is_release_name(n)), key=release_order)


def unique_stamp(stamp: str, existing: list[str]) -> str:
    name, n = stamp, 1
    while name in existing:
        n += 1
        name = f"{stamp}-{n}"
    return name


def wait_healthy(url: str, timeout: float) -> None:
    """Poll ``url`` until it answers 200; raise with the last answer seen when it does not in time."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (a URL the operator gave)
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() > deadline:
            raise DeployError("verify", f"{url} did not answer 200 within {timeout:.0f} s (last: {last})")
        time.sleep(0.5)


def _restart_and_verify(
    target: Target, console: Console, health_url: str | None, health_timeout: float
) -> None:
    with step(console, "restart", "restarting the agent"):
        target.restart(console)
    if health_url:
        with step(console, "verify", f"waiting for {health_url} to answer 200"):
            wait_healthy(health_url, health_timeout)


def _switch_back(target: Target, console: Console, previous: str | None, failed: DeployError) -> bool:
    """After a failed restart or health check: make ``previous`` current and running again."""
    if previous is None:
        console.say(
            f"no earlier release to switch back to; current stays at the new release ({failed.step} failed)"
        )
        return False
    try:
        target.switch(previous)
    except Exception as exc:
        console.say(f"switching current back to {previous} failed too: {type(exc).__name__}: {exc}")
        return False
    console.say(f"switched current back to {previous}")
    try:
        target.restart(console)
        console.say(f"restarted {previous}")
    except Exception as exc:
        console.say(f"restarting {previous} failed too ({exc}); the process that ran before was not replaced")
    return True


def deploy(
    target: Target,
    release: Release,
    console: Console,
    *,
    keep: int = 5,
    health_url: str | None = None,
    health_timeout: float = 60,
) -> str:
    """Upload, prepare, switch to, restart and verify ``release``; prune to ``keep`` releases."""
    keep = max(keep, MIN_KEEP)
    with step(console, "inspect", f"reading the releases on {target.description}"):
        previous = target.current()
        existing = target.releases()
    console.say(f"running release: {previous or 'none yet'}; new release: {release.stamp}")
    if release.stamp in existing:
        raise DeployError("inspect", f"release {release.stamp} exists already on the server")
    try:
        with step(console, "upload", f"uploading release {release.stamp}"):
            target.upload(release, console)
        with step(console, "prepare", "preparing the release on the server"):
            target.prepare(release.stamp, console)
        with step(console, "switch", f"switching current to {release.stamp}"):
            target.switch(release.stamp)
    except DeployError as exc:
        try:
            target.remove(release.stamp)
        except Exception as cleanup:
            console.say(f"could not remove the unfinished release {release.stamp}: {cleanup}")
        console.say(
            f"deploy failed at step {exc.step}; the running release ({previous or 'none'}) is untouched"
        )
        raise
    try:
        _restart_and_verify(target, console, health_url, health_timeout)
    except DeployError as exc:
        if _switch_back(target, console, previous, exc):
            try:
                target.remove(release.stamp)
                console.say(f"removed the failed release {release.stamp}")
            except Exception as cleanup:
                console.say(f"could not remove the failed release {release.stamp}: {cleanup}")
        console.say(f"deploy failed at step {exc.step}")
        raise
    try:
        with step(console, "prune", f"keeping the newest {keep} releases"):
            for name in prune_list(target.releases(), keep, release.stamp, previous):
                target.remove(name)
                console.say(f"removed release {name}")
    except DeployError:
        console.say(f"release {release.stamp} is deployed and running; only removing old releases failed")
        raise
    console.say(f"deployed {release.stamp}" + (f" (previous: {previous})" if previous else ""))
    return release.stamp


def prune_list(names: list[str], keep: int, current: str, previous: str | None) -> list[str]:
    """The releases to delete: all but the newest ``keep``, never the running one or its predecessor."""
    ordered = sorted_releases(names)
    kept = set(ordered[-keep:]) | {current} | ({previous} if previous else set())
    return [n for n in ordered if n not in kept]


def rollback(
    target: Target, console: Console, *, health_url: str | None = None, health_timeout: float = 60
) -> str:
    """Switch back to the release before the running one and restart it."""
    with step(console, "inspect", f"reading the releases on {target.description}"):
        running = target.current()
        names = sorted_releases(target.releases())
    if running is None:
        raise DeployError("inspect", "no release is running (no current) - nothing to roll back")
    older = [n for n in names if release_order(n) < release_order(running)]
    if not older:
        raise DeployError("inspect", f"no release older than {running} is left on the server")
    goal = older[-1]
    with step(console, "switch", f"switching current from {running} back to {goal}"):
        target.switch(goal)
    try:
        _restart_and_verify(target, console, health_url, health_timeout)
    except DeployError as exc:
        _switch_back(target, console, running, exc)
        console.say(f"rollback failed at step {exc.step}")
        raise
    console.say(f"rolled back to {goal} (was {running})")
    return goal


def describe(target: Target, console: Console) -> None:
    """Print the releases on the server and which one runs."""
    with step(console, "inspect", f"reading the releases on {target.description}"):
        running = target.current()
        names = sorted_releases(target.releases())
    if not names:
        console.say("no releases on the server yet")
    for name in names:
        console.say(("* " if name == running else "  ") + name)
