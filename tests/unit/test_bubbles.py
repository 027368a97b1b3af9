"""Splitting replies into bubbles, pacing them, and the keys their sends carry."""

from __future__ import annotations

import random

import pytest

from imbot import Bot, Bubbles, Pacing
from imbot.bot.bubbles import DEFAULT_LIMIT, BubbleSplitter, split_bubbles
from imbot.bot.sending import idempotency_key
from imbot.errors import SetupError

CODE = '```python\ndef greet(name):\n\n    return f"Hello. {name}!"  # a blank line above\n```'

ANSWER = (
    "Sure! Decorators wrap a function in another one. They run code before and after it, "
    "e.g. logging or timing, without touching its body.\n\n"
    "Here is one:\n\n"
    f"{CODE}\n\n"
    "Steps:\n"
    "1. Define the wrapper. It takes the function.\n"
    "2. Return it, with care\n"
    "   and a continuation line. Still the same item.\n"
    "- Read https://docs.python.org/3/glossary.html#term-decorator. Then try it.\n\n"
    "That's all. Dr. Who says hi."
)


def stream(text: str, limit: int, seed: int) -> list[str]:
    """``text`` through a splitter, in chunks of 1 to 9 characters."""
    rng = random.Random(seed)
    splitter = BubbleSplitter(limit)
    out: list[str] = []
    at = 0
    while at < len(text):
        size = rng.randint(1, 9)
        out += splitter.feed(text[at : at + size])
        at += size
    return out + splitter.flush()


def test_paragraphs_are_bubbles_and_short_sentences_stay_together() -> None:
    assert split_bubbles("Hi! How are you?\n\nI'm fine.") == ["Hi! How are you?", "I'm fine."]
    assert split_bubbles("one line\nand the next") == ["one line\nand the next"]


def test_blank_text_makes_no_bubble() -> None:
    assert split_bubbles("") == []
    assert split_bubbles(" \n\n\t\n") == []


def test_long_paragraph_splits_between_sentences_within_the_limit() -> None:
    sentence = "This sentence is about forty characters."
    paragraph = " ".join([sentence] * 6)
    bubbles = split_bubbles(paragraph, 100)
    assert bubbles == [f"{sentence} {sentence}"] * 3
    assert all(len(b) <= 100 for b in bubbles)


def test_abbreviations_and_initials_do_not_end_a_sentence() -> None:
    text = "Use a tool, e.g. a linter. Ask Dr. Smith or J. Doe about it. Done."
    assert split_bubbles(text, 30) == [
        "Use a tool, e.g. a linter.",
        "Ask Dr. Smith or J. Doe about",
        "it. Done.",
    ]


def test_a_code_block_stays_whole_even_past_the_limit_and_across_blank_lines() -> None:
    bubbles = split_bubbles(f"Before.\n\n{CODE}\n\nAfter.", 30)
    assert CODE in bubbles
    assert bubbles == ["Before.", CODE, "After."]


def test_an_unclosed_code_block_runs_to_the_end() -> None:
    text = "Look:\n\n```\nx = 1\n\ny = 2"
    assert split_bubbles(text, 20) == ["Look:", "```\nx = 1\n\ny = 2"]


def test_list_items_are_never_split_and_keep_their_continuation_lines() -> None:
    item = "- a long item. It has two sentences.\n  and an indented continuation line."
    text = f"Intro line.\n{item}\n- short one"
    bubbles = split_bubbles(text, 40)
    assert item in bubbles
    assert bubbles == ["Intro line.", item, "- short one"]


def test_a_loose_list_is_one_paragraph() -> None:
    assert split_bubbles("- one\n\n- two\n\n- three") == ["- one\n\n- two\n\n- three"]


def test_an_introduction_joins_what_it_introduces() -> None:
    assert split_bubbles("Steps:\n\n1. this\n2. that\n\nBye.") == [
        "Steps:\n\n1. this\n2. that",
        "Bye.",
    ]
    assert split_bubbles("## Setup\n\nInstall it.") == ["## Setup\n\nInstall it."]
    # ...but only when both fit.
    assert split_bubbles("Here:\n\n" + "x " * 20, 25)[0] == "Here:"


def test_urls_are_never_cut() -> None:
    url = "https://example.com/" + "a" * 80 + "?q=1.2"
    text = f"Read {url}. It explains the whole thing in a lot of detail, honestly."
    bubbles = split_bubbles(text, 40)
    assert [b for b in bubbles if "https" in b] == [f"{url}."]


def test_a_very_long_sentence_is_wrapped_between_words_at_the_limit() -> None:
    words = " ".join(f"word{n:02d}" for n in range(60))  # 419 characters, no full stop
    bubbles = split_bubbles(words, 50)
    assert all(len(b) <= 50 for b in bubbles)
    assert " ".join(bubbles) == words
    assert len(bubbles) == 9  # seven words (48 characters) each, six in the last


def test_a_word_longer_than_the_limit_is_cut_at_the_limit() -> None:
    bubbles = split_bubbles("x" * 95, 40)
    assert bubbles == ["x" * 40, "x" * 40, "x" * 15]


