"""imbot's benchmark suite: framework overhead against a hand-written aiohttp floor.

Run ``python -m benchmarks`` from the repository root (``--quick`` for a one-minute run,
``--json PATH`` to keep the figures). See ``benchmarks/README.md`` and ``docs/benchmarks.md``.
"""

from __future__ import annotations
