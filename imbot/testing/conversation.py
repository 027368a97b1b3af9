"""One human's phone talking to the bot under test: what they do, and what they expect.

A ``Conversation`` acts through the simulator's ``/sim/v1`` phone API (``say``,
``tapback``, ``connect``) and checks the bot's effects (``expect_reply``,
``expect_bubbles``, ``expect_tapback``, ``expect_typing``, ``expect_read``,
``expect_silence``) against what the phone's event stream showed, waking on every change and
giving up at a deadline.
"""

from __future__ import annotations

import itertools
import re
from os import PathLike
from typing import TYPE_CHECKING, Any

from imbot.testing.handler_errors import kit_failure
from imbot.testing.matching import describe_reply, reply_mismatch
from imbot.testing.timeline import TimelineItem, TimelineReaction
from imbot.testing.watch import Watch

if TYPE_CHECKING:
    from imbot.models import TapbackKind
    from imbot.testing.harness import BotHarness

__all__ = ["Conversation"]

# pytest shows the test's line, not the kit's, for a failure the kit raises on purpose.
__tracebackhide__ = kit_failure


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
        self._harness = harness
        self.number = number
        self.handle = harness.handle
        self.connected = False
        self._w = Watch(harness, self)
        self._last_mine: str | None = None

    def __repr__(self) -> str:
        return f"<Conversation {self.number} with @{self.handle}>"

    # ------------------------------------------------------------------ what was seen

    @property
    def items(self) -> list[TimelineItem]:
        """Every bubble on this phone so far (all threads), in the order seen."""
        return list(self._w.log.items.values())

    @property
    def replies(self) -> list[TimelineItem]:
        """Every message the bot sent this human so far, consumed or not."""
        return [self._w.log.items[i] for i in self._w.log.replies]

    @property
    def was_typing(self) -> bool:
        """Whether the bot showed the typing bubble since the human last acted.

        Example:
            >>> await chat.say("think hard")
            >>> await chat.expect_reply()
            >>> assert chat.was_typing
        """
        return self._w.seen.typed()

    def transcript(self) -> str:
        """The conversation so far, one line per bubble, tapback and typing bubble.

        Example:
            >>> print(chat.transcript())
            Conversation of +15555550100 with @testbot:
              me: hi [read]
              bot: (typing…)
              bot: echo: hi [delivered]
        """
        return self._w.transcript()

    async def state(self, *, timeout: float | None = None) -> dict[str, Any]:
        """This conversation's state in the bot: what its handlers saved in ``ctx.state``.

        Waits until the bot is quiet first, so a handler that already replied has also
        saved; returns a copy (see ``BotHarness.state``).

        Example:
            >>> await chat.say("count")
            >>> await chat.expect_reply("You asked 1 times.")
            >>> assert await chat.state() == {"count": 1}

        Args:
            timeout: seconds to wait for quiet; the harness's ``timeout`` by default.

        Raises:
            AssertionError: the human is not connected, or the bot did not settle in time.
        """
        return await self._harness.state(self, timeout=timeout)

    # ------------------------------------------------------------------ for the harness

    async def _follow(self) -> None:
        await self._w.feed.follow()

    def _poke(self) -> None:
        self._w.poke()

    async def _catch_up(self, timeout: float) -> None:
        await self._w.catch_up(timeout)

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
        limit = self._w.limit(timeout)
        await self._w.ready()
        mark = self._w.seen.act()
        item = await self._w.call(self._w.phone.text(f"connect @{self.handle}"))
        self._last_mine = str(item["id"])
        router = await self._w.wait(
            lambda: self._w.seen.router_answer(mark), limit, "the router to answer `connect`"
        )
        threads = (await self._w.feed.timeline())["threads"]  # the simulator's word
        if not any(t["thread"] == self.handle and t["status"] == "active" for t in threads):
            raise self._w.fail(
                f"the router did not connect {self.number} to @{self.handle}: {router.text!r}"
            )
        self.connected = True
        await self._harness.settle(limit)
        return self._w.seen.take_all()

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
        await self._w.ready()
        media_url = None
        if media is not None:
            upload = self._w.phone.upload(media, content_type=content_type, filename=filename)
            media_url = await self._w.call(upload)
        self._w.seen.act()
        data = await self._w.call(self._w.phone.text(text, to=self.handle, media_url=media_url))
        item = TimelineItem.from_json(data)
        if item.thread != self.handle or item.status == "failed":
            raise self._w.fail(
                f"{self.number} is not connected to @{self.handle}: "
                "call `await chat.connect()` first"
            )
        self._last_mine = item.id
        return item

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
        await self._w.ready()
        if message is None:
            if not self._w.log.replies:
                raise self._w.fail("tapback(): the bot has not sent anything to react to yet")
            target = self._w.log.replies[-1]
        else:
            target = message if isinstance(message, str) else message.id
        self._w.seen.act()
        reaction = await self._w.call(
            self._w.phone.react(target, str(kind), custom_emoji=custom_emoji)
        )
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
        await self._w.ready()
        wanted = describe_reply(text=text, regex=regex, contains=contains, media=media)
        reply = await self._w.wait(
            self._w.seen.next_reply, self._w.limit(timeout), f"a reply{wanted}"
        )
        self._w.seen.replies += 1
        problem = reply_mismatch(reply, text=text, regex=regex, contains=contains, media=media)
        if problem:
            raise self._w.fail(f"expected a reply{wanted}, but {problem}")
        return reply

    async def expect_bubbles(
        self, count: int, *, typing: bool | None = None, timeout: float | None = None
    ) -> list[TimelineItem]:
        """Wait for the bot's next ``count`` messages (a reply split into bubbles); take them.

        Example:
            >>> await chat.say("explain decorators")
            >>> bubbles = await chat.expect_bubbles(3, typing=True)
            >>> assert "```" in bubbles[1].text

        Args:
            count: how many messages.
            typing: ``True``: the typing bubble must show between each two of them (as
                ``ctx.reply`` shows it between bubbles); ``False``: never between them;
                ``None``: not checked. A message takes the typing bubble down when it
                arrives, so with a ``delivery_delay`` longer than half the pause the
                phone sees the bubble before the message it follows, as a real one would.
            timeout: seconds to wait; the harness's ``timeout`` by default.

        Returns:
            The bubbles, in the order the phone showed them.

        Raises:
            AssertionError: fewer messages in time, or the typing bubble was not as asked.
        """
        if count < 1:
            raise ValueError(f"expect_bubbles() needs a count of at least 1, got {count}")
        await self._w.ready()
        seen = self._w.seen
        start = seen.replies
        await self._w.wait(
            lambda: True if len(self._w.log.replies) - start >= count else None,
            self._w.limit(timeout),
            f"{count} message{'s' if count > 1 else ''} from the bot",
        )
        ids = self._w.log.replies[start : start + count]
        seen.replies += count
        if typing is not None:
            for n, (first, second) in enumerate(itertools.pairwise(ids), 1):
                if seen.typed_between(first, second) != typing:
                    shown = "no typing bubble" if typing else "the typing bubble"
                    raise self._w.fail(f"expected bubbles {count}: {shown} between {n} and {n + 1}")
        return [self._w.log.items[item_id] for item_id in ids]

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
        await self._w.ready()
        wanted = f" {kind}" if kind is not None else ""
        tapback = await self._w.wait(
            self._w.seen.next_tapback, self._w.limit(timeout), f"a{wanted} tapback"
        )
        self._w.seen.tapbacks += 1
        if kind is not None and tapback.kind != str(kind):
            raise self._w.fail(f"expected a {kind} tapback, but the bot sent {tapback.kind}")
        return tapback

    async def expect_typing(self, *, timeout: float | None = None) -> None:
        """Wait until the bot shows the typing bubble (since the human last acted).

        Example:
            >>> await chat.say("what's the weather?")
            >>> await chat.expect_typing()

        Raises:
            AssertionError: no typing bubble in time.
        """
        await self._w.ready()
        await self._w.wait(
            lambda: True if self.was_typing else None,
            self._w.limit(timeout),
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
        await self._w.ready()
        last = self._last_mine
        if last is None:
            raise self._w.fail("expect_read(): the human has not sent anything yet")

        def read() -> TimelineItem | None:
            item = self._w.log.items.get(last)
            return item if item is not None and item.status == "read" else None

        return await self._w.wait(read, self._w.limit(timeout), "the bot to mark the chat read")

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
        await self._w.ready()
        reply = await self._w.watch(self._w.seen.next_reply, for_, "checking for silence")
        if reply is not None:
            self._w.seen.replies += 1
            raise self._w.fail(f"expected silence for {for_:g} s, but the bot said {reply.text!r}")
