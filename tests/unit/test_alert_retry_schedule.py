"""A webhook that does not answer 2xx is tried again after waits that double from the base,
never longer than the cap, each varied by at most a quarter so alerts that failed together
are not all tried again in the same second."""

from __future__ import annotations

import datetime as dt

from labinterp.config import load_settings
from labinterp.services.alerts import RetryPolicy

POLICY = RetryPolicy(base_seconds=30, cap_seconds=3600)


def seconds(delay: dt.timedelta) -> float:
    return delay.total_seconds()


def test_waits_double_from_the_base_without_jitter_at_its_middle():
    waits = [seconds(POLICY.delay(n, jitter=0.5)) for n in range(1, 9)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600]


def test_every_wait_is_longer_than_the_one_before_whatever_the_jitter_until_the_cap():
    for n in range(1, 7):
        assert seconds(POLICY.delay(n + 1, jitter=0.0)) > seconds(POLICY.delay(n, jitter=0.999))


def test_jitter_varies_a_wait_by_at_most_a_quarter_and_never_past_the_cap():
    assert seconds(POLICY.delay(1, jitter=0.0)) == 22.5
    assert 37.4 < seconds(POLICY.delay(1, jitter=0.999)) < 37.5
    assert seconds(POLICY.delay(50, jitter=0.999)) == 3600
    assert seconds(POLICY.delay(10_000, jitter=0.0)) == 3600  # no overflow


def test_the_give_up_time_is_a_minute_at_least_so_a_first_try_always_fits():
    assert load_settings({"LABINTERP_ALERT_GIVE_UP": "0"}).alert_give_up_seconds == 60
    assert load_settings({"LABINTERP_ALERT_GIVE_UP": "600"}).alert_give_up_seconds == 600
    assert load_settings({}).alert_give_up_seconds == 86400
