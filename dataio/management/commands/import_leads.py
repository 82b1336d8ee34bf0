"""`manage.py import_leads FILE [--dry-run] [--map COLUMN=FIELD …] [--on-duplicate update|skip] [--outcomes]`

The pages' import path without the pages: the same parsing, mapping suggestions and services.
Prints a summary and each refused row (line: reason); exits 1 when any row was refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dataio import columns, services
from dataio.parsing import FileProblem, max_bytes, read_table, too_big_message


class Command(BaseCommand):
    help = "Import leads (and optionally their past outcomes) from a CSV or Excel file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="A .csv or .xlsx file with a header row.")
        parser.add_argument("--dry-run", action="store_true", help="Check every row; write nothing.")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=FIELD",
            help="Map a column (its header) to a lead field, owner, outcome, outcome_date, lost_reason, "
            "custom:NAME, or nothing (COLUMN=) to ignore it. Repeat for several; the rest is suggested.",
        )
        parser.add_argument("--on-duplicate", choices=("update", "skip"), default="skip")
        parser.add_argument(
            "--outcomes", action="store_true", help="Import won/lost outcomes with their dates."
        )
        parser.add_argument("--user", default="", help="Username recorded as the importer (consents, audit).")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"No file at {path}.")
        if path.stat().st_size > max_bytes():
            raise CommandError(too_big_message(path.stat().st_size))
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}.")
        try:
            table = read_table(path.read_bytes(), path.name)
        except FileProblem as exc:
            raise CommandError(f"{path.name}: {exc}") from None
        for note in table.notes:
            self.stdout.write(f"Note: {note}")
        mapping = self._mapping(table.headers, options["map"], outcomes=options["outcomes"])
        problems = columns.check_mapping(mapping, outcomes=options["outcomes"])
        if problems:
            raise CommandError("The mapping does not work: " + " ".join(problems))
        self.stdout.write(
            "Columns: "
            + ", ".join(f"{h} → {t or '(ignored)'}" for h, t in zip(table.headers, mapping, strict=True))
        )
        result = services.import_table(
            table,
            mapping,
            on_duplicate=options["on_duplicate"],
            dry_run=options["dry_run"],
            user=user,
            label=f"{path.name} (manage.py import_leads)",
        )
        for row in result.refused:
            self.stdout.write(f"line {row.line}: {row.reason}")
        verb = "would be" if options["dry_run"] else "were"
        self.stdout.write(
            f"{len(table.rows)} rows: {result.count('create')} {verb} created, {result.count('update')} updated, "
            f"{result.count('skip')} skipped, {len(result.refused)} refused"
            + (
                ""
                if options["dry_run"]
                else f"; {result.consents} consent records, {result.outcomes} outcomes"
            )
            + (" (dry run: nothing was written)." if options["dry_run"] else ".")
        )
        if result.refused:
            raise CommandError(f"{len(result.refused)} row(s) refused; see the lines above.", returncode=1)

    def _mapping(self, headers: list[str], pairs: list[str], *, outcomes: bool) -> list[str]:
        mapping = columns.suggest(headers, outcomes=outcomes)
        by_name = {h.lower(): i for i, h in enumerate(headers)}
        for pair in pairs:
            column, sep, target = pair.partition("=")
            if not sep:
                raise CommandError(f"--map {pair!r}: write COLUMN=FIELD, e.g. --map 'E-mail=email'.")
            index = by_name.get(column.strip().lower())
            if index is None:
                raise CommandError(
                    f"--map {pair!r}: the file has no column {column!r} (it has: {', '.join(headers)})."
                )
            mapping[index] = target.strip()
        return mapping
