"""Signals the chat sends for the apps above it (the chat imports none of them).

visitor_identified(sender=Conversation, site_id, visitor_id, lead_id, conversation_id): a
conversation got its lead (the visitor wrote, asked for a person or identified, or a signed
identity or an earlier conversation's token linked it). The conversation token is the server's
proof that this visitor id's browser is that lead; the website tracking links the visitor's
earlier page views to the lead from it. Sent inside the chat's transaction.

callback_requested(sender=Conversation, lead_id, conversation_id, follow_up_id): a visitor asked
to be called back (out of hours) and a new callback follow-up was created. Sent inside the chat's
transaction; the follow-up sequences enrol the lead in a sequence triggered by it.
"""

from __future__ import annotations

from django.dispatch import Signal

visitor_identified = Signal()
callback_requested = Signal()
