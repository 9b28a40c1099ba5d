"""The API's JSON conventions (docs/api.md): cursor pages `{items, next}`, ISO 8601 times with
their offset, camelCase member names; renamed members stay readable for one release."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.api.shapes import camel, iso_ms, with_camel
from cloud.registry.seed import seed


@pytest.fixture
def api(cloud):
    seed(cloud.engine, "EXP-01", 1, 5)
    cloud.dispatcher = cloud.user("dispatcher", "EXP-01")
    cloud.staff = cloud.user("billing", "EXP-01")
    return cloud


def _walk(c, url: str, headers: dict[str, str]) -> list[dict]:
    seen, after = [], None
    for _ in range(20):
        doc = c.get(url + (f"&after={after}" if after else ""), headers=headers).json()
        seen += doc["items"]
        after = doc["next"]
        if after is None:
            return seen
    raise AssertionError("pagination did not end")


def test_work_orders_page_by_cursor_and_carry_iso_times(api) -> None:
    c = api.client
    due = "2026-12-01T09:00:00-06:00"
    made = []
    for i in range(1, 6):
        r = c.post("/api/v2/work-orders", headers=api.dispatcher,
                   json={"type": "inspect_anomaly", "meter_serial": f"WM-EXP-01-Z01-00000{i}", "due": due})
        assert r.status_code == 201, r.text
        made.append(r.json())
    first = made[0]
    # ISO 8601 with offset next to the epoch-ms member it replaces (kept one release)
    assert dt.datetime.fromisoformat(first["dueAt"]) == dt.datetime.fromisoformat(due)
    assert first["dueAt"].endswith("+00:00") and first["due_at"] == 1_796_137_200_000
    assert dt.datetime.fromisoformat(first["createdAt"]).timestamp() * 1000 == first["created_at"]
    assert first["startedAt"] is None and first["completedAt"] is None
    items = _walk(c, "/api/v2/work-orders?limit=2", api.dispatcher)
    assert [o["id"] for o in items] == sorted(o["id"] for o in made)
    one = c.get(f"/api/v2/work-orders/{first['id']}", headers=api.dispatcher).json()
    assert one["events"] and all(dt.datetime.fromisoformat(e["occurredAt"]).tzinfo for e in one["events"])
    # the deprecated offset still works for one release
    assert len(c.get("/api/v2/work-orders?limit=10&offset=3", headers=api.dispatcher).json()["items"]) == 2


def test_contracts_page_by_next_with_next_after_kept(api) -> None:
    c = api.client
    items = _walk(c, "/api/v2/contracts?limit=2", api.staff)
    assert len(items) == 5 and len({x["id"] for x in items}) == 5
    doc = c.get("/api/v2/contracts?limit=2", headers=api.staff).json()
    assert doc["next"] == doc["next_after"] == doc["items"][-1]["id"]


def test_shapes() -> None:
    assert [camel("vat_rate"), camel("quantity_m3"), camel("id")] == ["vatRate", "quantityM3", "id"]
    assert with_camel({"vat_rate": "0.16", "amount": "1.00"}) == {"vat_rate": "0.16", "vatRate": "0.16", "amount": "1.00"}
    assert iso_ms(0) == "1970-01-01T00:00:00.000+00:00" and iso_ms(None) is None
