"""A bot's settings: the handle, the signing keys, and ``configured()`` for a block.

The first layer of ``Bot`` above ``Router``. Settings are read when the bot starts, never at
import or construction: arguments first, then the environment, resolved by
``imbot.config``; ``configured()`` overrides the arguments for a block (the test kit's seam).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Self

from imbot.config import SIGNING_KEY_ENV, Settings, resolve_bot_settings, resolve_settings
from imbot.errors import MissingSigningKey, SetupError
from imbot.log import register_secret
from imbot.routing.router import Router

if TYPE_CHECKING:
    from imbot.bot.inbox import Inbox
    from imbot.bot.runtime import Runtime
    from imbot.client import InkboxClient
    from imbot.storage.base import StateStore

__all__ = ["Configurable"]


class Configurable(Router):
    """A router with a bot's settings: ``handle``,
    ``signing_keys()``, ``configured()``, ``client``.

    The first layer of ``Bot`` (``Router`` → ``Configurable`` → ``Lifecycle`` → ``Bot``);
    ``Bot.__init__`` sets the attributes declared here.
    """

    _handle_arg: str | None
    _api_key: str | None
    _signing_key: str | Sequence[str] | None
    _base_url: str | None
    _client_arg: InkboxClient | None
    _runtime: Runtime | None
    _state_arg: str | StateStore | None
    _inbox_arg: str | Inbox | None
    _store_arg: str | None

    @property
    def handle(self) -> str | None:
        """The agent handle: the argument, else ``IMBOT_HANDLE``, else ``None``."""
        return resolve_bot_settings(self._handle_arg).handle

    def signing_keys(self) -> tuple[str, ...]:
        """The webhook signing keys: the argument, else ``IMBOT_SIGNING_KEY`` (comma-separated).

        Raises:
            MissingSigningKey: there is none (a ``ConfigError``); the message says how to
                get one.
        """
        keys = resolve_bot_settings(signing_key=self._signing_key).signing_keys
        if not keys:
            raise MissingSigningKey(
                f"no webhook signing key: set {SIGNING_KEY_ENV} (several keys comma-separated "
                "while rotating) or pass Bot(signing_key=...). Create one with "
                "POST /api/v1/identities/{handle}/signing-key (client.create_signing_key)"
            )
        for key in keys:
            register_secret(key)  # masked in every log line, whatever its shape
        return keys

    def api_settings(self) -> Settings:
        """The API key and base URL the bot's client uses (or will use once it starts).

        Resolved as the client resolves them: the ``Bot(...)`` arguments (or the given
        ``client=``'s own), then ``INKBOX_API_KEY`` / ``INKBOX_BASE_URL``, then
        ``~/.inkbox/config``. ``imbot run`` uses it to check the key before serving.

        Example:
            >>> bot.api_settings().base_url
            'https://inkbox.ai'

        Raises:
            ConfigError: there is no API key; the message says where to put one.
        """
        if self._client_arg is not None:
            return self._client_arg.settings
        return resolve_settings(api_key=self._api_key, base_url=self._base_url)

    @property
    def shared_store(self) -> bool:
        """Whether the events and ``ctx.state`` are kept where the bot's other processes see them.

        Resolved as starting resolves them (``inbox=`` / ``state=``, else ``store=``, else
        ``IMBOT_STORE``), without opening anything: ``True`` when both are shared (Redis).
        ``imbot run --workers`` refuses to start several processes without it.

        Raises:
            ConfigError: a storage URL is malformed or names an unknown engine.
        """
        from imbot.config import resolve_store
        from imbot.storage.urls import parse_storage_url

        store = resolve_store(self._store_arg)

        def shared(given: object) -> bool:
            found = store if given is None else given
            if found is None or isinstance(found, str):
                return parse_storage_url(found).scheme == "redis"
            return bool(getattr(found, "shared", False))  # an Inbox or a StateStore

        return shared(self._inbox_arg) and shared(self._state_arg)

    @contextmanager
    def configured(
        self,
        *,
        handle: str | None = None,
        api_key: str | None = None,
        signing_key: str | Sequence[str] | None = None,
        base_url: str | None = None,
    ) -> Iterator[Self]:
        """Override settings of a bot that is not running, for the block only.

        While the block runs, the settings given win as constructor arguments would (over
        the environment); ``None`` leaves a setting as it was. On exit the previous values
        come back, so the same bot can be configured again. This is how the test kit points
        a user's ``Bot()`` at the simulator without touching ``os.environ``.

        Example:
            >>> with bot.configured(api_key=key, signing_key=secret, base_url=sim.base_url):
            ...     async with bot:
            ...         await bot.feed(event)

        Args:
            handle: the agent handle.
            api_key: the Inkbox API key.
            signing_key: the webhook signing key, or several while rotating.
            base_url: the API origin.

        Raises:
            SetupError: the bot is running (settings are read when it starts), or it was
                built with ``client=`` and ``api_key`` or ``base_url`` is given (that
                client has its own).
        """
        if self._runtime is not None:
            raise SetupError(
                "bot.configured(...) while the bot is running: settings are read at start; "
                "configure it before `async with bot`, serve() or run()"
            )
        if self._client_arg is not None and (api_key is not None or base_url is not None):
            raise SetupError(
                "this bot was built with client=..., which has its own API key and base URL; "
                "build the bot without client= to configure api_key or base_url"
            )
        saved = (self._handle_arg, self._api_key, self._signing_key, self._base_url)
        if handle is not None:
            self._handle_arg = handle
        if api_key is not None:
            self._api_key = api_key
        if signing_key is not None:
            self._signing_key = signing_key
        if base_url is not None:
            self._base_url = base_url
        try:
            yield self
        finally:
            self._handle_arg, self._api_key, self._signing_key, self._base_url = saved

    @property
    def client(self) -> InkboxClient:
        """The API client (one connection pool for the whole bot).

        Raises:
            SetupError: the bot has not started and no ``client=`` was given.
        """
        runtime = self._runtime
        if runtime is not None:
            return runtime.client
        if self._client_arg is None:
            raise SetupError(
                "bot.client exists once the bot has started (inside `async with bot:`, "
                "serve() or run()), or pass Bot(client=InkboxClient(...))"
            )
        return self._client_arg
