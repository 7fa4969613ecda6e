"""Send windows: the next opening in the recipient's zone, pinned on DST days of both hemispheres.

Every expected instant is worked out by hand from the zone's published rules (noted beside
it), not recomputed with the code under test.
"""
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from dripline.errors import ValidationFailed
from dripline.windows import UTC, SendWindow, resolve_zone

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def window(start: str, end: str, days=None) -> SendWindow:
    return SendWindow.parse({"days": days or EVERY_DAY, "start": start, "end": end})


OFFICE = window("09:00", "17:00", WEEKDAYS)


# --- plain cases (UTC; 2026-03-02 is a Monday) -----------------------------------------------------


@pytest.mark.parametrize(
    "at,expected",
    [
        (utc(2026, 3, 2, 12, 0), utc(2026, 3, 2, 12, 0)),  # inside: at once
        (utc(2026, 3, 2, 9, 0), utc(2026, 3, 2, 9, 0)),  # the start is inside
        (utc(2026, 3, 2, 7, 0), utc(2026, 3, 2, 9, 0)),  # before: today's opening
        (utc(2026, 3, 2, 17, 0), utc(2026, 3, 3, 9, 0)),  # the end is outside
        (utc(2026, 3, 6, 18, 0), utc(2026, 3, 9, 9, 0)),  # Friday evening: Monday
        (utc(2026, 3, 7, 12, 0), utc(2026, 3, 9, 9, 0)),  # Saturday: Monday
    ],
)
def test_next_opening_in_utc(at, expected):
    assert OFFICE.next_opening(at, UTC) == expected


def test_the_answer_is_in_utc_whatever_the_input_zone():
    at = datetime(2026, 3, 2, 8, 0, tzinfo=ZoneInfo("Europe/Paris"))  # 07:00 UTC

    assert OFFICE.next_opening(at, UTC) == utc(2026, 3, 2, 9, 0)
    with pytest.raises(ValueError):
        OFFICE.next_opening(datetime(2026, 3, 2, 8, 0), UTC)


# --- 30- and 45-minute offsets -------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone,at,expected",
    [
        # India, UTC+5:30 all year: Mon 07:30 IST -> 09:00 IST = 03:30 UTC.
        ("Asia/Kolkata", utc(2026, 3, 2, 2, 0), utc(2026, 3, 2, 3, 30)),
        # Nepal, UTC+5:45: Mon 05:45 NPT -> 09:00 NPT = 03:15 UTC.
        ("Asia/Kathmandu", utc(2026, 3, 2, 0, 0), utc(2026, 3, 2, 3, 15)),
        # Chatham Islands, UTC+13:45 in (southern) summer: Mon 17:45 -> Tue 09:00 = Mon 19:15 UTC.
        ("Pacific/Chatham", utc(2026, 3, 2, 4, 0), utc(2026, 3, 2, 19, 15)),
        # Adelaide, UTC+10:30 in summer: Fri 18:30 ACDT -> Mon 09:00 ACDT = Sun 22:30 UTC.
        ("Australia/Adelaide", utc(2026, 3, 6, 8, 0), utc(2026, 3, 8, 22, 30)),
    ],
)
def test_half_and_three_quarter_hour_offsets(zone, at, expected):
    assert OFFICE.next_opening(at, ZoneInfo(zone)) == expected


# --- windows crossing midnight ------------------------------------------------------------------------

NIGHT = window("22:00", "06:00", ["fri", "sat"])  # Fri 22:00 - Sat 06:00 and Sat 22:00 - Sun 06:00


