"""Beat's schedule: sweeps expire instead of piling up while no worker consumes."""

from __future__ import annotations

from django.conf import settings


def test_every_frequent_sweep_expires_before_the_next_one_is_sent() -> None:
    sweeps = {
        name: entry
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if isinstance(entry["schedule"], int | float)
    }
    assert {"scoring-sweep-stale", "ml-sweep-runs"} <= set(sweeps)
    for name, entry in sweeps.items():
        assert 0 < entry["options"]["expires"] < entry["schedule"], name
