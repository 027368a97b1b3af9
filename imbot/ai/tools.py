"""Tools a model can call to act in the conversation: a tapback, an image, a follow-up question.

They reach the conversation through pydantic-ai's dependencies: ``run_agent`` passes a
``ConversationDeps`` (the handler's ``ctx``) unless given other deps, and each tool takes it
from ``RunContext.deps``. Add them to an agent with ``toolsets=[conversation_tools()]``;
extend ``ConversationDeps`` (a dataclass) to carry your own dependencies as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic_ai import FunctionToolset, ModelRetry, RunContext

from imbot.errors import AskTimeout
from imbot.models import SendableTapback

if TYPE_CHECKING:
    from imbot.bot.context import Context
    from imbot.events import MessageReceived

__all__ = ["ConversationDeps", "conversation_tools"]


@dataclass
class ConversationDeps:
    """The dependencies ``run_agent`` gives a run: the context of the turn being answered.

    Subclass it to add your own, and pass an instance as ``run_agent(..., deps=...)``:

    Example:
        >>> @dataclass
        ... class Deps(ConversationDeps):
        ...     orders: OrderBook
        >>> await run_agent(ctx, agent, deps=Deps(ctx, orders=book))

    Attributes:
        ctx: the handler's context; a tool can reply, react or read ``ctx.state`` with it.
    """

    ctx: Context[MessageReceived]


def conversation_tools(
    *,
    react: bool = True,
    images: bool = True,
    ask: bool = True,
    image_dir: str | os.PathLike[str] | None = None,
    ask_timeout: float = 300.0,
) -> FunctionToolset[ConversationDeps]:
    """The conversation tools, as a toolset to add to an agent whose deps are ``ConversationDeps``.

    ``react`` sends a tapback on the human's last message; ``send_image`` sends an image
    from an ``http(s)`` URL or, when ``image_dir`` is given, a file inside that folder (the
    model can name no other file); ``ask_follow_up`` texts a question and waits for the
    answer (``ctx.ask``), which the model gets as the tool's result. The tools run one at a
    time, in the order the model called them.

    Example:
        >>> agent = Agent(model, deps_type=ConversationDeps, toolsets=[conversation_tools()])

    Args:
        react: offer the ``react`` tool.
        images: offer the ``send_image`` tool.
        ask: offer the ``ask_follow_up`` tool.
        image_dir: the folder ``send_image`` may send files from; URLs only when ``None``.
        ask_timeout: seconds ``ask_follow_up`` waits for an answer.
    """
    toolset = FunctionToolset[ConversationDeps](sequential=True)
    folder = None if image_dir is None else Path(image_dir).resolve()

    async def react_tool(run: RunContext[ConversationDeps], kind: SendableTapback) -> str:
        """React to the person's last message with a tapback, as a person texting would.

        Args:
            kind: the tapback: love, like, dislike, laugh, emphasize, question or eyes.
        """
        await run.deps.ctx.react(kind)
        return f"Reacted with {kind}."

    async def send_image(
        run: RunContext[ConversationDeps], image: str, caption: str | None = None
    ) -> str:
        """Send an image into the conversation.

        Args:
            image: the image's http(s) URL, or the name of a file in the bot's image folder.
            caption: text to send with the image.
        """
        await run.deps.ctx.reply(caption, media=_image_source(image, folder))
        return "The image was sent."

    async def ask_follow_up(run: RunContext[ConversationDeps], question: str) -> str:
        """Text the person a follow-up question and wait for the answer.

        Use it when you need to know something before you can answer well.

        Args:
            question: the question, as one short text.
        """
        try:
            answer = await run.deps.ctx.ask(question, timeout=ask_timeout)
        except AskTimeout:
            return "They did not answer."
        return answer.text or "(an answer without text)"

    if react:
        toolset.add_function(react_tool, name="react")
    if images:
        toolset.add_function(send_image)
    if ask:
        toolset.add_function(ask_follow_up)
    return toolset


def _image_source(image: str, folder: Path | None) -> str:
    """What ``send_image`` may send: a URL as given, or a file inside ``folder``."""
    if image.startswith(("https://", "http://")):
        return image
    if folder is None:
        raise ModelRetry("Give the image as an http(s) URL.")
    path = (folder / image).resolve()
    # The model chooses the name: refuse anything that leaves the folder.
    if not path.is_relative_to(folder) or not path.is_file():
        names = sorted(entry.name for entry in folder.iterdir() if entry.is_file())[:20]
        raise ModelRetry(f"No image named {image!r}. The images are: {', '.join(names)}.")
    return str(path)
