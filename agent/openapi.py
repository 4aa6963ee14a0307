"""The agent's OpenAPI 3.1 description, served at /v1/openapi.json.

Written from AGENT-API.md (the binding contract); a test compares its paths with the app's routes and
schemathesis checks live answers against it. Limits come from the running configuration.
"""

from __future__ import annotations

from typing import Any

from agent.config import AgentConfig

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    out["type"] = [schema["type"], "null"]
    return out


def _obj(props: dict[str, Any], *, additional: bool = False) -> dict[str, Any]:
    """An object whose every listed key is always present (AGENT-API: absent values are null, not missing)."""
    return {
        "type": "object",
        "required": list(props),
        "properties": props,
        "additionalProperties": additional,
    }


MONEY = _ref("Decimal")
MONEY_OR_NULL = _nullable(MONEY)
TEXT = {"type": "string"}
TEXT_OR_NULL = {"type": ["string", "null"]}
INT = {"type": "integer"}
INT_OR_NULL = {"type": ["integer", "null"]}
TIME = {"type": "string", "format": "date-time"}
TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}


def _schemas(cfg: AgentConfig) -> dict[str, Any]:
    address = _obj(
        {
            "firstname": TEXT_OR_NULL,
            "middlename": TEXT_OR_NULL,
            "lastname": TEXT_OR_NULL,
            "prefix": TEXT_OR_NULL,
            "suffix": TEXT_OR_NULL,
            "company": TEXT_OR_NULL,
            "street": {"type": "array", "items": TEXT},
            "postcode": TEXT_OR_NULL,
            "city": TEXT_OR_NULL,
            "region": TEXT_OR_NULL,
            "country": TEXT_OR_NULL,
            "telephone": TEXT_OR_NULL,
            "email": TEXT_OR_NULL,
            "vat_id": TEXT_OR_NULL,
        }
    )
    line = _obj(
        {
            "item_id": INT,
            "product_id": INT_OR_NULL,
            "sku": TEXT_OR_NULL,
            "order_sku": TEXT_OR_NULL,
            "name": TEXT_OR_NULL,
            "product_type": TEXT_OR_NULL,
            "qty": MONEY,
            "unit_price": MONEY_OR_NULL,
            "unit_price_incl_tax": MONEY_OR_NULL,
            "row_total": MONEY_OR_NULL,
            "row_total_incl_tax": MONEY_OR_NULL,
            "tax_percent": MONEY_OR_NULL,
            "tax_amount": MONEY_OR_NULL,
            "discount_amount": MONEY_OR_NULL,
            "options": {"type": "array", "items": _obj({"label": TEXT_OR_NULL, "value": TEXT_OR_NULL})},
            "children": {"type": "array", "items": _ref("Line")},
            "product_missing": {"type": "boolean"},
        }
    )
    # An addition of the feed beyond AGENT-API.md: where a bundle's money is (parent or children).
    line["properties"]["bundle_price_type"] = {"enum": ["fixed", "dynamic", None]}
    order = _obj(
        {
            "id": INT,
            "number": TEXT,
            "store": _obj({"id": INT, "code": TEXT_OR_NULL, "name": TEXT_OR_NULL, "website_id": INT_OR_NULL}),
            "created_at": TIME,
            "updated_at": TIME_OR_NULL,
            "state": TEXT_OR_NULL,
            "status": TEXT_OR_NULL,
            "currency": TEXT_OR_NULL,
            "base_currency": TEXT_OR_NULL,
            "customer": _obj(
                {
                    "id": INT_OR_NULL,
                    "is_guest": {"type": "boolean"},
                    "email": TEXT_OR_NULL,
                    "firstname": TEXT_OR_NULL,
                    "lastname": TEXT_OR_NULL,
                    "name": TEXT_OR_NULL,
                    "company": TEXT_OR_NULL,
                    "taxvat": TEXT_OR_NULL,
                    "group_id": INT,
                    "attributes": {"type": "object", "additionalProperties": TEXT},
                }
            ),
            "billing_address": _nullable(_ref("Address")),
            "shipping_address": _nullable(_ref("Address")),
            "lines": {"type": "array", "items": _ref("Line")},
            "shipping": _obj(
                {
                    "method": TEXT_OR_NULL,
                    "description": TEXT_OR_NULL,
                    "amount": MONEY_OR_NULL,
                    "amount_incl_tax": MONEY_OR_NULL,
                    "tax_amount": MONEY_OR_NULL,
                    "discount_amount": MONEY_OR_NULL,
                }
            ),
            "discount": _obj(
                {"amount": MONEY_OR_NULL, "description": TEXT_OR_NULL, "coupon_code": TEXT_OR_NULL}
            ),
            "payment": _obj(
                {
                    "method": TEXT_OR_NULL,
                    "title": TEXT_OR_NULL,
                    "fee": _nullable(_obj({"amount": MONEY_OR_NULL, "tax_amount": MONEY_OR_NULL})),
                }
            ),
            "totals": _obj(
                {
                    "subtotal": MONEY_OR_NULL,
                    "subtotal_incl_tax": MONEY_OR_NULL,
                    "tax_amount": MONEY_OR_NULL,
                    "grand_total": MONEY_OR_NULL,
                    "base_grand_total": MONEY_OR_NULL,
                    "unexplained_amount": MONEY,
                }
            ),
            "taxes": {
                "type": "array",
                "items": _obj(
                    {
                        "code": TEXT_OR_NULL,
                        "title": TEXT_OR_NULL,
                        "percent": MONEY_OR_NULL,
                        "amount": MONEY_OR_NULL,
                    }
                ),
            },
            "customer_note": TEXT_OR_NULL,
            "relation": _obj({"parent_id": INT_OR_NULL, "original_number": TEXT_OR_NULL}),
            "warnings": {"type": "array", "items": TEXT},
        }
    )
    stock_status = {"enum": ["updated", "unchanged", "unknown_sku", "not_managed", "invalid"]}
    return {
        "Decimal": {
            "type": "string",
            "pattern": DECIMAL_PATTERN,
            "description": "a decimal number as a string",
        },
        "Error": _obj(
            {
                "error": _obj(
                    {
                        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                        "message": {"type": "string", "minLength": 1},
                    }
                )
            }
        ),
        "Health": _obj({"status": {"enum": ["ok", "unavailable"]}}),
        "Diagnostics": _obj(
            {
                "agent_version": TEXT,
                "magento": _obj(
                    {
                        "version": {"enum": [1, 2]},
                        "table_prefix": TEXT,
                        "stock_mode": {"enum": ["legacy", "msi"]},
                        "msi_source": TEXT,
                        # tax/calculation/price_includes_tax (default scope); null when the agent cannot read it
                        "price_includes_tax": {"type": ["boolean", "null"]},
                    }
                ),
                "database": _obj(
                    {
                        "server_version": TEXT,
                        "session_time_zone": TEXT,
                        "clock_offset_seconds": {"type": "number"},
                    }
                ),
                "orders": _obj(
                    {"count": {"type": "integer", "minimum": 0}, "latest_created_at": TIME_OR_NULL}
                ),
                "indexers": {"type": "object", "additionalProperties": TEXT},
                "warnings": {"type": "array", "items": TEXT},
            }
        ),
        "Address": address,
        "Line": line,
        "Order": order,
        "OrderPage": _obj(
            {
                "orders": {"type": "array", "items": _ref("Order")},
                "next_cursor": TEXT,
                "has_more": {"type": "boolean"},
                "settled_until": TIME,
            }
        ),
        "StockRequest": {
            "type": "object",
            "required": ["request_id", "items"],
            "properties": {
                "request_id": {"type": "string", "minLength": 1, "maxLength": 128},
                "items": {
                    "type": "array",
                    "maxItems": cfg.limits.max_stock_items,
                    "items": {
                        "type": "object",
                        "required": ["sku", "qty"],
                        "properties": {"sku": TEXT, "qty": {"type": ["string", "number"]}},
                    },
                },
            },
        },
        "StockAnswer": _obj(
            {
                "request_id": TEXT,
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["sku", "status", "qty", "in_stock"],
                        "properties": {
                            "sku": {},
                            "status": stock_status,
                            "qty": MONEY_OR_NULL,
                            "in_stock": {"type": ["boolean", "null"]},
                            "message": TEXT_OR_NULL,
                        },
                    },
                },
                "counts": _obj({name: {"type": "integer", "minimum": 0} for name in stock_status["enum"]}),
            }
        ),
        "StockLevels": _obj(
            {
                "items": {
                    "type": "array",
                    "items": _obj(
                        {
                            "sku": TEXT,
                            "qty": MONEY_OR_NULL,
                            "in_stock": {"type": ["boolean", "null"]},
                            "salable_qty": MONEY_OR_NULL,
                            "managed": {"type": ["boolean", "null"]},
                        }
                    ),
                }
            }
        ),
        "SkuPage": _obj(
            {
                "skus": {
                    "type": "array",
                    "items": _obj(
                        {"sku": TEXT, "product_id": INT, "type": TEXT_OR_NULL, "managed": {"type": "boolean"}}
                    ),
                },
                "next_cursor": TEXT,
                "has_more": {"type": "boolean"},
            }
        ),
    }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


