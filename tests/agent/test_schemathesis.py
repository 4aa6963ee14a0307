"""Property-based API test: schemathesis generates requests from /v1/openapi.json against a shop with data.

Each request is signed on its way in (a WSGI wrapper does what the koppel client does, over the exact path,
query and body the agent receives), so the generated inputs reach the endpoints behind authentication.
Every answer must be free of server errors and match the documented status codes, content type, headers
and schemas.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.experimental import OPEN_API_3_1

from agent import protocol
from agent.app import create_app
from agent.config import config_from_dict
from client.demo.shop import Shop
from tests.agent.conftest import KEY_ID, SECRET, config_dict
from tests.mariadb import MariaDB

OPEN_API_3_1.enable()

CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)


def signing_wrapper(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Sign each incoming request with the test key, as the client would have."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
        path = raw.split("?", 1)[0]
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        headers = protocol.signed_headers(KEY_ID, SECRET, environ["REQUEST_METHOD"], path, query, body)
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        return app(environ, start_response)

    return wsgi


def fill_shop(shop: Shop) -> None:
    """A few orders of different shapes, so the ORDER schema meets real documents."""
    shop.product("MUG", "Mok")
    shop.product("TEE-M", "T-shirt M")
    shop.product("TEE", "T-shirt", type_id="configurable", children=[shop.product_id("TEE-M")])
    customer = shop.customer("jan@example.nl", attributes={"klantcode": "1042"})
    shop.order([{"sku": "MUG", "qty": 2, "price": "7.50"}], customer)
    shop.order([{"sku": "MUG", "qty": 1, "price": "7.50"}], None, shipping=False)
    shop.order(
        [{"sku": "TEE", "qty": 1, "price": "20.00", "type": "configurable", "children": [{"sku": "TEE-M"}]}],
        customer,
        discount="-2.0000",
    )


@pytest.fixture(
    params=[(1, ""), (1, "mage_"), (2, ""), (2, "mage_")], ids=["m1", "m1-mage_", "m2", "m2-mage_"]
)
def api_schema(request: pytest.FixtureRequest, mariadb: MariaDB, database: str, tmp_path: Path) -> Any:
    version, prefix = request.param
    with mariadb.connect(database) as conn:
        fill_shop(Shop.install(conn, version, prefix, parts=("core", "stock")))
    cfg = config_from_dict(
        config_dict(mariadb, database, tmp_path / "state", magento={"table_prefix": prefix}), tmp_path
    )
    app = create_app(cfg)
    document = app.test_client().get("/v1/openapi.json").get_json()
    return schemathesis.from_dict(document, app=signing_wrapper(app))


schema = schemathesis.from_pytest_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_conforms_to_its_openapi_document(case: Any) -> None:
    response = case.call_wsgi()
    # Every request is correctly signed, so the generated input must reach the endpoint itself.
    assert response.status_code not in (401, 403), response.get_data(as_text=True)
    case.validate_response(response, checks=CHECKS)
