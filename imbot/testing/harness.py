"""``BotHarness``: run a bot against an in-process simulator, as a test's async context manager.

The harness owns the moving parts of a test run: the simulator (unless one is given), the
bot's identity and keys, the bot serving webhooks on a free loopback port, one event-stream
follower per human, and the handler errors the bot reports. It talks to the bot only
through public seams: ``bot.configured(...)`` for the settings, ``bot.add_error_listener``
for handler errors, ``bot.serve()`` / ``bot.stop()``, the bot's ``/healthz``, and
``bot.conversation_state()`` for ``harness.state()``.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import aiohttp
import anyio
import anyio.abc

from imbot.bot.pacing import Pacing
from imbot.errors import single_exception
from imbot.sim import Chaos
from imbot.testing.agent import SimAgent, local_simulator, sim_agent
from imbot.testing.conversation import Conversation
from imbot.testing.handler_errors import HandlerError, annotated, kit_failure
from imbot.testing.unawaited import noticing_unawaited

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.bot.context import Context
    from imbot.sim import Simulator

__all__ = ["DEFAULT_TIMEOUT", "BotHarness", "HandlerError"]

# pytest shows the test's line, not the kit's, for a failure the kit raises on purpose.
__tracebackhide__ = kit_failure

DEFAULT_TIMEOUT = 5.0
"""Seconds every ``expect_*`` waits unless told otherwise."""

_POLL = 0.01  # settle() polling interval: short, always inside a deadline
_QUIET_ROUNDS = 3  # consecutive quiet polls before settle() trusts the quiet


class BotHarness:
    """Run a bot against an in-process simulator, and play the humans who text it.

    On enter: starts a ``Simulator`` (in memory, free loopback port) unless one is given,
    creates the iMessage-enabled identity ``handle``, mints its signing key and an
    identity-scoped API key, starts ``bot.serve()`` on a free loopback port with those
    settings (through ``bot.configured()``; the environment is not touched), subscribes
    the bot's webhook to the five iMessage events and, with ``connect=True``, connects the
    default human. On exit: stops the bot (running handlers get ``shutdown_timeout``
    seconds), the simulator, and puts the bot's settings back, so the same ``Bot`` can be
    tested again.

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
        chaos: chaos mode for the run (a ``Chaos``, or a spec such as ``"seed=7,api=10%"``):
            switched on once the bot is set up, before the default human connects, and put
            back as it was when the harness exits. Keep its delays short in tests.
        pacing: the pauses between a reply's bubbles during the run; none by default
            (``Pacing.instant()``), whatever the bot was built with. The typing bubble
            is still shown between bubbles.

    Raises:
        ValueError: ``timeout`` is not positive or ``shutdown_timeout`` is negative, or
            ``chaos`` is not a valid spec.
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
        chaos: Chaos | str | None = None,
        pacing: Pacing | None = None,
    ) -> None:
        if timeout <= 0 or shutdown_timeout < 0:
            raise ValueError("timeout must be positive and shutdown_timeout not negative")
        self.chaos = Chaos.parse(chaos) if isinstance(chaos, str) else chaos
        self.bot = bot
        self.handle = handle
        self.phone = phone
        self.connect = connect
        self.delivery_delay = delivery_delay
        self.connect_event = connect_event
        self.raise_handler_errors = raise_handler_errors
        self.timeout = timeout
        self.shutdown_timeout = shutdown_timeout
        self.pacing = pacing or Pacing.instant()
        self.errors: list[HandlerError] = []
        self._unawaited: list[str] = []  # forgotten awaits: they always fail the test
        self._unawaited_reported = 0
        self._given_sim = simulator
        self._sim: Simulator | None = simulator
        self._stack: AsyncExitStack | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._agent: SimAgent | None = None
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
    def agent(self) -> SimAgent:
        """The bot's identity on the simulator: its keys, API clients and the humans' phones.

        Example:
            >>> sent = await harness.agent.outbound()  # every message the bot sent

        Raises:
            RuntimeError: the harness is not running.
        """
        if self._agent is None:
            raise RuntimeError("the harness is not running: use `async with BotHarness(bot)`")
        return self._agent

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
            self._agent = None
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
        # A forgotten `await` fails the test at once, whatever raise_handler_errors says.
        stack.enter_context(noticing_unawaited(self._on_unawaited))
        if self._sim is None:
            stack.callback(self._forget_sim)
            # Simulator's exit lets the test's own exception through unchanged.
            self._sim = await stack.enter_async_context(
                local_simulator(
                    delivery_delay=self.delivery_delay,
                    connect_event=self.connect_event,
                    webhook_timeout=self.timeout,
                )
            )
        sim = self._sim
        agent = await stack.enter_async_context(sim_agent(sim, self.handle))
        self._agent = agent
        self.identity_id = agent.identity.id
        self.signing_key = agent.signing_key
        self.api_key = agent.api_key
        stack.enter_context(
            self.bot.configured(
                handle=self.handle,
                api_key=self.api_key,
                signing_key=self.signing_key,
                base_url=sim.base_url,
            )
        )
        self.bot.add_error_listener(self._on_handler_error)
        stack.callback(self.bot.remove_error_listener, self._on_handler_error)
        saved_drain = self.bot.drain_timeout
        self.bot.drain_timeout = min(saved_drain, self.shutdown_timeout)
        stack.callback(setattr, self.bot, "drain_timeout", saved_drain)
        saved_pacing = self.bot.pacing
        self.bot.pacing = self.pacing
        stack.callback(setattr, self.bot, "pacing", saved_pacing)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        stack.push_async_exit(self._close_tasks)
        self._bot_port = await tg.start(self._serve_bot)
        subscription = await agent.subscribe(f"{self.bot_url}/webhook")
        if self._given_sim is not None:
            # Leave a shared simulator as we found it: no webhook to a port about to close.
            stack.push_async_callback(agent.client.delete_subscription, subscription.id)
        if self.chaos is not None:
            control = sim.chaos
            # Put back first on exit (callbacks run last-in first-out), so tearing down
            # meets no chaos.
            stack.callback(control.configure, control.config, enabled=control.enabled)
            control.configure(self.chaos)

    def _forget_sim(self) -> None:
        self._sim = self._given_sim

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
            inner = single_exception(group)
            if inner is None:
                raise
            raise inner from None
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
            chat._poke()
        if stack is None:
            return
        try:
            await stack.__aexit__(exc_type, exc, tb)
            if exc is None:
                self._raise_pending(where="when the harness stopped")
        finally:
            self._chats.clear()
            self._agent = None
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

        Raises:
            RuntimeError: the harness is not running.
        """
        number = number or self.phone
        chat = self._chats.get(number)
        if chat is None:
            if self._tg is None or self._agent is None:
                raise RuntimeError("the harness is not running: use `async with BotHarness(bot)`")
            chat = Conversation(self, number)
            self._chats[number] = chat
            self._tg.start_soon(chat._follow, name=f"imbot.testing.listen {number}")
        return chat

    # ------------------------------------------------------------------ state

    async def state(
        self, chat: Conversation | str | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """A human's conversation state with the bot: what its handlers saved in ``ctx.state``.

        It waits until the bot is quiet first (see ``settle``): a handler saves
        ``ctx.state`` when it returns, which may be after its reply reached the phone.
        The answer is a copy, as plain JSON values; ``{}`` when nothing was saved.

        Example:
            >>> await chat.say("count")
            >>> await chat.expect_reply("You asked 1 times.")
            >>> await harness.state()
            {'count': 1}

        Args:
            chat: the human: a ``Conversation``, a number (E.164), or the default human.
            timeout: seconds to wait for quiet; the harness's ``timeout`` by default.

        Raises:
            AssertionError: the human has no conversation with the bot, or the bot did
                not settle in time.
        """
        number = chat.number if isinstance(chat, Conversation) else chat or self.phone
        await self.settle(timeout)
        conversation_id = await self._conversation_id(number)
        if conversation_id is None:
            conversation = self._chats.get(number)
            transcript = f"\n\n{conversation.transcript()}" if conversation else ""
            raise AssertionError(
                f"{number} has no conversation with @{self.handle}: connect first "
                f"(`await harness.chat({number!r}).connect()`){transcript}"
            )
        return await self.bot.conversation_state(conversation_id)

    async def _conversation_id(self, number: str) -> str | None:
        """The bot's latest conversation with ``number``, as the simulator has it."""
        async for conversation in self.agent.client.iter_conversations():
            if conversation.remote_number == number:
                return conversation.id  # most recent first
        return None

    # ------------------------------------------------------------------ settling

    async def settle(self, timeout: float | None = None) -> None:
        """Wait until the simulator and the bot are quiet.

        Quiet means: no webhook waiting to be delivered, no message of the bot still on
        its way (``Simulator.busy()``), and no handler running except those waiting in
        ``ctx.ask`` for a human. Then it waits until every ``Conversation`` has seen all
        of it.

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
                quiet = 0 if self.sim.busy() or await self._bot_busy() else quiet + 1
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
        if self._agent is None or self._bot_port is None:
            return 0, 0
        async with self._agent.http.get(f"{self.bot_url}/healthz") as response:
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
            chat._poke()

    def _on_unawaited(self, failure: str) -> None:
        self._unawaited.append(failure)
        for chat in self._chats.values():
            chat._poke()

    def _raise_pending(self, where: str = "", chat: Conversation | None = None) -> None:
        """Raise a forgotten ``await``, or re-raise the first handler error not reported yet."""
        chat = chat or self._chats.get(self.phone)
        if self._unawaited_reported < len(self._unawaited):
            failure, *more = self._unawaited[self._unawaited_reported :]
            self._unawaited_reported = len(self._unawaited)
            also = f" (and {len(more)} more like it)" if more else ""
            shown = f"\n\n{chat.transcript()}" if chat is not None else ""
            raise AssertionError(f"{failure}{also}{shown}")
        if not self.raise_handler_errors or self._reported >= len(self.errors):
            return
        pending = self.errors[self._reported :]
        self._reported = len(self.errors)
        transcript = chat.transcript() if chat is not None else None
        raise annotated(pending, where=where, transcript=transcript)
