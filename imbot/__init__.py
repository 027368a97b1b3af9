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

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from imbot._version import __version__

# name -> module that defines it; loaded on first attribute access (PEP 562).
_EXPORTS = {
    "AnyEvent": "imbot.events",
    "AskTimeout": "imbot.errors",
    "Assignment": "imbot.models",
    "BadRequest": "imbot.errors",
    "BodyTooLarge": "imbot.errors",
    "Bot": "imbot.bot.bot",
    "BotState": "imbot.bot.bot",
    "CommandInfo": "imbot.routing.commands",
    "ConfigError": "imbot.errors",
    "Conflict": "imbot.errors",
    "ConnectError": "imbot.errors",
    "ContactRule": "imbot.models",
    "Contains": "imbot.routing.filters",
    "Context": "imbot.bot.context",
    "Conversation": "imbot.models",
    "ConversationInactive": "imbot.errors",
    "ConversationSummary": "imbot.models",
    "DeliveryFailed": "imbot.events",
    "DeliveryStatus": "imbot.models",
    "Direction": "imbot.models",
    "DuplicateContactRule": "imbot.errors",
    "Filter": "imbot.routing.filters",
    "FilterMode": "imbot.models",
    "Forbidden": "imbot.errors",
    "HasMedia": "imbot.routing.filters",
    "IdempotencyKeyReused": "imbot.errors",
    "Identity": "imbot.models",
    "ImbotError": "imbot.errors",
    "InkboxClient": "imbot.client.client",
    "InkboxError": "imbot.errors",
    "InvalidRequest": "imbot.errors",
    "InvalidSignature": "imbot.errors",
    "MalformedEvent": "imbot.errors",
    "MarkReadResult": "imbot.models",
    "MediaItem": "imbot.models",
    "MediaTooLarge": "imbot.errors",
    "MediaUpload": "imbot.models",
    "Message": "imbot.models",
    "MessageDelivered": "imbot.events",
    "MessageReceived": "imbot.events",
    "MessageSent": "imbot.events",
    "NotConnected": "imbot.errors",
    "NotFound": "imbot.errors",
    "PayloadTooLarge": "imbot.errors",
    "RateLimited": "imbot.errors",
    "Reaction": "imbot.models",
    "ReactionReceived": "imbot.events",
    "RecipientBlocked": "imbot.errors",
    "RecipientNotE164": "imbot.errors",
    "Regex": "imbot.routing.filters",
    "Router": "imbot.routing.router",
    "SendStyle": "imbot.models",
    "Sender": "imbot.routing.filters",
    "ServerError": "imbot.errors",
    "Service": "imbot.models",
    "SetupError": "imbot.errors",
    "SkipHandler": "imbot.errors",
    "Tapback": "imbot.routing.filters",
    "TapbackKind": "imbot.models",
    "Text": "imbot.routing.filters",
    "TransportError": "imbot.errors",
    "TriageNumber": "imbot.models",
    "Unauthorized": "imbot.errors",
    "UnknownEvent": "imbot.events",
    "Unprocessable": "imbot.errors",
    "WebhookError": "imbot.errors",
    "as_filter": "imbot.routing.filters",
    "configure_logging": "imbot.log",
    "parse_event": "imbot.events",
}

__all__ = [
    "AnyEvent",
    "AskTimeout",
    "Assignment",
    "BadRequest",
    "BodyTooLarge",
    "Bot",
    "BotState",
    "CommandInfo",
    "ConfigError",
    "Conflict",
    "ConnectError",
    "ContactRule",
    "Contains",
    "Context",
    "Conversation",
    "ConversationInactive",
    "ConversationSummary",
    "DeliveryFailed",
    "DeliveryStatus",
    "Direction",
    "DuplicateContactRule",
    "Filter",
    "FilterMode",
    "Forbidden",
    "HasMedia",
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
    "Tapback",
    "TapbackKind",
    "Text",
    "TransportError",
    "TriageNumber",
    "Unauthorized",
    "UnknownEvent",
    "Unprocessable",
    "WebhookError",
    "__version__",
    "as_filter",
    "configure_logging",
    "parse_event",
]

