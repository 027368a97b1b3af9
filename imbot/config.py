"""Settings: where each setting comes from, resolved at the edge; the only env reads.

The client's settings (``resolve_settings``) are taken from the first place that has a
non-empty value:

1. the argument passed in code,
2. the environment (``INKBOX_API_KEY``, ``INKBOX_BASE_URL``),
3. the ``~/.inkbox/config`` file (``api_key = ...``, ``base_url = ...``), the same file the
   official Inkbox CLI and SDK read.

The base URL defaults to ``https://inkbox.ai``. Plain ``http://`` is accepted only for
``localhost`` and ``127.0.0.1`` (the simulator), so an API key never crosses a network in clear.

The bot's own settings (``resolve_bot_settings``) follow the same rule with two levels:
the argument, then the environment (``IMBOT_HANDLE``, ``IMBOT_SIGNING_KEY``).

The process settings follow the same rule, argument > environment > default, one function
each: ``resolve_log_level`` (``IMBOT_LOG_LEVEL``), ``resolve_log_format``
(``IMBOT_LOG_FORMAT``), ``resolve_log_locals`` (``IMBOT_LOG_LOCALS``), ``resolve_gc_tuning``
(``IMBOT_GC_TUNING``) and
``resolve_sim_admin_key`` (``IMBOT_SIM_ADMIN_KEY``) and ``resolve_store`` (``IMBOT_STORE``,
the storage URL of a bot whose code names none). Nothing else in imbot reads the
environment: the edge (``Bot.run()``, the CLI) calls these and passes the values on, and a
child process the CLI starts gets this one's environment from ``child_environment``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from imbot.errors import ConfigError

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_LOG_LEVEL",
    "GC_TUNING_ENV",
    "HANDLE_ENV",
    "LOG_FORMAT_ENV",
    "LOG_LEVEL_ENV",
    "LOG_LOCALS_ENV",
    "SIGNING_KEY_ENV",
    "SIM_ADMIN_KEY_ENV",
    "STORE_ENV",
    "BotSettings",
    "Settings",
    "child_environment",
    "default_config_path",
    "normalize_base_url",
    "read_config_file",
    "resolve_bot_settings",
    "resolve_gc_tuning",
    "resolve_log_format",
    "resolve_log_level",
    "resolve_log_locals",
    "resolve_log_secrets",
    "resolve_settings",
    "resolve_sim_admin_key",
    "resolve_store",
]

DEFAULT_BASE_URL = "https://inkbox.ai"
"""The Inkbox API origin used when no base URL is configured."""

API_KEY_ENV = "INKBOX_API_KEY"
"""The environment variable holding the API key."""

BASE_URL_ENV = "INKBOX_BASE_URL"
"""The environment variable holding the API origin."""

HANDLE_ENV = "IMBOT_HANDLE"
"""The environment variable naming the bot's agent handle."""

SIGNING_KEY_ENV = "IMBOT_SIGNING_KEY"
"""The environment variable holding the webhook signing key(s), comma-separated."""

LOG_LEVEL_ENV = "IMBOT_LOG_LEVEL"
"""The environment variable naming the log level (``DEBUG``, ``INFO``...)."""

DEFAULT_LOG_LEVEL = "INFO"
"""The log level used when neither an argument nor the environment names one."""

LOG_FORMAT_ENV = "IMBOT_LOG_FORMAT"
"""The environment variable picking the log format: ``json`` or ``console``."""

LOG_LOCALS_ENV = "IMBOT_LOG_LOCALS"
"""The environment variable that shows local variables in logged tracebacks (``1``)."""

GC_TUNING_ENV = "IMBOT_GC_TUNING"
"""The environment variable switching ``Bot.run()``'s garbage-collector tuning off (``0``)."""

SIM_ADMIN_KEY_ENV = "IMBOT_SIM_ADMIN_KEY"
"""The environment variable holding the simulator's admin API key (``imbot sim``/``dev``)."""

