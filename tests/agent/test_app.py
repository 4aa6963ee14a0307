"""The app's core: health, diagnostics, Magento detection, JSON errors, input helpers, the OpenAPI document."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pymysql
import pytest
from flask import Blueprint, Flask, jsonify
from openapi_spec_validator import validate

from agent.app import create_app
from agent.config import AgentConfig, config_from_dict
from agent.db import Magento, MagentoNotFound, connect, detect
from agent.openapi import document
from agent.web import bad_param, get_db, int_param, require_scope, str_param
from client.demo.magento_schema import create_schema
from tests.agent.conftest import SigningClient, config_dict, make_magento
from tests.mariadb import MariaDB

extra = Blueprint("extra", __name__)


@extra.get("/v1/test-boom")
def boom():  # noqa: ANN201
    raise RuntimeError("secret internals /etc/passwd")


@extra.get("/v1/test-params")
@require_scope("orders:read")
def params():  # noqa: ANN201
    limit = int_param("limit", default=100, minimum=1, maximum=50)
    store = str_param("store", max_length=10)
    if store == "admin":
        bad_param("store", "the admin store has no orders")
    return jsonify(limit=limit, store=store)


@extra.get("/v1/test-sql-error")
def sql_error():  # noqa: ANN201
    with get_db().cursor() as cur:
        cur.execute("SELECT no_such_column FROM no_such_table")


@extra.get("/v1/test-connection-lost")
def connection_lost():  # noqa: ANN201
    conn = get_db()
    with conn.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID() AS id")
        own = cur.fetchone()["id"]
    # Another session kills this one, as a database restart or a proxy timeout would.
    killer = pymysql.connect(**KILLER)
    try:
        with killer.cursor() as cur:
            cur.execute("KILL %s", (own,))
    finally:
        killer.close()
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    return jsonify(reached="too far")


KILLER: dict = {}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def insert_orders(mariadb: MariaDB, database: str, table: str, created: list[str]) -> None:
    with mariadb.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        for i, at in enumerate(created, start=1):
            cur.execute(
                f"INSERT INTO `{table}` (increment_id, created_at, updated_at) VALUES (%s, %s, %s)",
                (f"10000000{i}", at, at),
            )


def assert_json_error(response, status: int, code: str) -> dict:  # noqa: ANN001
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert b"Traceback" not in response.data and b"<html" not in response.data.lower()
    return body["error"]


# --- health and errors -----------------------------------------------------------------------------


def test_health_ok(app: Flask) -> None:
    r = app.test_client().get("/v1/health")
    assert (r.status_code, r.get_json()) == (200, {"status": "ok"})
    assert r.headers["Cache-Control"] == "no-store"


def test_health_unavailable_when_the_database_is_not_there(mariadb: MariaDB, tmp_path: Path) -> None:
    data = config_dict(
        mariadb, "irrelevant", tmp_path / "state", database={"port": closed_port(), "connect_timeout": 2}
    )
    r = create_app(config_from_dict(data, tmp_path)).test_client().get("/v1/health")
    assert (r.status_code, r.get_json()) == (503, {"status": "unavailable"})


def _signed_503(data: dict, tmp_path: Path) -> tuple[dict, object]:
    """(the error of a signed GET /v1/orders, the unsigned health answer) of an agent configured by ``data``."""
    app = create_app(config_from_dict(data, tmp_path))
    r = SigningClient(app.test_client()).get("/v1/orders")
    error = assert_json_error(r, 503, "database_unavailable")
    assert r.headers["Retry-After"] == "30"
    return error, app.test_client().get("/v1/health")


def test_a_wrong_database_password_is_named_to_signed_callers_only(
    mariadb: MariaDB, magento2: str, tmp_path: Path, restricted: tuple[str, str, str]
) -> None:
    user, password, _ = restricted
    wrong = password + "-wrong"
    data = config_dict(mariadb, magento2, tmp_path / "state", database={"user": user, "password": wrong})
    error, health = _signed_503(data, tmp_path)
    assert error["message"] == (
        f"the Magento database refused the login of user {user!r} (access denied); check database.user "
        "and database.password in agent.yml"
    )
    # Nothing a key holder has no business knowing: the password, the address, the server's own words.
    for secret in (wrong, mariadb.host, str(mariadb.port), "@", "1045", "try again"):
        assert secret not in error["message"], secret
    # Health is unauthenticated: it says no more than before.
    assert (health.status_code, health.get_json()) == (503, {"status": "unavailable"})


def test_an_unknown_database_name_is_named(mariadb: MariaDB, tmp_path: Path) -> None:
    data = config_dict(mariadb, "koppel_no_such_database", tmp_path / "state")
    error, health = _signed_503(data, tmp_path)
    assert error["message"] == (
        "the Magento database 'koppel_no_such_database' does not exist; check database.name in agent.yml"
    )
    assert health.get_json() == {"status": "unavailable"}


def test_a_user_without_grants_on_the_database_is_named(
    mariadb: MariaDB, magento2: str, tmp_path: Path, restricted: tuple[str, str, str]
) -> None:
    user, password, _ = restricted
    data = config_dict(mariadb, magento2, tmp_path / "state", database={"user": user, "password": password})
    error, _ = _signed_503(data, tmp_path)
    assert error["message"] == (
        f"user {user!r} may not use the Magento database {magento2!r}; grant it the agent's privileges on "
        "that database (README, MySQL privileges for the agent)"
    )


def test_an_unreachable_database_is_an_outage_to_wait_for(mariadb: MariaDB, tmp_path: Path) -> None:
    data = config_dict(
        mariadb, "m", tmp_path / "state", database={"port": closed_port(), "connect_timeout": 2}
    )
    error, _ = _signed_503(data, tmp_path)
    assert error["message"] == "the Magento database cannot be reached right now; try again later"


def test_unknown_path_and_method_are_json(app: Flask) -> None:
    assert_json_error(app.test_client().get("/v1/nothing-here"), 404, "not_found")
    assert_json_error(app.test_client().get("/"), 404, "not_found")
    r = app.test_client().delete("/v1/health")
    assert_json_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


def test_body_over_the_limit_is_413_json(app: Flask, agent_config: AgentConfig) -> None:
    big = b"x" * (agent_config.limits.max_body_bytes + 1)
    r = app.test_client().post("/v1/diagnostics", data=big, headers={"Content-Type": "application/json"})
    assert_json_error(r, 413, "body_too_large")


def test_unexpected_error_is_500_json_without_details(agent_config: AgentConfig) -> None:
    app = create_app(agent_config)
    app.register_blueprint(extra)
    error = assert_json_error(app.test_client().get("/v1/test-boom"), 500, "internal_error")
    assert "passwd" not in error["message"]
    error = assert_json_error(app.test_client().get("/v1/test-sql-error"), 500, "internal_error")
    assert "no_such" not in error["message"]


def test_connection_lost_during_a_request_is_503(agent_config: AgentConfig, mariadb: MariaDB) -> None:
    KILLER.update(host=mariadb.host, port=mariadb.port, user=mariadb.user, password=mariadb.password)
    app = create_app(agent_config)
    app.register_blueprint(extra)
    r = app.test_client().get("/v1/test-connection-lost")
    assert_json_error(r, 503, "database_unavailable")
    assert r.headers["Retry-After"] == "30"
    assert app.test_client().get("/v1/health").status_code == 200


def test_parameter_helpers_name_the_parameter(agent_config: AgentConfig) -> None:
    app = create_app(agent_config)
    app.register_blueprint(extra)
    client = SigningClient(app.test_client())
    assert client.get("/v1/test-params").get_json() == {"limit": 100, "store": None}
    assert client.get("/v1/test-params", [("limit", "7"), ("store", "nl")]).get_json() == {
        "limit": 7,
        "store": "nl",
    }
    for query, fragment in [
        ([("limit", "0")], "limit: must be between 1 and 50"),
        ([("limit", "51")], "limit: must be between 1 and 50"),
        ([("limit", "ten")], "limit: must be a whole number"),
        ([("limit", "1"), ("limit", "2")], "limit: given more than once"),
        ([("store", "x" * 11)], "store: longer than 10"),
        ([("store", "admin")], "store: the admin store has no orders"),
    ]:
        error = assert_json_error(client.get("/v1/test-params", query), 400, "bad_parameter")
        assert fragment in error["message"]


# --- detection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "prefix"), [(2, ""), (2, "mg_"), (1, ""), (1, "shop1_")])
def test_detects_version_prefix_and_stock_mode(
    mariadb: MariaDB, database: str, tmp_path: Path, version: int, prefix: str
) -> None:
    make_magento(mariadb, database, version, prefix)
    cfg = config_from_dict(
        config_dict(mariadb, database, tmp_path, magento={"table_prefix": prefix}), tmp_path
    )
    with connect(cfg) as conn:
        found = detect(conn, cfg)
    assert found == Magento(version, prefix, "msi" if version == 2 else "legacy", "default", "salable")
    assert found.table("sales_order") == f"`{prefix}sales_order`"


def test_detection_problems_are_explained(mariadb: MariaDB, database: str, tmp_path: Path) -> None:
    make_magento(mariadb, database, 2, "mg_")
    for magento, fragment in [
        ({"table_prefix": ""}, "check magento.table_prefix"),
        ({"table_prefix": "", "version": 2}, "check magento.table_prefix"),
        ({"table_prefix": "mg_", "version": 1}, "set magento.version to 2 \\(or auto\\)"),
    ]:
        cfg = config_from_dict(config_dict(mariadb, database, tmp_path, magento=magento), tmp_path)
        with connect(cfg) as conn, pytest.raises(MagentoNotFound, match=fragment):
            detect(conn, cfg)
    cfg = config_from_dict(
        config_dict(mariadb, database, tmp_path, magento={"table_prefix": "mg_", "stock": "legacy"}), tmp_path
    )
    with connect(cfg) as conn:
        assert detect(conn, cfg).stock_mode == "legacy"


def test_table_helper_refuses_anything_but_a_name() -> None:
    magento = Magento(2, "p_", "legacy", "default", "salable")
    for bad in ["sales_order`; DROP", "a b", "", "x.y"]:
        with pytest.raises(ValueError):
            magento.table(bad)
    with pytest.raises(ValueError):
        Magento(2, "p-", "legacy", "default", "salable")


def test_sessions_read_magento_2_in_utc(mariadb: MariaDB, magento2: str, tmp_path: Path) -> None:
    cfg = config_from_dict(config_dict(mariadb, magento2, tmp_path, magento={"version": 2}), tmp_path)
    with connect(cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@session.time_zone AS z, @@autocommit AS a")
        assert cur.fetchone() == {"z": "+00:00", "a": 0}


def test_magento_1_session_zone_is_configurable(mariadb: MariaDB, database: str, tmp_path: Path) -> None:
    make_magento(mariadb, database, 1)
    cfg = config_from_dict(
        config_dict(mariadb, database, tmp_path, magento={"version": 1, "session_time_zone": "+01:00"}),
        tmp_path,
    )
    with connect(cfg) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@session.time_zone AS z")
        assert cur.fetchone()["z"] == "+01:00"


# --- diagnostics ---------------------------------------------------------------------------------------


def test_diagnostics_reports_every_field(mariadb: MariaDB, database: str, tmp_path: Path) -> None:
    make_magento(mariadb, database, 2, "mg_")
    insert_orders(mariadb, database, "mg_sales_order", ["2026-11-30 10:00:00", "2026-12-02 23:59:58"])
    cfg = config_from_dict(
        config_dict(mariadb, database, tmp_path / "s", magento={"table_prefix": "mg_"}), tmp_path
    )
    r = SigningClient(create_app(cfg).test_client()).get("/v1/diagnostics")
    assert r.status_code == 200, r.data
    body = r.get_json()
    assert list(body) == ["agent_version", "magento", "database", "orders", "indexers", "warnings"]
    assert re.match(r"^\d+\.\d+", body["agent_version"])
    assert body["magento"] == {
        "version": 2,
        "table_prefix": "mg_",
        "stock_mode": "msi",
        "msi_source": "default",
        "price_includes_tax": False,  # never saved: Magento's default, prices excl. VAT
    }
    assert body["database"]["server_version"].startswith(("10.", "11."))
    assert body["database"]["session_time_zone"] == "+00:00"
    assert abs(body["database"]["clock_offset_seconds"]) < 5
    assert body["orders"] == {"count": 2, "latest_created_at": "2026-12-02T23:59:58Z"}
    assert body["indexers"]["inventory"] == "realtime/valid"
    assert any("Update on Save" in w for w in body["warnings"])


def test_diagnostics_on_magento_1_with_an_invalid_stock_index(
    mariadb: MariaDB, database: str, tmp_path: Path
) -> None:
    make_magento(mariadb, database, 1)
    with mariadb.connect(database) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO index_process (indexer_code, status, mode) VALUES ('cataloginventory_stock', "
            "'require_reindex', 'manual') ON DUPLICATE KEY UPDATE status = VALUES(status), mode = VALUES(mode)"
        )
    cfg = config_from_dict(
        config_dict(mariadb, database, tmp_path / "s", magento={"session_time_zone": "+00:00"}), tmp_path
    )
    body = SigningClient(create_app(cfg).test_client()).get("/v1/diagnostics").get_json()
    assert body["magento"]["version"] == 1 and body["magento"]["stock_mode"] == "legacy"
    assert body["orders"] == {"count": 0, "latest_created_at": None}
    assert body["indexers"]["cataloginventory_stock"] == "manual/require_reindex"
    assert any("needs a reindex" in w for w in body["warnings"])


def test_diagnostics_warns_about_a_missing_msi_source(
    mariadb: MariaDB, magento2: str, tmp_path: Path
) -> None:
    cfg = config_from_dict(
        config_dict(mariadb, magento2, tmp_path / "s", magento={"msi_source": "warehouse"}), tmp_path
    )
    body = SigningClient(create_app(cfg).test_client()).get("/v1/diagnostics").get_json()
    assert any("'warehouse'" in w and "does not exist" in w for w in body["warnings"])


def set_config(mariadb: MariaDB, database: str, rows: list[tuple[str, int, str]], prefix: str = "") -> None:
    with mariadb.connect(database) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {prefix}core_config_data (scope, scope_id, path, value) VALUES (%s, %s, %s, %s)",
            [
                (scope, scope_id, "tax/calculation/price_includes_tax", value)
                for scope, scope_id, value in rows
            ],
        )
        conn.commit()


@pytest.mark.parametrize("version", [1, 2])
def test_diagnostics_say_whether_prices_include_tax(
    mariadb: MariaDB, database: str, tmp_path: Path, version: int
) -> None:
    make_magento(mariadb, database, version, "mg_")
    cfg = config_from_dict(
        config_dict(mariadb, database, tmp_path / "s", magento={"table_prefix": "mg_"}), tmp_path
    )
    client = SigningClient(create_app(cfg).test_client())
    set_config(mariadb, database, [("default", 0, "1")], "mg_")
    body = client.get("/v1/diagnostics").get_json()
    assert body["magento"]["price_includes_tax"] is True
    assert not any("price_includes_tax" in w for w in body["warnings"])
    # One website entering prices excl. VAT: the default still answers, with a warning naming the exception.
    set_config(mariadb, database, [("websites", 2, "0")], "mg_")
    body = client.get("/v1/diagnostics").get_json()
    assert body["magento"]["price_includes_tax"] is True
    assert any("differs for websites 2" in w for w in body["warnings"]), body["warnings"]


def test_diagnostics_price_includes_tax_is_null_when_unreadable(
    mariadb: MariaDB, database: str, tmp_path: Path
) -> None:
    # Only the order tables (all a key without stock:write needs): no core_config_data to read.
    with mariadb.connect(database) as conn:
        create_schema(conn, 2, "", parts=("core",))
    cfg = config_from_dict(
        config_dict(mariadb, database, tmp_path / "s", magento={"version": 2, "stock": "legacy"}), tmp_path
    )
    r = SigningClient(create_app(cfg).test_client()).get("/v1/diagnostics")
    assert r.status_code == 200, r.data
    assert r.get_json()["magento"]["price_includes_tax"] is None


def test_diagnostics_without_magento_tables_is_a_503_that_explains(bare_config: AgentConfig) -> None:
    r = SigningClient(create_app(bare_config).test_client()).get("/v1/diagnostics")
    error = assert_json_error(r, 503, "magento_not_found")
    assert "sales_order" in error["message"] and r.headers["Retry-After"]


# --- OpenAPI ---------------------------------------------------------------------------------------


def _flask_paths(app: Flask) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<[^>]+>", "{}", rule.rule)
        out |= {(path, m.lower()) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    return out


def test_openapi_documents_exactly_the_routes(app: Flask, agent_config: AgentConfig) -> None:
    served = app.test_client().get("/v1/openapi.json")
    assert served.status_code == 200
    doc = served.get_json()
    # Parameter names may differ between the route and the document; the URL is the same.
    documented = {
        (re.sub(r"\{[^}]+\}", "{}", path), method) for path, ops in doc["paths"].items() for method in ops
    }
    routes = _flask_paths(app)
    # Every route is documented; documented feature endpoints not routed yet are the feed/stock placeholders.
    assert routes <= documented, routes - documented
    required = {
        ("/v1/health", "get"),
        ("/v1/diagnostics", "get"),
        ("/v1/openapi.json", "get"),
        ("/v1/orders", "get"),
        ("/v1/orders/{}", "get"),
        ("/v1/stock", "get"),
        ("/v1/stock", "post"),
        ("/v1/skus", "get"),
    }
    assert documented == required
    pending = documented - routes
    if pending:
        pytest.xfail(
            f"documented but not routed yet (feature blueprints still placeholders): {sorted(pending)}"
        )


def test_openapi_document_is_valid_3_1(agent_config: AgentConfig) -> None:
    doc = document(agent_config)
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    order = doc["components"]["schemas"]["Order"]
    assert {"id", "number", "store", "customer", "lines", "totals", "warnings"} <= set(order["required"])
    assert (
        doc["paths"]["/v1/orders"]["get"]["parameters"][2]["schema"]["maximum"]
        == agent_config.limits.max_page_size
    )


def test_diagnostics_answer_matches_the_documented_schema(app: Flask) -> None:
    from jsonschema import Draft202012Validator

    doc = app.test_client().get("/v1/openapi.json").get_json()
    schema = {"$ref": "#/components/schemas/Diagnostics", "components": doc["components"]}
    body = SigningClient(app.test_client()).get("/v1/diagnostics").get_json()
    Draft202012Validator(schema).validate(body)