UNAVAILABLE = {
    "description": "the Magento database cannot be reached",
    "headers": {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}},
    "content": {"application/json": {"schema": _ref("Error")}},
}
SIGNED = [{"KoppelKey": [], "KoppelTimestamp": [], "KoppelNonce": [], "KoppelSignature": []}]


SETUP_CONFLICT = (
    "`magento_setup`: the shop's setup and agent.yml disagree (e.g. magento.msi_source names a source Magento "
    "does not have, or the MSI tables are not granted); nothing was written, the message says what to fix, "
    "asking again before that gives the same answer"
)


def _signed(summary: str, scope: str, ok: dict[str, Any], **extra: Any) -> dict[str, Any]:
    responses = {
        "200": ok,
        "400": _error("a parameter or the body is not acceptable; the message names it"),
        "401": _error("not signed, wrongly signed, stale or replayed"),
        "403": _error(f"the key lacks scope {scope}"),
        "500": _error(
            "the agent cannot serve this: `database_privileges` (a grant is missing; `koppel-agent check` "
            "names it) or `internal_error`"
        ),
        "503": UNAVAILABLE,
        "default": _error("any other error"),
    }
    responses.update(extra.pop("responses", {}))
    return {
        "summary": summary,
        "description": f"Scope `{scope}`.",
        "security": SIGNED,
        "responses": responses,
        **extra,
    }


