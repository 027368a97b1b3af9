"""One turn through a pydantic-ai agent: history in, typing while it thinks, bubbles out.

``run_agent`` drives the run node by node (pydantic-ai's ``agent.iter``): while the model
is asked, the typing bubble shows; the text of each answer goes to the human as it streams
(``ctx.reply_stream``) or, for a model that does not stream, as soon as that answer is
complete (``ctx.reply``, in bubbles); tools run in between without the bubble, so a
follow-up question does not sit under "typing…". Text the model writes before calling a
tool is sent before the tool runs, so the human reads things in the order they were said.

A failed model call (``MODEL_ERRORS``) gets an apology and is told to the bot's error
listeners; a cancelled run (an interruption) is not an error and is left to propagate.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from pydantic_ai import (
    AgentRunError,
    FallbackExceptionGroup,
    ModelRequest,
    PartDeltaEvent,
    PartStartEvent,
    TextPart,
    TextPartDelta,
)
from pydantic_ai.agent import AbstractAgent
from pydantic_ai.models.function import FunctionModel

from imbot.ai.messages import history_messages, turn_message_ids, turn_prompt
from imbot.ai.tools import ConversationDeps
from imbot.routing.turns import TurnOptions

if TYPE_CHECKING:
    from pydantic_ai import AgentRun, ModelMessage, ModelResponse

    from imbot.bot.context import Context
    from imbot.events import MessageReceived
    from imbot.routing.router import Router
    from imbot.types import FilterLike

__all__ = ["DEFAULT_APOLOGY", "MODEL_ERRORS", "run_agent", "serve_agent"]

DEFAULT_APOLOGY = "Sorry, I couldn't think of an answer just now. Try me again in a moment."
"""What the human reads when the model fails (``run_agent(..., apology=...)`` to change it)."""

MODEL_ERRORS: tuple[type[Exception], ...] = (AgentRunError, FallbackExceptionGroup)
"""The errors ``run_agent`` answers with an apology: every way a pydantic-ai run fails
(``ModelHTTPError``, ``ModelAPIError``, a timeout, ``UnexpectedModelBehavior``, a usage
limit), and ``FallbackModel``'s group of them. Others (a bug in a tool) propagate."""


async def run_agent(
    ctx: Context[MessageReceived],
    agent: AbstractAgent[Any, Any],
    *,
    history: int = 20,
    deps: object = None,
    stream: bool = True,
    images: bool = True,
    apology: str = DEFAULT_APOLOGY,
) -> str:
    """Answer the turn with a pydantic-ai agent: history, typing, the model, bubbles.

    The prompt is the turn (``ctx.text``, its images as image URLs, its tapbacks); the
    message history is the conversation before it, read from the API with
    ``ctx.history()``, so it survives restarts and covers every process. The agent's
    system prompt is put in front of that history (pydantic-ai leaves it out when history
    is given); its ``instructions`` apply as usual.

    Example:
        >>> @bot.on_turn()
        ... async def chat(ctx: Context[MessageReceived]) -> None:
        ...     await run_agent(ctx, agent)

    Args:
        ctx: the handler's context (an ``on_turn`` handler's, or any message handler's).
        agent: the agent; its model streams unless it is a ``FunctionModel`` without a
            ``stream_function``.
        history: how many earlier messages (both sides) the model sees; ``0`` for none.
        deps: the run's dependencies; ``ConversationDeps(ctx)`` by default, which the
            tools of ``conversation_tools()`` need.
        stream: send each answer as it streams; ``False`` sends it once complete.
        images: pass the turn's images to the model (models that cannot see them would
            refuse the request: turn this off for them).
        apology: the reply when the model fails.

    Returns:
        The text sent in answer (the apology when the model failed).

    Raises:
        Exception: whatever a tool raised that is not a model error (after logging).
    """
    run_deps = ConversationDeps(ctx) if deps is None else deps
    try:
        messages = await _history(ctx, agent, history, run_deps)
        return await _answer(
            ctx,
            agent,
            turn_prompt(ctx, images=images),
            messages,
            run_deps,
            stream=stream and _streams(agent),
        )
    except MODEL_ERRORS as exc:
        ctx.log.warning("the model failed; apologizing", error=repr(exc))
        ctx.bot.report_error(ctx, exc)
        await ctx.reply(apology)
        return apology


