"""Non-interactive handheld operations for scripts and end-to-end tests.

The same code paths as the screens (enrol, Repository writes, syncer rounds), without a
terminal: `python -m aquacis.cli handheld enrol|sync|status|read|read-route` (tui/cli.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.store import EdgeStore
from sync.plausibility import CONFIRMED_FLAG

from .enrol import EnrolError, enrol, read_enrolment
from .i18n import t
from .repository import Repository
from .syncer import TransportFactory, http_transport, sync_once
from .validation import EntryError, Verdict, format_local, format_m3, parse_reading_m3
from .verdicts import issue_lines


class HandheldError(RuntimeError):
    """A user-facing error (message already translated)."""


def open_repo(db: str | Path) -> Repository:
    enrolment = read_enrolment(db)
    if enrolment is None:
        raise HandheldError(t("err_not_enrolled"))
    return Repository(EdgeStore.open(db, site_id=enrolment.site_id))


def do_enrol(db: str | Path, url: str, credential: str, gateway_url: str = "", reader_id: str = "",
             transport_factory: TransportFactory = http_transport) -> dict[str, Any]:
    try:
        repo, outcome = enrol(db, url, credential, gateway_url=gateway_url, reader_id=reader_id,
                              transport_factory=transport_factory)
    except EnrolError as exc:
        raise HandheldError(t(exc.key, **exc.params)) from exc
    try:
        return {**status_of(repo), "first_sync_ok": outcome.ok, "first_sync_error": outcome.error}
    finally:
        repo.store.close()


def do_sync(db: str | Path, only: str | None = None,
            transport_factory: TransportFactory = http_transport) -> dict[str, Any]:
    repo = open_repo(db)
    try:
        out = sync_once(repo, transport_factory, only=only)
        return {
            "ok": out.ok, "peer": out.peer.kind if out.peer else None, "pushed": out.pushed, "pulled": out.pulled,
            "refused": out.refused, "error": out.error, "credential_rejected": out.credential_rejected,
            "attempts": [{"peer": a.peer, "url": a.url, "ok": a.ok, "error": a.error} for a in out.attempts],
            "pending": repo.pending_count(),
        }
    finally:
        repo.store.close()


def status_of(repo: Repository) -> dict[str, Any]:
    last = repo.last_sync()
    e = repo.enrolment()
    return {
        "site_id": repo.store.site_id,
        "municipality": e.municipality if e else None,
        "zone": e.zone if e else None,
        "pending": repo.pending_count(),
        "refusals": repo.refusals(),
        "last_sync": None if last is None else {"at": last.at, "peer": last.peer, "url": last.url},
        "routes": [{"id": r.id, "name": r.name, "read": r.read, "skipped": r.skipped, "pending": r.pending,
                    "total": r.total} for r in repo.routes()],
        "open_work_orders": len(repo.work_orders()),
    }


def do_status(db: str | Path) -> dict[str, Any]:
    repo = open_repo(db)
    try:
        return status_of(repo)
    finally:
        repo.store.close()


def do_read(db: str | Path, serial: str, value_m3: str | None, observation: str | None = None, *,
            confirm: bool = False, correct: bool = False) -> str:
    """Record one reading (committed when this returns); errors as the screen shows them.

    The same checks as the screen: an implausible value (sync.plausibility) is refused unless
    `confirm` (then flagged `confirmed_out_of_range`); a meter already read this cycle is
    refused unless `correct`, and then the new entry supersedes this cycle's one.
    """
    repo = open_repo(db)
    try:
        if not repo.has_routes():
            raise HandheldError(t("err_no_routes"))
        if not repo.known_meter(serial):
            raise HandheldError(t("err_unknown_meter", serial=serial[:60]))  # echo bounded
        if observation:
            known = repo.observation(observation)
            if known is None:
                raise HandheldError(t("err_obs_unknown", code=observation[:20]))
            observation = known.code  # as the catalogue spells it
        try:
            value_l = parse_reading_m3(value_m3) if value_m3 else None
        except EntryError as exc:
            raise HandheldError(t(exc.key, **exc.params)) from exc
        if value_l is None and not observation:
            raise HandheldError(t("reading_need_value_or_obs"))
        info = repo.meter(serial)
        current = repo.current_reading(info)
        if current is not None and not correct:
            what = (t("already_read_value", value=format_m3(current.value_l)) if current.value_l is not None
                    else t("already_read_obs", code=current.observation_code))
            raise HandheldError(t("err_already_read_cli", serial=serial, what=what,
                                  when=format_local(current.taken_at)))
        supersedes = current.id if current is not None else None
        alarms: tuple[str, ...] = ()
        if value_l is not None:
            try:
                verdict = repo.judge(serial, value_l, supersedes=supersedes)
            except EntryError as exc:
                raise HandheldError(t(exc.key, **exc.params)) from exc
            # an observation code is the reader's explanation, as on the screen
            if verdict.implausible and not observation:
                if not confirm:
                    raise HandheldError(implausible_text(verdict))
                alarms = (CONFIRMED_FLAG,)
        return repo.record_reading(serial, value_l, observation_code=observation, alarms=alarms,
                                   supersedes=supersedes)
    finally:
        repo.store.close()


def implausible_text(verdict: Verdict) -> str:
    return " ".join([*issue_lines(verdict), t("err_implausible_cli")])


def do_read_route(db: str | Path, route_id: str, step_l: int = 15_000, *, confirm: bool = False) -> list[str]:
    """Read every pending meter of a route at its last value + step (scripted walks, e2e tests).

    Each value is judged like any other (sync.plausibility): when one is implausible and not
    `confirm`, nothing is recorded and the error names that meter."""
    repo = open_repo(db)
    try:
        if not repo.has_routes():
            raise HandheldError(t("err_no_routes"))
        known = [r.id for r in repo.routes()]
        if route_id not in known:
            raise HandheldError(t("err_unknown_route", route=route_id, known=", ".join(known)))
        planned: list[tuple[str, int, tuple[str, ...]]] = []
        for m in repo.route_meters(route_id):
            if m.status != "pending":
                continue
            value_l = (m.last_value_l or 0) + step_l
            try:
                verdict = repo.judge(m.serial, value_l)
            except EntryError as exc:
                raise HandheldError(f"{m.serial}: {t(exc.key, **exc.params)}") from exc
            if verdict.implausible and not confirm:
                raise HandheldError(f"{m.serial}: {implausible_text(verdict)}")
            planned.append((m.serial, value_l, (CONFIRMED_FLAG,) if verdict.implausible else ()))
        return [repo.record_reading(serial, value_l, alarms=alarms) for serial, value_l, alarms in planned]
    finally:
        repo.store.close()
