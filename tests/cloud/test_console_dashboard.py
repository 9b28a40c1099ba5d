"""The dashboard's non-revenue-water figure never shows a negative loss: a district meter with
too few samples (or none at all) makes the zone `incomplete`, metered above input `inconsistent`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud.console.dashboard import nrw_view


def _result(inputs: list[tuple[int, int]], metered: int) -> dict:
    total = sum(v for v, n in inputs if n >= 2)
    return {"zone": "EXP-01-Z01", "input_l": total, "metered_l": metered, "non_revenue_l": total - metered,
            "non_revenue_pct": round(100 * (total - metered) / total, 2) if total else None,
            "district_meters": [{"device_id": f"DM{i}", "input_l": v, "samples": n} for i, (v, n) in enumerate(inputs)]}


def test_a_missing_district_meter_is_incomplete_not_a_negative_loss() -> None:
    view = nrw_view(_result([(900_000, 30), (0, 0)], metered=1_200_000))
    assert view["state"] == "incomplete" and view["loss_m3"] is None and (view["covered"], view["meters"]) == (1, 2)
    assert nrw_view(_result([], metered=5))["state"] == "incomplete"
    full = nrw_view(_result([(1_000_000, 30)], metered=800_000))
    assert full["state"] == "ok" and str(full["loss_m3"]) == "200" and full["loss_pct"] == 20.0
    assert nrw_view(_result([(1_000_000, 30)], metered=1_100_000))["state"] == "inconsistent"


@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 50)), max_size=5), st.integers(0, 10**9))
def test_loss_is_never_negative(inputs: list[tuple[int, int]], metered: int) -> None:
    view = nrw_view(_result(inputs, metered))
    assert view["loss_m3"] is None or view["loss_m3"] >= 0
    assert (view["loss_m3"] is not None) == (view["state"] == "ok")
