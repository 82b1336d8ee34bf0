"""The staff pages' one socket (`ws/staff/`): alerts (leadcrm.alerts) and "the live chats changed".

Every signed-in staff page opens it (static/leadcrm/staff_alerts.js). It is push-only: whatever a
page sends is ignored. Frames carry ids and kinds, never a visitor's name or words, because the
groups are shared by people who may see different leads; a page reads what it may show over HTTP
(`chatbot:waiting`), filtered by the viewer's role.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from chatbot import realtime
from leadcrm import alerts
from leadcrm.permissions import is_manager, is_salesperson


@database_sync_to_async
def _roles(user: Any) -> tuple[bool, bool]:
    """(has a staff role, is a manager) for an active signed-in user; (False, False) otherwise."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False, False
    manager = is_manager(user)
    return manager or is_salesperson(user), manager


class StaffConsumer(AsyncJsonWebsocketConsumer):
    """Joins the user's, everyone's and (managers) the managers' alert groups, and the chat inbox.

    Anonymous users and users without a role are refused (close 4403).
    """

    groups_joined: tuple[str, ...] = ()

    async def connect(self) -> None:
        user = self.scope.get("user")
        staff, manager = await _roles(user)
        if not staff:
            await self.close(code=4403)
            return
        assert user is not None
        joined = [alerts.user_group(user.pk), alerts.ALL_GROUP, realtime.INBOX_GROUP]
        if manager:
            joined.append(alerts.MANAGERS_GROUP)
        self.groups_joined = tuple(joined)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Push-only: whatever a page sends (text or bytes) is ignored, never parsed."""

    async def staff_alert(self, event: dict[str, Any]) -> None:
        await self.send_json({k: v for k, v in event.items() if k != "type"} | {"type": "alert"})

    async def chat_status(self, event: dict[str, Any]) -> None:
        # The inbox group's status events (a chat started, was handed off, taken, closed): the page
        # refreshes its live chats list and waiting strip over HTTP. Nothing of the chat is passed on.
        await self.send_json({"type": "inbox", "event": str(event.get("event", ""))[:20]})
