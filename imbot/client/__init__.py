"""The async Inkbox API client: ``InkboxClient``, composed from one group of endpoints per area.

``_request`` holds settings, the retry loop and error mapping; ``_paging`` walks the pages of a
list without repeating or skipping a row; ``messaging``,
``conversations``, ``media``, ``rules`` and ``provisioning`` the endpoints; ``transport`` the
seam under it all (aiohttp by default, ``MockTransport`` for faults the simulator cannot
produce); ``backoff`` the retry policy. ``client`` composes them into ``InkboxClient``.
"""

from imbot.client.client import InkboxClient

__all__ = ["InkboxClient"]
