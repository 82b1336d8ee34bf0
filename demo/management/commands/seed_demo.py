"""Seed a believable small business: users, leads with months of history, segments, follow-ups."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from demo.crm import DEMO_PASSWORD, SALES_USERS, import_xeducation, seed_demo_data
from demo.seed import seed_apps
from leadcrm import services
from leadcrm.models import PlaybookKind


class Command(BaseCommand):
    help = "Create demo users, leads, interactions, segments and follow-ups (idempotent, deterministic)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seed", type=int, default=7, help="Random seed; the same seed gives the same data."
        )
        parser.add_argument("--leads", type=int, default=3000, help="How many demo leads (default 3000).")
        parser.add_argument(
            "--now", help="Pretend today is this date (YYYY-MM-DD or ISO time); default: now."
        )
        parser.add_argument(
            "--import-xeducation",
            action="store_true",
            help="Also import ../shared/data/xeducation_leads.csv as past leads with outcomes.",
        )
        parser.add_argument(
            "--xeducation-limit", type=int, default=None, help="Import only the first N rows."
        )
        parser.add_argument(
            "--skip-apps", action="store_true", help="Only the CRM data: no rules, model or chat site."
        )
        parser.add_argument(
            "--playbook",
            choices=PlaybookKind.values,
            default=PlaybookKind.SHOP,
            help="The playbook to start from when none is set yet (default: shop, the demo bakery's).",
        )
        parser.add_argument(
            "--site-origin",
            action="append",
            default=[],
            metavar="URL",
            help="Also allow the demo chat site on this origin, e.g. http://127.0.0.1:8011 (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["leads"] < 0:
            raise CommandError("--leads must be 0 or more.")
        now = self._parse_now(options["now"])
        origins = [self._parse_origin(o) for o in options["site_origin"]]
        started = time.monotonic()
        report = seed_demo_data(seed=options["seed"], leads=options["leads"], now=now)
        self.stdout.write(
            f"Demo data: {report.leads_created} new leads, {report.interactions_created} interactions, "
            f"{report.follow_ups_created} follow-ups, {report.segments_created} segments, "
            f"{report.users_created} users."
        )
        if options["import_xeducation"]:
            path = Path(settings.SHARED_DATA_DIR) / "xeducation_leads.csv"
            try:
                imported = import_xeducation(path, now=now, limit=options["xeducation_limit"])
            except FileNotFoundError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Imported {imported} historical X Education leads (leaky columns left out).")
        if not options["skip_apps"]:
            for line in seed_apps(now=now, site_origins=origins, playbook_kind=options["playbook"]):
                self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"Seeded in {time.monotonic() - started:.1f}s."))
        self.stdout.write(f"Logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write("  manager   — manager: admin, scoring rules, reports")
        for name in SALES_USERS:
            self.stdout.write(f"  {name:<9} — salesperson: lead queue")

    def _parse_origin(self, raw: str) -> str:
        parsed = urlsplit(raw.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path not in ("", "/"):
            raise CommandError(f"--site-origin {raw!r} is not an origin like http://127.0.0.1:8011.")
        return f"{parsed.scheme}://{parsed.netloc}"

    def _parse_now(self, raw: str | None) -> datetime:
        if not raw:
            return timezone.now()
        parsed = parse_datetime(raw)
        if parsed is None:
            day = parse_date(raw)
            if day is None:
                raise CommandError(f"--now {raw!r} is not a date (YYYY-MM-DD) or an ISO date-time.")
            parsed = datetime(day.year, day.month, day.day, 12)
        parsed = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)
        if services.is_future(parsed):
            raise CommandError(f"--now {raw!r} is in the future: demo history cannot happen after today.")
        return parsed
