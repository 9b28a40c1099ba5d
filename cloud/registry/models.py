"""API models of the registry (what third parties see in the OpenAPI docs)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import ConfigDict, Field, computed_field, model_validator
from pydantic_core import PydanticCustomError

from cloud.api.shapes import ApiModel
from cloud.times import iso_ms

MUNICIPALITY = Field(pattern=r"^EXP-\d{2}$", description="Operating unit (tenant), EXP-01..EXP-13", examples=["EXP-01"])
ZONE = Field(pattern=r"^EXP-\d{2}-Z\d{2,3}$", description="Zone code <municipality>-Znn", examples=["EXP-01-Z01"])


class Services(ApiModel):
    water: bool = True
    sewerage: bool = Field(False, description="Alcantarillado (10% of the water charge)")
    sanitation: bool = Field(False, description="Saneamiento (12% of the water charge)")


class CustomerIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=300, description="Personal data")
    tax_id: str | None = Field(None, pattern=r"^[A-ZÑ&]{3,4}[0-9]{6}[A-Z0-9]{3}$",
                               description="RFC (personal data): SAT's pattern, date and check digit; empty for "
                                           "público en general (never XAXX010101000)")
    tax_regime: str | None = Field(None, pattern=r"^[0-9]{3}$",
                                   description="SAT c_RegimenFiscal; must fit the RFC (12 moral / 13 física)")
    fiscal_zip: str | None = Field(None, pattern=r"^[0-9]{5}$")
    cfdi_use: str | None = Field(None, pattern=r"^[A-Z]{1,2}[0-9]{2}$",
                                 description="SAT c_UsoCFDI for this customer's CFDIs (default G03 when the régimen "
                                             "allows it, else S01)")
    email: str | None = Field(None, max_length=200, description="Personal data")
    phone: str | None = Field(None, max_length=40, description="Personal data")
    pensioner: bool = False

    @model_validator(mode="after")
    def _tax_identity(self) -> CustomerIn:
        from cloud.cfdi.rules import tax_identity_errors

        errors = tax_identity_errors(self.tax_id, self.tax_regime, self.cfdi_use, self.fiscal_zip)
        if errors:
            # One message naming each field: the API's handler answers 422 with it.
            raise PydanticCustomError("tax_identity", "; ".join(f"{f}: {m}" for f, m in errors))
        return self


class CustomerOut(ApiModel):
    id: str
    municipality: str
    name: str | None = Field(None, description="Personal data: only for office roles")
    tax_id: str | None = None
    tax_regime: str | None = None
    fiscal_zip: str | None = None
    cfdi_use: str | None = None
    email: str | None = None
    phone: str | None = None
    pensioner: bool = False
    personal_data_redacted: bool = Field(False, description="True when personal fields were withheld for the caller's role")


class MeterIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    serial: str = Field(min_length=1, max_length=60, examples=["WM-EXP-01-Z01-000001"])
    brand: str | None = None
    model: str | None = None
    diameter_mm: int | None = Field(None, ge=5, le=600, description="Caliber in mm")
    dials: int | None = Field(None, ge=1, le=9, description="Whole-m³ digits of the register (rollover)")
    dev_eui: str | None = Field(None, pattern=r"^[0-9a-fA-F]{16}$", description="LoRaWAN DevEUI")
    imei: str | None = Field(None, pattern=r"^\d{15}$", description="NB-IoT IMEI")
    device_profile: str | None = Field(None, max_length=80)
    initial_l: int = Field(0, ge=0, le=10**12, description="Register at installation, litres")
    installed_at: dt.datetime | None = None


class MeterOut(ApiModel):
    id: str
    serial: str
    municipality: str
    zone: str | None
    service_point_id: str | None
    route_id: str | None = None
    brand: str | None = None
    model: str | None = None
    diameter_mm: int | None = None
    dials: int | None = None
    dev_eui: str | None = None
    imei: str | None = None
    device_profile: str | None = None
    status: str | None = None
    last_value_l: int | None = None
    last_read_at: int | None = Field(None, serialization_alias="last_read_at",
                                     description="Deprecated (epoch milliseconds): read `lastReadAt`")

    @computed_field(description="When the last reading was taken, ISO 8601 (UTC)")  # type: ignore[prop-decorator]
    @property
    def lastReadAt(self) -> str | None:  # noqa: N802 (the API's member name)
        return iso_ms(self.last_read_at)


class ServicePointIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    address: str = Field(min_length=1, max_length=300)
    route_id: str | None = None
    route_order: int | None = Field(None, ge=0, le=1_000_000, description="Position on the reading route")
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    access_notes: str | None = None


class ServicePointOut(ApiModel):
    id: str
    municipality: str
    zone: str | None
    contract_id: str | None
    address: str | None = None
    route_id: str | None = None
    route_order: int | None = None
    meter_serial: str | None = None
    use_type: str | None = None
    status: str | None = None
    lat: float | None = None
    lon: float | None = None


class ContractIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    zone: str = ZONE
    use_class: str = Field(pattern=r"^[A-Z][A-Z0-9_]{1,39}$", description="Tariff class (claseCodigo), e.g. DOM_MEDIO, COMERCIAL",
                           examples=["DOM_MEDIO"])
    services: Services = Services()
    units: int = Field(1, ge=1, le=10_000, description="Dwellings on one intake (multi-unit)")
    start_date: dt.date
    customer_id: str | None = Field(None, description="An existing customer; or give `customer`")
    customer: CustomerIn | None = None
    service_point: ServicePointIn
    meter: MeterIn | None = None


class ContractPatch(ApiModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["active", "suspended", "cut_off", "terminated"] | None = None
    use_class: str | None = Field(None, pattern=r"^[A-Z][A-Z0-9_]{1,39}$")
    services: Services | None = None
    units: int | None = Field(None, ge=1, le=10_000)
    end_date: dt.date | None = None


class ContractOut(ApiModel):
    id: str
    municipality: str
    zone: str
    status: str
    use_class: str
    services: Services
    units: int
    billing_cycle: str
    start_date: dt.date
    end_date: dt.date | None
    customer: CustomerOut
    service_point: ServicePointOut | None
    meter: MeterOut | None


class ContractPage(ApiModel):
    items: list[ContractOut]
    next: str | None = Field(None, description="Pass as `after` to get the next page; null on the last page")
    next_after: str | None = Field(None, serialization_alias="next_after", description="Deprecated (removed in the next release): same as `next`",
                                   json_schema_extra={"deprecated": True})


class ZoneIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    code: str = ZONE
    name: str = Field(min_length=1, max_length=200)
    district_meters: list[str] = Field(default_factory=list, description="SCADA device ids of the zone's inflow meters")


class ZoneOut(ApiModel):
    code: str
    municipality: str
    name: str
    district_meters: list[str]


class RouteIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    zone: str = ZONE
    name: str = Field(min_length=1, max_length=200)
    cycle: str | None = None
    reader_id: str | None = None
    period: str | None = None


class ReplaceMeterIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    new_meter: MeterIn
    old_final_l: int = Field(ge=0, le=10**12, description="The old meter's final register, litres")
    new_initial_l: int = Field(0, ge=0, le=10**12, description="The new meter's register at installation, litres")
    at: dt.datetime = Field(description="When the replacement happened (timezone-aware)")
