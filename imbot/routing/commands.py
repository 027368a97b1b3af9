"""Commands: find the command a message names, and bind its arguments to handler parameters.

The first word of a message names the command, after an optional prefix (``/help`` and
``help`` both name ``help`` by default). Names are case-insensitive. The handler's extra
parameters are the arguments, read once at registration:

- a positional parameter takes one word; one with a default is optional;
- ``*words: T`` takes the remaining words;
- one keyword-only ``str`` parameter takes the rest of the text, spaces included.

Values are validated with pydantic against the annotations (``int``, ``float``, ``bool``,
``Literal[...]``, enums…); an unannotated parameter is a ``str``.

Example:
    >>> @bot.command("remind")
    ... async def remind(ctx, minutes: int, *, text: str):
    ...     '''Remind you of something in a few minutes.'''
    ...     ...

``remind 5 buy milk`` calls ``remind(ctx, 5, text="buy milk")``; ``remind soon`` gets the
reply ``Usage: remind <minutes:int> <text>`` and the reason, and the handler is not called.
This module does no IO.
"""

from __future__ import annotations

import collections
import collections.abc
import enum
import inspect
import re
import types
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model
from pydantic.errors import PydanticUserError

from imbot.errors import CommandArgumentError, SetupError

__all__ = [
    "CommandInfo",
    "CommandSignature",
    "check_command_name",
    "parse_command",
]

_NAME = re.compile(r"[^\s/]\S*")


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """A registered command, as ``bot.commands`` lists it.

    Attributes:
        name: the command's name, lower case, without prefix.
        aliases: other names for it.
        usage: the usage line, e.g. ``remind <minutes:int> <text>``.
        summary: the first line of the handler's docstring (``""`` when it has none).
        hidden: registered with ``hidden=True`` (or named ``connect``): it works, and the
            help message leaves it out.
    """

    name: str
    aliases: tuple[str, ...]
    usage: str
    summary: str
    hidden: bool = False


def check_command_name(name: str) -> str:
    """Validate a command name and return it in lower case.

    Raises:
        SetupError: the name is empty, has a space or starts with ``/``.
    """
    if not isinstance(name, str):
        raise SetupError(f"a command name must be a string, got {type(name).__name__}")
    if name.startswith("/"):
        raise SetupError(
            f"command names are given without prefix: write command({name.lstrip('/')!r}); "
            "the bot's command_prefixes decide which prefixes are accepted"
        )
    if not _NAME.fullmatch(name):
        raise SetupError(f"command name {name!r} must be one word with no spaces")
    return name.casefold()


def parse_command(text: str | None, prefixes: Sequence[str]) -> tuple[str, str] | None:
    """Split a message into its command name and the text after it.

    Example:
        >>> parse_command("/Remind 5  buy milk", ("/", ""))
        ('remind', '5  buy milk')

    Args:
        text: the message text.
        prefixes: the accepted prefixes, longest first; ``""`` allows none.

    Returns:
        ``(name, rest)`` with the name case-folded, or ``None`` when there is no first word
        with an accepted prefix.
    """
    if not text:
        return None
    parts = text.split(None, 1)
    if not parts:
        return None
    word = parts[0]
    for prefix in prefixes:
        if word.startswith(prefix) and len(word) > len(prefix):
            return word[len(prefix) :].casefold(), parts[1] if len(parts) > 1 else ""
    return None


def _resolve(annotation: Any, func: Callable[..., Any], param: str) -> Any:
    if annotation is inspect.Parameter.empty:
        return str
    if not isinstance(annotation, str):
        return annotation
    # Annotations are strings under `from __future__ import annotations`; evaluate only the
    # ones commands need (the context's annotation may name a TYPE_CHECKING-only import).
    namespace = getattr(inspect.unwrap(func), "__globals__", {})
    try:
        return eval(annotation, dict(namespace))
    except Exception as exc:
        raise SetupError(
            f"cannot resolve the annotation {annotation!r} of parameter {param!r} of command "
            f"handler {_qualname(func)}: {exc}; import the type at module level"
        ) from None


