"""The test kit: run a bot against an in-process simulator and play the human.

``BotHarness`` is an async context manager, so it works with or without pytest:

```python
from imbot.testing import BotHarness

async with BotHarness(bot) as harness:       # simulator + bot on free loopback ports
    chat = harness.chat()                     # the default human, already connected
    await chat.say("hi")
    await chat.expect_reply("echo: hi")
```

Everything goes through real HTTP: the human's texts go to the simulator's ``/sim/v1`` phone
API, the simulator signs and delivers webhooks to the bot's server, the bot answers through
the Inkbox API. Each ``Conversation`` follows its phone's event stream, so every ``expect_*``
wakes up on the change it waits for and gives up at a deadline (5 s by default).

A failed expectation raises ``AssertionError`` with the conversation so far::

    me: hi [read]
    bot: (typing…)
    bot: echo: hi [delivered]
    bot: ❤️ love on "hi"

An exception a handler raises and no ``@bot.on_error`` handler takes is re-raised into the
test, at the next call on a ``Conversation`` (or when the harness exits), like Starlette's
``TestClient``; pass ``raise_handler_errors=False`` to only collect them in
``harness.errors``. The pytest fixtures built on this live in ``imbot.pytest_plugin``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from os import PathLike
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar
from urllib.parse import quote

import aiohttp
import anyio
import anyio.abc

from imbot.client import InkboxClient
from imbot.errors import Conflict
from imbot.events import EVENT_TYPES
from imbot.sim import Simulator

if TYPE_CHECKING:
    from imbot.bot import Bot
    from imbot.context import Context
    from imbot.models import TapbackKind

__all__ = [
    "DEFAULT_TIMEOUT",
    "BotHarness",
    "Conversation",
    "HandlerError",
    "TimelineItem",
    "TimelineMedia",
    "TimelineReaction",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds every ``expect_*`` waits unless told otherwise."""

_POLL = 0.01  # settle() polling interval: short, always inside a deadline
_QUIET_ROUNDS = 3  # consecutive quiet polls before settle() trusts the quiet
_T = TypeVar("_T")

_EMOJI = {
    "love": "❤️",
    "like": "👍",
    "dislike": "👎",
    "laugh": "😂",
    "emphasize": "‼️",
    "question": "❓",
    "eyes": "👀",
}


# ---------------------------------------------------------------------------- timeline records


@dataclass(frozen=True, slots=True)
class TimelineMedia:
    """An attachment on a timeline item.

    Example:
        >>> reply = await chat.expect_reply(media="image/")
        >>> reply.media[0].content_type
        'image/png'
    """

    url: str
    content_type: str | None = None
    size: int | None = None


