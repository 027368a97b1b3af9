"""One human's phone talking to the bot under test: what they do, and what they expect.

A ``Conversation`` acts through the simulator's ``/sim/v1`` phone API (``say``,
``tapback``, ``connect``) and checks the bot's effects (``expect_reply``,
``expect_tapback``, ``expect_typing``, ``expect_read``, ``expect_silence``) against what
the phone's event stream showed, waking on every change and giving up at a deadline.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from os import PathLike
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import aiohttp
import anyio

from imbot.testing.matching import describe_reply, reply_mismatch
from imbot.testing.timeline import PhoneFeed, TimelineItem, TimelineReaction
from imbot.testing.transcript import render_transcript

if TYPE_CHECKING:
    from imbot.models import TapbackKind
    from imbot.testing.harness import BotHarness

__all__ = ["Conversation"]

_T = TypeVar("_T")


class Conversation:
    """One human's phone, talking to the bot under test; made by ``harness.chat()``.

    Replies are consumed in order: each ``expect_reply`` takes the next message the bot
    sent that no earlier ``expect_reply`` took, and fails if it does not match.

    Example:
        >>> chat = harness.chat()
        >>> await chat.say("hi")
        >>> await chat.expect_typing()
        >>> reply = await chat.expect_reply(regex=r"^echo: ")
        >>> await chat.tapback("love")

    Attributes:
        number: the human's number.
        handle: the bot's handle.
        connected: whether ``connect()`` succeeded.
    """

    __test__ = False

    def __init__(self, harness: BotHarness, number: str) -> None:
        """Create the conversation (``harness.chat(number)`` does it)."""
        http = harness._http
        if http is None:
            raise RuntimeError("the harness is not running: use `async with BotHarness(bot)`")
        self._harness = harness
        self._http = http
        self.number = number
        self.handle = harness.handle
        self.connected = False
        self._feed = PhoneFeed(http, number, harness.handle, stopping=lambda: harness.closed)
        self._log = self._feed.log
        self._reply_pos = 0
        self._tapback_pos = 0
        self._mark = 0  # log position when the human last acted (say, tapback, connect)
        self._last_mine: str | None = None

    def __repr__(self) -> str:
        return f"<Conversation {self.number} with @{self.handle}>"

    # ------------------------------------------------------------------ what was seen

    @property
    def items(self) -> list[TimelineItem]:
        """Every bubble on this phone so far (all threads), in the order seen."""
        return list(self._log.items.values())

    @property
    def replies(self) -> list[TimelineItem]:
        """Every message the bot sent this human so far, consumed or not."""
        return [self._log.items[i] for i in self._log.replies]

    @property
    def was_typing(self) -> bool:
        """Whether the bot showed the typing bubble since the human last acted.

        Example:
            >>> await chat.say("think hard")
            >>> await chat.expect_reply()
            >>> assert chat.was_typing
        """
        return any(
            kind == "typing" and thread == self.handle
            for kind, thread, _ in self._log.entries[self._mark :]
        )

    def transcript(self) -> str:
        """The conversation so far, one line per bubble, tapback and typing bubble.

        Example:
            >>> print(chat.transcript())
            Conversation of +15555550100 with @testbot:
              me: hi [read]
              bot: (typing…)
              bot: echo: hi [delivered]
        """
        return render_transcript(self.number, self.handle, self._log, self._feed.error)

    def _fail(self, message: str) -> AssertionError:
        return AssertionError(f"{message}\n\n{self.transcript()}")

    # ------------------------------------------------------------------ for the harness

    async def _follow(self) -> None:
        """Follow the phone's event stream (the harness runs this in its task group)."""
        await self._feed.follow()

    def _poke(self) -> None:
        """Wake every waiter, to look again (a handler error, the harness stopping)."""
        self._feed.changed.notify()

    async def _catch_up(self, timeout: float) -> None:
        """Wait until the event stream has shown everything the timeline shows now."""
        await self._ensure_ready()
        data = await self._feed.timeline()
        ids = {str(item["id"]) for item in data["items"]} - self._log.before
        await self._wait(
            lambda: True if ids <= self._log.items.keys() else None,
            timeout,
            "the phone's event stream to catch up",
        )

    # ------------------------------------------------------------------ waiting

    async def _wait(self, check: Callable[[], _T | None], timeout: float, what: str) -> _T:
        """Wait until ``check()`` returns a value, waking on every change; deadline ``timeout``."""
        with anyio.move_on_after(timeout):
            while True:
                self._harness._raise_pending(chat=self)
                result = check()
                if result is not None:
                    return result
                if self._harness.closed:
                    raise self._fail(f"the harness stopped while waiting for {what}")
                if self._feed.error is not None:
                    raise self._fail(f"the phone's event stream failed while waiting for {what}")
                await self._feed.changed.wait()
        self._harness._raise_pending(chat=self)
        raise self._fail(f"expected {what} within {timeout:g} s; it did not come")

    def _timeout(self, timeout: float | None) -> float:
        return self._harness.timeout if timeout is None else timeout

    async def _ensure_ready(self) -> None:
        with anyio.move_on_after(self._harness.timeout):
            await self._feed.ready.wait()
        if not self._feed.ready.is_set() or self._feed.error is not None:
            raise self._fail(f"could not follow {self.number}'s phone: {self._feed.error}")
        self._harness._raise_pending(chat=self)

    async def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if self._harness.closed:
            raise RuntimeError("the harness is not running")
        async with self._http.post(path, json=dict(body)) as response:
            text = await response.text()
            if response.status != 201:
                raise self._fail(f"the simulator refused POST {path}: {response.status} {text}")
            data: dict[str, Any] = json.loads(text)
            return data

    def _act(self) -> None:
        """The human acts: typing and read are judged from here on."""
        self._mark = len(self._log.entries)

    # ------------------------------------------------------------------ the human acts

    async def connect(self, *, timeout: float | None = None) -> list[TimelineItem]:
        """Text ``connect @handle`` to the router and wait until the bot is done answering.

        The bot's replies to the connect text (a greeting, say) are returned and count as
        consumed, so the next ``expect_reply`` is about what the human says next.

        Example:
            >>> greeting = await chat.connect()
            >>> greeting[0].text
            'Hi! Send /help to see what I can do.'

        Args:
            timeout: seconds to wait; the harness's ``timeout`` by default.

        Returns:
            The messages the bot sent while handling the connect text.

        Raises:
            AssertionError: the router refused, or the bot did not settle in time.
        """
        limit = self._timeout(timeout)
        await self._ensure_ready()
        self._act()
        mark = self._mark
        item = await self._post(
            f"/sim/v1/phones/{quote(self.number)}/messages",
            {"text": f"connect @{self.handle}", "media_url": None, "to": None},
        )
        self._last_mine = str(item["item"]["id"])

        def answered() -> TimelineItem | None:
            for kind, item_id, _ in self._log.entries[mark:]:
                seen = self._log.items.get(item_id) if kind == "item" else None
                if seen is not None and seen.thread == "router" and seen.sender == "them":
                    return seen
            return None

        router = await self._wait(answered, limit, "the router to answer `connect`")
        threads = (await self._feed.timeline())["threads"]  # the simulator's word
        if not any(t["thread"] == self.handle and t["status"] == "active" for t in threads):
            raise self._fail(
                f"the router did not connect {self.number} to @{self.handle}: {router.text!r}"
            )
        self.connected = True
        await self._harness.settle(limit)
        greeting = self.replies[self._reply_pos :]
        self._reply_pos = len(self._log.replies)
        self._tapback_pos = len(self._log.bot_tapbacks)
        return greeting

    async def say(
        self,
        text: str | None = None,
        *,
        media: bytes | str | PathLike[str] | None = None,
        content_type: str | None = None,
        filename: str | None = None,
    ) -> TimelineItem:
        """The human texts the bot, optionally with an attachment.

        Example:
            >>> await chat.say("hi")
            >>> await chat.say("look", media=png_bytes, content_type="image/png")
            >>> await chat.say(media="https://example.com/cat.jpg")

        Args:
            text: the text.
            media: bytes or a file path (uploaded to the simulator first), or a URL.
            content_type: the attachment's MIME type; guessed from ``filename`` when absent.
            filename: the attachment's name (``photo.png`` by default for bytes).

        Returns:
            The human's bubble.

        Raises:
            AssertionError: the human is not connected to the bot.
        """
        if text is None and media is None:
            raise ValueError("say() needs a text, media, or both")
        await self._ensure_ready()
        media_url = None if media is None else await self._media_url(media, content_type, filename)
        self._act()
        data = await self._post(
            f"/sim/v1/phones/{quote(self.number)}/messages",
            {"text": text, "media_url": media_url, "to": self.handle},
        )
        item = TimelineItem.from_json(data["item"])
        if item.thread != self.handle or item.status == "failed":
            raise self._fail(
                f"{self.number} is not connected to @{self.handle}: "
                "call `await chat.connect()` first"
            )
        self._last_mine = item.id
        return item

    async def _media_url(
        self, media: bytes | str | PathLike[str], content_type: str | None, filename: str | None
    ) -> str:
        if isinstance(media, str) and media.startswith(("http://", "https://")):
            return media
        if isinstance(media, bytes):
            data, name = media, filename or "photo.png"
        else:
            path = anyio.Path(media)
            data, name = await path.read_bytes(), filename or path.name
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type=content_type)
        async with self._http.post("/sim/v1/media", data=form) as response:
            text = await response.text()
            if response.status != 201:
                raise self._fail(f"uploading {name} failed: {response.status} {text}")
            return str(json.loads(text)["media_url"])

    async def tapback(
        self,
        kind: TapbackKind | str = "love",
        message: TimelineItem | str | None = None,
        *,
        custom_emoji: str | None = None,
    ) -> TimelineReaction:
        """The human tapbacks a message: the bot's last one by default.

        Example:
            >>> await chat.expect_reply("echo: hi")
            >>> await chat.tapback("love")
            >>> await chat.expect_reply("Aw, thanks!")

        Args:
            kind: ``love``, ``like``, ``dislike``, ``laugh``, ``emphasize``, ``question``,
                ``eyes``, or ``custom`` with ``custom_emoji``.
            message: the bubble (or its id) to react to.
            custom_emoji: the emoji of a ``custom`` tapback.

        Returns:
            The tapback.

        Raises:
            AssertionError: the bot has sent nothing to react to.
        """
        await self._ensure_ready()
        if message is None:
            if not self._log.replies:
                raise self._fail("tapback(): the bot has not sent anything to react to yet")
            target = self._log.replies[-1]
        else:
            target = message if isinstance(message, str) else message.id
        self._act()
        data = await self._post(
            f"/sim/v1/phones/{quote(self.number)}/reactions",
            {"message_id": target, "reaction": str(kind), "custom_emoji": custom_emoji},
        )
        reaction = data["reaction"]
        return TimelineReaction(
            id=str(reaction["id"]),
            sender="me",
            kind=str(reaction["reaction"]),
            custom_emoji=reaction.get("custom_emoji"),
            message_id=target,
        )

    # ------------------------------------------------------------------ expectations

    async def expect_reply(
        self,
        text: str | None = None,
        *,
        regex: str | re.Pattern[str] | None = None,
        contains: str | None = None,
        media: bool | str | None = None,
        timeout: float | None = None,
    ) -> TimelineItem:
        """Wait for the bot's next message and check it.

        Example:
            >>> await chat.expect_reply("echo: hi")                  # the whole text
            >>> await chat.expect_reply(regex=r"in \\d+ minutes")     # re.search
            >>> await chat.expect_reply(contains="Paris")
            >>> await chat.expect_reply(media="image/png")           # an attachment

        Args:
            text: the exact text.
            regex: a pattern the text must contain (``re.search``).
            contains: a substring of the text.
            media: ``True`` for any attachment, ``False`` for none, or a content type
                (or its prefix, ``"image/"``) one attachment must have.
            timeout: seconds to wait; the harness's ``timeout`` by default.

        Returns:
            The bot's bubble.

        Raises:
            AssertionError: no message in time, or the next one does not match.
        """
        await self._ensure_ready()
        wanted = describe_reply(text=text, regex=regex, contains=contains, media=media)
        reply = await self._wait(self._next_reply, self._timeout(timeout), f"a reply{wanted}")
        self._reply_pos += 1
        problem = reply_mismatch(reply, text=text, regex=regex, contains=contains, media=media)
        if problem:
            raise self._fail(f"expected a reply{wanted}, but {problem}")
        return reply

    def _next_reply(self) -> TimelineItem | None:
        if self._reply_pos >= len(self._log.replies):
            return None
        return self._log.items[self._log.replies[self._reply_pos]]

    async def expect_tapback(
        self, kind: TapbackKind | str | None = None, *, timeout: float | None = None
    ) -> TimelineReaction:
        """Wait for the bot's next tapback on one of the human's messages.

        Example:
            >>> await chat.say("I love it")
            >>> await chat.expect_tapback("love")

        Args:
            kind: the kind it must be (any when omitted).
            timeout: seconds to wait; the harness's ``timeout`` by default.

        Returns:
            The tapback (its ``message_id`` names the human's message).

        Raises:
            AssertionError: none in time, or the next one is of another kind.
        """
        await self._ensure_ready()
        wanted = f" {kind}" if kind is not None else ""

        def next_tapback() -> TimelineReaction | None:
            if self._tapback_pos >= len(self._log.bot_tapbacks):
                return None
            return self._log.bot_tapbacks[self._tapback_pos]

        tapback = await self._wait(next_tapback, self._timeout(timeout), f"a{wanted} tapback")
        self._tapback_pos += 1
        if kind is not None and tapback.kind != str(kind):
            raise self._fail(f"expected a {kind} tapback, but the bot sent {tapback.kind}")
        return tapback

    async def expect_typing(self, *, timeout: float | None = None) -> None:
        """Wait until the bot shows the typing bubble (since the human last acted).

        Example:
            >>> await chat.say("what's the weather?")
            >>> await chat.expect_typing()

        Raises:
            AssertionError: no typing bubble in time.
        """
        await self._ensure_ready()
        await self._wait(
            lambda: True if self.was_typing else None,
            self._timeout(timeout),
            "the bot to show the typing bubble",
        )

    async def expect_read(self, *, timeout: float | None = None) -> TimelineItem:
        """Wait until the bot marks the conversation read (the human's last message shows read).

        Example:
            >>> await chat.say("hi")
            >>> await chat.expect_read()

        Returns:
            The human's last message.

        Raises:
            AssertionError: not read in time, or the human has said nothing yet.
        """
        await self._ensure_ready()
        last = self._last_mine
        if last is None:
            raise self._fail("expect_read(): the human has not sent anything yet")

        def read() -> TimelineItem | None:
            item = self._log.items.get(last)
            return item if item is not None and item.status == "read" else None

        return await self._wait(read, self._timeout(timeout), "the bot to mark the chat read")

    async def expect_silence(self, for_: float = 0.3) -> None:
        """Check that the bot sends no (further) message for ``for_`` seconds.

        Messages the test already took with ``expect_reply`` do not count; any other
        message, earlier or during the wait, fails it.

        Example:
            >>> await chat.say("ignore me")
            >>> await chat.expect_silence()

        Args:
            for_: how long the bot must stay silent, in seconds.

        Raises:
            AssertionError: the bot sent a message.
        """
        await self._ensure_ready()
        with anyio.move_on_after(for_):
            while True:
                self._harness._raise_pending(chat=self)
                reply = self._next_reply()
                if reply is not None:
                    self._reply_pos += 1
                    raise self._fail(
                        f"expected silence for {for_:g} s, but the bot said {reply.text!r}"
                    )
                if self._harness.closed or self._feed.error is not None:
                    raise self._fail("the harness stopped while checking for silence")
                await self._feed.changed.wait()
        self._harness._raise_pending(chat=self)
