"""Handler records: async and arity checks at registration, event-type matching, call plans."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from imbot.errors import SetupError
from imbot.routing.commands import CommandSignature
from imbot.routing.handlers import (
    DECORATOR_FOR_EVENT,
    EVENT_TYPE_OF_KIND,
    HandlerSpec,
    SkipHandler,
    check_arity,
    check_async,
    name_of,
    summary_of,
)


async def handler(ctx: Any) -> None:
    """Answer politely.

    More text that is not the summary.
    """


def sync_handler(ctx: Any) -> None: ...


async def agen(ctx: Any) -> Any:
    yield ctx


class AsyncCallable:
    async def __call__(self, ctx: Any) -> None: ...


def test_async_functions_partials_and_async_callables_pass() -> None:
    check_async(handler, "handler", "x")
    check_async(functools.partial(handler), "handler", "x")
    check_async(AsyncCallable(), "handler", "x")


def test_sync_function_is_refused_with_the_fix() -> None:
    with pytest.raises(SetupError) as caught:
        check_async(sync_handler, "handler", "async def handler(ctx): ...")
    message = str(caught.value)
    assert "sync_handler must be declared with `async def`" in message
    assert "Write: async def handler(ctx): ..." in message


def test_async_generator_gets_a_hint() -> None:
    with pytest.raises(SetupError, match="async generator"):
        check_async(agen, "handler", "x")


def test_non_callable_is_refused() -> None:
    with pytest.raises(SetupError, match="got int"):
        check_async(3, "handler", "x")


def test_arity() -> None:
    check_arity(handler, 1, "handler", "x")
    with pytest.raises(SetupError, match="must take 2 positional parameters"):
        check_arity(handler, 2, "error handler", "async def on_error(ctx, exc): ...")
    check_arity(print, 1, "handler", "x")  # no signature available: trusted


def test_names_and_summaries() -> None:
    assert name_of(handler) == "handler"
    assert name_of(AsyncCallable.__call__) == "AsyncCallable.__call__"
    assert summary_of(handler) == "Answer politely."
    assert summary_of(sync_handler) == ""


def test_kinds_serve_their_event_types_and_globs_match() -> None:
    for kind, event_type in EVENT_TYPE_OF_KIND.items():
        spec = HandlerSpec(func=handler, kind=kind, name="h")
        assert spec.serves(event_type)
        assert not spec.serves("imessage.other")
    glob = HandlerSpec(func=handler, kind="event", name="h", pattern="imessage.*")
    assert glob.serves("imessage.sent") and glob.serves("imessage.edited")
    assert not glob.serves("phone.call")
    exact = HandlerSpec(func=handler, kind="event", name="h", pattern="imessage.sent")
    assert exact.serves("imessage.sent") and not exact.serves("imessage.sent2")


def test_every_event_type_names_the_decorator_that_would_handle_it() -> None:
    assert set(DECORATOR_FOR_EVENT) == set(EVENT_TYPE_OF_KIND.values())


async def test_command_endpoint_passes_bound_arguments() -> None:
    got: list[Any] = []

    async def remind(ctx: Any, minutes: int, *, text: str) -> None:
        got.append((ctx, minutes, text))

    spec = HandlerSpec(func=remind, kind="command", name="remind", command=CommandSignature(remind))

    class Ctx:
        def __init__(self) -> None:
            self.args = {"minutes": 3, "text": "tea"}

    ctx = Ctx()
    await spec.endpoint(ctx)  # type: ignore[arg-type]
    assert got == [(ctx, 3, "tea")]


def test_plain_endpoint_is_the_function_itself() -> None:
    assert HandlerSpec(func=handler, kind="message", name="h").endpoint is handler


def test_skip_handler_is_not_an_imbot_error() -> None:
    from imbot.errors import ImbotError

    assert not issubclass(SkipHandler, ImbotError)
    assert issubclass(SkipHandler, Exception)
