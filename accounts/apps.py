from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and API tokens"

    def ready(self) -> None:
        # schema registers the API token scheme with drf-spectacular (the API docs' "Authorize"
        # button); time_zones puts the profile's zone in the session at login (its middleware reads it).
        from accounts import schema, time_zones  # noqa: F401
