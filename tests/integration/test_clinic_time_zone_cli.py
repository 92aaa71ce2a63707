"""`labinterp clinics create NAME --time-zone TZ` and `labinterp clinics time-zone NAME TZ`: the
zone in which a clinic's date-times without a UTC offset (HL7 v2) are read."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_import import run


def test_a_clinic_gets_its_time_zone_and_an_unknown_zone_is_refused_by_name(
    tmp_path: Path,
) -> None:
    created = run(tmp_path, "clinics", "create", "north", "--time-zone", "Europe/Brussels")
    assert created.returncode == 0, created.stderr
    moved = run(tmp_path, "clinics", "time-zone", "north", "America/New_York")
    assert moved.returncode == 0, moved.stderr
    assert "read in America/New_York" in moved.stdout.decode()
    refused = run(tmp_path, "clinics", "time-zone", "north", "Mars/Base")
    assert refused.returncode == 1
    assert "unknown time zone 'Mars/Base'" in refused.stderr.decode()
    assert "Traceback" not in refused.stderr.decode()
