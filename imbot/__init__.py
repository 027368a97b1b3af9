"""imbot: write iMessage bots and AI agents in a few lines, on the Inkbox iMessage API.

Example:
    >>> from imbot import Bot
    >>> bot = Bot()
    >>> @bot.on_message()
    ... async def echo(ctx):
    ...     await ctx.reply(ctx.text)
    >>> bot.run()

Names are imported on first use, so ``import imbot`` stays fast; ``imbot.testing`` and
``imbot.sim`` are the other documented entry points.
"""

# Every export is named once for each of three readers, and tests/unit/test_public_api.py
# checks that the three agree:
#   __all__          the public names: `from imbot import *`, linters, the API reference;
#   TYPE_CHECKING    where each name comes from, for type checkers and the docs;
#   _LAZY            the same, for the run time: a module is imported on first use of one of
#                    its names (PEP 562), so `import imbot` loads neither aiohttp nor pydantic.
# `TYPE_CHECKING = False` rather than `typing.TYPE_CHECKING` spares `import imbot` the import of
# `typing`; type checkers treat the name as true. No imbot module imports this facade: each
# imports from the module that defines a name (the version from imbot._version).

from __future__ import annotations

import importlib as _importlib

from imbot._version import __version__

__all__ = [
    "AnyEvent",
    "AskTimeout",
    "Assignment",
    "BadRequest",
    "BodyTooLarge",
    "Bot",
    "BotState",
    "Bubbles",
    "CommandInfo",
    "ConfigError",
    "Conflict",
    "ConnectError",
    "ContactRule",
    "Contains",
    "Context",
    "Conversation",
    "ConversationInactive",
    "ConversationReleased",
    "ConversationSummary",
    "DeadLetter",
    "DeliveryFailed",
    "DeliveryStatus",
    "Direction",
    "DuplicateContactRule",
    "EventDeadLettered",
    "Filter",
    "FilterMode",
    "Forbidden",
    "HandlerRetry",
    "HandlerTimeout",
    "HasMedia",
    "HistoryEntry",
    "IdempotencyKeyReused",
    "Identity",
    "ImbotError",
    "InkboxClient",
    "InkboxError",
    "InvalidRequest",
    "InvalidSignature",
    "MalformedEvent",
    "MarkReadResult",
    "MediaItem",
    "MediaTooLarge",
    "MediaUpload",
    "Message",
    "MessageDelivered",
    "MessageReceived",
    "MessageSent",
    "NotConnected",
    "NotFound",
    "NotMessagedYet",
    "Pacing",
    "PayloadTooLarge",
    "RateLimited",
    "Reaction",
    "ReactionReceived",
    "RecipientBlocked",
    "RecipientNotE164",
    "Regex",
    "Router",
    "SendStyle",
    "Sender",
    "ServerError",
    "Service",
    "SetupError",
    "SkipHandler",
    "StateConflict",
    "StoreUnavailable",
    "Tapback",
    "TapbackKind",
    "Text",
    "TransportError",
    "TriageNumber",
    "Turn",
    "Unauthorized",
    "UnknownEvent",
    "Unprocessable",
    "WebhookError",
    "__version__",
    "as_filter",
    "configure_logging",
    "parse_event",
]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imbot.bot.bot import Bot
    from imbot.bot.bubbles import Bubbles
    from imbot.bot.context import Context
    from imbot.bot.history import HistoryEntry
    from imbot.bot.pacing import Pacing
    from imbot.bot.resources import BotState
    from imbot.bot.retry import HandlerRetry
    from imbot.client.client import InkboxClient
    from imbot.errors import (
        AskTimeout,
        BadRequest,
        BodyTooLarge,
        ConfigError,
        Conflict,
        ConnectError,
        ConversationInactive,
        ConversationReleased,
        DuplicateContactRule,
        EventDeadLettered,
        Forbidden,
        HandlerTimeout,
        IdempotencyKeyReused,
        ImbotError,
        InkboxError,
        InvalidRequest,
        InvalidSignature,
        MalformedEvent,
        MediaTooLarge,
        NotConnected,
        NotFound,
        NotMessagedYet,
        PayloadTooLarge,
        RateLimited,
        RecipientBlocked,
        RecipientNotE164,
        ServerError,
        SetupError,
        SkipHandler,
        StateConflict,
        StoreUnavailable,
        TransportError,
        Unauthorized,
        Unprocessable,
        WebhookError,
    )
    from imbot.events import (
        AnyEvent,
        DeliveryFailed,
        MessageDelivered,
        MessageReceived,
        MessageSent,
        ReactionReceived,
        UnknownEvent,
        parse_event,
    )
    from imbot.log import configure_logging
    from imbot.models import (
        Assignment,
        ContactRule,
        Conversation,
        ConversationSummary,
        DeliveryStatus,
        Direction,
        FilterMode,
        Identity,
        MarkReadResult,
        MediaItem,
        MediaUpload,
        Message,
        Reaction,
        SendStyle,
        Service,
        TapbackKind,
        TriageNumber,
    )
    from imbot.routing.commands import CommandInfo
    from imbot.routing.filters import (
        Contains,
        Filter,
        HasMedia,
        Regex,
        Sender,
        Tapback,
        Text,
        as_filter,
    )
    from imbot.routing.router import Router
    from imbot.routing.turns import Turn
    from imbot.storage.base import DeadLetter
