"""Turns without a network: how a burst is gathered in its lane, cut, interrupted and kept.

The events go straight to ``bot.feed`` (``run_events``, or ``feed`` with the bot running);
the handlers record what ``ctx.turn`` held and send nothing, so an offline client does. The
same behaviour against the simulator, with replies and typing, is in
``tests/scenarios/test_turns_scenario.py``.
"""

from __future__ import annotations

import pathlib
import sqlite3
from typing import Any

import anyio
import pytest

from imbot import (
    AskTimeout,
    Bot,
    ConnectError,
    Context,
    HandlerRetry,
    MessageReceived,
    MessageSent,
    Router,
    Sender,
    SetupError,
    Turn,
)
from imbot.bot.dispatch import Dispatcher, LaneAccess, lane_key
from imbot.bot.inbox import event_key, open_inbox
from imbot.bot.state import load_state, open_state_store
from imbot.routing.turns import TurnOptions
from imbot.storage.memory import MemoryStateStore
from imbot.testing import (
    eventually,
    message_event,
    offline_client,
    reaction_event,
    record_turns,
    run_events,
)
from imbot.testing.events import CONVERSATION_ID, OTHER_PHONE

FAST = {"quiet": 0.1, "max_wait": 0.5}


def _texts(turn: Turn) -> list[str]:
    return [m.content or "" for m in turn.messages]


async def test_a_burst_queued_together_is_one_turn_seen_by_one_run() -> None:
    bot = Bot(client=offline_client())
    seen: list[tuple[list[str], str, str, int]] = []

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        seen.append((_texts(ctx.turn), ctx.text, ctx.event.id, ctx.turn.restarts))

    burst = [message_event(t) for t in ("hey", "quick q", "weather in Paris?")]
    await run_events(bot, *burst)
    assert seen == [
        (["hey", "quick q", "weather in Paris?"], "hey\nquick q\nweather in Paris?", burst[2].id, 0)
    ]


async def test_messages_arriving_within_the_quiet_window_join_and_later_ones_do_not() -> None:
    bot = Bot(client=offline_client())
    seen: list[list[str]] = []

    # No interruptions here: "d" may come while the first run is still returning.
    @bot.on_turn(quiet=0.5, max_wait=5, interrupt=False)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        seen.append(_texts(ctx.turn))

    with anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("a"))
            await anyio.sleep(0.15)
            await bot.feed(message_event("b"))  # within quiet of "a": joins
            await anyio.sleep(0.15)
            await bot.feed(message_event("c"))  # within quiet of "b": joins
            while not seen:
                await anyio.sleep(0.02)
            await bot.feed(message_event("d"))  # after the turn ran: the next turn
    assert seen == [["a", "b", "c"], ["d"]]


async def test_max_wait_ends_the_gathering_even_while_messages_keep_coming() -> None:
    bot = Bot(client=offline_client())
    seen: list[list[str]] = []

    @bot.on_turn(quiet=0.3, max_wait=0.35, interrupt=False)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        seen.append(_texts(ctx.turn))

    with anyio.fail_after(10):
        async with bot:
            for text in "abcdefg":
                await bot.feed(message_event(text))
                await anyio.sleep(0.1)
    assert len(seen) >= 2 and [t for turn in seen for t in turn] == list("abcdefg")
    assert len(seen[0]) <= 5  # cut near 0.35 s, not after the whole 0.7 s burst


