"""Signals the CRM core (and scoring, chat) send for apps above them (the core imports none of them).

`lead_accessed`: a person's record was opened (the lead page or panel, the API's retrieve).
Arguments: `actor` (the user), `lead_id`, `action` ("viewed") and, when there is one, `request`.
The audit app records it.

The lifecycle signals below are sent inside the transaction that made the change, so a receiver
that stores something (the webhooks app stores one delivery row per subscribed URL) commits or
rolls back with the change itself. Receivers must be quick and set-based: no network calls.

`lead_created`: `lead` (the stored Lead).
`lead_status_changed`: `lead` (after the change), `status_from`, `status_to`.
`grades_changed`: `changes`, a list of (lead_id, old_grade, new_grade) for every lead of a score
    write whose grade changed (scoring.store, one list per write, however many leads).
`chat_handed_off`: `lead_id` (may be None), `conversation_id`, `site_id` — the first hand-off of a
    chat to a person.
`leads_imported`: `created`, the ids of the leads an import created, and `status_changes`, a list
    of (lead_id, status_from, status_to) for existing leads whose status the import changed (their
    outcome, won or lost). Sent by `leadcrm.services.import_leads` once per chunk of rows (up to
    IMPORT_CHUNK), after the chunk's leads are written; never for a dry run. The set-based
    counterpart of `lead_created` and `lead_status_changed`: receivers must not query per lead.

`leads_erased`: `lead_ids`, the leads `leadcrm.services.anonymise_leads` just anonymised (up to
ERASE_CHUNK per send), sent inside the erasure's transaction, so whatever a receiver deletes (the
website tracking deletes the leads' visitor links and waiting events) goes with the erasure.

`report_chat_responses`: asked (not told) by the manager reports: `since` (datetime or None for
all time) and `until`; a receiver returns `{user_id: leadcrm.reports.ChatResponse}` for chats
handed off in that window (the chat app answers: handoff → the first agent message).
"""

from __future__ import annotations

from django.dispatch import Signal

lead_accessed = Signal()
lead_created = Signal()
lead_status_changed = Signal()
grades_changed = Signal()
chat_handed_off = Signal()
leads_imported = Signal()
leads_erased = Signal()
report_chat_responses = Signal()
