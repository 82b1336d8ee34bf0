"""Signals the privacy app sends for the apps above it (it imports none of them).

`person_data_requested`: sent by `privacy.services.person_data` with `lead_id` while it gathers
everything held about a person for an export. Each receiver returns a dict of sections of its own,
{section name: [record, …]}, each record a flat JSON-able dict (with an "id" when it has one); the
export adds them to the JSON and, one row per value, to the CSV (record = the section name). The
website tracking answers with the person's linked visitor ids and their waiting events.
Receivers only read, with a few queries each.
"""

from __future__ import annotations

from django.dispatch import Signal

person_data_requested = Signal()