async def test_max_messages_and_max_chars_cut_a_turn() -> None:
    bot = Bot(client=offline_client())
    by_count: list[list[str]] = []
    by_chars: list[list[str]] = []

    @bot.on_turn(Sender(OTHER_PHONE), max_messages=2, **FAST)
    async def counted(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        by_count.append(_texts(ctx.turn))

    @bot.on_turn(max_chars=11, **FAST)
    async def measured(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        by_chars.append(_texts(ctx.turn))

    other = "7a0c7c44-1f55-4d3f-9a2d-3c8b6f0e9d11"
    counted_burst = [message_event(t, sender=OTHER_PHONE, conversation_id=other) for t in "12345"]
    # "hello\nworld" is 11 characters: it fits; "!" would make 13. A long first one is taken.
    measured_burst = [message_event(t) for t in ("hello", "world", "!", "x" * 40, "y")]
    await run_events(bot, *counted_burst, *measured_burst)
    assert by_count == [["1", "2"], ["3", "4"], ["5"]]
    assert by_chars == [["hello", "world"], ["!"], ["x" * 40], ["y"]]


async def test_tapbacks_and_media_in_a_burst_are_part_of_the_turn() -> None:
    bot = Bot(client=offline_client())
    seen: list[Turn] = []

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        seen.append(ctx.turn)

    photo = [{"url": "https://example.com/cat.jpg", "content_type": "image/jpeg"}]
    await run_events(
        bot,
        message_event("look"),
        reaction_event("love"),
        message_event(None, media=photo),
        message_event("cute, right?"),
    )
    [turn] = seen
    assert [type(e).__name__ for e in turn.events] == [
        "MessageReceived",
        "ReactionReceived",
        "MessageReceived",
        "MessageReceived",
    ]
    assert [str(r.reaction) for r in turn.reactions] == ["love"]
    assert len(turn.messages) == 3 and turn.messages[1].media
    assert turn.text == "look\ncute, right?"


async def test_a_command_is_not_absorbed_it_ends_the_turn_and_runs_on_its_own() -> None:
    bot = Bot(client=offline_client())
    order: list[str] = []

    @bot.command("status")
    async def status(ctx: Context[MessageReceived]) -> None:
        order.append(f"command {ctx.text}")

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        order.append(f"turn {ctx.text!r}")

    await run_events(
        bot, message_event("hey"), message_event("status"), message_event("a"), message_event("b")
    )
    assert order == ["turn 'hey'", "command status", "turn 'a\\nb'"]


async def test_the_bots_own_echoes_are_handled_in_place_without_ending_the_turn() -> None:
    bot = Bot(client=offline_client())
    order: list[str] = []

    @bot.on_sent
    async def sent(ctx: Context[MessageSent]) -> None:
        order.append("sent")

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        order.append(f"turn {ctx.text!r}")

    await run_events(
        bot,
        message_event("hey"),
        message_event("earlier answer", event_type="imessage.sent"),
        message_event("there"),
    )
    assert order == ["sent", "turn 'hey\\nthere'"]


async def test_a_message_the_turn_filters_refuse_ends_it_and_goes_to_other_handlers() -> None:
    bot = Bot(client=offline_client())
    order: list[str] = []

    @bot.on_turn(Sender("+15555550100"), **FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        order.append(f"turn {ctx.text!r}")

    @bot.on_message()
    async def others(ctx: Context[MessageReceived]) -> None:
        order.append(f"message {ctx.text!r}")

    await run_events(
        bot, message_event("a"), message_event("b", sender=OTHER_PHONE), message_event("c")
    )
    assert order == ["turn 'a'", "message 'b'", "turn 'c'"]


async def test_a_new_message_before_any_send_cancels_the_run_and_restarts_the_turn(
    tmp_path: pathlib.Path,
) -> None:
    state_url = f"sqlite:///{tmp_path}/state.db"
    bot = Bot(client=offline_client(), state=state_url)
    turns = record_turns(bot)
    started = anyio.Event()
    reported: list[BaseException] = []
    bot.add_error_listener(lambda ctx, exc: reported.append(exc))

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        ctx.state["runs"] = ctx.state.get("runs", 0) + 1  # saved only from a finished run
        started.set()
        if ctx.turn.restarts == 0:
            await anyio.sleep(5)  # "thinking", until the next message cancels it

    with anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("what's the weather"))
            await started.wait()
            await bot.feed(message_event("in Paris"))
    assert [(r.texts, r.restarts, r.outcome) for r in turns.runs] == [
        (["what's the weather"], 0, "cancelled"),
        (["what's the weather", "in Paris"], 1, "done"),
    ]
    assert reported == []  # an interruption is no error
    states = open_state_store(state_url)
    try:
        assert (await load_state(states, CONVERSATION_ID)).to_dict() == {"runs": 1}
    finally:
        await states.close()


async def test_once_the_run_sent_something_new_messages_form_the_next_turn() -> None:
    bot = Bot(client=offline_client())
    turns = record_turns(bot)
    started = anyio.Event()

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        ctx.turn.mark_sent()  # as ctx.reply does before it sends
        started.set()
        if ctx.text == "first":
            await anyio.sleep(0.4)

    with anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("first"))
            await started.wait()
            await bot.feed(message_event("second"))
    assert [(r.texts, r.outcome) for r in turns.runs] == [
        (["first"], "done"),
        (["second"], "done"),
    ]


async def test_interrupt_false_lets_the_run_finish() -> None:
    bot = Bot(client=offline_client())
    turns = record_turns(bot)
    started = anyio.Event()

    @bot.on_turn(interrupt=False, **FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        started.set()
        if ctx.text == "first":
            await anyio.sleep(0.4)

    with anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("first"))
            await started.wait()
            await bot.feed(message_event("second"))
    assert [(r.texts, r.outcome) for r in turns.runs] == [
        (["first"], "done"),
        (["second"], "done"),
    ]


async def test_an_answer_to_ctx_ask_goes_to_the_asker_not_into_a_turn() -> None:
    bot = Bot(client=offline_client())
    turns = record_turns(bot)
    answers: list[str] = []
    asking = anyio.Event()

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        asking.set()
        answer = await ctx.ask(timeout=5)
        answers.append(answer.content or "")

    with anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("book a table"))
            await asking.wait()
            await anyio.sleep(0.05)
            await bot.feed(message_event("for two"))
    assert answers == ["for two"]
    assert [(r.texts, r.outcome) for r in turns.runs] == [(["book a table"], "done")]


