"""Signals the CRM core sends for apps above it (the core imports none of them).

`lead_accessed`: a person's record was opened (the lead page or panel, the API's retrieve).
Arguments: `actor` (the user), `lead_id`, `action` ("viewed") and, when there is one, `request`.
The audit app records it.
"""

from __future__ import annotations

from django.dispatch import Signal

lead_accessed = Signal()
