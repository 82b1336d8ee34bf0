"""Train the predictive model on every outcome so far, now; exit non-zero unless a model was promoted."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from scoring.ml import services
from scoring.ml.models import RunState


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(share: float, message: str) -> None:
            if options["verbosity"] >= 2:
                self.stderr.write(f"{share:4.0%} {message}")

        outcome = services.train_and_promote(progress=progress)
        self.stdout.write(outcome.message)
        if outcome.state == RunState.COLD_START:
            raise CommandError("Not trained: too few outcomes (see above).")
        if outcome.version is None or not outcome.version.is_promoted:
            raise CommandError("Trained, but the candidate was not promoted; the model in use stays.")
        self.stdout.write(self.style.SUCCESS(f"Model version {outcome.version.pk} is now in use."))
