"""Outbound lifecycle and typing-bubble expiry.

queued → sent → delivered; queued → error (unreachable phone) or declined (declining
phone); queued → sent as SMS, final (a phone without iMessage).

One task takes every due step in a batch and applies the batch in one transaction, so
a burst of sends costs one commit per wake-up rather than one per message. Steps that a
batch makes due at once (with ``delivery_delay=0``, delivered right after sent) join
the same transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from imbot.sim.core import Core, Effects
from imbot.sim.render import webhook_message
from imbot.sim.store import Row
from imbot.sim.timers import DueQueue

__all__ = ["Job", "Lifecycle", "message_event"]

_UNREACHABLE_MESSAGE = "The recipient's device could not be reached"
_DECLINED_MESSAGE = "The message was declined for this recipient"


@dataclass(frozen=True, slots=True)
class Job:
    """One scheduled step.

    Attributes:
        kind: ``send`` (queued → sent/error), ``deliver`` (sent → delivered/error) or
            ``typing`` (take the typing bubble down if it has expired).
        target: the message id, or the conversation id for ``typing``.
    """

    kind: Literal["send", "deliver", "typing"]
    target: str


def message_event(core: Core, fx: Effects, event_type: str, message: str | Row) -> None:
    """Fan out an ``imessage.*`` event carrying the message's current state.

    ``message`` is the message id, or its row as just written (which spares a read).
    """
    row = core.message(message) if isinstance(message, str) else message
    if row is None:
        return
    identity = core.identity(row["identity_id"])
    if identity is None:
        return
    message_id = row["id"]
    reactions = core.live_reactions([message_id]).get(message_id)
    data = {"message": webhook_message(row, reactions), "reaction": None}
    core.delivery.fanout(fx, identity, event_type, row["conversation_id"], data)


class Lifecycle:
    """Moves outbound messages along and expires typing bubbles.

    Args:
        core: the simulator's shared state.
    """

    def __init__(self, core: Core) -> None:
        self._core = core
        self._queue: DueQueue[Job] = DueQueue()

    def schedule(self, jobs: list[tuple[float, Job]]) -> None:
        """Schedule committed steps."""
        for due, job in jobs:
            self._queue.push(due, job)

    def resume(self) -> None:
        """Schedule the next step of every message a previous run left in flight."""
        rows = self._core.store.all(
            "SELECT id, status FROM messages "
            "WHERE direction = 'outbound' AND status IN ('queued', 'sent') "
            "AND service != 'sms' ORDER BY seq"
        )
        now = time.time()
        for row in rows:
            self._queue.push(
                now, Job("send" if row["status"] == "queued" else "deliver", row["id"])
            )

    def pending(self) -> int:
        """How many outbound messages are still on their way (tests poll this)."""
        return int(
            self._core.store.scalar(
                "SELECT COUNT(*) FROM messages "
                "WHERE direction = 'outbound' AND status IN ('queued', 'sent') "
                "AND service != 'sms'"  # an SMS's `sent` is final
            )
        )

    async def run(self) -> None:
        """Apply due steps until cancelled."""
        while True:
            batch = await self._queue.take()
            with self._core.tx() as fx:
                while batch:
                    for job in batch:
                        if job.kind == "typing":
                            self._expire_typing(fx, job.target)
                        else:
                            self._step(fx, job)
                    # Steps this batch made due already go in the same transaction
                    # instead of waiting for the next wake-up and commit.
                    now = time.time()
                    batch = [job for due, job in fx.jobs if due <= now]
                    if batch:
                        fx.jobs = [(due, job) for due, job in fx.jobs if due > now]

    def _step(self, fx: Effects, job: Job) -> None:
        core = self._core
        row = core.message(job.target)
        expected = "queued" if job.kind == "send" else "sent"
        if row is None or row["status"] != expected:
            return
        phone = core.phone(row["remote_number"])
        now = core.clock.now()
        mode = phone["delivery"] if phone is not None else "imessage"
        if phone is not None and phone["unreachable"]:
            self._fail(fx, row, phone["error_code"] or "unreachable", now)
        elif job.kind == "send" and mode == "declined":
            self._fail(fx, row, "declined", now, status="declined")
        elif job.kind == "send":
            sms = mode == "sms"
            changes = {"status": "sent", "sent_at": now, "updated_at": now}
            if sms:
                # A phone without iMessage gets an SMS (`was_downgraded`); a carrier gives no
                # delivery receipt, so `sent` is final and no `imessage.delivered` follows.
                changes["service"] = "sms"
            updated = core.store.update_returning("messages", row["id"], changes)
            if updated is not None:
                message_event(core, fx, "imessage.sent", updated)
            if sms:
                fx.messages.append(row["id"])
                self._clear_typing(fx, row)
            else:
                due = time.time() + core.config.delivery_delay
                fx.jobs.append((due, Job("deliver", row["id"])))
        else:
            updated = core.store.update_returning(
                "messages",
                row["id"],
                {"status": "delivered", "delivered_at": now, "updated_at": now},
            )
            if updated is not None:
                message_event(core, fx, "imessage.delivered", updated)
            fx.messages.append(row["id"])
            self._clear_typing(fx, row)

    def _fail(self, fx: Effects, row: Row, code: str, now: str, status: str = "error") -> None:
        declined = status == "declined"
        updated = self._core.store.update_returning(
            "messages",
            row["id"],
            {
                "status": status,
                "error_code": code,
                "error_message": _DECLINED_MESSAGE if declined else _UNREACHABLE_MESSAGE,
                "error_reason": "recipient_declined" if declined else "recipient_unreachable",
                "failed_at": now,
                "updated_at": now,
            },
        )
        if updated is not None:
            message_event(self._core, fx, "imessage.delivery_failed", updated)
        fx.messages.append(row["id"])

    def _clear_typing(self, fx: Effects, row: Row) -> None:
        # The bubble gives way to the message it announced.
        if self._core.typing.pop(row["conversation_id"], None) is not None:
            fx.typing.append((row["conversation_id"], False))

    def _expire_typing(self, fx: Effects, conversation_id: str) -> None:
        until = self._core.typing.get(conversation_id)
        if until is not None and until <= time.time():
            del self._core.typing[conversation_id]
            fx.typing.append((conversation_id, False))