def test_the_answer_splits_into_natural_bubbles() -> None:
    bubbles = split_bubbles(ANSWER, 120)
    assert bubbles == [
        "Sure! Decorators wrap a function in another one.",
        "They run code before and after it, e.g. logging or timing, without touching its body.",
        f"Here is one:\n\n{CODE}",
        "Steps:\n1. Define the wrapper. It takes the function.",
        "2. Return it, with care\n   and a continuation line. Still the same item.",
        "- Read https://docs.python.org/3/glossary.html#term-decorator. Then try it.",
        "That's all. Dr. Who says hi.",
    ]


@pytest.mark.parametrize("limit", [20, 45, 120, DEFAULT_LIMIT])
def test_streamed_text_makes_the_same_bubbles_however_it_is_chunked(limit: int) -> None:
    for seed in range(40):
        assert stream(ANSWER, limit, seed) == split_bubbles(ANSWER, limit), seed


FRAGMENTS = (
    "Hello there.",
    "e.g. this",
    "Dr. No.",
    "What?!",
    "ok",
    "https://x.test/a.b?c=d.",
    "- item",
    "  continued",
    "1. first",
    "2) second",
    "```",
    "```py",
    "~~~",
    "code line",
    "",
    " ",
    "## Head",
    "Intro:",
    "word " * 15,
    "x" * 50,
    "“Quoted.” Next",
    "* star item",
)


def markdownish(rng: random.Random) -> str:
    lines = [
        " ".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 3)))
        for _ in range(rng.randint(1, 25))
    ]
    return rng.choice(["\n", "\r\n"]).join(lines) + rng.choice(["", "\n", "\n\n"])


def test_random_markdown_makes_the_same_bubbles_streamed_and_loses_nothing() -> None:
    for seed in range(400):
        rng = random.Random(seed)
        text, limit = markdownish(rng), rng.choice([20, 35, 60, 120, 400])
        bubbles = split_bubbles(text, limit)
        assert stream(text, limit, seed) == bubbles, seed
        assert "".join("".join(bubbles).split()) == "".join(text.split()), seed
        assert all(b.strip() for b in bubbles), seed


def test_a_stream_gives_a_paragraph_as_soon_as_it_ends() -> None:
    splitter = BubbleSplitter()
    assert splitter.feed("First paragraph, still going") == []
    assert splitter.feed(".\n") == []
    assert splitter.feed("\n") == ["First paragraph, still going."]
    assert splitter.feed("Steps:\n\n") == []  # an introduction waits for what it introduces
    assert splitter.feed("1. one\n\n") == []  # a list may go on after a blank line
    assert splitter.feed("2. two\n\n``") == []  # ...as it does; and "``" may open a block
    assert splitter.feed("`\ncode\n\n") == ["Steps:\n\n1. one\n\n2. two"]
    assert splitter.feed("more\n") == []  # inside the code block
    assert splitter.feed("```\n\nEnd") == ["```\ncode\n\nmore\n```"]
    assert splitter.flush() == ["End"]
    assert splitter.flush() == []


def test_a_stream_gives_full_sentences_once_past_the_limit() -> None:
    splitter = BubbleSplitter(40)
    assert splitter.feed("One short sentence here. Another one") == []
    # Still growing, it could be wrapped and its first words join the first sentence.
    assert splitter.feed(" that runs past the limit.") == []
    assert splitter.feed(" And") == [
        "One short sentence here.",
        "Another one that runs past the limit.",  # "And" does not fit after it
    ]
    assert splitter.flush() == ["And"]


def test_limits_below_twenty_are_refused() -> None:
    with pytest.raises(SetupError, match="at least 20"):
        Bubbles(limit=5)
    with pytest.raises(SetupError, match="at least 20"):
        BubbleSplitter(19)


def test_bot_bubble_settings() -> None:
    assert Bot().bubbles == Bubbles(limit=DEFAULT_LIMIT, on=None)
    assert Bot(bubbles=True).bubbles.on is True
    assert Bot(bubbles=False).bubbles.on is False
    assert Bot(bubbles=Bubbles(limit=100)).bubbles == Bubbles(100, None)
    with pytest.raises(SetupError, match="bubbles must be"):
        Bot(bubbles="yes")  # type: ignore[arg-type]


def test_pacing_is_proportional_and_bounded() -> None:
    pacing = Pacing(per_char=0.01, min=0.5, max=2.0)
    assert pacing.pause("x" * 10) == 0.5
    assert pacing.pause("x" * 100) == pytest.approx(1.0)
    assert pacing.pause("x" * 1000) == 2.0
    assert Pacing.instant().pause("x" * 1000) == 0.0
    assert Bot().pacing == Pacing()
    assert Bot(pacing=Pacing.instant()).pacing == Pacing.instant()
    with pytest.raises(SetupError):
        Pacing(min=3.0, max=1.0)
    with pytest.raises(SetupError):
        Pacing(per_char=-1.0)


def test_a_bubble_is_a_part_of_its_send_so_later_keys_do_not_move() -> None:
    assert idempotency_key("k", 3) == "imbot:k:3"
    assert idempotency_key("k", 3, 1) == "imbot:k:3"
    assert idempotency_key("k", 3, 2) == "imbot:k:3.2"
    assert idempotency_key("k", 4) == "imbot:k:4"