def serve_agent(
    bot: Router,
    agent: AbstractAgent[Any, Any],
    *filters: FilterLike,
    history: int = 20,
    deps: Callable[[Context[MessageReceived]], object] | None = None,
    stream: bool = True,
    images: bool = True,
    apology: str = DEFAULT_APOLOGY,
    quiet: float | None = None,
    max_wait: float | None = None,
    max_messages: int | None = None,
    max_chars: int | None = None,
    interrupt: bool | None = None,
) -> Callable[[Context[MessageReceived]], Any]:
    """Answer every turn of ``bot`` (a bot or a router) with ``agent``: one line, a working agent.

    Registers an ``on_turn`` handler that calls ``run_agent``. Register commands and other
    handlers first: like any handler, this one only sees what they did not take.

    Example:
        >>> bot = Bot()
        >>> serve_agent(bot, Agent("openai:gpt-4o-mini", instructions="Be brief."))

    Args:
        bot: the bot or router to register on.
        agent: the pydantic-ai agent that answers.
        *filters: filters the turn's last message must pass, as for ``on_turn``.
        history: earlier messages the model sees (``run_agent``).
        deps: makes each run's dependencies from the context; ``ConversationDeps(ctx)``
            by default.
        stream: stream answers (``run_agent``).
        images: pass images to the model (``run_agent``).
        apology: the reply when the model fails.
        quiet: ``on_turn``'s quiet window, when not its default.
        max_wait: ``on_turn``'s longest wait, when not its default.
        max_messages: ``on_turn``'s most messages per turn, when not its default.
        max_chars: ``on_turn``'s most characters per turn, when not its default.
        interrupt: ``on_turn``'s interruptions, when not its default (on).

    Returns:
        The registered handler.
    """
    default = TurnOptions()

    async def answer_with_agent(ctx: Context[MessageReceived]) -> None:
        await run_agent(
            ctx,
            agent,
            history=history,
            deps=None if deps is None else deps(ctx),
            stream=stream,
            images=images,
            apology=apology,
        )

    answer_with_agent.__qualname__ = f"serve_agent({agent.name or 'agent'})"
    bot.add_turn_handler(
        answer_with_agent,
        *filters,
        quiet=default.quiet if quiet is None else quiet,
        max_wait=default.max_wait if max_wait is None else max_wait,
        max_messages=default.max_messages if max_messages is None else max_messages,
        max_chars=default.max_chars if max_chars is None else max_chars,
        interrupt=default.interrupt if interrupt is None else interrupt,
    )
    return answer_with_agent


async def _history(
    ctx: Context[MessageReceived], agent: AbstractAgent[Any, Any], limit: int, deps: object
) -> list[ModelMessage]:
    if limit <= 0:
        return []
    exclude = turn_message_ids(ctx)
    # The turn itself is in the API's list too; it is the prompt, so it must not use up
    # the history's budget.
    messages = history_messages(await ctx.history(limit=limit + len(exclude)), exclude=exclude)
    if not messages:
        return messages
    system = await agent.system_prompt_parts(deps=deps)
    if not system:
        return messages
    first = messages[0]
    if isinstance(first, ModelRequest):
        messages[0] = ModelRequest(parts=[*system, *first.parts])
    else:
        messages.insert(0, ModelRequest(parts=system))
    return messages


async def _answer(
    ctx: Context[MessageReceived],
    agent: AbstractAgent[Any, Any],
    prompt: Any,
    messages: list[ModelMessage],
    deps: object,
    *,
    stream: bool,
) -> str:
    sent: list[str] = []
    async with agent.iter(prompt, message_history=messages, deps=deps) as run:
        node: Any = run.next_node
        while not agent.is_end_node(node):
            if agent.is_model_request_node(node):
                node, text = await _ask_model(ctx, agent, run, node, stream=stream)
                if text:
                    sent.append(text)
            else:
                node = await run.next(node)  # tools run here, without the typing bubble
        output = None if run.result is None else run.result.output
    if not sent and output is not None and (text := str(output).strip()):
        # A structured output, or an answer that came without text parts.
        await ctx.reply(text)
        sent.append(text)
    return "\n\n".join(sent)


async def _ask_model(
    ctx: Context[MessageReceived],
    agent: AbstractAgent[Any, Any],
    run: AgentRun[Any, Any],
    node: Any,
    *,
    stream: bool,
) -> tuple[Any, str]:
    """One model request, under the typing bubble; its text is sent before tools run."""
    async with ctx.typing():
        if stream:
            async with node.stream(run.ctx) as events:
                text = await _stream_reply(ctx, events)
            return await run.next(node), text
        node = await run.next(node)
        text = _response_text(node.model_response) if agent.is_call_tools_node(node) else ""
        if text:
            await ctx.reply(text)
        return node, text


async def _stream_reply(ctx: Context[MessageReceived], events: AsyncIterable[object]) -> str:
    chunks = _TextChunks(events)
    if await chunks.start():
        await ctx.reply_stream(chunks)
    return chunks.text.strip()


class _TextChunks:
    """The text of one streamed model response, as the chunks ``ctx.reply_stream`` takes.

    A class, not an async generator: a generator abandoned by a cancellation would be
    finalized later, in another context, under pydantic-ai's context variables.
    """

    __slots__ = ("_events", "_first", "text")

    def __init__(self, events: AsyncIterable[object]) -> None:
        self._events: AsyncIterator[object] = aiter(events)
        self._first: str | None = None
        self.text = ""

    async def start(self) -> bool:
        """Read up to the first text; ``False`` when the response has none (tool calls)."""
        self._first = await self._next_text()
        return self._first is not None

    def __aiter__(self) -> _TextChunks:
        return self

    async def __anext__(self) -> str:
        chunk, self._first = self._first, None
        if chunk is None:
            chunk = await self._next_text()
        if chunk is None:
            raise StopAsyncIteration
        return chunk

    async def _next_text(self) -> str | None:
        async for event in self._events:
            chunk = ""
            if isinstance(event, PartStartEvent) and isinstance(event.part, TextPart):
                # A second text part of one response starts a new paragraph.
                chunk = ("\n\n" if self.text else "") + event.part.content
            elif isinstance(event, PartDeltaEvent) and isinstance(event.delta, TextPartDelta):
                chunk = event.delta.content_delta
            if chunk:
                self.text += chunk
                return chunk
        return None


def _response_text(response: ModelResponse) -> str:
    return "\n\n".join(
        part.content for part in response.parts if isinstance(part, TextPart) and part.content
    ).strip()


def _streams(agent: AbstractAgent[Any, Any]) -> bool:
    """Whether the agent's model can stream (a ``FunctionModel`` needs a stream function)."""
    model = agent.model
    return not (isinstance(model, FunctionModel) and model.stream_function is None)