def _query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
        **extra,
    }


def document(cfg: AgentConfig) -> dict[str, Any]:
    """The OpenAPI 3.1 document for an agent running with ``cfg``."""
    page = cfg.limits.max_page_size
    sku_page = max(page, cfg.limits.max_stock_items)
    header_scheme = {"type": "apiKey", "in": "header"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "koppel agent",
            "version": "1",
            "description": "Reads Magento orders and writes stock for koppel. Requests are signed with "
            "HMAC-SHA256 in the X-Koppel-* headers (see AGENT-API.md).",
        },
        "paths": {
            "/v1/health": {
                "get": {
                    "summary": "Is the agent up and the database reachable?",
                    "security": [],
                    "responses": {
                        "200": _ok("Health", "the database answers"),
                        "503": {
                            "description": "the database cannot be reached",
                            "content": {"application/json": {"schema": _ref("Health")}},
                        },
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
            "/v1/diagnostics": {
                "get": _signed(
                    "What the agent sees of Magento", "diagnostics:read", _ok("Diagnostics", "diagnostics")
                )
            },
            "/v1/orders": {
                "get": _signed(
                    "Settled orders after a cursor, oldest first",
                    "orders:read",
                    _ok("OrderPage", "one page of orders"),
                    parameters=[
                        _query(
                            "after",
                            {"type": "string"},
                            "cursor from a previous answer (not with created_from)",
                        ),
                        _query(
                            "created_from",
                            {"type": "string", "format": "date-time"},
                            "start at this creation time (ISO-8601 with offset or Z)",
                        ),
                        _query(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": page, "default": min(100, page)},
                            "page size",
                        ),
                        _query("store", {"type": "string"}, "only orders of this store code"),
                    ],
                )
            },
            "/v1/orders/{id}": {
                "get": _signed(
                    "One order by entity_id, settled or not",
                    "orders:read",
                    _ok("Order", "the order"),
                    parameters=[
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1},
                        }
                    ],
                    responses={"404": _error("no order with this id")},
                )
            },
            "/v1/stock": {
                "get": _signed(
                    "Current stock of the asked SKUs",
                    "stock:write",
                    _ok("StockLevels", "one entry per asked SKU, in the order asked"),
                    parameters=[
                        _query(
                            "sku",
                            {"type": "array", "items": {"type": "string"}, "minItems": 1},
                            "SKU (repeat for more)",
                            style="form",
                            explode=True,
                        )
                    ],
                    responses={"409": _error(SETUP_CONFLICT)},
                ),
                "post": _signed(
                    "Write stock quantities (idempotent per request_id)",
                    "stock:write",
                    _ok("StockAnswer", "per-item results"),
                    requestBody={
                        "required": True,
                        "content": {"application/json": {"schema": _ref("StockRequest")}},
                    },
                    responses={
                        "409": _error(
                            "`request_id_conflict`: this request_id was used with a different body; or "
                            + SETUP_CONFLICT
                        ),
                        "413": _error("the body is larger than limits.max_body_bytes"),
                        "422": _error("the items cannot be processed"),
                    },
                ),
            },
            "/v1/skus": {
                "get": _signed(
                    "All catalog SKUs, keyset-paginated",
                    "stock:write",
                    _ok("SkuPage", "one page of SKUs"),
                    parameters=[
                        _query("after", {"type": "string"}, "cursor from a previous answer"),
                        _query(
                            "limit",
                            {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": sku_page,
                                "default": min(1000, sku_page),
                            },
                            "page size",
                        ),
                    ],
                    responses={"409": _error(SETUP_CONFLICT)},
                )
            },
        },
        "components": {
            "schemas": _schemas(cfg),
            "securitySchemes": {
                "KoppelKey": {**header_scheme, "name": "X-Koppel-Key", "description": "key id"},
                "KoppelTimestamp": {
                    **header_scheme,
                    "name": "X-Koppel-Timestamp",
                    "description": "Unix seconds",
                },
                "KoppelNonce": {
                    **header_scheme,
                    "name": "X-Koppel-Nonce",
                    "description": "16-64 of [A-Za-z0-9_-]",
                },
                "KoppelSignature": {
                    **header_scheme,
                    "name": "X-Koppel-Signature",
                    "description": "hex HMAC-SHA256 of METHOD, PATH, CANONICAL_QUERY, TIMESTAMP, NONCE, sha256(BODY)",
                },
            },
        },
    }
