"""Messaging endpoints: what a bot does inside a conversation, all day.

Sending, reading messages, read receipts, typing and tapbacks. Every send carries one
``Idempotency-Key`` on every attempt, so a retry never sends twice (the retry loop is in
``_request``, its policy in ``backoff``).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError, to_json

from imbot.client._paging import end_instant, walk_by_time
from imbot.client._request import (
    DateFilter,
    _BaseClient,
    check_idempotency_key,
    check_page,
    ignore_body,
    invalid,
    segment,
)
from imbot.errors import NotConnected, NotFound
from imbot.models import (
    MAX_TEXT_LENGTH,
    MarkReadResult,
    Message,
    Reaction,
    SendMessage,
    SendReaction,
    SendStyle,
    TapbackKind,
)

_MESSAGES = TypeAdapter(list[Message])


class _Sent(BaseModel):
    message: Message


class _Lookup(BaseModel):
    message_id: str


def _parse_lookup(body: bytes) -> _Lookup:
    return _Lookup.model_validate_json(body)


def _parse_sent(body: bytes) -> Message:
    # The send answer wraps the row: {"message": {...}}. One parse, straight from bytes.
    return _Sent.model_validate_json(body).message


def _text_reply_body(conversation_id: object, text: object) -> bytes | None:
    """The body of a text-only send into a conversation, checked as ``SendMessage`` would.

    Nearly every send is this one shape (``ctx.reply(text)``), and building the model to
    dump it again costs more than the rest of the client's work. Anything else, or anything
    this check is unsure of, returns ``None``: ``SendMessage`` then validates it and names
    what is wrong.
    """
    if type(conversation_id) is not str or type(text) is not str:
        return None
    if not text.strip() or len(text) > MAX_TEXT_LENGTH:
        return None
    try:
        # pydantic's own serializer: the same bytes as SendMessage.model_dump_json.
        return to_json({"conversation_id": conversation_id, "text": text})
    except PydanticSerializationError:
        return None  # e.g. a lone surrogate: let the model refuse it


class _MessagingEndpoints(_BaseClient):
    """Send and read messages; read receipts, typing and tapbacks."""

    async def send_message(
        self,
        *,
        conversation_id: str | None = None,
        to: str | None = None,
        text: str | None = None,
        media_urls: Sequence[str] | None = None,
        send_style: SendStyle | str | None = None,
        reply_to_message_id: str | None = None,
        agent_identity_id: str | None = None,
        idempotency_key: str | None = None,
        plain_reply_fallback: bool | None = None,
    ) -> Message:
        """Send a message into a conversation, or to a connected human's number.

        Example:
            >>> await client.send_message(conversation_id=cid, text="Booked", send_style="confetti")

        Args:
            conversation_id: the conversation to reply into; exactly one of this and ``to``.
            to: the human's E.164 number (they must have connected and written first).
            text: the text, up to 18,995 characters; needed unless a media URL is given.
            media_urls: at most one URL, e.g. from ``upload_media``.
            send_style: a bubble or screen effect such as ``confetti``.
            reply_to_message_id: reply natively to this message (needs ``conversation_id``).
            agent_identity_id: the identity to send as; needed with ``to`` on admin keys.
            idempotency_key: the send's key; a fresh UUID when omitted. Reuse it to retry a
                send without risking a duplicate.
            plain_reply_fallback: with ``reply_to_message_id``, allow a plain message when
                native replies are unsupported.

        Returns:
            The new outbound message (usually ``status`` ``queued``).

        Raises:
            InvalidRequest: the arguments are invalid (bad E.164, no content, both or neither
                target, more than one media URL); nothing was sent.
            NotConnected: the human never texted ``connect @handle``.
            ConversationInactive: released, or the human has not written yet.
            RecipientBlocked: a contact rule blocks the number.
            RateLimited: the 24-hour send cap was reached.
            TransportError: no answer after retries; ``idempotency_key`` is on the error.
        """
        body = None
        if (
            to is None
            and media_urls is None
            and send_style is None
            and reply_to_message_id is None
            and plain_reply_fallback is None
        ):
            body = _text_reply_body(conversation_id, text)
        if body is None:
            try:
                message = SendMessage(
                    conversation_id=conversation_id,
                    to=to,
                    text=text,
                    media_urls=media_urls,
                    send_style=send_style,
                    reply_to_message_id=reply_to_message_id,
                    plain_reply_fallback=plain_reply_fallback,
                )
            except ValidationError as exc:
                raise invalid("message", exc) from None
            body = message.model_dump_json(exclude_none=True).encode()
        key = (
            str(uuid.uuid4()) if idempotency_key is None else check_idempotency_key(idempotency_key)
        )
        query = {"agent_identity_id": agent_identity_id} if agent_identity_id else None
        try:
            return await self._request(
                "POST",
                "/imessage/messages",
                _parse_sent,
                query=query,
                json_body=body,
                idempotency_key=key,
            )
        except NotFound as exc:
            # Servers may say "never connected" in a plain-text 404; give it its type.
            if to is not None and type(exc) is NotFound and "connect" in exc.message.lower():
                raise NotConnected(
                    exc.message, status=exc.status, detail=exc.detail, idempotency_key=key
                ) from exc
            raise

    async def list_messages(
        self,
        *,
        conversation_id: str | None = None,
        agent_identity_id: str | None = None,
        is_read: bool | None = None,
        is_blocked: bool | None = None,
        include_groups: bool | None = None,
        start_datetime: DateFilter = None,
        end_datetime: DateFilter = None,
        tz: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Message]:
        """List one page of messages, newest first.

        Args:
            conversation_id: only this conversation's messages.
            agent_identity_id: only this identity's (admin keys).
            is_read: only read, or only unread, messages.
            is_blocked: only blocked, or only unblocked, rows (admin keys see both).
            include_groups: include group conversations.
            start_datetime: created at or after this instant (a date means its whole day).
            end_datetime: created at or before this instant (a date means its whole day).
            tz: the IANA zone of zone-less dates and times; UTC by default.
            limit: the page size, 1 to 200.
            offset: how many rows to skip.
        """
        check_page(limit, offset)
        query = {
            "conversation_id": conversation_id,
            "agent_identity_id": agent_identity_id,
            "is_read": is_read,
            "is_blocked": is_blocked,
            "include_groups": include_groups,
            "start_datetime": start_datetime,
            "end_datetime": end_datetime,
            "tz": tz,
            "limit": limit,
            "offset": offset,
        }
        return await self._request(
            "GET", "/imessage/messages", _MESSAGES.validate_json, query=query
        )

    def iter_messages(
        self,
        *,
        conversation_id: str | None = None,
        agent_identity_id: str | None = None,
        is_read: bool | None = None,
        is_blocked: bool | None = None,
        include_groups: bool | None = None,
        start_datetime: DateFilter = None,
        end_datetime: DateFilter = None,
        tz: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[Message]:
        """Iterate over every message matching the filters, page by page, newest first.

        Each message is yielded once, and none is skipped, even when new ones arrive while
        the walk is between pages: after the first page, each page asks for messages
        created before the last one seen, so newer arrivals cannot push the pages down.
        Messages that arrive after the first page are not part of the walk.

        Example:
            >>> async for message in client.iter_messages(conversation_id=cid):
            ...     print(message.text)

        Args:
            conversation_id: see ``list_messages`` for this and the other filters.
            agent_identity_id: only this identity's (admin keys).
            is_read: only read, or only unread, messages.
            is_blocked: only blocked, or only unblocked, rows.
            include_groups: include group conversations.
            start_datetime: created at or after this instant.
            end_datetime: created at or before this instant.
            tz: the IANA zone of zone-less values.
            page_size: rows per request, 1 to 200.
        """
        filters: dict[str, Any] = {
            "conversation_id": conversation_id,
            "agent_identity_id": agent_identity_id,
            "is_read": is_read,
            "is_blocked": is_blocked,
            "include_groups": include_groups,
            "start_datetime": start_datetime,
            "tz": tz,
        }
        check_page(page_size)  # here, so that a bad call fails where it is written

        async def fetch(limit: int, offset: int, before: datetime | None) -> list[Message]:
            until = end_datetime if before is None else before
            return await self.list_messages(
                **filters, end_datetime=until, limit=limit, offset=offset
            )

        return walk_by_time(fetch, page_size, end_instant(end_datetime, tz))

    async def get_message(self, message_id: str) -> Message:
        """Get one message, with its current delivery status and tapbacks.

        Raises:
            NotFound: no such message, or not visible to this key.
        """
        path = f"/imessage/messages/{segment(message_id)}"
        return await self._request("GET", path, Message.model_validate_json)

    async def find_send(self, idempotency_key: str, *, agent_identity_id: str) -> Message | None:
        """The message an earlier send with this ``Idempotency-Key`` created, if any.

        The way back after a send whose answer never arrived, or whose key a re-run reused
        with a different body (``IdempotencyKeyReused``): ask which message the key made.

        Example:
            >>> sent = await client.find_send(exc.idempotency_key, agent_identity_id=ident.id)

        Args:
            idempotency_key: the send's key.
            agent_identity_id: the identity the message was sent as.

        Returns:
            The message, with its current status; ``None`` when the key made none.
        """
        key = check_idempotency_key(idempotency_key)
        query = {
            "sender_kind": "imessage_identity",
            "sender_id": agent_identity_id,
            "operation": "imessage.send",
        }
        try:
            found = await self._request(
                "GET", "/message-sends/lookup", _parse_lookup, query=query, idempotency_key=key
            )
        except NotFound:
            return None
        return await self.get_message(found.message_id)

    async def mark_read(self, conversation_id: str) -> MarkReadResult:
        """Send a read receipt and mark the conversation's inbound messages read.

        Raises:
            ConversationInactive: released, or a group.
        """
        return await self._request(
            "POST",
            "/imessage/mark-read",
            MarkReadResult.model_validate_json,
            json_body={"conversation_id": conversation_id},
        )

    async def send_typing(self, conversation_id: str) -> None:
        """Show the typing bubble to the human; it clears at the next message.

        There is no stop call: refresh it at most every ~40 s while composing.
        """
        await self._request(
            "POST", "/imessage/typing", ignore_body, json_body={"conversation_id": conversation_id}
        )

    async def send_reaction(
        self, message_id: str, reaction: TapbackKind | str, *, part_index: int = 0
    ) -> Reaction:
        """Send a tapback; it replaces your previous one on that message part.

        Args:
            message_id: the message to react to.
            reaction: one of ``love``, ``like``, ``dislike``, ``laugh``, ``emphasize``,
                ``question``, ``eyes`` (``custom`` cannot be sent).
            part_index: which part of the message (0 for the first).

        Raises:
            InvalidRequest: the reaction cannot be sent, or ``part_index`` is negative.
        """
        try:
            body = SendReaction(
                message_id=message_id, reaction=str(reaction), part_index=part_index
            )
        except ValidationError as exc:
            raise invalid("reaction", exc) from None
        # A tapback replaces the sender's previous one, so repeating it is harmless.
        return await self._request(
            "POST", "/imessage/reactions", Reaction.model_validate_json, json_body=body.to_wire()
        )

    async def remove_reaction(self, reaction_id: str) -> None:
        """Take back one of your tapbacks; one already gone succeeds quietly."""
        path = f"/imessage/reactions/{segment(reaction_id)}"
        await self._request("DELETE", path, ignore_body)
