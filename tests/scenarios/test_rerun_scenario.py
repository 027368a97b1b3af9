"""A handling run again after a crash: what it sent stays sent, and nothing is left unanswered.

The first bot sends, then hangs until its shutdown drain cancels it, as a crash would end
it: the event stays pending in the SQLite inbox. A second bot on the same inbox resumes it
against the simulator, which holds the first run's sends under their idempotency keys. A
question the human answered is not asked in vain the second time: its answer was kept.
"""

from __future__ import annotations

import pathlib
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest

from imbot import Bot, Context, HandlerRetry, MessageReceived
from imbot.bot.inbox import open_inbox
from imbot.client import InkboxClient
from imbot.errors import ConnectError, IdempotencyKeyReused
from imbot.testing import SimAgent, eventually, serving, simulated

HUMAN = "+15555550161"


def _bot(agent: SimAgent, inbox: str, **options: Any) -> Bot:
    return Bot(client=agent.client, signing_key=agent.signing_key, inbox=inbox, **options)


async def _pending(url: str) -> list[bytes]:
    inbox = open_inbox(url)
    try:
        return [event.raw for event in await inbox.pending()]
    finally:
        await inbox.close()


async def _texts_when(agent: SimAgent, accept: Callable[[list[str]], bool]) -> list[str]:
    """The bot's texts to the human, once ``accept`` takes them."""
    return await eventually(lambda: agent.agent_texts(HUMAN), accept)


def _errors(bot: Bot) -> list[BaseException]:
    found: list[BaseException] = []
    bot.add_error_listener(lambda ctx, exc: found.append(exc))
    return found


async def _sent_then_crashed(agent: SimAgent, inbox: str) -> str:
    """A first bot answers "what now?" with a model-like text, then hangs until stopped."""
    first = _bot(agent, inbox, drain_timeout=0.05)

    @first.on_message()
    async def hang(ctx: Context[MessageReceived]) -> None:
        if ctx.text.startswith("connect"):
            return
        # A model's answer differs each time it is asked.
        await ctx.reply(f"first thought {uuid.uuid4().hex[:8]}")
        await anyio.sleep_forever()

    async with serving(agent, first):
        await agent.connect(HUMAN)
        await agent.text(HUMAN, "what now?")
        sent = await _texts_when(agent, lambda t: len(t) == 1)
    return sent[0]


def _second_thoughts(bot: Bot) -> list[BaseException]:
    """The re-run: another text for the same send, then one more send; its errors."""
    errors = _errors(bot)

    @bot.on_message()
    async def answer(ctx: Context[MessageReceived]) -> None:
        earlier = await ctx.reply(f"second thought {uuid.uuid4().hex[:8]}")
        await ctx.reply(f"then more (after {earlier.content})")

    return errors


@pytest.mark.parametrize("key", ["identity key", "admin key and handle"])
async def test_a_rerun_that_would_say_something_else_keeps_what_was_sent(
    tmp_path: pathlib.Path, key: str
) -> None:
    inbox = f"sqlite:///{tmp_path}/inbox.db"
    with anyio.fail_after(30):
        async with simulated("rerun") as agent, AsyncExitStack() as stack:
            sent = await _sent_then_crashed(agent, inbox)
            if key == "identity key":
                second = _bot(agent, inbox)
            else:  # an admin key sends as any identity: the handle tells which one
                admin = InkboxClient(api_key=agent.sim.admin_key, base_url=agent.sim.base_url)
                await stack.enter_async_context(admin)
                second = Bot(agent.handle, client=admin, signing_key=agent.signing_key, inbox=inbox)
            errors = _second_thoughts(second)
            async with serving(agent, second):
                texts = await _texts_when(agent, lambda t: len(t) == 2)
            # The first send is the one the human saw; the re-run went on from there.
            assert texts == [sent, f"then more (after {sent})"]
            assert errors == []


async def test_a_rerun_whose_identity_cannot_be_told_reports_the_reused_key(
    tmp_path: pathlib.Path,
) -> None:
    inbox = f"sqlite:///{tmp_path}/inbox.db"
    with anyio.fail_after(30):
        async with (
            simulated("rerun") as agent,
            InkboxClient(api_key=agent.sim.admin_key, base_url=agent.sim.base_url) as admin,
        ):
            await admin.create_identity("someone-else", imessage_enabled=True)
            sent = await _sent_then_crashed(agent, inbox)
            # An admin key, no handle, two identities: which one sent it is unknown.
            second = Bot(client=admin, signing_key=agent.signing_key, inbox=inbox)
            errors = _second_thoughts(second)
            async with serving(agent, second):
                while not errors:
                    await anyio.sleep(0.02)
            assert [type(e) for e in errors] == [IdempotencyKeyReused]
            assert await agent.agent_texts(HUMAN) == [sent]  # nothing sent twice


def _on(ctx: Context[MessageReceived]) -> str:
    return f"on: {ctx.text.replace(chr(10), ' + ')}"


def _answers_then_hangs(bot: Bot, **options: Any) -> anyio.Event:
    """``bot``'s turns answer, then hang until the stop cancels them (as a crash would end
    them); the connect message's turn only sets the event returned."""
    connected = anyio.Event()

    @bot.on_turn(**options)
    async def hang(ctx: Context[MessageReceived]) -> None:
        if ctx.text.startswith("connect"):
            connected.set()
            return
        await ctx.reply(_on(ctx))
        await anyio.sleep_forever()

    return connected


