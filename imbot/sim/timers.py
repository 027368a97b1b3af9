"""A wake-up queue: items become due at a wall-clock time, one task takes them in batches."""

from __future__ import annotations

import heapq
import itertools
import math
import time
from typing import Generic, TypeVar

import anyio

__all__ = ["DueQueue"]

T = TypeVar("T")


class DueQueue(Generic[T]):
    """Items ordered by due time; ``take()`` waits for the next batch of due items.

    One heap and one waiting task replace a sleeping task per item, so a thousand
    pending deliveries cost a thousand heap entries, not a thousand tasks. Due times
    are Unix seconds because some of them are stored and must survive a restart.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()
        self._wake = anyio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, item: T) -> None:
        """Schedule ``item`` for Unix time ``due`` (now or earlier means at once)."""
        earliest = self._heap[0][0] if self._heap else math.inf
        heapq.heappush(self._heap, (due, next(self._order), item))
        if due < earliest:
            self._wake.set()

    async def take(self) -> list[T]:
        """Wait until at least one item is due; return every due item, earliest first."""
        while True:
            now = time.time()
            if self._heap and self._heap[0][0] <= now:
                batch: list[T] = []
                while self._heap and self._heap[0][0] <= now:
                    batch.append(heapq.heappop(self._heap)[2])
                return batch
            self._wake = anyio.Event()
            delay = self._heap[0][0] - now if self._heap else math.inf
            with anyio.move_on_after(delay):
                await self._wake.wait()
