"""The test kit: run a bot against an in-process simulator and play the human.

``BotHarness`` is an async context manager, so it works with or without pytest:

```python
from imbot.testing import BotHarness

async with BotHarness(bot) as harness:       # simulator + bot on free loopback ports
    chat = harness.chat()                     # the default human, already connected
    await chat.say("hi")
    await chat.expect_reply("echo: hi")
```

Everything goes through real HTTP: the human's texts go to the simulator's ``/sim/v1``
phone API, the simulator signs and delivers webhooks to the bot's server, the bot answers
through the Inkbox API. Each ``Conversation`` follows its phone's event stream, so every
``expect_*`` wakes up on the change it waits for and gives up at a deadline (5 s by default).

A failed expectation raises ``AssertionError`` with the conversation so far:

```text
Conversation of +15555550100 with @testbot:
  me: hi [read]
  bot: (typing…)
  bot: echo: hi [delivered]
  bot: ❤️ love on "hi"
```

A reply split into bubbles (``ctx.reply(..., bubbles=True)``, ``ctx.reply_stream``) is taken
with ``chat.expect_bubbles(n, typing=True)``; the harness makes the pauses between bubbles
instant (``Pacing.instant()``) unless given ``pacing=``.

``await chat.state()`` reads what the bot's handlers saved in that conversation's
``ctx.state`` (after waiting for the bot to be quiet). A coroutine nobody awaited
(``ctx.reply("hi")`` without ``await``) fails the test at once, saying "did you forget
``await``?".

An exception a handler raises and no ``@bot.on_error`` handler takes is re-raised into the
test, at the next call on a ``Conversation`` (or when the harness exits), like Starlette's
``TestClient``; pass ``raise_handler_errors=False`` to only collect them in
``harness.errors``. The pytest fixtures built on this live in ``imbot.pytest_plugin``.

Two more ways in, for what the harness does not cover:

* without a network: ``message_event``, ``reaction_event`` and ``unknown_event`` build the
  events a handler gets, and ``run_events`` feeds them to a bot built with
  ``client=offline_client()``, for handlers, filters and middleware;
* holding the bot yourself: ``simulated()`` starts a simulator with one agent identity
  (a ``SimAgent``: keys, API clients, the humans' phones), ``serving()`` runs your bot
  against it, and ``eventually`` waits for what the human sees.

``tiny_png()`` makes an image to send. Import from ``imbot.testing``; the modules behind it
each do one job: ``harness`` (the run: simulator, bot, settling), ``conversation`` (one
human: acting and expecting), ``watch`` (waiting on a phone), ``feed`` (the phone's event
stream), ``phone`` (the ``/sim/v1`` phone API), ``timeline`` (what a phone shows),
``matching`` (what a reply must look like), ``transcript`` (the conversation as text),
``handler_errors``, ``unawaited`` (a forgotten ``await`` fails the test at once), ``agent``
(a simulator and an identity), ``waiting`` (``eventually``), ``events`` (events from plain
values), ``media``, and ``turns`` (``say_burst`` a burst of texts, ``record_turns`` the
runs of the bot's ``on_turn`` handlers).
"""

from __future__ import annotations

from imbot.testing.agent import SimAgent, serving, sim_agent, simulated
from imbot.testing.conversation import Conversation
from imbot.testing.events import (
    message_event,
    offline_client,
    reaction_event,
    run_events,
    unknown_event,
)
from imbot.testing.handler_errors import HandlerError
from imbot.testing.harness import DEFAULT_TIMEOUT, BotHarness
from imbot.testing.media import tiny_png
from imbot.testing.timeline import TimelineItem, TimelineMedia, TimelineReaction
from imbot.testing.turns import TurnLog, TurnRun, record_turns, say_burst
from imbot.testing.waiting import eventually

__all__ = [
    "DEFAULT_TIMEOUT",
    "BotHarness",
    "Conversation",
    "HandlerError",
    "SimAgent",
    "TimelineItem",
    "TimelineMedia",
    "TimelineReaction",
    "TurnLog",
    "TurnRun",
    "eventually",
    "message_event",
    "offline_client",
    "reaction_event",
    "record_turns",
    "run_events",
    "say_burst",
    "serving",
    "sim_agent",
    "simulated",
    "tiny_png",
    "unknown_event",
]