def _answers(bot: Bot) -> anyio.Event:
    """``bot``'s turns answer; the event returned is set once one did."""
    ran = anyio.Event()

    @bot.on_turn(quiet=0.1, max_wait=0.5)
    async def chat(ctx: Context[MessageReceived]) -> None:
        await ctx.reply(_on(ctx))
        ran.set()

    return ran


async def test_a_turn_formed_again_with_a_late_message_answers_it_too(
    tmp_path: pathlib.Path,
) -> None:
    inbox = f"sqlite:///{tmp_path}/inbox.db"
    with anyio.fail_after(30):
        async with simulated("late") as agent:
            first = _bot(agent, inbox, drain_timeout=0.05)
            connected = _answers_then_hangs(first, quiet=0.1, max_wait=0.5, interrupt=False)

            async with serving(agent, first):
                await agent.connect(HUMAN)
                await connected.wait()
                await agent.text(HUMAN, "first")
                await _texts_when(agent, lambda t: t == ["on: first"])
                # Too late to join: the reply is out. It waits behind the running turn.
                await agent.text(HUMAN, "second")
                await eventually(
                    lambda: _pending(inbox), lambda raws: any(b'"second"' in r for r in raws)
                )

            second = _bot(agent, inbox)
            errors = _errors(second)
            _answers(second)
            async with serving(agent, second):
                texts = await _texts_when(agent, lambda t: len(t) == 2)
            # Formed again with the late message, the turn is a new one and answers both.
            assert texts == ["on: first", "on: first + second"]
            assert errors == []


async def test_a_turn_formed_again_with_the_same_messages_sends_nothing_twice(
    tmp_path: pathlib.Path,
) -> None:
    inbox = f"sqlite:///{tmp_path}/inbox.db"
    with anyio.fail_after(30):
        async with simulated("same") as agent:
            first = _bot(agent, inbox, drain_timeout=0.05)
            connected = _answers_then_hangs(first, quiet=1.0, max_wait=3)

            async with serving(agent, first):
                await agent.connect(HUMAN)
                await connected.wait()
                await agent.text(HUMAN, "one")
                await agent.text(HUMAN, "two")
                await _texts_when(agent, lambda t: t == ["on: one + two"])

            second = _bot(agent, inbox)
            ran = _answers(second)
            async with serving(agent, second):
                await ran.wait()
            assert await agent.agent_texts(HUMAN) == ["on: one + two"]


# --------------------------------------------------------------------------- ctx.ask


def _asking(bot: Bot, *, then: Callable[[int], Awaitable[None]]) -> None:
    """``bot`` asks for a name, runs ``then(run number)``, and greets."""
    runs: list[int] = []

    @bot.on_message()
    async def greet(ctx: Context[MessageReceived]) -> None:
        if ctx.text.startswith("connect"):
            return
        runs.append(len(runs) + 1)
        name = await ctx.ask("Your name?", timeout=10)
        await then(runs[-1])
        await ctx.reply(f"hi {name.text}")


async def test_an_answer_is_kept_for_the_retry_after_a_transient_error(
    tmp_path: pathlib.Path,
) -> None:
    async def fail_once(run: int) -> None:
        if run == 1:
            raise ConnectError("the API is unreachable")

    with anyio.fail_after(30):
        async with simulated("retry") as agent:
            bot = _bot(
                agent,
                f"sqlite:///{tmp_path}/inbox.db",
                handler_retry=HandlerRetry(first_delay=0.05, max_delay=0.1),
            )
            errors = _errors(bot)
            _asking(bot, then=fail_once)
            async with serving(agent, bot):
                await agent.connect(HUMAN)
                await agent.text(HUMAN, "hello")
                await _texts_when(agent, lambda t: t == ["Your name?"])
                await agent.text(HUMAN, "Ada")
                # The run again asks the same question: the human answered it already.
                texts = await _texts_when(agent, lambda t: len(t) == 2)
    assert texts == ["Your name?", "hi Ada"]
    assert errors == []


async def test_an_answer_is_kept_across_a_crash_and_dropped_once_done(
    tmp_path: pathlib.Path,
) -> None:
    inbox, state = f"sqlite:///{tmp_path}/inbox.db", f"sqlite:///{tmp_path}/state.db"
    answered = anyio.Event()

    async def die(run: int) -> None:
        answered.set()
        await anyio.sleep_forever()  # the shutdown drain cancels it, as a crash would end it

    async def go_on(run: int) -> None:
        pass

    with anyio.fail_after(30):
        async with simulated("crash") as agent:
            first = _bot(agent, inbox, state=state, drain_timeout=0.05)
            _asking(first, then=die)
            async with serving(agent, first):
                await agent.connect(HUMAN)
                await agent.text(HUMAN, "hello")
                await _texts_when(agent, lambda t: t == ["Your name?"])
                await agent.text(HUMAN, "Ada")
                await answered.wait()

            second = _bot(agent, inbox, state=state)
            _asking(second, then=go_on)
            async with serving(agent, second):
                texts = await _texts_when(agent, lambda t: len(t) == 2)
    assert texts == ["Your name?", "hi Ada"]
    with sqlite3.connect(tmp_path / "state.db") as db:
        query = "SELECT COUNT(*) FROM state WHERE conversation_id LIKE 'imbot.ask:%'"
        (kept,) = db.execute(query).fetchone()
    assert kept == 0
