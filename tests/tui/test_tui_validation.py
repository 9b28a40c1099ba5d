"""The app's entry module: parsing, dates, and the shared plausibility rule behind `validate`
(its own cases: tests/sync/test_plausibility.py)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui import i18n
from tui.validation import (
    DAY_MS,
    MX_TZ,
    EntryError,
    Issue,
    Past,
    parse_reading_m3,
    parse_taken_at,
    validate,
)

T0 = 1_780_000_000_000


def hist(*values: int, step_days: int = 30) -> list[Past]:
    return [Past(T0 + i * step_days * DAY_MS, v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("text", "litres"),
    [("1234", 1_234_000), ("1234.5", 1_234_500), ("1234,567", 1_234_567), (" 0012.3 ", 12_300), ("0", 0)],
)
def test_parse_reading_accepts_m3_with_dot_or_comma(text: str, litres: int) -> None:
    assert parse_reading_m3(text) == litres


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", "err_reading_empty"),
        ("abc", "err_reading_not_number"),
        ("12a4", "err_reading_not_number"),
        ("1.2.3", "err_reading_not_number"),
        ("1234.5678", "err_reading_not_number"),
        ("-5", "err_reading_negative"),
        ("١٢٣٤", "err_reading_not_number"),  # Arabic-Indic digits
        ("１２", "err_reading_not_number"),  # full-width digits
    ],
)
def test_parse_reading_refuses_with_a_message_key(text: str, key: str) -> None:
    with pytest.raises(EntryError) as err:
        parse_reading_m3(text)
    assert err.value.key == key
    # every key has a Spanish text that is not the key itself
    assert i18n.ES[key] and i18n.t(key, text=text) != key


@given(st.integers(min_value=0, max_value=999_999_999_999))
def test_parse_reading_round_trips_any_litre_value(litres: int) -> None:
    m3 = f"{litres // 1000}.{litres % 1000:03d}"
    assert parse_reading_m3(m3) == litres


def test_validate_normal_value_has_no_issue() -> None:
    h = hist(1_000_000, 1_030_000, 1_060_000)
    v = validate(1_090_000, h, T0 + 90 * DAY_MS)
    assert v.ok and v.consumption_l == 30_000


def test_validate_flags_too_high_and_too_low() -> None:
    h = hist(1_000_000, 1_030_000, 1_060_000)
    at = T0 + 90 * DAY_MS
    assert validate(1_900_000, h, at).issues == (Issue.TOO_HIGH,)  # an extra digit typed
    assert validate(1_061_000, h, at).issues == (Issue.TOO_LOW,)
    assert validate(1_060_000, h, at).issues == (Issue.SAME_AS_LAST,)


def test_validate_lower_than_last_offers_rollover_only_near_register_max() -> None:
    h = hist(99_950_000, 99_980_000)  # a 5-digit m³ register close to 99,999.999
    at = T0 + 60 * DAY_MS
    v = validate(10_000, h, at, register_max_l=99_999_999)
    assert v.issues == (Issue.LOWER_THAN_LAST,)
    assert v.rollover_plausible and v.consumption_l == 99_999_999 + 1 - 99_980_000 + 10_000
    v2 = validate(1_000_000, hist(2_000_000, 2_030_000), at, register_max_l=99_999_999)
    assert v2.issues == (Issue.LOWER_THAN_LAST,) and not v2.rollover_plausible


def test_validate_without_history_accepts_anything_in_the_register() -> None:
    assert validate(123, [], T0).ok
    with pytest.raises(EntryError) as err:
        validate(100_000_000, [], T0, register_max_l=99_999_999)
    assert err.value.key == "err_reading_over_register"


def test_validate_uses_the_undated_registry_value_and_the_tariff_class() -> None:
    # issue 14: every seeded meter has last_value_l and no last_read_at
    assert validate(15_000, [Past(None, 19_113)], T0, use_class="DOM_MEDIO").issues == (Issue.LOWER_THAN_LAST,)
    assert validate(88_888_000, [Past(None, 669_414)], T0, use_class="DOM_MEDIO").issues == (Issue.TOO_HIGH,)


def test_validate_ignores_history_after_the_reading_time() -> None:
    h = hist(1_000_000, 1_030_000, 5_000_000)
    v = validate(1_060_000, h, T0 + 60 * DAY_MS - 1)  # before the third reading
    assert v.last == h[1]


def _ms(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=MX_TZ).timestamp() * 1000)


def test_parse_taken_at_local_time() -> None:
    now = _ms(2026, 11, 27, 12, 0)
    assert parse_taken_at("27/11/2026 09:15", now) == _ms(2026, 11, 27, 9, 15)
    assert parse_taken_at("27/11/2026", now) == _ms(2026, 11, 27)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("31/02/2026 10:00", "err_date_invalid"),
        ("2026-11-27", "err_date_invalid"),
        ("27/13/2026", "err_date_invalid"),
        ("", "err_date_empty"),
        ("28/11/2026 10:00", "err_date_future"),
        ("01/01/2025 10:00", "err_date_too_old"),
        ("20/11/2026 10:00", "err_date_before_last"),
    ],
)
def test_parse_taken_at_refuses_impossible_dates(text: str, key: str) -> None:
    now = _ms(2026, 11, 27, 12, 0)
    with pytest.raises(EntryError) as err:
        parse_taken_at(text, now, last_ms=_ms(2026, 11, 21))
    assert err.value.key == key


def test_catalogs_have_the_same_keys() -> None:
    assert set(i18n.ES) == set(i18n.EN)


def test_every_refusal_code_and_work_order_state_has_a_spanish_label() -> None:
    from sync.changes import REFUSAL_CODES
    from sync.schema import WORK_ORDER_STATUS
    from sync.vocab.work_orders import EVENT_KINDS, PRIORITIES, WORK_ORDER_TYPES

    assert all(f"refusal_{c}" in i18n.ES for c in REFUSAL_CODES)
    assert all(f"refusal_hint_{c}" in i18n.ES and f"refusal_hint_{c}" in i18n.EN for c in REFUSAL_CODES)
    assert all(f"wo_status_{s}" in i18n.ES for s in WORK_ORDER_STATUS.order)
    assert all(f"wo_type_{x}" in i18n.ES and f"wo_type_{x}" in i18n.EN for x in WORK_ORDER_TYPES)
    assert all(f"wo_prio_{x}" in i18n.ES for x in PRIORITIES)
    assert all(f"wo_event_{x}" in i18n.ES for x in EVENT_KINDS)


def test_language_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AQUACIS_LANG", "en")
    assert i18n.t("key_quit") == "Quit"
    monkeypatch.setenv("AQUACIS_LANG", "es_MX")
    assert i18n.t("key_quit") == "Salir"
