"""Which message is a new connection's first: what ``@bot.on_connect`` runs on.

On Inkbox the human's ``connect @handle`` goes to the router and never reaches the agent;
the agent's first event from a new connection is the human's first message in the new
thread, and the agent may not write before it. That message is told apart by asking the
API, so the answer survives a restart and agrees across processes:

```
first inbound message in conversation C, connection (assignment) A?
    cache[C] == (A, first id)  ──► compare ids: no call
    otherwise GET /messages?conversation_id=C, newest first
        ──► the nearest earlier inbound row: none, or one of another connection ─► first
                                               one of connection A              ─► not first
```

Outbound rows are skipped (Inkbox's own "you're connected" text may sit in the thread),
and a row the list shows before the message itself is newer than it. Only the first message
a process sees per conversation costs a call; the answer is kept (the first message's id,
so a retried event gets the same answer). Group rows are never a connection's first message:
groups have no connection, and the agent writes first there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imbot.errors import InkboxError, is_transient
from imbot.log import get_logger

if TYPE_CHECKING:
    from imbot.client import InkboxClient
    from imbot.events import MessageReceived
    from imbot.models import Message

__all__ = ["Connections"]

_log = get_logger("imbot")

_PAGE = 25
_MAX_PAGES = 4


class Connections:
    """Answers "is this the first message of a new connection?", one API call per conversation.

    Args:
        client: the API client, to list a conversation's messages.
        remember: how many conversations' answers to keep (oldest forgotten first; a
            forgotten one costs one more call).
    """

    __slots__ = ("_client", "_first", "_remember")

    def __init__(self, client: InkboxClient, *, remember: int = 10_000) -> None:
        self._client = client
        self._remember = remember
        # conversation id -> (assignment id, id of its first message, or "" when earlier)
        self._first: dict[str, tuple[str | None, str]] = {}

    async def is_first_message(self, event: MessageReceived) -> bool:
        """Whether the event is the human's first message of a new connection.

        Raises:
            TransportError, RateLimited, ServerError: the API could not answer now (a
                transient error: the bot runs the event again later). Any other API error
                is logged and answers ``False``: the message is still handled, ungreeted.
        """
        message = event.data.message
        if message.direction != "inbound" or message.is_group:
            return False
        conversation = message.conversation_id
        connection = message.assignment_id
        known = self._first.get(conversation)
        if known is not None and known[0] == connection:
            return known[1] == message.id
        try:
            first = await self._ask(message)
        except InkboxError as exc:
            if is_transient(exc):
                raise
            _log.warning(
                "could not tell whether this is a new connection's first message; "
                "on_connect does not run for it",
                conversation_id=conversation,
                error=str(exc),
            )
            return False
        found = self._first
        found.pop(conversation, None)
        found[conversation] = (connection, message.id if first else "")
        if len(found) > self._remember:
            del found[next(iter(found))]
        return first

    async def _ask(self, message: Message) -> bool:
        """Read the conversation back until the nearest earlier inbound row decides."""
        connection = message.assignment_id
        older = False
        for page_number in range(_MAX_PAGES):
            page = await self._client.list_messages(
                conversation_id=message.conversation_id, limit=_PAGE, offset=page_number * _PAGE
            )
            for row in page:
                if row.id == message.id:
                    older = True
                    continue
                if not older:
                    # Not listed yet, or listed after newer rows: judge by time until it is.
                    if row.created_at >= message.created_at:
                        continue
                    older = True
                if row.direction == "inbound":
                    return connection is not None and row.assignment_id != connection
            if len(page) < _PAGE:
                return True
        return False  # only outbound rows as far back as we read: an old thread, no greeting
