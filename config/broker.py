"""kombu's Redis transport, with a worker that survives a broker dropping in mid-task.

The defect (kombu 5.7.0, Celery 5.7.0, redis-py 8.1): when Redis goes away while a task is in
flight with acks_late, the worker's ack fails, Celery closes the broker connection, and closing the
channel tries to hand the unacknowledged message back to Redis ("Restoring 1 unacknowledged
message(s)"). By then the channel's transport has lost its connection parameters, so building a
Redis client raises AttributeError ('NoneType' object has no attribute 'hostname'). That error is
not one of the connection errors Celery ignores while closing, so it escapes as "Unrecoverable
error" and the worker exits for good instead of reconnecting. The same AttributeError kills the
worker when a task that was running during the drop finishes after the reconnect and acks on the
old, closed channel.

Handing the message back is an optimisation: Redis keeps every unacknowledged message in its
`unacked` hash and returns it to the queue after the visibility timeout, and the scoring sweeps
find any work that was lost with it from the database. So here a failure to hand messages back is
reported in one line and the close goes on; the worker then reconnects as it does after any
other connection loss. Selected in settings with CELERY_BROKER_TRANSPORT.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from kombu.transport import redis
from redis import exceptions as redis_errors

logger = logging.getLogger(__name__)


class QoS(redis.QoS):
    # kombu declares `_delivered = None` on the class and sets an OrderedDict (delivery tag ->
    # message) in __init__; its inline types stop at the None.
    _delivered: OrderedDict[str, Any]  # type: ignore[assignment]  # kombu types it as None

    def restore_unacked(self, client: Any = None) -> None:
        try:
            super().restore_unacked(client)
        except Exception as exc:  # the connection is gone, whatever form the error takes
            logger.warning(
                "Could not return %d unacknowledged message(s) to the queue while the broker is away "
                "(%s: %s); Redis returns them after the visibility timeout",
                len(self._delivered),
                type(exc).__name__,
                exc,
            )
            self._delivered.clear()


class Channel(redis.Channel):
    QoS = QoS

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # A channel whose connection was closed (after a broker drop) has no parameters left; a late
        # ack of a task that finished meanwhile lands here. Say so with a connection error, which
        # Celery logs and survives ("Couldn't ack"), instead of an AttributeError, which it does not.
        if self.connection is None or self.connection.client is None:
            raise redis_errors.ConnectionError("this broker channel was closed when the connection was lost")
        return super()._connparams(asynchronous=asynchronous)


class Transport(redis.Transport):
    Channel = Channel
