"""Passenger entry for koppel's agent (cPanel "Setup Python App"), uploaded by koppel-agent deploy.

It lives in the application root next to the pointer file CURRENT ("releases/<stamp>"), reads it once when
Passenger starts the app, and serves that release's agent with the release's agent.yml. A deploy writes a
new CURRENT and touches tmp/restart.txt, so Passenger starts the new release with the next request.
Packages come from the release's site-packages/ when it has one, else from the app's own virtualenv
(cPanel: "Run Pip Install" on the release's requirements.txt).
"""

import os
import site
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _release_dir() -> str:
    with open(os.path.join(HERE, "CURRENT"), encoding="utf-8") as pointer:
        relative = pointer.read().strip()
    parts = relative.split("/")
    if len(parts) != 2 or parts[0] != "releases" or parts[1] in ("", ".", ".."):
        raise RuntimeError(f"koppel agent: CURRENT names {relative!r}, not releases/<stamp>")
    return os.path.join(HERE, *parts)


RELEASE = _release_dir()
_packages = os.path.join(RELEASE, "site-packages")
if os.path.isdir(_packages):
    site.addsitedir(_packages)  # also runs the .pth files some packages ship
    sys.path.remove(_packages)
    sys.path.insert(0, _packages)
sys.path.insert(0, os.path.join(RELEASE, "app"))
os.environ["KOPPEL_AGENT_CONFIG"] = os.path.join(RELEASE, "agent.yml")

from agent.wsgi import app as application  # noqa: E402

__all__ = ["application"]
