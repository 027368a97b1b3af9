"""The async Inkbox iMessage API client: one method per endpoint, typed models and errors.

``InkboxClient`` only composes; each group of endpoints lives in the module named by its job:

- ``messaging``: send and read messages, read receipts, typing, tapbacks;
- ``conversations``: the triage number, conversations, assignments (connections);
- ``media``: uploads;
- ``rules``: contact rules;
- ``provisioning``: identities, signing keys, webhook subscriptions;
- ``_request``: the base they share (settings, the retry loop, error mapping, paging).

Every call is retried on transport failures and on ``429``/``502``/``503``/``504`` (honouring
``Retry-After`` up to ``max_retry_after``); each send carries one ``Idempotency-Key`` on every
attempt, so a retry never sends twice. Failures raise the typed errors of ``imbot.errors``.
"""

from __future__ import annotations

from imbot.client.conversations import _ConversationEndpoints
from imbot.client.media import _MediaEndpoints
from imbot.client.messaging import _MessagingEndpoints
from imbot.client.provisioning import _ProvisioningEndpoints
from imbot.client.rules import _ContactRuleEndpoints

__all__ = ["InkboxClient"]


class InkboxClient(
    _MessagingEndpoints,
    _ConversationEndpoints,
    _MediaEndpoints,
    _ContactRuleEndpoints,
    _ProvisioningEndpoints,
):
    """Async client for the Inkbox iMessage API (and the simulator, which speaks the same).

    Settings come from the arguments, then ``INKBOX_API_KEY`` / ``INKBOX_BASE_URL``, then
    ``~/.inkbox/config`` (see ``imbot.config``). Use it as an async context manager, or call
    ``aclose()``; it opens one connection pool on first use. Every argument is keyword-only.

    Example:
        >>> async with InkboxClient() as client:  # INKBOX_API_KEY from the environment
        ...     message = await client.send_message(conversation_id=cid, text="On my way")
        ...     async for convo in client.iter_conversations():
        ...         print(convo.remote_number, convo.unread_count)

    Args:
        api_key: the API key (``ApiKey_...``).
        base_url: the API origin, e.g. ``https://inkbox.ai`` or ``http://127.0.0.1:8787``.
        timeout: seconds allowed for each attempt of a request.
        max_attempts: attempts per request, the first included.
        max_retry_after: the longest ``Retry-After`` waited for; longer raises at once.
        transport: a custom transport; yours to close. The default one is the client's.
        user_agent: a product token put before ``imbot/<version>`` in ``User-Agent``.
        settings: already resolved settings, instead of ``api_key`` and ``base_url``.

    Attributes:
        settings: the resolved ``imbot.config.Settings`` (the key is masked in its repr).

    Raises:
        ConfigError: no API key was found, or the base URL is invalid or insecure.
    """
