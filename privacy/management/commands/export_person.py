"""manage.py export_person EMAIL [--format json|csv] [--output FILE]: everything held about a person."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from privacy import services


class Command(BaseCommand):
    help = "Export everything held about the person with this email (JSON to stdout, or CSV; see docs/privacy.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--format", choices=services.EXPORT_FORMATS, default="json")
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        lead = services.find_person(options["email"])
        if lead is None:
            raise CommandError("No lead has this email. Check the spelling; erased people cannot be found.")
        try:
            body, _ = services.export_person(
                lead=lead, fmt=options["format"], by=None, channel="command line"
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if options["output"]:
            Path(options["output"]).write_text(body, encoding="utf-8")
            self.stderr.write(f"Wrote lead #{lead.pk}'s data to {options['output']}.")
        else:
            self.stdout.write(body, ending="\n" if options["format"] == "json" else "")
