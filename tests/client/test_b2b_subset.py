"""koppel's committed subset of the SnelStart B2B OpenAPI description: it agrees with SnelStart's full file, and
the fake works on it alone (what a bare clone, without the shared reference folder, runs on).

The agreement check walks the subset itself (it does not reuse the generator), so a hand edit, a generator bug or
a new version of the full file shows up as a named difference."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from client.snelstart.b2b_http import PAGE_MAX, PAGE_MAX_ARTIKELEN
from client.snelstart.base import Adres, NieuweRelatie, NieuweVerkooporder, OrderRegel
from tests.client import b2b_fake
from tests.client.b2b_fake import FakeSnelStart
from tests.client.b2b_subset import OPERATIONS, SUBSET_PATH, build_subset, render
from tests.client.conftest_b2b import _fresh_admin, make_b2b_backend

# Keys that carry only documentation in the full file; the subset leaves them out and nothing else.
DOC_ONLY = {"description", "summary", "example", "examples", "title", "tags", "operationId", "externalDocs"}
JSON = "application/json"


def _load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    path = b2b_fake.full_openapi_path()
    if not path.is_file():
        pytest.skip(
            f"SnelStart's full OpenAPI file is not at {path} (set {b2b_fake.OPENAPI_ENV}); nothing to compare"
        )
    return _load(path)


@pytest.fixture(scope="module")
def subset() -> dict[str, Any]:
    return _load(SUBSET_PATH)


def _doc_only(key: str) -> bool:
    return key in DOC_ONLY or key.startswith("x-")


def _same_facts(sub: Any, ref: Any, where: str, problems: list[str], names: bool = False) -> None:
    """``sub`` equals ``ref`` once ``ref``'s documentation keys are ignored. ``names``: the dicts are maps of
    property names (the value of a ``properties`` keyword), so a property called ``description`` counts too."""
    if isinstance(sub, dict) and isinstance(ref, dict):
        for key in sub:
            if key not in ref:
                problems.append(f"{where}: {key!r} is in the subset, not in the full file")
        for key, value in ref.items():
            if key not in sub:
                if names or not _doc_only(key):
                    problems.append(f"{where}: {key!r} of the full file is missing from the subset")
                continue
            _same_facts(sub[key], value, f"{where}.{key}", problems, names=not names and key == "properties")
    elif isinstance(sub, list) and isinstance(ref, list):
        if len(sub) != len(ref):
            problems.append(f"{where}: {len(sub)} items in the subset, {len(ref)} in the full file")
        for i, (a, b) in enumerate(zip(sub, ref, strict=False)):
            _same_facts(a, b, f"{where}[{i}]", problems)
    elif sub != ref or type(sub) is not type(ref):
        problems.append(f"{where}: subset {sub!r}, full file {ref!r}")


def _same_content(sub: dict[str, Any], ref: dict[str, Any], where: str, problems: list[str]) -> None:
    """Media types are a selection: the subset keeps application/json (when the full file has it) and no other."""
    if set(sub) != ({JSON} & set(ref)):
        problems.append(f"{where}: media types {sorted(sub)}, expected {sorted({JSON} & set(ref))}")
    if JSON in sub and JSON in ref:
        _same_facts(
            sub[JSON], {k: v for k, v in ref[JSON].items() if k == "schema"}, f"{where}.{JSON}", problems
        )


def _same_operation(sub: dict[str, Any], ref: dict[str, Any], where: str, problems: list[str]) -> None:
    for key in set(ref) - set(sub) - DOC_ONLY:
        if key != "parameters" or ref[key]:
            problems.append(f"{where}: {key!r} of the full file is missing from the subset")
    for key in set(sub) - {"parameters", "requestBody", "responses"}:
        problems.append(f"{where}: unexpected {key!r} in the subset")
    _same_facts(sub.get("parameters", []), ref.get("parameters", []), f"{where}.parameters", problems)
    if "requestBody" in ref:
        body_sub, body_ref = sub.get("requestBody", {}), ref["requestBody"]
        _same_facts(
            {k: v for k, v in body_sub.items() if k != "content"},
            {k: v for k, v in body_ref.items() if k != "content"},
            f"{where}.requestBody",
            problems,
        )
        _same_content(
            body_sub.get("content", {}), body_ref.get("content", {}), f"{where}.requestBody", problems
        )
    if set(sub["responses"]) != {str(c) for c in ref["responses"]}:
        problems.append(
            f"{where}: responses {sorted(sub['responses'])}, full file {sorted(ref['responses'])}"
        )
    for code, response in ref["responses"].items():
        kept = sub["responses"].get(str(code), {})
        for key in set(response) - {"description", "content"}:
            problems.append(
                f"{where}.responses.{code}: {key!r} of the full file is not handled by the subset"
            )
        _same_content(
            kept.get("content", {}), response.get("content") or {}, f"{where}.responses.{code}", problems
        )


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {node["$ref"]} if "$ref" in node else set().union(set(), *(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(set(), *(_refs(v) for v in node))
    return set()


def test_subset_agrees_with_the_full_file_for_every_path_parameter_and_schema(
    full: dict[str, Any], subset: dict[str, Any]
) -> None:
    problems: list[str] = []
    for key in ("openapi", "servers", "security"):
        _same_facts(subset[key], full[key], key, problems)
    _same_facts(
        subset["components"]["securitySchemes"],
        full["components"]["securitySchemes"],
        "securitySchemes",
        problems,
    )
    for path, item in subset["paths"].items():
        if path not in full["paths"]:
            problems.append(f"path {path} is not in the full file")
            continue
        for method, op in item.items():
            if method not in full["paths"][path]:
                problems.append(f"{method.upper()} {path} is not in the full file")
                continue
            _same_operation(op, full["paths"][path][method], f"{method.upper()} {path}", problems)
    for name, schema in subset["components"]["schemas"].items():
        if name not in full["components"]["schemas"]:
            problems.append(f"schema {name} is not in the full file")
            continue
        _same_facts(schema, full["components"]["schemas"][name], f"schema {name}", problems)
    assert not problems, "the subset disagrees with the full OpenAPI file:\n" + "\n".join(problems)


def test_subset_is_the_generators_output_of_the_full_file(full: dict[str, Any]) -> None:
    """Regenerating gives the committed text byte for byte (so it was not edited by hand, and a changed full
    file is noticed: run ``python -m tests.client.b2b_subset`` and commit)."""
    assert SUBSET_PATH.read_text(encoding="utf-8") == render(build_subset(full))


def test_subset_is_self_contained_and_covers_every_operation_koppel_uses(subset: dict[str, Any]) -> None:
    schemas = subset["components"]["schemas"]
    dangling = sorted(r for r in _refs(subset) if r.removeprefix("#/components/schemas/") not in schemas)
    assert dangling == []
    unused = sorted(set(schemas) - {r.removeprefix("#/components/schemas/") for r in _refs(subset)})
    assert unused == [], "schemas no operation reaches"
    assert {p: tuple(item) for p, item in subset["paths"].items()} == OPERATIONS
    # Documentation stayed out: no descriptions but the empty ones OpenAPI requires on a response, no examples.
    text = SUBSET_PATH.read_text(encoding="utf-8")
    assert "example" not in text and "summary:" not in text and "operationId" not in text
    described = [line.strip() for line in text.splitlines() if line.strip().startswith("description:")]
    assert set(described) == {"description: ''"}
    # The limits koppel pages by are in it.
    tops = {
        path: next(p["schema"] for p in item["get"]["parameters"] if p["name"] == "$top")
        for path, item in subset["paths"].items()
        if any(p["name"] == "$top" for p in item.get("get", {}).get("parameters", []))
    }
    assert tops["/artikelen"]["maximum"] == PAGE_MAX_ARTIKELEN
    assert tops["/relaties"]["maximum"] == tops["/verkooporders"]["maximum"] == PAGE_MAX


def test_fake_falls_back_to_the_subset_when_the_full_file_is_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(b2b_fake.OPENAPI_ENV, str(tmp_path / "nowhere.yaml"))
    assert b2b_fake.openapi_path() == SUBSET_PATH
    present = tmp_path / "full.yaml"
    present.write_text("openapi: 3.0.1\n", encoding="utf-8")
    monkeypatch.setenv(b2b_fake.OPENAPI_ENV, str(present))
    assert b2b_fake.openapi_path() == present


def test_fake_on_the_subset_validates_koppels_traffic_and_refuses_what_breaks_the_contract(
    tmp_path: Path,
) -> None:
    """Even where the full file is present, the subset itself is exercised: a refresh, a created relatie and
    verkooporder pass; a page of 26 articles and a null field are refused as the full file would."""
    fake = FakeSnelStart(_fresh_admin(tmp_path), spec_path=SUBSET_PATH).start()
    backend = make_b2b_backend(fake, tmp_path / "mirror.sqlite")
    try:
        backend.refresh()
        relatie = backend.create_relatie(
            NieuweRelatie(
                naam="Subset BV",
                vestigingsadres=Adres(straat="Kade 1", postcode="2611 AA", plaats="Delft", land="NL"),
            )
        )
        artikel = backend.artikelen_by_code("1002")[0]
        order = backend.create_verkooporder(
            NieuweVerkooporder(
                relatie_id=relatie.id,
                datum=dt.date(2026, 12, 1),
                sjabloon_id=None,
                prijs_incl_btw=False,
                omschrijving="Webshop order SUBSET-1",
                betalingskenmerk="SUBSET-1",
                regels=[OrderRegel(artikel.id, "Espressokopjes", Decimal("2"), artikel.verkoopprijs)],
            )
        )
        assert backend.verkooporders_by_betalingskenmerk("SUBSET-1")[0].id == order.id
        assert fake.violations == []

        token = backend.http.tokens.bearer()
        headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": fake.subscription_key}
        too_big = requests.get(f"{fake.api_url}/artikelen", params={"$top": 26}, headers=headers, timeout=5)
        null_field = requests.post(
            f"{fake.api_url}/relaties",
            data=b'{"naam": "X", "relatiesoort": ["Klant"], "email": null}',
            headers={**headers, "Content-Type": "application/json"},
            timeout=5,
        )
        assert (too_big.status_code, null_field.status_code) == (400, 400)
        assert len(fake.violations) == 2
        assert "$top" in fake.violations[0] and "/relaties" in fake.violations[1]
    finally:
        backend.close()
        fake.stop()
