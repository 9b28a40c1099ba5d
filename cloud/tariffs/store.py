"""Read our tariff format into a TariffBook; the default data set ships inside the package."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from cloud.tariffs.convert import FORMAT
from cloud.tariffs.model import Discount, Rules, Schedule, TariffBook, TariffEntry, TariffError, TariffVersion


def _dec(v: Any, where: str) -> Decimal:
    try:
        d = Decimal(str(v))
    except InvalidOperation as e:
        raise TariffError(f"{where}: not a decimal: {v!r}") from e
    if not d.is_finite():
        raise TariffError(f"{where}: not finite: {v!r}")
    return d


def parse_version(doc: dict[str, Any]) -> TariffVersion:
    if doc.get("format") != FORMAT:
        raise TariffError(f"unsupported tariff format {doc.get('format')!r}; expected {FORMAT}")
    name = str(doc.get("version") or "")
    if not name:
        raise TariffError("tariff document has no version name")
    try:
        vf = date.fromisoformat(doc["validFrom"])
        vt = date.fromisoformat(doc["validTo"]) if doc.get("validTo") else None
    except (KeyError, TypeError, ValueError) as e:
        raise TariffError(f"{name}: validFrom/validTo must be ISO dates") from e
    r = doc.get("rules") or {}
    rules = Rules(
        sewerage_rate=_dec(r.get("sewerageRate", "0.10"), f"{name}.rules.sewerageRate"),
        sanitation_rate=_dec(r.get("sanitationRate", "0.12"), f"{name}.rules.sanitationRate"),
        surcharge_vat_rate=_dec(r.get("surchargeVatRate", "0.16"), f"{name}.rules.surchargeVatRate"),
        late_fee_monthly_rate=_dec(r.get("lateFeeMonthlyRate", "0.0147"), f"{name}.rules.lateFeeMonthlyRate"),
        late_fee_from_month=int(r.get("lateFeeFromMonth", 2)),
    )
    schedules = {
        sid: Schedule(sid, tuple(_dec(p, f"{name}.schedules.{sid}[{i}]") for i, p in enumerate(prices)))
        for sid, prices in (doc.get("schedules") or {}).items()
    }
    v = TariffVersion(name, vf, vt, rules, source={k: str(x) for k, x in (doc.get("source") or {}).items()})
    for t in doc.get("tariffs") or []:
        code = t.get("code", "?")
        sched = None
        if t.get("kind") == "table":
            sched = schedules.get(t.get("schedule"))
            if sched is None:
                raise TariffError(f"{name}.{code}: unknown schedule {t.get('schedule')!r}")
        elif t.get("kind") != "linear":
            raise TariffError(f"{name}.{code}: kind must be table or linear")
        entry = TariffEntry(
            administration=t["administration"], use_class=t["useClass"], service=t["service"],
            kind=t["kind"], name=t.get("name", code),
            fixed_charge=_dec(t["fixedCharge"], f"{name}.{code}.fixedCharge"),
            unit_price=_dec(t["unitPrice"], f"{name}.{code}.unitPrice"),
            vat_rate=_dec(t["vatRate"], f"{name}.{code}.vatRate"), schedule=sched, code=code,
        )
        key = (entry.administration, entry.use_class, entry.service)
        if key in v.entries:
            raise TariffError(f"{name}: two tariffs for {key}")
        v.entries[key] = entry
    by_code = {e.code: e for e in v.entries.values()}
    for j, d in enumerate(doc.get("discounts") or []):
        where = f"{name}.discounts[{j}]"
        target = by_code.get(d.get("tariff"))
        if target is None:
            raise TariffError(f"{where}: unknown tariff {d.get('tariff')!r}")
        service = d.get("service")
        if service not in ("water", "sewerage", "sanitation"):
            raise TariffError(f"{where}: service must be water, sewerage or sanitation (re-import the source)")
        min_m3 = d.get("minM3")
        if not isinstance(min_m3, int) or min_m3 < 0:
            raise TariffError(f"{where}: minM3 must be a whole number of m³")
        disc = Discount(target.code, service, str(d.get("appliesTo") or "pensioner"),
                        _dec(d["amount"], f"{where}.amount"), min_m3, str(d.get("description") or ""))
        key = (target.administration, target.use_class, service)
        v.discounts[key] = (*v.discounts.get(key, ()), disc)
    return v


def load_version(path: str | Path) -> TariffVersion:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TariffError(f"cannot read tariff file {p.name}: {e}") from e
    return parse_version(doc)


def _default_docs() -> list[dict[str, Any]]:
    base = resources.files("cloud.tariffs") / "data"
    return [json.loads(f.read_text(encoding="utf-8")) for f in sorted(base.iterdir(), key=lambda f: f.name)
            if f.name.endswith(".json")]


@lru_cache(maxsize=1)
def default_book() -> TariffBook:
    """The converted CEA Querétaro data set shipped in cloud/tariffs/data/."""
    return TariffBook(parse_version(d) for d in _default_docs())


def load_book(paths: list[str | Path] | None = None, *, include_default: bool = True) -> TariffBook:
    """Default data set plus extra versions from files or folders of *.json in our format."""
    versions = [parse_version(d) for d in _default_docs()] if include_default else []
    for p in paths or []:
        pp = Path(p)
        files = sorted(pp.glob("*.json")) if pp.is_dir() else [pp]
        versions.extend(load_version(f) for f in files)
    return TariffBook(versions)
