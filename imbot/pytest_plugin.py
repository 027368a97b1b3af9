"""imbot's pytest plugin: ``imbot_``-prefixed fixtures over ``imbot.testing``.

Installed with imbot (entry point ``pytest11``), so the fixtures need no import. Point them
at your bot with a ``bot`` fixture, or with the ``imbot`` marker:

```python
import pytest
from mybot import bot as my_bot


@pytest.fixture
def bot():
    return my_bot


async def test_echo(imbot_chat):
    await imbot_chat.say("hi")
    await imbot_chat.expect_reply("echo: hi")


@pytest.mark.imbot(bot=my_bot, handle="helper", connect=False)
async def test_greeting(imbot_chat):
    greeting = await imbot_chat.connect()
    assert greeting
```

Fixtures:

* ``imbot_bot``: your bot (from the marker, else from your ``bot`` fixture).
* ``imbot_simulator``: a running in-memory ``Simulator`` on a free loopback port.
* ``imbot_harness``: a running ``BotHarness`` for your bot, on that simulator.
* ``imbot_chat``: the default human's ``Conversation`` (connected unless ``connect=False``).

Marker keywords (``@pytest.mark.imbot(...)``, on a test, a class or ``pytestmark``):
``bot`` (a ``Bot`` or ``"module:attribute"``), ``handle``, ``phone``, ``connect``,
``delivery_delay``, ``connect_event``, ``raise_handler_errors``, ``timeout``,
``shutdown_timeout``, ``chaos``. The closest marker wins, keyword by keyword.

The fixtures are ``pytest_asyncio`` fixtures, so they work in asyncio ``auto`` and
``strict`` mode (in strict mode, mark the tests ``@pytest.mark.asyncio``).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.sim import Simulator
    from imbot.testing import BotHarness, Conversation

__all__ = ["imbot_bot", "imbot_chat", "imbot_harness", "imbot_simulator"]

_T = TypeVar("_T")

MARKER = "imbot"

_SIM_KEYWORDS = ("delivery_delay", "connect_event")
_HARNESS_KEYWORDS = (
    "handle",
    "phone",
    "connect",
    "delivery_delay",
    "connect_event",
    "raise_handler_errors",
    "timeout",
    "shutdown_timeout",
    "chaos",
)
_KNOWN = frozenset(("bot", *_HARNESS_KEYWORDS))

_NO_BOT = (
    "imbot_harness needs your bot: define a fixture named `bot` that returns it, or mark the "
    "test @pytest.mark.imbot(bot=my_bot) (or bot='package.module:bot')"
)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``imbot`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "imbot(bot=None, handle='testbot', phone='+15555550100', connect=True, "
        "delivery_delay=0.0, connect_event=True, raise_handler_errors=True, timeout=5.0, "
        "shutdown_timeout=2.0, chaos=None): configure the imbot_harness / imbot_chat fixtures",
    )


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``imbot`` marker keywords, the closest marker first."""
    options: dict[str, Any] = {}
    for marker in request.node.iter_markers(MARKER):
        if marker.args:
            raise pytest.UsageError("@pytest.mark.imbot takes keywords only, e.g. bot=my_bot")
        unknown = set(marker.kwargs) - _KNOWN
        if unknown:
            raise pytest.UsageError(
                f"@pytest.mark.imbot: unknown keyword(s) {sorted(unknown)}; known: {sorted(_KNOWN)}"
            )
        for key, value in marker.kwargs.items():
            options.setdefault(key, value)
    return options


def _resolve_bot(request: pytest.FixtureRequest, given: object) -> Bot:
    from imbot.bot.bot import Bot

    if given is None:
        try:
            given = request.getfixturevalue("bot")
        except pytest.FixtureLookupError:
            raise pytest.UsageError(_NO_BOT) from None
    if isinstance(given, str):
        module, _, attribute = given.partition(":")
        given = getattr(importlib.import_module(module), attribute or "bot")
    if not isinstance(given, Bot):
        raise pytest.UsageError(f"{_NO_BOT}; got {type(given).__name__}")
    return given


