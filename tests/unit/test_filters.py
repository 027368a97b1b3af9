"""Filters: the built-ins, composition with & | ~, plain functions, and setup errors."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest

from imbot import Bot, Contains, Context, Filter, HasMedia, Regex, Sender, Tapback, Text
from imbot.errors import SetupError
from imbot.events import AnyEvent
from imbot.routing.filters import all_of, as_filter, check, message_filters
from imbot.testing.events import OTHER_PHONE as OTHER
from imbot.testing.events import message_event, offline_client, reaction_event


def ctx_for(event: AnyEvent) -> Context[Any]:
    return Context(Bot(client=offline_client()), event)


async def passes(flt: Filter, event: AnyEvent) -> bool:
    with anyio.fail_after(5):
        return await check(flt, ctx_for(event))


async def test_text_matches_whole_text_ignoring_case_and_spaces() -> None:
    assert await passes(Text("hello", "hi"), message_event("  HeLLo "))
    assert not await passes(Text("hello"), message_event("hello there"))
    assert not await passes(Text("Hello", ignore_case=False), message_event("hello"))


async def test_contains_any_needle() -> None:
    assert await passes(Contains("refund", "money"), message_event("I want my MONEY back"))
    assert not await passes(Contains("refund"), message_event("hello"))
    assert not await passes(Contains("Refund", ignore_case=False), message_event("refund"))


async def test_regex_searches_and_keeps_the_match_on_ctx() -> None:
    ctx = ctx_for(message_event("order #1234 please"))
    assert await check(Regex(r"#(\d+)"), ctx)
    assert ctx.match is not None and ctx.match.group(1) == "1234"
    assert not await passes(Regex(re.compile("^x")), message_event("order"))


async def test_has_media_both_ways() -> None:
    with_media = message_event(None, media=[{"url": "https://x/y.jpg"}])
    assert await passes(HasMedia(), with_media)
    assert not await passes(HasMedia(), message_event("text only"))
    assert await passes(HasMedia(False), message_event("text only"))
    assert not await passes(HasMedia(), reaction_event())


async def test_sender_matches_the_human_number() -> None:
    assert await passes(Sender(OTHER), message_event("x", sender=OTHER))
    assert not await passes(Sender(OTHER), message_event("x"))
    assert await passes(Sender(OTHER), reaction_event(sender=OTHER))


async def test_tapback_kinds() -> None:
    assert await passes(Tapback("love", "like"), reaction_event("like"))
    assert not await passes(Tapback("love"), reaction_event("laugh"))
    assert not await passes(Tapback("love"), message_event("love"))


async def test_composition_and_or_not() -> None:
    hello, bye = Text("hello"), Text("bye")
    assert await passes(hello | bye, message_event("bye"))
    assert not await passes(hello & bye, message_event("bye"))
    assert await passes(~hello, message_event("bye"))
    assert await passes(~(hello | bye) | Contains("y"), message_event("bye"))


async def test_plain_functions_sync_and_async_compose() -> None:
    seen: list[str] = []

    def is_short(ctx: Context[Any]) -> bool:
        seen.append("sync")
        return len(ctx.text) < 5

    async def is_question(ctx: Context[Any]) -> bool:
        await anyio.sleep(0)
        seen.append("async")
        return ctx.text.endswith("?")

    assert await passes(Text("x") | is_question, message_event("why?"))
    assert await passes(as_filter(is_short) & is_question, message_event("why?"))
    assert not await passes(as_filter(is_short) & is_question, message_event("why is that?"))
    assert not await passes(~as_filter(is_question), message_event("why?"))
    assert await passes(as_filter(is_question) | is_short, message_event("no"))
    assert await passes(is_short & Text("no"), message_event("no"))  # __rand__
    assert "sync" in seen and "async" in seen


async def test_short_circuit_does_not_call_the_right_side() -> None:
    calls: list[str] = []

    def right(ctx: Context[Any]) -> bool:
        calls.append("right")
        return True

    assert not await passes(Text("no") & right, message_event("yes"))
    assert await passes(Text("yes") | right, message_event("yes"))
    assert calls == []


async def test_truthy_results_count_as_true() -> None:
    flt = as_filter(lambda ctx: re.search("a", ctx.text))
    assert await passes(flt, message_event("cat"))
    assert not await passes(flt, message_event("dog"))


async def test_all_of_checks_in_order_and_awaits_only_async_parts() -> None:
    async def slow_yes(ctx: Context[Any]) -> bool:
        return True

    combined = all_of([Contains("a"), slow_yes, Contains("b")])
    assert combined is not None
    assert await passes(combined, message_event("ab"))
    assert not await passes(combined, message_event("a"))
    assert all_of([]) is None
    single = Text("x")
    assert all_of([single]) is single


def test_message_filters_builds_the_shortcuts_in_order() -> None:
    built = message_filters(text="hi", regex="h", contains=["i"], has_media=False, sender="+1555")
    assert [type(f) for f in built] == [Text, Regex, Contains, HasMedia, Sender]
    assert message_filters() == []


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: as_filter("hello"), "text='hello'"),
        (lambda: as_filter(42), "not int"),
        (lambda: as_filter(lambda: True), "exactly one argument"),
        (lambda: Sender("555-0100"), "E.164"),
        (lambda: Tapback("hug"), "unknown tapback kind"),
        (lambda: Regex("("), "invalid regular expression"),
        (Text, "at least one value"),
        (lambda: Regex(re.compile("x"), re.I), "compiling"),
    ],
)
def test_setup_errors_teach(make: Any, words: str) -> None:
    with pytest.raises(SetupError, match=re.escape(words)):
        make()


def test_filters_have_readable_reprs() -> None:
    flt = (Text("b", "a") & ~HasMedia()) | Sender("+15555550100") | Tapback("love")
    assert repr(flt) == (
        "(((Text('a', 'b') & ~HasMedia()) | Sender('+15555550100')) | Tapback('love'))"
    )


def test_subclass_without_call_fails_loudly() -> None:
    class Broken(Filter):
        pass

    with pytest.raises(NotImplementedError, match="Broken must implement"):
        Broken()(ctx_for(message_event("x")))
