"""Public chat-widget endpoints (under /api/v1/chat/), all in the OpenAPI schema.

No secret is ever in a path: the conversation is named by its token in the X-Chat-Token header
(URLs land in access logs, proxies and browser history)."""

from __future__ import annotations

from django.urls import URLPattern, path

from chatbot import api

site = "sites/<str:key>/"
conv = site + "conversation/"

urlpatterns: list[URLPattern] = [
    path(site + "config/", api.ConfigView.as_view(), name="chat-config"),
    path(site + "conversations/", api.StartView.as_view(), name="chat-start"),
    path(conv + "messages/", api.MessagesView.as_view(), name="chat-messages"),
    path(conv + "identify/", api.IdentifyView.as_view(), name="chat-identify"),
    path(conv + "email-code/", api.EmailCodeView.as_view(), name="chat-email-code"),
    path(conv + "email-code/confirm/", api.EmailCodeConfirmView.as_view(), name="chat-email-code-confirm"),
    path(conv + "handoff/", api.HandoffView.as_view(), name="chat-handoff"),
    path(conv + "pageviews/", api.PageViewView.as_view(), name="chat-pageview"),
    path(conv + "heartbeat/", api.HeartbeatView.as_view(), name="chat-heartbeat"),
    path(conv + "feedback/", api.FeedbackView.as_view(), name="chat-feedback"),
    path(conv + "callback/", api.CallbackView.as_view(), name="chat-callback"),
    path(conv + "follow-up/", api.FollowUpView.as_view(), name="chat-follow-up"),
    path(conv + "close/", api.CloseView.as_view(), name="chat-close"),
]
