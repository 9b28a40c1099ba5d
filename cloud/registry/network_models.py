"""Request bodies of the network registry (docs/network.md). camelCase members (docs/api.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from cloud.registry.tables import NETWORK_ASSET_KINDS, NETWORK_STATUSES

ZONE = Field(pattern=r"^EXP-\d{2}-Z\d{2,3}$", description="Zone code <municipality>-Znn", examples=["EXP-01-Z01"])
DISTRICT_CODE = r"^EXP-\d{2}-Z\d{2,3}-S\d{2,3}$"
CODE = Field(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
             description="The utility's tag for it, unique in the municipality", examples=["VAL-0001"])
# WGS84 degrees. NaN and infinities fail the range checks.
LAT = Field(ge=-90.0, le=90.0, description="Latitude, WGS84 degrees", examples=[20.5931])
LON = Field(ge=-180.0, le=180.0, description="Longitude, WGS84 degrees", examples=[-100.392])
ID = Field(min_length=1, max_length=36)

AssetKind = Literal[NETWORK_ASSET_KINDS]  # type: ignore[valid-type]
NetworkStatus = Literal[NETWORK_STATUSES]  # type: ignore[valid-type]


class DistrictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=DISTRICT_CODE, description="<zone>-Snn", examples=["EXP-01-Z01-S01"])
    name: str = Field(min_length=1, max_length=200)


class AssetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: AssetKind
    code: str = CODE
    name: str = Field(min_length=1, max_length=200)
    zone: str = ZONE
    district: str | None = Field(None, pattern=DISTRICT_CODE)
    lat: float = LAT
    lon: float = LON
    status: NetworkStatus = "in_service"
    feedsFrom: str | None = Field(None, min_length=1, max_length=36,
                                  description="Id of the asset directly upstream (closing it cuts this one off)")
    deviceId: str | None = Field(None, min_length=1, max_length=80,
                                 description="SCADA device id (district meters, tanks, pump stations)")


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = CODE
    address: str = Field(min_length=1, max_length=300)
    zone: str = ZONE
    district: str | None = Field(None, pattern=DISTRICT_CODE)
    lat: float = LAT
    lon: float = LON
    diameterMm: int = Field(13, ge=6, le=600, description="Nominal diameter of the branch, mm")
    status: NetworkStatus = "in_service"
    feedsFrom: str | None = Field(None, min_length=1, max_length=36,
                                  description="Id of the nearest valve (or asset) upstream of the tap")


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    servicePointId: str = Field(min_length=1, max_length=64)


class OutageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    assetId: str | None = Field(None, min_length=1, max_length=36, description="The valve (or asset) to close")
    district: str | None = Field(None, pattern=DISTRICT_CODE, description="Or: the district (sector) to isolate")
    startsAt: AwareDatetime = Field(examples=["2026-12-10T09:00:00-06:00"])
    endsAt: AwareDatetime = Field(examples=["2026-12-10T14:00:00-06:00"])
    reason: str = Field(min_length=3, max_length=300, examples=["Reparación de fuga en línea principal"])
    notify: bool = Field(True, description="Queue a notice to every affected customer with an e-mail address")

