from __future__ import annotations

from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "scoring.ml"
    label = "ml"
    verbose_name = "Predictive scoring"
