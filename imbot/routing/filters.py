"""Filters: small predicates on the context that decide whether a handler runs.

A filter is called with ``ctx`` and answers ``True`` or ``False`` (or an awaitable of it).
Filters compose with ``&`` (and), ``|`` (or) and ``~`` (not); a plain function
``(ctx) -> bool``, sync or async, works anywhere a filter does.

Example:
    >>> from imbot import Bot, Contains, HasMedia, Sender
    >>> bot = Bot()
    >>> @bot.on_message(Contains("invoice") & ~HasMedia(), Sender("+15555550142"))
    ... async def invoice_question(ctx):
    ...     await ctx.reply("Which invoice?")

Filters do no IO of their own and keep no state between events; a sync filter costs one
function call per candidate handler.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from imbot.errors import SetupError
from imbot.models import TapbackKind, is_e164

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.types import FilterLike

__all__ = [
    "Contains",
    "Filter",
    "HasMedia",
    "Regex",
    "Sender",
    "Tapback",
    "Text",
    "all_of",
    "as_filter",
    "message_filters",
]

_TAPBACK_KINDS = frozenset(kind.value for kind in TapbackKind)


class Filter:
    """Base class of filters; subclass it and implement ``__call__``.

    ``__call__`` returns a ``bool``, or an awaitable of one for a filter that must wait
    (for example on a database). Returning a plain ``bool`` keeps the hot path free of
    coroutines.

    Example:
        >>> class LongText(Filter):
        ...     def __call__(self, ctx):
        ...         return len(ctx.text) > 200
        >>> @bot.on_message(LongText() | HasMedia())
        ... async def big(ctx): ...
    """

    __slots__ = ()

    def __call__(self, ctx: Context[Any]) -> bool | Awaitable[bool]:
        """Answer whether the handler should run for this context."""
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(ctx)")

    def __and__(self, other: FilterLike) -> Filter:
        return _And(self, as_filter(other))

    def __rand__(self, other: FilterLike) -> Filter:
        return _And(as_filter(other), self)

    def __or__(self, other: FilterLike) -> Filter:
        return _Or(self, as_filter(other))

    def __ror__(self, other: FilterLike) -> Filter:
        return _Or(as_filter(other), self)

    def __invert__(self) -> Filter:
        return _Not(self)


def _settle(result: Any) -> bool | Awaitable[bool]:
    """Normalize what a filter returned: a bool stays, an awaitable is awaited later."""
    if result is True or result is False:
        return bool(result)
    if inspect.isawaitable(result):
        return _await_bool(result)
    return bool(result)


async def _await_bool(pending: Awaitable[Any]) -> bool:
    return bool(await pending)


async def check(flt: Filter, ctx: Context[Any]) -> bool:
    """Run a filter to its answer, awaiting it only when it is asynchronous.

    Args:
        flt: the filter.
        ctx: the context of the event being routed.

    Returns:
        The filter's answer.
    """
    result = flt(ctx)
    if result is True or result is False:
        return result
    return bool(await result)


class _And(Filter):
    __slots__ = ("left", "right")

    def __init__(self, left: Filter, right: Filter) -> None:
        self.left = left
        self.right = right

    def __call__(self, ctx: Context[Any]) -> bool | Awaitable[bool]:
        first = self.left(ctx)
        if first is False:
            return False
        if first is True:
            return _settle(self.right(ctx))
        return self._rest(first, ctx)

    async def _rest(self, first: Awaitable[bool], ctx: Context[Any]) -> bool:
        if not await first:
            return False
        second = self.right(ctx)
        return bool(second if isinstance(second, bool) else await second)

    def __repr__(self) -> str:
        return f"({self.left!r} & {self.right!r})"


class _Or(Filter):
    __slots__ = ("left", "right")

    def __init__(self, left: Filter, right: Filter) -> None:
        self.left = left
        self.right = right

    def __call__(self, ctx: Context[Any]) -> bool | Awaitable[bool]:
        first = self.left(ctx)
        if first is True:
            return True
        if first is False:
            return _settle(self.right(ctx))
        return self._rest(first, ctx)

    async def _rest(self, first: Awaitable[bool], ctx: Context[Any]) -> bool:
        if await first:
            return True
        second = self.right(ctx)
        return bool(second if isinstance(second, bool) else await second)

    def __repr__(self) -> str:
        return f"({self.left!r} | {self.right!r})"


class _Not(Filter):
    __slots__ = ("inner",)

    def __init__(self, inner: Filter) -> None:
        self.inner = inner

    def __call__(self, ctx: Context[Any]) -> bool | Awaitable[bool]:
        result = self.inner(ctx)
        if result is True or result is False:
            return not result
        return self._negate(result)

    @staticmethod
    async def _negate(pending: Awaitable[bool]) -> bool:
        return not await pending

    def __repr__(self) -> str:
        return f"~{self.inner!r}"


class _AllOf(Filter):
    __slots__ = ("parts",)

    def __init__(self, parts: tuple[Filter, ...]) -> None:
        self.parts = parts

    def __call__(self, ctx: Context[Any]) -> bool | Awaitable[bool]:
        for index, part in enumerate(self.parts):
            result = part(ctx)
            if result is False:
                return False
            if result is not True:
                return self._rest(result, index, ctx)
        return True

    async def _rest(self, pending: Awaitable[bool], index: int, ctx: Context[Any]) -> bool:
        if not await pending:
            return False
        for part in self.parts[index + 1 :]:
            result = part(ctx)
            if not (result if isinstance(result, bool) else await result):
                return False
        return True

    def __repr__(self) -> str:
        return " & ".join(repr(p) for p in self.parts)


class _FuncFilter(Filter):
    __slots__ = ("func",)

    def __init__(self, func: Callable[[Context[Any]], bool | Awaitable[bool]]) -> None:
        self.func = func

    def __call__(self, ctx: Context[Any]) -> bool | Awaitable[bool]:
        return _settle(self.func(ctx))

    def __repr__(self) -> str:
        return getattr(self.func, "__qualname__", repr(self.func))


def as_filter(obj: FilterLike) -> Filter:
    """Turn a filter-like value into a ``Filter``.

    Example:
        >>> is_admin = as_filter(lambda ctx: ctx.sender in ADMINS)
        >>> @bot.on_message(is_admin & Contains("deploy"))
        ... async def deploy(ctx): ...

    Args:
        obj: a ``Filter``, or a function ``(ctx) -> bool`` (sync or async).

    Returns:
        The filter.

    Raises:
        SetupError: ``obj`` is neither a filter nor a one-argument callable.
    """
    if isinstance(obj, Filter):
        return obj
    if isinstance(obj, str):
        raise SetupError(
            f"a filter must be a Filter or a function (ctx) -> bool, not the string {obj!r}; "
            f"to match text use text={obj!r}, contains={obj!r} or Text({obj!r})"
        )
    if not callable(obj):
        raise SetupError(
            f"a filter must be a Filter or a function (ctx) -> bool, not {type(obj).__name__}"
        )
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return _FuncFilter(obj)
    try:
        signature.bind(object())
    except TypeError:
        name = getattr(obj, "__qualname__", repr(obj))
        raise SetupError(
            f"filter {name} must take exactly one argument, the context: "
            f"def {getattr(obj, '__name__', 'my_filter')}(ctx) -> bool"
        ) from None
    return _FuncFilter(obj)


def all_of(filters: Iterable[FilterLike]) -> Filter | None:
    """Combine filters so that all must pass, in order; ``None`` when there are none.

    Args:
        filters: the filters, checked left to right, stopping at the first ``False``.
    """
    parts = tuple(as_filter(f) for f in filters)
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return _AllOf(parts)


def _strings(values: Iterable[str] | str, what: str) -> tuple[str, ...]:
    items = (values,) if isinstance(values, str) else tuple(values)
    for item in items:
        if not isinstance(item, str):
            raise SetupError(f"{what} values must be strings, got {type(item).__name__}")
    if not items:
        raise SetupError(f"{what} needs at least one value")
    return items


class Text(Filter):
    """Match messages whose whole text is one of ``values``.

    Surrounding whitespace is ignored; case is ignored unless ``ignore_case=False``.

    Example:
        >>> @bot.on_message(Text("hi", "hello"))
        ... async def greet(ctx):
        ...     await ctx.reply("Hello!")

    Args:
        values: the accepted texts.
        ignore_case: compare case-insensitively (the default).
    """

    __slots__ = ("ignore_case", "values")

    def __init__(self, *values: str, ignore_case: bool = True) -> None:
        items = _strings(values, "Text")
        self.ignore_case = ignore_case
        self.values = frozenset(v.strip().casefold() if ignore_case else v.strip() for v in items)

    def __call__(self, ctx: Context[Any]) -> bool:
        text = ctx.text.strip()
        return (text.casefold() if self.ignore_case else text) in self.values

    def __repr__(self) -> str:
        return f"Text({', '.join(repr(v) for v in sorted(self.values))})"


class Contains(Filter):
    """Match messages whose text contains any of ``needles``.

    Example:
        >>> @bot.on_message(Contains("refund", "money back"))
        ... async def refunds(ctx):
        ...     await ctx.reply("Let me check your order.")

    Args:
        needles: the substrings to look for.
        ignore_case: compare case-insensitively (the default).
    """

    __slots__ = ("ignore_case", "needles")

    def __init__(self, *needles: str, ignore_case: bool = True) -> None:
        items = _strings(needles, "Contains")
        self.ignore_case = ignore_case
        self.needles = tuple(n.casefold() if ignore_case else n for n in items)

    def __call__(self, ctx: Context[Any]) -> bool:
        text = ctx.text.casefold() if self.ignore_case else ctx.text
        return any(n in text for n in self.needles)

    def __repr__(self) -> str:
        return f"Contains({', '.join(repr(n) for n in self.needles)})"


class Regex(Filter):
    """Match messages whose text matches a regular expression (``re.search``).

    The match object is kept on ``ctx.match`` for the handler.

    Example:
        >>> @bot.on_message(Regex(r"order #(\\d+)"))
        ... async def order(ctx):
        ...     await ctx.reply(f"Looking up order {ctx.match.group(1)}")

    Args:
        pattern: the expression, as a string or a compiled pattern.
        flags: ``re`` flags for a string pattern (``re.IGNORECASE``…).
    """

    __slots__ = ("pattern",)

    def __init__(self, pattern: str | re.Pattern[str], flags: int = 0) -> None:
        if isinstance(pattern, re.Pattern):
            if flags:
                raise SetupError("give flags when compiling the pattern, not to Regex()")
            self.pattern: re.Pattern[str] = pattern
        else:
            try:
                self.pattern = re.compile(pattern, flags)
            except re.error as exc:
                raise SetupError(f"invalid regular expression {pattern!r}: {exc}") from None

    def __call__(self, ctx: Context[Any]) -> bool:
        found = self.pattern.search(ctx.text)
        if found is None:
            return False
        ctx.match = found
        return True

    def __repr__(self) -> str:
        return f"Regex({self.pattern.pattern!r})"


class HasMedia(Filter):
    """Match messages that carry an attachment (or, with ``False``, that carry none).

    Example:
        >>> @bot.on_message(HasMedia())
        ... async def photo(ctx):
        ...     await ctx.reply("Nice picture!")

    Args:
        expected: ``True`` to match messages with media, ``False`` for messages without.
    """

    __slots__ = ("expected",)

    def __init__(self, expected: bool = True) -> None:
        self.expected = bool(expected)

    def __call__(self, ctx: Context[Any]) -> bool:
        message = ctx.message
        return (message is not None and bool(message.media)) is self.expected

    def __repr__(self) -> str:
        return "HasMedia()" if self.expected else "HasMedia(False)"


class Sender(Filter):
    """Match events from one of the given phone numbers (E.164, e.g. ``+15555550142``).

    Example:
        >>> ADMINS = Sender("+15555550142", "+15555550143")
        >>> @bot.command("deploy", ADMINS)
        ... async def deploy(ctx): ...

    Args:
        numbers: the numbers, in E.164 form.
    """

    __slots__ = ("numbers",)

    def __init__(self, *numbers: str) -> None:
        items = _strings(numbers, "Sender")
        for number in items:
            if not is_e164(number):
                raise SetupError(
                    f"Sender({number!r}): numbers must be E.164, a '+' then the country code "
                    "and digits only, e.g. '+15555550142'"
                )
        self.numbers = frozenset(items)

    def __call__(self, ctx: Context[Any]) -> bool:
        return ctx.sender in self.numbers

    def __repr__(self) -> str:
        return f"Sender({', '.join(repr(n) for n in sorted(self.numbers))})"


class Tapback(Filter):
    """Match tapbacks of the given kinds (``love``, ``like``, ``laugh``… or ``custom``).

    Example:
        >>> @bot.on_tapback(when=Tapback("love", "like"))
        ... async def thanks(ctx):
        ...     await ctx.reply("Glad you liked it!")

    Args:
        kinds: the tapback kinds (``TapbackKind`` members or their string values).
    """

    __slots__ = ("kinds",)

    def __init__(self, *kinds: str) -> None:
        items = tuple(str(getattr(k, "value", k)) for k in _strings(kinds, "Tapback"))
        for kind in items:
            if kind not in _TAPBACK_KINDS:
                allowed = ", ".join(sorted(_TAPBACK_KINDS))
                raise SetupError(f"unknown tapback kind {kind!r}; use one of {allowed}")
        self.kinds = frozenset(items)

    def __call__(self, ctx: Context[Any]) -> bool:
        reaction = ctx.reaction
        return reaction is not None and str(reaction.reaction) in self.kinds

    def __repr__(self) -> str:
        return f"Tapback({', '.join(repr(k) for k in sorted(self.kinds))})"


def message_filters(
    *,
    text: str | Iterable[str] | None = None,
    regex: str | re.Pattern[str] | None = None,
    contains: str | Iterable[str] | None = None,
    has_media: bool | None = None,
    sender: str | Iterable[str] | None = None,
) -> list[Filter]:
    """The filters ``on_message``'s shortcuts stand for, in this order.

    ``text=`` is ``Text(...)``, ``regex=`` ``Regex(...)``, ``contains=`` ``Contains(...)``,
    ``has_media=`` ``HasMedia(...)`` and ``sender=`` ``Sender(...)``.
    """
    found: list[Filter] = []
    if text is not None:
        found.append(Text(*_strings(text, "text=")))
    if regex is not None:
        found.append(Regex(regex))
    if contains is not None:
        found.append(Contains(*_strings(contains, "contains=")))
    if has_media is not None:
        found.append(HasMedia(has_media))
    if sender is not None:
        found.append(Sender(*_strings(sender, "sender=")))
    return found
