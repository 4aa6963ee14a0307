"""Build a release of the agent on this machine, ready to upload.

A release is one directory::

    app/agent/...          the agent package (nothing of the client)
    requirements.txt       the agent's packages pinned to the versions installed here
    agent.yml              mode 0600, with a relative state_dir moved to ../../shared/ so it outlives releases
    <secret files>         password_file / secret_file that agent.yml names relatively, mode 0600
    wheels/                (packages "local" or a wheel folder, SSH) wheels the server installs offline
    site-packages/         (packages "local" or a wheel folder, FTP) the packages unpacked, for Passenger
    RELEASE                stamp and koppel version, so a person on the server can see what runs

Packages "local" repacks the wheels from this machine's own installation (the dist-info keeps the original
wheel tags and file list), so a deploy needs no internet as long as the server matches this machine's
platform and Python version; pip on the server refuses a mismatch, and the deploy stops there.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
AGENT_PACKAGE = REPO / "agent"
PASSENGER_ENTRY = Path(__file__).resolve().parent / "passenger_wsgi.py"
# Used when koppel itself is not installed as a distribution (running from a bare checkout).
FALLBACK_AGENT_REQUIREMENTS = ("PyYAML", "Flask", "gunicorn", "PyMySQL", "cryptography", "pydantic")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
SHARED_DIR = "shared"
SECRET_MODE = 0o600


class ReleaseError(Exception):
    """The release cannot be built here; the message says what to change."""


@dataclass
class Release:
    root: Path
    stamp: str
    secrets: list[str] = field(default_factory=list)  # values that must never be printed
    secret_files: list[str] = field(default_factory=list)  # paths inside the release that get mode 0600


def new_stamp(now: datetime | None = None) -> str:
    """A release name that sorts by time: 20261203T193000Z."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(STAMP_FORMAT)


def is_release_name(name: str) -> bool:
    """True for names new_stamp makes, with an optional -N suffix for two deploys within one second."""
    base, _, suffix = name.partition("-")
    try:
        datetime.strptime(base, STAMP_FORMAT)
    except ValueError:
        return False
    return suffix == "" or suffix.isdigit()


def release_order(name: str) -> tuple[str, int]:
    base, _, suffix = name.partition("-")
    return base, int(suffix or 0)


# --- packages ----------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _agent_roots() -> list[str]:
    try:
        requires = metadata.requires("koppel") or []
    except metadata.PackageNotFoundError:
        return list(FALLBACK_AGENT_REQUIREMENTS)
    from packaging.requirements import Requirement

    roots = []
    for text in requires:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": "agent"}):
            roots.append(req.name)
    return roots


def agent_distributions() -> list[metadata.Distribution]:
    """The installed distributions the agent needs: its extra and everything they pull in, here."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        raise ReleaseError(
            "the agent's packages are not installed here: pip install 'koppel[agent]'"
        ) from None
    found: dict[str, metadata.Distribution] = {}
    todo = _agent_roots()
    while todo:
        name = todo.pop()
        if _key(name) in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ReleaseError(
                f"package {name} (needed by the agent) is not installed here: pip install 'koppel[agent]'"
            ) from None
        found[_key(name)] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return [found[k] for k in sorted(found)]


def pinned_requirements(dists: list[metadata.Distribution]) -> str:
    lines = [f"{d.metadata['Name']}=={d.version}" for d in dists]
    return "# the agent's packages, pinned to the versions koppel was tested with\n" + "\n".join(lines) + "\n"


def _installed_files(dist: metadata.Distribution) -> list[tuple[str, Path]]:
    """(path inside a wheel, installed file) for the files that live in site-packages."""
    skip_meta = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    out = []
    for rel in dist.files or []:
        parts = rel.parts
        if parts[0] == ".." or "__pycache__" in parts:
            continue  # console scripts outside site-packages: pip writes them anew from entry_points.txt
        if parts[0].endswith(".dist-info") and parts[-1] in skip_meta:
            continue
        out.append(("/".join(parts), Path(str(dist.locate_file(rel)))))
    return out


def _wheel_tags(dist: metadata.Distribution) -> str:
    text = dist.read_text("WHEEL")
    tags = [line.split(":", 1)[1].strip() for line in (text or "").splitlines() if line.startswith("Tag:")]
    if not tags:
        raise ReleaseError(
            f"{dist.metadata['Name']} was not installed from a wheel, so it cannot be repacked; "
            "use --packages pypi or a folder of wheels"
        )
    columns = list(zip(*(t.split("-") for t in tags), strict=True))
    return "-".join(".".join(sorted(set(col))) for col in columns)


def _dist_info_name(dist: metadata.Distribution) -> str:
    for rel in dist.files or []:
        if rel.parts[0].endswith(".dist-info"):
            return rel.parts[0]
    raise ReleaseError(f"{dist.metadata['Name']}: installed without a file list (RECORD)")


def repack_wheel(dist: metadata.Distribution, dest: Path) -> Path:
    """Write ``dist`` as installed here back into a wheel in ``dest``, with a fresh RECORD."""
    info = _dist_info_name(dist)
    name = info[: -len(f"-{dist.version}.dist-info")]
    path = dest / f"{name}-{dist.version}-{_wheel_tags(dist)}.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as whl:
        for arcname, source in _installed_files(dist):
            data = source.read_bytes()
            whl.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}")
        record.append(f"{info}/RECORD,,")
        whl.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def vendor_installed(dist: metadata.Distribution, dest: Path) -> None:
    """Copy ``dist``'s site-packages files into ``dest`` (a site-packages folder for Passenger)."""
    for arcname, source in _installed_files(dist):
        target = dest / arcname
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def unpack_wheels(wheels: list[Path], dest: Path) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as whl:
            for member in whl.namelist():
                if member.startswith("/") or ".." in member.split("/"):
                    raise ReleaseError(f"{wheel.name}: unsafe path {member!r} inside the wheel")
            whl.extractall(dest)


