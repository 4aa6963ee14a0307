"""Builds ``snelstart-b2b-subset.openapi.yaml``: koppel's own compact description of the SnelStart B2B API v2.

The full OpenAPI file is SnelStart's (a third-party copy lives in the project's shared reference folder and is not
part of the repository). The b2b fake validates against it when it is there, and against the subset otherwise, so
the b2b tests run on a bare clone too. The subset holds only interface facts of the operations koppel and the fake
use: paths and methods, parameters with their limits, request and response schemas (property names, types, formats,
lengths, enums, required lists). Descriptions, summaries, examples, tags and operation ids are left out, and only
the ``application/json`` media type is kept (koppel sends and reads nothing else).

    python -m tests.client.b2b_subset [FULL_OPENAPI_FILE]

regenerates the subset (default source: the path ``b2b_fake.full_openapi_path()`` finds). ``test_b2b_subset.py``
checks, whenever the full file is present, that the committed subset agrees with it, so the two cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

SUBSET_PATH = Path(__file__).with_name("snelstart-b2b-subset.openapi.yaml")

# Every operation koppel's b2b backend calls, which is also everything the fake serves.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "/artikelen": ("get", "post"),
    "/artikelen/{id}": ("get", "put"),
    "/artikelen/{id}/customFields": ("put",),
    "/artikelomzetgroepen": ("get",),
    "/btwtarieven": ("get",),
    "/companyInfo": ("get",),
    "/landen": ("get",),
    "/prijsafspraken": ("get",),
    "/relaties": ("get", "post"),
    "/relaties/{id}": ("get", "put"),
    "/relaties/{id}/customFields": ("put",),
    "/verkooporders": ("get", "post"),
    "/verkooporders/{id}": ("get",),
    "/verkoopordersjablonen": ("get",),
}
MEDIA_TYPE = "application/json"

# Keys that only document; everything else in a schema or parameter is a fact and is kept.
DOC_KEYS = frozenset({"description", "summary", "example", "examples", "title", "externalDocs"})
# Keys with plain values (no nested schema) that may appear in a kept schema or parameter.
PLAIN_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "$ref",
        "enum",
        "required",
        "readOnly",
        "writeOnly",
        "nullable",
        "maxLength",
        "minLength",
        "maximum",
        "minimum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxItems",
        "minItems",
        "uniqueItems",
        "pattern",
        "default",
        "multipleOf",
    }
)
PARAMETER_KEYS = frozenset({"name", "in", "required", "deprecated", "allowEmptyValue", "style", "explode"})
SCHEMAS_REF = "#/components/schemas/"


def is_doc_key(key: str) -> bool:
    return key in DOC_KEYS or key.startswith("x-")


def schema_facts(node: dict[str, Any], where: str) -> dict[str, Any]:
    """A schema object without its documentation; an unknown keyword stops the build (it may be a fact)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if is_doc_key(key):
            continue
        if key == "properties":
            out[key] = {name: schema_facts(sub, f"{where}.{name}") for name, sub in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = schema_facts(value, f"{where}.{key}")
        elif key in ("allOf", "oneOf", "anyOf"):
            out[key] = [schema_facts(sub, f"{where}.{key}[{i}]") for i, sub in enumerate(value)]
        elif key in PLAIN_SCHEMA_KEYS or key == "additionalProperties":
            out[key] = value
        else:
            raise ValueError(f"{where}: schema keyword {key!r} is not known to the subset builder")
    return out


def _parameter(param: dict[str, Any], where: str) -> dict[str, Any]:
    if "$ref" in param:
        raise ValueError(f"{where}: parameter references are not supported by the subset builder")
    out: dict[str, Any] = {}
    for key, value in param.items():
        if is_doc_key(key):
            continue
        if key == "schema":
            out[key] = schema_facts(value, f"{where}.schema")
        elif key in PARAMETER_KEYS:
            out[key] = value
        else:
            raise ValueError(f"{where}: parameter key {key!r} is not known to the subset builder")
    return out


def _content(content: dict[str, Any], where: str) -> dict[str, Any]:
    media = content.get(MEDIA_TYPE)
    if media is None:
        return {}
    kept = {}
    if "schema" in media:
        kept["schema"] = schema_facts(media["schema"], f"{where}.{MEDIA_TYPE}")
    return {MEDIA_TYPE: kept}


def _operation(op: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if op.get("parameters"):
        out["parameters"] = [
            _parameter(p, f"{where}.parameters[{i}]") for i, p in enumerate(op["parameters"])
        ]
    if "requestBody" in op:
        body = op["requestBody"]
        kept: dict[str, Any] = {"content": _content(body.get("content") or {}, f"{where}.requestBody")}
        if "required" in body:
            kept["required"] = body["required"]
        out["requestBody"] = kept
    responses = {}
    for code, response in op["responses"].items():
        item: dict[str, Any] = {"description": ""}  # required by OpenAPI 3.0; the file's text is not copied
        if response.get("content"):
            item["content"] = _content(response["content"], f"{where}.responses.{code}")
        responses[str(code)] = item
    out["responses"] = responses
    return out


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = set()
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if not value.startswith(SCHEMAS_REF):
                    raise ValueError(f"reference {value!r} does not point into components/schemas")
                found.add(value[len(SCHEMAS_REF) :])
            else:
                found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def build_subset(full: dict[str, Any]) -> dict[str, Any]:
    """The subset document of ``full`` (the parsed full OpenAPI file)."""
    paths: dict[str, Any] = {}
    for path, methods in OPERATIONS.items():
        item = full["paths"][path]
        if set(item) - {"get", "put", "post", "delete", "patch"}:
            raise ValueError(f"{path}: path-level keys are not supported by the subset builder")
        paths[path] = {m: _operation(item[m], f"{path}.{m}") for m in methods}
    all_schemas = full["components"]["schemas"]
    wanted, todo = set(), _refs(paths)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted.add(name)
        todo |= _refs(all_schemas[name])
    schemas = {name: schema_facts(all_schemas[name], name) for name in sorted(wanted)}
    return {
        "openapi": full["openapi"],
        "info": {"title": "koppel: the part of the SnelStart B2B API v2 that koppel uses", "version": "1"},
        "servers": full["servers"],
        "security": full["security"],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": full["components"]["securitySchemes"]},
    }


HEADER = """\
# The part of the SnelStart B2B API v2 that koppel's b2b backend and its test fake use: interface facts only
# (paths, methods, parameters with limits, schemas with property names, types, formats, lengths and enums).
# Generated by `python -m tests.client.b2b_subset FULL_FILE`; do not edit by hand. test_b2b_subset.py checks it
# against SnelStart's full OpenAPI file whenever that file is present. It keeps the full file's one inconsistency
# ($top default 500 above its maximum 25 on /artikelen), so strict spec validators refuse it as they refuse the
# full file; the b2b fake loads it without spec validation and lowers that default in memory.
"""


def render(subset: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(subset, sort_keys=False, allow_unicode=True, width=120)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print("usage: python -m tests.client.b2b_subset [FULL_OPENAPI_FILE]", file=sys.stderr)
        return 2
    if argv:
        source = Path(argv[0])
    else:
        from tests.client.b2b_fake import full_openapi_path

        source = full_openapi_path()
    if not source.is_file():
        print(f"the full SnelStart OpenAPI file is not at {source}", file=sys.stderr)
        return 1
    full = yaml.load(source.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    SUBSET_PATH.write_text(render(build_subset(full)), encoding="utf-8")
    print(f"wrote {SUBSET_PATH} from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
