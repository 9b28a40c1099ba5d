"""Out-of-range numbers and dates a client may send are a 4xx naming the field, never a 500
(the three 500s schemathesis found, reproduced; on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from cloud.registry.seed import seed

HUGE = 2**63  # one past the largest 64-bit database integer


@pytest.fixture
def staff(cloud):
    seed(cloud.engine, "EXP-01", 1, 2)
    cloud.admin = cloud.user("admin", "EXP-01")
    cloud.dispatcher = cloud.user("dispatcher", "EXP-01")
    cloud.billing = cloud.user("billing", "EXP-01")
    return cloud


def _names_field(resp, field: str) -> None:
    assert 400 <= resp.status_code < 500, resp.text
    doc = resp.json()
    assert field in doc["detail"], doc


def test_huge_offset_on_work_orders_is_a_422_naming_offset(staff) -> None:
    r = staff.client.get(f"/api/v2/work-orders?offset={HUGE}", headers=staff.dispatcher)
    assert r.status_code == 422
    _names_field(r, "offset")


def test_year_zero_cycle_on_billing_runs_is_a_422_naming_cycle(staff) -> None:
    r = staff.client.post("/api/v2/billing-runs", headers=staff.billing, json={"cycle": "0000-01"})
    assert r.status_code == 422
    _names_field(r, "cycle")


def test_huge_route_order_on_contracts_is_a_422_naming_route_order(staff) -> None:
    body = {"zone": "EXP-01-Z01", "use_class": "DOM_MEDIO", "start_date": "2026-01-01",
            "customer": {"name": "Ana Pérez"},
            "service_point": {"address": "Calle 5 de Mayo 10", "route_order": HUGE}}
    r = staff.client.post("/api/v2/contracts", headers=staff.admin, json=body)
    assert r.status_code == 422
    _names_field(r, "route_order")


def _integer_inputs(doc: dict) -> list[tuple[str, dict]]:
    """Every integer schema a client sends: parameters and request bodies, through `$ref`s."""
    comps = doc.get("components", {}).get("schemas", {})
    out: list[tuple[str, dict]] = []

    def walk(s: object, where: str, seen: frozenset[str]) -> None:
        if not isinstance(s, dict):
            return
        ref = s.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                walk(comps.get(name), f"{where}<{name}>", seen | {name})
            return
        if s.get("type") == "integer":
            out.append((where, s))
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for sub in s.get(key, []):
                walk(sub, where, seen)
        for name, sub in (s.get("properties") or {}).items():
            walk(sub, f"{where}.{name}", seen)
        for key in ("items", "additionalProperties"):
            walk(s.get(key), f"{where}[]", seen)

    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                walk(p.get("schema"), f"{method.upper()} {path} {p['in']}.{p['name']}", frozenset())
            for media in (op.get("requestBody") or {}).get("content", {}).values():
                walk(media.get("schema"), f"{method.upper()} {path} body", frozenset())
    return out


def test_every_integer_input_of_the_openapi_is_bounded_to_64_bits(sqlite_cloud) -> None:
    """An unbounded integer reaches the database as an overflow (a 500 on SQLite); a bound in
    the model makes it a 422 naming the field, and documents the range."""
    inputs = _integer_inputs(sqlite_cloud.app.openapi())
    assert len(inputs) > 20, inputs  # the walk reaches parameters and bodies
    limit = 2**63 - 1
    unbounded = [where for where, s in inputs
                 if s.get("maximum", s.get("exclusiveMaximum", limit + 1)) > limit
                 or s.get("minimum", s.get("exclusiveMinimum", -limit - 1)) < -limit]
    assert not unbounded, unbounded