@pytest.mark.parametrize(
    "at,expected",
    [
        (utc(2026, 3, 6, 21, 0), utc(2026, 3, 6, 22, 0)),  # Fri evening: opens at 22:00
        (utc(2026, 3, 6, 23, 30), utc(2026, 3, 6, 23, 30)),  # Fri night: open
        (utc(2026, 3, 7, 5, 59), utc(2026, 3, 7, 5, 59)),  # Sat early: still Friday's window
        (utc(2026, 3, 7, 6, 0), utc(2026, 3, 7, 22, 0)),  # Sat 06:00: closed until Sat 22:00
        (utc(2026, 3, 8, 3, 0), utc(2026, 3, 8, 3, 0)),  # Sun early: Saturday's window
        (utc(2026, 3, 8, 7, 0), utc(2026, 3, 13, 22, 0)),  # Sun morning: next Friday
        (utc(2026, 3, 9, 1, 0), utc(2026, 3, 13, 22, 0)),  # Mon 01:00: Sunday opens no window
    ],
)
def test_a_window_crossing_midnight(at, expected):
    assert NIGHT.next_opening(at, UTC) == expected


def test_end_at_midnight_means_until_the_day_ends():
    evening = window("18:00", "00:00", ["mon"])

    assert evening.next_opening(utc(2026, 3, 2, 23, 59), UTC) == utc(2026, 3, 2, 23, 59)
    assert evening.next_opening(utc(2026, 3, 3, 0, 0), UTC) == utc(2026, 3, 9, 18, 0)


def test_a_window_crossing_midnight_in_a_45_minute_zone():
    # Kathmandu (UTC+5:45): Fri 22:00 NPT = Fri 16:15 UTC; Sat 06:00 NPT = Sat 00:15 UTC.
    zone = ZoneInfo("Asia/Kathmandu")
    assert NIGHT.next_opening(utc(2026, 3, 6, 12, 0), zone) == utc(2026, 3, 6, 16, 15)
    assert NIGHT.next_opening(utc(2026, 3, 7, 0, 14), zone) == utc(2026, 3, 7, 0, 14)
    assert NIGHT.next_opening(utc(2026, 3, 7, 0, 15), zone) == utc(2026, 3, 7, 16, 15)


# --- DST, northern hemisphere: Europe/London ------------------------------------------------------------
# Spring: Sun 2026-03-29 01:00 GMT -> 02:00 BST (at 01:00 UTC). Autumn: Sun 2026-10-25 02:00 BST -> 01:00 GMT
# (at 01:00 UTC): local 01:00-02:00 happens twice (00:00-01:00 UTC as BST, 01:00-02:00 UTC as GMT).

LONDON = ZoneInfo("Europe/London")


def test_london_spring_forward_moves_the_opening_an_hour_earlier_in_utc():
    daily = window("09:00", "17:00")
    assert daily.next_opening(utc(2026, 3, 28, 7, 0), LONDON) == utc(2026, 3, 28, 9, 0)  # GMT: 09:00 UTC
    assert daily.next_opening(utc(2026, 3, 28, 18, 0), LONDON) == utc(2026, 3, 29, 8, 0)  # BST: 08:00 UTC


def test_london_a_start_skipped_by_the_clocks_opens_at_the_jump():
    night = window("01:30", "03:00")  # 01:30 does not exist on 29 March
    assert night.next_opening(utc(2026, 3, 29, 0, 0), LONDON) == utc(2026, 3, 29, 1, 0)
    assert night.next_opening(utc(2026, 3, 29, 1, 59), LONDON) == utc(2026, 3, 29, 1, 59)  # 02:59 BST: open
    assert night.next_opening(utc(2026, 3, 29, 2, 0), LONDON) == utc(2026, 3, 30, 0, 30)  # 03:00 BST: closed


def test_london_a_window_wholly_inside_the_gap_does_not_open_that_day():
    lost = window("01:10", "01:50")
    assert lost.next_opening(utc(2026, 3, 29, 0, 0), LONDON) == utc(2026, 3, 30, 0, 10)  # Mon 01:10 BST


