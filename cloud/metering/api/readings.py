"""Readings: third-party submission, listing with validation, audited edits, reviews."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Response
from pydantic import ConfigDict, Field, computed_field, field_validator, model_validator
from sqlalchemy.engine import Engine

from cloud.api.deps import (
    ERROR_RESPONSES,
    BillingAdminDep,
    EngineDep,
    PrincipalDep,
    SettingsDep,
    not_found,
)
from cloud.api.shapes import ApiModel, TimeCursor, cursor_page, parse_time_cursor, time_cursor
from cloud.auth import Principal, require_roles
from cloud.errors import Invalid
from cloud.metering import service as metering
from cloud.registry import service
from cloud.registry.tables import contracts, meter_installations
from cloud.settings import CloudSettings
from sync import plausibility
from sync.vocab.readings import ReadingSource

router = APIRouter(prefix="/readings", tags=["readings"], responses=ERROR_RESPONSES)
ReadingWritersDep = Annotated[Principal, Depends(require_roles("admin", "billing", "reader", "technician"))]

# A register beyond 10^12 L (a billion m³) is not a water meter; also keeps values in BIGINT.
MAX_L = 10**12


class ReadingIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, pattern=r"^[0-9a-fA-F-]{36}$",
                           description="Your UUID for the reading: resending the same id is a no-op (idempotent)")
    meter_serial: str = Field(min_length=1, max_length=60, examples=["WM-EXP-01-Z01-000001"])
    taken_at: dt.datetime = Field(description="When the register was read, timezone-aware ISO 8601",
                                  examples=["2026-03-01T09:30:00-06:00"])
    value_l: int | None = Field(None, ge=0, le=MAX_L, description="Register in litres (give this or value_m3)")
    value_m3: Decimal | None = Field(None, ge=0, le=MAX_L // 1000, max_digits=15, decimal_places=3,
                                     description="Register in m³, up to 3 decimals")
    observation_code: str | None = Field(None, max_length=40, description="Reader observation code (observac)")
    reader_id: str | None = Field(None, max_length=80)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    confirmed: bool = Field(False, description="The value was checked and is right although implausible (lower "
                            "than the last known value, or far above the usual use): without it such a value is "
                            "refused with 422 implausible_reading")

    @field_validator("taken_at")
    @classmethod
    def _with_offset(cls, at: dt.datetime) -> dt.datetime:
        if at.tzinfo is None:  # an error about `takenAt` (a model check would only name the body)
            raise ValueError("must carry a timezone offset, e.g. 2026-03-01T09:30:00-06:00")
        return at

    @model_validator(mode="after")
    def _one_value(self) -> ReadingIn:
        if (self.value_l is None) == (self.value_m3 is None):
            raise ValueError("give exactly one of valueL or valueM3")
        return self

    def litres(self) -> int:
        if self.value_l is not None:
            return self.value_l
        assert self.value_m3 is not None
        return int((self.value_m3 * 1000).to_integral_value())


class Validation(ApiModel):
    status: Literal["valid", "suspect", "invalid"]
    flags: list[str]
    consumption_l: int | None
    true_up_l: int | None = None
    days: float | None = None
    daily_avg_l: float | None = None
    previous_id: str | None = None
    reviewed_by: str | None = None
    review_note: str | None = None


class ReadingOut(ApiModel):
    id: str
    municipality: str
    zone: str | None
    meter_serial: str
    taken_at: int = Field(serialization_alias="taken_at", description="Deprecated (epoch milliseconds): read `takenAt`")
    taken_at_iso: str = Field(serialization_alias="taken_at_iso", description="Deprecated: read `takenAt`")
    value_l: int | None = Field(description="Register in litres; null for an observation-only entry (the reader "
                                            "could not read and left an observation code)")
    source: str | None
    reader_id: str | None = None
    observation_code: str | None = None
    supersedes: str | None = None
    alarms: list[str] = Field(default_factory=list, description="Device alarms and reading flags "
                              "(confirmed_out_of_range: a person confirmed an implausible value)")
    validation: Validation | None = Field(None, description="VEE outcome; null until validated")

    @computed_field(description="When the register was read, ISO 8601 (UTC)")  # type: ignore[prop-decorator]
    @property
    def takenAt(self) -> str:  # noqa: N802 (the API's member name)
        return self.taken_at_iso


@router.post("", status_code=201, response_model=ReadingOut, responses={200: {"description": "Already stored (same id)"}})
def post_reading(body: ReadingIn, response: Response,
                 principal: ReadingWritersDep,
                 engine: EngineDep, settings: SettingsDep) -> dict[str, Any]:
    """Record a meter reading from a third party or the office. It is validated at once (VEE):
    the answer carries the status (valid, suspect, invalid) and the flags."""
    try:
        doc, created = _record(body, principal, engine, settings)
    except sa.exc.IntegrityError:
        if body.id is None:
            raise
        # The same id sent to two cloud processes at once: the other one stored it first. Asked
        # again, this request sees that reading and answers as a retry does (200, or 409 when the
        # content differs), never a conflict for an idempotent resend.
        doc, created = _record(body, principal, engine, settings)
    if not created:
        response.status_code = 200
    return doc


def _record(body: ReadingIn, principal: Principal, engine: Engine, settings: CloudSettings) -> tuple[dict[str, Any], bool]:
    with engine.begin() as conn:
        meter = service.meter_row(conn, body.meter_serial)
        if meter is None or not principal.sees_zone(meter["municipality"], meter["zone"]):
            raise Invalid(f"unknown meter {body.meter_serial!r}", code="unknown_meter")
        taken_at = service.to_ms(body.taken_at)
        verdict = metering.plausibility_of(conn, meter, body.litres(), taken_at)
        # an observation code is the reader's explanation (as in the app): kept, and VEE flags it
        if verdict.implausible and not body.confirmed and not body.observation_code \
                and not _same_id_stored(conn, body.id):
            raise Invalid(_implausible_reason(verdict), code="implausible_reading")
        doc, created = metering.record_reading(
            conn, principal, meter, reading_id=body.id.lower() if body.id else None,
            taken_at=taken_at, value_l=body.litres(), source=ReadingSource.API.value,
            observation_code=body.observation_code, reader_id=body.reader_id or principal.id, lat=body.lat, lon=body.lon,
            future_tolerance_ms=settings.future_tolerance_s * 1000,
            alarms=[plausibility.CONFIRMED_FLAG] if body.confirmed and verdict.implausible else [],
        )
    return doc, created


def _m3(litres: int) -> str:
    return f"{Decimal(litres) / 1000:,.3f} m³"


def _implausible_reason(v: plausibility.Verdict) -> str:
    last = _m3(v.last.value_l) if v.last else "?"
    if plausibility.Issue.LOWER_THAN_LAST in v.issues:
        why = f"lower than the last known value {last}"
    else:
        high = _m3(v.bounds.high_l) if v.bounds else "?"
        why = f"above the plausible maximum {high} after the last known value {last}"
    return f"value_l: {_m3(v.value_l)} is {why}; resend with confirmed=true if the register really shows it"


def _same_id_stored(conn: Any, reading_id: str | None) -> bool:
    # a retry of a reading already stored answers as before (idempotent), never a new refusal
    return reading_id is not None and metering.get_reading(conn, reading_id.lower()) is not None


class ReadingPage(ApiModel):
    items: list[ReadingOut]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last page")


@router.get("", response_model=ReadingPage)
def list_readings(principal: PrincipalDep, engine: EngineDep,
                  meter: str | None = Query(None, max_length=60, description="Meter serial"),
                  contract: str | None = Query(None, max_length=80,
                                               description="Contract id: readings of every meter it has had"),
                  since: dt.datetime | None = Query(None), until: dt.datetime | None = Query(None),
                  after: TimeCursor = None, limit: int = Query(500, ge=1, le=5000)) -> dict[str, Any]:
    """Readings of one meter (or of a contract's meters), oldest first, each with its validation;
    a cursor page."""
    if (meter is None) == (contract is None):
        raise Invalid("give exactly one of meter or contract")
    with engine.begin() as conn:
        if meter is not None:
            m = service.meter_row(conn, meter)
            if m is None or not principal.sees_zone(m["municipality"], m["zone"]):
                raise not_found("meter", meter)
            serials = [meter]
        else:
            ct = conn.execute(sa.select(contracts.c.municipality, contracts.c.zone, contracts.c.service_point_id)
                              .where(contracts.c.id == contract)).first()
            if ct is None or not principal.sees_zone(ct.municipality, ct.zone):
                raise not_found("contract", contract)
            serials = [r[0] for r in conn.execute(
                sa.select(meter_installations.c.meter_serial)
                .where(meter_installations.c.service_point_id == ct.service_point_id)
                .order_by(meter_installations.c.installed_at))]
        # Readings that arrived by sync are validated on first look (and by the background pass).
        for serial in serials:
            metering.validate_pending_for_meter(conn, serial)
        rows = metering.list_readings(conn, serials, since=service.to_ms(since) if since else None,
                                      until=service.to_ms(until) if until else None,
                                      after=parse_time_cursor(after) if after else None, limit=limit + 1)
    return cursor_page(rows, limit, key=lambda r: time_cursor(r["taken_at"], r["id"]))


class EditIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    value_l: int = Field(ge=0, le=MAX_L, description="The corrected register, litres")
    reason: str = Field(min_length=3, max_length=500, description="Why (kept in the audit trail)")


@router.post("/{reading_id}/edit", status_code=201, response_model=ReadingOut)
def edit_reading(reading_id: str, body: EditIn, principal: BillingAdminDep,
                 engine: EngineDep) -> dict[str, Any]:
    """Correct a reading. Readings are never changed: a new reading supersedes the old one, and the
    edit (who, when, why, before/after) goes to the event log."""
    with engine.begin() as conn:
        old = metering.get_reading(conn, reading_id)
        if old is None or not principal.sees(old["municipality"]):
            raise not_found("reading", reading_id)
        meter = service.meter_row(conn, old["meter_serial"])
        if meter is None:
            raise Invalid(f"meter {old['meter_serial']!r} of this reading no longer exists")
        doc, _ = metering.record_reading(conn, principal, meter, reading_id=None, taken_at=old["taken_at"],
                       value_l=body.value_l, source=ReadingSource.API.value, observation_code=old["observation_code"],
                       reader_id=principal.id, supersedes=reading_id, now=old["taken_at"])
        from cloud.events import record_event

        record_event(conn, "ReadingEdited", "reading", reading_id, principal,
                     {"new_reading_id": doc["id"], "before_l": old["value_l"], "after_l": body.value_l,
                      "reason": body.reason}, municipality=old["municipality"])
        return doc  # type: ignore[no-any-return]


class ReviewIn(ApiModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["valid", "invalid"]
    note: str = Field(min_length=3, max_length=500)


@router.post("/{reading_id}/review", response_model=ReadingOut)
def review(reading_id: str, body: ReviewIn, principal: BillingAdminDep,
           engine: EngineDep) -> dict[str, Any]:
    """Accept or reject a suspect reading (the reading itself is unchanged)."""
    with engine.begin() as conn:
        old = metering.get_reading(conn, reading_id)
        if old is None or not principal.sees(old["municipality"]):
            raise not_found("reading", reading_id)
        metering.validate_pending_for_meter(conn, old["meter_serial"])
        metering.review_reading(conn, principal, reading_id, body.status, body.note)
        return metering.reading_out(conn, old)


