"""imbot: write iMessage bots and AI agents in a few lines, on the Inkbox iMessage API."""

from __future__ import annotations

__version__ = "0.1.0"
