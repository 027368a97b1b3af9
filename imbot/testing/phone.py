"""A human's phone on the simulator: the ``/sim/v1`` phone API, one number at a time.

``Phone`` is what both ways of playing the human stand on: ``Conversation`` (with
``BotHarness``) and ``SimAgent``'s ``text``/``timeline`` helpers. It only speaks HTTP; waiting
for what the bot does is the caller's business. A request the simulator refuses fails the
test with ``AssertionError``, naming the request and the simulator's answer.
"""

from __future__ import annotations

import json
from os import PathLike
from typing import Any
from urllib.parse import quote

import aiohttp
import anyio

from imbot.testing.handler_errors import kit_failure

__all__ = ["Phone"]

# pytest shows the test's line, not the kit's, for a failure the kit raises on purpose.
__tracebackhide__ = kit_failure


class Phone:
    """One human's phone on a running simulator.

    Example:
        >>> phone = Phone(http, "+15555550100")
        >>> await phone.text("connect @testbot")
        >>> [item["text"] for item in (await phone.timeline())["items"]][0]
        'connect @testbot'

    Args:
        http: a session whose base URL is the simulator's origin.
        number: the human's number (E.164).
    """

    __slots__ = ("_http", "number")

    def __init__(self, http: aiohttp.ClientSession, number: str) -> None:
        self._http = http
        self.number = number

    def __repr__(self) -> str:
        return f"<Phone {self.number}>"

    @property
    def path(self) -> str:
        """The phone's resource, ``/sim/v1/phones/{number}``."""
        return f"/sim/v1/phones/{quote(self.number)}"

    async def text(
        self, text: str | None, *, to: str | None = None, media_url: str | None = None
    ) -> dict[str, Any]:
        """The human sends a text (and an attachment, given its URL).

        Args:
            text: the text, or ``None`` for an attachment alone.
            to: the agent handle to text; the most recent thread (the router number's
                before the first ``connect``) when omitted.
            media_url: the URL of an attachment (see ``upload``).

        Returns:
            The human's new timeline item, as the simulator's JSON.

        Raises:
            AssertionError: the simulator refused the text.
        """
        body = {"text": text, "media_url": media_url, "to": to}
        data = await self._post(f"{self.path}/messages", json=body)
        item: dict[str, Any] = data["item"]
        return item

    async def react(
        self, message_id: str, kind: str, *, custom_emoji: str | None = None
    ) -> dict[str, Any]:
        """The human tapbacks a message.

        Args:
            message_id: the message to react to.
            kind: ``love``, ``like``, ``dislike``, ``laugh``, ``emphasize``, ``question``,
                ``eyes`` or ``custom``.
            custom_emoji: the emoji of a ``custom`` tapback.

        Returns:
            The reaction, as the simulator's JSON.

        Raises:
            AssertionError: the simulator refused the tapback.
        """
        body = {"message_id": message_id, "reaction": kind, "custom_emoji": custom_emoji}
        data = await self._post(f"{self.path}/reactions", json=body)
        reaction: dict[str, Any] = data["reaction"]
        return reaction

    async def upload(
        self,
        media: bytes | str | PathLike[str],
        *,
        content_type: str | None = None,
        filename: str | None = None,
    ) -> str:
        """Upload an attachment the human is about to send; return its URL.

        Args:
            media: the file's bytes, its path, or a URL (returned as it is).
            content_type: the MIME type; guessed from the name when omitted.
            filename: the file's name (``photo.png`` by default for bytes).

        Returns:
            The URL to pass as ``media_url``.

        Raises:
            AssertionError: the simulator refused the upload.
        """
        if isinstance(media, str) and media.startswith(("http://", "https://")):
            return media
        if isinstance(media, bytes):
            data, name = media, filename or "photo.png"
        else:
            path = anyio.Path(media)
            data, name = await path.read_bytes(), filename or path.name
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type=content_type)
        answer = await self._post("/sim/v1/media", data=form)
        return str(answer["media_url"])

    async def timeline(self) -> dict[str, Any]:
        """Everything the phone shows now: its ``threads`` and its ``items``.

        Raises:
            AssertionError: the simulator did not answer 200.
        """
        async with self._http.get(f"{self.path}/timeline") as response:
            text = await response.text()
            if response.status != 200:
                raise AssertionError(
                    f"the simulator refused GET {self.path}/timeline: {response.status} {text}"
                )
            data: dict[str, Any] = json.loads(text)
            return data

    async def _post(self, path: str, **body: Any) -> dict[str, Any]:
        async with self._http.post(path, **body) as response:
            text = await response.text()
            if response.status != 201:
                raise AssertionError(f"the simulator refused POST {path}: {response.status} {text}")
            data: dict[str, Any] = json.loads(text)
            return data