@dataclass(frozen=True, slots=True)
class TimelineReaction:
    """A tapback on a timeline item, as the human's phone shows it.

    Example:
        >>> tapback = await chat.expect_tapback("love")
        >>> tapback.kind, tapback.sender
        ('love', 'them')

    Attributes:
        id: the reaction id.
        sender: ``"me"`` (the human) or ``"them"`` (the bot).
        kind: ``love``, ``like``, ``dislike``, ``laugh``, ``emphasize``, ``question``,
            ``eyes`` or ``custom``.
        custom_emoji: the emoji of a ``custom`` tapback.
        message_id: the item it is on.
    """

    id: str
    sender: Literal["me", "them"]
    kind: str
    custom_emoji: str | None
    message_id: str

    @property
    def emoji(self) -> str:
        """The tapback as an emoji (``❤️`` for ``love``)."""
        return self.custom_emoji or _EMOJI.get(self.kind, self.kind)


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One bubble on the human's phone: theirs (``"me"``), the bot's or the router's.

    Example:
        >>> reply = await chat.expect_reply(regex=r"^echo")
        >>> reply.text, reply.status
        ('echo: hi', 'delivered')

    Attributes:
        id: the message id (the API's id for messages in a conversation).
        thread: the bot's handle, or ``"router"`` for the router number's thread.
        conversation_id: the conversation, or ``None`` in the router thread.
        sender: ``"me"`` for the human, ``"them"`` for the bot or the router.
        text: the text, or ``None`` for media alone.
        media: the attachments.
        send_style: the bubble or screen effect, if any.
        status: ``sent``, ``delivered``, ``read`` (the human's, once the bot marked it
            read) or ``failed``.
        reactions: the live tapbacks on it.
        created_at: when it was created (ISO 8601).
    """

    id: str
    thread: str
    conversation_id: str | None
    sender: Literal["me", "them"]
    text: str | None
    media: tuple[TimelineMedia, ...] = ()
    send_style: str | None = None
    status: str = "delivered"
    reactions: tuple[TimelineReaction, ...] = ()
    created_at: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TimelineItem:
        """Build an item from the simulator's ``/sim/v1`` JSON.

        Example:
            >>> TimelineItem.from_json({"id": "m1", "thread": "router", "from": "them",
            ...                         "text": "Connected", "status": "delivered"}).text
            'Connected'
        """
        item_id = str(data["id"])
        media = tuple(
            TimelineMedia(str(m["url"]), m.get("content_type"), m.get("size"))
            for m in data.get("media") or ()
        )
        reactions = tuple(
            TimelineReaction(
                id=str(r["id"]),
                sender="me" if r.get("from") == "me" else "them",
                kind=str(r["reaction"]),
                custom_emoji=r.get("custom_emoji"),
                message_id=item_id,
            )
            for r in data.get("reactions") or ()
        )
        return cls(
            id=item_id,
            thread=str(data["thread"]),
            conversation_id=data.get("conversation_id"),
            sender="me" if data.get("from") == "me" else "them",
            text=data.get("text"),
            media=media,
            send_style=data.get("send_style"),
            status=str(data.get("status") or "delivered"),
            reactions=reactions,
            created_at=str(data.get("created_at") or ""),
        )


@dataclass(frozen=True, slots=True)
class HandlerError:
    """An exception a handler raised that no error handler took.

    Attributes:
        exception: the exception.
        event_type: the event being handled (``imessage.received``…).
        handler: the handler's qualified name, when known.
    """

    exception: BaseException
    event_type: str
    handler: str | None


# ---------------------------------------------------------------------------- small plumbing


class _Changed:
    """A broadcast 'something changed' signal: waiters wake on the next ``notify``."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = anyio.Event()

    def notify(self) -> None:
        """Wake every current waiter."""
        self._event.set()
        self._event = anyio.Event()

    async def wait(self) -> None:
        """Wait for the next ``notify``."""
        await self._event.wait()


def _shorten(text: str | None, limit: int = 60) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _BotSettings:
    """Point an existing Bot at the simulator for one run, then put its settings back.

    The Bot has no public way to take settings after construction yet (see the module
    docstring of ``imbot.bot``: arguments, then the environment); the harness must not
    touch ``os.environ``, so it sets the constructor's values for the run.
    """

    _NAMES = ("_handle_arg", "_api_key", "_signing_key", "_base_url")

    def __init__(self, bot: Bot) -> None:
        missing = [name for name in self._NAMES if not hasattr(bot, name)]
        if missing:
            raise RuntimeError(
                f"imbot.testing cannot configure this Bot (no {', '.join(missing)}); "
                "imbot.testing and imbot.bot come from different imbot versions"
            )
        if getattr(bot, "_client_arg", None) is not None:
            raise RuntimeError(
                "this Bot was built with client=...; the harness needs to give it its own "
                "client for the simulator: build the bot without client= for tests"
            )
        self._bot = bot
        self._saved: dict[str, Any] = {}

    @contextmanager
    def applied(
        self, *, handle: str, api_key: str, signing_key: str, base_url: str
    ) -> Iterator[None]:
        """Set the settings while the block runs."""
        bot = self._bot
        self._saved = {name: getattr(bot, name) for name in self._NAMES}
        values = dict(zip(self._NAMES, (handle, api_key, signing_key, base_url), strict=True))
        for name, value in values.items():
            setattr(bot, name, value)
        try:
            yield
        finally:
            for name, value in self._saved.items():
                setattr(bot, name, value)


def _error_listeners(bot: Bot) -> list[Any]:
    """The Bot's list of listeners for handler errors no error handler took."""
    listeners = getattr(bot, "_error_listeners", None)
    if not isinstance(listeners, list):
        raise RuntimeError(
            "imbot.testing cannot watch this Bot's handler errors (no error listeners); "
            "imbot.testing and imbot.bot come from different imbot versions"
        )
    return listeners


def _sim_busy(sim: Simulator) -> bool:
    """Whether the simulator still has a webhook to deliver or a send in flight.

    ``Simulator.pending()`` also counts typing-bubble expiry timers (60 s), so it cannot
    tell "quiet"; this reads the two counts it sums, minus the timers.
    """
    core: Any = getattr(sim, "_core", None)
    if core is None:
        return False
    if core.delivery.pending():
        return True
    in_flight = core.store.scalar(
        "SELECT COUNT(*) FROM messages WHERE direction = 'outbound' "
        "AND status IN ('queued', 'sent')"
    )
    return bool(in_flight)


# ---------------------------------------------------------------------------- the harness


class BotHarness:
    """Run a bot against an in-process simulator, and play the humans who text it.

    On enter: starts a ``Simulator`` (in memory, free loopback port) unless one is given,
    creates the iMessage-enabled identity ``handle``, mints its signing key and an
    identity-scoped API key, starts ``bot.serve()`` on a free loopback port with those
    settings (the environment is not touched), subscribes the bot's webhook to the five
    iMessage events and, with ``connect=True``, connects the default human. On exit: stops
    the bot (running handlers get ``shutdown_timeout`` seconds), the simulator, and puts the
    bot's settings back, so the same ``Bot`` can be tested again.

    Example:
        >>> async with BotHarness(bot) as harness:
        ...     chat = harness.chat()
        ...     await chat.say("hi")
        ...     await chat.expect_reply("echo: hi")

    Args:
        bot: the bot under test (not running, built without ``client=``).
        handle: the agent handle the bot runs as.
        phone: the default human's number (E.164).
        connect: connect the default human (``connect @handle``) on enter.
        delivery_delay: seconds from ``sent`` to ``delivered`` in the simulator it starts.
        connect_event: deliver the ``connect @handle`` text to the bot as a message (as
            ``imbot dev`` does), so a ``connect`` command can greet.
        raise_handler_errors: re-raise handler errors into the test (else only collect
            them in ``errors``).
        timeout: the default deadline of every wait, in seconds.
        shutdown_timeout: seconds running handlers get to finish when the harness exits.
        simulator: a running ``Simulator`` to use instead of starting one (left running).
    """

    __test__ = False  # not a test class, whatever pytest's patterns say

    def __init__(
        self,
        bot: Bot,
        *,
        handle: str = "testbot",
        phone: str = "+15555550100",
        connect: bool = True,
        delivery_delay: float = 0.0,
        connect_event: bool = True,
        raise_handler_errors: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        shutdown_timeout: float = 2.0,
        simulator: Simulator | None = None,
    ) -> None:
        if timeout <= 0 or shutdown_timeout < 0:
            raise ValueError("timeout must be positive and shutdown_timeout not negative")
        self.bot = bot
        self.handle = handle
        self.phone = phone
        self.connect = connect
        self.delivery_delay = delivery_delay
        self.connect_event = connect_event
        self.raise_handler_errors = raise_handler_errors
        self.timeout = timeout
        self.shutdown_timeout = shutdown_timeout
        self.errors: list[HandlerError] = []
        self._given_sim = simulator
        self._sim: Simulator | None = simulator
        self._settings = _BotSettings(bot)
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._http: aiohttp.ClientSession | None = None
        self._chats: dict[str, Conversation] = {}
        self._reported = 0
        self._closed = False
        self._bot_port: int | None = None
        self._bot_done: anyio.Event | None = None
        self.api_key = ""
        self.signing_key = ""
        self.identity_id = ""

    # ------------------------------------------------------------------ properties

    @property
    def sim(self) -> Simulator:
        """The running simulator.

        Raises:
            RuntimeError: the harness is not running.
        """
        if self._sim is None or self._stack is None:
            raise RuntimeError("the harness is not running: use `async with BotHarness(bot)`")
        return self._sim

    @property
    def base_url(self) -> str:
        """The simulator's origin (the Inkbox API is under ``/api/v1``)."""
        return self.sim.base_url

    @property
    def bot_url(self) -> str:
        """The bot's webhook server origin, like ``http://127.0.0.1:54321``."""
        if self._bot_port is None:
            raise RuntimeError("the bot is not serving yet")
        return f"http://127.0.0.1:{self._bot_port}"

    @property
    def closed(self) -> bool:
        """Whether the harness has stopped (or is stopping)."""
        return self._closed

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        """Start the simulator and the bot; connect the default human when asked."""
        if self._stack is not None:
            raise RuntimeError("this harness is already running")
        stack = AsyncExitStack()
        self._closed = False
        self._bot_done = anyio.Event()
        try:
            await self._start(stack)
        except BaseException:
            self._closed = True
            self._stack = None
            await stack.aclose()
            raise
        if self.connect:
            try:
                await self.chat().connect()
            except BaseException as exc:
                await self.__aexit__(type(exc), exc, exc.__traceback__)
                raise
        return self

    async def _start(self, stack: AsyncExitStack) -> None:
        self._stack = stack
        if self._sim is None:
            sim = Simulator(
                db=":memory:",
                port=0,
                delivery_delay=self.delivery_delay,
                connect_event=self.connect_event,
                webhook_retry_delays=(0.05, 0.2, 0.5, 1.0, 2.0),
                webhook_timeout=self.timeout,
            )
            await sim.__aenter__()
            self._sim = sim
            stack.callback(self._forget_sim)
            # stop(), not __aexit__(exc): the test's own exception must not pass through
            # the simulator's task group, which would wrap it in an ExceptionGroup.
            stack.push_async_callback(sim.stop)
        sim = self._sim
        self._http = await stack.enter_async_context(aiohttp.ClientSession(sim.base_url))
        admin = await stack.enter_async_context(
            InkboxClient(api_key=sim.admin_key, base_url=sim.base_url)
        )
        try:
            identity = await admin.create_identity(self.handle, imessage_enabled=True)
        except Conflict:
            identity = await admin.update_identity(self.handle, imessage_enabled=True)
        self.identity_id = identity.id
        self.signing_key = (await admin.create_signing_key(self.handle)).signing_key
        self.api_key = await self._mint_key(sim)
        stack.enter_context(
            self._settings.applied(
                handle=self.handle,
                api_key=self.api_key,
                signing_key=self.signing_key,
                base_url=sim.base_url,
            )
        )
        listeners = _error_listeners(self.bot)
        listeners.append(self._on_handler_error)
        stack.callback(self._remove_listener, listeners)
        saved_drain = self.bot.drain_timeout
        self.bot.drain_timeout = min(saved_drain, self.shutdown_timeout)
        stack.callback(setattr, self.bot, "drain_timeout", saved_drain)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        stack.push_async_exit(self._close_tasks)
        self._bot_port = await tg.start(self._serve_bot)
        subscription = await admin.create_subscription(
            agent_identity_id=identity.id,
            url=f"{self.bot_url}/webhook",
            event_types=list(EVENT_TYPES),
        )
        if self._given_sim is not None:
            # Leave a shared simulator as we found it: no webhook to a port about to close.
            stack.push_async_callback(admin.delete_subscription, subscription.id)

    def _forget_sim(self) -> None:
        self._sim = self._given_sim

    def _remove_listener(self, listeners: list[Any]) -> None:
        if self._on_handler_error in listeners:
            listeners.remove(self._on_handler_error)

    async def _mint_key(self, sim: Simulator) -> str:
        assert self._http is not None
        async with self._http.post(
            f"/sim/v1/identities/{quote(self.handle)}/api-keys",
            headers={"X-API-Key": sim.admin_key},
            json={},
        ) as response:
            body = await response.text()
            if response.status != 201:
                raise RuntimeError(f"minting an API key failed: {response.status} {body}")
            return str(json.loads(body)["api_key"])

    async def _serve_bot(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        try:
            await self.bot.serve("127.0.0.1", 0, task_status=task_status)
        finally:
            if self._bot_done is not None:
                self._bot_done.set()

    async def _close_tasks(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        tg = self._tg
        self._tg = None
        if tg is None:
            return False
        with anyio.CancelScope(shield=True):
            if await self._only_asks_left():
                # Handlers waiting in ctx.ask for a human who is gone: nothing to drain.
                self.bot.drain_timeout = 0
            self.bot.stop()
            # The bot drains within shutdown_timeout; the margin covers closing its server.
            with anyio.move_on_after(self.shutdown_timeout + 2.0):
                if self._bot_done is not None:
                    await self._bot_done.wait()
        tg.cancel_scope.cancel()
        try:
            # None, not the block's exception: that one is the test's, not the tasks'.
            await tg.__aexit__(None, None, None)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        return False

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the bot, the listeners and the simulator; re-raise a handler error left over."""
        stack, self._stack = self._stack, None
        self._closed = True
        for chat in self._chats.values():
            chat._changed.notify()
        if stack is None:
            return
        try:
            await stack.__aexit__(exc_type, exc, tb)
            if exc is None:
                self._raise_pending(where="when the harness stopped")
        finally:
            self._chats.clear()
            self._http = None
            self._bot_port = None

    # ------------------------------------------------------------------ humans

    def chat(self, number: str | None = None) -> Conversation:
        """The conversation of one human with the bot (the same object for the same number).

        The default human (``phone``) is connected on enter when ``connect=True``; call
        ``await chat.connect()`` for the others.

        Example:
            >>> alice = harness.chat()
            >>> bob = harness.chat("+15550001111")
            >>> await bob.connect()

        Args:
            number: the human's number (E.164); the harness's ``phone`` by default.
        """
        number = number or self.phone
        chat = self._chats.get(number)
        if chat is None:
            if self._tg is None or self._http is None:
                raise RuntimeError("the harness is not running: use `async with BotHarness(bot)`")
            chat = Conversation(self, number)
            self._chats[number] = chat
            self._tg.start_soon(chat._listen, name=f"imbot.testing.listen {number}")
        return chat

    # ------------------------------------------------------------------ settling

    async def settle(self, timeout: float | None = None) -> None:
        """Wait until the simulator and the bot are quiet.

        Quiet means: no webhook waiting to be delivered, no message of the bot still on
        its way, and no handler running except those waiting in ``ctx.ask`` for a human.
        Then it waits until every ``Conversation`` has seen all of it.

        Example:
            >>> await chat.say("remind me")
            >>> await harness.settle()
            >>> assert len(chat.replies) == 1

        Args:
            timeout: seconds to wait; the harness's ``timeout`` by default.

        Raises:
            AssertionError: it did not settle in time.
        """
        limit = self.timeout if timeout is None else timeout
        quiet = 0
        with anyio.move_on_after(limit):
            while True:
                self._raise_pending()
                quiet = 0 if _sim_busy(self.sim) or await self._bot_busy() else quiet + 1
                if quiet >= _QUIET_ROUNDS:
                    break
                await anyio.sleep(_POLL)
        if quiet >= _QUIET_ROUNDS:
            # Quiet; now let every phone's event stream show what happened.
            for chat in list(self._chats.values()):
                await chat._catch_up(limit)
            return
        self._raise_pending()
        raise AssertionError(
            f"the bot and the simulator were still busy after {limit:g} s "
            "(a handler still running, or webhooks still being delivered)"
        )

    async def _lanes(self) -> tuple[int, int]:
        """From the bot's ``/healthz``: conversations with work, and open ``ctx.ask``s."""
        if self._http is None or self._bot_port is None:
            return 0, 0
        async with self._http.get(f"{self.bot_url}/healthz") as response:
            data = await response.json()
        return int(data.get("lanes", 0)), int(data.get("asks", 0))

    async def _bot_busy(self) -> bool:
        lanes, asks = await self._lanes()
        return lanes > asks

    async def _only_asks_left(self) -> bool:
        try:
            lanes, asks = await self._lanes()
        except (aiohttp.ClientError, ValueError):
            return False  # the bot is not answering: let stop() take its course
        return 0 < asks == lanes

    # ------------------------------------------------------------------ handler errors

    def _on_handler_error(self, ctx: Context[Any], exc: BaseException) -> None:
        self.errors.append(HandlerError(exc, ctx.event.event_type, ctx.handler_name))
        for chat in self._chats.values():
            chat._changed.notify()

    def _raise_pending(self, where: str = "", chat: Conversation | None = None) -> None:
        """Re-raise the first handler error not reported yet (when asked to)."""
        if not self.raise_handler_errors or self._reported >= len(self.errors):
            return
        pending = self.errors[self._reported :]
        self._reported = len(self.errors)
        first = pending[0]
        exc = first.exception
        handler = f" in {first.handler}" if first.handler else ""
        note = f"imbot.testing: raised by the bot{handler} handling {first.event_type}"
        if where:
            note += f", noticed {where}"
        if len(pending) > 1:
            note += f" ({len(pending) - 1} more handler error(s) in harness.errors)"
        exc.add_note(note)
        chat = chat or self._chats.get(self.phone)
        if chat is not None:
            exc.add_note(chat.transcript())
        raise exc


# ---------------------------------------------------------------------------- one human


@dataclass(slots=True)
class _Log:
    """What one phone saw, in the order it saw it."""

    items: dict[str, TimelineItem] = field(default_factory=dict)
    entries: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, a, b)
    replies: list[str] = field(default_factory=list)  # the bot's message ids
    bot_tapbacks: list[TimelineReaction] = field(default_factory=list)
    reactions: dict[str, TimelineReaction] = field(default_factory=dict)
    before: set[str] = field(default_factory=set)  # items shown before we listened


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
        self._log = _Log()
        self._changed = _Changed()
        self._ready = anyio.Event()
        self._stream_error: str | None = None
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
        lines = [f"Conversation of {self.number} with @{self.handle}:"]
        log = self._log
        for kind, first, second in log.entries:
            if kind == "item":
                lines.append("  " + self._render_item(log.items[first]))
            elif kind == "typing":
                lines.append(f"  {self._who('them', first)}: (typing…)")
            else:
                reaction = log.reactions[first]
                target = log.items[second]
                # Only the human and agents tapback; the router never does.
                thread = self.handle if target.thread == "router" else target.thread
                who = self._who(reaction.sender, thread)
                text = _shorten(target.text or "an attachment", 40)
                lines.append(f'  {who}: {reaction.emoji} {reaction.kind} on "{text}"')
        if len(lines) == 1:
            lines.append("  (nothing yet)")
        if self._stream_error:
            lines.append(f"  (event stream: {self._stream_error})")
        return "\n".join(lines)

    def _who(self, sender: str, thread: str) -> str:
        if sender == "me":
            return "me"
        if thread == "router":
            return "router"
        return "bot" if thread == self.handle else f"@{thread}"

    def _render_item(self, item: TimelineItem) -> str:
        parts = [item.text.replace("\n", "\n      ") if item.text else ""]
        parts.extend(f"[{m.content_type or 'media'} {m.url}]" for m in item.media)
        if item.send_style:
            parts.append(f"({item.send_style})")
        body = " ".join(p for p in parts if p) or "(empty)"
        status = "" if item.thread == "router" and item.sender == "them" else f" [{item.status}]"
        return f"{self._who(item.sender, item.thread)}: {body}{status}"

    def _fail(self, message: str) -> AssertionError:
        return AssertionError(f"{message}\n\n{self.transcript()}")

    # ------------------------------------------------------------------ the event stream

    async def _listen(self) -> None:
        http = self._harness._http
        assert http is not None
        url = f"/sim/v1/phones/{quote(self.number)}/events"
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
                if response.status != 200:
                    self._stream_error = f"{response.status} {await response.text()}"
                    return
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        if self._on_block(block.decode()) == "ready":
                            await self._seed()
                            self._ready.set()
        except aiohttp.ClientError as exc:
            self._stream_error = repr(exc)
        finally:
            if self._stream_error is None and not self._harness.closed:
                self._stream_error = "ended"
            self._ready.set()
            self._changed.notify()

    async def _timeline(self) -> dict[str, Any]:
        http = self._harness._http
        assert http is not None
        async with http.get(f"/sim/v1/phones/{quote(self.number)}/timeline") as response:
            data: dict[str, Any] = await response.json()
            return data

    async def _seed(self) -> None:
        """Note what the phone already showed before we listened (a shared simulator)."""
        data = await self._timeline()
        self._log.before.update(str(item["id"]) for item in data["items"])

    async def _catch_up(self, timeout: float) -> None:
        """Wait until the event stream has shown everything the timeline shows now."""
        await self._ensure_ready()
        data = await self._timeline()
        ids = {str(item["id"]) for item in data["items"]} - self._log.before
        await self._wait(
            lambda: True if ids <= self._log.items.keys() else None,
            timeout,
            "the phone's event stream to catch up",
        )

    def _on_block(self, block: str) -> str:
        """Apply one server-sent event; return its name."""
        event, data = "", []
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        if event == "ready" or not data:
            return event
        try:
            payload = json.loads("\n".join(data))
        except ValueError:
            self._stream_error = f"unreadable {event or 'message'} event: {data!r:.200}"
            return event
        if event == "item":
            self._on_item(TimelineItem.from_json(payload))
        elif event == "typing" and payload.get("typing"):
            self._log.entries.append(("typing", str(payload.get("thread")), ""))
        self._changed.notify()
        return event

    def _on_item(self, item: TimelineItem) -> None:
        log = self._log
        if item.id in log.before:
            return
        # The stream sends every change of an item as its new full state, in order.
        old = log.items.get(item.id)
        log.items[item.id] = item
        if old is None:
            log.entries.append(("item", item.id, ""))
            if item.sender == "them" and item.thread == self.handle:
                log.replies.append(item.id)
        for reaction in item.reactions:
            if reaction.id in log.reactions:
                continue
            log.reactions[reaction.id] = reaction
            log.entries.append(("reaction", reaction.id, item.id))
            if reaction.sender == "them" and item.sender == "me":
                log.bot_tapbacks.append(reaction)

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
                if self._stream_error is not None:
                    raise self._fail(f"the phone's event stream failed while waiting for {what}")
                await self._changed.wait()
        self._harness._raise_pending(chat=self)
        raise self._fail(f"expected {what} within {timeout:g} s; it did not come")

    def _timeout(self, timeout: float | None) -> float:
        return self._harness.timeout if timeout is None else timeout

    async def _ensure_ready(self) -> None:
        with anyio.move_on_after(self._harness.timeout):
            await self._ready.wait()
        if not self._ready.is_set() or self._stream_error is not None:
            raise self._fail(f"could not follow {self.number}'s phone: {self._stream_error}")
        self._harness._raise_pending(chat=self)

    async def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        http = self._harness._http
        if http is None:
            raise RuntimeError("the harness is not running")
        async with http.post(path, json=dict(body)) as response:
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
        threads = (await self._timeline())["threads"]  # the simulator's word, not the stream's
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
        http = self._harness._http
        assert http is not None
        async with http.post("/sim/v1/media", data=form) as response:
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
        wanted = _describe(text=text, regex=regex, contains=contains, media=media)

        def next_reply() -> TimelineItem | None:
            if self._reply_pos >= len(self._log.replies):
                return None
            return self._log.items[self._log.replies[self._reply_pos]]

        reply = await self._wait(next_reply, self._timeout(timeout), f"a reply{wanted}")
        self._reply_pos += 1
        problem = _mismatch(reply, text=text, regex=regex, contains=contains, media=media)
        if problem:
            raise self._fail(f"expected a reply{wanted}, but {problem}")
        return reply

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

        def spoke() -> TimelineItem | None:
            if self._reply_pos >= len(self._log.replies):
                return None
            return self._log.items[self._log.replies[self._reply_pos]]

        with anyio.move_on_after(for_):
            while True:
                self._harness._raise_pending(chat=self)
                reply = spoke()
                if reply is not None:
                    self._reply_pos += 1
                    raise self._fail(
                        f"expected silence for {for_:g} s, but the bot said {reply.text!r}"
                    )
                if self._harness.closed or self._stream_error is not None:
                    raise self._fail("the harness stopped while checking for silence")
                await self._changed.wait()
        self._harness._raise_pending(chat=self)


# ---------------------------------------------------------------------------- matching


def _describe(
    *,
    text: str | None,
    regex: str | re.Pattern[str] | None,
    contains: str | None,
    media: bool | str | None,
) -> str:
    parts = []
    if text is not None:
        parts.append(f"with text {text!r}")
    if regex is not None:
        parts.append(f"matching /{regex if isinstance(regex, str) else regex.pattern}/")
    if contains is not None:
        parts.append(f"containing {contains!r}")
    if media is True:
        parts.append("with an attachment")
    elif media is False:
        parts.append("without attachment")
    elif media is not None:
        parts.append(f"with a {media} attachment")
    return (" " + ", ".join(parts)) if parts else ""


def _mismatch(
    reply: TimelineItem,
    *,
    text: str | None,
    regex: str | re.Pattern[str] | None,
    contains: str | None,
    media: bool | str | None,
) -> str | None:
    """Why ``reply`` does not match, or ``None`` when it does."""
    said = reply.text or ""
    got = f"the bot said {reply.text!r}" if reply.text is not None else "the bot sent no text"
    if text is not None and said != text:
        return got
    if regex is not None and not re.search(regex, said):
        return got
    if contains is not None and contains not in said:
        return got
    kinds = [m.content_type or "" for m in reply.media]
    if media is True and not reply.media:
        return f"{got} without attachment"
    if media is False and reply.media:
        return f"{got} with an attachment ({', '.join(kinds)})"
    if isinstance(media, str) and not any(k.startswith(media) for k in kinds):
        return f"{got} with attachments {kinds or 'none'}"
    return None
