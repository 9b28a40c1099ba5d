"""The API's one error model: every error answer is RFC 9457 problem details, documented in the
OpenAPI; services raise domain errors and the app's one handler renders them."""

from __future__ import annotations

import pytest

from cloud.errors import Conflict, DomainError, FieldError, Forbidden, Invalid, NotFound, Unauthorized
from cloud.registry.seed import seed

PROBLEM_MEMBERS = {"type", "title", "status", "detail"}


@pytest.fixture
def api(cloud):
    seed(cloud.engine, "EXP-01", 1, 2)
    seed(cloud.engine, "EXP-02", 1, 1)
    cloud.billing1 = cloud.user("billing", "EXP-01")
    cloud.reader1 = cloud.user("reader", "EXP-01")
    return cloud


def _problem(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    doc = resp.json()
    assert PROBLEM_MEMBERS <= doc.keys(), doc
    assert doc["status"] == status and doc["type"] == f"urn:aquacis:problem:{code}"
    assert doc["detail"] and doc["title"]
    # the 2.0 members stay one release (CHANGELOG.md)
    assert doc["error"] == code and doc["reason"] == doc["detail"]
    return doc


def test_not_found_of_another_municipality_is_a_problem(api) -> None:
    foreign = api.client.get("/api/v2/contracts?municipality=EXP-02", headers=api.user("admin", "*")).json()
    cid = foreign["items"][0]["id"]
    doc = _problem(api.client.get(f"/api/v2/contracts/{cid}", headers=api.billing1), 404, "not_found")
    assert cid in doc["detail"] and doc["instance"] == f"/api/v2/contracts/{cid}"


def test_request_validation_names_every_field(api) -> None:
    r = api.client.get("/api/v2/work-orders?offset=-1&limit=0", headers=api.user("dispatcher", "EXP-01"))
    doc = _problem(r, 422, "invalid")
    assert {e["field"] for e in doc["errors"]} == {"offset", "limit"}
    assert all(e["message"] and e["type"] for e in doc["errors"])


def test_domain_error_from_a_service_names_its_field(api) -> None:
    r = api.client.post("/api/v2/work-orders", headers=api.user("dispatcher", "EXP-01"),
                        json={"type": "inspect_anomaly", "zone": "not a zone"})
    doc = _problem(r, 422, "invalid")
    assert doc["errors"] == [{"field": "zone", "message": doc["detail"], "type": "invalid"}]


def test_auth_and_role_errors_are_problems(api) -> None:
    r = api.client.get("/api/v2/contracts")
    _problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    _problem(api.client.post("/api/v2/billing-runs", headers=api.reader1, json={"cycle": "2026-01"}), 403, "forbidden")


def test_malformed_json_and_unknown_route_are_problems(api) -> None:
    r = api.client.post("/api/v2/work-orders", headers={**api.user("dispatcher", "EXP-01"),
                                                        "Content-Type": "application/json"}, content=b"{nope")
    _problem(r, 400, "malformed_json")
    _problem(api.client.get("/api/v2/no-such-thing", headers=api.billing1), 404, "not_found")


def test_every_operation_documents_problem_details(sqlite_cloud) -> None:
    doc = sqlite_cloud.app.openapi()
    problem = doc["components"]["schemas"]["Problem"]
    assert PROBLEM_MEMBERS <= problem["properties"].keys() and "errors" in problem["properties"]
    missing = []
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/v2/"):
            continue
        for method, op in ops.items():
            for status in ("401", "403", "404", "422"):
                content = op.get("responses", {}).get(status, {}).get("content", {})
                ref = content.get("application/problem+json", {}).get("schema", {}).get("$ref", "")
                if not ref.endswith("/Problem"):
                    missing.append(f"{method.upper()} {path} {status}")
    assert not missing, missing[:20]


def test_domain_errors_carry_status_code_and_fields() -> None:
    assert (NotFound.of("meter", "X").status, str(NotFound.of("meter", "X"))) == (404, "meter 'X' not found")
    assert (Conflict("c").status, Conflict("c").code) == (409, "conflict")
    assert (Forbidden("f").status, Unauthorized("u").status) == (403, 401)
    e = Invalid("route_order: too large", field="route_order")
    assert (e.status, e.code, e.errors) == (422, "invalid", [FieldError("route_order", "route_order: too large", "invalid")])
    # a status given at raise time picks its code
    assert (DomainError("gone", status=409).code, DomainError("x", status=404).code) == ("conflict", "not_found")
