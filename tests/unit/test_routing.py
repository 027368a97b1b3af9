"""Routing: registration order, commands before filters, routers, skip, echoes, errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
import structlog

from imbot import Bot, Context, Router, Sender, SkipHandler, Text
from imbot.errors import ImbotError, SetupError
from imbot.events import DeliveryFailed, MessageDelivered, MessageReceived, MessageSent
from imbot.testing.events import CONVERSATION_ID as CONVO
from imbot.testing.events import OTHER_PHONE as OTHER
from imbot.testing.events import (
    message_event,
    offline_client,
    reaction_event,
    run_events,
    unknown_event,
)


def new_bot(**options: Any) -> Bot:
    return Bot(client=offline_client(), **options)


async def test_first_matching_handler_in_registration_order_wins() -> None:
    bot = new_bot()
    seen: list[str] = []

    @bot.on_message(text="hello")
    async def greeting(ctx: Context[MessageReceived]) -> None:
        seen.append("greeting")

    @bot.on_message()
    async def anything(ctx: Context[MessageReceived]) -> None:
        seen.append(f"anything:{ctx.text}")

    @bot.on_message(text="never")
    async def shadowed(ctx: Context[MessageReceived]) -> None:
        seen.append("shadowed")

    await run_events(bot, message_event("hello"), message_event("never"))
    assert seen == ["greeting", "anything:never"]


async def test_commands_come_before_filters_whatever_the_registration_order() -> None:
    bot = new_bot()
    seen: list[str] = []

    @bot.on_message()
    async def catch_all(ctx: Context[MessageReceived]) -> None:
        seen.append(f"catch_all:{ctx.text}")

    @bot.command("help", aliases=["h", "?"])
    async def help_command(ctx: Context[MessageReceived]) -> None:
        seen.append(f"help:{ctx.command}")

    events = [message_event(t) for t in ("/help", "HELP me", "/H", "?", "helpful", "/ help")]
    await run_events(bot, *events)
    assert seen == [
        "help:help",
        "help:help",
        "help:h",
        "help:?",
        "catch_all:helpful",
        "catch_all:/ help",
    ]


async def test_custom_prefixes() -> None:
    bot = new_bot(command_prefixes=("!",))
    seen: list[str] = []

    @bot.command("ping")
    async def ping(ctx: Context[MessageReceived]) -> None:
        seen.append(ctx.text)

    @bot.on_message()
    async def rest(ctx: Context[MessageReceived]) -> None:
        seen.append(f"rest:{ctx.text}")

    await run_events(bot, message_event("!ping"), message_event("ping"), message_event("/ping"))
    assert seen == ["!ping", "rest:ping", "rest:/ping"]


async def test_command_filters_and_skip_fall_through_to_message_handlers() -> None:
    bot = new_bot()
    seen: list[str] = []

    @bot.command("deploy", Sender(OTHER))
    async def deploy(ctx: Context[MessageReceived]) -> None:
        seen.append("deploy")

    @bot.command("maybe")
    async def maybe(ctx: Context[MessageReceived], word: str) -> None:
        seen.append(f"maybe:{word}")
        if word == "no":
            ctx.skip()

    @bot.on_message()
    async def fallback(ctx: Context[MessageReceived]) -> None:
        seen.append(f"fallback:{ctx.text}:{ctx.args}:{ctx.command}")

    await run_events(
        bot,
        message_event("deploy"),
        message_event("deploy", sender=OTHER),
        message_event("maybe yes"),
        message_event("maybe no"),
    )
    assert seen == [
        "fallback:deploy:{}:None",
        "deploy",
        "maybe:yes",
        "maybe:no",
        "fallback:maybe no:{}:None",
    ]


async def test_skip_passes_the_event_on_and_keeps_the_context() -> None:
    bot = new_bot()
    seen: list[Any] = []

    @bot.on_message()
    async def first(ctx: Context[MessageReceived]) -> None:
        ctx.state["first"] = True
        raise SkipHandler

    @bot.on_message()
    async def second(ctx: Context[MessageReceived]) -> None:
        seen.append((ctx.handler_name, dict(ctx.state)))

    await run_events(bot, message_event("x"))
    assert seen == [
        ("test_skip_passes_the_event_on_and_keeps_the_context.<locals>.second", {"first": True})
    ]


async def test_outbound_echoes_never_reach_message_handlers_or_commands() -> None:
    bot = new_bot()
    seen: list[str] = []

    @bot.command("hi")
    async def hi(ctx: Context[MessageReceived]) -> None:
        seen.append("command")

    @bot.on_message()
    async def message(ctx: Context[MessageReceived]) -> None:
        seen.append("message")

    @bot.on_event("imessage.received")
    async def audit(ctx: Context[Any]) -> None:
        seen.append(f"audit:{ctx.message.direction if ctx.message else None}")

    await run_events(bot, message_event("hi", direction="outbound"))
    assert seen == ["audit:outbound"]


async def test_each_event_type_reaches_its_decorator_bare_or_called() -> None:
    bot = new_bot()
    seen: list[str] = []

    @bot.on_tapback
    async def any_tapback(ctx: Context[Any]) -> None:
        seen.append(f"tapback:{ctx.reaction.reaction if ctx.reaction else None}")
        if ctx.reaction and ctx.reaction.reaction == "laugh":
            ctx.skip()

    @bot.on_tapback("laugh", when=Sender(OTHER))
    async def laugh(ctx: Context[Any]) -> None:
        seen.append("laugh from other")

    @bot.on_sent
    async def sent(ctx: Context[MessageSent]) -> None:
        seen.append(f"sent:{ctx.text}")

    @bot.on_delivered()
    async def delivered(ctx: Context[MessageDelivered]) -> None:
        seen.append("delivered")

    @bot.on_delivery_failed(when=lambda ctx: ctx.text == "boom")
    async def failed(ctx: Context[DeliveryFailed]) -> None:
        seen.append("failed")

    await run_events(
        bot,
        reaction_event("love"),
        reaction_event("laugh", sender=OTHER),
        message_event("s", event_type="imessage.sent", direction="outbound"),
        message_event("d", event_type="imessage.delivered", direction="outbound"),
        message_event("quiet", event_type="imessage.delivery_failed", direction="outbound"),
        message_event("boom", event_type="imessage.delivery_failed", direction="outbound"),
    )
    assert seen == [
        "tapback:love",
        "tapback:laugh",
        "laugh from other",
        "sent:s",
        "delivered",
        "failed",
    ]


async def test_on_event_globs_take_part_in_registration_order_and_see_unknown_types() -> None:
    bot = new_bot()
    seen: list[str] = []

    @bot.on_event("imessage.*")
    async def audit(ctx: Context[Any]) -> None:
        seen.append(f"audit:{ctx.event.event_type}")
        if ctx.event.event_type != "imessage.edited":
            ctx.skip()

    @bot.on_message()
    async def message(ctx: Context[MessageReceived]) -> None:
        seen.append("message")

    @bot.on_event("custom.[ab]")
    async def custom(ctx: Context[Any]) -> None:
        seen.append(f"custom:{ctx.event.event_type}:{ctx.conversation_id}")

    await run_events(
        bot,
        message_event("x"),
        unknown_event("imessage.edited"),
        unknown_event("custom.a"),
        unknown_event("custom.c"),
        unknown_event("custom.b"),
    )
    assert seen == [
        "audit:imessage.received",
        "message",
        "audit:imessage.edited",
        f"custom:custom.a:{CONVO}",
        f"custom:custom.b:{CONVO}",
    ]


async def test_included_routers_keep_their_position_in_registration_order() -> None:
    bot = new_bot()
    first, last = Router(name="first"), Router(name="last")
    seen: list[str] = []

    @first.on_message(contains="a")
    async def from_first(ctx: Context[MessageReceived]) -> None:
        seen.append("first")

    @bot.on_message(contains="b")
    async def from_bot(ctx: Context[MessageReceived]) -> None:
        seen.append("bot")

    @last.on_message()
    async def from_last(ctx: Context[MessageReceived]) -> None:
        seen.append("last")

    @last.command("cmd")
    async def cmd(ctx: Context[MessageReceived]) -> None:
        seen.append("cmd")

    bot.include_router(first)
    nested = Router(name="nested")
    last.include_router(nested)
    bot.include_router(last)
    await run_events(bot, message_event("ab"), message_event("b"), message_event("c"))
    await run_events(bot, message_event("cmd b"))
    assert seen == ["bot", "bot", "last", "cmd"]
    assert [r.name for r in bot.walk()] == ["Bot", "first", "last", "nested"]


def test_including_a_router_twice_or_in_a_cycle_fails() -> None:
    bot, child, grandchild = new_bot(), Router(name="child"), Router(name="grandchild")
    bot.include_router(child)
    child.include_router(grandchild)
    with pytest.raises(SetupError, match="already included in Bot"):
        Router().include_router(child)
    with pytest.raises(SetupError, match="cycle"):
        grandchild.include_router(bot)
    with pytest.raises(SetupError, match="needs a Router"):
        bot.include_router("router")  # type: ignore[arg-type]


async def test_duplicate_commands_fail_when_the_bot_starts() -> None:
    bot, router = new_bot(), Router()

    @bot.command("go")
    async def go(ctx: Context[MessageReceived]) -> None: ...

    @router.command("start", aliases=["GO"])
    async def start(ctx: Context[MessageReceived]) -> None: ...

    bot.include_router(router)
    with pytest.raises(SetupError, match="command 'go' is registered twice"):
        await run_events(bot)


def test_aliases_must_be_a_list_and_not_repeat_the_name() -> None:
    bot = new_bot()

    async def h(ctx: Context[MessageReceived]) -> None: ...

    with pytest.raises(SetupError, match=re.escape("aliases=['x']")):
        bot.add_command(h, "y", aliases="x")
    with pytest.raises(SetupError, match="its own name"):
        bot.add_command(h, "y", aliases=["Y"])


def test_decorators_return_the_function_unchanged() -> None:
    bot = new_bot()

    async def handler(ctx: Context[Any]) -> None: ...

    async def on_err(ctx: Context[Any], exc: Exception) -> None: ...

    async def mw(ctx: Context[Any], call_next: Any) -> None: ...

    async def hook(bot: Bot) -> None: ...

    assert bot.on_message()(handler) is handler
    assert bot.command("c")(handler) is handler
    assert bot.on_tapback(handler) is handler
    assert bot.on_tapback("love")(handler) is handler
    assert bot.on_sent(handler) is handler
    assert bot.on_sent()(handler) is handler
    assert bot.on_delivered(handler) is handler
    assert bot.on_delivery_failed(handler) is handler
    assert bot.on_event("imessage.*")(handler) is handler
    assert bot.on_error(ValueError)(on_err) is on_err
    assert bot.on_error(on_err) is on_err
    assert bot.middleware(mw) is mw
    assert bot.middleware()(mw) is mw
    assert bot.on_startup(hook) is hook
    assert bot.on_shutdown()(hook) is hook
    assert len(bot.handlers()) == 9


def test_method_twins_register_the_same_way() -> None:
    bot = new_bot()

    async def handler(ctx: Context[Any]) -> None: ...

    bot.add_message_handler(handler, Text("a"), contains="b")
    bot.add_command(handler, "c")
    bot.add_tapback_handler(handler, ["love", "like"])
    bot.add_sent_handler(handler)
    bot.add_delivered_handler(handler)
    bot.add_delivery_failed_handler(handler)
    bot.add_event_handler(handler, "imessage.*")
    kinds = [spec.kind for spec in bot.handlers()]
    assert kinds == [
        "message",
        "command",
        "tapback",
        "sent",
        "delivered",
        "delivery_failed",
        "event",
    ]


def sync_handler(ctx: Context[Any]) -> None: ...


@pytest.mark.parametrize(
    ("register", "words"),
    [
        (lambda b: b.on_message()(sync_handler), "must be declared with `async def`"),
        (lambda b: b.on_sent(sync_handler), "must be declared with `async def`"),
        (lambda b: b.command("x")(sync_handler), "must be declared with `async def`"),
        (lambda b: b.add_middleware(sync_handler), "must be declared with `async def`"),
        (lambda b: b.on_startup(sync_handler), "must be declared with `async def`"),
        (lambda b: b.on_event("imessage.recieved"), "unknown event type"),
        (lambda b: b.on_event(""), "needs a pattern"),
        (lambda b: b.on_sent(when=Text("x"))(sync_handler), "async def"),
        (lambda b: b.on_error(SkipHandler), "signal, not an error"),
        (lambda b: b.add_error_handler(sync_handler, KeyboardInterrupt), "Exception subclass"),
    ],
)
def test_mistakes_fail_at_registration(register: Any, words: str) -> None:
    bot = new_bot()
    with pytest.raises(SetupError, match=re.escape(words)):
        result = register(bot)
        if callable(result) and not isinstance(result, type):
            result(sync_handler)


def test_a_message_handler_with_extra_parameters_is_pointed_to_command() -> None:
    bot = new_bot()

    async def remind(ctx: Context[MessageReceived], minutes: int) -> None: ...

    with pytest.raises(SetupError, match=re.escape("register it with @bot.command")):
        bot.on_message()(remind)


def test_error_handlers_need_two_parameters_and_one_per_type() -> None:
    bot = new_bot()

    async def one(ctx: Context[Any]) -> None: ...

    async def two(ctx: Context[Any], exc: Exception) -> None: ...

    with pytest.raises(SetupError, match="must take 2 positional parameters"):
        bot.on_error(ValueError)(one)
    bot.on_error(ValueError)(two)
    with pytest.raises(SetupError, match="already has an error handler for ValueError"):
        bot.add_error_handler(two, ValueError)


async def test_registration_freezes_when_the_bot_starts() -> None:
    bot = new_bot()
    router = Router()
    bot.include_router(router)

    async def handler(ctx: Context[Any]) -> None: ...

    await run_events(bot)
    assert bot.frozen and router.frozen
    with pytest.raises(SetupError, match="registration froze when the bot started"):
        bot.on_message()(handler)
    with pytest.raises(SetupError, match="froze"):
        router.add_sent_handler(handler)
    with pytest.raises(SetupError, match="froze"):
        bot.include_router(Router())


async def test_a_decorator_that_was_never_applied_fails_at_start() -> None:
    bot = new_bot()

    async def handler(ctx: Context[Any]) -> None: ...

    bot.on_message(text="x")  # forgot to apply it
    with pytest.raises(SetupError, match=re.escape("on_message(...) was called but never applied")):
        await run_events(bot)


async def test_error_handlers_match_by_mro_and_innermost_router_first() -> None:
    bot, router = new_bot(), Router(name="billing")
    seen: list[str] = []

    class BillingError(ImbotError):
        pass

    @bot.on_error
    async def anything(ctx: Context[Any], exc: Exception) -> None:
        seen.append(f"bot:any:{type(exc).__name__}")

    @bot.on_error(ImbotError)
    async def imbot_errors(ctx: Context[Any], exc: ImbotError) -> None:
        seen.append(f"bot:imbot:{exc}")

    @router.on_error(LookupError)
    async def lookups(ctx: Context[Any], exc: LookupError) -> None:
        seen.append(f"router:lookup:{type(exc).__name__}")

    @router.command("fail")
    async def fail(ctx: Context[Any], kind: str) -> None:
        raise {"key": KeyError("k"), "billing": BillingError("b"), "zero": ZeroDivisionError()}[
            kind
        ]

    @bot.on_message()
    async def top(ctx: Context[Any]) -> None:
        raise KeyError(ctx.text)

    bot.include_router(router)
    await run_events(
        bot,
        message_event("fail key"),
        message_event("fail billing"),
        message_event("fail zero"),
        message_event("plain"),
    )
    assert seen == [
        "router:lookup:KeyError",
        "bot:imbot:b",
        "bot:any:ZeroDivisionError",
        "bot:any:KeyError",
    ]


async def test_unhandled_errors_are_logged_and_reported_and_never_stop_the_bot() -> None:
    bot = new_bot()
    reported: list[str] = []
    handled: list[str] = []
    bot.add_error_listener(lambda ctx, exc: reported.append(repr(exc)))

    @bot.on_error(ValueError)
    async def broken(ctx: Context[Any], exc: ValueError) -> None:
        raise RuntimeError("error handler broke")

    @bot.on_message()
    async def handler(ctx: Context[MessageReceived]) -> None:
        if ctx.text == "value":
            raise ValueError("v")
        if ctx.text == "type":
            raise TypeError("t")
        handled.append(ctx.text)

    with structlog.testing.capture_logs() as logs:
        await run_events(bot, message_event("value"), message_event("type"), message_event("fine"))
    assert handled == ["fine"]
    assert reported == ["RuntimeError('error handler broke')", "TypeError('t')"]
    events = [entry["event"] for entry in logs]
    assert "error handler raised" in events
    failure = next(e for e in logs if e["event"] == "handler raised")
    assert failure["log_level"] == "error"
    assert failure["hint"] == "add @bot.on_error(...) to handle it"
    assert failure["event_type"] == "imessage.received"


async def test_a_failing_filter_goes_to_the_error_handlers() -> None:
    bot = new_bot()
    seen: list[str] = []

    def explode(ctx: Context[Any]) -> bool:
        raise LookupError("filter")

    @bot.on_error(LookupError)
    async def caught(ctx: Context[Any], exc: LookupError) -> None:
        seen.append(str(exc))

    @bot.on_message(explode)
    async def never(ctx: Context[MessageReceived]) -> None:
        seen.append("never")

    await run_events(bot, message_event("x"))
    assert seen == ["filter"]


async def test_unhandled_events_log_the_decorator_that_would_catch_them() -> None:
    bot = new_bot()
    with structlog.testing.capture_logs() as logs:
        await run_events(
            bot,
            message_event("hello"),
            reaction_event(),
            message_event("s", event_type="imessage.sent", direction="outbound"),
            unknown_event("imessage.edited"),
        )
    hints = {e["event_type"]: e["add"] for e in logs if e["event"] == "no handler for event"}
    assert hints == {
        "imessage.received": "@bot.on_message() or @bot.command(...)",
        "imessage.reaction_received": "@bot.on_tapback",
        "imessage.edited": "@bot.on_event('imessage.edited')",
    }


async def test_filters_can_route_on_conversation_state() -> None:
    bot = new_bot()
    seen: list[str] = []

    def in_signup(ctx: Context[Any]) -> bool:
        return ctx.state.get("step") == "name"

    @bot.on_message(in_signup)
    async def name(ctx: Context[MessageReceived]) -> None:
        ctx.state["name"] = ctx.text
        del ctx.state["step"]
        seen.append(f"name:{ctx.text}")

    @bot.on_message()
    async def start(ctx: Context[MessageReceived]) -> None:
        ctx.state["step"] = "name"
        seen.append("start")

    await run_events(bot, message_event("hi"), message_event("Ada"), message_event("again"))
    assert seen == ["start", "name:Ada", "start"]


# --------------------------------------------------------------------------- one decorator rule


async def test_every_decorator_without_required_arguments_works_bare_and_called() -> None:
    bot = new_bot()
    seen: list[str] = []

    async def handler(ctx: Context[Any]) -> None:
        seen.append(f"{ctx.event.event_type}:{ctx.text}")

    async def on_error(ctx: Context[Any], exc: Exception) -> None: ...

    async def mw(ctx: Context[Any], call_next: Any) -> None:
        await call_next(ctx)

    async def hook(_: Bot) -> None: ...

    # Bare: the decorator registers the function and returns it unchanged.
    for decorator, func in [
        (bot.on_message, handler),
        (bot.on_tapback, handler),
        (bot.on_sent, handler),
        (bot.on_delivered, handler),
        (bot.on_delivery_failed, handler),
        (bot.on_error, on_error),
        (bot.middleware, mw),
        (bot.on_startup, hook),
        (bot.on_shutdown, hook),
    ]:
        assert decorator(func) is func  # type: ignore[operator]
    # Called with no arguments: the same.
    router = Router(name="called")
    for decorator, func in [
        (router.on_message, handler),
        (router.on_tapback, handler),
        (router.on_sent, handler),
        (router.on_delivered, handler),
        (router.on_delivery_failed, handler),
        (router.middleware, mw),
        (router.on_startup, hook),
        (router.on_shutdown, hook),
    ]:
        assert decorator()(func) is func  # type: ignore[operator]
    assert router.on_error()(on_error) is on_error
    kinds = [spec.kind for spec in bot.handlers()]
    assert kinds == ["message", "tapback", "sent", "delivered", "delivery_failed"]
    assert len(router.handlers()) == 5
    await run_events(bot, message_event("bare"))
    assert seen == ["imessage.received:bare"]


async def test_a_lone_async_filter_annotated_bool_is_a_filter_not_the_handler() -> None:
    bot = new_bot()
    seen: list[str] = []

    async def is_yes(ctx: Context[Any]) -> bool:
        return ctx.text == "yes"

    @bot.on_message(is_yes)
    async def agreed(ctx: Context[MessageReceived]) -> None:
        seen.append(ctx.text)

    await run_events(bot, message_event("no"), message_event("yes"))
    assert seen == ["yes"]
    assert [spec.name for spec in bot.handlers()] == [agreed.__qualname__]


def test_decorators_that_need_a_name_or_pattern_say_so_when_used_bare() -> None:
    bot = new_bot()

    async def remind(ctx: Context[Any]) -> None: ...

    with pytest.raises(SetupError, match=re.escape("@bot.command('name')")):
        bot.command(remind)  # type: ignore[arg-type]
    with pytest.raises(SetupError, match=re.escape("@bot.on_event('imessage.*')")):
        bot.on_event(remind)  # type: ignore[arg-type]


async def test_each_observer_registers_through_register_as_its_decorator_does() -> None:
    bot = new_bot()
    seen: list[str] = []

    async def price(ctx: Context[MessageReceived]) -> None:
        seen.append("price")

    async def double(ctx: Context[MessageReceived], n: int) -> None:
        seen.append(f"double:{n * 2}")

    bot.on_message.register(price, contains="price")
    bot.command.register(double, "double")
    bot.add_message_handler(price, text="cost")  # the method twin goes the same way
    await run_events(
        bot, message_event("what price?"), message_event("double 4"), message_event("cost")
    )
    assert seen == ["price", "double:8", "price"]
