"""Convert CEA Querétaro's periodic tariff file into our tariff format (docs/tariffs.md).

Input: the source JSON (`tarifas`, `correcciones`, `vigenciaDesde`); output: a dict in
format `aquacis.tariffs/1` where identical cumulative tables are stored once. Every value is
checked; a malformed entry raises TariffError naming the entry, nothing is silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cloud.tariffs.model import TariffError

FORMAT = "aquacis.tariffs/1"
SERVICE_MAP = {"agua": "water"}
KIND_MAP = {"tabla": "table", "lineal": "linear"}
ADMIN_RE = re.compile(r"^EXP-\d{2}$")

RULES_CEA = {
    "consumptionRounding": "whole m3; fraction above 0.50 up, at or below 0.50 down",
    "lineRounding": "cents, half up",
    "sewerageRate": "0.10",
    "sanitationRate": "0.12",
    "surchargeVatRate": "0.16",
    "lateFeeMonthlyRate": "0.0147",
    "lateFeeFromMonth": 2,
}


def _money(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TariffError(f"{where}: expected a number, got {value!r}")
    try:
        # repr of a float is its shortest round-trip form: 48.4352 stays 48.4352.
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation as e:
        raise TariffError(f"{where}: not a number: {value!r}") from e
    if not d.is_finite() or d < 0:
        raise TariffError(f"{where}: must be a finite non-negative amount, got {value!r}")
    return format(d.normalize(), "f") if d == d.to_integral_value() else format(d, "f")


def is_domestic(use_class: str) -> bool:
    return use_class.startswith("DOM_")


def convert_cea(src: dict[str, Any], *, version: str | None = None, valid_to: str | None = None,
                source_name: str = "", source_sha256: str = "") -> dict[str, Any]:
    if not isinstance(src, dict) or not isinstance(src.get("tarifas"), list):
        raise TariffError("not a CEA tariff file: no 'tarifas' list at the top level")
    vf = src.get("vigenciaDesde")
    try:
        valid_from = date.fromisoformat(str(vf))
    except ValueError as e:
        raise TariffError(f"vigenciaDesde is not an ISO date: {vf!r}") from e
    if valid_to is not None and date.fromisoformat(valid_to) <= valid_from:
        raise TariffError(f"validTo {valid_to} is not after validFrom {valid_from}")
    version = version or f"cea-queretaro-{valid_from:%Y-%m}"

    schedules: dict[tuple[str, ...], str] = {}
    tariffs: list[dict[str, Any]] = []
    warnings: list[str] = []
    seen: set[str] = set()
    for i, t in enumerate(src["tarifas"]):
        code = str(t.get("codigo") or f"tarifas[{i}]")
        if code in seen:
            raise TariffError(f"{code}: duplicate codigo")
        seen.add(code)
        admin = t.get("administracionId")
        if not isinstance(admin, str) or not ADMIN_RE.match(admin):
            raise TariffError(f"{code}: administracionId {admin!r} is not EXP-NN")
        kind = KIND_MAP.get(t.get("tipoCalculo"))
        if kind is None:
            raise TariffError(f"{code}: tipoCalculo {t.get('tipoCalculo')!r} is neither tabla nor lineal")
        iva = t.get("ivaPct")
        if iva not in (0, 16):
            raise TariffError(f"{code}: ivaPct {iva!r} is neither 0 nor 16")
        service = SERVICE_MAP.get(t.get("tipoServicio"), str(t.get("tipoServicio")))
        use_class = str(t.get("claseCodigo"))
        out: dict[str, Any] = {
            "code": code,
            "administration": admin,
            "useClass": use_class,
            "service": service,
            "kind": kind,
            "name": t.get("nombre") or code,
            "fixedCharge": _money(t.get("cuotaFija"), f"{code}.cuotaFija"),
            "unitPrice": _money(t.get("precioUnitario"), f"{code}.precioUnitario"),
            "vatRate": "0.16" if iva == 16 else "0",
        }
        if kind == "table":
            prices = t.get("precios")
            if not isinstance(prices, list) or len(prices) < 2:
                raise TariffError(f"{code}: tabla needs a precios list")
            if (t.get("rangoMinM3"), t.get("rangoMaxM3")) != (0, len(prices) - 1):
                raise TariffError(f"{code}: rango {t.get('rangoMinM3')}..{t.get('rangoMaxM3')} does not match "
                                  f"{len(prices)} prices")
            vals = tuple(_money(p, f"{code}.precios[{n}]") for n, p in enumerate(prices))
            dec = [Decimal(v) for v in vals]
            for n in range(1, len(dec)):
                if dec[n] < dec[n - 1]:
                    raise TariffError(f"{code}: cumulative table decreases at {n} m3")
            if dec[0] != Decimal(out["fixedCharge"]):
                raise TariffError(f"{code}: cuotaFija {out['fixedCharge']} differs from precios[0] {vals[0]}")
            sid = schedules.setdefault(vals, f"T{len(schedules) + 1:02d}")
            out["schedule"] = sid
        if service == "water" and (iva == 0) != is_domestic(use_class):
            warnings.append(f"{code}: water VAT {iva}% although use class {use_class} is "
                            f"{'' if is_domestic(use_class) else 'not '}domestic (kept the source's value)")
        tariffs.append(out)

    discounts = []
    for j, c in enumerate(src.get("correcciones") or []):
        ref = c.get("tarifaCodigo")
        if ref not in seen:
            raise TariffError(f"correcciones[{j}]: unknown tarifaCodigo {ref!r}")
        cond = c.get("condiciones") or {}
        concept = str(cond.get("concepto") or c.get("descripcion") or "").upper()
        found = next((ours for word, ours in DISCOUNT_SERVICES if word in concept), None)
        if found is None:
            raise TariffError(f"correcciones[{j}]: cannot tell the service of {concept!r}")
        service = found
        corrector = str(cond.get("corrector") or "").upper()
        if "MAYOR DE" not in corrector or cond.get("precioProporcional") not in (0, None):
            raise TariffError(f"correcciones[{j}]: unsupported condition {corrector!r}")
        discounts.append({
            "tariff": ref,
            "kind": c.get("tipo"),
            "description": c.get("descripcion"),
            "amount": _money(c.get("montoFijo"), f"correcciones[{j}].montoFijo"),
            "minM3": cond.get("consumoMinM3"),
            "service": service,  # the bill line it reduces
            "appliesTo": "pensioner" if "PENSIONAD" in concept else "all",
        })

    return {
        "format": FORMAT,
        "version": version,
        "validFrom": valid_from.isoformat(),
        "validTo": valid_to,
        "currency": "MXN",
        "source": {"publisher": "CEA Querétaro", "file": source_name, "sha256": source_sha256,
                   "description": src.get("fuente")},
        "rules": dict(RULES_CEA),
        "schedules": {sid: list(vals) for vals, sid in schedules.items()},
        "tariffs": tariffs,
        "discounts": discounts,
        "warnings": warnings,
    }


def convert_cea_file(path: str | Path, **kw: Any) -> dict[str, Any]:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise TariffError(f"cannot read {p.name}: {e.strerror}") from e
    try:
        src = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TariffError(f"{p.name} is not valid JSON: {e}") from e
    kw.setdefault("source_name", p.name)
    kw.setdefault("source_sha256", hashlib.sha256(raw).hexdigest())
    return convert_cea(src, **kw)


# condiciones.concepto → the bill line a discount reduces.
DISCOUNT_SERVICES = (("ALCANTARILLADO", "sewerage"), ("SANEAMIENTO", "sanitation"), ("AGUA", "water"))


def dumps(doc: dict[str, Any]) -> str:
    """Compact but diff-friendly: one tariff per line, one schedule per line."""
    head = {k: v for k, v in doc.items() if k not in ("schedules", "tariffs", "discounts", "warnings")}
    parts = [json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ","]
    parts.append(' "schedules": {\n' + ",\n".join(
        f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in doc["schedules"].items()) + "\n },")
    for key in ("tariffs", "discounts", "warnings"):
        items = doc.get(key) or []
        body = ",\n".join("  " + json.dumps(x, ensure_ascii=False, separators=(",", ":")) for x in items)
        parts.append(f' "{key}": [\n{body}\n ],' if items else f' "{key}": [],')
    parts[-1] = parts[-1].rstrip(",")
    return "\n".join(parts) + "\n}\n"
