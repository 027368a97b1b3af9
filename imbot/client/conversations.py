"""Conversation endpoints: who is connected, and the conversations they open.

The triage number a human texts ``connect @handle`` to, the assignments (one active
connection per connected human) and the conversations, with their previews and counts.
Read a conversation's messages with ``iter_messages(conversation_id=...)`` (``messaging``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import TypeAdapter

from imbot.client._request import DateFilter, _BaseClient, check_page, ignore_body, segment
from imbot.models import Assignment, Conversation, ConversationSummary, TriageNumber

_SUMMARIES = TypeAdapter(list[ConversationSummary])
_ASSIGNMENTS = TypeAdapter(list[Assignment])


class _ConversationEndpoints(_BaseClient):
    """The triage number, conversations and assignments (connections)."""

    async def get_triage_number(self) -> TriageNumber:
        """Get the router number and the text a human sends it to connect.

        Resolve it at run time: the number can change.

        Raises:
            NotFound: no router number is active.
        """
        return await self._request(
            "GET", "/imessage/triage-number", TriageNumber.model_validate_json
        )

    async def list_conversations(
        self,
        *,
        agent_identity_id: str | None = None,
        is_blocked: bool | None = None,
        include_groups: bool | None = None,
        start_datetime: DateFilter = None,
        end_datetime: DateFilter = None,
        tz: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ConversationSummary]:
        """List one page of conversations, most recent message first.

        Args:
            agent_identity_id: only this identity's (admin keys).
            is_blocked: compute previews and counts from blocked or unblocked rows only.
            include_groups: include group conversations.
            start_datetime: with a message at or after this instant.
            end_datetime: with a message at or before this instant.
            tz: the IANA zone of zone-less values.
            limit: the page size, 1 to 200.
            offset: how many rows to skip.
        """
        check_page(limit, offset)
        query = {
            "agent_identity_id": agent_identity_id,
            "is_blocked": is_blocked,
            "include_groups": include_groups,
            "start_datetime": start_datetime,
            "end_datetime": end_datetime,
            "tz": tz,
            "limit": limit,
            "offset": offset,
        }
        return await self._request(
            "GET", "/imessage/conversations", _SUMMARIES.validate_json, query=query
        )

    def iter_conversations(
        self,
        *,
        agent_identity_id: str | None = None,
        is_blocked: bool | None = None,
        include_groups: bool | None = None,
        start_datetime: DateFilter = None,
        end_datetime: DateFilter = None,
        tz: str | None = None,
        page_size: int = 50,
    ) -> AsyncIterator[ConversationSummary]:
        """Iterate over every conversation matching the filters (see ``list_conversations``)."""
        filters: dict[str, Any] = {
            "agent_identity_id": agent_identity_id,
            "is_blocked": is_blocked,
            "include_groups": include_groups,
            "start_datetime": start_datetime,
            "end_datetime": end_datetime,
            "tz": tz,
        }
        return self._pages(
            lambda limit, offset: self.list_conversations(**filters, limit=limit, offset=offset),
            page_size,
        )

    async def get_conversation(
        self, conversation_id: str, *, agent_identity_id: str | None = None
    ) -> Conversation:
        """Get one conversation; read its messages with ``iter_messages(conversation_id=...)``.

        Args:
            conversation_id: the conversation.
            agent_identity_id: assert it belongs to this identity (``NotFound`` otherwise).
        """
        path = f"/imessage/conversations/{segment(conversation_id)}"
        query = {"agent_identity_id": agent_identity_id}
        return await self._request("GET", path, Conversation.model_validate_json, query=query)

    async def list_assignments(
        self, *, agent_identity_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Assignment]:
        """List one page of active connections (one per connected human), newest first."""
        check_page(limit, offset)
        query = {"agent_identity_id": agent_identity_id, "limit": limit, "offset": offset}
        return await self._request(
            "GET", "/imessage/assignments", _ASSIGNMENTS.validate_json, query=query
        )

    def iter_assignments(
        self, *, agent_identity_id: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Assignment]:
        """Iterate over every active connection."""
        return self._pages(
            lambda limit, offset: self.list_assignments(
                agent_identity_id=agent_identity_id, limit=limit, offset=offset
            ),
            page_size,
        )

    async def release_assignment(self, assignment_id: str) -> None:
        """Release a connection (admin keys); the human is not told and may reconnect.

        Raises:
            NotFound: unknown or already released.
            Forbidden: the key is not an admin key.
        """
        path = f"/imessage/assignments/{segment(assignment_id)}"
        await self._request("DELETE", path, ignore_body)