def test_london_fall_back_opens_at_the_first_and_closes_at_the_second_occurrence():
    late = window("01:30", "06:00")
    assert late.next_opening(utc(2026, 10, 25, 0, 0), LONDON) == utc(2026, 10, 25, 0, 30)  # first 01:30 (BST)
    early = window("00:00", "01:30")
    # 00:45 UTC is 01:45 BST; the wall clock will read 01:00-01:30 again (GMT): still open.
    assert early.next_opening(utc(2026, 10, 25, 0, 45), LONDON) == utc(2026, 10, 25, 0, 45)
    assert early.next_opening(utc(2026, 10, 25, 1, 29), LONDON) == utc(2026, 10, 25, 1, 29)
    assert early.next_opening(utc(2026, 10, 25, 1, 30), LONDON) == utc(2026, 10, 26, 0, 0)  # second 01:30: closed


def test_london_fall_back_moves_the_opening_an_hour_later_in_utc():
    daily = window("09:00", "17:00")
    assert daily.next_opening(utc(2026, 10, 24, 7, 0), LONDON) == utc(2026, 10, 24, 8, 0)  # BST
    assert daily.next_opening(utc(2026, 10, 24, 18, 0), LONDON) == utc(2026, 10, 25, 9, 0)  # GMT


# --- DST, southern hemisphere: Australia/Sydney, America/Santiago, Australia/Lord_Howe ---------------
# Sydney: DST ends Sun 2026-04-05 03:00 AEDT -> 02:00 AEST (Sat 16:00 UTC);
#         DST starts Sun 2026-10-04 02:00 AEST -> 03:00 AEDT (Sat 16:00 UTC).

SYDNEY = ZoneInfo("Australia/Sydney")


def test_sydney_dst_end_in_april_moves_the_opening_an_hour_later_in_utc():
    # Fri 3 April 18:00 AEDT -> Mon 6 April 09:00 AEST (UTC+10) = Sun 23:00 UTC (in March it was 22:00 UTC).
    assert OFFICE.next_opening(utc(2026, 4, 3, 7, 0), SYDNEY) == utc(2026, 4, 5, 23, 0)
    assert OFFICE.next_opening(utc(2026, 3, 29, 12, 0), SYDNEY) == utc(2026, 3, 29, 22, 0)


def test_sydney_dst_start_in_october_a_start_in_the_gap_opens_at_the_jump():
    small_hours = window("02:30", "04:00", ["sun"])  # 02:30 does not exist on Sun 4 October
    assert small_hours.next_opening(utc(2026, 10, 3, 15, 0), SYDNEY) == utc(2026, 10, 3, 16, 0)  # 03:00 AEDT
    assert small_hours.next_opening(utc(2026, 10, 3, 16, 59), SYDNEY) == utc(2026, 10, 3, 16, 59)  # 03:59: open
    # 04:00 AEDT: closed until next Sunday 02:30 AEDT = Sat 10 October 15:30 UTC.
    assert small_hours.next_opening(utc(2026, 10, 3, 17, 0), SYDNEY) == utc(2026, 10, 10, 15, 30)


def test_santiago_midnight_does_not_exist_on_the_day_dst_starts():
    # Chile: Sat 2026-09-05 24:00 (-04) -> Sun 01:00 (-03), at Sun 04:00 UTC.
    overnight = window("00:00", "08:00", ["sun"])
    zone = ZoneInfo("America/Santiago")
    assert overnight.next_opening(utc(2026, 9, 6, 3, 0), zone) == utc(2026, 9, 6, 4, 0)  # opens at 01:00 -03
    assert overnight.next_opening(utc(2026, 9, 6, 11, 0), zone) == utc(2026, 9, 13, 3, 0)  # next Sunday 00:00 -03


def test_lord_howe_half_hour_dst_shift():
    # Lord Howe: Sun 2026-10-04 02:00 (+10:30) -> 02:30 (+11), at Sat 15:30 UTC.
    zone = ZoneInfo("Australia/Lord_Howe")
    assert window("02:15", "03:00").next_opening(utc(2026, 10, 3, 15, 0), zone) == utc(2026, 10, 3, 15, 30)
    # 02:05-02:25 is wholly skipped: Monday 02:05 (+11) = Sun 15:05 UTC.
    assert window("02:05", "02:25").next_opening(utc(2026, 10, 3, 15, 0), zone) == utc(2026, 10, 4, 15, 5)


