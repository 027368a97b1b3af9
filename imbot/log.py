"""Logging setup for ``bot.run()`` and the CLI: readable in a terminal, JSON otherwise.

imbot logs with structlog under the logger name ``imbot`` and never configures logging at
import time: a program that embeds a bot (``await bot.serve()``) keeps its own setup.
``bot.run()`` and the ``imbot`` CLI call ``configure_logging()``:

- ``IMBOT_LOG_FORMAT=json`` (or ``console``) picks the format; by default JSON lines when
  the output is not a terminal, coloured key=value lines when it is;
- ``IMBOT_LOG_LEVEL`` (``DEBUG``, ``INFO``…) picks the level; ``INFO`` by default.

An argument wins over the environment; ``imbot.config`` reads it (``resolve_log_level``,
``resolve_log_format``), as it reads every setting.

Per-event debug logs on the hot path are emitted only when debug logging was switched on
here, so a production bot pays nothing for them.
"""

from __future__ import annotations

import logging as _stdlib_logging
import sys
from typing import TYPE_CHECKING, Any, Literal, TextIO

from imbot.config import resolve_log_format, resolve_log_level
from imbot.errors import ConfigError

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = ["configure_logging", "debug_enabled", "get_logger", "set_debug"]

_LEVELS = {
    "CRITICAL": _stdlib_logging.CRITICAL,
    "ERROR": _stdlib_logging.ERROR,
    "WARNING": _stdlib_logging.WARNING,
    "INFO": _stdlib_logging.INFO,
    "DEBUG": _stdlib_logging.DEBUG,
}


class _Switch:
    __slots__ = ("debug",)

    def __init__(self) -> None:
        self.debug = False


_switch = _Switch()


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
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if chosen == "json":
        processors += [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=_isatty(out)))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(minimum),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    root = _stdlib_logging.getLogger()
    if not root.handlers:
        handler = _stdlib_logging.StreamHandler(out)
        handler.setFormatter(_stdlib_logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(max(minimum, _stdlib_logging.WARNING))
    set_debug(minimum <= _stdlib_logging.DEBUG)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
