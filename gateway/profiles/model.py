"""`DeviceProfile`: how a device type's decoded data becomes a meter reading.

Loaded from TOML or JSON (see docs/codecs.md, "Device profiles"); validated with pydantic so a
bad profile fails at load with a clear message, not at the first uplink.
"""

from __future__ import annotations

import json
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.modbus.registers import RegisterMap
from sync.vocab import readings as vocab_readings
from sync.vocab import units as vocab_units

# the units and alarm names are the shared vocabulary's (sync.vocab)
UNIT_LITRES: dict[str, Decimal] = {str(k): v for k, v in vocab_units.UNIT_LITRES.items()}
FLOW_UNITS: dict[str, Decimal] = {str(k): v for k, v in vocab_units.FLOW_UNIT_LPH.items()}
ALARMS = vocab_readings.ALARMS


class ProfileError(ValueError):
    """A profile file is unreadable or invalid; `str(e)` says where and why."""


def normalise_unit(value: str) -> str:
    return vocab_units.normalise_unit(value).value


class DeviceProfile(BaseModel):
    """A device type: its codec and how to read its decoded object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    source: Literal["lorawan", "nbiot", "modbus"] = "lorawan"
    codec: str | None = None
    codec_variables: dict[str, Any] = Field(default_factory=dict)
    fports: tuple[int, ...] = ()  # frames on other ports carry no register (status, config)
    value_field: str | None = None  # dotted path into the decoded object
    unit: str = "L"
    scale: Decimal = Decimal(1)  # units per raw count (e.g. 10 for 10 L/pulse with unit L)
    # alarm name (leak/burst/backflow/tamper/battery) -> decoded field (dotted path)
    alarm_fields: dict[str, str] = Field(default_factory=dict)
    # dotted path of a vendor's flag object or list ({"Tamper": true} / ["tamper"]); vendor names
    # map to our alarms through sync.vocab.readings (flowIQ "Tamper", Diehl "Fraud", ...)
    alarm_flags_field: str | None = None
    # dotted path of the meter's own timestamp (epoch s or ms, or ISO 8601 with an offset); None =
    # look for a top-level timestamp/time/datetime. Used as taken_at when plausible.
    time_field: str | None = None
    battery_field: str | None = "battery"
    battery_volts: tuple[float, float] | None = None  # (empty V, full V): field is volts → %
    low_battery_pct: float = 10.0
    # register modulus in litres (where the odometer wraps), for the rollover rule; None = the
    # rules' default. e.g. an 8-digit litre register: 100000000; a 16-bit counter of 10 L: 655360
    rollover_l: int | None = Field(default=None, gt=0)
    flow_field: str | None = None
    flow_unit: str = "L/h"
    modbus: RegisterMap | None = None

    @field_validator("unit")
    @classmethod
    def _unit(cls, v: str) -> str:
        return normalise_unit(v)

    @field_validator("flow_unit")
    @classmethod
    def _flow_unit(cls, v: str) -> str:
        if v not in FLOW_UNITS:
            raise ValueError(f"unknown flow unit {v!r}: use one of {', '.join(FLOW_UNITS)}")
        return v

    @field_validator("alarm_fields", mode="before")
    @classmethod
    def _alarms(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):  # ["leak", "tamper"]: same-named decoded fields
            v = {name: name for name in v}
        if isinstance(v, dict):
            bad = sorted(set(v) - set(ALARMS))
            if bad:
                raise ValueError(f"unknown alarm {bad[0]!r}: use {', '.join(ALARMS)}")
        return v

    @field_validator("scale")
    @classmethod
    def _scale(cls, v: Decimal) -> Decimal:
        if not v.is_finite() or v <= 0:
            raise ValueError("scale must be a positive number")
        return v

    @model_validator(mode="after")
    def _source(self) -> DeviceProfile:
        if self.source == "modbus" and self.modbus is None:
            raise ValueError("a modbus profile needs a [modbus] register map")
        if self.source == "lorawan" and not self.codec:
            raise ValueError("a lorawan profile needs a codec")
        return self

    @property
    def litres_per_count(self) -> Decimal:
        return self.scale * UNIT_LITRES[self.unit]


def profile_from_dict(doc: dict[str, Any], origin: str = "<profile>") -> DeviceProfile:
    try:
        return DeviceProfile.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(profile)'}: {e['msg']}" for e in exc.errors()
        )
        raise ProfileError(f"{origin}: {problems}") from None


def load_profile(path: str | Path) -> DeviceProfile:
    """Load a profile from a .toml or .json file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"{p.name}: cannot read: {exc.strerror}") from None
    try:
        doc = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{p.name}: not valid {p.suffix.lstrip('.').upper() or 'TOML'}: {exc}") from None
    if not isinstance(doc, dict):
        raise ProfileError(f"{p.name}: a profile is a table/object")
    doc.setdefault("name", p.stem)
    return profile_from_dict(doc, p.name)
