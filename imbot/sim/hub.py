"""Fan-out of live changes to the phones' event streams (the chat page's SSE)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["PhoneHub"]

Message = tuple[str, str]

# A listener that falls this far behind is cut off; its page reconnects and re-reads
# the timeline, which costs less than holding an unbounded backlog.
_BUFFER = 1000


class PhoneHub:
    """Per-number listeners; ``publish`` never waits."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[MemoryObjectSendStream[Message]]] = {}
        self._closed = False

    @property
    def active(self) -> bool:
        """Whether anyone listens at all."""
        return bool(self._listeners)

    def watching(self, number: str) -> bool:
        """Whether anyone listens to ``number`` (so callers can skip rendering)."""
        return bool(self._listeners.get(number))

    @contextmanager
    def listen(self, number: str) -> Iterator[MemoryObjectReceiveStream[Message]]:
        """Receive ``(event, data_json)`` pairs for ``number`` while the block runs.

        The stream ends when the hub closes (server shutdown) or the listener lags.
        """
        send, receive = anyio.create_memory_object_stream[Message](_BUFFER)
        if self._closed:
            send.close()
        else:
            self._listeners.setdefault(number, set()).add(send)
        try:
            yield receive
        finally:
            listeners = self._listeners.get(number)
            if listeners is not None:
                listeners.discard(send)
                if not listeners:
                    del self._listeners[number]
            send.close()
            receive.close()

    def publish(self, number: str, event: str, data: Any) -> None:
        """Send one event to every listener of ``number``."""
        listeners = self._listeners.get(number)
        if not listeners:
            return
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        for send in list(listeners):
            try:
                send.send_nowait((event, payload))
            except anyio.WouldBlock:
                send.close()
                listeners.discard(send)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                listeners.discard(send)

    def close(self) -> None:
        """End every stream; later listeners get an already-ended stream."""
        self._closed = True
        for listeners in self._listeners.values():
            for send in listeners:
                send.close()
        self._listeners.clear()
