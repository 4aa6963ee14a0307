"""The release bundle built on this machine, and the pure parts of the deploy flow (names, pruning, redaction)."""

from __future__ import annotations

import stat
import zipfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from agent.config import load_config
from deploy.flow import Console, prune_list, sorted_releases, unique_stamp
from deploy.release import ReleaseError, build_release, is_release_name, new_stamp
from tests.deploy.conftest import FILE_SECRET, KEY_SECRET, ShopDatabase


def test_release_holds_the_agent_pinned_packages_and_a_private_agent_yml(
    agent_yml: Path, shop_db: ShopDatabase, tmp_path: Path
) -> None:
    release = build_release(agent_yml, tmp_path / "work", packages="local", layout="venv")
    root = release.root
    assert (root / "app" / "agent" / "cli.py").exists()
    assert not (root / "app" / "client").exists() and not list(root.rglob("__pycache__"))
    pins = (root / "requirements.txt").read_text().splitlines()
    assert f"Flask=={metadata.version('flask')}" in pins
    assert f"PyMySQL=={metadata.version('pymysql')}" in pins and not any(
        p.startswith("paramiko") for p in pins
    )

    for rel in ("agent.yml", "support.secret"):
        assert stat.S_IMODE((root / rel).stat().st_mode) == 0o600
    assert set(release.secrets) >= {KEY_SECRET, FILE_SECRET, shop_db.password}
    data = yaml.safe_load((root / "agent.yml").read_text())
    assert data["state_dir"] == "../../shared/agent-state"
    assert data["keys"][1]["secret_file"] == "./support.secret"

    # On the server, the file resolves like this: releases/<stamp>/agent.yml, state in <base>/shared.
    server = tmp_path / "server"
    (server / "releases").mkdir(parents=True)
    (root).rename(server / "releases" / release.stamp)
    cfg = load_config(server / "releases" / release.stamp / "agent.yml")
    assert cfg.state_dir == (server / "shared" / "agent-state").resolve()
    assert cfg.keys[1].secret == FILE_SECRET


def test_local_packages_become_wheels_with_their_original_tags(agent_yml: Path, tmp_path: Path) -> None:
    release = build_release(agent_yml, tmp_path, packages="local", layout="venv")
    wheels = {w.name.split("-")[0].lower(): w for w in (release.root / "wheels").glob("*.whl")}
    assert {"flask", "gunicorn", "pymysql", "pydantic", "pydantic_core", "pyyaml"} <= set(wheels)
    assert "-cp311-" in wheels["pydantic_core"].name  # a compiled package keeps its platform tag
    assert wheels["flask"].name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheels["flask"]) as whl:
        names = whl.namelist()
        record = whl.read(next(n for n in names if n.endswith(".dist-info/RECORD"))).decode()
    assert "flask/app.py" in names and not any("__pycache__" in n for n in names)
    assert "flask/app.py,sha256=" in record


def test_vendor_layout_unpacks_packages_for_passenger(agent_yml: Path, tmp_path: Path) -> None:
    release = build_release(agent_yml, tmp_path, packages="local", layout="vendor")
    site = release.root / "site-packages"
    assert (site / "flask" / "__init__.py").exists() and (site / "yaml" / "__init__.py").exists()
    assert not (release.root / "wheels").exists()


def test_pypi_release_ships_requirements_only(agent_yml: Path, tmp_path: Path) -> None:
    release = build_release(agent_yml, tmp_path, packages="pypi")
    assert not (release.root / "wheels").exists() and not (release.root / "site-packages").exists()
    assert "pypi" in (release.root / "RELEASE").read_text()


def test_bad_inputs_are_named(agent_yml: Path, tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="configuration file not found"):
        build_release(tmp_path / "missing.yml", tmp_path / "a")
    bad = tmp_path / "bad.yml"
    bad.write_text("keys: [unclosed\n")
    with pytest.raises(ReleaseError, match="not valid YAML"):
        build_release(bad, tmp_path / "b")
    # PyYAML's own message quotes the broken line; here that line is the key's secret.
    unclosed = tmp_path / "unclosed.yml"
    unclosed.write_text(agent_yml.read_text().replace(f"secret: {KEY_SECRET}", f'secret: "{KEY_SECRET}'))
    with pytest.raises(
        ReleaseError, match=r"not valid YAML: .* quoted scalar that starts on line \d+"
    ) as exc:
        build_release(unclosed, tmp_path / "b2")
    assert KEY_SECRET[-24:] not in str(exc.value)  # not even its random part
    outside = agent_yml.parent / "sub" / "outside.yml"
    outside.parent.mkdir()
    outside.write_text(agent_yml.read_text().replace("./support.secret", "../support.secret"))
    with pytest.raises(ReleaseError, match="must stay inside the folder of agent.yml"):
        build_release(outside, tmp_path / "c")
    with pytest.raises(ReleaseError, match="no wheels"):
        build_release(agent_yml, tmp_path / "d", packages=str(tmp_path / "empty-nothing-here"))


def test_release_names_sort_by_time_and_never_collide() -> None:
    stamp = new_stamp(datetime(2026, 12, 3, 19, 30, tzinfo=UTC))
    assert stamp == "20261203T193000Z" and is_release_name(stamp)
    assert unique_stamp(stamp, [stamp, f"{stamp}-2"]) == f"{stamp}-3"
    assert not is_release_name(".20261203T193000Z.partial") and not is_release_name("current")
    names = ["20261203T193000Z-10", "20261203T193000Z-2", "20261203T193000Z", "20261202T080000Z", "junk"]
    assert sorted_releases(names) == [
        "20261202T080000Z",
        "20261203T193000Z",
        "20261203T193000Z-2",
        "20261203T193000Z-10",
    ]


def test_prune_keeps_the_newest_and_the_rollback_target() -> None:
    names = [f"2026120{d}T000000Z" for d in range(1, 7)]
    assert prune_list(names, 3, names[-1], names[-2]) == names[:3]
    # After a rollback to the oldest, a new deploy keeps that one too (it was running).
    assert prune_list(names, 2, names[-1], names[0]) == names[1:4]


def test_console_never_prints_a_known_secret() -> None:
    lines: list[str] = []
    console = Console(lines.append)
    console.add_secrets([KEY_SECRET, "abc"])
    console.say(f"pip said: {KEY_SECRET} and abc")
    assert lines == ["pip said: [secret] and abc"]  # too-short values are left alone (agent.yml refuses them)
