"""Logging setup for ``bot.run()`` and the CLI: readable in a terminal, JSON otherwise.

imbot logs with structlog under the logger name ``imbot`` and never configures logging at
import time: a program that embeds a bot (``await bot.serve()``) keeps its own setup.
``bot.run()`` and the ``imbot`` CLI call ``configure_logging()``:

- ``IMBOT_LOG_FORMAT=json`` (or ``console``) picks the format; by default JSON lines when
  the output is not a terminal, coloured key=value lines when it is;
- ``IMBOT_LOG_LEVEL`` (``DEBUG``, ``INFO``…) picks the level; ``INFO`` by default;
- ``IMBOT_LOG_LOCALS=1`` shows each traceback frame's local variables (off by default: they
  hold request headers, message text and whatever else a handler had in hand).

An argument wins over the environment; ``imbot.config`` reads it (``resolve_log_level``,
``resolve_log_format``, ``resolve_log_locals``), as it reads every setting.

Secrets never reach the output, in either format: ``redact`` (a structlog processor, last
before the renderer) masks API keys, signing keys and ``Authorization`` / ``X-API-Key``
values in every value of the event, nested ones and exception tracebacks included; console
tracebacks are masked as they are rendered, and so are the standard library's log lines.
A secret is recognised by its shape (``ApiKey_…``, ``whsec_…``), by the name it is given
(``api_key=``, ``'X-API-Key': …``, ``Authorization: Bearer …``), or because it was
registered with ``register_secret`` (the client registers its key, ``configure_logging``
the keys found in the environment).

Per-event debug logs on the hot path are emitted only when debug logging was switched on
here, so a production bot pays nothing for them.
"""

from __future__ import annotations

import logging as _stdlib_logging
import re
import sys
from collections.abc import Callable, Mapping
from io import StringIO
from typing import TYPE_CHECKING, Any, Literal, TextIO

from imbot.config import (
    resolve_log_format,
    resolve_log_level,
    resolve_log_locals,
    resolve_log_secrets,
)
from imbot.errors import ConfigError

if TYPE_CHECKING:
    from structlog.typing import EventDict, ExcInfo, FilteringBoundLogger

__all__ = [
    "REDACTED",
    "configure_logging",
    "debug_enabled",
    "get_logger",
    "redact",
    "redact_text",
    "redact_value",
    "register_secret",
    "set_debug",
]

_LEVELS = {
    "CRITICAL": _stdlib_logging.CRITICAL,
    "ERROR": _stdlib_logging.ERROR,
    "WARNING": _stdlib_logging.WARNING,
    "INFO": _stdlib_logging.INFO,
    "DEBUG": _stdlib_logging.DEBUG,
}

REDACTED = "***"
"""What a secret is replaced with in the logs."""

# Values under these names (any case, ``-`` or ``_``) are secrets whatever they look like.
_SECRET_NAMES = frozenset(
    {
        "access_token",
        "admin_key",
        "api_key",
        "apikey",
        "auth_token",
        "authorization",
        "client_secret",
        "cookie",
        "password",
        "proxy_authorization",
        "refresh_token",
        "secret",
        "set_cookie",
        "signing_key",
        "signing_keys",
        "signing_secret",
        "token",
        "x_api_key",
    }
)

# Inkbox API keys and webhook signing secrets, wherever they appear: the prefix stays, so a
# reader still sees which kind of key was there.
_PREFIXED = re.compile(r"(?<![\w-])(ApiKey_|whsec_)[A-Za-z0-9_\-+/=]+")

# ``name: value``, ``name=value``, ``'name': 'value'`` and ``"name": "value"`` for names that
# end in a secret's name (``X-API-Key``, ``INKBOX_API_KEY``), as headers, reprs, JSON and
# query strings write them. ``Bearer``/``Basic`` stays. A value never starts with a
# box-drawing character: Rich's frames put one where a wrapped value would be.
_NAMED = re.compile(
    r"(?i)(?<![\w-])([\w-]*?(?:x-api-key|authorization|api[_-]?key|signing[_-]?(?:key|secret)"
    r"|auth[_-]?token|access[_-]?token|admin[_-]?key|client[_-]?secret|password))(?![\w-])"
    r"(['\"]?\s*[:=]\s*(?:b?['\"])?)((?:bearer|basic|token)\s+)?"
    r"(?!(?:ApiKey_|whsec_)?(?:\.\.\.|\u2026)(?![\w-]))"  # a placeholder, as help text writes
    r"([^\s'\",;&}\])\u2500-\u257f]+)"
)

