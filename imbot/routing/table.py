"""The route table: a router tree compiled, once, into what to try for each event. Pure.

For one event:

1. **event type**: only handlers for that type are candidates (``on_event`` globs too);
2. **commands** (``imessage.received`` only): the first word names a command;
3. **filters**: the candidates in registration order; the first whose filters pass runs
   (``imbot.routing.invoke`` evaluates them).

Outbound echoes never reach message handlers or commands. ``on_connect`` handlers are no
candidates: they are in ``connect``, tried before all of these for a new connection's first
message (see ``imbot.routing.connect``). An ``on_turn`` handler is a candidate like an
``on_message`` one; when it is chosen the bot gathers the turn (``imbot.routing.turns``).
Building the table also composes each handler's
middleware chain and its error-handler maps, so nothing is built per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from imbot.errors import SetupError
from imbot.events import EVENT_TYPES, MessageReceived
from imbot.routing.commands import parse_command
from imbot.routing.handlers import DECORATOR_FOR_EVENT, HandlerSpec
from imbot.routing.middleware import compose

if TYPE_CHECKING:
    from imbot.events import AnyEvent
    from imbot.routing.router import Router
    from imbot.types import ErrorHandler, Hook, Middleware

__all__ = ["CommandMatch", "RouteTable", "unhandled_hint", "usage_prefix"]

CommandMatch = tuple[HandlerSpec, str, str]
"""A command that matched: its handler, the name typed, and the text after it."""


class RouteTable:
    """The routers' handlers compiled for fast matching; built once when the bot starts.

    Attributes:
        commands: handler by command name and alias.
        connect: the ``on_connect`` handlers, in registration order.
        startup: startup hooks, in registration order.
        shutdown: shutdown hooks, in reverse registration order.
        turns: the ``on_turn`` handlers, in registration order (also among the candidates
            for incoming messages); empty for a bot without turns.
    """

    __slots__ = (
        "_by_type",
        "_events",
        "_inbound",
        "_outbound",
        "_prefixes",
        "_unknown",
        "_usage_prefix",
        "commands",
        "connect",
        "shutdown",
        "startup",
        "turns",
    )

    def __init__(self, root: Router, *, prefixes: Sequence[str]) -> None:
        """Compile a router tree.

        Args:
            root: the bot (or top router).
            prefixes: accepted command prefixes, e.g. ``("/", "")``.

        Raises:
            SetupError: two handlers claim the same command name.
        """
        if isinstance(prefixes, str) or not prefixes:
            raise SetupError('command_prefixes must be a non-empty sequence, e.g. ("/", "")')
        ordered = sorted(dict.fromkeys(prefixes), key=len, reverse=True)
        self._prefixes = tuple(ordered)
        self._usage_prefix = usage_prefix(ordered)
        specs: list[HandlerSpec] = []
        self.startup: list[Hook] = []
        shutdown: list[Hook] = []
        self._compile(root, [], (), specs, shutdown)
        self.shutdown = list(reversed(shutdown))
        self.commands: dict[str, HandlerSpec] = {}
        for spec in specs:
            if spec.command_name is None:
                continue
            for name in (spec.command_name, *spec.aliases):
                other = self.commands.get(name)
                if other is not None:
                    raise SetupError(
                        f"command {name!r} is registered twice: by {other.name} and {spec.name}"
                    )
                self.commands[name] = spec
        plain = [s for s in specs if s.command_name is None and s.kind != "connect"]
        self.connect = tuple(s for s in specs if s.kind == "connect")
        self.turns = tuple(s for s in plain if s.kind == "turn")
        self._by_type = {t: tuple(s for s in plain if s.serves(t)) for t in EVENT_TYPES}
        received = self._by_type["imessage.received"]
        self._inbound = received
        self._outbound = tuple(s for s in received if s.kind == "event")
        self._events = tuple(s for s in plain if s.kind == "event")
        self._unknown: dict[str, tuple[HandlerSpec, ...]] = {}

    def _compile(
        self,
        router: Router,
        middlewares: list[Middleware],
        errors: tuple[dict[type[BaseException], ErrorHandler], ...],
        specs: list[HandlerSpec],
        shutdown: list[Hook],
    ) -> None:
        registrations = router.registrations
        chain = [*middlewares, *registrations.middlewares]
        handlers = (registrations.error_handlers, *errors)
        self.startup.extend(registrations.startup)
        shutdown.extend(registrations.shutdown)
        for entry in registrations.entries:
            if isinstance(entry, HandlerSpec):
                entry.call = compose(chain, entry.endpoint)
                entry.error_handlers = handlers
                specs.append(entry)
            else:
                self._compile(entry, chain, handlers, specs, shutdown)

    def usage(self, spec: HandlerSpec) -> str:
        """The usage line of a command handler, with the prefix users should type."""
        assert spec.command is not None and spec.command_name is not None
        return spec.command.usage(spec.command_name, self._usage_prefix)

    @property
    def usage_prefix(self) -> str:
        """The prefix shown in usage lines and help: ``""`` when prefixes are optional."""
        return self._usage_prefix

    def candidates(self, event_type: str) -> tuple[HandlerSpec, ...]:
        """The non-command handlers that serve an event type, in registration order."""
        found = self._by_type.get(event_type)
        if found is None:
            found = self._unknown.get(event_type)
            if found is None:
                found = tuple(s for s in self._events if s.serves(event_type))
                if len(self._unknown) < 256:  # bounded: event types come from the network
                    self._unknown[event_type] = found
        return found

    def match(self, event: AnyEvent) -> tuple[CommandMatch | None, tuple[HandlerSpec, ...]]:
        """What to try for an event: the command it names (if any), then the candidates.

        Args:
            event: the event being routed.

        Returns:
            The matching command (handler, name, rest of the text) or ``None``, and the
            other handlers to try in order.
        """
        if not isinstance(event, MessageReceived):
            return None, self.candidates(event.event_type)
        message = event.data.message
        if message.direction == "outbound":
            # An echo of the bot's own send: never a trigger for message handlers.
            return None, self._outbound
        if self.commands:
            parsed = parse_command(message.content, self._prefixes)
            if parsed is not None:
                spec = self.commands.get(parsed[0])
                if spec is not None:
                    return (spec, parsed[0], parsed[1]), self._inbound
        return None, self._inbound


def usage_prefix(prefixes: Sequence[str]) -> str:
    """The prefix shown in usage lines and help: ``""`` when optional, else the shortest.

    Ties go to the first given, so ``("/", "!")`` shows ``/`` in help and in usage replies.
    """
    return "" if "" in prefixes else min(prefixes, key=len)


def unhandled_hint(event_type: str) -> str:
    """The decorator that would have handled an event type, for the unhandled-event log."""
    return DECORATOR_FOR_EVENT.get(event_type, f"@bot.on_event({event_type!r})")
