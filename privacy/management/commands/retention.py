"""manage.py retention --dry-run | --apply: leads past PRIVACY_RETENTION_MONTHS, shown or anonymised."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from privacy import services


class Command(BaseCommand):
    help = "Show (--dry-run) or anonymise (--apply) the unconverted leads inactive past the retention period."

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--dry-run", action="store_true", help="Only say what would be anonymised.")
        mode.add_argument("--apply", action="store_true", help="Anonymise them now.")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        preview = services.retention_preview(now=now, sample=10)
        if preview.cutoff is None:
            raise CommandError("Retention is off (PRIVACY_RETENTION_MONTHS=0); nothing to do.")
        if options["dry_run"]:
            self.stdout.write(
                f"{preview.count} unconverted leads inactive since before {preview.cutoff:%Y-%m-%d %H:%M} UTC "
                f"({preview.months} months) would be anonymised."
            )
            for candidate in preview.sample:
                lead = candidate.lead
                self.stdout.write(
                    f"  lead #{lead.pk}  status {lead.status}  last active {candidate.last_touch:%Y-%m-%d}"
                )
            if preview.next_run:
                self.stdout.write(f"Next scheduled run: {preview.next_run:%Y-%m-%d %H:%M} UTC.")
            return
        erased = services.apply_retention(now=now)
        self.stdout.write(self.style.SUCCESS(f"{erased} leads anonymised."))
