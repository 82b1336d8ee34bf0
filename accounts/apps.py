from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        # Registers the API token scheme with drf-spectacular (the API docs' "Authorize" button).
        from accounts import schema  # noqa: F401