if _typing.TYPE_CHECKING:
    from imbot.bot.bot import Bot as Bot
    from imbot.bot.bot import BotState as BotState
    from imbot.bot.context import Context as Context
    from imbot.client.client import InkboxClient as InkboxClient
    from imbot.errors import AskTimeout as AskTimeout
    from imbot.errors import BadRequest as BadRequest
    from imbot.errors import BodyTooLarge as BodyTooLarge
    from imbot.errors import ConfigError as ConfigError
    from imbot.errors import Conflict as Conflict
    from imbot.errors import ConnectError as ConnectError
    from imbot.errors import ConversationInactive as ConversationInactive
    from imbot.errors import DuplicateContactRule as DuplicateContactRule
    from imbot.errors import Forbidden as Forbidden
    from imbot.errors import IdempotencyKeyReused as IdempotencyKeyReused
    from imbot.errors import ImbotError as ImbotError
    from imbot.errors import InkboxError as InkboxError
    from imbot.errors import InvalidRequest as InvalidRequest
    from imbot.errors import InvalidSignature as InvalidSignature
    from imbot.errors import MalformedEvent as MalformedEvent
    from imbot.errors import MediaTooLarge as MediaTooLarge
    from imbot.errors import NotConnected as NotConnected
    from imbot.errors import NotFound as NotFound
    from imbot.errors import PayloadTooLarge as PayloadTooLarge
    from imbot.errors import RateLimited as RateLimited
    from imbot.errors import RecipientBlocked as RecipientBlocked
    from imbot.errors import RecipientNotE164 as RecipientNotE164
    from imbot.errors import ServerError as ServerError
    from imbot.errors import SetupError as SetupError
    from imbot.errors import SkipHandler as SkipHandler
    from imbot.errors import TransportError as TransportError
    from imbot.errors import Unauthorized as Unauthorized
    from imbot.errors import Unprocessable as Unprocessable
    from imbot.errors import WebhookError as WebhookError
    from imbot.events import AnyEvent as AnyEvent
    from imbot.events import DeliveryFailed as DeliveryFailed
    from imbot.events import MessageDelivered as MessageDelivered
    from imbot.events import MessageReceived as MessageReceived
    from imbot.events import MessageSent as MessageSent
    from imbot.events import ReactionReceived as ReactionReceived
    from imbot.events import UnknownEvent as UnknownEvent
    from imbot.events import parse_event as parse_event
    from imbot.log import configure_logging as configure_logging
    from imbot.models import Assignment as Assignment
    from imbot.models import ContactRule as ContactRule
    from imbot.models import Conversation as Conversation
    from imbot.models import ConversationSummary as ConversationSummary
    from imbot.models import DeliveryStatus as DeliveryStatus
    from imbot.models import Direction as Direction
    from imbot.models import FilterMode as FilterMode
    from imbot.models import Identity as Identity
    from imbot.models import MarkReadResult as MarkReadResult
    from imbot.models import MediaItem as MediaItem
    from imbot.models import MediaUpload as MediaUpload
    from imbot.models import Message as Message
    from imbot.models import Reaction as Reaction
    from imbot.models import SendStyle as SendStyle
    from imbot.models import Service as Service
    from imbot.models import TapbackKind as TapbackKind
    from imbot.models import TriageNumber as TriageNumber
    from imbot.routing.commands import CommandInfo as CommandInfo
    from imbot.routing.filters import Contains as Contains
    from imbot.routing.filters import Filter as Filter
    from imbot.routing.filters import HasMedia as HasMedia
    from imbot.routing.filters import Regex as Regex
    from imbot.routing.filters import Sender as Sender
    from imbot.routing.filters import Tapback as Tapback
    from imbot.routing.filters import Text as Text
    from imbot.routing.filters import as_filter as as_filter
    from imbot.routing.router import Router as Router


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'imbot' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