async def _hosted(manager: AbstractAsyncContextManager[_T]) -> AsyncIterator[_T]:
    """Enter and exit ``manager`` in one task of its own, for the fixture's lifetime.

    pytest-asyncio runs a fixture's setup, the test and the teardown in three different
    tasks (pytest-dev/pytest-asyncio#1191), while the simulator and the bot hold anyio task
    groups, which must be entered and exited by the same task. So each fixture gets a host
    task: it enters the manager, parks until teardown, then exits it. The host is owned by
    the fixture and always awaited, never left behind; this is the one place imbot starts
    a task outside a task group, because no task group can span pytest's phases.
    """
    entered: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def host() -> None:
        async with manager as value:
            entered.set_result(value)
            await release.wait()

    # A raw task on purpose, the only one in imbot: pytest-asyncio sets up and tears down
    # this fixture in different tasks, and no task group can span both (see above).
    task = asyncio.get_running_loop().create_task(host(), name="imbot fixture host")
    try:
        waiting: list[asyncio.Future[Any]] = [entered, task]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if not entered.done():
            await task  # setup failed: raise its error here
            raise RuntimeError("the fixture host stopped before it was ready")
        yield entered.result()
    finally:
        release.set()
        if not entered.done():
            entered.cancel()
        await task


def _async_fixture(func: Callable[..., Any]) -> Any:
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - only without pytest-asyncio

        @pytest.fixture(name=func.__name__)
        def missing() -> None:
            raise pytest.UsageError(
                f"{func.__name__} needs pytest-asyncio: pip install pytest-asyncio"
            )

        missing.__doc__ = func.__doc__
        return missing
    return pytest_asyncio.fixture(func)


@_async_fixture
async def imbot_simulator(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """A running in-memory simulator on a free loopback port.

    ``delivery_delay`` and ``connect_event`` come from the ``imbot`` marker.

    Example:
        >>> async def test_info(imbot_simulator):
        ...     assert imbot_simulator.base_url.startswith("http://127.0.0.1:")
    """
    from imbot.testing.agent import local_simulator

    options = _options(request)
    sim = local_simulator(
        delivery_delay=float(options.get("delivery_delay", 0.0)),
        connect_event=bool(options.get("connect_event", True)),
        webhook_timeout=float(options.get("timeout", 5.0)),
    )
    async for running in _hosted(sim):
        yield running


@pytest.fixture
def imbot_bot(request: pytest.FixtureRequest) -> Bot:
    """The bot under test: the ``imbot`` marker's ``bot=``, else your ``bot`` fixture.

    A plain (not async) fixture, so that your ``bot`` fixture may itself depend on async
    fixtures (a fake API server, say). Override it to pick the bot another way.

    Example:
        >>> @pytest.fixture
        ... def bot():
        ...     return my_bot
    """
    return _resolve_bot(request, _options(request).get("bot"))


@_async_fixture
async def imbot_harness(
    request: pytest.FixtureRequest, imbot_bot: Bot, imbot_simulator: Simulator
) -> AsyncIterator[BotHarness]:
    """Your bot, running against ``imbot_simulator``, with the default human connected.

    The bot comes from ``imbot_bot`` (the ``imbot`` marker's ``bot=``, or your ``bot``
    fixture); the other marker keywords go to ``BotHarness``. Handler errors fail the test.

    Example:
        >>> async def test_two_humans(imbot_harness):
        ...     bob = imbot_harness.chat("+15550001111")
        ...     await bob.connect()
        ...     await bob.say("hi")
        ...     await bob.expect_reply("echo: hi")
    """
    from imbot.testing import BotHarness

    options = _options(request)
    kwargs = {key: options[key] for key in _HARNESS_KEYWORDS if key in options}
    harness = BotHarness(imbot_bot, simulator=imbot_simulator, **kwargs)
    async for running in _hosted(harness):
        yield running


@_async_fixture
async def imbot_chat(imbot_harness: BotHarness) -> AsyncIterator[Conversation]:
    """The default human's conversation with your bot (connected unless ``connect=False``).

    Example:
        >>> async def test_echo(imbot_chat):
        ...     await imbot_chat.say("hi")
        ...     await imbot_chat.expect_reply("echo: hi")
    """
    yield imbot_harness.chat()
