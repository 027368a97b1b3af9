"""The waiting under every ``Conversation.expect_*``: wake on a change, fail at a deadline.

A ``Watch`` follows one phone for a running ``BotHarness``: it owns the phone's feed, its log
and the test's cursor into it. Each wait looks again on every change the event stream brings,
re-raises a handler error the bot reported meanwhile, stops when the harness does or the
stream fails, and gives up at its deadline; every failure carries the conversation so far.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from imbot.testing.feed import Cursor, PhoneFeed
from imbot.testing.handler_errors import kit_failure
from imbot.testing.transcript import render_transcript

if TYPE_CHECKING:
    from imbot.testing.conversation import Conversation
    from imbot.testing.harness import BotHarness

__all__ = ["Watch"]

# pytest shows the test's line, not the kit's, for a failure the kit raises on purpose.
__tracebackhide__ = kit_failure

_T = TypeVar("_T")


class Watch:
    """Follow one human's phone for a running harness, and wait on what it shows.

    Args:
        harness: the running harness.
        chat: the conversation this watch serves (named in re-raised handler errors).
    """

    def __init__(self, harness: BotHarness, chat: Conversation) -> None:
        self.harness = harness
        self.chat = chat
        self.number = chat.number
        self.handle = harness.handle
        self.feed = PhoneFeed(
            harness.agent.http, chat.number, harness.handle, stopping=lambda: harness.closed
        )
        self.phone = self.feed.phone
        self.log = self.feed.log
        self.seen = Cursor(self.log, harness.handle)

    def transcript(self) -> str:
        """The conversation so far (see ``Conversation.transcript``)."""
        return render_transcript(self.number, self.handle, self.log, self.feed.error)

    def fail(self, message: str) -> AssertionError:
        """The error for a failed expectation: ``message``, then the transcript."""
        return AssertionError(f"{message}\n\n{self.transcript()}")

    def limit(self, timeout: float | None) -> float:
        """A wait's deadline: ``timeout``, or the harness's when it is ``None``."""
        return self.harness.timeout if timeout is None else timeout

    def poke(self) -> None:
        """Wake every waiter, to look again (a handler error, the harness stopping)."""
        self.feed.changed.notify()

    async def ready(self) -> None:
        """Wait until the event stream follows the phone; re-raise a pending handler error."""
        with anyio.move_on_after(self.harness.timeout):
            await self.feed.ready.wait()
        if not self.feed.ready.is_set() or self.feed.error is not None:
            raise self.fail(f"could not follow {self.number}'s phone: {self.feed.error}")
        self.harness._raise_pending(chat=self.chat)

    async def watch(self, check: Callable[[], _T | None], timeout: float, doing: str) -> _T | None:
        """Call ``check()`` on every change until it returns a value; ``None`` at the deadline.

        Args:
            check: returns what is awaited, or ``None`` while it is not there.
            timeout: seconds to look.
            doing: what the test is doing, for the failure message (``waiting for a reply``).

        Raises:
            AssertionError: the harness stopped or the event stream failed meanwhile.
        """
        with anyio.move_on_after(timeout):
            while True:
                self.harness._raise_pending(chat=self.chat)
                result = check()
                if result is not None:
                    return result
                if self.harness.closed:
                    raise self.fail(f"the harness stopped while {doing}")
                if self.feed.error is not None:
                    raise self.fail(f"the phone's event stream failed while {doing}")
                await self.feed.changed.wait()
        self.harness._raise_pending(chat=self.chat)
        return None

    async def wait(self, check: Callable[[], _T | None], timeout: float, what: str) -> _T:
        """Like ``watch``, but the deadline fails: ``expected {what} within … s``."""
        result = await self.watch(check, timeout, f"waiting for {what}")
        if result is None:
            raise self.fail(f"expected {what} within {timeout:g} s; it did not come")
        return result

    async def call(self, request: Coroutine[Any, Any, _T]) -> _T:
        """Send one of the human's requests; a refusal fails with the transcript."""
        if self.harness.closed:
            request.close()
            raise RuntimeError("the harness is not running")
        try:
            return await request
        except AssertionError as exc:
            raise self.fail(str(exc)) from None

    async def catch_up(self, timeout: float) -> None:
        """Wait until the event stream has shown everything the timeline shows now."""
        await self.ready()
        data = await self.feed.timeline()
        ids = {str(item["id"]) for item in data["items"]} - self.log.before
        await self.wait(
            lambda: True if ids <= self.log.items.keys() else None,
            timeout,
            "the phone's event stream to catch up",
        )
