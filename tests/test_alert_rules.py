"""The shipped alert rules and dashboards are well formed (every expression reads as PromQL,
every rule has a severity and a summary); tests/e2e/test_operations.py holds the metric names
against the real /metrics of a running gateway and cloud."""

from __future__ import annotations

import re

import pytest
from promql_check import DASHBOARDS, PromQLError, alert_rules, dashboard_exprs, parse


def test_every_alert_rule_is_complete_and_parses() -> None:
    rules = alert_rules()
    assert len(rules) >= 20
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names)), "alert names repeat"
    for r in rules:
        assert re.fullmatch(r"Aquacis[A-Za-z]+", r["alert"]), r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning", "info"), r
        assert r["annotations"]["summary"] and r["annotations"]["description"], r
        if "for" in r:
            assert re.fullmatch(r"\d+[smh]", r["for"]), r
        assert parse(r["expr"]).selectors or "time()" in r["expr"], r


def test_every_dashboard_query_parses() -> None:
    assert {p.name for p in DASHBOARDS} == {"aquacis-gateway.json", "aquacis-cloud.json"}
    exprs = dashboard_exprs()
    assert len(exprs) >= 25
    for where, expr in exprs:
        assert parse(expr).selectors, where


@pytest.mark.parametrize("bad", [
    "sum(rate(aquacis_x_total[5m])",  # unbalanced
    "rte(aquacis_x_total[5m])",  # unknown function
    'aquacis_x{kind=unavailable}',  # matcher value not a string
    '{kind="x"}',  # no metric name
])
def test_the_reader_refuses_broken_expressions(bad: str) -> None:
    with pytest.raises(PromQLError):
        parse(bad)


def test_the_reader_finds_selectors_labels_and_grouping() -> None:
    p = parse('histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{job="x", kind=~"a|b"}[5m]))) > 2 '
              'and on (instance) b == 0')
    assert [(s.metric, s.labels) for s in p.selectors] == [("a_bucket", {"job", "kind"}), ("b", set())]
    assert p.grouping_labels == {"instance", "le"}
