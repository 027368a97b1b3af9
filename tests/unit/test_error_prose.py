"""API errors are typed by status and message text; codes are only a hint.

Inkbox explains its 409s in prose ("the recipient has not messaged yet", "no longer
connected"); the codes the simulator attaches are imbot's own invention, so the type must
come out the same with any code or none.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from imbot.client.error_map import error_for_response
from imbot.errors import (
    Conflict,
    ConversationInactive,
    ConversationReleased,
    IdempotencyKeyReused,
    InkboxError,
    NotFound,
    NotMessagedYet,
    RecipientBlocked,
    RecipientNotE164,
    Unprocessable,
)
from imbot.testing.agent import local_simulator, sim_agent

NOT_YET = "The recipient has not messaged yet"
GONE = "This number is no longer connected to the agent"


def details(text: str) -> list[Any]:
    """The ways a server may put the same prose: plain, with a code, with an unknown code."""
    return [
        text,
        {"message": text},
        {"error": "conflict", "message": text},
        {"code": "something_else", "message": text},
    ]


@pytest.mark.parametrize("detail", details(NOT_YET))
def test_not_messaged_yet_whatever_the_code(detail: Any) -> None:
    error = error_for_response(409, {"detail": detail})
    assert type(error) is NotMessagedYet
    assert isinstance(error, ConversationInactive)


@pytest.mark.parametrize("detail", details(GONE))
def test_no_longer_connected_whatever_the_code(detail: Any) -> None:
    error = error_for_response(409, {"detail": detail})
    assert type(error) is ConversationReleased
    assert isinstance(error, ConversationInactive)


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (409, "Recipient hasn’t messaged you yet", NotMessagedYet),  # a typographic apostrophe
        (409, "+15555550142 connected but has not sent a message yet", NotMessagedYet),
        (409, "this conversation was released; text connect @x to reconnect", ConversationReleased),
        (409, "typing is not supported in group conversations", ConversationInactive),
        (
            409,
            "this Idempotency-Key was already used for a different request",
            IdempotencyKeyReused,
        ),
        (409, "the first request with this key is still in progress", Conflict),
        (409, "conflict", Conflict),
        (403, "the recipient is blocked by a contact rule", RecipientBlocked),
        # A 404's words are read by send_message(to=...) alone: elsewhere "connect" is no clue.
        (404, "+15555550142 never connected: text connect @x to +15555550000", NotFound),
        (
            422,
            "this conversation is receive-only: the sender is not a phone number",
            RecipientNotE164,
        ),
        (422, "to: not an E.164 number", Unprocessable),
    ],
)
def test_the_text_chooses_within_the_status(
    status: int, text: str, expected: type[InkboxError]
) -> None:
    assert type(error_for_response(status, {"detail": text})) is expected


def test_a_code_is_used_when_the_text_says_nothing_known() -> None:
    error = error_for_response(409, {"detail": {"error": "recipient_has_not_messaged"}})
    assert type(error) is NotMessagedYet
    error = error_for_response(409, {"detail": {"error": "conversation_released", "message": "x"}})
    assert type(error) is ConversationReleased
    # A retry signal keeps its code, so the client still retries it.
    busy = error_for_response(409, {"detail": {"error": "idempotency_in_progress"}})
    assert (type(busy), busy.code) == (Conflict, "idempotency_in_progress")


def test_the_text_wins_over_a_contradicting_code() -> None:
    error = error_for_response(
        409, {"detail": {"error": "conversation_released", "message": NOT_YET}}
    )
    assert type(error) is NotMessagedYet


async def test_the_simulators_answer_before_the_first_message() -> None:
    number = "+15555550134"
    with anyio.fail_after(20):
        async with (
            local_simulator(connect_event=False) as sim,
            sim_agent(sim, "early") as agent,
        ):
            await agent.connect(number)
            (conversation,) = await agent.client.list_conversations()
            with pytest.raises(NotMessagedYet):
                await agent.client.send_message(conversation_id=conversation.id, text="hello?")
            (assignment,) = await agent.admin.list_assignments(agent_identity_id=agent.identity.id)
            await agent.admin.release_assignment(assignment.id)
            with pytest.raises(ConversationReleased):
                await agent.client.send_message(conversation_id=conversation.id, text="hello?")
