"""`manage.py set_playbook shop`: start the playbook from the defaults for a kind of business."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leadcrm import playbook
from leadcrm.models import PlaybookKind


class Command(BaseCommand):
    help = "Start the playbook from the default rules for a kind of business (shop, services, software)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=PlaybookKind.values, help="The kind of business.")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="Replace the rules of an existing playbook (edits are lost).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        current = playbook.current()
        if current is not None and not options["replace"]:
            raise CommandError(
                f"A playbook ({current.get_kind_display()}) is already set; add --replace to start over."
            )
        done = playbook.apply_defaults(kind=options["kind"])
        self.stdout.write(
            self.style.SUCCESS(f"Playbook: {done.rules.count()} rules for “{done.get_kind_display()}”.")
        )
