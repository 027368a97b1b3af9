"""The services a handler's context uses: the narrow view of a running bot that ``ctx`` gets.

``Context`` is a facade of small helpers; everything they touch comes from here (the
client, open asks, the state store, the typing interval, the bubble and pacing settings),
handed over by the bot when it starts. A context never reaches into the bot itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imbot.bot.state import ConversationState, load_state, load_state_nowait
from imbot.log import get_logger
from imbot.models import Message
from imbot.storage.base import InstantStateStore

if TYPE_CHECKING:
    from imbot.bot.asks import AskRegistry
    from imbot.bot.bot import Bot
    from imbot.bot.bubbles import Bubbles
    from imbot.bot.pacing import Pacing
    from imbot.client import InkboxClient
    from imbot.storage.base import StateStore

__all__ = ["Services"]

_log = get_logger("imbot")


class Services:
    """What a running bot lends to each handler's context.

    Attributes:
        bot: the bot (``ctx.bot``: its ``state`` holds lifespan resources).
        client: the API client.
        asks: the open ``ctx.ask`` questions.
        typing_interval: seconds between typing-bubble refreshes.
        loads_by_awaiting: the state store cannot load without awaiting, so a context's
            state is loaded before routing rather than on first use.
    """

    __slots__ = (
        "_answers",
        "_identity_id",
        "_instant",
        "_store",
        "asks",
        "bot",
        "client",
        "loads_by_awaiting",
        "typing_interval",
    )

    def __init__(
        self,
        *,
        bot: Bot,
        client: InkboxClient,
        state_store: StateStore,
        asks: AskRegistry,
        typing_interval: float,
    ) -> None:
        """Gather the services of a started bot."""
        self.bot = bot
        self.client = client
        self.asks = asks
        self.typing_interval = typing_interval
        self._store = state_store
        # ctx.state is a property and cannot await: a store that loads without awaiting is
        # read on first use; any other store is loaded before routing.
        self._instant = state_store if isinstance(state_store, InstantStateStore) else None
        self.loads_by_awaiting = self._instant is None
        self._identity_id: str | None = None
        self._answers: dict[str, list[str]] = {}  # a handling's key -> its kept answers

    @property
    def pacing(self) -> Pacing:
        """The pauses between a reply's bubbles (``Bot(pacing=...)``; the harness's own)."""
        return self.bot.pacing

    @property
    def bubbles(self) -> Bubbles:
        """How replies are split into bubbles (``Bot(bubbles=...)``)."""
        return self.bot.bubbles

    def state_nowait(self, conversation_id: str) -> ConversationState:
        """A conversation's state from a store that reads without awaiting.

        A conversation-less event, or a store that must await (its state was loaded before
        routing, so only conversation-less events get here), gets an unsaved empty state.
        """
        store = self._instant
        if store is None or not conversation_id:
            return ConversationState("", store=None)
        return load_state_nowait(store, conversation_id)

    async def load_state(self, conversation_id: str) -> ConversationState:
        """A conversation's state, awaiting the store if it must."""
        if not conversation_id:
            return ConversationState("", store=None)
        return await load_state(self._store, conversation_id)

    async def sent_under(self, idempotency_key: str) -> Message | None:
        """The message an earlier run of a handling sent under ``idempotency_key``, if any.

        ``None`` when the key made no message, or when the bot's identity cannot be told:
        an admin key and no ``handle``.
        """
        identity_id = await self._identity()
        if identity_id is None:
            return None
        return await self.client.find_send(idempotency_key, agent_identity_id=identity_id)

    async def _identity(self) -> str | None:
        # Asked once, and only on this rare path: an identity key sees just its identity;
        # an admin key needs the bot's handle to tell which one it sends as.
        if self._identity_id is None:
            handle = self.bot.handle
            if handle is not None:
                self._identity_id = (await self.client.get_identity(handle)).id
            else:
                identities = await self.client.list_identities()
                if len(identities) == 1:
                    self._identity_id = identities[0].id
        return self._identity_id

    # ------------------------------------------------------------------ ctx.ask answers

    async def kept_answer(self, key: str, record: str) -> Message | None:
        """The answer an earlier run of this handling got to the same question, if kept.

        A handling runs again after a transient error or a crash; its questions are asked
        again (their prompts not sent twice), and the human answered already: the answer
        was kept in the state store under ``record``.
        """
        data = await self._store.load(record)
        if data is None:
            return None
        self._answers.setdefault(key, []).append(record)
        return Message.model_validate(data["message"])

    async def keep_answer(self, key: str, record: str, message: Message) -> None:
        """Keep a question's answer until the handling ``key`` is done (``forget_answers``).

        A store that fails here does not fail the handler: it has its answer, and only a
        run again would miss it.
        """
        self._answers.setdefault(key, []).append(record)
        try:
            await self._store.save(record, {"message": message.to_wire()})
        except Exception as exc:
            _log.warning(
                "could not keep a ctx.ask answer; a run again would wait for it in vain",
                record=record,
                error=str(exc),
            )

    async def forget_answers(self, key: str) -> None:
        """The handling ``key`` (a context's key) is done: drop the answers it kept."""
        for record in self._answers.pop(key, ()) if self._answers else ():
            try:
                await self._store.delete(record)
            except Exception:  # a leftover is never read again: its handling is done
                _log.exception("could not drop a kept ctx.ask answer", record=record)
