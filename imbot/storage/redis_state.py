"""The Redis state store: one JSON object per conversation, saved with a version check.

Each conversation's state is a hash (``d``: the JSON, ``v``: a version counter). A save
names the version its state was loaded at and is refused with ``StateConflict`` when the
stored one moved on, so two processes that both ran a conversation (a lease lost during a
long pause) can never lose one another's update: the later event runs again on the newer
state.

A bot whose lanes run on Redis (``imbot.bot.cluster``) reads a conversation's state in the
same script that hands its lane the next event; ``preload`` keeps that copy for the
handler's ``load``, so a handler that touches ``ctx.state`` costs no extra round trip, and
one that does not costs nothing at all. While a lane holds the conversation its saves are
deferred (``take_deferred``) to the script that completes the event: the state change and
the completion land together or not at all, so an event that runs again (its process died
before completing it) never applies its change twice.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from imbot.errors import StateConflict
from imbot.storage import redis_scripts as lua
from imbot.storage.base import encode_state
from imbot.storage.redis_conn import RedisTarget, connect
from imbot.storage.redis_wire import Scripts

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisStateStore"]

_ANY_VERSION = -1
_MAX_PRELOADED = 100_000  # a guard: lanes normally take each preloaded state within moments


def _decode(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    data: dict[str, Any] = json.loads(raw)
    return data


class RedisStateStore:
    """Conversation states in Redis, shared by every process of the bot.

    Example:
        >>> store = RedisStateStore(RedisTarget("redis://127.0.0.1:6379/0"))
        >>> data, version = await store.load_versioned(conversation_id)
        >>> await store.save_versioned(conversation_id, {"visits": 1}, version)
        1

    Attributes:
        target: the server, prefix and lease.
        client: the redis-py client.
        prefix: the key prefix, ending in ``:``.
        shared: ``True``: every process of the bot sees the same states.
    """

    shared = True

    def __init__(self, target: RedisTarget, *, client: redis.asyncio.Redis | None = None) -> None:
        """Open (lazily: nothing connects before the first command).

        Args:
            target: the server, prefix and lease.
            client: a client to use instead of opening one (then not closed here).

        Raises:
            ConfigError: redis-py is not installed, or the URL is invalid.
        """
        self.target = target
        self._owns_client = client is None
        self.client: redis.asyncio.Redis = client if client is not None else connect(target)
        self.prefix = target.prefix + ":"
        self._scripts = Scripts(target, self.client)
        self._preloaded: dict[str, tuple[Any, Any]] = {}
        self._lanes: set[str] = set()  # conversations whose lane runs here: saves deferred
        self._deferred: dict[str, tuple[str, int, int]] = {}  # json, base version, returned

    def preload(self, conversation_id: str, data: Any, version: Any) -> None:
        """Keep a state read by a lane handout for the next ``load``; defer saves till done.

        Args:
            conversation_id: the conversation, whose lane now runs in this process.
            data: the stored JSON (bytes or text), or ``None`` when nothing is saved.
            version: the stored version, or ``None`` when nothing is saved.
        """
        preloaded = self._preloaded
        if len(preloaded) >= _MAX_PRELOADED:
            preloaded.clear()
        preloaded[conversation_id] = (data, version)
        self._lanes.add(conversation_id)

    def take_deferred(self, conversation_id: str) -> tuple[str, int] | None:
        """The lane's deferred save, as ``(json, base version)`` (``""``: delete), if any."""
        entry = self._deferred.pop(conversation_id, None)
        return None if entry is None else (entry[0], entry[1])

    def forget(self, conversation_id: str) -> None:
        """The conversation's lane ended here: drop what it left (preload, deferred save)."""
        self._preloaded.pop(conversation_id, None)
        self._deferred.pop(conversation_id, None)
        self._lanes.discard(conversation_id)

    async def load(self, conversation_id: str) -> dict[str, Any] | None:
        """Return the saved state, or ``None``."""
        return (await self.load_versioned(conversation_id))[0]

    async def load_versioned(self, conversation_id: str) -> tuple[dict[str, Any] | None, int]:
        """Return the saved state (or ``None``) and its version (0: nothing saved)."""
        entry = self._preloaded.pop(conversation_id, None)
        if entry is None:
            found = await self._scripts.call(
                "HMGET", self.prefix + "st:" + conversation_id, "d", "v"
            )
            data, version = found[0], found[1]
        else:
            data, version = entry
        return _decode(data), int(version or 0)

    async def save(self, conversation_id: str, data: dict[str, Any]) -> None:
        """Replace the saved state whatever its version; an empty ``data`` deletes it.

        Raises:
            TypeError: a value is not JSON-serializable.
        """
        await self.save_versioned(conversation_id, data, _ANY_VERSION)

    async def save_versioned(self, conversation_id: str, data: dict[str, Any], version: int) -> int:
        """Replace the state saved at ``version``; an empty ``data`` deletes it.

        While the conversation's lane runs here, the save is deferred to the completion of
        its event (``take_deferred``); the version returned then is the one it will have.

        Returns:
            The new version (0 once deleted).

        Raises:
            StateConflict: the stored state is no longer at ``version``.
            TypeError: a value is not JSON-serializable.
        """
        encoded = encode_state(conversation_id, data) if data else ""
        self._preloaded.pop(conversation_id, None)
        if version != _ANY_VERSION and conversation_id in self._lanes:
            return self._defer(conversation_id, encoded, version)
        args = [self.prefix, conversation_id, encoded, version]
        new = int(await self._scripts.run(lua.SAVE_STATE, args))
        if new < 0:
            raise StateConflict(
                f"the state of conversation {conversation_id} changed since it was loaded; "
                "the event runs again with the current state"
            )
        return new

    def _defer(self, conversation_id: str, encoded: str, version: int) -> int:
        # A save over this lane's own deferred one keeps the version it started from.
        previous = self._deferred.get(conversation_id)
        base = previous[1] if previous is not None and previous[2] == version else version
        self._deferred[conversation_id] = (encoded, base, version + 1)
        return version + 1

    async def delete(self, conversation_id: str) -> None:
        """Forget the conversation's state (no error when there is none)."""
        await self.save_versioned(conversation_id, {}, _ANY_VERSION)

    async def close(self) -> None:
        """Close the client, if this store opened it."""
        self._preloaded.clear()
        self._deferred.clear()
        self._lanes.clear()
        await self._scripts.close()
        if self._owns_client:
            await self.client.aclose()
