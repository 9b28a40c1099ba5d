"""Whatever a client sends, the answer is a 2xx or a 4xx problem-details document, never a 500."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.registry.seed import seed

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)
reading_like = st.fixed_dictionaries(
    {},
    optional={
        "meter_serial": st.sampled_from(["WM-EXP-01-Z01-000001", "NOPE", ""]) | st.text(max_size=70),
        "taken_at": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "2999-01-01T00:00:00+00:00", "x"])
        | st.integers(),
        "value_l": st.integers(-(2**70), 2**70) | st.text(max_size=5),
        "value_m3": st.decimals(allow_nan=False, allow_infinity=False).map(str) | st.floats(allow_nan=False),
        "id": st.uuids().map(str) | st.text(max_size=40),
        "observation_code": st.text(max_size=50) | st.none(),
        "lat": st.floats(allow_nan=False) | st.none(),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | reading_like, raw=st.binary(max_size=40))
def test_post_readings_never_500(sqlite_cloud, body, raw) -> None:
    c = sqlite_cloud.client
    if not getattr(sqlite_cloud, "h", None):
        seed(sqlite_cloud.engine, "EXP-01", 1, 1)
        sqlite_cloud.h = sqlite_cloud.user("billing", "EXP-01")
    h = sqlite_cloud.h
    for resp in (
        c.post("/api/v2/readings", headers={**h, "Content-Type": "application/json"},
               content=json.dumps(body, default=str).encode()),
        c.post("/api/v2/readings", headers={**h, "Content-Type": "application/json"}, content=raw),
    ):
        assert resp.status_code < 500, resp.text
        if resp.status_code >= 400:
            doc = resp.json()
            assert doc["type"].startswith("urn:aquacis:problem:") and doc["detail"] and doc["status"] == resp.status_code
