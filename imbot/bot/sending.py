"""Sending a message from a handler or from the bot: media arguments and idempotency keys.

Exactly-once sends: every message a handler sends carries an ``Idempotency-Key`` made by
``idempotency_key(key, n)``, where ``key`` names what the event is about (``event_key``:
the inbound message or tapback, not the envelope) and ``n`` counts the sends of this
handling (1, 2, …). A redelivered or replayed event re-runs its handler, which sends under
the same keys, even if the redelivery came in a new envelope, and the API replays the first
result instead of sending again. The bubbles of a split reply share their send's number and
add their own (``…:3``, ``…:3.2``, ``…:3.3``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from imbot.models import MediaUpload

if TYPE_CHECKING:
    from imbot.client import InkboxClient
    from imbot.models import Message, SendStyle

__all__ = ["MediaInput", "idempotency_key", "media_url", "send_message"]

MediaInput = str | bytes | os.PathLike[str] | MediaUpload
"""Media for a send: a URL (sent as is), a path or bytes (uploaded first), or an upload."""


def idempotency_key(key: str, ordinal: int, part: int = 1) -> str:
    """The ``Idempotency-Key`` of the ``ordinal``-th send made while handling an event.

    This is the only place the key is derived, so a re-run of the same event sends under
    the same keys. A reply split into bubbles is one send: its first bubble has the send's
    key, the next ones that key and their ``part`` number, so a split reply never moves
    the keys of the sends after it.

    Example:
        >>> idempotency_key("imessage.received:5b0c1e7a-3f5d-4c61-9a0e-2b7f0d1e4a11", 1)
        'imbot:imessage.received:5b0c1e7a-3f5d-4c61-9a0e-2b7f0d1e4a11:1'
        >>> idempotency_key("imessage.received:5b0c1e7a-3f5d-4c61-9a0e-2b7f0d1e4a11", 1, 2)
        'imbot:imessage.received:5b0c1e7a-3f5d-4c61-9a0e-2b7f0d1e4a11:1.2'

    Args:
        key: the key the inbox keeps the event under (``imbot.bot.inbox.event_key``).
        ordinal: 1 for the handling's first send, 2 for the next…
        part: the bubble of that send: 1 for the first (or only) one.
    """
    return f"imbot:{key}:{ordinal}" if part == 1 else f"imbot:{key}:{ordinal}.{part}"


async def media_url(client: InkboxClient, media: MediaInput) -> str:
    """The URL to send for a media argument, uploading paths and bytes first.

    Args:
        client: the client to upload with.
        media: an ``http(s)://`` URL (used as is), a path or bytes, or a ``MediaUpload``.
    """
    if isinstance(media, MediaUpload):
        return media.media_url
    if isinstance(media, str) and media.startswith(("https://", "http://")):
        return media
    return (await client.upload_media(media)).media_url


async def send_message(
    client: InkboxClient,
    text: str | None,
    *,
    conversation_id: str | None = None,
    to: str | None = None,
    media: MediaInput | None = None,
    effect: SendStyle | str | None = None,
    reply_to: str | None = None,
    idempotency_key: str | None = None,
) -> Message:
    """Send a message, uploading its media first when it is a path or bytes.

    Args:
        client: the API client.
        text: the text; needed unless ``media`` is given.
        conversation_id: the conversation; exactly one of this and ``to``.
        to: a connected human's E.164 number.
        media: a URL, a path or bytes to upload, or a ``MediaUpload``.
        effect: a bubble or screen effect.
        reply_to: the message to reply to natively; sent with ``plain_reply_fallback``, so
            the text still arrives where native replies are not supported.
        idempotency_key: the key that makes a retried send safe.
    """
    urls = None if media is None else [await media_url(client, media)]
    return await client.send_message(
        conversation_id=conversation_id,
        to=to,
        text=text,
        media_urls=urls,
        send_style=effect,
        reply_to_message_id=reply_to,
        plain_reply_fallback=True if reply_to is not None else None,
        idempotency_key=idempotency_key,
    )
