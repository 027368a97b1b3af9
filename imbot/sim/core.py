"""The simulator's shared state and its one way to change it: ``core.tx()``.

A change happens inside ``with core.tx() as fx:``. The block writes rows and notes its
side effects on ``fx`` (webhooks to send, lifecycle steps to schedule, phone screens
to refresh). Only when the transaction commits are the effects released; a refused
request raises before committing, so it leaves neither rows nor effects behind.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imbot.sim.chaos_plan import ChaosControl
from imbot.sim.config import Clock, SimConfig
from imbot.sim.hub import PhoneHub
from imbot.sim.store import Row, Store

if TYPE_CHECKING:
    from imbot.sim.delivery import Delivery, OutboxItem
    from imbot.sim.lifecycle import Job, Lifecycle
    from imbot.sim.timeline import Timeline

__all__ = ["Core", "Effects", "new_id"]


def new_id() -> str:
    """A fresh UUID string."""
    return str(uuid.uuid4())


@dataclass
class Effects:
    """What a committed change must set in motion.

    Attributes:
        outbox: webhook deliveries to hand to the delivery workers.
        jobs: lifecycle steps to schedule, as ``(due_unix_seconds, job)``.
        messages: ids of messages whose phone timeline item changed.
        phone_items: ids of new router/phone-only timeline items.
        typing: ``(conversation_id, typing)`` changes to show on the phone.
        threads: conversation ids whose phone thread changed (connect, release).
    """

    outbox: list[OutboxItem] = field(default_factory=list)
    jobs: list[tuple[float, Job]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    phone_items: list[str] = field(default_factory=list)
    typing: list[tuple[str, bool]] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)


class Core:
    """State shared by the rules, the workers and the HTTP layer.

    Args:
        config: the run's settings.
        store: the open database.
    """

    delivery: Delivery
    lifecycle: Lifecycle
    timeline: Timeline

    def __init__(self, config: SimConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.clock = Clock()
        self.hub = PhoneHub()
        self.chaos = ChaosControl(config.chaos)
        self.base_url = ""
        # Typing bubbles are ephemeral (60 s), so they live in memory only:
        # conversation id -> Unix time the bubble disappears.
        self.typing: dict[str, float] = {}
        # Read on every send and every lifecycle step, written rarely: kept in memory.
        # Every write to `identities` / `phones` calls identity_changed / phone_changed,
        # and a rolled-back transaction clears both (it may have cached what it wrote).
        self._identities: dict[str, Row] = {}
        self._phones: dict[str, Row | None] = {}
        store.rollback_listeners.append(self._forget_cached)
        self.organization_id = self._setting_once(
            "organization_id", lambda: "org_sim_" + secrets.token_hex(6)
        )
        self.admin_key = self._admin_key(config.admin_key)

    def _setting_once(self, key: str, make: Callable[[], str]) -> str:
        value = self.store.setting(key)
        if value is None:
            value = make()
            self.store.set_setting(key, value)
        return value

    def _admin_key(self, explicit: str | None) -> str:
        stored = self.store.one("SELECT key FROM api_keys WHERE identity_id IS NULL")
        if explicit is not None:
            if stored is not None and stored["key"] != explicit:
                self.store.run("DELETE FROM api_keys WHERE identity_id IS NULL")
                stored = None
            if stored is None:
                self._insert_key(explicit, None, "admin")
            return explicit
        if stored is not None:
            return str(stored["key"])
        key = "ApiKey_" + secrets.token_urlsafe(24)
        self._insert_key(key, None, "admin")
        return key

    def _insert_key(self, key: str, identity_id: str | None, label: str) -> None:
        self.store.insert(
            "api_keys",
            {
                "key": key,
                "key_id": "ApiKey_" + new_id(),
                "identity_id": identity_id,
                "label": label,
                "created_at": self.clock.now(),
                "created_ts": self.clock.time(),
            },
        )

    def mint_identity_key(self, identity_id: str, label: str) -> str:
        """Create an identity-scoped API key and return it."""
        key = "ApiKey_" + secrets.token_urlsafe(24)
        self._insert_key(key, identity_id, label)
        return key

    @contextmanager
    def tx(self) -> Iterator[Effects]:
        """Open a transaction; release its effects once it commits."""
        fx = Effects()
        with self.store.transaction():
            yield fx
        self.release(fx)

    def release(self, fx: Effects) -> None:
        """Hand committed effects to the workers and the phone screens."""
        if fx.outbox:
            self.delivery.enqueue(fx.outbox)
        if fx.jobs:
            self.lifecycle.schedule(fx.jobs)
        self.timeline.publish(fx)

    # Lookups shared by several rule modules.

    def identity(self, identity_id: str) -> Row | None:
        """The identity with this id, or ``None`` (cached; see ``identity_changed``)."""
        row = self._identities.get(identity_id)
        if row is None:
            row = self.store.one("SELECT * FROM identities WHERE id = ?", (identity_id,))
            if row is not None:
                self._identities[identity_id] = row
        return row

    def identity_changed(self, identity_id: str) -> None:
        """Forget the cached row of an identity: call it after writing to it."""
        self._identities.pop(identity_id, None)

    def phone(self, number: str) -> Row | None:
        """The stored state of a phone (reachable or not), or ``None`` if never stored."""
        if number in self._phones:
            return self._phones[number]
        row = self.store.one("SELECT * FROM phones WHERE number = ?", (number,))
        self._phones[number] = row
        return row

    def phone_changed(self, number: str) -> None:
        """Forget the cached state of a phone: call it after writing to it."""
        self._phones.pop(number, None)

    def _forget_cached(self) -> None:
        self._identities.clear()
        self._phones.clear()

    def identity_by_handle(self, handle: str) -> Row | None:
        """The identity with this handle (any case, leading ``@`` allowed), or ``None``."""
        return self.store.one(
            "SELECT * FROM identities WHERE lower(handle) = ?",
            (handle.removeprefix("@").lower(),),
        )

    def conversation(self, conversation_id: str) -> Row | None:
        """The conversation with this id, or ``None``."""
        return self.store.one("SELECT * FROM conversations WHERE id = ?", (conversation_id,))

    def message(self, message_id: str) -> Row | None:
        """The message with this id, or ``None``."""
        return self.store.one("SELECT * FROM messages WHERE id = ?", (message_id,))

    def live_reactions(self, message_ids: list[str]) -> dict[str, list[Row]]:
        """Live (not removed) reactions per message id, oldest first."""
        if not message_ids:
            return {}
        out: dict[str, list[Row]] = {}
        # Chunked: SQLite caps the number of bound parameters per statement.
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.store.all(
                f"SELECT * FROM reactions WHERE removed_at IS NULL AND message_id IN ({marks}) "
                "ORDER BY seq",
                chunk,
            )
            for row in rows:
                out.setdefault(row["message_id"], []).append(row)
        return out

    def typing_active(self, conversation_id: str) -> bool:
        """Whether the agent's typing bubble is up in this conversation."""
        until = self.typing.get(conversation_id)
        return until is not None and until > self.clock.time()

    def touch_phone(self, number: str) -> None:
        """Remember a phone number (``/sim/v1/info`` lists the phones seen)."""
        if self.store.run(
            "INSERT OR IGNORE INTO phones (number, unreachable, error_code, created_at) "
            "VALUES (?, 0, NULL, ?)",
            (number, self.clock.now()),
        ):
            self.phone_changed(number)
