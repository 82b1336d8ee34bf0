"""manage.py erase_person EMAIL [--yes]: anonymise a person everywhere (asks first)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from privacy import services


class Command(BaseCommand):
    help = (
        "Erase the person with this email: personal fields anonymised, chat transcripts removed, "
        "admin log and audit trail scrubbed. The anonymised row stays for counts. Cannot be undone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")

    def handle(self, *args: Any, **options: Any) -> None:
        lead = services.find_person(options["email"])
        if lead is None:
            raise CommandError("No lead has this email. Check the spelling; erased people cannot be found.")
        if not options["yes"]:
            self.stdout.write(
                f"This erases lead #{lead.pk} ({lead.interactions.count()} interactions, "
                f"{lead.conversations.count()} chats). It cannot be undone."
            )
            answer = input("Type 'erase' to go on: ")
            if answer.strip().lower() != "erase":
                raise CommandError("Nothing was erased.")
        try:
            services.erase_person(lead=lead, by=None)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(self.style.SUCCESS(f"Lead #{lead.pk} erased."))
