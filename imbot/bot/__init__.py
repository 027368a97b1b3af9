"""Running a bot: the ``Bot`` composes the client, inbox, state, dispatcher and server.

``bot`` composes and runs the lifecycle, ``context`` is the handler's facade, ``dispatch``
the per-conversation lanes, ``inbox`` and ``state`` the semantics over ``imbot.storage``,
``server`` the webhook endpoint (the only aiohttp.web user), ``runner`` the process edge.
"""

from imbot.bot.bot import Bot, BotState
from imbot.bot.context import Context

__all__ = ["Bot", "BotState", "Context"]