del TYPE_CHECKING

_LAZY: dict[str, tuple[str, ...]] = {
    "imbot.bot.bot": ("Bot",),
    "imbot.bot.bubbles": ("Bubbles",),
    "imbot.bot.context": ("Context",),
    "imbot.bot.history": ("HistoryEntry",),
    "imbot.bot.pacing": ("Pacing",),
    "imbot.bot.resources": ("BotState",),
    "imbot.bot.retry": ("HandlerRetry",),
    "imbot.client.client": ("InkboxClient",),
    "imbot.errors": (
        "AskTimeout",
        "BadRequest",
        "BodyTooLarge",
        "ConfigError",
        "Conflict",
        "ConnectError",
        "ConversationInactive",
        "ConversationReleased",
        "DuplicateContactRule",
        "EventDeadLettered",
        "Forbidden",
        "HandlerTimeout",
        "IdempotencyKeyReused",
        "ImbotError",
        "InkboxError",
        "InvalidRequest",
        "InvalidSignature",
        "MalformedEvent",
        "MediaTooLarge",
        "NotConnected",
        "NotFound",
        "NotMessagedYet",
        "PayloadTooLarge",
        "RateLimited",
        "RecipientBlocked",
        "RecipientNotE164",
        "ServerError",
        "SetupError",
        "SkipHandler",
        "StateConflict",
        "StoreUnavailable",
        "TransportError",
        "Unauthorized",
        "Unprocessable",
        "WebhookError",
    ),
    "imbot.events": (
        "AnyEvent",
        "DeliveryFailed",
        "MessageDelivered",
        "MessageReceived",
        "MessageSent",
        "ReactionReceived",
        "UnknownEvent",
        "parse_event",
    ),
    "imbot.log": ("configure_logging",),
    "imbot.models": (
        "Assignment",
        "ContactRule",
        "Conversation",
        "ConversationSummary",
        "DeliveryStatus",
        "Direction",
        "FilterMode",
        "Identity",
        "MarkReadResult",
        "MediaItem",
        "MediaUpload",
        "Message",
        "Reaction",
        "SendStyle",
        "Service",
        "TapbackKind",
        "TriageNumber",
    ),
    "imbot.routing.commands": ("CommandInfo",),
    "imbot.routing.filters": (
        "Contains",
        "Filter",
        "HasMedia",
        "Regex",
        "Sender",
        "Tapback",
        "Text",
        "as_filter",
    ),
    "imbot.routing.router": ("Router",),
    "imbot.routing.turns": ("Turn",),
    "imbot.storage.base": ("DeadLetter",),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'imbot' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
