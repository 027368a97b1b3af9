"""Commands: parsing the first word, binding typed arguments, usage lines, setup errors."""

from __future__ import annotations

import enum
import re
from typing import Annotated, Literal

import pytest
from pydantic import BeforeValidator, PlainValidator

from imbot.errors import CommandArgumentError, SetupError
from imbot.routing.commands import (
    CommandSignature,
    check_command_name,
    parse_command,
)


class Size(enum.Enum):
    SMALL = "s"
    LARGE = "l"


async def remind(ctx: object, minutes: int, *, text: str) -> None:
    """Remind you of something."""


async def roll(ctx: object, sides: int = 6, *extra: float) -> None: ...


async def order(ctx: object, size: Size, color: Literal["red", "blue"] | None = None) -> None: ...


async def rename(ctx: object, json: str, copy: bool = False) -> None: ...


async def note(ctx: object, *, text: str = "") -> None: ...


async def connect(ctx: object) -> None: ...


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/Remind 5  buy milk", ("remind", "5  buy milk")),
        ("help", ("help", "")),
        ("  /help   ", ("help", "")),
        ("connect @echo", ("connect", "@echo")),
        ("", None),
        (None, None),
        ("   ", None),
    ],
)
def test_parse_command(text: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_command(text, ("/", "")) == expected


def test_parse_command_requires_a_prefix_when_empty_prefix_is_not_allowed() -> None:
    assert parse_command("help", ("/",)) is None
    assert parse_command("!help", ("!", "/")) == ("help", "")
    assert parse_command("/", ("/",)) is None


def test_rest_of_text_goes_to_the_keyword_only_str() -> None:
    signature = CommandSignature(remind)
    assert signature.bind("5  buy milk  now ") == {"minutes": 5, "text": "buy milk  now"}
    assert signature.call_args({"minutes": 5, "text": "x"}) == ((5,), {"text": "x"})
    assert signature.usage("remind") == "remind <minutes:int> <text>"
    assert signature.usage("remind", "/") == "/remind <minutes:int> <text>"
    assert not signature.free


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "missing <minutes>"),
        ("5", "missing <text>"),
        ("soon buy milk", "minutes must be a whole number"),
    ],
)
def test_bad_arguments_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(CommandArgumentError, match=re.escape(reason)):
        CommandSignature(remind).bind(text)


def test_plain_reasons_for_numbers_and_pydantic_wording_otherwise() -> None:
    with pytest.raises(CommandArgumentError, match=re.escape("sides must be a whole number")):
        CommandSignature(roll).bind("lots")
    with pytest.raises(CommandArgumentError, match=re.escape("extra.0 must be a number")):
        CommandSignature(roll).bind("6 much")
    with pytest.raises(CommandArgumentError, match=r"color: Input should be 'red' or 'blue'"):
        CommandSignature(order).bind("small green")


def test_bad_value_names_the_input() -> None:
    with pytest.raises(CommandArgumentError) as caught:
        CommandSignature(remind).bind("soon buy milk")
    assert "(got 'soon')" in caught.value.reason


def test_optional_and_variadic() -> None:
    signature = CommandSignature(roll)
    assert signature.bind("") == {"sides": 6, "extra": []}
    assert signature.bind("20 1.5 2") == {"sides": 20, "extra": [1.5, 2.0]}
    assert signature.call_args(signature.bind("20 1.5 2")) == ((20, 1.5, 2.0), {})
    assert signature.usage("roll") == "roll [sides:int] [extra:float...]"


def test_enums_and_literals_validate_and_show_choices() -> None:
    signature = CommandSignature(order)
    assert signature.bind("l blue") == {"size": Size.LARGE, "color": "blue"}
    assert signature.bind("s") == {"size": Size.SMALL, "color": None}
    assert signature.usage("order") == "order <size:s|l> [color:red|blue]"
    with pytest.raises(CommandArgumentError, match="color"):
        signature.bind("s green")


def test_extra_words_are_refused_when_parameters_are_declared() -> None:
    with pytest.raises(CommandArgumentError, match="unexpected extra text: 'c d'"):
        CommandSignature(order).bind("s red c d")


def test_parameter_names_that_clash_with_pydantic_attributes_work() -> None:
    assert CommandSignature(rename).bind("a yes") == {"json": "a", "copy": True}


def test_a_handler_without_parameters_takes_any_text() -> None:
    signature = CommandSignature(connect)
    assert signature.free
    assert signature.bind("@echo and more") == {}
    assert signature.usage("connect") == "connect"


