"""Recompute every lead's rule score and probability now, in this process (for cron, deploys, imports)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring import services


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reason", default="Recompute from the command line", help="Shown on the rules page."
        )
        parser.add_argument(
            "--queue",
            action="store_true",
            help="Queue it for a worker instead of running here (returns at once).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["queue"]:
            run = services.schedule_recompute(reason=options["reason"])
            self.stdout.write(f"Recompute #{run.pk} queued; the rules page shows its progress.")
            return
        try:
            run = services.recompute_all(reason=options["reason"])
        except Exception as exc:
            raise CommandError(f"Recompute failed: {type(exc).__name__}: {exc}") from exc
        skipped = [e for e in run.errors if e.get("rule_id")]
        self.stdout.write(
            f"Recompute #{run.pk}: {run.total_leads} leads, {run.changed_leads} changed"
            + (f"; {len(skipped)} rules failed and were skipped." if skipped else ".")
        )
        for error in skipped:
            self.stderr.write(f"  Rule “{error.get('rule')}”: {error.get('error')}")
        if skipped:
            raise CommandError("Some rules failed; fix them on the rules page and recompute again.")