STORE_ENV = "IMBOT_STORE"
"""The environment variable naming the bot's store (``redis://host:6379/0``), inbox and state."""

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The resolved connection settings of an Inkbox client.

    Attributes:
        api_key: the ``X-API-Key`` value (``ApiKey_...``).
        base_url: the API origin without a trailing slash, e.g. ``https://inkbox.ai``.
        api_key_source: where the key came from: ``argument``, ``env`` or the config file path.
        base_url_source: where the base URL came from: ``argument``, ``env``, the config file
            path, or ``default``.
    """

    api_key: str
    base_url: str = DEFAULT_BASE_URL
    api_key_source: str = "argument"
    base_url_source: str = "default"

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks; show only enough of the key to tell keys apart.
        return (
            f"Settings(api_key={_mask(self.api_key)!r}, base_url={self.base_url!r}, "
            f"api_key_source={self.api_key_source!r}, base_url_source={self.base_url_source!r})"
        )


def _mask(key: str) -> str:
    return key[:7] + "…" + key[-4:] if len(key) > 16 else "…"


def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def default_config_path() -> Path:
    """Return ``~/.inkbox/config``, expanded for the current ``HOME``."""
    return Path("~/.inkbox/config").expanduser()


def read_config_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a ``key = value`` config file.

    Blank lines, lines starting with ``#`` and lines without ``=`` are ignored; keys and
    values are stripped, and one pair of surrounding quotes is removed from each value.
    A missing or unreadable file reads as empty.

    Args:
        path: the file to read.

    Returns:
        The settings found, by key.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].strip()
        found[key.strip()] = value
    return found


def normalize_base_url(url: str) -> str:
    """Check an API origin and return it without a trailing slash.

    Args:
        url: an origin such as ``https://inkbox.ai`` or ``http://127.0.0.1:8787``.

    Returns:
        The origin, trailing slashes removed.

    Raises:
        ConfigError: the URL is not http(s), has no host, points at ``/api``, or uses plain
            http for a host other than ``localhost`` / ``127.0.0.1``.
    """
    cleaned = url.strip().rstrip("/")
    parts = urlsplit(cleaned)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"base URL {url!r} is not an http(s) URL; give an origin such as "
            f"{DEFAULT_BASE_URL} or http://127.0.0.1:8787"
        )
    if parts.path.rstrip("/").endswith(("/api", "/api/v1")):
        origin = f"{parts.scheme}://{parts.netloc}"
        raise ConfigError(f"base URL {url!r} includes the API path; give the origin only: {origin}")
    if parts.query or parts.fragment:
        raise ConfigError(f"base URL {url!r} must not have a query or a fragment")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        secure = "https://" + cleaned.removeprefix("http://")
        raise ConfigError(
            f"base URL {url!r} uses plain http, which would send the API key in clear; "
            f"use {secure}, or http only for localhost / 127.0.0.1"
        )
    return cleaned


def resolve_settings(
    api_key: str | None = None,
    base_url: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
) -> Settings:
    """Resolve the API key and base URL: argument, then environment, then config file.

    Empty or blank values count as not given at every level. The config file is read
    only when an argument and the environment leave a setting open.

    Example:
        >>> settings = resolve_settings(base_url="http://127.0.0.1:8787", env={
        ...     "INKBOX_API_KEY": "ApiKey_test"})
        >>> settings.base_url
        'http://127.0.0.1:8787'

    Args:
        api_key: the API key; wins over everything else when given.
        base_url: the API origin; wins over everything else when given.
        env: the environment to read; ``os.environ`` when omitted.
        config_path: the config file; ``~/.inkbox/config`` when omitted.

    Returns:
        The frozen settings.

    Raises:
        ConfigError: no API key anywhere, or the base URL is invalid or insecure.
    """
    environ = _environ(env)
    path = default_config_path() if config_path is None else Path(config_path)
    file_values: dict[str, str] | None = None

    def pick(name: str, explicit: str | None, env_name: str) -> tuple[str | None, str]:
        nonlocal file_values
        if explicit is not None and explicit.strip():
            return explicit.strip(), "argument"
        from_env = environ.get(env_name, "").strip()
        if from_env:
            return from_env, "env"
        if file_values is None:
            file_values = read_config_file(path)
        from_file = file_values.get(name, "").strip()
        return (from_file, str(path)) if from_file else (None, "default")

    key, key_source = pick("api_key", api_key, API_KEY_ENV)
    if key is None:
        raise ConfigError(
            f"no Inkbox API key: set {API_KEY_ENV}, pass api_key=..., or add "
            f"'api_key = ApiKey_...' to {path}"
        )
    url, url_source = pick("base_url", base_url, BASE_URL_ENV)
    try:
        origin = normalize_base_url(url if url is not None else DEFAULT_BASE_URL)
    except ConfigError as exc:
        where = {"argument": "base_url=", "env": BASE_URL_ENV}.get(url_source, url_source)
        raise ConfigError(f"{exc} (from {where})") from None
    return Settings(
        api_key=key, base_url=origin, api_key_source=key_source, base_url_source=url_source
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class BotSettings:
    """The resolved settings of a ``Bot`` that are not the client's.

    Attributes:
        handle: the agent handle, or ``None`` when neither given nor set.
        signing_keys: the webhook signing keys in the order given (several while rotating),
            or ``()`` when there is none.
        handle_source: where the handle came from: ``argument``, ``env`` or ``unset``.
        signing_key_source: where the keys came from: ``argument``, ``env`` or ``unset``.
    """

    handle: str | None = None
    signing_keys: tuple[str, ...] = ()
    handle_source: str = "unset"
    signing_key_source: str = "unset"

    def __repr__(self) -> str:
        # Like Settings: the keys are secrets, show only enough to tell them apart.
        keys = ", ".join(repr(_mask(key)) for key in self.signing_keys)
        return (
            f"BotSettings(handle={self.handle!r}, signing_keys=({keys}), "
            f"handle_source={self.handle_source!r}, "
            f"signing_key_source={self.signing_key_source!r})"
        )


def _split_keys(value: str | Sequence[str]) -> tuple[str, ...]:
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(key.strip() for key in parts if key and key.strip())


def resolve_bot_settings(
    handle: str | None = None,
    signing_key: str | Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> BotSettings:
    """Resolve the bot's handle and webhook signing keys: argument, then environment.

    Empty or blank values count as not given at both levels. A signing key given as one
    string (argument or ``IMBOT_SIGNING_KEY``) may hold several keys separated by commas,
    which is how keys are rotated: the old and the new one are both accepted for a while.
    Nothing is required here; ``Bot.signing_keys()`` raises when serving needs a key.

    Example:
        >>> settings = resolve_bot_settings(env={"IMBOT_SIGNING_KEY": "whsec_old, whsec_new"})
        >>> settings.signing_keys
        ('whsec_old', 'whsec_new')

    Args:
        handle: the agent handle; wins over ``IMBOT_HANDLE`` when given.
        signing_key: the signing key, a comma-separated string of keys, or a sequence of
            keys; wins over ``IMBOT_SIGNING_KEY`` when given.
        env: the environment to read; ``os.environ`` when omitted.

    Returns:
        The frozen settings.
    """
    environ = _environ(env)
    name: str | None = handle.strip() if handle is not None and handle.strip() else None
    handle_source = "argument"
    if name is None:
        name = environ.get(HANDLE_ENV, "").strip() or None
        handle_source = "env" if name is not None else "unset"
    keys = _split_keys(signing_key) if signing_key is not None else ()
    key_source = "argument"
    if not keys:
        keys = _split_keys(environ.get(SIGNING_KEY_ENV, ""))
        key_source = "env" if keys else "unset"
    return BotSettings(
        handle=name,
        signing_keys=keys,
        handle_source=handle_source,
        signing_key_source=key_source,
    )


def resolve_log_level(
    given: str | int | None = None, *, env: Mapping[str, str] | None = None
) -> str | int:
    """The log level: the argument, else ``IMBOT_LOG_LEVEL``, else ``INFO`` (checked by log.py).

    Example:
        >>> resolve_log_level(env={"IMBOT_LOG_LEVEL": "debug"})
        'debug'
    """
    if given is not None:
        return given
    return _environ(env).get(LOG_LEVEL_ENV, "").strip() or DEFAULT_LOG_LEVEL


def resolve_log_format(
    given: str | None = None, *, env: Mapping[str, str] | None = None
) -> str | None:
    """The log format: the argument, else ``IMBOT_LOG_FORMAT`` (lower-cased), else ``None``.

    ``None`` leaves the choice to the output (console lines in a terminal, JSON otherwise);
    ``imbot.log.configure_logging`` refuses an unknown format.

    Example:
        >>> resolve_log_format(env={"IMBOT_LOG_FORMAT": "JSON"})
        'json'
    """
    if given:
        return given
    return _environ(env).get(LOG_FORMAT_ENV, "").strip().lower() or None


def resolve_log_locals(given: bool | None = None, *, env: Mapping[str, str] | None = None) -> bool:
    """Whether logged tracebacks show local variables: the argument, else the environment.

    Off unless ``IMBOT_LOG_LOCALS`` is ``1``, ``true``, ``yes`` or ``on`` (any case): frames
    hold request headers and message text, which do not belong in a production log.

    Example:
        >>> resolve_log_locals(env={"IMBOT_LOG_LOCALS": "1"})
        True
    """
    if given is not None:
        return given
    return _environ(env).get(LOG_LOCALS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def resolve_log_secrets(
    *, env: Mapping[str, str] | None = None, config_path: str | os.PathLike[str] | None = None
) -> tuple[str, ...]:
    """The secrets this process was configured with, for the logs to mask.

    The API key (``INKBOX_API_KEY``, else ``~/.inkbox/config``), the webhook signing keys
    (``IMBOT_SIGNING_KEY``) and the simulator's admin key (``IMBOT_SIM_ADMIN_KEY``); keys
    given as arguments are registered by the code they are given to.

    Example:
        >>> resolve_log_secrets(env={"IMBOT_SIGNING_KEY": "whsec_a,whsec_b"}, config_path="/x")
        ('whsec_a', 'whsec_b')
    """
    environ = _environ(env)
    path = default_config_path() if config_path is None else Path(config_path)
    found = [
        environ.get(API_KEY_ENV, "").strip() or read_config_file(path).get("api_key", ""),
        *_split_keys(environ.get(SIGNING_KEY_ENV, "")),
        environ.get(SIM_ADMIN_KEY_ENV, "").strip(),
    ]
    return tuple(value for value in found if value)


def resolve_gc_tuning(given: bool | None) -> bool:
    """Whether ``Bot.run()`` tunes the garbage collector: the argument, else the environment.

    With no argument, ``IMBOT_GC_TUNING`` set to ``0``, ``false``, ``no`` or ``off`` (any
    case) switches the tuning off; anything else, or nothing, leaves it on.
    """
    if given is not None:
        return given
    return os.environ.get(GC_TUNING_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def resolve_sim_admin_key(
    given: str | None = None, *, env: Mapping[str, str] | None = None
) -> str | None:
    """The simulator's admin key: the argument, else ``IMBOT_SIM_ADMIN_KEY``, else ``None``.

    ``None`` lets the simulator reuse the key stored in its database (or mint one). An empty
    value counts as not given; a blank one is passed on, for the simulator to refuse.

    Example:
        >>> resolve_sim_admin_key(None, env={"IMBOT_SIM_ADMIN_KEY": "ApiKey_dev"})
        'ApiKey_dev'
    """
    return given or _environ(env).get(SIM_ADMIN_KEY_ENV) or None


def resolve_store(given: str | None = None, *, env: Mapping[str, str] | None = None) -> str | None:
    """The bot's storage URL: the argument, else ``IMBOT_STORE``, else ``None`` (memory).

    One URL for both the inbox and the state (``Bot(store=...)``; ``--store`` on the command
    line sets ``IMBOT_STORE``); the ``inbox=`` and ``state=`` arguments still win for their
    part. Empty or blank values count as not given.

    Example:
        >>> resolve_store(env={"IMBOT_STORE": "redis://127.0.0.1:6379/0"})
        'redis://127.0.0.1:6379/0'
    """
    if given is not None and given.strip():
        return given.strip()
    return _environ(env).get(STORE_ENV, "").strip() or None


def child_environment(
    overrides: Mapping[str, str], *, env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment for a child process: this process's (or ``env``), ``overrides`` on top."""
    return {**_environ(env), **overrides}
