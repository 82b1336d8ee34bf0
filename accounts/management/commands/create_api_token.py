"""`manage.py create_api_token USERNAME --name N --days D`: create an API token and print its secret once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import create_token


class Command(BaseCommand):
    help = "Create an API token for a user and print the secret (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="what the token is for")
        parser.add_argument(
            "--days", type=int, default=None, help="days until it expires (default: the setting)"
        )

    def handle(self, *args: Any, username: str, name: str, days: int | None, **options: Any) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"No user named {username!r}. Create the user first (manage.py createsuperuser)."
            )
        try:
            new = create_token(user=user, name=name, days=days)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stderr.write(
            f"Token “{new.token.name}” for {username}, expires {new.token.expires_at:%Y-%m-%d %H:%M} UTC. "
            "Copy it now: it is not shown again."
        )
        self.stdout.write(new.secret)