_MIN_SECRET_LENGTH = 8  # shorter values would mask ordinary words


class _Switch:
    __slots__ = ("debug",)

    def __init__(self) -> None:
        self.debug = False


_switch = _Switch()


class _Secrets:
    """The exact secret values to mask, with one pattern kept in step with them."""

    __slots__ = ("pattern", "values")

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        if value in self.values:
            return
        self.values.add(value)
        # Longest first, so a key that contains another is masked whole.
        ordered = sorted(self.values, key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(v) for v in ordered))


_secrets = _Secrets()


def register_secret(value: str | None) -> None:
    """Mask this exact value in every log line from now on, whatever its shape.

    The client registers its API key when it is built, and ``configure_logging`` the keys
    it finds in the environment; register any other secret a bot holds (a third-party
    token) the same way. Values shorter than 8 characters are ignored: masking them would
    mask ordinary words.

    Example:
        >>> register_secret(os.environ["OPENAI_API_KEY"])
    """
    if value is None:
        return
    value = value.strip()
    if len(value) >= _MIN_SECRET_LENGTH:
        _secrets.add(value)


def _named(match: re.Match[str]) -> str:
    return f"{match[1]}{match[2]}{match[3] or ''}{REDACTED}"


def redact_text(text: str) -> str:
    """Mask every secret in a piece of text: registered values, key shapes, named values.

    Example:
        >>> redact_text("{'X-API-Key': 'ApiKey_abc123'}")
        "{'X-API-Key': '***'}"
    """
    pattern = _secrets.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = _PREFIXED.sub(lambda m: m[1] + REDACTED, text)
    return _NAMED.sub(_named, text)


def _is_secret_name(name: object) -> bool:
    return isinstance(name, str) and name.strip().lower().replace("-", "_") in _SECRET_NAMES


def redact_value(value: Any) -> Any:
    """Return ``value`` with its secrets masked: text, and dicts, lists and tuples within.

    A value held under a secret's name (``api_key``, ``Authorization``…) is masked whole.
    Any other object is kept as it is unless its ``repr`` shows a secret: then the masked
    ``repr`` stands in for it, which is what the renderers would have printed.

    Example:
        >>> redact_value({"headers": {"X-API-Key": "k-123456789"}, "n": 1})
        {'headers': {'X-API-Key': '***'}, 'n': 1}
    """
    return _redact(value, 0)