# --- the JSON form and zones ---------------------------------------------------------------------------


def test_round_trip():
    raw = {"days": ["mon", "fri"], "start": "09:30", "end": "17:45"}
    assert SendWindow.parse(raw).to_dict() == raw


@pytest.mark.parametrize(
    "raw,field",
    [
        ("09-17", "send_window"),
        ({"days": [], "start": "09:00", "end": "17:00"}, "send_window.days"),
        ({"days": ["monday"], "start": "09:00", "end": "17:00"}, "send_window.days"),
        ({"days": "mon", "start": "09:00", "end": "17:00"}, "send_window.days"),
        ({"days": ["mon"], "start": "9:00", "end": "17:00"}, "send_window.start"),
        ({"days": ["mon"], "start": "24:00", "end": "17:00"}, "send_window.start"),
        ({"days": ["mon"], "start": "09:00", "end": "17:60"}, "send_window.end"),
        ({"days": ["mon"], "start": "09:00"}, "send_window.end"),
        ({"days": ["mon"], "start": "09:00", "end": "09:00"}, "send_window.end"),
        ({"days": ["mon"], "start": "09:00", "end": "17:00", "zone": "UTC"}, "send_window.zone"),
    ],
)
def test_invalid_windows_name_the_field(raw, field):
    with pytest.raises(ValidationFailed) as caught:
        SendWindow.parse(raw)
    assert caught.value.field == field


def test_zone_falls_back_from_contact_to_team_to_utc():
    assert resolve_zone("Asia/Kolkata", "Europe/London") == ZoneInfo("Asia/Kolkata")
    assert resolve_zone(None, "Europe/London") == ZoneInfo("Europe/London")
    assert resolve_zone("Mars/Olympus_Mons", "") == UTC
    assert resolve_zone("../etc/passwd") == UTC


@pytest.mark.parametrize(
    "zone_name,start,night",
    [
        # Spring-forward weeks: the clock jumps over the window's end (London, Santiago) or near its start.
        ("Europe/London", utc(2026, 3, 26), window("22:30", "01:30", ["sat", "sun"])),
        ("Australia/Sydney", utc(2026, 10, 1), window("22:30", "02:30", ["sat", "sun"])),
        ("America/Santiago", utc(2026, 9, 3), window("23:30", "00:30", ["sat", "sun"])),
        ("Australia/Lord_Howe", utc(2026, 10, 1), window("22:30", "02:15", ["sat", "sun"])),
        # Fall-back weeks, with a window clear of the repeated hour (that hour is pinned by hand above).
        ("Europe/London", utc(2026, 10, 22), window("22:30", "00:30", ["sat", "sun"])),
        ("Australia/Sydney", utc(2026, 4, 2), window("22:30", "01:30", ["sat", "sun"])),
    ],
)
def test_every_minute_of_a_dst_week_agrees_with_the_wall_clock(zone_name, start, night):
    """Brute force: minute by minute through a DST-change week, the window is open exactly
    when the local wall clock says so, and a closed minute's next opening is the first
    open minute after it."""
    zone = ZoneInfo(zone_name)
    minutes = [start + timedelta(minutes=m) for m in range(7 * 24 * 60)]
    next_open = None
    for minute in reversed(minutes):
        if _open_by_wall_clock(night, minute.astimezone(zone)):
            next_open = minute
        if next_open is not None:
            assert night.next_opening(minute, zone) == next_open, minute


def _open_by_wall_clock(w: SendWindow, local: datetime) -> bool:
    wall, day = local.time(), local.weekday()
    if wall >= w.start:
        return day in w.days
    return wall < w.end and (day - 1) % 7 in w.days
