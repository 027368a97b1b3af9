"""``bot.state``: the namespace for resources a lifespan or a startup hook creates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["BotState"]


class BotState:
    """A namespace for resources the lifespan or startup hooks create: ``bot.state.db``.

    Example:
        >>> @asynccontextmanager
        ... async def lifespan(bot):
        ...     async with open_pool() as pool:
        ...         yield {"pool": pool}        # becomes bot.state.pool
        >>> bot = Bot(lifespan=lifespan)
    """

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        """Create the namespace, optionally filled from a mapping."""
        if values:
            self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"bot.state has no {name!r}; set it in the lifespan (yield {{{name!r}: ...}}) "
            f"or a startup hook (bot.state.{name} = ...)"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value

    def __contains__(self, name: str) -> bool:
        return name in self.__dict__

    def update(self, values: Mapping[str, Any]) -> None:
        """Set several attributes from a mapping."""
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"BotState({', '.join(sorted(self.__dict__))})"