def _redact(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth > 20:  # a structure this deep is not something a log line should walk
        return redact_text(repr(value))
    if isinstance(value, Mapping):
        return {
            k: REDACTED if _is_secret_name(k) and _present(v) else _redact(v, depth + 1)
            for k, v in value.items()
        }
    if type(value) is list:
        return [_redact(v, depth + 1) for v in value]
    if type(value) is tuple:
        return tuple(_redact(v, depth + 1) for v in value)
    text = repr(value)
    masked = redact_text(text)
    return value if masked == text else masked


def _present(value: object) -> bool:
    return value is not None and not isinstance(value, bool) and value != ""


def redact(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """A structlog processor that masks secrets in every value of the event.

    ``configure_logging`` installs it in both formats, after the JSON exception renderer
    (so rendered tracebacks are masked too) and before the renderer. Install it in your
    own structlog chain the same way when a program configures logging itself.
    """
    for key, value in event_dict.items():
        if key == "exc_info" or isinstance(value, bool | int | float) or value is None:
            continue  # exc_info: the renderer masks the traceback it renders from it
        if _is_secret_name(key) and _present(value):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(value)
    return event_dict


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _RedactedTracebacks:
    """Wraps a console exception formatter so that the traceback it renders is masked."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Callable[[TextIO, ExcInfo], None]) -> None:
        self._inner = inner

    def __call__(self, sio: TextIO, exc_info: ExcInfo) -> None:
        buffer = StringIO()
        self._inner(buffer, exc_info)
        rendered = redact_text(buffer.getvalue())
        plain = _ANSI.sub("", rendered)
        if redact_text(plain) != plain:
            # A colour code split a secret, so the coloured text hid it: print it plain.
            rendered = redact_text(plain)
        sio.write(rendered)


class _RedactingFormatter(_stdlib_logging.Formatter):
    """The standard library's lines (aiohttp, asyncio), masked like structlog's."""

    def format(self, record: _stdlib_logging.LogRecord) -> str:
        return redact_text(super().format(record))


def debug_enabled() -> bool:
    """Whether imbot's per-event debug logs are on (cheap enough for the hot path)."""
    return _switch.debug


def set_debug(enabled: bool) -> None:
    """Switch imbot's per-event debug logs on or off without reconfiguring structlog.

    Example:
        >>> set_debug(True)   # e.g. after configuring structlog yourself at DEBUG
    """
    _switch.debug = bool(enabled)


class _LazyLogger:
    """structlog's logger for ``name``, with structlog imported at the first log call.

    Importing structlog (which imports asyncio and its dev renderers) is a quarter of
    ``from imbot import Bot``; a bot that has not started logs nothing, so it need not pay it.
    """

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        logger = self._logger
        if logger is None:
            import structlog

            # structlog's own lazy proxy: configuration done later still applies.
            logger = self._logger = structlog.get_logger(self._name)
        return getattr(logger, attr)

    def __repr__(self) -> str:
        return f"<imbot logger {self._name!r}>"


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger for an imbot module, importing structlog only when it first logs.

    Example:
        >>> _log = get_logger("imbot.bot.dispatch")   # at module level, costs nothing
        >>> _log.info("started", lanes=3)
    """
    # Typed as what it stands for: every attribute is structlog's logger's.
    proxy: FilteringBoundLogger = _LazyLogger(name)
    return proxy


def _level(given: str | int | None) -> int:
    value = resolve_log_level(given)
    if isinstance(value, int):
        return value
    try:
        return _LEVELS[value.strip().upper()]
    except KeyError:
        raise ConfigError(f"unknown log level {value!r}; use one of {', '.join(_LEVELS)}") from None


def configure_logging(
    level: str | int | None = None,
    *,
    fmt: Literal["json", "console"] | None = None,
    stream: TextIO | None = None,
    show_locals: bool | None = None,
) -> None:
    """Configure structlog (and the standard library's root logger) for a bot process.

    Example:
        >>> configure_logging()                 # what bot.run() does
        >>> configure_logging("DEBUG", fmt="json")

    Args:
        level: the minimum level; ``IMBOT_LOG_LEVEL`` or ``INFO`` when omitted.
        fmt: ``"json"`` or ``"console"``; ``IMBOT_LOG_FORMAT``, else JSON unless ``stream``
            is a terminal.
        stream: where logs go; ``sys.stderr`` when omitted.
        show_locals: render each traceback frame's local variables, for debugging on your
            own machine; ``IMBOT_LOG_LOCALS``, else off. Secrets in them are still masked,
            but message text and everything else a frame held is printed.

    Raises:
        ConfigError: an unknown level or format.
    """
    import structlog

    out = sys.stderr if stream is None else stream
    minimum = _level(level)
    chosen = resolve_log_format(fmt)
    if chosen is None:
        chosen = "console" if _isatty(out) else "json"
    if chosen not in ("json", "console"):
        raise ConfigError(f"unknown log format {chosen!r}; use 'json' or 'console'")
    locals_shown = resolve_log_locals(show_locals)
    for secret in resolve_log_secrets():
        register_secret(secret)
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if chosen == "json":
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=locals_shown)
        processors += [
            structlog.processors.ExceptionRenderer(transformer),
            redact,
            structlog.processors.JSONRenderer(),
        ]
    else:
        colors = _isatty(out)
        processors += [
            redact,
            structlog.dev.ConsoleRenderer(
                colors=colors,
                exception_formatter=_RedactedTracebacks(_console_tracebacks(colors, locals_shown)),
            ),
        ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(minimum),
        # One write per line (print() writes the line, then its newline): the workers of
        # `imbot run --workers` share one stderr, and their lines must not interleave.
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    root = _stdlib_logging.getLogger()
    if not root.handlers:
        handler = _stdlib_logging.StreamHandler(out)
        handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(max(minimum, _stdlib_logging.WARNING))
    set_debug(minimum <= _stdlib_logging.DEBUG)


def _console_tracebacks(colors: bool, show_locals: bool) -> Callable[[TextIO, ExcInfo], None]:
    """Rich's tracebacks in a terminal when Rich is installed; plain ones otherwise.

    Chosen here rather than left to structlog, whose default shows local variables (Rich,
    better-exceptions). Plain text also never wraps a long line, which could cut a secret
    in two where the mask cannot see it.
    """
    import structlog

    if colors or show_locals:
        try:
            import rich  # noqa: F401
        except ImportError:
            pass
        else:
            return structlog.dev.RichTracebackFormatter(
                show_locals=show_locals, color_system="truecolor" if colors else None
            )
    return structlog.dev.plain_traceback


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
