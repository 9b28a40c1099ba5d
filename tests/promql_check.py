"""A small PromQL reader for the shipped alert rules and dashboards (promtool is not available
here): tokenises an expression, checks brackets, functions and keywords, and returns the metric
selectors it names with the labels it uses, so a test can hold them against a real /metrics."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))

FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp_max", "clamp_min",
    "count_over_time", "delta", "deriv", "floor", "histogram_quantile", "idelta", "increase", "irate",
    "label_replace", "last_over_time", "max_over_time", "min_over_time", "predict_linear", "rate", "resets",
    "round", "scalar", "sort", "sort_desc", "sum_over_time", "time", "timestamp", "vector",
})
AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev", "group"})
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})
#: series Prometheus makes itself, not found in any /metrics
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
#: Grafana's template variables, replaced by values before the query runs
GRAFANA_VARS = re.compile(r"\$(\w+|\{\w+\})")

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<range>\[[0-9smhdwy:]+\])
  | (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=,(){}])
""", re.X)


@dataclass
class Selector:
    metric: str
    labels: set[str] = field(default_factory=set)


@dataclass
class Parsed:
    selectors: list[Selector]
    grouping_labels: set[str]


class PromQLError(ValueError):
    pass


def tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise PromQLError(f"cannot read {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
    return out


def parse(expr: str) -> Parsed:
    """The selectors of `expr`; PromQLError on unbalanced brackets, an unknown function, an
    unknown identifier where an operator belongs, or a malformed label matcher."""
    expr = GRAFANA_VARS.sub("x", expr)
    toks = tokens(expr)
    depth = {"(": 0, "{": 0}
    pairs = {")": "(", "}": "{"}
    for _, t in toks:
        if t in depth:
            depth[t] += 1
        elif t in pairs:
            depth[pairs[t]] -= 1
            if depth[pairs[t]] < 0:
                raise PromQLError(f"unbalanced {t!r} in {expr!r}")
    if any(depth.values()):
        raise PromQLError(f"unbalanced brackets in {expr!r}")
    selectors: list[Selector] = []
    grouping: set[str] = set()
    i = 0
    while i < len(toks):
        kind, t = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident" and t in GROUPING:
            if nxt == "(":  # by (a, b): label names until ")"
                j = i + 2
                while toks[j][1] != ")":
                    if toks[j][0] == "ident":
                        grouping.add(toks[j][1])
                    elif toks[j][1] != ",":
                        raise PromQLError(f"bad label list after {t!r} in {expr!r}")
                    j += 1
                i = j + 1
                continue
            i += 1
            continue
        if kind == "ident" and nxt == "(" and t not in KEYWORDS:
            if t not in FUNCTIONS and t not in AGGREGATIONS:
                raise PromQLError(f"unknown function {t!r} in {expr!r}")
            i += 1
            continue
        if kind == "ident" and t in AGGREGATIONS and nxt in GROUPING:  # sum by (a) (...)
            i += 1
            continue
        if kind == "ident" and t in KEYWORDS:
            i += 1
            continue
        if kind == "ident":
            sel = Selector(t)
            i += 1
            if i < len(toks) and toks[i][1] == "{":
                i += 1
                while toks[i][1] != "}":
                    name, op, value = toks[i], toks[i + 1], toks[i + 2]
                    if name[0] != "ident" or op[1] not in ("=", "!=", "=~", "!~") or value[0] != "string":
                        raise PromQLError(f"bad label matcher near {name[1]!r} in {expr!r}")
                    sel.labels.add(name[1])
                    i += 3
                    if toks[i][1] == ",":
                        i += 1
                i += 1
            selectors.append(sel)
            continue
        if kind == "op" and t == "{":
            raise PromQLError(f"a label matcher without a metric name in {expr!r}")
        i += 1
    if not selectors and "time()" not in expr.replace(" ", "") and "vector(" not in expr:
        raise PromQLError(f"no metric in {expr!r}")
    return Parsed(selectors, grouping)


def alert_rules() -> list[dict]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) of every panel target and template query of the shipped dashboards."""
    out = []
    for path in DASHBOARDS:
        doc = json.loads(path.read_text(encoding="utf-8"))
        for panel in doc["panels"]:
            for target in panel["targets"]:
                out.append((f"{path.name}: {panel['title']}", target["expr"]))
        for var in doc["templating"]["list"]:
            m = re.fullmatch(r"label_values\((\w+), *(\w+)\)", str(var.get("query", "")))
            if m:
                out.append((f"{path.name}: variable {var['name']}", f'{m.group(1)}{{{m.group(2)}=~".+"}}'))
    return out


def exposition(text: str) -> dict[str, set[str]]:
    """{sample name: label names seen} of a /metrics text, with every sample name a family's
    TYPE line promises even when the family has no sample yet (counter: _total; histogram:
    _bucket with le, _sum, _count)."""
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\w+)", line)
        if m:
            name, kind = m.groups()
            suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}.get(kind, ("",))
            for s in suffixes:
                names.setdefault(name + s, set())
            if kind == "histogram":
                names[name + "_bucket"].add("le")
            continue
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? ", line)
        if m:
            names.setdefault(m.group(1), set()).update(re.findall(r'(\w+)="', m.group(2) or ""))
    return names
