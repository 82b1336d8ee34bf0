"""The import pages (managers: upload → mapping → dry run → import, with a progress bar) and the
CSV exports of the queue and of a segment (salespeople get the leads they can see)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dataio import services
from dataio.forms import MappingForm, RowFilterForm, UploadForm, upload_limit_mb
from dataio.models import ImportJob, ImportRowResult
from dataio.parsing import FileProblem, max_bytes, too_big_message
from leadcrm import selectors
from leadcrm.forms import QueueFilterForm
from leadcrm.http import HtmxHttpRequest, request_user
from leadcrm.models import Segment
from leadcrm.permissions import manager_required

ROWS_PER_PAGE = 100


def _errors(exc: ValidationError) -> list[str]:
    return list(exc.messages)


@csrf_exempt  # the size is checked before anything reads the body; the CSRF check follows
@manager_required
@require_http_methods(["GET", "POST"])
def upload(request: HtmxHttpRequest) -> HttpResponse:
    """Upload a file: a bad one is refused here with the reason, before anything is kept."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if request.method == "POST" and length.isdigit() and int(length) > max_bytes() + 64 * 1024:
        # Refused before the body is read (the CSRF middleware would read it): a 200 MB upload
        # never reaches the disk. Nothing changes here, so the answer needs no CSRF token.
        context = {
            "form": UploadForm(),
            "problem": too_big_message(int(length)),
            "limit_mb": upload_limit_mb(),
        }
        response = render(request, "dataio/upload.html", context, status=413)
        response["Connection"] = "close"
        return response
    return _upload_form(request)


@csrf_protect
def _upload_form(request: HtmxHttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    problem = ""
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = services.start_job(data=upload.read(), name=upload.name or "upload.csv", user=request.user)
        except FileProblem as exc:
            problem = str(exc)
        else:
            return redirect("dataio:mapping", job_id=job.pk)
    recent = ImportJob.objects.select_related("created_by")[:10]
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "problem": problem, "limit_mb": upload_limit_mb(), "recent": recent}
    return render(request, "dataio/upload.html", context, status=status)


@manager_required
@require_http_methods(["GET", "POST"])
def mapping(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    """Choose what each column becomes (suggested from its header), then start the dry run."""
    job = get_object_or_404(ImportJob, pk=job_id)
    form = MappingForm(request.POST or None, job=job)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        try:
            services.save_mapping(
                job=job,
                mapping=form.mapping(),
                on_duplicate=form.cleaned_data["on_duplicate"],
                with_outcomes=form.cleaned_data["with_outcomes"],
            )
            services.queue_job(job=job, dry_run=True)
        except ValidationError as exc:
            problems = _errors(exc)
        else:
            return redirect("dataio:job", job_id=job.pk)
    status = 400 if request.method == "POST" else 200
    return render(
        request, "dataio/mapping.html", {"job": job, "form": form, "problems": problems}, status=status
    )


def _job_context(request: HtmxHttpRequest, job: ImportJob) -> dict[str, object]:
    rows_filter = RowFilterForm(request.GET or None)
    show = rows_filter.cleaned_data.get("show", "") if rows_filter.is_valid() else ""
    rows = ImportRowResult.objects.filter(job=job)
    if show:
        rows = rows.filter(action=show)
    page = Paginator(rows.order_by("line"), ROWS_PER_PAGE).get_page(request.GET.get("page"))
    return {
        "job": job,
        "done": services.live_progress(job),
        "page": page,
        "rows_filter": rows_filter,
        "show": show,
        "mapping": [
            (header, target) for header, target in zip(job.headers, job.mapping, strict=False) if target
        ],
        "now": timezone.now(),
    }


@manager_required
@require_GET
def job(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    """A job's status: a progress bar while it runs (HTMX polls it), then per-row results."""
    job = get_object_or_404(ImportJob, pk=job_id)
    context = _job_context(request, job)
    if request.htmx and request.htmx.target == "import-status":
        return render(request, "dataio/partials/status.html", context)
    return render(request, "dataio/job.html", context)


@manager_required
@require_POST
def run(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    """Import for real what the dry run showed."""
    job = get_object_or_404(ImportJob, pk=job_id)
    try:
        services.queue_job(job=job, dry_run=False)
    except ValidationError as exc:
        context = _job_context(request, job)
        context["problems"] = _errors(exc)
        return render(request, "dataio/job.html", context, status=400)
    return redirect("dataio:job", job_id=job.pk)


@manager_required
@require_GET
def error_report(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    """The refused (and skipped) rows with their line and reason, as CSV."""
    job = get_object_or_404(ImportJob, pk=job_id)
    response = StreamingHttpResponse(services.error_report(job), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-rows.csv"'
    return cast(HttpResponse, response)  # streamed; manager_required passes any response through


# --- Export ---------------------------------------------------------------------------------------


def _csv_response(lines: object, filename: str) -> HttpResponseBase:
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")  # type: ignore[arg-type]
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def export_queue(request: HtmxHttpRequest) -> HttpResponseBase:
    """The queue with the page's filters as CSV, streamed; only the leads the user may see."""
    user = request_user(request)
    segments, owners = selectors.filter_choices(user=user)
    form = QueueFilterForm(request.GET or None, segments=segments, owners=owners)
    filters = form.valid_filters()
    if form.errors:
        errors = "; ".join(
            f"{form.fields[f].label}: {' '.join(str(m) for m in e)}" for f, e in form.errors.items()
        )
        return HttpResponse(
            f"Some filters were not understood: {errors}", status=400, content_type="text/plain"
        )
    filters.pop("page", None)
    leads = selectors.lead_queue(user=user, **filters)
    described = ", ".join(f"{k}={v}" for k, v in sorted(filters.items()) if k != "q")
    if "q" in filters:
        described = ", ".join(
            x for x in (described, "a search") if x
        )  # search terms are kept out of the trail
    count = leads.count()
    services.record_export(
        user=user,
        count=count,
        what=f"queue with filters {described or 'none (the working queue)'}",
        request=request,
    )
    return _csv_response(services.export_lines(leads), f"leads-{timezone.now():%Y%m%d-%H%M}.csv")


@login_required
@require_GET
def export_segment(request: HtmxHttpRequest, segment_id: int) -> HttpResponseBase:
    """A segment's members as CSV (every status), streamed; only the leads the user may see."""
    user = request_user(request)
    segment = get_object_or_404(Segment, pk=segment_id)
    leads = selectors.lead_queue(user=user, segment=segment.pk, status="all")
    count = leads.count()
    services.record_export(
        user=user, count=count, what=f"segment #{segment.pk} ({segment.name})", request=request
    )
    return _csv_response(
        services.export_lines(leads), f"segment-{segment.pk}-{timezone.now():%Y%m%d-%H%M}.csv"
    )