# --- agent.yml ---------------------------------------------------------------------------------------


def _secret_fields(data: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    sections: list[tuple[dict[str, Any], str]] = []
    if isinstance(data.get("database"), dict):
        sections.append((data["database"], "password"))
    for key in data.get("keys") or []:
        if isinstance(key, dict):
            sections.append((key, "secret"))
    return sections


def prepare_config(source: Path, release: Release) -> None:
    """Write agent.yml (and the secret files it names relatively) into the release, and learn its secrets.

    A relative state_dir is rewritten to live in <base>/shared/, because nonces and stock answers must
    survive a new release (relative paths in agent.yml are taken from the file, i.e. releases/<stamp>/).
    """
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseError(f"{source}: configuration file not found") from None
    except yaml.YAMLError as exc:
        # Not str(exc): PyYAML quotes the offending line, which may be a password or a key's secret.
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None:
            problem += f" {context} that starts on line {context_mark.line + 1}"
        raise ReleaseError(f"{source}{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ReleaseError(f"{source}: agent.yml must be a mapping of keys to values")
    for section, name in _secret_fields(data):
        if section.get(name) not in (None, ""):
            release.secrets.append(str(section[name]))
        ref = section.get(f"{name}_file")
        if ref in (None, ""):
            continue
        ref_path = Path(os.path.expanduser(str(ref)))
        if ref_path.is_absolute():
            continue  # a file that already lives on the server
        if ".." in ref_path.parts:  # it is uploaded to the same place relative to the release's agent.yml
            raise ReleaseError(f"{source}: {name}_file {ref} must stay inside the folder of agent.yml")
        local = source.resolve().parent / ref_path
        try:
            value = local.read_text(encoding="utf-8")
        except OSError as exc:
            raise ReleaseError(f"{source}: {name}_file {ref}: cannot read {local}: {exc.strerror}") from None
        release.secrets.append(value.strip())
        _write_secret(release, ref_path.as_posix(), value)
    state_dir = Path(str(data.get("state_dir") or "agent-state"))
    if not state_dir.is_absolute() and not str(data.get("state_dir") or "").startswith("~"):
        data["state_dir"] = f"../../{SHARED_DIR}/{state_dir.as_posix()}"
    header = f"# written by koppel-agent deploy from {source.name}; edit that file and deploy again\n"
    _write_secret(release, "agent.yml", header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _write_secret(release: Release, rel: str, text: str) -> None:
    path = release.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SECRET_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    release.secret_files.append(rel)


# --- the whole release -------------------------------------------------------------------------------


def _copy_agent(dest: Path) -> None:
    if not (AGENT_PACKAGE / "__init__.py").exists():
        raise ReleaseError(f"the agent package is not at {AGENT_PACKAGE}")
    shutil.copytree(
        AGENT_PACKAGE, dest / "app" / "agent", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )


def build_release(
    config: Path, workdir: Path, *, packages: str = "pypi", layout: str = "venv", stamp: str | None = None
) -> Release:
    """Build a release in ``workdir/<stamp>``.

    ``packages``: "pypi" (the server installs the pinned versions itself), "local" (repacked from this
    machine) or the path of a folder of wheels. ``layout``: "venv" (SSH: ship wheels, the server builds a
    virtual environment) or "vendor" (FTP: ship the packages unpacked in site-packages/).
    """
    stamp = stamp or new_stamp()
    root = workdir / stamp
    root.mkdir(parents=True)
    release = Release(root=root, stamp=stamp)
    prepare_config(config, release)
    _copy_agent(root)
    dists = agent_distributions()
    (root / "requirements.txt").write_text(pinned_requirements(dists), encoding="utf-8")
    if packages == "local":
        if layout == "vendor":
            for dist in dists:
                vendor_installed(dist, root / "site-packages")
        else:
            (root / "wheels").mkdir()
            for dist in dists:
                repack_wheel(dist, root / "wheels")
    elif packages != "pypi":
        folder = Path(packages)
        wheels = sorted(folder.glob("*.whl"))
        if not wheels:
            raise ReleaseError(f"--packages {packages}: no wheels (*.whl) in that folder")
        if layout == "vendor":
            unpack_wheels(wheels, root / "site-packages")
        else:
            (root / "wheels").mkdir()
            for wheel in wheels:
                shutil.copyfile(wheel, root / "wheels" / wheel.name)
    try:
        version = metadata.version("koppel")
    except metadata.PackageNotFoundError:
        version = "unknown"
    (root / "RELEASE").write_text(
        f"release {stamp}\nkoppel {version}\npackages {packages}\n", encoding="utf-8"
    )
    for rel in release.secret_files:
        # Windows has no such modes; there only the server-side chmod (done by every target) counts.
        if os.name == "posix" and stat.S_IMODE((root / rel).stat().st_mode) != SECRET_MODE:
            raise ReleaseError(f"could not give {rel} mode 0600 in {root}")
    return release
