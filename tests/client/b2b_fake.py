"""A fake SnelStart B2B API v2 for tests: Flask on loopback, backed by a local administration (LocalBackend).

Every request and every response is validated with openapi-core against SnelStart's OpenAPI file
(``reference/snelstart-b2b-api-v2.openapi.yaml``) when it is present, else against koppel's committed subset of
it (``snelstart-b2b-subset.openapi.yaml``, see ``b2b_subset.py``); anything that does not validate is recorded in
``violations`` (and a bad request is answered 400), so a test that ends with violations fails. The token endpoint (not in the OpenAPI file) is checked by hand.

Faults can be injected: 429 (with Retry-After), 5xx, a timeout before the request is processed, a timeout
after it was processed (the outcome-unknown case), and tokens that die before their time.

The fake translates between the B2B model (uuids, land {id}, camelCase JSON) and the local backend's
dataclasses with its own code, independent of the b2b backend's mapping, so a mapping error on either side
shows up as a difference or a refusal.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from flask import Flask, Response, request
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.templating.responses.exceptions import ResponseNotFound
from werkzeug.serving import make_server

from client.snelstart.b2b_http import decode_json, encode_json
from client.snelstart.base import (
    Adres,
    Artikel,
    EmailVersturen,
    NieuwArtikel,
    NieuweRelatie,
    NieuweVerkooporder,
    OrderRegel,
    Relatie,
    SnelStartRefusal,
)
from client.snelstart.local import LocalBackend
from tests.client.b2b_subset import SUBSET_PATH

OPENAPI_ENV = "KOPPEL_SNELSTART_OPENAPI"


def full_openapi_path() -> Path:
    """Where SnelStart's full OpenAPI file is looked for: $KOPPEL_SNELSTART_OPENAPI, else ../shared/reference.

    The file is not part of the repository (it is SnelStart's, kept in the project's shared reference folder)."""
    configured = os.environ.get(OPENAPI_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "reference" / "snelstart-b2b-api-v2.openapi.yaml"


def openapi_path() -> Path:
    """The description the fake validates against: the full file when present, else koppel's committed subset
    (``snelstart-b2b-subset.openapi.yaml``, checked against the full file by test_b2b_subset.py)."""
    full = full_openapi_path()
    return full if full.is_file() else SUBSET_PATH


SPEC_PATH = openapi_path()
_SPEC_CACHE: dict[Path, tuple[OpenAPI, dict[str, Any]]] = {}
_spec_lock = threading.Lock()

_ANY_VALUE_SCHEMAS = (
    "SnelStart.Business.Interfaces.CustomFields.CustomFieldDto",
    "SnelStart.B2B.Api.V2.Models.CustomFields.UpdatedCustomFieldModel",
    "SnelStart.B2B.Api.V2.Models.CustomFields.CustomFieldModel",
)
KIND = {"relatie": 1, "artikel": 2, "order": 3, "omzetgroep": 4, "sjabloon": 5}
LAND_NS = uuid.UUID("6f1d3f8e-6a44-4f57-9a2b-3c1b0c6d4e21")


def load_openapi(path: Path | None = None) -> tuple[OpenAPI, dict[str, Any]]:
    """The description at ``path`` (default ``SPEC_PATH``: full file or subset) and its parsed dict, loaded as the
    reference README says: no spec validation, $top default lowered to 25 on /artikelen. Cached per path."""
    path = path or SPEC_PATH
    with _spec_lock:
        if path not in _SPEC_CACHE:
            spec = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
            for api_path in ("/artikelen", "/artikelen/prijsafspraken"):
                if api_path not in spec["paths"]:  # the subset has only what koppel uses
                    continue
                for param in spec["paths"][api_path]["get"]["parameters"]:
                    if param["name"] == "$top":
                        param["schema"]["default"] = 25
            spec["servers"] = [{"url": "/v2"}]
            # A custom field's value is a .NET ``object`` (any JSON value: text, number, date), which the file
            # renders as ``type: object``; taken literally no text field could ever be set. Same kind of
            # generator slip as the $top default above, so the in-memory copy accepts any value there.
            for name in _ANY_VALUE_SCHEMAS:
                spec["components"]["schemas"][name]["properties"]["value"].pop("type", None)
            _SPEC_CACHE[path] = (OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None)), spec)
        return _SPEC_CACHE[path]


# -- ids ------------------------------------------------------------------------------------------------------------


def to_uuid(kind: str, local_id: str | int) -> str:
    return f"{KIND[kind]:08x}-0000-4000-8000-{int(local_id):012x}"


def from_uuid(kind: str, value: str | None) -> str:
    try:
        parsed = uuid.UUID(str(value))
    except ValueError:
        raise BadRequest("ALG-0103", f"{value!r} is not a valid id") from None
    text = str(parsed)
    if int(text[:8], 16) != KIND[kind]:
        raise BadRequest("ALG-0103", f"{value} is not a {kind} id")
    return str(int(text[-12:], 16))


def land_uuid(code: str) -> str:
    return str(uuid.uuid5(LAND_NS, code))


class BadRequest(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# -- OData $filter subset --------------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<typed>(?:guid|datetime|datetimeoffset)'[^']*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_/]*)|(?P<punct>[():]))"
)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise BadRequest("ALG-0104", f"invalid OData filter near {text[pos:pos + 20]!r}")
        out.append(m.group().strip())
        pos = m.end()
    return out


def _literal(tok: str) -> Any:
    if tok.startswith("'"):
        return tok[1:-1].replace("''", "'")
    if tok.startswith(("datetime'", "datetimeoffset'")):
        raw = tok.split("'", 1)[1][:-1]
        parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if tok.startswith("guid'"):
        return tok[5:-1].lower()
    if tok in ("true", "false"):
        return tok == "true"
    if tok == "null":
        return None
    if re.fullmatch(r"-?\d+(\.\d+)?", tok):
        return Decimal(tok)
    raise BadRequest("ALG-0104", f"invalid OData literal {tok!r}")


@dataclass
class Cond:
    path: list[str]  # JSON keys
    op: str
    value: Any
    any_of: str | None = None  # collection key for x/any(...)
    inner: list[Cond] = field(default_factory=list)


def _json_path(prop: str, schema: dict[str, Any], schemas: dict[str, Any]) -> list[str]:
    """``Relatie/Id`` → ["relatie", "id"]; every segment must be an UpperCamelCase property of the model."""
    keys = []
    current = schema
    for seg in prop.split("/"):
        if not seg[:1].isupper():
            raise BadRequest("ALG-0104", f"Could not find a property named '{seg}'")
        key = seg[0].lower() + seg[1:]
        props = current.get("properties", {})
        if key not in props:
            raise BadRequest("ALG-0104", f"Could not find a property named '{seg}' on this resource")
        keys.append(key)
        sub = props[key]
        if "items" in sub:
            sub = sub["items"]
        if "$ref" in sub:
            sub = schemas[sub["$ref"].rsplit("/", 1)[1]]
        current = sub
    return keys


def parse_filter(text: str, schema: dict[str, Any], schemas: dict[str, Any]) -> list[Cond]:
    toks = _tokens(text)
    conds: list[Cond] = []
    i = 0

    def expect(value: str) -> None:
        nonlocal i
        if i >= len(toks) or toks[i] != value:
            raise BadRequest("ALG-0104", f"invalid OData filter: expected {value!r}")
        i += 1

    while i < len(toks):
        prop = toks[i]
        i += 1
        if prop.endswith("/any"):
            coll_keys = _json_path(prop[:-4], schema, schemas)
            sub = schema["properties"][coll_keys[0]]["items"]
            item_schema = schemas[sub["$ref"].rsplit("/", 1)[1]] if "$ref" in sub else sub
            expect("(")
            var = toks[i]
            i += 1
            expect(":")
            inner = []
            while True:
                left = toks[i]
                i += 1
                if not left.startswith(var + "/"):
                    raise BadRequest("ALG-0104", f"invalid any() clause near {left!r}")
                op, lit = toks[i], toks[i + 1]
                i += 2
                inner.append(Cond(_json_path(left[len(var) + 1 :], item_schema, schemas), op, _literal(lit)))
                if toks[i] == "and":
                    i += 1
                    continue
                break
            expect(")")
            conds.append(Cond(coll_keys, "any", None, any_of=coll_keys[0], inner=inner))
        else:
            if i + 1 >= len(toks) or toks[i] not in _OPS:
                raise BadRequest("ALG-0104", f"invalid OData filter after {prop!r}")
            conds.append(Cond(_json_path(prop, schema, schemas), toks[i], _literal(toks[i + 1])))
            i += 2
        if i < len(toks):
            expect("and")
    return conds


def _compare(actual: Any, op: str, wanted: Any) -> bool:
    if isinstance(wanted, dt.datetime) and isinstance(actual, str):
        actual = dt.datetime.fromisoformat(actual.replace("Z", "+00:00"))
    if isinstance(wanted, Decimal) and actual is not None:
        actual = Decimal(str(actual))
    if isinstance(actual, str) and isinstance(wanted, str) and re.fullmatch(r"[0-9a-f-]{36}", wanted):
        actual = actual.lower()
    if op == "eq":
        return actual == wanted
    if op == "ne":
        return actual != wanted
    if actual is None or wanted is None:
        return False
    return {"gt": actual > wanted, "ge": actual >= wanted, "lt": actual < wanted, "le": actual <= wanted}[op]


def matches(row: dict[str, Any], conds: list[Cond]) -> bool:
    for c in conds:
        if c.op == "any":
            items = row.get(c.any_of or "") or []
            if not any(matches(item, c.inner) for item in items):
                return False
            continue
        value: Any = row
        for key in c.path:
            value = value.get(key) if isinstance(value, dict) else None
        if not _compare(value, c.op, c.value):
            return False
    return True


# -- the fake ---------------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    method: str
    path_prefix: str
    kind: str  # "429" | "500" | "502" | "503" | "timeout_before" | "timeout_after" | "slow" | "change"
    times: int = 1
    retry_after: str | None = "0"
    after: int = 0  # matching requests to let through before the fault starts
    change: Callable[[LocalBackend], None] | None = None  # kind "change": run on the administration first


class FakeSnelStart:
    """Start with ``start()``; ``api_url`` and ``auth_url`` go into the backend."""

    def __init__(
        self,
        local_path: Path | str,
        *,
        client_key: str = "fake-client-key-0123456789",
        subscription_key: str = "fake-subscription-key-abcdef",
        token_lifetime: int = 3600,
        administration_id: str = "11111111-2222-4333-8444-555555555555",
        timeout_sleep: float = 1.5,
        slow_sleep: float = 0.2,
        spec_path: Path | None = None,
    ) -> None:
        self.local = LocalBackend(local_path)
        self.local_path = Path(local_path)
        self.client_key = client_key
        self.subscription_key = subscription_key
        self.token_lifetime = token_lifetime
        self.administration_id = administration_id
        self.timeout_sleep = timeout_sleep
        self.slow_sleep = slow_sleep
        self.spec_path = spec_path or SPEC_PATH
        self.api, self.spec = load_openapi(self.spec_path)
        self.schemas = self.spec["components"]["schemas"]
        self.violations: list[str] = []
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.calls_by_path: Counter[str] = Counter()
        self.token_requests = 0
        self.faults: list[Fault] = []
        # The order a list is served in, by its name ("relaties", …): a sort key on the answer's rows. SnelStart
        # documents no order and offers no $orderby; unset, a list comes in the order of the rows' ids, where a
        # new row lands last. A key by name lets a row created during a read land before the read position.
        self.list_order: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.max_in_flight = 0
        self._in_flight = 0
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.local_path, check_same_thread=False, isolation_level=None, timeout=30)
        self.app = self._build_app()
        self._server = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle --------------------------------------------------------------------------------------------
    def start(self) -> FakeSnelStart:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.local.close()
        self._db.close()

    @property
    def api_url(self) -> str:
        return self.base_url + "/v2"

    @property
    def auth_url(self) -> str:
        return self.base_url + "/b2b/token"

    # -- test controls ----------------------------------------------------------------------------------------
    def inject(
        self,
        method: str,
        path_prefix: str,
        kind: str,
        times: int = 1,
        retry_after: str | None = "0",
        after: int = 0,
    ) -> None:
        with self._lock:
            self.faults.append(Fault(method.upper(), path_prefix, kind, times, retry_after, after))

    def change_before(
        self,
        method: str,
        path_prefix: str,
        change: Callable[[LocalBackend], None],
        *,
        after: int = 0,
        times: int = 1,
    ) -> None:
        """Someone works in SnelStart while koppel reads: ``change(local administration)`` runs just before the
        matching request is served, after ``after`` matching requests went through (e.g. between two pages)."""
        with self._lock:
            self.faults.append(
                Fault(method.upper(), path_prefix, "change", times, after=after, change=change)
            )

    def expire_tokens(self) -> None:
        """SnelStart drops tokens before their time: every issued token stops working now."""
        with self._lock:
            self._tokens.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.times > 0 and f.method == method and path.startswith(f.path_prefix):
                    if f.after > 0:
                        f.after -= 1
                        continue
                    f.times -= 1
                    return f
        return None

    # -- app --------------------------------------------------------------------------------------------------
    def _build_app(self) -> Flask:
        app = Flask("fake_snelstart")
        app.add_url_rule("/b2b/token", "token", self._token, methods=["POST"])
        app.add_url_rule("/v2/<path:rest>", "api", self._api, methods=["GET", "POST", "PUT", "DELETE"])
        return app

    def _token(self) -> Response:
        with self._lock:
            self.token_requests += 1
        problems = []
        if request.mimetype != "application/x-www-form-urlencoded":
            problems.append(f"token request content type {request.mimetype!r}, not form encoded")
        if request.args:
            problems.append("token request carries query parameters (credentials belong in the body)")
        if request.form.get("grant_type") != "clientkey":
            problems.append(f"grant_type {request.form.get('grant_type')!r}, expected 'clientkey'")
        if problems:
            self.violations.extend(problems)
            return self._json({"error": "invalid_request"}, 400)
        if request.form.get("clientkey") != self.client_key:
            return self._json({"error": "invalid_grant"}, 400)
        fault = self._take_fault("POST", "/b2b/token")
        if fault is not None and fault.kind in ("500", "503"):
            return self._json({"error": "unavailable"}, int(fault.kind))
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = time.monotonic() + self.token_lifetime
        return self._json(
            {"access_token": token, "token_type": "bearer", "expires_in": self.token_lifetime}, 200
        )

    @staticmethod
    def _json(body: Any, status: int) -> Response:
        return Response(
            encode_json(body) if body is not None else b"", status=status, mimetype="application/json"
        )

    def _api(self, rest: str) -> Response:
        path = "/" + rest
        with self._lock:
            self.calls.append((request.method, path, dict(request.args)))
            self.calls_by_path[rest.split("/")[0]] += 1
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return self._api_inner(path)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _api_inner(self, path: str) -> Response:
        if request.headers.get("Ocp-Apim-Subscription-Key") != self.subscription_key:
            if "Ocp-Apim-Subscription-Key" not in request.headers:
                self.violations.append(f"{request.method} {path} without Ocp-Apim-Subscription-Key")
            return self._json(
                {"statusCode": 401, "message": "Access denied due to invalid subscription key."}, 401
            )
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            self.violations.append(f"{request.method} {path} without Authorization: Bearer")
            return self._json({"message": "Authorization has been denied for this request."}, 401)
        with self._lock:
            expiry = self._tokens.get(auth[7:])
        if expiry is None or expiry < time.monotonic():
            return self._json({"message": "Authorization has been denied for this request."}, 401)
        oa_request = WerkzeugOpenAPIRequest(request)
        try:
            self.api.validate_request(oa_request)
        except Exception as exc:  # noqa: BLE001 - every validation failure is a violation
            detail = f"{exc}; {exc.__cause__}" if exc.__cause__ else str(exc)
            self.violations.append(f"request {request.method} {path} does not validate: {detail}")
            return self._json([{"errorCode": "ALG-0000", "message": f"fake: request invalid: {detail}"}], 400)
        fault = self._take_fault(request.method, path)
        if fault is not None and fault.kind == "429":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            resp = self._json({"statusCode": 429, "message": "Rate limit is exceeded."}, 429)
            resp.headers.extend(headers)
            return resp
        if fault is not None and fault.kind in ("500", "502", "503"):
            return self._json({"message": "An error has occurred."}, int(fault.kind))
        if fault is not None and fault.kind == "slow":
            time.sleep(self.slow_sleep)
            fault = None
        if fault is not None and fault.kind == "change":
            assert fault.change is not None
            fault.change(self.local)
            fault = None
        if fault is not None and fault.kind == "timeout_before":
            time.sleep(self.timeout_sleep)
            return self._json({"message": "too late"}, 504)
        try:
            status, body = self._dispatch(request.method, path)
        except BadRequest as exc:
            status, body = exc.status, [{"errorCode": exc.code, "message": exc.message}]
        except SnelStartRefusal as exc:
            found = re.search(r"\(((?:REL|ART|VOR|ALG)-\d{4})\)", str(exc))
            status, body = 400, [{"errorCode": found.group(1) if found else "ALG-0000", "message": str(exc)}]
        if fault is not None and fault.kind == "timeout_after":
            time.sleep(self.timeout_sleep)  # the work is done; the client gives up before hearing of it
        resp = self._json(body, status)
        try:
            self.api.validate_response(oa_request, WerkzeugOpenAPIResponse(resp))
        except ResponseNotFound:
            # SnelStart answers errors the file does not declare (a 400 on a list, 401, 429, 5xx); an error
            # status the file does declare is validated like any other answer.
            if status < 400:
                self.violations.append(
                    f"response to {request.method} {path}: status {status} is not declared"
                )
        except Exception as exc:  # noqa: BLE001
            detail = f"{exc}; {exc.__cause__}" if exc.__cause__ else str(exc)
            self.violations.append(f"response to {request.method} {path} does not validate: {detail}")
        return resp

    # -- dispatch ---------------------------------------------------------------------------------------------
    def _body(self) -> Any:
        return decode_json(request.get_data() or b"null")

    def _dispatch(self, method: str, path: str) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        head = parts[0]
        if method == "GET" and len(parts) == 1:
            lists = {
                "relaties": (self._all_relaties, "SnelStart.B2B.Api.V2.Models.Relaties.RelatieModel"),
                "artikelen": (self._all_artikelen, "SnelStart.B2B.Api.V2.Models.Artikelen.ArtikelQueryModel"),
                "verkooporders": (
                    self._all_orders,
                    "SnelStart.B2B.Api.V2.Models.Verkooporders.VerkoopOrderModel",
                ),
                "prijsafspraken": (
                    self._prijsafspraken,
                    "SnelStart.B2B.Api.V2.Models.Prijsafspraken.PrijsafspraakModel",
                ),
            }
            if head in lists:
                load, schema = lists[head]
                return 200, self._odata(load, self.schemas[schema], self.list_order.get(head))
            simple = {
                "landen": self._landen,
                "companyInfo": self._company_info,
                "artikelomzetgroepen": self._omzetgroepen,
                "verkoopordersjablonen": self._sjablonen,
                "btwtarieven": self._btwtarieven,
            }
            if head in simple:
                return 200, simple[head]()
        if method == "GET" and len(parts) == 2:
            if head == "relaties":
                found = self.local.get_relatie(from_uuid("relatie", parts[1]))
                return (200, self._relatie_json(found)) if found else self._not_found("relatie")
            if head == "artikelen":
                found_a = self.local.get_artikel(from_uuid("artikel", parts[1]))
                return (200, self._artikel_json(found_a)) if found_a else self._not_found("artikel")
            if head == "verkooporders":
                found_o = self.local.get_verkooporder(from_uuid("order", parts[1]))
                return (200, self._order_json(found_o)) if found_o else self._not_found("verkooporder")
        if method == "POST" and path == "/relaties":
            return 201, self._relatie_json(self.local.create_relatie(self._nieuwe_relatie(self._body())))
        if method == "PUT" and head == "relaties" and len(parts) == 2:
            return 200, self._put_relatie(parts[1], self._body())
        if method == "PUT" and head == "relaties" and parts[2:] == ["customFields"]:
            return 200, self._put_relatie_fields(parts[1], self._body())
        if method == "POST" and path == "/artikelen":
            return 201, self._artikel_json(
                self.local.create_artikel(self._nieuw_artikel(self._body())), query=False
            )
        if method == "PUT" and head == "artikelen" and len(parts) == 2:
            return 200, self._put_artikel(parts[1], self._body())
        if method == "PUT" and head == "artikelen" and parts[2:] == ["customFields"]:
            return 200, self._put_artikel_fields(parts[1], self._body())
        if method == "POST" and path == "/verkooporders":
            return 201, self._order_json(self.local.create_verkooporder(self._nieuwe_order(self._body())))
        raise BadRequest("ALG-0000", f"the fake does not serve {method} {path}", status=404)

    @staticmethod
    def _not_found(kind: str) -> tuple[int, Any]:
        return 404, [{"errorCode": "ALG-0000", "message": f"{kind} not found"}]

    def _odata(
        self, load: Any, schema: dict[str, Any], order: Callable[[dict[str, Any]], Any] | None = None
    ) -> list[Any]:
        conds = (
            parse_filter(request.args["$filter"], schema, self.schemas) if "$filter" in request.args else []
        )
        rows = [r for r in load(conds) if matches(r, conds)]
        if order is not None:
            rows.sort(key=order)
        skip = int(request.args.get("$skip", 0))
        top = int(request.args.get("$top", 500))
        return rows[skip : skip + top]

    def _ids(self, sql: str, params: tuple[Any, ...] = ()) -> list[str]:
        return [str(r[0]) for r in self._db.execute(sql, params)]

    @staticmethod
    def _wanted(conds: list[Cond], path: list[str], op: str = "eq") -> Any:
        for c in conds:
            if c.path == path and c.op == op:
                return c.value
        return None

    # -- relaties ---------------------------------------------------------------------------------------------
    def _all_relaties(self, conds: list[Cond]) -> list[dict[str, Any]]:
        since = self._wanted(conds, ["modifiedOn"], "gt")
        if since is not None:
            ids = self._ids("SELECT id FROM relaties WHERE modified_on > ? ORDER BY id", (since.isoformat(),))
        else:
            ids = self._ids("SELECT id FROM relaties ORDER BY id")
        return [self._relatie_json(r) for i in ids if (r := self.local.get_relatie(i)) is not None]

    def _adres_json(self, a: Adres | None) -> dict[str, Any] | None:
        if a is None:
            return None
        out = {k: getattr(a, k) for k in ("contactpersoon", "straat", "postcode", "plaats") if getattr(a, k)}
        if a.land:
            out["land"] = {"id": land_uuid(a.land), "uri": f"/landen/{land_uuid(a.land)}"}
        return out

    @staticmethod
    def _mail_json(e: EmailVersturen) -> dict[str, Any]:
        out: dict[str, Any] = {"shouldSend": bool(e.email)}
        if e.email:
            out["email"] = e.email
        if e.cc:
            out["ccEmail"] = e.cc
        return out

    def _relatie_json(self, r: Relatie) -> dict[str, Any]:
        rid = to_uuid("relatie", r.id)
        out: dict[str, Any] = {
            "id": rid,
            "uri": f"/relaties/{rid}",
            "relatiesoort": list(r.relatiesoort),
            "relatiecode": r.relatiecode,
            "naam": r.naam,
            "vestigingsAdres": self._adres_json(r.vestigingsadres),
            "nonactief": r.nonactief,
            "factuurEmailVersturen": self._mail_json(r.factuur_email),
            "offerteEmailVersturen": self._mail_json(r.offerte_email),
            "bevestigingsEmailVersturen": self._mail_json(r.bevestiging_email),
            "aanmaningEmailVersturen": self._mail_json(r.aanmaning_email),
            "extraVeldenKlant": [{"naam": n, "waarde": w} for n, w in r.extra_velden.items()],
        }
        if r.modified_on:
            out["modifiedOn"] = r.modified_on.isoformat()
        if r.correspondentieadres is not None:
            out["correspondentieAdres"] = self._adres_json(r.correspondentieadres)
        for key, value in (
            ("telefoon", r.telefoon),
            ("mobieleTelefoon", r.mobiele_telefoon),
            ("email", r.email),
            ("btwNummer", r.btw_nummer),
            ("kvkNummer", r.kvk_nummer),
            ("krediettermijn", r.krediettermijn),
        ):
            if value is not None:
                out[key] = value
        return out

    def _adres_in(self, data: dict[str, Any] | None, what: str) -> Adres | None:
        if not data:
            return None
        land = None
        if data.get("land"):
            codes = {land_uuid(code): code for code, _ in self.local.landen()}
            land = codes.get(str(data["land"].get("id")))
            if land is None:
                raise BadRequest("REL-0056", f"{what}: LandId {data['land'].get('id')} not found")
        return Adres(
            data.get("contactpersoon"), data.get("straat"), data.get("postcode"), data.get("plaats"), land
        )

    @staticmethod
    def _mail_in(data: dict[str, Any] | None) -> EmailVersturen:
        data = data or {}
        return EmailVersturen(email=data.get("email"), cc=data.get("ccEmail"))

    def _nieuwe_relatie(self, d: dict[str, Any]) -> NieuweRelatie:
        if d.get("id"):
            raise BadRequest("ALG-0100", "ID must be empty for a new relatie")
        return NieuweRelatie(
            naam=d.get("naam") or "",
            vestigingsadres=self._adres_in(d.get("vestigingsAdres"), "vestigingsAdres") or Adres(),
            correspondentieadres=self._adres_in(d.get("correspondentieAdres"), "correspondentieAdres"),
            telefoon=d.get("telefoon"),
            email=d.get("email"),
            factuur_email=self._mail_in(d.get("factuurEmailVersturen")),
            btw_nummer=d.get("btwNummer"),
            kvk_nummer=d.get("kvkNummer"),
            krediettermijn=d.get("krediettermijn"),
            relatiecode=d.get("relatiecode"),
        )

    def _put_relatie(self, rid: str, d: dict[str, Any]) -> dict[str, Any]:
        local_id = from_uuid("relatie", rid)
        if d.get("id") and d["id"] != rid:
            raise BadRequest("ALG-0101", "the id in the URL differs from the id in the body")
        old = self.local.get_relatie(local_id)
        if old is None:
            raise BadRequest("ALG-0000", "relatie not found", status=404)
        new = Relatie(
            id=local_id,
            relatiecode=d.get("relatiecode", old.relatiecode),
            naam=d.get("naam") or "",
            vestigingsadres=self._adres_in(d.get("vestigingsAdres"), "vestigingsAdres") or Adres(),
            correspondentieadres=self._adres_in(d.get("correspondentieAdres"), "correspondentieAdres"),
            telefoon=d.get("telefoon"),
            mobiele_telefoon=d.get("mobieleTelefoon"),
            email=d.get("email"),
            factuur_email=self._mail_in(d.get("factuurEmailVersturen")),
            offerte_email=self._mail_in(d.get("offerteEmailVersturen")),
            bevestiging_email=self._mail_in(d.get("bevestigingsEmailVersturen")),
            aanmaning_email=self._mail_in(d.get("aanmaningEmailVersturen")),
            btw_nummer=d.get("btwNummer"),
            kvk_nummer=d.get("kvkNummer"),
            krediettermijn=d.get("krediettermijn"),
            relatiesoort=tuple(d.get("relatiesoort") or old.relatiesoort),
            extra_velden=old.extra_velden,  # read-only here, changed through customFields
            nonactief=bool(d.get("nonactief", old.nonactief)),
        )
        out = self._relatie_json(self.local.update_relatie(new))
        out.pop("extraVeldenKlant", None)
        return out

    def _put_relatie_fields(self, rid: str, d: dict[str, Any]) -> dict[str, Any]:
        old = self.local.get_relatie(from_uuid("relatie", rid))
        if old is None:
            raise BadRequest("ALG-0000", "relatie not found", status=404)
        for item in d.get("klantCustomFields") or []:
            old.extra_velden[item["name"]] = str(item["value"])
        self.local.update_relatie(old)
        return {"klantCustomFields": [self._custom_field(n, w) for n, w in old.extra_velden.items()]}

    @staticmethod
    def _custom_field(name: str, value: str) -> dict[str, Any]:
        return {"definition": {"name": name, "type": "Text"}, "value": value}

    # -- artikelen --------------------------------------------------------------------------------------------
    def _all_artikelen(self, conds: list[Cond]) -> list[dict[str, Any]]:
        since = self._wanted(conds, ["modifiedOn"], "gt")
        if since is not None:
            ids = self._ids(
                "SELECT id FROM artikelen WHERE modified_on > ? ORDER BY id", (since.isoformat(),)
            )
        else:
            ids = self._ids("SELECT id FROM artikelen ORDER BY id")
        return [self._artikel_json(a) for i in ids if (a := self.local.get_artikel(i)) is not None]

    def _artikel_json(self, a: Artikel, query: bool = True) -> dict[str, Any]:
        aid = to_uuid("artikel", a.id)
        out: dict[str, Any] = {
            "id": aid,
            "uri": f"/artikelen/{aid}",
            "artikelcode": a.artikelcode,
            "omschrijving": a.omschrijving,
            "verkoopprijs": a.verkoopprijs,
            "isNonActief": a.is_non_actief,
            "voorraadControle": a.voorraad_controle,
            "technischeVoorraad": a.technische_voorraad,
            "vrijeVoorraad": a.vrije_voorraad,
            "extraVelden": [{"naam": n, "waarde": w} for n, w in a.extra_velden.items()],
        }
        if a.omzetgroep_id:
            out["artikelOmzetgroep"] = {"id": to_uuid("omzetgroep", a.omzetgroep_id)}
        if a.inkoopprijs is not None:
            out["inkoopprijs"] = a.inkoopprijs
        if a.eenheid:
            out["eenheid"] = a.eenheid
        if a.modified_on:
            out["modifiedOn"] = a.modified_on.isoformat()
        if query:
            out["isHoofdartikel"] = bool(a.recept)
            out["subartikelen"] = [
                {"artikelcode": r.artikelcode, "aantal": r.aantal, "id": to_uuid("artikel", r.artikel_id)}
                for r in a.recept
            ]
        return out

    def _nieuw_artikel(self, d: dict[str, Any]) -> NieuwArtikel:
        group = (d.get("artikelOmzetgroep") or {}).get("id")
        if not group:
            raise BadRequest("ART-0008", "artikelomzetgroep is required")
        return NieuwArtikel(
            artikelcode=d.get("artikelcode") or "",
            omschrijving=d.get("omschrijving") or "",
            omzetgroep_id=from_uuid("omzetgroep", group),
            verkoopprijs=Decimal(str(d.get("verkoopprijs") or 0)),
            voorraad_controle=bool(d.get("voorraadControle")),
        )

    def _put_artikel(self, aid: str, d: dict[str, Any]) -> dict[str, Any]:
        old = self.local.get_artikel(from_uuid("artikel", aid))
        if old is None:
            raise BadRequest("ALG-0000", "artikel not found", status=404)
        group = (d.get("artikelOmzetgroep") or {}).get("id")
        old.artikelcode = d.get("artikelcode") or ""
        old.omschrijving = d.get("omschrijving") or ""
        old.omzetgroep_id = from_uuid("omzetgroep", group) if group else old.omzetgroep_id
        old.verkoopprijs = Decimal(str(d.get("verkoopprijs") or 0))
        old.inkoopprijs = Decimal(str(d["inkoopprijs"])) if d.get("inkoopprijs") is not None else None
        old.eenheid = d.get("eenheid")
        old.voorraad_controle = bool(d.get("voorraadControle"))
        old.is_non_actief = bool(d.get("isNonActief"))
        return self._artikel_json(self.local.update_artikel(old), query=False)

    def _put_artikel_fields(self, aid: str, d: list[dict[str, Any]]) -> list[dict[str, Any]]:
        old = self.local.get_artikel(from_uuid("artikel", aid))
        if old is None:
            raise BadRequest("ALG-0000", "artikel not found", status=404)
        for item in d or []:
            old.extra_velden[item["name"]] = str(item["value"])
        updated = self.local.update_artikel(old)
        return [self._custom_field(n, w) for n, w in updated.extra_velden.items()]

    # -- settings ---------------------------------------------------------------------------------------------
    def _landen(self) -> list[dict[str, Any]]:
        return [
            {
                "id": land_uuid(code),
                "uri": f"/landen/{land_uuid(code)}",
                "naam": naam,
                "landcodeISO": code,
                "landcode": code,
            }
            for code, naam in self.local.landen()
        ]

    def _company_info(self) -> dict[str, Any]:
        return {
            "administratieIdentifier": self.administration_id,
            "administratieNaam": self.local.administration_name(),
            "verkooporderVoorraadVanafNiveau": self.local.voorraad_vanaf_niveau(),
        }

    def _omzetgroepen(self) -> list[dict[str, Any]]:
        out = []
        for g in self.local.omzetgroepen():
            gid = to_uuid("omzetgroep", g.id)
            item: dict[str, Any] = {"id": gid, "uri": f"/artikelomzetgroepen/{gid}", "nummer": g.nummer}
            item["omschrijving"] = g.omschrijving
            if getattr(g, "btw_soort", None):
                item["verkoopNederlandBtwSoort"] = g.btw_soort
            out.append(item)
        return out

    def _btwtarieven(self) -> list[dict[str, Any]]:
        return [
            {"btwSoort": soort, "btwPercentage": Decimal(pct), "datumVanaf": "2019-01-01T00:00:00+00:00"}
            for soort, pct in self._db.execute("SELECT btw_soort, percentage FROM btwtarieven")
        ]

    def _sjablonen(self) -> list[dict[str, Any]]:
        return [
            {
                "id": to_uuid("sjabloon", s.id),
                "uri": f"/verkoopordersjablonen/{to_uuid('sjabloon', s.id)}",
                "omschrijving": s.omschrijving,
                "nonactief": s.nonactief,
                "prijsIngaveExclusiefBtw": not s.prijs_incl_btw,
            }
            for s in self.local.sjablonen()
        ]

    def _prijsafspraken(self, conds: list[Cond]) -> list[dict[str, Any]]:
        artikel = self._wanted(conds, ["artikel", "id"])
        relatie = self._wanted(conds, ["relatie", "id"])
        if artikel is None:
            raise BadRequest("ALG-0104", "Artikel/Id is verplicht")
        if relatie is None:
            relaties = self._ids("SELECT DISTINCT relatie_id FROM prijsafspraken")
        else:
            relaties = [from_uuid("relatie", relatie)]
        art_id = from_uuid("artikel", artikel)
        out = []
        for rel_id in relaties:
            for p in self.local.prijsafspraken(rel_id, art_id):
                item: dict[str, Any] = {
                    "relatie": {"id": to_uuid("relatie", p.relatie_id)},
                    "artikel": {"id": to_uuid("artikel", p.artikel_id)},
                    "aantal": p.vanaf_aantal,
                    "prijsBepalingSoort": "AfspraakPerArtikelklant",
                }
                if p.prijs is not None:
                    item["verkoopprijs"] = p.prijs
                else:
                    item["korting"] = p.kortings_percentage
                out.append(item)
        return out

    # -- verkooporders ----------------------------------------------------------------------------------------
    def _all_orders(self, conds: list[Cond]) -> list[dict[str, Any]]:
        kenmerk = self._wanted(conds, ["betalingskenmerk"])
        relatie = self._wanted(conds, ["relatie", "id"])
        status = self._wanted(conds, ["procesStatus"])
        if kenmerk is not None:
            return [self._order_json(o) for o in self.local.verkooporders_by_betalingskenmerk(kenmerk)]
        if relatie is not None:
            ids = self._ids(
                "SELECT id FROM verkooporders WHERE relatie_id = ? ORDER BY id",
                (from_uuid("relatie", relatie),),
            )
        elif status is not None:
            ids = self._ids("SELECT id FROM verkooporders WHERE proces_status = ? ORDER BY id", (status,))
        else:
            ids = self._ids("SELECT id FROM verkooporders ORDER BY id")
        return [self._order_json(o) for i in ids if (o := self.local.get_verkooporder(i)) is not None]

    def _order_json(self, o: Any) -> dict[str, Any]:
        oid = to_uuid("order", o.id)
        out: dict[str, Any] = {
            "id": oid,
            "uri": f"/verkooporders/{oid}",
            "nummer": o.nummer,
            "relatie": {"id": to_uuid("relatie", o.relatie_id)},
            "datum": f"{o.datum.isoformat()}T00:00:00+00:00",
            "procesStatus": o.proces_status,
            "totaalExclusiefBtw": o.totaal_excl_btw,
            "totaalInclusiefBtw": o.totaal_incl_btw,
            "regels": [],
        }
        for key, value in (("omschrijving", o.omschrijving), ("betalingskenmerk", o.betalingskenmerk)):
            if value is not None:
                out[key] = value
        if o.sjabloon_id:
            out["verkoopordersjabloon"] = {"id": to_uuid("sjabloon", o.sjabloon_id)}
        for key, adres in (("factuuradres", o.factuuradres), ("afleveradres", o.afleveradres)):
            if adres is not None:
                out[key] = self._adres_json(adres)
        for r in o.regels:
            line: dict[str, Any] = {
                "omschrijving": r.omschrijving,
                "aantal": r.aantal,
                "stuksprijs": r.stuksprijs,
                "kortingsPercentage": r.kortings_percentage,
            }
            if r.artikel_id:
                line["artikel"] = {"id": to_uuid("artikel", r.artikel_id)}
            out["regels"].append(line)
        return out

    def _nieuwe_order(self, d: dict[str, Any]) -> NieuweVerkooporder:
        if d.get("nummer") is not None:
            raise BadRequest("VOR-0005", "ordernummer must be empty for a new verkooporder")
        if d.get("id"):
            raise BadRequest("ALG-0100", "ID must be empty for a new verkooporder")
        regels = []
        for r in d.get("regels") or []:
            art = (r.get("artikel") or {}).get("id")
            regels.append(
                OrderRegel(
                    artikel_id=from_uuid("artikel", art) if art else None,
                    omschrijving=r.get("omschrijving") or "",
                    aantal=Decimal(str(r.get("aantal", 1))),
                    stuksprijs=Decimal(str(r.get("stuksprijs", 0))),
                    kortings_percentage=Decimal(str(r.get("kortingsPercentage", 0))),
                )
            )
        sjabloon = (d.get("verkoopordersjabloon") or {}).get("id")
        return NieuweVerkooporder(
            relatie_id=from_uuid("relatie", d["relatie"]["id"]),
            datum=dt.date.fromisoformat(str(d["datum"])[:10]),
            sjabloon_id=from_uuid("sjabloon", sjabloon) if sjabloon else None,
            prijs_incl_btw=d.get("verkooporderBtwIngaveModel", "Exclusief") == "Inclusief",
            omschrijving=d.get("omschrijving"),
            betalingskenmerk=d.get("betalingskenmerk"),
            regels=regels,
            factuuradres=self._adres_in(d.get("factuuradres"), "factuuradres"),
            afleveradres=self._adres_in(d.get("afleveradres"), "afleveradres"),
            krediettermijn=d.get("krediettermijn"),
            memo=d.get("memo"),
            orderreferentie=d.get("orderreferentie"),
            proces_status=d.get("procesStatus", "Order"),
        )
