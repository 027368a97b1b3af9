"""The ``Bot``: register handlers, then serve webhooks (``run()``, ``serve()``, ``app``).

A ``Bot`` is built in layers, each a module: ``Router`` (registration, ``imbot.routing``) →
``Configurable`` (settings, ``settings.py``) → ``Lifecycle`` (start, stop, take events,
send; ``lifecycle.py``) → ``Bot`` (this module: construction and serving). The running
parts and the path of one event live in ``imbot.bot.runtime``, the aiohttp application in
``imbot.bot.server``, the process edge of ``run()`` in ``imbot.bot.runner``.

Settings are read when the bot starts, never at import or construction: arguments first,
then ``IMBOT_HANDLE``, ``INKBOX_API_KEY``, ``IMBOT_SIGNING_KEY`` (comma-separated while
rotating keys) and ``INKBOX_BASE_URL``, resolved by ``imbot.config``. ``bot.configured()``
overrides them for a block (the test kit's seam).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from imbot.errors import single_exception
from imbot.log import get_logger
from imbot.net import probe_port

if TYPE_CHECKING:
    from aiohttp import web

    from imbot.bot.inbox import Inbox
    from imbot.client import InkboxClient
    from imbot.storage.base import StateStore
    from imbot.types import Lifespan

from imbot.bot.bubbles import Bubbles
from imbot.bot.lifecycle import Lifecycle
from imbot.bot.limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    check_limits,
)
from imbot.bot.pacing import Pacing
from imbot.bot.resources import BotState
from imbot.bot.retry import HandlerRetry
from imbot.errors import SetupError

__all__ = ["Bot", "BotState"]

_log = get_logger("imbot")


class Bot(Lifecycle):
    """An iMessage bot: register handlers, then ``run()`` (or ``await serve()``).

    Example:
        >>> from imbot import Bot
        >>> bot = Bot()                      # settings from the environment at start
        >>> @bot.on_message()
        ... async def echo(ctx):
        ...     await ctx.reply(ctx.text)
        >>> bot.run()                        # POST /webhook on 127.0.0.1:8000

    Args:
        handle: the agent handle (``IMBOT_HANDLE``); used in logs and health.
        api_key: the Inkbox API key (``INKBOX_API_KEY``, then ``~/.inkbox/config``).
        signing_key: the webhook signing key, or several while rotating
            (``IMBOT_SIGNING_KEY``, comma-separated); needed to serve webhooks.
        base_url: the API origin (``INKBOX_BASE_URL``; ``https://inkbox.ai`` by default).
        state: where ``ctx.state`` is kept: ``None`` (memory), ``"sqlite:///bot.db"``, or a
            ``StateStore``.
        inbox: where event ids (and, durable, bodies) are kept: ``None`` (memory),
            ``"sqlite:///bot.db"`` to resume after a crash, or an ``Inbox``.
        store: one storage URL for both the inbox and the state (``IMBOT_STORE``):
            ``"redis://host:6379/0"`` lets several processes behave as one bot (shared
            dedupe, order per conversation, state and ``ctx.ask``); ``inbox=`` and
            ``state=`` win for their part.
        max_concurrency: handlers running at once, across conversations (256). Not a
            throughput knob: handlers mostly wait on the API, and a low bound makes events
            wait in their lanes after their webhook was acknowledged.
        command_prefixes: accepted command prefixes; ``("/", "")`` accepts ``/help`` and
            ``help``.
        drain_timeout: seconds running handlers get to finish at shutdown.
        lifespan: ``(bot) -> async context manager``, entered at start; what it yields is
            set on ``bot.state``. Not together with ``on_startup`` / ``on_shutdown``.
        client: an ``InkboxClient`` to use instead of building one (yours to close).
        typing_interval: seconds between typing-bubble refreshes in ``ctx.typing()``.
        help_command: register a ``help`` command that replies ``bot.help_text()``.
        max_body_size: largest webhook body accepted, in bytes.
        header_timeout: seconds a connection has to send a request's headers, from opening
            or from its previous answer, before the server closes it (10).
        body_timeout: seconds a webhook has to send its whole body once its headers are in;
            a slower one is answered 408 (30).
        max_connections: connections the server holds at once (1,024), kept below the
            open-files limit; at the cap the longest-idle connection makes room.
        max_buffered_bytes: bytes of webhook bodies buffered across all requests being
            read (16 MiB, or ``max_body_size`` if larger); past it, 503 and Inkbox retries.
        handler_timeout: seconds a handler may run before it is cancelled and
            ``HandlerTimeout`` goes to the error handlers; no limit by default.
        handler_retry: how handlers failing on transient API errors are retried, and when
            their events become dead letters (``HandlerRetry()`` by default: an hour).
        bubbles: how ``ctx.reply`` splits long text into bubbles: ``None`` (in ``on_turn``
            handlers only), ``True`` (in every handler), ``False`` (never), or ``Bubbles``
            for the limit too; a reply's own ``bubbles=`` wins.
        pacing: the pauses between a reply's bubbles (``Pacing()``: 0.5 s to 2 s).
        name: a name for logs.

    Raises:
        SetupError: an argument is invalid (checked here, before anything runs).
    """

    def __init__(
        self,
        handle: str | None = None,
        *,
        api_key: str | None = None,
        signing_key: str | Sequence[str] | None = None,
        base_url: str | None = None,
        state: str | StateStore | None = None,
        inbox: str | Inbox | None = None,
        store: str | None = None,
        max_concurrency: int = 256,
        command_prefixes: Sequence[str] = ("/", ""),
        drain_timeout: float = 30.0,
        lifespan: Lifespan | None = None,
        client: InkboxClient | None = None,
        typing_interval: float = 40.0,
        help_command: bool = False,
        max_body_size: int = 1_048_576,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_buffered_bytes: int | None = None,
        handler_timeout: float | None = None,
        handler_retry: HandlerRetry | None = None,
        bubbles: bool | Bubbles | None = None,
        pacing: Pacing | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name or (f"Bot(@{handle})" if handle else "Bot"))
        if isinstance(command_prefixes, str) or not command_prefixes:
            raise SetupError('command_prefixes must be a non-empty sequence, e.g. ("/", "")')
        if not all(isinstance(p, str) and not p.isspace() for p in command_prefixes):
            raise SetupError("command_prefixes must be strings without spaces")
        if max_concurrency < 1:
            raise SetupError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if drain_timeout < 0 or typing_interval <= 0:
            raise SetupError("drain_timeout must be >= 0 and typing_interval > 0")
        if handler_timeout is not None and handler_timeout <= 0:
            raise SetupError(f"handler_timeout must be positive seconds, got {handler_timeout}")
        if lifespan is not None and not callable(lifespan):
            raise SetupError("lifespan must be a function (bot) -> async context manager")
        check_limits(
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=max_connections,
            max_body_size=max_body_size,
            max_buffered_bytes=max_buffered_bytes,
        )
        self._handle_arg = handle
        self._api_key = api_key
        self._signing_key = signing_key
        self._base_url = base_url
        self._state_arg = state
        self._inbox_arg = inbox
        self._store_arg = store
        self.max_concurrency = max_concurrency
        self.command_prefixes = tuple(command_prefixes)
        self.drain_timeout = drain_timeout
        self.typing_interval = typing_interval
        self.max_body_size = max_body_size
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.max_buffered_bytes = max_buffered_bytes
        self.handler_timeout = handler_timeout
        self.handler_retry = handler_retry or HandlerRetry()
        self.bubbles = Bubbles.of(bubbles)
        self.pacing = pacing or Pacing()
        self._lifespan = lifespan
        self._client_arg = client
        self._help_command = help_command
        self.state = BotState()
        self._table = None
        self._runtime = None
        self._running_cm = None
        self._error_listeners = []  # add_error_listener()

    # ------------------------------------------------------------------ serving

    def health(self) -> dict[str, Any]:
        """What ``GET /healthz`` reports: handle, running, lanes, handlers in flight, open asks.

        Example:
            >>> bot.health()["in_flight"]
            3
        """
        runtime = self._runtime
        found: dict[str, Any] = {"handle": self.handle, "running": self.running}
        found.update(runtime.health() if runtime else {"lanes": 0, "in_flight": 0, "asks": 0})
        return found

    def _create_app(self, path: str, secrets: Sequence[str]) -> web.Application:
        from imbot.bot.server import create_app

        return create_app(
            receive=self.feed,
            secrets=secrets,
            path=path,
            max_body_size=self.max_body_size,
            body_timeout=self.body_timeout,
            max_buffered_bytes=self.max_buffered_bytes,
            health=self.health,
        )

    @property
    def app(self) -> web.Application:
        """An aiohttp application serving the webhook at ``/webhook``, to mount elsewhere.

        The bot starts with the application and stops with it.

        Example:
            >>> main = web.Application()
            >>> main.add_subapp("/imbot", bot.app)     # POST /imbot/webhook

        Raises:
            ConfigError: no signing key is configured.
        """
        app = self._create_app("/webhook", self.signing_keys())

        async def run_bot(_: web.Application) -> AsyncIterator[None]:
            async with self:
                yield

        app.cleanup_ctx.append(run_bot)
        return app

    @property
    def draining(self) -> bool:
        """Whether the bot is stopping and waiting for its running handlers to finish."""
        runtime = self._runtime
        return runtime is not None and runtime.drain_scope is not None

    def stop(self, *, reason: str | None = None) -> bool:
        """Ask a serving bot to stop gracefully: no new webhooks, drain, shut down.

        ``serve()`` returns once done. Calling it again while handlers drain cancels them,
        as a second Ctrl-C does. (Cancelling ``serve()`` instead stops at once.)

        Example:
            >>> bot.stop()

        Args:
            reason: what asked, for the log (``"SIGTERM"``).

        Returns:
            ``True`` when it did something: asked to stop, or cancelled the drain.
        """
        runtime = self._runtime
        if runtime is None:
            return False
        if not runtime.stop_requested.is_set():
            _log.info(
                "stopping: finishing running handlers",
                signal=reason,
                drain_timeout=self.drain_timeout,
            )
            runtime.stop_requested.set()
            return True
        if runtime.drain_scope is not None:
            _log.warning("second signal: cancelling running handlers", signal=reason)
            runtime.drain_scope.cancel()
            return True
        return False

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        path: str = "/webhook",
        *,
        reuse_port: bool = False,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run the bot and its webhook server until ``stop()`` (or cancellation).

        Example:
            >>> async with anyio.create_task_group() as tg:
            ...     port = await tg.start(bot.serve, "127.0.0.1", 0)

        Args:
            host: the interface to listen on; the loopback by default.
            port: the port; 0 picks a free one (reported through ``task_status``).
            path: the webhook route.
            reuse_port: share the port with other processes serving it the same way
                (``SO_REUSEPORT``, Linux): what ``imbot run --workers`` gives each worker.
            task_status: receives the bound port once the server listens.

        Raises:
            ConfigError: a setting (API key, signing key) is missing or invalid.
            OSError: the address cannot be bound (a port already in use is found before
                the lifespan or startup hooks run).
        """
        secrets = self.signing_keys()
        probe_port(host, port, reuse_port=reuse_port)  # a taken port starts nothing
        try:
            async with self:
                from imbot.bot.server import serve_app

                app = self._create_app(path, secrets)
                runtime = self._runtime
                assert runtime is not None
                async with anyio.create_task_group() as tg:
                    bound = await tg.start(
                        partial(
                            serve_app,
                            app,
                            host=host,
                            port=port,
                            header_timeout=self.header_timeout,
                            max_connections=self.max_connections,
                            reuse_port=reuse_port,
                        )
                    )
                    _log.info("serving webhooks", url=f"http://{host}:{bound}{path}")
                    task_status.started(bound)
                    await runtime.stop_requested.wait()
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise (single_exception(group) or group) from None

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        path: str = "/webhook",
        *,
        log_level: str | None = None,
        gc_tuning: bool | None = None,
    ) -> None:
        """Serve until SIGINT/SIGTERM: the one blocking entry point.

        Configures logging (see ``imbot.log``), serves, and on the first signal stops
        taking webhooks and lets running handlers finish within ``drain_timeout``; a second
        signal cancels them.

        Once the bot listens, it tunes Python's garbage collector for serving (collect,
        ``gc.freeze()``, thresholds ``imbot.bot.runner.GC_THRESHOLD``): about a fifth less
        CPU per event. The previous thresholds are restored when ``run()`` returns.

        Example:
            >>> if __name__ == "__main__":
            ...     bot.run(port=8000)

        Args:
            host: the interface to listen on; the loopback by default.
            port: the port.
            path: the webhook route.
            log_level: the log level; ``IMBOT_LOG_LEVEL`` or ``INFO`` by default.
            gc_tuning: tune the garbage collector; ``False`` keeps Python's defaults. By
                default on, unless ``IMBOT_GC_TUNING=0``.
        """
        from imbot.bot.runner import run

        run(self, host, port, path, log_level=log_level, gc_tuning=gc_tuning)