async def test_a_durable_inbox_completes_every_absorbed_event(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    bot = Bot(client=offline_client(), inbox=url)
    seen: list[list[str]] = []

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        seen.append(_texts(ctx.turn))

    await run_events(bot, message_event("a"), reaction_event("like"), message_event("b"))
    assert seen == [["a", "b"]]
    inbox = open_inbox(url)
    try:
        assert await inbox.pending() == []
    finally:
        await inbox.close()


async def test_a_turn_cut_short_by_a_crash_forms_again_after_the_restart(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    burst = [message_event(t) for t in ("a", "b", "c")]
    hung = anyio.Event()

    first = Bot(client=offline_client(), inbox=url, drain_timeout=0.05)

    @first.on_turn(**FAST)
    async def hang(ctx: Context[MessageReceived]) -> None:
        hung.set()
        await anyio.sleep_forever()  # the shutdown drain cancels it, as a crash would end it

    with anyio.fail_after(10):
        async with first:
            for event in burst:
                await first.feed(event)
            await hung.wait()
    inbox = open_inbox(url)
    try:
        assert len(await inbox.pending()) == 3  # the absorbed ones were not completed
    finally:
        await inbox.close()

    second = Bot(client=offline_client(), inbox=url)
    seen: list[list[str]] = []

    @second.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        seen.append(_texts(ctx.turn))

    with anyio.fail_after(10):
        async with second:
            while not seen:
                await anyio.sleep(0.02)
    assert seen == [["a", "b", "c"]]
    inbox = open_inbox(url)
    try:
        assert await inbox.pending() == []
    finally:
        await inbox.close()


async def test_a_transient_error_runs_the_whole_turn_again(tmp_path: pathlib.Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    bot = Bot(
        client=offline_client(),
        inbox=url,
        handler_retry=HandlerRetry(first_delay=0.02, max_delay=0.05, deadline=5),
    )
    seen: list[list[str]] = []

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        seen.append(_texts(ctx.turn))
        if len(seen) == 1:
            raise ConnectError("the API is unreachable")

    with anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("a"))
            await bot.feed(message_event("b"))
            while len(seen) < 2:
                await anyio.sleep(0.02)
    assert seen == [["a", "b"], ["a", "b"]]
    inbox = open_inbox(url)
    try:
        assert await inbox.pending() == []
    finally:
        await inbox.close()


async def test_a_bot_without_turn_handlers_handles_each_message_alone() -> None:
    bot = Bot(client=offline_client())
    seen: list[tuple[str, Any]] = []

    @bot.on_message()
    async def echo(ctx: Context[MessageReceived]) -> None:
        seen.append((ctx.text, ctx.turn))

    await run_events(bot, *(message_event(t) for t in ("a", "b", "c")))
    assert seen == [("a", None), ("b", None), ("c", None)]


def test_on_turn_forms_options_and_mistakes() -> None:
    bot = Bot(client=offline_client())

    @bot.on_turn
    async def bare(ctx: Context[MessageReceived]) -> None: ...

    router = Router()
    router.add_turn_handler(bare, quiet=0.2, interrupt=False)
    bot.include_router(router)
    specs = [s for s in bot.handlers() if s.kind == "turn"]
    assert [s.options for s in specs] == [  # type: ignore[attr-defined]
        TurnOptions(),
        TurnOptions(quiet=0.2, interrupt=False),
    ]
    with pytest.raises(SetupError, match="quiet"):
        bot.on_turn(quiet=-1)
    with pytest.raises(SetupError, match="max_messages"):
        bot.on_turn(max_messages=0)
    with pytest.raises(SetupError, match="unknown options quite"):
        bot.on_turn(quite=1)
    with pytest.raises(SetupError, match="async def"):
        bot.add_turn_handler(lambda ctx: None)  # type: ignore[arg-type, return-value]


def test_turn_fits_counts_messages_and_the_joined_text() -> None:
    turn = Turn(message_event("hello"))
    options = TurnOptions(max_messages=3, max_chars=11)
    assert turn.fits(message_event("world").data.message, options)
    assert not turn.fits(message_event("world!").data.message, options)
    assert turn.fits(message_event(None).data.message, options)  # media only: no characters
    turn.add(message_event("a"))
    turn.add(message_event("b"))
    assert not turn.fits(message_event(None).data.message, options)
    assert not turn.sent
    turn.mark_sent()
    assert turn.sent and turn.last.data.message.content == "b"


async def test_a_turn_that_keeps_failing_becomes_dead_letters_for_all_its_events(
    tmp_path: pathlib.Path,
) -> None:
    bot = Bot(
        client=offline_client(),
        inbox=f"sqlite:///{tmp_path}/bot.db",
        handler_retry=HandlerRetry(first_delay=0.02, max_delay=0.05, deadline=0.3),
    )

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        raise ConnectError("the API is unreachable")

    burst = [message_event(t) for t in ("a", "b", "c")]
    with anyio.fail_after(10):
        async with bot:
            for event in burst:
                await bot.feed(event)
            while len(await bot.dead_letters()) < 3:
                await anyio.sleep(0.05)
            letters = await bot.dead_letters()
    first = {d.event_id: d for d in letters}.pop(event_key(burst[0]))
    assert first.reason == "deadline" and "ConnectError" in first.error
    for event in burst[1:]:
        [letter] = [d for d in letters if d.event_id == event_key(event)]
        assert letter.reason == "deadline" and letter.attempts == first.attempts
        assert f"part of the turn of {event_key(burst[0])}" in letter.error


async def test_a_turn_that_keeps_killing_the_process_makes_all_its_events_poison_together(
    tmp_path: pathlib.Path,
) -> None:
    url = f"sqlite:///{tmp_path}/bot.db"
    burst = [message_event(t) for t in ("a", "b", "c")]
    runs: list[list[str]] = []
    for start in range(3):
        # Each run's handler hangs; the shutdown drain cancels it, as a crash would end it.
        bot = Bot(
            client=offline_client(),
            inbox=url,
            drain_timeout=0.05,
            handler_retry=HandlerRetry(poison_after=2),
        )
        hung = anyio.Event()

        @bot.on_turn(**FAST)
        async def hang(ctx: Context[MessageReceived], hung: anyio.Event = hung) -> None:
            assert ctx.turn is not None
            runs.append(_texts(ctx.turn))
            hung.set()
            await anyio.sleep_forever()

        with anyio.fail_after(10):
            async with bot:
                if start == 0:
                    for event in burst:
                        await bot.feed(event)
                if start < 2:
                    await hung.wait()
                else:
                    while len(await bot.dead_letters()) < 3:
                        await anyio.sleep(0.02)
                    letters = await bot.dead_letters()
    assert runs == [["a", "b", "c"], ["a", "b", "c"]]  # the third start ran nothing
    assert sorted(d.event_id for d in letters) == sorted(event_key(e) for e in burst)
    assert {d.reason for d in letters} == {"poison"}


async def test_the_dispatcher_lets_a_lane_holder_peek_take_and_wait() -> None:
    first, second, third = (message_event(t) for t in ("1", "2", "3"))
    key = lane_key(first)
    seen: list[str] = []
    submitted, checked = anyio.Event(), anyio.Event()

    async def handle(event: Any) -> None:
        seen.append(event.data.message.content)
        if event is not first:
            return
        lanes: LaneAccess = dispatcher
        assert await lanes.peek(key, 5) == [] and await lanes.take(key) is None
        assert not await lanes.wait(key, 0.05)  # nothing queued: times out
        submitted.set()
        assert await lanes.wait(key, 5)  # woken by the submit
        assert await lanes.wait(key, 0)  # already there: at once
        assert not await lanes.wait(key, 0.05, beyond=1)
        dispatcher.submit(key, third)
        assert await lanes.wait(key, 0, beyond=1)
        assert await lanes.peek(key, 1) == [second]
        assert await lanes.peek(key, 9) == [second, third]
        assert await lanes.take(key) is second  # taken: the lane never runs it
        checked.set()

    dispatcher = Dispatcher(handle)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(dispatcher.run)
            dispatcher.submit(key, first)
            await submitted.wait()
            dispatcher.submit(key, second)
            await checked.wait()
            assert await dispatcher.drain(5)
    assert seen == ["1", "3"]


class _SlowSaves(MemoryStateStore):
    """A state store whose saves wait until the test lets them through."""

    def __init__(self) -> None:
        super().__init__()
        self.saving = anyio.Event()
        self.release = anyio.Event()

    async def save(self, conversation_id: str, data: dict[str, Any]) -> None:
        self.saving.set()
        await self.release.wait()
        await super().save(conversation_id, data)


async def test_a_message_during_ctx_ask_saving_state_does_not_interrupt_the_run() -> None:
    # ctx.ask saves the state before it asks: from there on the run is committed, so a
    # message arriving during that save must not cancel it (its state would be half kept).
    store = _SlowSaves()
    bot = Bot(client=offline_client(), state=store)
    turns = record_turns(bot)

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        ctx.state["runs"] = ctx.state.get("runs", 0) + 1
        if ctx.text == "first":
            with pytest.raises(AskTimeout):
                await ctx.ask(timeout=0.2)

    with anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("first"))
            await store.saving.wait()
            await bot.feed(message_event("second"))
            await anyio.sleep(FAST["quiet"] * 2)  # the interruption watcher has seen it
            store.release.set()
            # The state is saved after the handler returns (and after the turn log has
            # marked its run done): wait for the save, not for the log.
            await eventually(
                lambda: bot.conversation_state(CONVERSATION_ID), lambda s: s == {"runs": 2}
            )
    assert [(r.texts, r.outcome) for r in turns.runs] == [
        (["first"], "done"),
        (["second"], "done"),
    ]


async def test_a_turns_ask_answer_is_kept_for_a_retry_and_dropped_once_done(
    tmp_path: pathlib.Path,
) -> None:
    state = f"sqlite:///{tmp_path}/state.db"
    bot = Bot(
        client=offline_client(),
        state=state,
        handler_retry=HandlerRetry(first_delay=0.02, max_delay=0.05, deadline=5),
    )
    asked = anyio.Event()
    got: list[tuple[list[str], str]] = []

    @bot.on_turn(**FAST)
    async def chat(ctx: Context[MessageReceived]) -> None:
        assert ctx.turn is not None
        asked.set()
        answer = await ctx.ask(timeout=5)  # no prompt: nothing is sent
        got.append((_texts(ctx.turn), answer.text))
        if len(got) == 1:
            raise ConnectError("the API is unreachable")

    with anyio.fail_after(10):
        async with bot:
            await bot.feed(message_event("a"))
            await bot.feed(message_event("b"))
            await asked.wait()
            await bot.feed(message_event("42"))
            while len(got) < 2:
                await anyio.sleep(0.02)
    # The run again (a turn of two: its key is the turn's) got the answer it got before.
    assert got == [(["a", "b"], "42"), (["a", "b"], "42")]
    with sqlite3.connect(tmp_path / "state.db") as db:
        rows = db.execute("SELECT conversation_id FROM state").fetchall()
    assert rows == []  # the kept answer went with the turn
