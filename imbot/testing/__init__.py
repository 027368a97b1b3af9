"""The test kit: run a bot against an in-process simulator and play the human.

``BotHarness`` is an async context manager, so it works with or without pytest:

```python
from imbot.testing import BotHarness

async with BotHarness(bot) as harness:       # simulator + bot on free loopback ports
    chat = harness.chat()                     # the default human, already connected
    await chat.say("hi")
    await chat.expect_reply("echo: hi")
```

Everything goes through real HTTP: the human's texts go to the simulator's ``/sim/v1`` phone
API, the simulator signs and delivers webhooks to the bot's server, the bot answers through
the Inkbox API. Each ``Conversation`` follows its phone's event stream, so every ``expect_*``
wakes up on the change it waits for and gives up at a deadline (5 s by default).

A failed expectation raises ``AssertionError`` with the conversation so far::

    me: hi [read]
    bot: (typing…)
    bot: echo: hi [delivered]
    bot: ❤️ love on "hi"

An exception a handler raises and no ``@bot.on_error`` handler takes is re-raised into the
test, at the next call on a ``Conversation`` (or when the harness exits), like Starlette's
``TestClient``; pass ``raise_handler_errors=False`` to only collect them in
``harness.errors``. The pytest fixtures built on this live in ``imbot.pytest_plugin``.

Import from ``imbot.testing``; the modules behind it each do one job: ``harness`` (the
run: simulator, bot, settling, handler errors), ``conversation`` (one human: acting and
expecting), ``matching`` (what a reply must look like), ``timeline`` (what a phone shows,
and the event-stream follower) and ``transcript`` (the conversation as text).
"""

from __future__ import annotations

from imbot.testing.conversation import Conversation
from imbot.testing.harness import DEFAULT_TIMEOUT, BotHarness, HandlerError
from imbot.testing.timeline import TimelineItem, TimelineMedia, TimelineReaction

__all__ = [
    "DEFAULT_TIMEOUT",
    "BotHarness",
    "Conversation",
    "HandlerError",
    "TimelineItem",
    "TimelineMedia",
    "TimelineReaction",
]