def _qualname(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", repr(func))


def _type_label(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "|".join(str(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        labels = [_type_label(a) for a in typing.get_args(annotation) if a is not type(None)]
        return "|".join(labels)
    if origin is typing.Annotated:
        return _type_label(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(str(m.value) for m in annotation)
    return getattr(annotation, "__name__", str(annotation))


# A word is one value: an annotation that is a collection can never be filled from one.
_SEQUENCES = frozenset(
    {
        list,
        tuple,
        set,
        frozenset,
        collections.deque,
        collections.abc.Sequence,
        collections.abc.MutableSequence,
        collections.abc.Set,
        collections.abc.MutableSet,
        collections.abc.Collection,
        collections.abc.Iterable,
    }
)
_MAPPINGS = frozenset({dict, collections.abc.Mapping, collections.abc.MutableMapping})


def _show(annotation: Any) -> str:
    """An annotation as the user wrote it: ``list[int]``, ``Thing``."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("collections.abc.", "")


def _collection_kind(annotation: Any) -> tuple[str, Any] | None:
    """``("list", item type)`` or ``("dict", None)`` when a word can never fill the annotation.

    ``Annotated[...]`` is left alone: its validators may well turn one word into a list.
    """
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            found = _collection_kind(member)
            if found is not None:
                return found
        return None
    kind = origin if origin is not None else annotation
    if kind in _SEQUENCES:
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return "list", args[0] if args else str
    if kind in _MAPPINGS:
        return "dict", None
    return None


def _check_word_type(annotation: Any, param: inspect.Parameter, handler: str) -> None:
    """Refuse a collection annotation (``list[int]``, ``dict``), saying what to write instead.

    Raises:
        SetupError: no word can ever fill the annotation.
    """
    found = _collection_kind(annotation)
    if found is None:
        return
    star = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else ""
    written = f"{star}{param.name}: {_show(annotation)}"
    what, item = found
    if what == "dict":
        raise SetupError(
            f"parameter {written!r} of command handler {handler} takes one word, which "
            f"cannot be a {_show(annotation)}; take the rest of the text with "
            f"`*, {param.name}: str` and parse it in the handler"
        )
    if star:
        raise SetupError(
            f"parameter {written!r} of command handler {handler}: *{param.name} already "
            "collects the remaining words into a list; annotate the type of one word: write "
            f"`*{param.name}: {_show(item)}`"
        )
    raise SetupError(
        f"parameter {written!r} of command handler {handler} takes one word, which cannot "
        f"be a list; to take the remaining words as a list, write `*{param.name}: "
        f"{_show(item)}` (after the one-word parameters)"
    )


def _unbuildable(fields: dict[str, Any], params: dict[str, inspect.Parameter], handler: str) -> str:
    """Why pydantic cannot build the arguments' model: the first parameter whose type fails."""
    for key, (annotation, _) in fields.items():
        try:
            TypeAdapter(annotation)
        except PydanticUserError:
            name = _show(annotation)
            star = "*" if params[key].kind is inspect.Parameter.VAR_POSITIONAL else ""
            if star:
                name = _show(typing.get_args(annotation)[0])  # the list[T] built for *words
            return (
                f"parameter {f'{star}{key}: {name}'!r} of command handler {handler}: a word of "
                f"text cannot become a {name} (pydantic has no validator for it). Take "
                f"`{star}{key}: str` and look the {name} up in the handler, or use a type "
                "validated from text: str, int, float, bool, Literal[...], an Enum, or "
                f"Annotated[{name}, PlainValidator(parse)] with your own parse(word)"
            )
    return f"the parameters of command handler {handler} cannot be validated"


def _is_str(annotation: Any) -> bool:
    if annotation is str:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest == [str]
    return False


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    label: str
    required: bool


class CommandSignature:
    """How a command handler's parameters take the words of a message; built once.

    Attributes:
        positional: the one-word parameters, in order.
        variadic: the ``*words`` parameter, if any.
        rest: the keyword-only parameter that takes the rest of the text, if any.
        free: ``True`` when the handler takes no arguments, so any text after the
            command is allowed (``connect @handle`` reaches ``async def connect(ctx)``).
    """

    __slots__ = ("_fields", "_model", "free", "positional", "rest", "variadic")

    def __init__(self, func: Callable[..., Awaitable[None]]) -> None:
        """Inspect a command handler.

        Args:
            func: ``async def handler(ctx, ...)``.

        Raises:
            SetupError: the parameters cannot take a message's words (``**kwargs``, two
                keyword-only parameters, a non-``str`` rest, ``*args`` with a rest, a
                ``list[int]`` where ``*numbers: int`` is meant, a type pydantic cannot
                build from text…).
        """
        name = _qualname(func)
        params = list(inspect.signature(func).parameters.values())
        if not params or params[0].kind not in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            raise SetupError(f"command handler {name} must take the context first: (ctx, ...)")
        positional: list[_Param] = []
        variadic: _Param | None = None
        rest: _Param | None = None
        fields: dict[str, Any] = {}
        for param in params[1:]:
            annotation = _resolve(param.annotation, func, param.name)
            has_default = param.default is not inspect.Parameter.empty
            label = _type_label(annotation)
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                raise SetupError(
                    f"command handler {name} cannot take **{param.name}: command arguments "
                    "are words, bound by position"
                )
            if param.kind is not inspect.Parameter.KEYWORD_ONLY:
                _check_word_type(annotation, param, name)
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                variadic = _Param(param.name, label, False)
                fields[param.name] = (list[annotation], ...)  # type: ignore[valid-type]
                continue
            if param.kind is inspect.Parameter.KEYWORD_ONLY:
                if rest is not None:
                    raise SetupError(
                        f"command handler {name} has two keyword-only parameters "
                        f"({rest.name}, {param.name}); only one can take the rest of the text"
                    )
                if not _is_str(annotation):
                    raise SetupError(
                        f"the keyword-only parameter {param.name!r} of {name} takes the rest "
                        f"of the text, so it must be annotated str, not {label}"
                    )
                rest = _Param(param.name, label, not has_default)
            else:
                positional.append(_Param(param.name, label, not has_default))
            fields[param.name] = (annotation, param.default if has_default else ...)
        if variadic is not None and rest is not None:
            raise SetupError(
                f"command handler {name} has both *{variadic.name} and a keyword-only "
                f"{rest.name}; keep one of them to take the remaining words"
            )
        self.positional = tuple(positional)
        self.variadic = variadic
        self.rest = rest
        self.free = not fields
        self._fields = tuple(fields)
        self._model: type[BaseModel] | None = None
        if fields:
            # Fields are named f0, f1… with the parameter names as aliases, so a parameter
            # called `json` or `copy` cannot clash with BaseModel's own attributes.
            definitions: dict[str, Any] = {}
            for i, (key, (kind, default)) in enumerate(fields.items()):
                if key == (variadic.name if variadic else None):
                    definitions[f"f{i}"] = (kind, Field(default_factory=list, alias=key))
                elif default is ...:
                    definitions[f"f{i}"] = (kind, Field(alias=key))
                else:
                    definitions[f"f{i}"] = (kind, Field(default=default, alias=key))
            try:
                self._model = create_model(
                    f"{getattr(func, '__name__', 'command')}_arguments", **definitions
                )
            except PydanticUserError:
                # pydantic's own advice (arbitrary_types_allowed) does not apply to words.
                kinds = {p.name: p for p in params[1:]}
                raise SetupError(_unbuildable(fields, kinds, name)) from None

    def usage(self, name: str, prefix: str = "") -> str:
        """The usage line, e.g. ``remind <minutes:int> <text>``.

        Args:
            name: the command's name.
            prefix: the prefix to show before the name (``"/"``, or ``""``).
        """
        words = [f"{prefix}{name}"]
        for param in self.positional:
            label = param.name if param.label == "str" else f"{param.name}:{param.label}"
            words.append(f"<{label}>" if param.required else f"[{label}]")
        if self.variadic is not None:
            label = self.variadic.name
            if self.variadic.label != "str":
                label += f":{self.variadic.label}"
            words.append(f"[{label}...]")
        if self.rest is not None:
            words.append(f"<{self.rest.name}>" if self.rest.required else f"[{self.rest.name}]")
        return " ".join(words)

    def bind(self, text: str) -> dict[str, Any]:
        """Parse the text after the command into validated arguments.

        Example:
            >>> CommandSignature(remind).bind("5 buy milk")
            {'minutes': 5, 'text': 'buy milk'}

        Args:
            text: what follows the command's name.

        Returns:
            The arguments by parameter name (``ctx.args``).

        Raises:
            CommandArgumentError: a word is missing, extra, or does not validate.
        """
        if self._model is None:
            return {}
        count = len(self.positional)
        raw: dict[str, Any] = {}
        if self.rest is not None:
            words = text.split(None, count)
            tail = words[count].strip() if len(words) > count else ""
            words = words[:count]
            if tail:
                raw[self.rest.name] = tail
        else:
            words = text.split()
            if self.variadic is not None:
                raw[self.variadic.name] = words[count:]
                words = words[:count]
            elif len(words) > count:
                extra = " ".join(words[count:])
                raise CommandArgumentError(f"unexpected extra text: {extra!r}")
        for param, word in zip(self.positional, words, strict=False):
            raw[param.name] = word
        for param in self.positional[len(words) :]:
            if param.required:
                raise CommandArgumentError(f"missing <{param.name}>")
        if self.rest is not None and self.rest.required and self.rest.name not in raw:
            raise CommandArgumentError(f"missing <{self.rest.name}>")
        try:
            parsed = self._model.model_validate(raw)
        except ValidationError as exc:
            raise CommandArgumentError(_describe(exc)) from None
        values = parsed.__dict__
        return {key: values[f"f{i}"] for i, key in enumerate(self._fields)}

    def call_args(self, args: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Split bound arguments into the positional and keyword arguments of the call.

        Args:
            args: what ``bind`` returned.
        """
        positional = [args[p.name] for p in self.positional]
        if self.variadic is not None:
            positional.extend(args[self.variadic.name])
        keywords = {self.rest.name: args[self.rest.name]} if self.rest is not None else {}
        return tuple(positional), keywords


# The usage reply goes to a person on a phone, so the commonest pydantic errors are said
# plainly; anything else keeps pydantic's own wording.
_PLAIN_REASONS = {
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "decimal_parsing": "must be a number",
    "bool_parsing": "must be yes or no",
    "missing": "is missing",
}


def _describe(exc: ValidationError) -> str:
    reasons = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        given = error.get("input")
        got = f" (got {given!r})" if isinstance(given, str) else ""
        plain = _PLAIN_REASONS.get(error["type"])
        reason = f"{where} {plain}" if plain else f"{where}: {error['msg']}"
        reasons.append(f"{reason}{got}")
    return "; ".join(reasons)
