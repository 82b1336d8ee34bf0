"""The import pages (managers) and the CSV exports (everyone, their visible leads)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.urls import reverse

from audit.models import Entry
from dataio.models import ImportJob, ImportRowResult
from leadcrm.models import Lead
from tests.factories import make_lead, make_manager, make_segment, make_user

pytestmark = pytest.mark.django_db

CSV = b"First name,E-mail,Country,Newsletter\nAnn,ann@example.com,DE,yes\nBob,bob@example.com,Germany,no\n"


def upload(client, data: bytes = CSV, name: str = "leads.csv"):
    return client.post(reverse("dataio:upload"), {"file": SimpleUploadedFile(name, data, "text/csv")})


def test_salespeople_cannot_import(client) -> None:
    client.force_login(make_user())
    assert client.get(reverse("dataio:upload")).status_code == 403
    assert upload(client).status_code == 403


def test_the_whole_flow_upload_mapping_dry_run_import(client, django_capture_on_commit_callbacks) -> None:
    manager = make_manager()
    client.force_login(manager)
    response = upload(client)
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("dataio:mapping", args=[job.pk])
    assert job.mapping == ["first_name", "email", "country", "marketing_consent"]

    page = client.get(response.url)
    assert page.status_code == 200
    assert b'<option value="email" selected>' in page.content
    assert b"ann@example.com" in page.content

    form = {f"col_{i}": target for i, target in enumerate(job.mapping)} | {"on_duplicate": "skip"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("dataio:mapping", args=[job.pk]), form)
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "checked"
    assert (job.created, job.refused) == (1, 1)
    assert Lead.objects.count() == 0  # a dry run writes nothing

    page = client.get(reverse("dataio:job", args=[job.pk]))
    text = page.content.decode()
    assert "Would create" in text
    assert "country: Use a two-letter ISO country code" in text
    assert "<td>3</td>" in text  # the refused row's line

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("dataio:run", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "done"
    assert job.created == 1
    assert job.refused == 1
    assert list(Lead.objects.values_list("email", flat=True)) == ["ann@example.com"]
    report = b"".join(client.get(reverse("dataio:error_report", args=[job.pk])).streaming_content).decode()
    assert report.splitlines()[1].startswith('3,refuse,"country: Use a two-letter')
    listing = client.get(reverse("dataio:upload"))
    assert listing.status_code == 200
    assert "leads.csv" in listing.content.decode()  # the recent imports
    # Imported once: running it again is refused with a message, not a second import.
    again = client.post(reverse("dataio:run", args=[job.pk]))
    assert again.status_code == 400
    assert b"imported already" in again.content


def test_the_progress_partial_polls_while_running_and_stops_when_done(client) -> None:
    client.force_login(make_manager())
    upload(client)
    job = ImportJob.objects.get()
    ImportJob.objects.filter(pk=job.pk).update(status="running", total_rows=2)
    headers = {"HX-Request": "true", "HX-Target": "import-status"}
    partial = client.get(reverse("dataio:job", args=[job.pk]), headers=headers).content.decode()
    assert partial.startswith("{#") is False
    assert 'hx-trigger="every 1s"' in partial
    assert "<progress" in partial
    assert "<html" not in partial
    ImportJob.objects.filter(pk=job.pk).update(status="done", created=2)
    partial = client.get(reverse("dataio:job", args=[job.pk]), headers=headers).content.decode()
    assert "hx-trigger" not in partial
    assert "Imported" in partial


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The submitted file is empty"),
        (b"email\n", "no rows of data"),
        (b"ann@example.com,Ann\n", "looks like data"),
        (b"email\na\x00b@example.com\n", "NUL"),
    ],
)
def test_bad_files_get_a_clear_message_and_keep_nothing(client, data: bytes, message: str) -> None:
    client.force_login(make_manager())
    response = upload(client, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert ImportJob.objects.count() == 0


def test_a_200_mb_upload_is_refused_with_413_before_it_is_read(client) -> None:
    client.force_login(make_manager())
    response = client.post(
        reverse("dataio:upload"),
        data=b"x",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(200 * 1024 * 1024),
    )
    assert response.status_code == 413
    assert "The file is 200.0 MB; the limit is 50 MB" in response.content.decode()


def test_a_bad_mapping_is_explained(client) -> None:
    client.force_login(make_manager())
    upload(client)
    job = ImportJob.objects.get()
    form = {"col_0": "email", "col_1": "email", "col_2": "", "col_3": "", "on_duplicate": "skip"}
    response = client.post(reverse("dataio:mapping", args=[job.pk]), form)
    assert response.status_code == 400
    assert "Two columns map to" in response.content.decode()


def rows(response: StreamingHttpResponse) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode("utf-8").lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(body)))


def test_export_streams_the_filtered_queue_and_is_audited(client) -> None:
    manager = make_manager()
    make_lead(email="a@example.com", source="referral")
    make_lead(email="b@example.com", source="event")
    make_lead(email="c@example.com", source="referral", first_name="=HYPERLINK(1)")
    client.force_login(manager)
    response = client.get(reverse("dataio:export_queue"), {"source": "referral", "q": "example"})
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    exported = rows(response)
    assert sorted(r["email"] for r in exported) == ["a@example.com", "c@example.com"]
    assert "'=HYPERLINK(1)" in [r["first_name"] for r in exported]  # no formula runs in a spreadsheet
    entry = Entry.objects.get(action="exported")
    assert entry.actor == manager
    assert "2 leads" in entry.summary
    assert "source=referral" in entry.summary
    assert "example" not in entry.summary  # the search term stays out of the trail


def test_salespeople_export_only_the_leads_they_can_see(client) -> None:
    me, other = make_user(), make_user()
    make_lead(email="mine@example.com", owner=me)
    make_lead(email="free@example.com")
    make_lead(email="theirs@example.com", owner=other)
    client.force_login(me)
    exported = rows(client.get(reverse("dataio:export_queue"), {"status": "all"}))
    assert sorted(r["email"] for r in exported) == ["free@example.com", "mine@example.com"]


def test_segment_export_and_bad_filters(client) -> None:
    segment = make_segment()
    inside = make_lead(email="in@example.com", status="won")
    make_lead(email="out@example.com")
    segment.members.add(inside)
    client.force_login(make_manager())
    exported = rows(client.get(reverse("dataio:export_segment", args=[segment.pk])))
    assert [r["email"] for r in exported] == ["in@example.com"]
    assert client.get(reverse("dataio:export_queue"), {"grade": "Z9"}).status_code == 400
    assert client.get(reverse("dataio:export_segment", args=[999999])).status_code == 404


def test_export_needs_a_login(client) -> None:
    response = client.get(reverse("dataio:export_queue"))
    assert response.status_code == 302
    assert "/login/" in response.url


def test_dry_run_rows_are_paginated_and_filterable(client, django_capture_on_commit_callbacks) -> None:
    client.force_login(make_manager())
    data = "email\n" + "".join(f"p{i}@example.com\n" for i in range(150)) + "bad\n"
    upload(client, data.encode())
    job = ImportJob.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("dataio:mapping", args=[job.pk]), {"col_0": "email", "on_duplicate": "skip"})
    assert ImportRowResult.objects.filter(job=job).count() == 151
    page2 = client.get(reverse("dataio:job", args=[job.pk]), {"page": 2}).content.decode()
    assert "Page 2 of 2" in page2
    refused = client.get(reverse("dataio:job", args=[job.pk]), {"show": "refuse"}).content.decode()
    assert "<td>152</td>" in refused
    assert "<td>2</td>" not in refused
