"""Import jobs through Celery: one claim per job, and the sweep for lost or dead jobs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from dataio import services
from dataio.models import ImportJob
from dataio.tasks import run_import_job
from leadcrm.models import Lead
from tests.factories import make_manager

pytestmark = pytest.mark.django_db


def job_for(text: str) -> ImportJob:
    return services.start_job(data=text.encode(), name="leads.csv", user=make_manager())


def test_the_celery_task_runs_a_queued_import_once(django_capture_on_commit_callbacks) -> None:
    job = job_for("email\na@example.com\n")
    job.status = ImportJob.Status.CHECKED
    job.save()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.queue_job(job=job, dry_run=False)
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert job.status == "done"
    assert job.created == 1
    run_import_job.delay(job.pk)  # a second delivery finds it done and does nothing
    assert Lead.objects.count() == 1


def test_the_real_run_needs_a_dry_run_first() -> None:
    job = job_for("email\na@example.com\n")
    with pytest.raises(Exception, match="dry run first"):
        services.queue_job(job=job, dry_run=False)


def test_a_file_gone_bad_on_disk_fails_the_job_with_its_reason() -> None:
    job = job_for("email\na@example.com\n")
    job.file.save("x.csv", ContentFile(b"email\n"), save=True)
    ImportJob.objects.filter(pk=job.pk).update(status="checking")
    services.run_job(job.pk)
    job.refresh_from_db()
    assert job.status == "failed"
    assert "no rows of data" in job.error


def test_sweep_resends_lost_jobs_and_fails_dead_ones() -> None:
    lost = job_for("email\na@example.com\n")
    ImportJob.objects.filter(pk=lost.pk).update(
        status="checking", queued_at=timezone.now() - timedelta(minutes=5)
    )
    dead = job_for("email\nb@example.com\n")
    ImportJob.objects.filter(pk=dead.pk).update(
        status="running", started_at=timezone.now() - timedelta(hours=2)
    )
    assert services.sweep_jobs() == 2
    lost.refresh_from_db()
    dead.refresh_from_db()
    assert lost.status == "checked"  # eager in tests: re-sent and run
    assert dead.status == "failed"
    assert "nothing was imported" in dead.error
