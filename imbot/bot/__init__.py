"""Running a bot: the ``Bot`` and everything that happens once it starts.

The ``Bot`` is built in layers: ``Router`` → ``settings`` (``Configurable``) → ``lifecycle``
(start, stop, ``feed``, ``send``) → ``bot`` (construction and serving). Once started, a
``runtime`` holds the client, the ``inbox`` and ``state`` (semantics over
``imbot.storage``), the ``dispatch`` lanes and the open ``asks``, and carries each event to
its handler (``handling``; ``connections`` tells a new connection's first message;
``turns`` gathers a burst for an ``on_turn`` handler). With a shared inbox (Redis) the lanes
are leased across processes by ``cluster``, over ``cluster_lanes``.
Handlers get a ``context`` (layered over ``event_view``, ``actions`` and ``replies``, with
``services``) whose helpers use ``sending`` and ``typing``, split long replies into
``bubbles`` sent with ``pacing``, and read ``history`` from the API. ``server`` is the
webhook endpoint (the only aiohttp.web user), accepting connections through ``listener``
within the ``limits``; ``runner`` the process edge of ``bot.run()``; ``resources`` the
``bot.state`` namespace.
"""

from imbot.bot.bot import Bot
from imbot.bot.context import Context
from imbot.bot.resources import BotState

__all__ = ["Bot", "BotState", "Context"]
