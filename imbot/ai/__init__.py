"""pydantic-ai agents that text: one conversation, one model run per turn.

The optional extra ``imbot-kit[ai]`` (pydantic-ai's slim package) is needed; without it,
importing this package raises ``ConfigError`` naming the command that installs it.

```python
from pydantic_ai import Agent
from imbot import Bot
from imbot.ai import serve_agent

bot = Bot()
agent = Agent("openai:gpt-4o-mini", instructions="You text like a friend: short and warm.")
serve_agent(bot, agent)  # every turn: history, typing, the model, the answer in bubbles
```

The modules each do one job: ``runner`` (``run_agent``, ``serve_agent``: one turn through
the model, streamed into bubbles; a failed model call gets an apology and an error report),
``messages`` (the conversation's history and the turn as pydantic-ai messages) and
``tools`` (``ConversationDeps`` and ``conversation_tools()``: tapbacks, images and
follow-up questions the model can use).

This package is a layer above ``bot``: it uses the context's public helpers
(``ctx.history``, ``ctx.reply_stream``, ``ctx.typing``…) and nothing in ``bot`` imports it.
"""

from __future__ import annotations

from imbot.errors import ConfigError

try:
    import pydantic_ai  # noqa: F401  (present, or the message below says how to get it)
except ImportError as exc:  # pragma: no cover - the dev install has it; tested by a subprocess
    raise ConfigError(
        "imbot.ai needs pydantic-ai, which is not installed: pip install 'imbot-kit[ai]'"
    ) from exc

from imbot.ai.messages import history_messages, turn_prompt
from imbot.ai.runner import DEFAULT_APOLOGY, MODEL_ERRORS, run_agent, serve_agent
from imbot.ai.tools import ConversationDeps, conversation_tools

__all__ = [
    "DEFAULT_APOLOGY",
    "MODEL_ERRORS",
    "ConversationDeps",
    "conversation_tools",
    "history_messages",
    "run_agent",
    "serve_agent",
    "turn_prompt",
]