def test_optional_rest() -> None:
    signature = CommandSignature(note)
    assert signature.bind("") == {"text": ""}
    assert signature.bind("  hello  world ") == {"text": "hello  world"}
    assert signature.usage("note", "/") == "/note [text]"


async def two_rests(ctx: object, *, a: str, b: str) -> None: ...


async def int_rest(ctx: object, *, n: int) -> None: ...


async def star_and_rest(ctx: object, *a: str, b: str) -> None: ...


async def kwargs(ctx: object, **k: str) -> None: ...


async def no_params() -> None: ...


async def unresolvable(ctx: object, a: NotImported) -> None:  # type: ignore[name-defined]  # noqa: F821
    ...


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        (two_rests, "two keyword-only parameters"),
        (int_rest, "must be annotated str"),
        (star_and_rest, "keep one of them"),
        (kwargs, "cannot take **k"),
        (no_params, "must take the context first"),
        (unresolvable, "cannot resolve the annotation 'NotImported'"),
    ],
)
def test_signatures_that_cannot_take_words_fail_at_registration(
    handler: object, words: str
) -> None:
    with pytest.raises(SetupError, match=re.escape(words)):
        CommandSignature(handler)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Help", "help"), ("r", "r"), ("über", "über")],
)
def test_command_names_are_case_folded(name: str, expected: str) -> None:
    assert check_command_name(name) == expected


@pytest.mark.parametrize(
    ("name", "words"),
    [("/help", "without prefix"), ("two words", "one word"), ("", "one word")],
)
def test_bad_command_names(name: str, words: str) -> None:
    with pytest.raises(SetupError, match=words):
        check_command_name(name)


class Thing:
    """A plain class: pydantic has no validator that builds one from a word."""


async def plain_class(ctx: object, thing: Thing) -> None: ...


async def list_param(ctx: object, numbers: list[int]) -> None: ...


async def optional_tuple(ctx: object, first: str, pair: tuple[int, ...] | None = None) -> None: ...


async def star_of_lists(ctx: object, *numbers: list[int]) -> None: ...


async def star_of_things(ctx: object, *things: Thing) -> None: ...


async def dict_param(ctx: object, options: dict[str, int]) -> None: ...


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        # Issue 14, item 8: pydantic's PydanticSchemaGenerationError, in a 30-frame traceback.
        (
            plain_class,
            "'thing: Thing' of command handler plain_class: a word of text cannot become a Thing",
        ),
        (plain_class, "Take `thing: str` and look the Thing up in the handler"),
        (star_of_things, "Take `*things: str`"),
        # Issue 14, item 8: registered fine, then never matched (`sum 1 2 3`: extra text).
        (
            list_param,
            "'numbers: list[int]' of command handler list_param takes one word, "
            "which cannot be a list; to take the remaining words as a list, write "
            "`*numbers: int`",
        ),
        (optional_tuple, "write `*pair: int`"),
        (
            star_of_lists,
            "*numbers already collects the remaining words into a list; "
            "annotate the type of one word: write `*numbers: int`",
        ),
        (dict_param, "take the rest of the text with `*, options: str`"),
    ],
)
def test_argument_types_no_word_can_fill_fail_at_registration(handler: object, words: str) -> None:
    with pytest.raises(SetupError, match=re.escape(words)) as caught:
        CommandSignature(handler)  # type: ignore[arg-type]
    # The setup error is the whole story: no pydantic error chained behind it.
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def parse_thing(word: str) -> Thing:
    made = Thing()
    made.__dict__["word"] = word
    return made


async def pick(
    ctx: object,
    numbers: Annotated[list[int], BeforeValidator(lambda w: w.split(","))],
    thing: Annotated[Thing, PlainValidator(parse_thing)],
) -> None: ...


def test_a_validator_may_turn_one_word_into_a_list_or_an_object() -> None:
    bound = CommandSignature(pick).bind("1,2,3 lamp")
    assert bound["numbers"] == [1, 2, 3]
    assert bound["thing"].word == "lamp"


def test_a_bot_refuses_a_list_argument_when_decorating() -> None:
    from imbot import Bot

    bot = Bot()
    with pytest.raises(SetupError, match=re.escape("write `*numbers: int`")):

        @bot.command("sum")
        async def total(ctx: object, numbers: list[int]) -> None: ...

    assert bot.commands == []
